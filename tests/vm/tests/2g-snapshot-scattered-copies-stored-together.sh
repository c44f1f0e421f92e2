#!/bin/bash
# Scattered writes copy a chunk each, and each copy gets its room in
# storage right after the one before; while stores are in flight, the
# copies read meanwhile wait and go out together, one bio for each run
# adjacent in storage. Storage behind dm-delay holds every store 1 s.
# The original, a loop device of 128 MiB and 4 KiB, ends in a chunk of
# 4 KiB, whose copy gets a whole chunk's room: a run in storage must not
# join the copy after it, which would land 124 KiB early. One writer's
# 64 writes, 1 MiB apart (so none copies a group), from 1 MiB on (a
# write at the start of the device counts as the start of a sequential
# stream and copies ahead), the second of them into the last chunk, make
# 64 copies; the storage disk gets them in at most 16 requests (the
# first alone, then the rest 16 or more at a time, a bio per run in
# storage, split at the disk's request size) instead of 64. The image
# then reads the take from storage (checked by stamps of the whole
# device).
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"

read -r _ store <<<"$VM_DISKS"
writes=64
need_loop
truncate -s $((128 * 1024 * 1024 + 4096)) "$TEST_TMP/orig.img"
dev=$(losetup -f --show "$TEST_TMP/orig.img")
on_exit "losetup -d $dev"
size=$(sectors "$dev")
module_unload
on_exit "module_unload; module_load"
module_load

dm_delay store-slow "$store" $((512 * MIB)) 0 1000
disk=$(basename "$store")
# Fields 5 and 7 of /sys/block/X/stat: writes and sectors written.
stores_done() { awk '{ print $5 }' "/sys/block/$disk/stat"; }
stored() { awk '{ print $7 }' "/sys/block/$disk/stat"; }
# write_at OFFSET COUNT: COUNT 4 KiB writes 1 MiB apart from OFFSET.
write_at() {
	run fio --name=scattered --filename="$dev" --rw=write:1020k --bs=4k \
		--direct=1 --offset="$1" --number_ios="$2" --size="$2"m \
		--output=/dev/null
}

snap_stamped "$dev" "$size" /dev/mapper/store-slow $((512 * MIB))
assert_eq $((size % chunk)) 8 "sectors of the last chunk"
before=$(stores_done)
sectors_before=$(stored)
write_at 1m 1
run stamp write "$dev" 2 $((size - 8)) 8
write_at 2m $((writes - 2))
used=$(snap_info "$SNAP_ID" storage_used)
assert_eq "$used" $((writes * chunk)) "storage used by $writes single-chunk copies"
# The copy of the last chunk stores its 8 sectors only.
expected=$((used - chunk + 8))
for ((i = 0; i < 100 && $(stored) - sectors_before < expected; i++)); do
	sleep 0.2
done
[ $(($(stored) - sectors_before)) -eq "$expected" ] ||
	fail "stored $(($(stored) - sectors_before)) sectors in 20 s, expected $expected"
stores=$(($(stores_done) - before))
log "$writes scattered copies stored in $stores requests"
[ "$stores" -le $((writes / 4)) ] ||
	fail "$writes copies stored in $stores requests, expected at most $((writes / 4))"
assert_eq "$(snap_info "$SNAP_ID" error)" 0 "snapshot error"
run stamp check "$img" --journal "$TEST_TMP/image"
run bsio snapshot-destroy "$SNAP_ID"
run bsio detach "$dev"
