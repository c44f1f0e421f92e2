#!/bin/bash
# Image disks are allocated when a device is added to a snapshot and only
# registered by the take: a snapshot destroyed before its take frees them
# as one destroyed after it does. Counted by the kernel's block-device inodes
# (the bdev_cache slab: one per disk, registered or not): 2 x 120 untaken
# disks, then 2 x 20 taken ones, leave the count where it was, and no
# image disk is left in /sys/block.
# timeout: 600
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"
need_loop

read -r a b <<<"$VM_DISKS"
[ -r /proc/slabinfo ] || fail "no /proc/slabinfo on this kernel"
grep -q '^bdev_cache ' /proc/slabinfo || fail "no bdev_cache in /proc/slabinfo"
module_load
track "$a" "$b"

# Objects in use in bdev_cache, once freed inodes have gone through RCU.
bdev_inodes() {
	sync
	echo 2 >/proc/sys/vm/drop_caches
	sleep 1
	awk '$1 == "bdev_cache" { print $2 }' /proc/slabinfo
}

# snapshots N [STORAGE]: N snapshots of both devices, each destroyed; with
# STORAGE (a device), each is taken first and must have its images.
snapshots() {
	local n=$1 storage=${2:-} i id
	for ((i = 0; i < n; i++)); do
		id=$(bsio snapshot-create)
		bsio snapshot-add "$id" "$a"
		bsio snapshot-add "$id" "$b"
		if [ -n "$storage" ]; then
			bsio snapshot-append "$id" "$storage" 0 "$(sectors "$storage")"
			bsio snapshot-take "$id"
			[ -n "$(image_info "$b" name)" ] ||
				fail "round $i: no image of $b after the take"
		fi
		bsio snapshot-destroy "$id"
	done
}

# A leak of one disk per device and round shows as 2 per round (checked
# with a module that leaks them: +380 for 400 disks); a few dozen may be
# freed objects that the per-CPU slabs still count as in use (+20 for 400).
# expect_freed BEFORE WHAT: bdev_cache is back near BEFORE.
expect_freed() {
	after=$(bdev_inodes)
	log "bdev_cache in use: $1 before, $after after $2"
	[ "$after" -le $(($1 + 100)) ] || fail "$2: image disks not freed ($1 -> $after)"
}

before=$(bdev_inodes)
snapshots 120
expect_freed "$before" "120 untaken snapshots of two devices"

truncate -s 64M "$TEST_TMP/storage"
loopdev=$(losetup -f --show "$TEST_TMP/storage")
on_exit "losetup -d $loopdev"
before=$after
snapshots 20 "$loopdev"
expect_freed "$before" "20 taken snapshots of two devices"
left=$(find /sys/block -maxdepth 1 -name 'blksnap-image_*' | wc -l)
assert_eq "$left" 0 "image disks left in /sys/block"
