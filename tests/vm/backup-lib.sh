# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Sourced (after lib.sh) by the VM tests of blksnapctl backups
# (tests/vm/tests/4*.sh) and by the backup benchmark
# (bench/guest/backup*.sh).
#
#   bk_partition DISK MIB      one partition of MIB MiB on DISK, from 1 MiB
#                              on; sets BK_DEV to its node
#   bk_random_writes DEV N BS  N random 4 KiB writes on DEV (O_DIRECT);
#                              sets BK_CHANGED to the bytes of the distinct
#                              tracking blocks (BS bytes) they touched
#   jget EXPR                  EXPR in Python over d, the JSON on stdin

bk_partition() { # DISK MIB
	echo "start=2048, size=$(($2 * 2048)), type=83" | sfdisk -q --wipe always "$1" >/dev/null
	blockdev --rereadpt "$1" 2>/dev/null || true
	BK_DEV=${1}1
	local _
	for _ in $(seq 50); do [ -b "$BK_DEV" ] && return 0; sleep 0.1; done
	fail "$BK_DEV did not appear"
}

bk_random_writes() { # DEV N BS
	local cap off _
	cap=$(blockdev --getsize64 "$1")
	: >"$TEST_TMP/bk-blocks"
	for _ in $(seq "$2"); do
		off=$(((RANDOM * 32768 + RANDOM) % (cap / 4096)))
		dd if=/dev/urandom of="$1" bs=4096 seek=$off count=1 oflag=direct conv=notrunc \
			status=none
		echo $((off * 4096 / $3)) >>"$TEST_TMP/bk-blocks"
	done
	BK_CHANGED=$(($(sort -un "$TEST_TMP/bk-blocks" | wc -l) * $3))
}

jget() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
