#!/bin/bash
# A snapshot image shows its device exactly as it was at the take, every
# sector of it, while four writers hammer the original (random and
# sequential, 512 B to 1 MiB, unaligned, across chunk boundaries, O_DIRECT
# and buffered) and a reader sweeps the image; afterwards the original
# holds exactly what the writers wrote. The take advanced the change number
# by one, and CBT marks exactly the blocks written since, with it.
# timeout: 360
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"

read -r dev store <<<"$VM_DISKS"
size=$(sectors "$dev")
journal=$TEST_TMP/journal
module_load

# Every sector of the device gets generation 1, before tracking starts.
run stamp fill "$dev" 1 --journal "$journal"
track "$dev"
cn=$(cbt_info "$dev" changes_number)

# Storage: all of the other disk. The writers keep to the first 1.5 GiB
# (plus a few writes at the very end), so even if each chunk they touch is
# copied once it fits.
snap_create "$dev"
snap_storage "$SNAP_ID" "$store" 0 "$(sectors "$store")"
snap_take "$SNAP_ID"
assert_cn "$dev" $((cn + 1))
img=$(image_of "$dev")
assert_eq "$(sectors "$img")" "$size" "size of the image in sectors"
[ -z "$(bsio map "$dev")" ] || fail "blocks marked before anything was written"
log "image $img, chunk size $(image_info "$dev" chunk_size)"

# Writers on the original; a full sweep of the image while they run.
stamp churn "$dev" 2 40 --threads 4 --region 0:$((1536 * MIB)) \
	--journal "$journal" >"$TEST_TMP/churn.out" 2>&1 &
churn=$!
on_exit "kill $churn 2>/dev/null; wait $churn 2>/dev/null; true"
sleep 3
stamp verify "$img" 1 >"$TEST_TMP/verify-during.out" 2>&1 ||
	{ cat "$TEST_TMP/verify-during.out"; fail "the image changed while the original was written"; }
cat "$TEST_TMP/verify-during.out"
wait "$churn" || { cat "$TEST_TMP/churn.out"; fail "a write to the original failed"; }
cat "$TEST_TMP/churn.out"
# The last sectors of the device, across the last chunk boundaries.
run stamp write "$dev" 2 $((size - 1)) 1 --journal "$journal"
run stamp write "$dev" 2 $((size - 4096 - 3)) 4099 --journal "$journal"
run stamp write "$dev" 2 $((size - 2 * MIB - 1)) 2 --journal "$journal" --buffered

assert_eq "$(snap_info "$SNAP_ID" state)" taken "state after the writes"
assert_eq "$(snap_info "$SNAP_ID" error)" 0 "snapshot error after the writes"
assert_eq "$(image_info "$dev" error)" 0 "image error after the writes"
used=$(snap_info "$SNAP_ID" storage_used)
log "difference storage used: $((used / MIB)) MiB"
[ "$used" -gt 0 ] || fail "the writes copied nothing to the storage"
[ "$used" -le "$(snap_info "$SNAP_ID" storage_sectors)" ] || fail "more storage used than given"

# The image: every sector as at the take. The original: every write.
run stamp verify "$img" 1
run stamp check "$dev" --journal "$journal"
# CBT: exactly the blocks written after the take, with the new number.
assert_marked_exactly "$dev" $((cn + 1)) "$journal:2"
assert_cn "$dev" $((cn + 1))

run bsio snapshot-destroy "$SNAP_ID"
wait_for "! -e $img" 10 || fail "$img still there after destroy"
bsio image-info "$dev" 2>/dev/null && fail "image info of a device in no snapshot succeeded"
# The teardown wrote nothing back to the original (a sample).
run stamp check "$dev" --journal "$journal" --region 0:$((512 * MIB))
