#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Run the benchmarks in a guest of each kernel given (default: bookworm).
#
#   sudo bench/run.sh [--build DIR] [--filter GLOB] [RELEASE...|all]
#
# Benchmarks are guest scripts in bench/guest/: cbt-overhead (tracking
# cost, CBT memory), snapshot-io (snapshot cost next to dm-snapshot, image
# reads, take latency), service-events (blksnapd: low-space event to
# appended storage, RSS, GetManagedObjects) and backup-throughput
# (blksnapctl backup against dd of the same image; incremental bytes read
# per byte changed). Each prints ratios measured
# side by side in one guest, and "bench-check: PASS|FAIL ..." lines for the bars it checks.
# Results: BUILD/bench-results/RELEASE/NAME.log. Knobs: every BENCH_*
# variable reaches the guest (BENCH_SECONDS, BENCH_ROUNDS, BENCH_PARTS...:
# see the scripts); BLKSNAP_VM_SCRATCH, where the guest's disk images
# live (default /dev/shm, if it has 5 GiB free).
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build
filter='*'
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--filter) filter=$2; shift 2 ;;
	-h|--help) sed -n '3,18p' "$0"; exit 0 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || set -- bookworm

[ -f "$build/build.ninja" ] || meson setup "$build" "$src" >/dev/null || exit 1
meson compile -C "$build" >/dev/null || exit 1

export BLKSNAP_VM_TESTS_DIR=$src/bench/guest
export BLKSNAP_VM_RESULTS_NAME=bench-results
export BLKSNAP_VM_TEST_TIMEOUT=${BLKSNAP_VM_TEST_TIMEOUT:-3000}
export BLKSNAP_VM_QUIET=${BLKSNAP_VM_QUIET:-1}
# One guest at a time: a second one would take CPU from what is measured.
# Both vCPUs on host threads of their own, as on real hardware (and as the
# figures so far were measured). Multi-threaded TCG is only unsafe while
# ftrace patches the hook under I/O (see qemu_cmd); the benchmarks load and
# unload the module only while no I/O runs.
export BLKSNAP_VM_TCG_THREAD=${BLKSNAP_VM_TCG_THREAD:-multi}
# The guests' disks in memory (tmpfs), unless BLKSNAP_VM_SCRATCH says
# otherwise: on these hosts the disk under /var/tmp ran the same plain read
# at 393 and 1135 MB/s a minute apart, which buried every ratio in noise.
# In memory, the plain device is as fast as the guest can drive it: blksnap's
# CPU cost weighs more against it, its extra reads and stores less.
if [ -z "${BLKSNAP_VM_SCRATCH:-}" ] && [ -d /dev/shm ] &&
   [ "$(df -k --output=avail /dev/shm | tail -n 1)" -gt $((5 * 1024 * 1024)) ]; then
	export BLKSNAP_VM_SCRATCH=/dev/shm
fi
echo "bench: disk images in ${BLKSNAP_VM_SCRATCH:-/var/tmp}"
"$src/tests/vm/run.sh" --build "$build" --filter "$filter" --jobs 1 "$@"
rc=$?
for rel in "$@"; do
	[ "$rel" = all ] && rel="bookworm trixie sid"
	for r in $rel; do
		for log in "$build"/bench-results/"$r"/*.log; do
			case $log in */console.log|*/build.log|*/prepare.log|*/qemu.log) continue ;; esac
			[ -f "$log" ] || continue
			echo "=== $r: $(basename "$log" .log)"
			grep -E '^(ratio|result|iops|memory|take|bench-check)' "$log"
		done
	done
done
exit $rc
