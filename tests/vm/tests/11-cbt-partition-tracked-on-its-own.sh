#!/bin/bash
# A partition's writes are tracked on the partition (partition-relative
# blocks) and on its whole disk (disk-relative blocks) when both are
# tracked; another partition's writes do not touch the partition's map.
# Deleting the partitions (re-reading an empty table) drops their tracker.
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
need_cmd sfdisk wipefs

disk=${VM_DISKS##* }
module_load

printf 'label: gpt\nstart=2048, size=1048576\nstart=1050624, size=1048576\n' |
	sfdisk -q "$disk"
on_exit "wipefs -q -a $disk; blockdev --rereadpt $disk"
blockdev --rereadpt "$disk"
p1=${disk}1 p2=${disk}2
[ -b "$p2" ] || fail "partition $p2 did not appear"
p2_start=$(cat "/sys/class/block/${p2##*/}/start")
assert_eq "$p2_start" 1050624 "partition 2 start"

run bsio attach "$p2"
run bsio attach "$disk"
on_exit "bsio detach $disk 2>/dev/null || true"
bs=$(cbt_info "$p2" block_size)
assert_eq "$(cbt_info "$p2" capacity)" 1048576 "partition capacity"

# 4 KiB at partition offset 3 blocks + 4 KiB, then 8 KiB across the
# partition's blocks 7/8, then a write to partition 1.
dd if=/dev/urandom of="$p2" bs=4096 count=1 seek=$((3 * bs / 4096 + 1)) oflag=direct status=none
dd if=/dev/urandom of="$p2" bs=4096 count=2 seek=$((8 * bs / 4096 - 1)) oflag=direct status=none
dd if=/dev/urandom of="$p1" bs=4096 count=1 seek=0 oflag=direct status=none

printf '3\n7\n8\n' >"$TEST_TMP/p2"
assert_blocks "$p2" 1 "$TEST_TMP/p2"

base=$((p2_start * 512))
{
	blocks_of "$bs" $((base + 3 * bs + 4096)) $((base + 3 * bs + 8192))
	blocks_of "$bs" $((base + 8 * bs - 4096)) $((base + 8 * bs + 4096))
	blocks_of "$bs" $((2048 * 512)) $((2048 * 512 + 4096))
} >"$TEST_TMP/disk"
assert_blocks "$disk" 1 "$TEST_TMP/disk"

# Partitions deleted: the partition's tracker goes, the disk's stays.
p2_number=$(dev_number "$p2")
wipefs -q -a "$disk"
blockdev --rereadpt "$disk"
[ ! -b "$p2" ] || [ ! -e "/sys/class/block/${p2##*/}" ] || fail "partition still present"
bsio list | grep -qx "$p2_number" && fail "tracker of deleted partition $p2_number still listed"
tracked "$disk" || fail "whole-disk tracker lost when its partitions went"
if bsio info "$p2_number" 2>/dev/null; then
	fail "info on a deleted partition succeeded"
fi
exit 0
