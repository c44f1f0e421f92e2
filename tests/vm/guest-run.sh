#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run VM tests inside the guest and report them as TAP.
#
#   guest-run.sh [--filter GLOB] [--results DIR] [TEST...]
#   guest-run.sh --list [--filter GLOB] [TEST...]     (also works on the host)
#     prints "NAME TIMEOUT" for each test that would run
#
# TEST is a name in tests/vm/tests/ ("00-harness-sanity" or with .sh) or a
# path; default: every tests/vm/tests/*.sh in sort order, restricted to the
# names matching GLOB. Each test runs as root in a fresh TEST_TMP with a
# timeout (300 s, or "# timeout: N" in its header), its output going to
# RESULTS/NAME.log. A test fails if it exits non-zero, times out, or if the
# kernel logged an oops, BUG, WARNING, sanitizer or hung-task report while it
# ran (see DMESG_BAD in lib.sh; those lines are printed and kept in
# RESULTS/NAME.dmesg).
#
# Reporting: "ok N - RELEASE: NAME" / "not ok N - RELEASE: NAME" lines on
# stdout and appended to RESULTS/results.tap, which ends with the marker
#   # BLKSNAP-VM-DONE passed=P failed=F
# once every test has been run. Exit status: 0 if all passed.
#
# guest-init.sh calls this with the environment described in lib.sh; in
# the interactive guest (shell.sh) it can be run by hand the same way.
set -uo pipefail

VM_DIR=$(cd "$(dirname "$0")" && pwd)
TESTS_DIR=${BLKSNAP_VM_TESTS_DIR:-$VM_DIR/tests}
# shellcheck source=lib.sh
. "$VM_DIR/lib.sh"

filter='*'
results=${VM_RESULTS:-/tmp/vm-results}
list_only=0
while [ $# -gt 0 ]; do
	case "$1" in
	--filter) filter=$2; shift 2 ;;
	--results) results=$2; shift 2 ;;
	--list) list_only=1; shift ;;
	-h|--help) sed -n '3,25p' "$0"; exit 0 ;;
	-*) echo "guest-run.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done

# Resolve the test list to paths. The names are what the host expects back
# in the TAP lines, so both sides compute them here.
tests=()
if [ $# -gt 0 ]; then
	for t in "$@"; do
		case "$t" in
		*/*) ;;
		*.sh) t=$TESTS_DIR/$t ;;
		*) t=$TESTS_DIR/$t.sh ;;
		esac
		tests+=("$t")
	done
else
	for t in "$TESTS_DIR"/*.sh; do
		[ -f "$t" ] || continue
		n=$(basename "$t" .sh)
		# shellcheck disable=SC2053 # $filter is a glob on purpose
		[[ $n == $filter || $n.sh == $filter ]] && tests+=("$t")
	done
fi

default_timeout=${BLKSNAP_VM_TEST_TIMEOUT:-300}

# Header value of a test: header FILE KEY.
header() {
	sed -n "1,30{s/^# $2:[[:space:]]*//p}" "$1" | head -n1
}

# A test's time limit in seconds: test_timeout FILE.
test_timeout() {
	local tmo
	tmo=$(header "$1" timeout)
	case "$tmo" in ''|*[!0-9]*) tmo=$default_timeout ;; esac
	echo "$tmo"
}

if [ "$list_only" = 1 ]; then
	for t in "${tests[@]}"; do echo "$(basename "$t" .sh) $(test_timeout "$t")"; done
	exit 0
fi

# ---------------------------------------------------------------------------

: "${RELEASE:=unknown}" "${KVER:=$(uname -r)}"
: "${BLKSNAP_SRC:=$(cd "$VM_DIR/../.." && pwd)}"
: "${BLKSNAP_BUILD:=$BLKSNAP_SRC/build}"
: "${BLKSNAP_KO:=$BLKSNAP_BUILD/vm/$RELEASE/blksnap.ko}"
: "${VM_DISKS:=/dev/vdb /dev/vdc}"
export RELEASE KVER BLKSNAP_SRC BLKSNAP_BUILD BLKSNAP_KO VM_DISKS
export TEST_RESULTS=$results

mkdir -p "$results"
tap=$results/results.tap
: >"$tap"

report() {
	printf '%s\n' "$*"
	printf '%s\n' "$*" >>"$tap"
}

# Undo what a test may have left in its scratch dir (mounts), then drop it.
clean_tmp() {
	local m
	awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
		while read -r m; do umount -l "$m"; done
	rm -rf "$1"
}

