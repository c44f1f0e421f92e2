#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The test bench itself: right kernel, scratch disks, host tools, modules.
# If this fails, no other VM test result means much.
# timeout: 120
set -eu
# shellcheck source=../lib.sh
. "$BLKSNAP_SRC/tests/vm/lib.sh"

need_cmd fio mkfs.ext4 blockdev modprobe modinfo

log "kernel $(uname -r), release $RELEASE"
assert_eq "$(uname -r)" "$KVER" "running kernel"

# The module was built for this very kernel.
[ -f "$BLKSNAP_KO" ] || fail "BLKSNAP_KO missing: $BLKSNAP_KO"
vermagic=$(modinfo -F vermagic "$BLKSNAP_KO")
assert_eq "${vermagic%% *}" "$KVER" "vermagic of $BLKSNAP_KO"

# Scratch disks: present, the configured size, and the ones the host made.
[ "$VM_DISKS" = "/dev/vdb /dev/vdc" ] || fail "VM_DISKS='$VM_DISKS'"
i=0
for d in $VM_DISKS; do
	i=$((i + 1))
	[ -b "$d" ] || fail "$d is not a block device"
	assert_eq "$(blockdev --getsize64 "$d")" "$VM_DISK_BYTES" "size of $d"
	assert_eq "$(cat "/sys/block/${d#/dev/}/serial")" "vmdisk$i" "serial of $d"
	# Without virtio's event index (bit 29): see qemu_cmd in host-lib.sh.
	features=$(cat "/sys/block/${d#/dev/}/device/features")
	assert_eq "${features:29:1}" 0 "VIRTIO_RING_F_EVENT_IDX of $d"
done

# Host binaries run in the guest and reach the disks: fio writes and
# verifies 8 MiB with direct I/O, mkfs.ext4 + mount + write on the other.
run fio --name=sanity --filename=/dev/vdb --rw=write --bs=64k --size=8m \
	--direct=1 --ioengine=libaio --verify=crc32c --output-format=terse >/dev/null
run mkfs.ext4 -q -F /dev/vdc
mkdir -p "$TEST_TMP/mnt"
mount /dev/vdc "$TEST_TMP/mnt"
on_exit "umount '$TEST_TMP/mnt'"
echo hello >"$TEST_TMP/mnt/file"
sync
assert_eq "$(cat "$TEST_TMP/mnt/file")" hello "file on ext4"

# The release's module tree is where modprobe looks for it.
[ -f "/lib/modules/$KVER/modules.dep" ] || fail "/lib/modules/$KVER not set up"
run modprobe null_blk nr_devices=1
on_exit "modprobe -r null_blk"
[ -b /dev/nullb0 ] || fail "modprobe null_blk: no /dev/nullb0"
run modprobe loop
log "all good"
