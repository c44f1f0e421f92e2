#!/bin/bash
# The chunk buffers a device keeps for its next copies (up to 16 MiB) go
# back to the system under memory pressure, all but the two made with the
# snapshot, and copy-on-write goes on with fresh ones:
#  - the storage is a dm-delay target holding writes 1 s, so a sequential
#    writer fills every store slot: the cache grows to its bound;
#  - "drop_caches=2" runs every shrinker: free memory must grow by most
#    of the cache (it grows by nothing when the module keeps its buffers;
#    up to four drops, as one can skip shrinkers);
#  - more copies afterwards, and the image still reads the take.
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"
need_cmd dmsetup

read -r dev store <<<"$VM_DISKS"
# Free pages, with those on the per-CPU lists, which MemFree leaves out:
# freed pages go there first.
mem_free_kib() {
	echo $(($(awk '$1 == "MemFree:" { print $2 }' /proc/meminfo) +
		$(getconf PAGESIZE) / 1024 * $(awk '$1 == "count:" { n += $2 } END { print n + 0 }' /proc/zoneinfo)))
}
sum() { dd if="$1" bs=1M count="$2" skip="$3" iflag=direct status=none | sha256sum | cut -d' ' -f1; }
module_load

run dd if=/dev/urandom of="$dev" bs=1M count=128 oflag=direct status=none
taken=$(sum "$dev" 128 0)
dm_delay blksnap-slow-store "$store" $((512 * MIB)) 0 1000
track "$dev"
snap_create "$dev"
snap_storage "$SNAP_ID" /dev/mapper/blksnap-slow-store 0 $((512 * MIB))
snap_take "$SNAP_ID"
img=$(image_of "$dev")
chunk=$(image_info "$dev" chunk_size)
# As many buffers as store slots: 16 MiB of chunks, at least 4.
cached=$((16 * 1048576 / chunk))
((cached >= 4)) || cached=4
cached_kib=$(((cached - 2) * chunk / 1024))

sync
echo 2 >/proc/sys/vm/drop_caches
before=$(mem_free_kib)
# 48 MiB written in 1 MiB writes: far more copies than store slots.
run dd if=/dev/zero of="$dev" bs=1M count=48 oflag=direct conv=notrunc status=none
used=$(snap_info "$SNAP_ID" storage_used)
((used >= 48 * MIB)) || fail "storage holds $used sectors after 48 MiB of copies"
sleep 2 # the last stores, held by dm-delay
held=$(mem_free_kib)
log "free: $before KiB before the copies, $held KiB after them; cache bound $((cached * chunk / 1024)) KiB"

# A drop can stop short of our shrinker: shrink_slab() gives way to
# anyone registering a shrinker at the time (6.1 skips all of them when
# it cannot take shrinker_rwsem). A few drops; a module that keeps its
# buffers gains nothing from any of them.
for try in 1 2 3 4; do
	echo 2 >/proc/sys/vm/drop_caches
	after=$(mem_free_kib)
	log "free after drop_caches=2 ($try): $after KiB (+$((after - held)) KiB)"
	(((after - held) * 10 < cached_kib * 8)) || break
	sleep 1
done
(((after - held) * 10 >= cached_kib * 8)) ||
	fail "memory pressure gave back $((after - held)) KiB, expected most of the $cached_kib KiB cached"

# Copies go on: another 48 MiB overwritten, the image still holds the take.
run dd if=/dev/zero of="$dev" bs=1M count=48 seek=64 oflag=direct conv=notrunc status=none
assert_eq "$(sum "$img" 128 0)" "$taken" "image after copies with the cache given back"
assert_eq "$(snap_info "$SNAP_ID" error)" 0 "snapshot error"
