#!/bin/bash
# Writes to a snapshot image stay on the image, with chunks of 256 KiB (the
# default), 4 KiB and 1 MiB: at chunk-unaligned places (the first and last
# sector, across chunk boundaries, part of a chunk, buffered and O_DIRECT)
# they read back from the image and never show on the original; writes to
# the original never show on the image. Both orders on one chunk (image
# first, original first) keep both sides right, and so do writers on both
# at once. CBT marks the blocks written on either side. Destroying the
# snapshot leaves the original as written.
# timeout: 420
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"

read -r dev store <<<"$VM_DISKS"
size=$(sectors "$dev")
tail=$((size - 8 * MIB))
module_unload
on_exit "module_unload; module_load"

# one_round CHUNK_SHIFT: the whole story with chunks of 2^CHUNK_SHIFT bytes.
one_round() {
	local orig=$TEST_TMP/orig.$1 image=$TEST_TMP/image.$1 img chunk cn c
	module_unload
	module_load "chunk_minimum_shift=$1"
	log "--- chunks of $((1 << $1)) bytes"

	# Generation 1 on the first 512 MiB and the last 8 MiB.
	run stamp fill "$dev" 1 --region 0:$((512 * MIB)) --journal "$orig"
	run stamp fill "$dev" 1 --region "$tail:$((8 * MIB))" --journal "$orig"
	cp "$orig" "$image"
	track "$dev"
	cn=$(cbt_info "$dev" changes_number)
	snap_create "$dev"
	snap_storage "$SNAP_ID" "$store" 0 "$(sectors "$store")"
	snap_take "$SNAP_ID"
	img=$(image_of "$dev")
	assert_eq "$(image_info "$dev" chunk_size)" $((1 << $1)) "chunk size"
	chunk=$(((1 << $1) / 512))
	c=$((chunk > 8 ? chunk : 8))	# at least a page apart

	# on_image GEN SECTOR COUNT [--buffered], on_orig likewise.
	on_image() { run stamp write "$img" "$1" "$2" "$3" --journal "$image" "${@:4}"; }
	on_orig() { run stamp write "$dev" "$1" "$2" "$3" --journal "$orig" "${@:4}"; }

	on_image 3 0 1                                    # first sector
	on_image 3 $((size - 1)) 1                        # last sector
	on_image 3 $((4 * chunk - 1)) 2                   # across chunks 3/4
	on_image 3 $((10 * chunk + chunk / 2 + 1)) "$chunk"  # mid-chunk 10 into 11
	on_image 3 $((20 * c + 5)) 3 --buffered           # page cache of the image
	on_image 3 $((23 * c - 3)) $((2 * chunk + 7)) --buffered
	on_image 3 $((size - 2 * chunk - 3)) $((chunk + 5))  # near the end
	# Chunk at 30c: the image writes first, then the original elsewhere in
	# it. At 40c: the other way round. At 50c: both write one sector.
	on_image 3 $((30 * c + 1)) 1
	on_orig 2 $((30 * c + c - 1)) 1
	on_orig 2 $((40 * c + 1)) 1
	on_image 3 $((40 * c + c - 1)) 1
	on_orig 2 $((50 * c + 3)) 1
	on_image 3 $((50 * c + 3)) 1
	on_image 4 $((50 * c + 3)) 1
	run stamp check "$img" --journal "$image"
	run stamp check "$dev" --journal "$orig"

	# Writers on both at once, over the first 512 MiB.
	stamp churn "$img" 5 10 --threads 2 --region 0:$((512 * MIB)) \
		--journal "$image" >"$TEST_TMP/churn-image.out" 2>&1 &
	local churn_img=$!
	on_exit "kill $churn_img 2>/dev/null; wait $churn_img 2>/dev/null; true"
	stamp churn "$dev" 6 10 --threads 2 --region 0:$((512 * MIB)) \
		--journal "$orig" >"$TEST_TMP/churn-orig.out" 2>&1 ||
		{ cat "$TEST_TMP/churn-orig.out"; fail "a write to the original failed"; }
	wait "$churn_img" || { cat "$TEST_TMP/churn-image.out"; fail "a write to the image failed"; }
	cat "$TEST_TMP/churn-image.out" "$TEST_TMP/churn-orig.out"

	assert_eq "$(snap_info "$SNAP_ID" state)" taken "state after the writes"
	run stamp check "$img" --journal "$image"
	run stamp check "$dev" --journal "$orig"
	# CBT marks exactly the blocks written since the take, on the
	# original and on the image (the image no longer shows the take there
	# either).
	assert_marked_exactly "$dev" $((cn + 1)) "$orig:2" "$orig:6" \
		"$image:3" "$image:4" "$image:5"

	# Destroy: the image's writes go with it, the original stays.
	run bsio snapshot-destroy "$SNAP_ID"
	wait_for "! -e $img" 10 || fail "$img still there after destroy"
	run stamp check "$dev" --journal "$orig"
	run bsio detach "$dev"
}

one_round 18
one_round 12
one_round 20
