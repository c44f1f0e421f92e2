#!/bin/bash
# Difference storage can live on the snapshotted device itself, as the
# extents of a file fallocate(2) reserved in its mounted ext4 (FIEMAP): the
# image holds the files as at the take, and both file systems stay clean
# (the module's own writes to the storage are not copied again and touch
# nothing else). Storage split into 64 small ranges with gaps, appended
# in two requests, works as well as one big range.
# timeout: 360
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"
need_cmd mkfs.ext4 e2fsck filefrag sha256sum

read -r dev store <<<"$VM_DISKS"
mnt=$TEST_TMP/mnt
imnt=$TEST_TMP/image
mkdir -p "$mnt" "$imnt"
module_load

log "--- storage in a file on the snapshotted file system"
mkfs.ext4 -q -F "$dev"
mount "$dev" "$mnt"
on_exit "! mountpoint -q $mnt || umount $mnt"
fallocate -l 512M "$mnt/.snapshot-storage"
make_files "$mnt/data" 40
truncate -s 64M "$mnt/data/stamped"
run stamp fill "$mnt/data/stamped" 1 --journal "$TEST_TMP/file.journal"
sync
sums "$mnt/data" >"$TEST_TMP/pre.sums"

# The extents the tool finds are those filefrag reports, on this device.
bsio extents "$mnt/.snapshot-storage" >"$TEST_TMP/extents"
awk -v d="$(dev_number "$dev")" '$1 != d { exit 1 }' "$TEST_TMP/extents" ||
	fail "extents not on $dev: $(head -3 "$TEST_TMP/extents")"
assert_eq "$(awk '{ s += $3 } END { print s }' "$TEST_TMP/extents")" $((512 * MIB)) \
	"sectors in the storage file's extents"
first=$(filefrag -e -b512 "$mnt/.snapshot-storage" | awk '$1 == "0:" { sub(/\.\..*/, "", $4); print $4 }')
assert_eq "$(awk 'NR == 1 { print $2 }' "$TEST_TMP/extents")" "$first" \
	"first sector of the storage file"

track "$dev"
snap_create "$dev"
out=$(bsio snapshot-append-file "$SNAP_ID" "$mnt/.snapshot-storage") || fail "append-file: $out"
log "$out"
assert_eq "$(snap_info "$SNAP_ID" storage_sectors)" $((512 * MIB)) "storage appended"
snap_take "$SNAP_ID"
img=$(image_of "$dev")

change_files "$mnt/data"
run stamp churn "$mnt/data/stamped" 2 15 --threads 3 --journal "$TEST_TMP/file.journal"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$mnt/data/big-new"
sync
sums "$mnt/data" >"$TEST_TMP/post.sums"
used=$(snap_info "$SNAP_ID" storage_used)
log "storage used: $((used / MIB)) MiB"
[ "$used" -gt $((64 * MIB)) ] || fail "only $used sectors of storage used: the test proved little"
assert_eq "$(snap_info "$SNAP_ID" state)" taken "state after the changes"

mount -t ext4 "$img" "$imnt"
on_exit "! mountpoint -q $imnt || umount $imnt"
sums "$imnt/data" | diff "$TEST_TMP/pre.sums" - >&2 ||
	fail "files on the image differ from those at the take"
run stamp verify "$imnt/data/stamped" 1
umount "$imnt"
run e2fsck -f -n "$img"

sums "$mnt/data" | diff "$TEST_TMP/post.sums" - >&2 || fail "files on the original changed"
run stamp check "$mnt/data/stamped" --journal "$TEST_TMP/file.journal"
run bsio snapshot-destroy "$SNAP_ID"
umount "$mnt"
run e2fsck -f -n "$dev"

log "--- 64 ranges of 8 MiB, 8 MiB apart, on the other disk"
journal=$TEST_TMP/raw.journal
run stamp fill "$dev" 1 --region 0:$((1024 * MIB)) --journal "$journal"
snap_create "$dev"
snap_storage_split "$SNAP_ID" "$store" 0 32 $((8 * MIB)) $((8 * MIB))
snap_storage_split "$SNAP_ID" "$store" $((512 * MIB)) 32 $((8 * MIB)) $((8 * MIB))
assert_eq "$(snap_info "$SNAP_ID" storage_sectors)" $((512 * MIB)) "storage in 64 ranges"
snap_take "$SNAP_ID"
img=$(image_of "$dev")
run stamp churn "$dev" 2 25 --threads 4 --region 0:$((256 * MIB)) --journal "$journal"
used=$(snap_info "$SNAP_ID" storage_used)
log "storage used: $((used / MIB)) MiB"
[ "$used" -gt $((24 * MIB)) ] || fail "only $used sectors of storage used: fewer than 4 ranges"
assert_eq "$(snap_info "$SNAP_ID" state)" taken "state after the writes"
run stamp verify "$img" 1 --region 0:$((1024 * MIB))
run stamp check "$dev" --journal "$journal"
run bsio snapshot-destroy "$SNAP_ID"
