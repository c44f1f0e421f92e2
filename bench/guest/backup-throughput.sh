#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Benchmark (not a test): what blksnapctl backup costs against reading the
# same snapshot image with dd, in one guest, through the real dbus-daemon,
# polkitd and blksnapd. A 1 GiB partition of /dev/vdb full of random data;
# backups and difference storage on ext4 on /dev/vdc.
#  1. Full backup throughput. One snapshot; then, BENCH_ROUNDS times, in
#     rotating order and with the page cache dropped before each: dd of the
#     image to /dev/null (the bar: bs=4M, buffered, like a person would),
#     and "blksnapctl backup --snapshot ID --full" of that same snapshot
#     (reads the image through the fd OpenImage hands out, checksums every
#     run and writes the data file, fsync included). For reference also dd
#     of the image with O_DIRECT, dd of the image into a file on the
#     backup disk with conv=fsync, buffered and with O_DIRECT (a copy with
#     no checksum), and blksnapctl with --checksum sha256. Throughput
#     is the partition's size over the wall time of the whole command;
#     each figure is the median of the rounds, the ratio the median of the
#     rounds' ratios.
#  2. Incremental: after 200 random 4 KiB writes, bytes the incremental
#     read / bytes of the tracking blocks written (bar: <= 1.1).
# Prints "result ..." and "ratio ..." lines, and "bench-check: PASS|FAIL"
# for each bar. Knobs: BENCH_ROUNDS (3), BENCH_SIZE_MIB (1024),
# BENCH_CTL_ARGS (extra blksnapctl backup options, for experiments).
# timeout: 3000
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/service-lib.sh"
. "$BLKSNAP_SRC/tests/vm/backup-lib.sh"
need_cmd sfdisk python3 blockdev

ctl=$BLKSNAP_BUILD/client/blksnapctl
rounds=${BENCH_ROUNDS:-3}
size_mib=${BENCH_SIZE_MIB:-1024}
ctl_args=${BENCH_CTL_ARGS:-}
MiB=$((1 << 20))
read -r disk store_disk <<<"$VM_DISKS"
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
now() { date +%s.%N; }

module_load
on_exit module_unload
bk_partition "$disk" "$size_mib"
dev=$BK_DEV
majmin=$(printf '%d:%d' "0x$(stat -c %t "$dev")" "0x$(stat -c %T "$dev")")
cap=$(blockdev --getsize64 "$dev")

# Random data that does not compress or dedupe: 64 MiB from urandom,
# repeated with a different 4 KiB head in each copy.
log "filling $dev ($size_mib MiB) with random data"
head -c $((64 * MiB)) /dev/urandom >"$TEST_TMP/pattern"
for ((i = 0; i < size_mib / 64; i++)); do
	head -c 4096 /dev/urandom | dd of="$TEST_TMP/pattern" conv=notrunc status=none
	dd if="$TEST_TMP/pattern" of="$dev" bs=4M seek=$((i * 16)) oflag=direct status=none
done
rm -f "$TEST_TMP/pattern"

svc_storage "$store_disk"
svc_config
svc_bus
svc_start
out=$TEST_TMP/store/bench
"$ctl" track "$dev"

id=$("$ctl" snapshot create "$dev")
image=$("$ctl" snapshot info --json "$id" | jget "d['Images']['$majmin']")
log "snapshot $id, image $image"

