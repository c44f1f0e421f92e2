#!/bin/bash
# Benchmark (not a test): what tracking costs.
#  1. 4 KiB random writes (fio, libaio, direct, QD16) on /dev/vdb in three
#     states, alternated round after round in the same guest: module not
#     loaded, module loaded but the device untracked, device tracked.
#     TCG noise is about 15 % per run, so each figure is the median of
#     BENCH_ROUNDS runs of BENCH_SECONDS each.
#  2. CBT memory per TiB tracked, as the module reports it, for null_blk
#     disks of 1 and 4 TiB (no backing memory), against the 2 MiB/TiB bar.
# Prints "ratio ..." and "memory ..." lines, and "bench-check: PASS|FAIL"
# for each bar.
# timeout: 1800
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
need_cmd fio

rounds=${BENCH_ROUNDS:-5}
seconds=${BENCH_SECONDS:-10}
dev=${VM_DISKS%% *}

# Zero-fill first: a sparse image allocates on the host at first write,
# which would slow whichever state runs first.
log "zero-filling $dev"
dd if=/dev/zero of="$dev" bs=4M oflag=direct status=none 2>/dev/null || true

iops() {
	fio --name=bench --filename="$dev" --rw=randwrite --bs=4k --direct=1 \
		--ioengine=libaio --iodepth=16 --runtime="$seconds" --time_based \
		--size=1g --randrepeat=0 --output-format=terse --terse-version=3 |
		awk -F';' '{ print $49 }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

set_state() {
	case $1 in
	unloaded) module_unload ;;
	untracked) module_load; bsio detach "$dev" 2>/dev/null || true ;;
	tracked) module_load; bsio attach "$dev" 2>/dev/null || true ;;
	esac
}

states=(unloaded untracked tracked)
for ((r = 0; r < rounds; r++)); do
	# Rotate the order so no state always runs first.
	for ((i = 0; i < 3; i++)); do
		s=${states[(i + r) % 3]}
		set_state "$s"
		v=$(iops)
		echo "$v" >>"$TEST_TMP/$s"
		log "round $((r + 1)) $s: $v IOPS"
	done
done
set_state unloaded

base=$(median <"$TEST_TMP/unloaded")
untracked=$(median <"$TEST_TMP/untracked")
tracked=$(median <"$TEST_TMP/tracked")
echo "iops median: unloaded $base, loaded-untracked $untracked, tracked $tracked"
ratio_t=$(awk -v a="$tracked" -v b="$untracked" 'BEGIN { printf "%.3f", a / b }')
ratio_u=$(awk -v a="$untracked" -v b="$base" 'BEGIN { printf "%.3f", a / b }')
echo "ratio randwrite-4k tracked/untracked: $ratio_t (target >= 0.98)"
echo "ratio randwrite-4k loaded-untracked/unloaded: $ratio_u"
awk -v r="$ratio_t" 'BEGIN { exit !(r >= 0.98) }' &&
	echo "bench-check: PASS tracking overhead" ||
	echo "bench-check: FAIL tracking overhead ($ratio_t < 0.98)"

# CBT memory per TiB.
module_load
for tib in 1 4; do
	modprobe null_blk nr_devices=1 gb=$((tib * 1024)) memory_backed=0
	for _ in $(seq 50); do [ -b /dev/nullb0 ] && break; sleep 0.2; done
	before=$(cbt_memory)
	bsio attach /dev/nullb0
	used=$(($(cbt_memory) - before))
	bsio detach /dev/nullb0
	rmmod null_blk
	per_tib=$((used / tib))
	echo "memory cbt ${tib} TiB: $used bytes, $per_tib bytes per TiB (target <= 2097152)"
	[ "$per_tib" -le 2097152 ] &&
		echo "bench-check: PASS cbt memory ${tib} TiB" ||
		echo "bench-check: FAIL cbt memory ${tib} TiB"
done
module_unload
