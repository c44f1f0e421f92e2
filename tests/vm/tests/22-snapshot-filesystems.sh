#!/bin/bash
# A snapshot of a mounted, busy ext4 or xfs is a clean file system holding
# exactly the files as they were at the take: the take freezes the file
# system (a writer runs through it), the image mounts (xfs: nouuid) next to
# the original, its files match their pre-take checksums and fsck finds
# nothing, while the original has all the changes made after the take and
# is clean too.
# timeout: 420
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"
need_cmd mkfs.ext4 e2fsck mkfs.xfs xfs_repair sha256sum

read -r dev store <<<"$VM_DISKS"
mnt=$TEST_TMP/mnt
imnt=$TEST_TMP/image
mkdir -p "$mnt" "$imnt"
module_load
modprobe xfs 2>/dev/null || true
grep -qw xfs /proc/filesystems || fail "no xfs in this kernel"

# noise_writer DIR FLAG: create and delete files in DIR while FLAG exists.
noise_writer() {
	local i=0
	mkdir -p "$1"
	while [ -e "$2" ]; do
		dd if=/dev/urandom of="$1/n$((i % 16))" bs=64k count=$((RANDOM % 16 + 1)) \
			conv=fsync status=none
		rm -f "$1/n$(((i + 5) % 16))"
		i=$((i + 1))
	done
}

# one_fs FSTYPE MKFS_ARGS... : the whole story on one file system.
one_fs() {
	local fs=$1 opts='' img flag journal=$TEST_TMP/$1.journal
	shift
	log "--- $fs"
	"mkfs.$fs" "$@" "$dev" >/dev/null
	mount -t "$fs" "$dev" "$mnt"
	on_exit "! mountpoint -q $mnt || umount $mnt"
	make_files "$mnt/data" 40
	truncate -s 48M "$mnt/data/stamped"
	run stamp fill "$mnt/data/stamped" 1 --journal "$journal"
	sync
	sums "$mnt/data" >"$TEST_TMP/pre.sums"

	track "$dev"
	snap_create "$dev"
	snap_storage "$SNAP_ID" "$store" 0 "$(sectors "$store")"
	flag=$TEST_TMP/noise.run
	touch "$flag"
	noise_writer "$mnt/noise" "$flag" &
	local noise=$!
	on_exit "rm -f $flag; wait $noise 2>/dev/null; true"
	sleep 2
	snap_take "$SNAP_ID"
	sleep 1
	rm -f "$flag"
	wait "$noise" || fail "the writer failed across the take (freeze)"
	img=$(image_of "$dev")

	# Change everything after the take.
	change_files "$mnt/data"
	run stamp churn "$mnt/data/stamped" 2 8 --threads 2 --journal "$journal"
	rm -rf "$mnt/noise"
	sync
	sums "$mnt/data" >"$TEST_TMP/post.sums"
	cmp -s "$TEST_TMP/pre.sums" "$TEST_TMP/post.sums" && fail "the changes changed nothing"

	# The image: a clean file system with the pre-take files. It is
	# writable, so a journal replay, if any, is fine.
	[ "$fs" = xfs ] && opts=nouuid
	mount -t "$fs" ${opts:+-o "$opts"} "$img" "$imnt"
	on_exit "! mountpoint -q $imnt || umount $imnt"
	sums "$imnt/data" >"$TEST_TMP/image.sums"
	diff "$TEST_TMP/pre.sums" "$TEST_TMP/image.sums" >&2 ||
		fail "$fs: files on the image differ from those at the take"
	run stamp verify "$imnt/data/stamped" 1
	umount "$imnt"
	case "$fs" in
	ext4) run e2fsck -f -n "$img" ;;
	xfs) run xfs_repair -n "$img" ;;
	esac

	# The original: all the changes.
	sums "$mnt/data" | diff "$TEST_TMP/post.sums" - >&2 ||
		fail "$fs: files on the original changed under the image's use"
	run stamp check "$mnt/data/stamped" --journal "$journal"
	assert_eq "$(snap_info "$SNAP_ID" state)" taken "$fs: state at the end"
	run bsio snapshot-destroy "$SNAP_ID"
	umount "$mnt"
	case "$fs" in
	ext4) run e2fsck -f -n "$dev" ;;
	xfs) run xfs_repair -n "$dev" ;;
	esac
	run bsio detach "$dev"
}

one_fs ext4 -q -F
one_fs xfs -q -f
