# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# Helpers for the snapshot tests, on top of lib.sh and cbt-lib.sh.
#
# A typical test:
#   track "$dev"                          attach; detached at exit
#   snap_create "$dev"                    SNAP_ID; destroyed at exit
#   snap_storage "$SNAP_ID" /dev/vdc 0 $((1024 * MIB))
#   snap_take "$SNAP_ID"
#   img=$(image_of "$dev")                /dev/blksnap-image_M:m
# and stamp (tests/vm/stamp.c) to fill, churn, verify and check devices.

STAMP=${BLKSNAP_BUILD:-}/tests/vm/stamp
# shellcheck disable=SC2034 # used by the tests
MIB=2048	# sectors in a MiB

stamp() { "$STAMP" "$@"; }

# sectors DEV: size of a block device in 512-byte sectors.
sectors() { blockdev --getsz "$1"; }

# track DEV...: attach trackers; each is detached at exit if still there.
track() {
	local d
	for d in "$@"; do
		run bsio attach "$d"
		on_exit "! tracked $d 2>/dev/null || bsio detach $d"
	done
}

# snap_exists ID: the module is loaded and lists snapshot ID.
snap_exists() {
	module_loaded && bsio snapshot-list 2>/dev/null | grep -qx "$1"
}

# snap_destroy_if ID: destroy snapshot ID unless it is gone already.
snap_destroy_if() {
	! snap_exists "$1" || bsio snapshot-destroy "$1"
}

# snap_create DEV...: create a snapshot of the tracked DEVs; its ID goes to
# SNAP_ID. It is destroyed at exit (before the trackers are detached, if
# they were attached first).
snap_create() {
	local d
	SNAP_ID=$(bsio snapshot-create) || fail "snapshot-create failed"
	[[ $SNAP_ID =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] ||
		fail "snapshot-create printed '$SNAP_ID'"
	on_exit "snap_destroy_if $SNAP_ID"
	for d in "$@"; do
		run bsio snapshot-add "$SNAP_ID" "$d"
	done
}

# snap_storage ID DEV SECTOR COUNT [SECTOR COUNT]...: append raw ranges.
snap_storage() {
	run bsio snapshot-append "$@"
}

# snap_storage_split ID DEV FIRST N SIZE GAP: N ranges of SIZE sectors from
# sector FIRST, GAP sectors apart, in one request.
snap_storage_split() {
	local id=$1 dev=$2 first=$3 n=$4 size=$5 gap=$6 i args=()
	for ((i = 0; i < n; i++)); do
		args+=($((first + i * (size + gap))) "$size")
	done
	run bsio snapshot-append "$id" "$dev" "${args[@]}"
}

# dm_delay NAME DEV SECTORS READ_MS WRITE_MS: /dev/mapper/NAME over the
# first SECTORS of DEV, holding each read and write that long; removed at
# exit. Loads dm-delay.
dm_delay() {
	modprobe dm-delay || fail "cannot load dm-delay"
	echo "0 $3 delay $2 0 $4 $2 0 $5" | dmsetup create "$1" --noudevsync
	on_exit "dmsetup remove --noudevsync $1"
	dmsetup mknodes "$1"
	[ -b "/dev/mapper/$1" ] || fail "/dev/mapper/$1 did not appear"
}

# snap_take ID: take it; it must be taken, without error, afterwards.
snap_take() {
	run bsio snapshot-take "$1"
	assert_eq "$(snap_info "$1" state)" taken "state of $1 after the take"
	assert_eq "$(snap_info "$1" error)" 0 "error of $1 after the take"
}

# snap_stamped DEV REGION STORE_DEV STORE_SECTORS: a fresh snapshot of
# DEV over data stamped with generation 1 in its first REGION sectors
# (journals: $TEST_TMP/orig for DEV, $TEST_TMP/image for its image), with
# the first STORE_SECTORS of STORE_DEV as storage. Sets SNAP_ID, img (the
# image node) and chunk (the chunk size in sectors).
snap_stamped() {
	run stamp fill "$1" 1 --region "0:$2" --journal "$TEST_TMP/orig"
	cp "$TEST_TMP/orig" "$TEST_TMP/image"
	track "$1"
	snap_create "$1"
	snap_storage "$SNAP_ID" "$3" 0 "$4"
	snap_take "$SNAP_ID"
	# shellcheck disable=SC2034 # set for the tests
	img=$(image_of "$1")
	# shellcheck disable=SC2034
	chunk=$(($(image_info "$1" chunk_size) / 512))
}

# scatter_writes DEV N: one 4 KiB write at the start of each of N MiB
# from 64 MiB on, so that no write continues the one before.
scatter_writes() {
	run fio --name=scatter --filename="$1" --rw=write:1020k --bs=4k \
		--direct=1 --offset=64m --number_ios="$2" --size="$2"m \
		--output=/dev/null
}

# snap_info ID KEY: one line of "blksnap-ioctl snapshot-info ID".
snap_info() {
	bsio snapshot-info "$1" | awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print }'
}

# image_info DEV KEY: one line of "blksnap-ioctl image-info DEV".
image_info() {
	bsio image-info "$1" | awk -v k="$2" '$1 == k { print $2 }'
}

