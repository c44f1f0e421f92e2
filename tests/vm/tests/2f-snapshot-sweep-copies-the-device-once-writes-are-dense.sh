#!/bin/bash
# The sweep (copy_sweep, default on): once writes are dense (copies of a
# sixteenth of the device's chunks, and free storage for half the rest),
# the rest of the device is copied in the background, with no further
# write. Storage with room for every chunk not copied yet (here exactly
# the device's size) cannot overflow: the sweep copies all of the device
# and no low-space event comes, though free storage ends at nothing. It
# reads over the single chunks the writes copied (one read instead of
# two around each), so the original is read whole and some of those
# chunks twice, none more.
# Storage short of that by one sector bounds the sweep where free storage
# above the 128 MiB low-space mark would no longer take half of what is
# left: for a 2 GiB device of 256 KiB chunks, between 7167 and 7199
# chunks, and again without a low-space event; with 1.5 GiB of storage,
# between 3073 and 3105. Past the bound: one more (half of an odd number
# left rounds down), then a 4 MiB span (16 chunks) per sweeper, two
# sweepers. The bound counts the chunks of a span still being gathered as
# not placed, so a sweeper that looks while the other's span waits for
# its room stops in time (a guest on a faster clock once stopped at the
# bound + 34 when they counted as placed). What the sweep copied is the
# take: the stamped region, copied only by the sweep, is then overwritten
# on the original and the image still holds the take.
# With copy_sweep=0 nothing is copied past what the writes asked for. A
# snapshot destroyed while a slow sweep runs (storage behind dm-delay) is
# gone in seconds: the sweep stops at its next span rather than
# finishing.
# timeout: 400
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"

read -r dev store <<<"$VM_DISKS"
region=$((64 * MIB))
module_unload
on_exit "module_unload; module_load"
# Written for 256 KiB chunks (the default is 128 KiB).
chunk256=chunk_minimum_shift=18

# dense_snapshot STORE_DEV [SECTORS]: a fresh snapshot of $dev over
# stamped data, with SECTORS (default: all) of STORE_DEV as storage and
# its events in $TEST_TMP/events;
# then one 4 KiB write into the first chunk of each of $dense 1 MiB groups
# past the region (each copies its chunk alone), and one more, which finds
# the writes dense: it starts the sweep and copies its chunk alone too
# (with copy_sweep=0, its 4 MiB span).
dense_snapshot() {
	snap_stamped "$dev" "$region" "$1" "${2:-$(sectors "$1")}"
	watch_events "$SNAP_ID" "$TEST_TMP/events"
	assert_eq "$chunk" 512 "chunk size in sectors (256 KiB)"
	nchunks=$(($(sectors "$dev") / chunk))
	dense=$((nchunks / 16))
	read_before=$(sectors_read "$dev")
	scatter_writes "$dev" $((dense + 1))
}

sectors_read() { awk '{ print $3 }' "/sys/block/$(basename "$1")/stat"; }

used_chunks() { echo $(($(snap_info "$SNAP_ID" storage_used) / chunk)); }

# settle: wait until storage use has not changed for 2 s; prints it.
settle() {
	local before now i
	now=$(used_chunks)
	for ((i = 0; i < 60; i++)); do
		before=$now
		sleep 2
		now=$(used_chunks)
		[ "$now" != "$before" ] || { echo "$now"; return 0; }
	done
	fail "storage use still grows after 120 s: $now chunks"
}

# swept_check KEPT: what the sweep copied is the take; the snapshot has
# no error and had no low-space event; KEPT chunks stay kept.
swept_check() {
	assert_eq "$(snap_info "$SNAP_ID" error)" 0 "snapshot error after the sweep"
	! grep -q '^low-space' "$TEST_TMP/events" || fail "low-space event during the sweep"
	run stamp fill "$dev" 2 --region 0:$region --journal "$TEST_TMP/orig"
	assert_eq "$(used_chunks)" "$1" "chunks kept after overwriting the swept region"
	run stamp check "$img" --journal "$TEST_TMP/image"
	run stamp check "$dev" --journal "$TEST_TMP/orig"
	run bsio snapshot-destroy "$SNAP_ID"
	run bsio detach "$dev"
}

# sweep_bounded STORAGE_SECTORS: the sweep stops where free storage above
# the mark would no longer take half the chunks not kept.
sweep_bounded() {
	local room bound used
	dense_snapshot "$store" "$1"
	room=$((($1 - 128 * MIB) / chunk))
	bound=$((2 * room - nchunks))
	used=$(settle)
	log "the sweep stopped at $used of $nchunks chunks (bound $bound)"
	[ "$used" -gt "$bound" ] && [ "$used" -le $((bound + 33)) ] ||
		fail "the sweep stopped at $used chunks, expected $((bound + 1)) to $((bound + 33))"
	swept_check "$used"
}

module_load "$chunk256"
devsz=$(sectors "$dev")
[ "$(sectors "$store")" -ge "$devsz" ] || fail "$store is smaller than $dev"

log "--- storage for the whole device: the sweep copies all of it"
dense_snapshot "$store" "$devsz"
used=$(settle)
log "the sweep stopped at $used of $nchunks chunks"
assert_eq "$used" "$nchunks" "chunks kept with storage for all of them"
assert_eq "$(snap_info "$SNAP_ID" storage_used)" "$devsz" "storage used"
read=$(($(sectors_read "$dev") - read_before))
log "sectors read from the original: $read (device $devsz)"
[ "$read" -gt "$devsz" ] && [ "$read" -le $((devsz + (dense + 1) * chunk)) ] ||
	fail "read $read sectors of the original, expected more than $devsz (reads over the copied chunks), at most $((devsz + (dense + 1) * chunk))"
swept_check "$used"

log "--- storage one sector short of that: the sweep stops at the bound"
sweep_bounded $((devsz - 1))

log "--- 1.5 GiB of storage: the sweep stops at the bound"
sweep_bounded $((1536 * MIB))

log "--- copy_sweep=0: only what the writes asked for"
module_unload
module_load "$chunk256" copy_sweep=0
dense_snapshot "$store"
assert_eq "$(settle)" $((dense + 16)) "chunks kept without the sweep"
run stamp check "$img" --journal "$TEST_TMP/image"
run bsio snapshot-destroy "$SNAP_ID"
run bsio detach "$dev"

log "--- destroyed while a slow sweep runs: it stops at its next span"
module_unload
module_load "$chunk256"
# Each store held 1 s: the sweep's 32 store slots of 256 KiB make its
# copy of the device take minutes.
dm_delay sweep-slow "$store" "$(sectors "$store")" 0 1000
dense_snapshot /dev/mapper/sweep-slow
for ((i = 0; i < 300 && $(used_chunks) < dense + 16 + 64; i++)); do
	sleep 0.2
done
[ "$(used_chunks)" -ge $((dense + 16 + 64)) ] ||
	fail "the sweep did not start: $(used_chunks) chunks"
t0=$(date +%s)
run bsio snapshot-destroy "$SNAP_ID"
took=$(($(date +%s) - t0))
log "destroyed in $took s with the sweep under way"
[ "$took" -le 30 ] || fail "destroy took $took s: it waited for the sweep"
run bsio detach "$dev"
