# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# Helpers for the tests of tracking and CBT, on top of lib.sh.

BSIO=${BLKSNAP_BUILD:-}/tests/vm/blksnap-ioctl

bsio() { "$BSIO" "$@"; }

# cbt_info DEV FIELD: one field of "blksnap-ioctl info DEV".
cbt_info() {
	bsio info "$1" | awk -v f="$2" '$1 == f { print $2 }'
}

# cbt_blocks DEV: the changed tracking blocks, one "BLOCK NUMBER" a line.
cbt_blocks() {
	bsio map "$1" | awk '{ for (i = 0; i < $2; i++) print $1 + i, $3 }'
}

# blocks_of BLOCK_SIZE START END: the tracking blocks that bytes
# [START, END) touch, one per line.
blocks_of() {
	local b
	for ((b = $2 / $1; b <= ($3 - 1) / $1; b++)); do
		echo "$b"
	done
}

# assert_blocks DEV NUMBER EXPECTED_FILE: the map of DEV holds exactly the
# blocks listed in EXPECTED_FILE (any order, duplicates allowed), each with
# change number NUMBER.
assert_blocks() {
	local dev=$1 number=$2 expected=$3
	sort -n -u "$expected" | awk -v n="$number" '{ print $1, n }' >"$expected.want"
	cbt_blocks "$dev" >"$expected.got"
	if ! cmp -s "$expected.want" "$expected.got"; then
		echo "CBT map of $dev differs from the writes (want / got):"
		diff "$expected.want" "$expected.got" | head -20
		fail "CBT map of $dev does not match the blocks written"
	fi
}

# tracked DEV: is DEV in the module's list of tracked devices?
tracked() {
	local rdev
	rdev=$(printf '%d:%d' "0x$(stat -c %t "$1")" "0x$(stat -c %T "$1")")
	bsio list | grep -qx "$rdev"
}

# dev_number DEV: MAJOR:MINOR of a device node.
dev_number() {
	printf '%d:%d' "0x$(stat -c %t "$1")" "0x$(stat -c %T "$1")"
}

cbt_memory() { cat /sys/class/misc/blksnap-control/cbt_memory_bytes; }

# need_loop: the loop driver, so losetup finds /dev/loop-control (there is
# no udev in the guest to load it on demand).
need_loop() {
	need_cmd losetup
	modprobe loop || fail "modprobe loop"
}

# scsi_debug_disk SIZE_MB: load scsi_debug with one disk of SIZE_MB and
# print its node (/dev/sdX). The SCSI scan is asynchronous and slow under
# emulation, so wait up to a minute. The caller unloads scsi_debug.
scsi_debug_disk() {
	local sd= i
	modprobe sd_mod || fail "modprobe sd_mod" # no udev to load it on demand
	modprobe scsi_debug dev_size_mb="$1" || fail "modprobe scsi_debug"
	for ((i = 0; i < 300; i++)); do
		sd=$(grep -l scsi_debug /sys/block/sd*/device/model 2>/dev/null |
			head -1 | cut -d/ -f4)
		[ -n "$sd" ] && [ -b "/dev/$sd" ] && break
		sleep 0.2
	done
	[ -n "$sd" ] && [ -b "/dev/$sd" ] ||
		fail "scsi_debug disk did not appear: $(dmesg | tail -5)"
	echo "/dev/$sd"
}
