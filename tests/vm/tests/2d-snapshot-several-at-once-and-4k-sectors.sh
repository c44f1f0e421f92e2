#!/bin/bash
# Snapshots of different devices live side by side, each with its own
# storage, and an image has its original's size and block sizes, 4 KiB
# logical sectors included:
#  - snapshot A of a loop device with 4 KiB sectors, snapshot B of a disk
#    with 512-byte sectors, their storage on two ranges of one disk; a
#    device of one cannot join the other (EBUSY);
#  - each image has the size, logical and physical block size of its
#    original;
#  - after writes to both originals each image reads as its original did
#    at the take (sha256), and each snapshot's storage holds the chunks of
#    its own device only; a write to the 4 KiB image reads back from it
#    and leaves the original alone;
#  - destroying A leaves B and its image as they were, and A's device can
#    join a new snapshot at once.
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"
need_loop

read -r disk store <<<"$VM_DISKS"
module_load
[ -z "$(bsio snapshot-list)" ] || fail "snapshots left by an earlier test: $(bsio snapshot-list)"

truncate -s 64M "$TEST_TMP/fourk"
loop=$(losetup -f --show --sector-size 4096 "$TEST_TMP/fourk")
on_exit "losetup -d $loop"
assert_eq "$(blockdev --getss "$loop")" 4096 "logical block size of $loop"
for d in "$loop" "$disk"; do
	dd if=/dev/urandom of="$d" bs=1M count=64 oflag=direct status=none
done

# sum DEV: sha256 of its first 64 MiB, read past the page cache.
sum() {
	dd if="$1" bs=1M count=64 iflag=direct status=none | sha256sum | cut -d' ' -f1
}
# poke DEV OFFSET: 4 KiB of fresh random data at byte OFFSET.
poke() {
	dd if=/dev/urandom of="$1" bs=4096 count=1 seek=$(($2 / 4096)) \
		oflag=direct conv=notrunc status=none
}
# used ID: sectors of storage in use.
used() { snap_info "$1" storage_used; }

loop_at_take=$(sum "$loop")
disk_at_take=$(sum "$disk")
track "$loop" "$disk"
snap_create "$loop"
snap_a=$SNAP_ID
snap_storage "$snap_a" "$store" 0 $((256 * MIB))
snap_create "$disk"
snap_b=$SNAP_ID
snap_storage "$snap_b" "$store" $((256 * MIB)) $((256 * MIB))

log "--- a device belongs to one snapshot at a time"
out=$(bsio snapshot-add "$snap_b" "$loop" 2>&1) &&
	fail "$loop, in snapshot A, was added to snapshot B too"
case "$out" in
*"Device or resource busy"*) ;;
*) fail "adding $loop to a second snapshot: expected EBUSY, got: $out" ;;
esac
snap_take "$snap_a"
snap_take "$snap_b"
img_a=$(image_of "$loop")
img_b=$(image_of "$disk")

log "--- each image is shaped like its original"
for pair in "$loop $img_a" "$disk $img_b"; do
	read -r orig img <<<"$pair"
	assert_eq "$(blockdev --getsize64 "$img")" "$(blockdev --getsize64 "$orig")" "size of $img"
	assert_eq "$(blockdev --getss "$img")" "$(blockdev --getss "$orig")" \
		"logical block size of $img"
	assert_eq "$(blockdev --getpbsz "$img")" "$(blockdev --getpbsz "$orig")" \
		"physical block size of $img"
done

log "--- writes to both originals: each snapshot copies its own chunks"
chunk_a=$(image_info "$loop" chunk_size)
chunk_b=$(image_info "$disk" chunk_size)
# Three chunks of A, in three copy groups and out of order (no copy-ahead).
for c in 40 3 20; do
	poke "$loop" $((c * chunk_a + 4096))
done
for c in 7 90; do
	poke "$disk" $((c * chunk_b))
done
assert_eq "$(used "$snap_a")" $((3 * chunk_a / 512)) "storage used by snapshot A"
assert_eq "$(used "$snap_b")" $((2 * chunk_b / 512)) "storage used by snapshot B"
assert_eq "$(sum "$img_a")" "$loop_at_take" "image of $loop"
assert_eq "$(sum "$img_b")" "$disk_at_take" "image of $disk"
loop_now=$(sum "$loop")
[ "$loop_now" != "$loop_at_take" ] || fail "the writes to $loop did not change it"

log "--- a write to the 4 KiB image stays there"
offset=$((10 * chunk_a + 8192))
dd if=/dev/urandom of="$TEST_TMP/block" bs=4096 count=1 status=none
dd if="$TEST_TMP/block" of="$img_a" bs=4096 seek=$((offset / 4096)) \
	oflag=direct conv=notrunc status=none
dd if="$img_a" of="$TEST_TMP/back" bs=4096 skip=$((offset / 4096)) count=1 \
	iflag=direct status=none
cmp -s "$TEST_TMP/block" "$TEST_TMP/back" || fail "the write to $img_a did not read back"
assert_eq "$(sum "$loop")" "$loop_now" "$loop after a write to its image"
assert_eq "$(used "$snap_b")" $((2 * chunk_b / 512)) "storage used by snapshot B"

log "--- destroying A leaves B as it was"
run bsio snapshot-destroy "$snap_a"
assert_eq "$(bsio snapshot-list)" "$snap_b" "snapshots left"
wait_for "! -b $img_a" 10 || fail "$img_a is still there"
poke "$disk" $((200 * chunk_b + 512))
assert_eq "$(used "$snap_b")" $((3 * chunk_b / 512)) "storage used by snapshot B"
assert_eq "$(sum "$img_b")" "$disk_at_take" "image of $disk after A went"

log "--- and A's device joins a new snapshot on A's old storage"
snap_create "$loop"
snap_c=$SNAP_ID
snap_storage "$snap_c" "$store" 0 $((256 * MIB))
snap_take "$snap_c"
img_c=$(image_of "$loop")
poke "$loop" $((33 * chunk_a))
assert_eq "$(sum "$img_c")" "$loop_now" "new image of $loop"
assert_eq "$(sum "$img_b")" "$disk_at_take" "image of $disk next to the new snapshot"
run bsio snapshot-destroy "$snap_c"
run bsio snapshot-destroy "$snap_b"