# image_of DEV: the node of DEV's image, once it is there (no udev in the
# guest: devtmpfs makes it).
image_of() {
	local name
	name=$(image_info "$1" name)
	[ -n "$name" ] || fail "no image name for $1"
	case "$name" in blksnap-image_*) ;; *) fail "image of $1 is called '$name'" ;; esac
	wait_for "-b /dev/$name" 10 || fail "/dev/$name did not appear"
	assert_eq "$(dev_number "/dev/$name")" "$(image_info "$1" image)" "device number of /dev/$name"
	echo "/dev/$name"
}

# wait_for TEST SECONDS: poll [ TEST ] (word-split) every 0.2 s.
wait_for() {
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		# shellcheck disable=SC2086
		[ $1 ] && return 0
		sleep 0.2
	done
	return 1
}

# assert_cn DEV NUMBER: DEV's current CBT change number.
assert_cn() {
	assert_eq "$(cbt_info "$1" changes_number)" "$2" "change number of $1"
}

# assert_marked_exactly DEV NUMBER JOURNAL:GEN...: the CBT map of DEV holds
# exactly the tracking blocks of the sectors that the JOURNALs have with
# generation GEN (what churns and writes wrote), each with change number
# NUMBER.
assert_marked_exactly() {
	local dev=$1 number=$2 bs jg
	shift 2
	bs=$(cbt_info "$dev" block_size)
	for jg in "$@"; do
		stamp ranges "${jg%:*}" "${jg##*:}"
	done | awk -v bs="$bs" '{
		for (b = int($1 * 512 / bs); b <= int((($1 + $2) * 512 - 1) / bs); b++)
			print b
	}' >"$TEST_TMP/marked.want"
	[ -s "$TEST_TMP/marked.want" ] || fail "the journals have no sector of $*"
	assert_blocks "$dev" "$number" "$TEST_TMP/marked.want"
}

# image_fails_io IMG: reads and writes of IMG fail with EIO.
image_fails_io() {
	local img=$1 out skip last=$(($(sectors "$1") / 8 - 1))
	for skip in 0 $((last / 2)) "$last"; do
		out=$(dd if="$img" of=/dev/null bs=4096 count=1 skip="$skip" iflag=direct 2>&1) &&
			fail "read of block $skip of $img succeeded"
		case "$out" in *"Input/output error"*) ;; *) fail "read of $img: $out" ;; esac
	done
	out=$(dd if=/dev/zero of="$img" bs=4096 count=1 seek=1 oflag=direct conv=notrunc 2>&1) &&
		fail "write to $img succeeded"
	case "$out" in *"Input/output error"*) ;; *) fail "write to $img: $out" ;; esac
}

# held_read_fails FD: a read through FD, an open descriptor of an image
# that was torn down, fails or finds nothing (capacity 0), in time.
held_read_fails() {
	local out
	out=$(timeout 30 dd bs=4096 count=1 iflag=direct of="$TEST_TMP/held.out" <&"$1" 2>&1) &&
		[ -s "$TEST_TMP/held.out" ] &&
		{ echo "a read through the descriptor returned data: $out"; return 1; }
	case "$out" in
	*"Input/output error"* | *"No such device"* | *"0+0 records in"*) return 0 ;;
	esac
	echo "unexpected outcome of a read through the descriptor: $out"
	return 1
}

# watch_events ID FILE: in the background (WATCH_PID), write the events of
# snapshot ID to FILE until a corruption event or until it is destroyed.
watch_events() {
	(
		while out=$(bsio wait-event "$1" 60000); do
			echo "$out"
			case "$out" in corrupted*) break ;; esac
		done
	) >"$2" 2>&1 &
	WATCH_PID=$!
	on_exit "kill $WATCH_PID 2>/dev/null; wait $WATCH_PID 2>/dev/null; true"
}

# ---------------------------------------------------------------- files

# make_files DIR N: N files of 1 KiB to 2 MiB of random data in a few
# subdirectories, a sparse file, a symlink.
make_files() {
	local dir=$1 n=$2 i sub=(a b b/c)
	mkdir -p "$dir"/a "$dir"/b/c
	for ((i = 0; i < n; i++)); do
		head -c $(((RANDOM % 2048 + 1) * 1024)) /dev/urandom \
			>"$dir/${sub[i % 3]}/f$(printf %03d "$i")"
	done
	truncate -s 24M "$dir/sparse"
	head -c 12345 /dev/urandom | dd of="$dir/sparse" bs=1M seek=15 conv=notrunc status=none
	ln -s a/f000 "$dir/link"
}

# change_files DIR: rewrite, append to, truncate, delete, create and rename.
change_files() {
	local dir=$1 f i=0
	for f in "$dir"/a/* "$dir"/b/* "$dir"/b/c/*; do
		[ -f "$f" ] || continue
		case $((i++ % 5)) in
		0) head -c 4096 /dev/urandom | dd of="$f" bs=512 seek=3 conv=notrunc status=none ;;
		1) head -c 100000 /dev/urandom >>"$f" ;;
		2) truncate -s 777 "$f" ;;
		3) rm -f "$f" ;;
		4) head -c 65536 /dev/urandom >"$f" ;;
		esac
	done
	mv "$dir/b/c" "$dir/moved"
	head -c $((20 * 1024 * 1024)) /dev/urandom >"$dir/new"
	head -c 999 /dev/urandom | dd of="$dir/sparse" bs=1M seek=10 conv=notrunc status=none
}

# sums DIR: sha256 of every file under DIR (relative names, sorted), and
# where the symlinks point.
sums() {
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum &&
		find . -type l -printf '%p -> %l\n' | sort)
}
