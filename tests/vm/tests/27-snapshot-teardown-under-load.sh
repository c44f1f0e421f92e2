#!/bin/bash
# Tearing snapshots down under load never hangs or oopses: destroy while
# the original is written (fio, verified) and the image is read and held
# open; a snapshotted SCSI disk deleted under a writer (the snapshot turns
# corrupted with -ENODEV and says so in an event); rmmod with a snapshot
# and an open image (refused, or done cleanly) and with the image closed
# (done). The original's data stays intact throughout.
# timeout: 360
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"
need_cmd fio timeout

read -r dev store <<<"$VM_DISKS"
module_load

# start_fio NAME DEV: a verified random writer on DEV in the background
# (FIO_PID); fio_done NAME: it must have succeeded.
start_fio() {
	fio --name="$1" --filename="$2" --rw=randwrite --bsrange=4k-64k --size=96m \
		--loops=3 --verify=crc32c --verify_fatal=1 --ioengine=libaio \
		--iodepth=8 --direct=1 --output="$TEST_TMP/$1.out" &
	FIO_PID=$!
	on_exit "kill $FIO_PID 2>/dev/null; wait $FIO_PID 2>/dev/null; true"
}
fio_done() {
	wait "$FIO_PID" || { cat "$TEST_TMP/$1.out"; fail "fio $1 failed: original data damaged"; }
}
# start_reader IMG: read IMG in a loop until reads fail (READER_PID).
start_reader() {
	(while dd if="$1" of=/dev/null bs=64k count=64 skip=$((RANDOM % 4096)) \
		iflag=direct status=none 2>/dev/null; do :; done) &
	READER_PID=$!
	on_exit "kill $READER_PID 2>/dev/null; wait $READER_PID 2>/dev/null; true"
}

log "--- destroy under load, image open"
track "$dev"
snap_create "$dev"
snap_storage "$SNAP_ID" "$store" 0 "$(sectors "$store")"
snap_take "$SNAP_ID"
img=$(image_of "$dev")
start_fio destroy "$dev"
start_reader "$img"
exec {held}<"$img"
sleep 5
kill -0 "$READER_PID" || fail "the image reader stopped before the destroy"
timeout 60 "$BSIO" snapshot-destroy "$SNAP_ID" || fail "destroy failed or hung"
wait_for "! -e $img" 10 || fail "$img still there after destroy"
# The held descriptor fails now, it does not hang.
held_read_fails "$held" || fail "image destroyed"
exec {held}<&-
wait_for "! -d /proc/$READER_PID" 30 || fail "the image reader hangs"
fio_done destroy
tracked "$dev" || fail "destroy detached the tracker"

log "--- the original deleted while snapshotted"
on_exit "rmmod scsi_debug 2>/dev/null || true"
sd=$(scsi_debug_disk 256) || exit 1
sd=${sd#/dev/}
sdnum=$(dev_number "/dev/$sd")
track "/dev/$sd"
snap_create "/dev/$sd"
snap_storage "$SNAP_ID" "$store" 0 $((512 * MIB))
snap_take "$SNAP_ID"
img=$(image_of "/dev/$sd")
watch_events "$SNAP_ID" "$TEST_TMP/events"
# nocreat: once the node is gone, dd must fail, not create a file.
(while dd if=/dev/urandom of="/dev/$sd" bs=64k count=16 seek=$((RANDOM % 200)) \
	oflag=direct conv=nocreat,notrunc status=none 2>/dev/null; do :; done) &
writer=$!
on_exit "kill $writer 2>/dev/null; wait $writer 2>/dev/null; true"
start_reader "$img"
exec {held}<"$img"
sleep 3
timeout 60 sh -c "echo 1 >/sys/block/$sd/device/delete" || fail "deleting the disk hung or failed"
wait_for "! -d /proc/$writer" 30 || fail "the writer on the deleted disk hangs"
wait_for "! -d /proc/$WATCH_PID" 30 || fail "no event after the disk went"
cat "$TEST_TMP/events"
grep -qx "corrupted dev=$sdnum error=-19" "$TEST_TMP/events" ||
	fail "no CORRUPTED event with -ENODEV for $sdnum"
assert_eq "$(snap_info "$SNAP_ID" state)" corrupted "state with the disk gone"
assert_eq "$(snap_info "$SNAP_ID" error)" -19 "error with the disk gone"
bsio list | grep -qx "$sdnum" && fail "deleted disk $sdnum still tracked"
held_read_fails "$held" || fail "image of a deleted disk"
exec {held}<&-
wait_for "! -d /proc/$READER_PID" 30 || fail "the image reader hangs"
timeout 60 "$BSIO" snapshot-destroy "$SNAP_ID" || fail "destroy failed or hung"
wait_for "! -e $img" 10 || fail "$img still there after destroy"
timeout 60 rmmod scsi_debug || fail "rmmod scsi_debug"

log "--- rmmod with a snapshot and its image open, then closed"
snap_create "$dev"
snap_storage "$SNAP_ID" "$store" 0 "$(sectors "$store")"
snap_take "$SNAP_ID"
img=$(image_of "$dev")
start_fio unload "$dev"
exec {held}<"$img"
sleep 3
if timeout 60 rmmod blksnap 2>"$TEST_TMP/rmmod.err"; then
	log "rmmod with an open image: done"
	[ -e /dev/blksnap-control ] && fail "control device left after rmmod"
	wait_for "! -e $img" 10 || fail "$img left after rmmod"
	held_read_fails "$held" || fail "image of an unloaded module"
	exec {held}<&-
	module_load
else
	log "rmmod with an open image: refused ($(cat "$TEST_TMP/rmmod.err"))"
	module_loaded || fail "rmmod failed but the module is gone"
	assert_eq "$(snap_info "$SNAP_ID" state)" taken "state after a refused rmmod"
	timeout 30 dd bs=4096 count=1 iflag=direct of=/dev/null <&"$held" 2>/dev/null ||
		fail "the image stopped working after a refused rmmod"
	exec {held}<&-
	module_unload
	[ -e /dev/blksnap-control ] && fail "control device left after rmmod"
	wait_for "! -e $img" 10 || fail "$img left after rmmod"
	module_load
fi
fio_done unload
[ -z "$(bsio snapshot-list)" ] || fail "snapshots survived the unload"
[ -z "$(bsio list)" ] || fail "trackers survived the unload"
