#!/bin/bash
# When the difference storage overflows, only the snapshot suffers: it
# turns corrupted with -ENOSPC (state, image info, a CORRUPTED event naming
# the device), its image fails reads and writes with EIO, while every
# write to the original succeeds and the original holds exactly what was
# written. The device can be snapshotted afresh once it is destroyed.
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"

read -r dev store <<<"$VM_DISKS"
journal=$TEST_TMP/journal
region=$((512 * MIB))
module_load

run stamp fill "$dev" 1 --region 0:$region --journal "$journal"
track "$dev"
cn=$(cbt_info "$dev" changes_number)
snap_create "$dev"
snap_storage "$SNAP_ID" "$store" 0 $((16 * MIB))
snap_take "$SNAP_ID"
img=$(image_of "$dev")
name=${img#/dev/}

# Collect the events until the corruption (a low-space one may come first).
events=$TEST_TMP/events
watch_events "$SNAP_ID" "$events"

# Far more writes than 16 MiB of storage can take. None may fail.
run stamp churn "$dev" 2 20 --threads 4 --region 0:$region --journal "$journal"
wait_for "! -d /proc/$WATCH_PID" 30 || fail "no corruption event: $(cat "$events")"
cat "$events"
grep -qx "corrupted dev=$(dev_number "$dev") error=-28" "$events" ||
	fail "no CORRUPTED event with -ENOSPC for $(dev_number "$dev")"
assert_eq "$(snap_info "$SNAP_ID" state)" corrupted "state after the overflow"
assert_eq "$(snap_info "$SNAP_ID" error)" -28 "snapshot error after the overflow"
assert_eq "$(image_info "$dev" error)" -28 "image error after the overflow"

# The original: every write, nothing else.
run stamp check "$dev" --journal "$journal"
assert_cn "$dev" $((cn + 1))
assert_marked_exactly "$dev" $((cn + 1)) "$journal:2"

# The image: EIO, in copied chunks and in untouched ones alike.
image_fails_io "$img"
stamp verify "$img" 1 --region 0:$((64 * MIB)) >"$TEST_TMP/verify.out" 2>&1 &&
	fail "the corrupted image verified"
grep -q "Input/output error" "$TEST_TMP/verify.out" ||
	fail "reading the image failed otherwise than with EIO: $(head -3 "$TEST_TMP/verify.out")"

# Destroy, then a new snapshot sees the original as it is now.
run bsio snapshot-destroy "$SNAP_ID"
wait_for "! -e /dev/$name" 10 || fail "/dev/$name still there after destroy"
snap_create "$dev"
snap_storage "$SNAP_ID" "$store" 0 "$(sectors "$store")"
snap_take "$SNAP_ID"
assert_cn "$dev" $((cn + 2))
img=$(image_of "$dev")
run stamp check "$img" --journal "$journal"
run bsio snapshot-destroy "$SNAP_ID"
