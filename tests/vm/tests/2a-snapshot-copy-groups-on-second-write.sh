#!/bin/bash
# Copy groups (copy_group_shift=20, 256 KiB chunks): the first write into
# an aligned 1 MiB copies its chunk alone; a second write there, into
# another chunk, copies the rest of the group with it, once; a write
# across two groups is judged on each. With copy_group_eager the first
# write copies its whole group; once the writes have made copies of a
# sixteenth of the device's chunks (dense writes), and free storage could
# take half the rest, the first write copies a span of four groups. When
# free storage is near the low-space mark, or with copy_group_shift at the
# chunk size, only the chunks written are copied. In every case the image holds the take and
# the original what was written (checked by stamps). No write starts
# where the previous one ended, which would copy ahead for a sequential
# writer. The sweep that dense writes start is off here (test 2f).
# timeout: 300
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

# take STORAGE_SECTORS: a fresh snapshot of $dev over stamped data.
take() {
	snap_stamped "$dev" "$region" "$store" "$1"
	assert_eq "$chunk" 512 "chunk size in sectors (256 KiB)"
}

# write_expect SECTOR COUNT USED: write to the original, then expect USED
# sectors of storage in use.
write_expect() {
	run stamp write "$dev" 2 "$1" "$2" --journal "$TEST_TMP/orig"
	assert_eq "$(snap_info "$SNAP_ID" storage_used)" "$3" \
		"storage used after writing $2 sectors at $1"
}

check_both() {
	run stamp check "$img" --journal "$TEST_TMP/image"
	run stamp check "$dev" --journal "$TEST_TMP/orig"
	run bsio snapshot-destroy "$SNAP_ID"
	run bsio detach "$dev"
}

log "--- default: a second chunk written copies the rest of its group"
module_load "$chunk256"
take $((1024 * MIB))
write_expect $((5 * chunk + 3)) 8 "$chunk"            # chunk 5 alone
write_expect $((7 * chunk + 9)) 1 $((4 * chunk))     # chunk 7: group 4-7
write_expect $((6 * chunk)) "$chunk" $((4 * chunk))  # chunk 6: copied already
write_expect $((16 * chunk - 4)) 8 $((6 * chunk))    # chunks 15 and 16 alone
write_expect $((18 * chunk + 1)) 1 $((9 * chunk))    # chunk 18: group 16-19
check_both

# scatter: one 4 KiB write into the first chunk of each of $dense groups
# past the stamped region (1 MiB apart): each copies its chunk alone, the
# last makes the writes dense.
scatter() {
	nchunks=$(($(blockdev --getsz "$dev") / chunk))
	dense=$((nchunks / 16))
	scatter_writes "$dev" "$dense"
	assert_eq "$(snap_info "$SNAP_ID" storage_used)" $((dense * chunk)) \
		"storage used by $dense scattered writes"
}

log "--- dense writes, ample storage: 4 MiB spans go whole (no sweep)"
# The sweep (test 2f) would copy the rest of the device meanwhile.
module_unload
module_load "$chunk256" copy_sweep=0
take $((2048 * MIB))
scatter
write_expect $((5 * chunk + 3)) 8 $(((dense + 16) * chunk))  # span 0-15
write_expect $((21 * chunk)) 8 $(((dense + 32) * chunk))     # span 16-31
check_both

log "--- dense writes, storage for less than half the rest: chunks alone"
module_unload
module_load "$chunk256"
take $((1024 * MIB))
scatter
write_expect $((5 * chunk + 3)) 8 $(((dense + 1) * chunk))
check_both

log "--- storage near the low-space mark: only the chunks written"
# diff_storage_minimum (128 MiB) plus 4 chunks: the group does not fit.
take $((128 * MIB + 4 * chunk))
write_expect $((5 * chunk + 3)) 8 "$chunk"
write_expect $((7 * chunk + 9)) 1 $((2 * chunk))
check_both

log "--- copy_group_shift=18: only the chunks written"
module_unload
module_load "$chunk256" copy_group_shift=18
take $((1024 * MIB))
write_expect $((5 * chunk + 3)) 8 "$chunk"
write_expect $((7 * chunk + 9)) 1 $((2 * chunk))
write_expect $((16 * chunk - 4)) 8 $((4 * chunk))
check_both

log "--- copy_group_eager=1: the first chunk written copies its group"
module_unload
module_load "$chunk256" copy_group_eager=1
take $((1024 * MIB))
write_expect $((5 * chunk + 3)) 8 $((4 * chunk))
write_expect $((7 * chunk + 9)) 1 $((4 * chunk))
write_expect $((16 * chunk - 4)) 8 $((12 * chunk))
check_both
