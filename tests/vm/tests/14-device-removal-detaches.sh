#!/bin/bash
# A tracked device that goes away is detached cleanly: a loop device that
# is detached, a SCSI disk deleted through sysfs while it is written to, a
# null_blk disk whose driver is unloaded. Afterwards the same device
# numbers can be tracked afresh.
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
need_loop

module_load

# --- loop: detach the backing file
truncate -s 64M "$TEST_TMP/loop.img"
loopdev=$(losetup -f --show "$TEST_TMP/loop.img")
on_exit "losetup -d $loopdev 2>/dev/null || true"
run bsio attach "$loopdev"
gen1=$(cbt_info "$loopdev" generation)
dd if=/dev/urandom of="$loopdev" bs=64k count=4 oflag=direct status=none
losetup -d "$loopdev"
tracked "$loopdev" && fail "loop device still tracked after losetup -d"
bsio info "$loopdev" 2>/dev/null && fail "info on a detached loop device succeeded"
# Re-bound to a new file, the same loop device starts a new generation.
truncate -s 32M "$TEST_TMP/loop2.img"
losetup "$loopdev" "$TEST_TMP/loop2.img"
run bsio attach "$loopdev"
gen2=$(cbt_info "$loopdev" generation)
[ "$gen1" != "$gen2" ] || fail "re-attached loop device kept generation $gen1"
assert_eq "$(cbt_info "$loopdev" capacity)" 65536 "capacity of the new loop file"
[ -z "$(bsio map "$loopdev")" ] || fail "new generation's map is not empty"
run bsio detach "$loopdev"
losetup -d "$loopdev"

# --- SCSI disk deleted while a writer runs
on_exit "rmmod scsi_debug 2>/dev/null || true"
sd=$(scsi_debug_disk 64) || exit 1
sd=${sd#/dev/}
sdnum=$(dev_number "/dev/$sd")
run bsio attach "/dev/$sd"
# nocreat: once the node is gone, dd must fail, not create a file.
(while dd if=/dev/zero of="/dev/$sd" bs=64k count=16 oflag=direct conv=nocreat,notrunc status=none 2>/dev/null; do :; done) &
writer=$!
sleep 1
echo 1 >"/sys/block/$sd/device/delete"
wait "$writer" || true
# The del_gendisk hook let go at once, before anyone asked.
dmesg | grep -q "stopped tracking $sdnum: device removed" ||
	fail "no synchronous detach logged for the deleted SCSI disk"
bsio list | grep -qx "$sdnum" && fail "deleted SCSI disk $sdnum still tracked"
rmmod scsi_debug

# --- null_blk: the driver goes, del_gendisk runs
modprobe null_blk nr_devices=1 gb=1 || fail "modprobe null_blk"
on_exit "rmmod null_blk 2>/dev/null || true"
for _ in $(seq 50); do [ -b /dev/nullb0 ] && break; sleep 0.2; done
nbnum=$(dev_number /dev/nullb0)
run bsio attach /dev/nullb0
dd if=/dev/zero of=/dev/nullb0 bs=64k count=4 oflag=direct status=none
rmmod null_blk
dmesg | grep -q "stopped tracking $nbnum: device removed" ||
	fail "no synchronous detach logged for the removed null_blk disk"
bsio list | grep -qx "$nbnum" && fail "removed null_blk disk $nbnum still tracked"
modprobe null_blk nr_devices=1 gb=1
for _ in $(seq 50); do [ -b /dev/nullb0 ] && break; sleep 0.2; done
run bsio attach /dev/nullb0
[ -z "$(bsio map /dev/nullb0)" ] || fail "a new disk inherited the old map"
run bsio detach /dev/nullb0
rmmod null_blk
