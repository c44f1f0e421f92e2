#!/bin/bash
# Destroying a snapshot waits for blksnap's own I/O still in flight, so
# that nothing lands after the storage is given back and nothing completes
# into freed memory:
#  - copies being stored: the storage is a dm-delay target holding writes
#    for 1.5 s; right after the destroy returns, the storage range is
#    zeroed behind dm-delay's back, and must still be zeros 2 s later
#    (a store written behind the destroy would land on whatever reuses it).
#  - image reads of the original: the original is a dm-delay target
#    holding reads; a read of the image is in flight when the destroy
#    starts, which then lasts until the read completes.
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"
need_cmd dmsetup

read -r dev store <<<"$VM_DISKS"
delay_ms=1500
module_load
zeros_sum() { head -c "$1" /dev/zero | sha256sum | cut -d' ' -f1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

log "--- stores in flight"
run dd if=/dev/urandom of="$dev" bs=1M count=16 oflag=direct status=none
dm_delay blksnap-slow-store "$store" $((512 * MIB)) 0 "$delay_ms"
track "$dev"
snap_create "$dev"
snap_storage "$SNAP_ID" /dev/mapper/blksnap-slow-store 0 $((256 * MIB))
snap_take "$SNAP_ID"
chunk=$(image_info "$dev" chunk_size)
# Four chunks copied, one per copy group (1 MiB), none continuing the write
# before (copy-ahead): each write waits for its chunk's read only.
for i in 2 6 10 14; do
	run dd if=/dev/zero of="$dev" bs=4k count=1 seek=$((i * MIB * 512 / 4096)) \
		oflag=direct conv=notrunc status=none
done
used=$(snap_info "$SNAP_ID" storage_used)
assert_eq "$used" $((4 * chunk / 512)) "storage used by four copies (sectors)"
start=$(now_ms)
run bsio snapshot-destroy "$SNAP_ID"
log "destroy with four stores held by dm-delay: $(($(now_ms) - start)) ms"
# Straight to the disk under the delay target: not held.
run dd if=/dev/zero of="$store" bs=$((used * 512)) count=1 oflag=direct conv=notrunc status=none
sleep $((delay_ms / 1000 + 1))
got=$(dd if="$store" bs=$((used * 512)) count=1 iflag=direct status=none | sha256sum | cut -d' ' -f1)
assert_eq "$got" "$(zeros_sum $((used * 512)))" \
	"storage zeroed after the destroy (a store landed after it returned)"
run bsio detach "$dev"

log "--- an image read in flight"
dm_delay blksnap-slow-orig "$dev" $((512 * MIB)) "$delay_ms" 0
slow=/dev/mapper/blksnap-slow-orig
track "$slow"
snap_create "$slow"
snap_storage "$SNAP_ID" "$store" 0 $((256 * MIB))
snap_take "$SNAP_ID"
img=$(image_of "$slow")
sent=$(now_ms)
dd if="$img" of="$TEST_TMP/read" bs=64k count=1 skip=7 iflag=direct status=none &
reader=$!
sleep 0.3
kill -0 "$reader" 2>/dev/null || fail "the image read completed in under 0.3 s: the delay does not work"
run bsio snapshot-destroy "$SNAP_ID"
since=$(($(now_ms) - sent))
log "destroy ended $since ms after the image read was sent"
[ "$since" -ge "$delay_ms" ] ||
	fail "the destroy ended $since ms after the image read was sent: it did not wait for it (held $delay_ms ms)"
# The read either got the data or failed; it must not hang.
wait_for "! -d /proc/$reader" 10 || fail "the image read hangs"
if wait "$reader"; then
	assert_eq "$(sha256sum <"$TEST_TMP/read" | cut -d' ' -f1)" \
		"$(dd if="$slow" bs=64k count=1 skip=7 iflag=direct status=none | sha256sum | cut -d' ' -f1)" \
		"image read in flight at the destroy"
fi