# Kernel stacks of a stuck test's threads, of every other task in
# uninterruptible sleep and of every task in blksnap code (the workers
# they wait for), with short frames.
blocked_stacks() {
	local members task pid stack disk reads writes
	members=" $(pgrep -g "$1" | tr '\n' ' ') "
	for task in /proc/[0-9]*/task/[0-9]*; do
		pid=${task#/proc/}
		pid=${pid%%/*}
		stack=$(sed 's/^\[<[0-9a-f]*>\] //; s/+0x[0-9a-f]*\/0x[0-9a-f]*//' \
			"$task/stack" 2>/dev/null)
		if [[ $members != *" $pid "* ]] &&
			! grep -q '^State:.*D' "$task/status" 2>/dev/null &&
			! grep -q blksnap <<<"$stack"; then
			continue
		fi
		echo "--- kernel stack of ${task##*/} ($(cat "$task/comm" 2>/dev/null)):"
		printf '%s\n' "$stack"
	done
	# Requests a disk holds (reads, writes) and those its driver has: a
	# request the device never completes leaves no worker waiting.
	for disk in /sys/block/*; do
		read -r reads writes <"$disk/inflight"
		[ "$reads$writes" = 00 ] ||
			echo "--- in flight on ${disk##*/}: $reads reads, $writes writes"
	done
	grep -H . /sys/kernel/debug/block/*/hctx*/busy 2>/dev/null | head -n 20
}

report "1..${#tests[@]}"
passed=0
failed=0
n=0
stopped=
for t in "${tests[@]}"; do
	n=$((n + 1))
	name=$(basename "$t" .sh)
	if [ -n "$stopped" ]; then
		report "not ok $n - $RELEASE: $name # did not run ($stopped)"
		failed=$((failed + 1))
		continue
	fi
	if [ ! -f "$t" ]; then
		report "not ok $n - $RELEASE: $name # no such test"
		failed=$((failed + 1))
		continue
	fi
	log=$results/$name.log
	tmo=$(test_timeout "$t")
	allow=$(header "$t" dmesg-allow)

	TEST_TMP=$(mktemp -d "/tmp/$name.XXXXXX")
	export TEST_TMP TEST_NAME=$name
	# A separator in the kernel log (and on the console, level 4) so that
	# a kernel splat can be matched to its test afterwards.
	echo "<4>blksnap-vm: --- $RELEASE: $name ---" >/dev/kmsg
	pos=$(kmsg_pos)
	t0=$(date +%s)

	# timeout(1) runs the test in a process group of its own (pgid = $pid)
	# and kills the whole group on expiry (TERM, then KILL 10 s later,
	# when it also kills itself rather than wait). A process stuck in the
	# kernel (D state) survives even KILL: it is looked for afterwards.
	# The watchdog, 30 s past the deadline, only guards against timeout(1)
	# itself not returning.
	(cd "$TEST_TMP" && exec timeout -k 10 "$tmo" bash "$t") \
		</dev/null >"$log" 2>&1 &
	pid=$!
	sleep $((tmo + 30)) &
	dog=$!
	done_pid=
	# (stderr: no "Killed" job notice from bash on the console)
	wait -n -p done_pid "$pid" "$dog" 2>/dev/null
	rc=$?
	if [ "$done_pid" = "$pid" ]; then
		kill "$dog" 2>/dev/null
		wait "$dog" 2>/dev/null
	else
		rc=stuck
	fi
	# Processes the test left behind in its group (background jobs, or
	# survivors of timeout's KILL) are killed now, so they cannot disturb
	# the next test; any still there after 5 s are stuck in the kernel.
	pkill -KILL -g "$pid" 2>/dev/null
	stuck=
	for _ in 1 2 3 4 5; do
		stuck=$(pgrep -g "$pid" | xargs -r ps -o pid=,stat=,wchan:30=,args= -p)
		[ -z "$stuck" ] && break
		sleep 1
	done
	[ -n "$stuck" ] && rc=stuck
	# The module goes after every test: the guest boots with slab_nomerge,
	# so its slab cache is its own, and chunks the test leaked are
	# reported now, in this test's kernel log. A module still held (a
	# daemon slow to exit) stays for the next test.
	# (A subshell: module_unload fails the caller when rmmod does.)
	if [ "$rc" != stuck ] && ! (module_unload) >/dev/null 2>&1; then
		echo "# $name: blksnap still in use after the test, left loaded"
	fi
	secs=$(($(date +%s) - t0))

	kmsg_since "$pos" >"$results/$name.dmesg"
	bad=$(dmesg_check "$allow" <"$results/$name.dmesg")

	status=ok
	note=
	case "$rc" in
	0) ;;
	77) note=" # SKIP $(sed -n 's/^SKIP: //p' "$log" | tail -n1)" ;;
	124|137) status="not ok"; note=" # timeout after $tmo s" ;;
	stuck)
		# Whatever wedged these processes is likely to wedge the next
		# tests too: stop here rather than pile up timeouts.
		status="not ok"
		note=" # processes stuck in the kernel"
		[ "$secs" -ge "$tmo" ] && note=" # timeout after $tmo s, processes stuck in the kernel"
		stopped="a previous test left processes stuck in the kernel"
		;;
	*) status="not ok"; note=" # exit status $rc" ;;
	esac
	if [ -n "$bad" ]; then
		status="not ok"
		note="$note # kernel log problems"
	fi
	report "$status $n - $RELEASE: $name$note"
	echo "# $name: $secs s"
	if [ "$status" = ok ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		if [ -n "$bad" ]; then
			echo "# kernel log problems during $name:"
			printf '%s\n' "$bad" | head -n 40 | sed 's/^/#   /'
			{ echo "--- kernel log problems:"; printf '%s\n' "$bad"; } >>"$log"
		fi
		if [ -n "$stuck" ]; then
			echo "# processes of $name still alive (pid stat wchan args):"
			printf '%s\n' "$stuck" | sed 's/^/#   /'
			{
				printf -- '--- stuck processes:\n%s\n' "$stuck"
				blocked_stacks "$pid"
			} >>"$log"
		fi
		echo "# last lines of $name.log:"
		tail -n "$([ -n "$stuck" ] && echo 80 || echo 25)" "$log" | sed 's/^/#   /'
	fi
	[ -z "$stopped" ] && clean_tmp "$TEST_TMP"
done

report "# BLKSNAP-VM-DONE passed=$passed failed=$failed"
[ "$failed" = 0 ]