variants=(dd ctl dd-direct dd-file dd-direct-file ctl-sha256)
run_variant() { # NAME: prints seconds
	local t0 t1
	rm -rf "$out" "$TEST_TMP/store/dd.img"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	t0=$(now)
	case $1 in
	dd) dd if="$image" of=/dev/null bs=4M status=none ;;
	dd-direct) dd if="$image" of=/dev/null bs=4M iflag=direct status=none ;;
	dd-file) dd if="$image" of="$TEST_TMP/store/dd.img" bs=4M conv=fsync status=none ;;
	dd-direct-file) dd if="$image" of="$TEST_TMP/store/dd.img" bs=4M iflag=direct oflag=direct \
		conv=fsync status=none ;;
	# shellcheck disable=SC2086 # BENCH_CTL_ARGS is a list of options
	ctl) "$ctl" backup "$dev" --to "$out" --snapshot "$id" --full --quiet $ctl_args ;;
	# shellcheck disable=SC2086
	ctl-sha256) "$ctl" backup "$dev" --to "$out" --snapshot "$id" --full --quiet \
		--checksum sha256 $ctl_args ;;
	esac
	t1=$(now)
	python3 -c "print($t1 - $t0)"
}
for ((r = 0; r < rounds; r++)); do
	n=${#variants[@]}
	for ((i = 0; i < n; i++)); do
		v=${variants[(i + r) % n]}
		s=$(run_variant "$v")
		echo "$s" >>"$TEST_TMP/$v.secs"
		log "round $((r + 1)) $v: $s s, $(python3 -c "print(f'{$cap / $s / $MiB:.1f}')") MiB/s"
	done
done
rm -rf "$out" "$TEST_TMP/store/dd.img"
"$ctl" snapshot destroy "$id"

mibs() { python3 -c "print(f'{$cap / $(median <"$TEST_TMP/$1.secs") / $MiB:.1f}')"; }
dd_rate=$(mibs dd)
ctl_rate=$(mibs ctl)
# the ratio of each round (its two runs close in time, under the same
# load on a shared host), the median of those
ratio=$(paste "$TEST_TMP/dd.secs" "$TEST_TMP/ctl.secs" | awk '{ printf "%.3f\n", $1 / $2 }' | median)
echo "result full backup ($size_mib MiB, median of $rounds): blksnapctl $ctl_rate MiB/s," \
	"dd of the image $dd_rate MiB/s (bs=4M, buffered)"
echo "result reference: dd iflag=direct $(mibs dd-direct) MiB/s;" \
	"dd into a file with fsync $(mibs dd-file) MiB/s, the same with O_DIRECT" \
	"$(mibs dd-direct-file) MiB/s (a copy without checksums);" \
	"blksnapctl --checksum sha256 $(mibs ctl-sha256) MiB/s"
echo "ratio full backup blksnapctl/dd: $ratio (target >= 0.9)"
echo "ratio full backup blksnapctl/dd iflag=direct:" \
	"$(python3 -c "print(f'{$ctl_rate / $(mibs dd-direct):.3f}')") (no bar: for reference)"
python3 -c "import sys; sys.exit(0 if $ratio >= 0.9 else 1)" &&
	echo "bench-check: PASS full backup throughput" ||
	echo "bench-check: FAIL full backup throughput ($ratio < 0.9)"

# Incremental: 200 random 4 KiB writes after a full backup.
chain=$TEST_TMP/store/chain
"$ctl" backup "$dev" --to "$chain" --full --quiet
bs=$("$ctl" cbt --json "$dev" | jget "d['BlockSize']")
bk_random_writes "$dev" 200 "$bs"
changed=$BK_CHANGED
t0=$(now)
"$ctl" backup "$dev" --to "$chain" --json >"$TEST_TMP/incr.json"
t1=$(now)
read=$(jget "d['devices'][0]['bytes-read']" <"$TEST_TMP/incr.json")
iratio=$(python3 -c "print(f'{$read / $changed:.3f}')")
echo "result incremental: read $read bytes for $changed changed" \
	"($((changed / bs)) tracking blocks of $bs bytes) in $(python3 -c "print(f'{$t1 - $t0:.2f}')") s"
echo "ratio incremental bytes read/changed: $iratio (target <= 1.1)"
python3 -c "import sys; sys.exit(0 if $changed <= $read <= 1.1 * $changed else 1)" &&
	echo "bench-check: PASS incremental bytes read" ||
	echo "bench-check: FAIL incremental bytes read ($iratio)"
rm -rf "$chain"
"$ctl" untrack "$dev"
