#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# blksnapctl backup as an unprivileged user, allowed by polkit alone: with
# the shipped example rules file (policy/50-blksnap-backup-group.rules.example
# in /etc/polkit-1/rules.d), a member of the group "backup" runs a full and
# then an incremental backup of a device root tracks, into a directory of
# its own, and restores both points to images equal (SHA-256) to the
# device as it was at each backup. A user outside the group gets
# "not authorized" (exit status 3, naming the refused action) and leaves
# nothing behind: no snapshot in the service or the kernel, no storage
# file, no backup directory. Without the rules file even the group member
# is refused in the same way.
# timeout: 600
set -eu
# shellcheck source=../lib.sh
. "$BLKSNAP_SRC/tests/vm/lib.sh"
# shellcheck source=../service-lib.sh
. "$BLKSNAP_SRC/tests/vm/service-lib.sh"
# shellcheck source=../backup-lib.sh
. "$BLKSNAP_SRC/tests/vm/backup-lib.sh"

need_cmd sfdisk python3 sha256sum blockdev
ctl=$BLKSNAP_BUILD/client/blksnapctl
[ -x "$ctl" ] || fail "blksnapctl not built"
MiB=$((1 << 20))
RULES=/etc/polkit-1/rules.d/50-blksnap-backup-group.rules
sum() { sha256sum "$1" | cut -d' ' -f1; }

read -r disk store_disk <<<"$VM_DISKS"
module_load
on_exit module_unload

# a 128 MiB partition full of random data
bk_partition "$disk" 128
dev=$BK_DEV
run dd if=/dev/urandom of="$dev" bs=1M count=128 oflag=direct status=none

svc_storage "$store_disk"
svc_config
svc_bus
svc_start
svc_user bs-backup backup
svc_user bs-stranger
# the users reach their directories on the backup disk (TEST_TMP is 0700)
chmod 0711 "$TEST_TMP" "$TEST_TMP/store"
for u in bs-backup bs-stranger; do
	install -d -m 0700 -o "$u" "$TEST_TMP/store/$u"
done
ubackups=$TEST_TMP/store/bs-backup/backups
sbackups=$TEST_TMP/store/bs-stranger/backups

# tracking devices stays with root, as the rules file says
"$ctl" track "$dev"

# nothing_left WHAT: no snapshot (service, kernel), no storage file
nothing_left() {
	assert_eq "$("$ctl" snapshot list --json | jget 'len(d)')" 0 "snapshots in the service $1"
	[ -z "$("$BSIOCTL" snapshot-list)" ] || fail "a kernel snapshot is left $1"
	assert_eq "$(storage_files | wc -l)" 0 "storage files $1"
}
# refused USER DIR: the backup fails with "not authorized", exit status 3
refused() {
	local rc=0 out
	out=$(as_user "$1" "$ctl" backup "$dev" --to "$2" 2>&1) || rc=$?
	printf '%s\n' "$out"
	assert_eq "$rc" 3 "exit status of $1's refused backup"
	case $out in
	*"not authorized"*"org.blksnap.BlkSnap1.create-snapshot"*) ;;
	*) fail "$1: the message does not say \"not authorized\" for create-snapshot: $out" ;;
	esac
	nothing_left "after $1's refused backup"
	[ ! -e "$2" ] || fail "$1's refused backup left $2: $(find "$2")"
}

# Before the rules file: the group alone gives nothing.
log "without the rules file: the group member is refused"
refused bs-backup "$ubackups"

install -m 0644 "$BLKSNAP_SRC/policy/50-blksnap-backup-group.rules.example" "$RULES"
on_exit "rm -f '$RULES'"
svc_polkit_stop
svc_polkit_start

log "with the rules file: a user outside the group is refused"
refused bs-stranger "$sbackups"

# --- point 1: full --------------------------------------------------------
sum1=$(sum "$dev")
log "the backup group: a full backup of $dev"
as_user bs-backup "$ctl" backup "$dev" --to "$ubackups" --json >"$TEST_TMP/p1.json" ||
	fail "the backup group's full backup failed"
cat "$TEST_TMP/p1.json"
assert_eq "$(jget "d['devices'][0]['type']" <"$TEST_TMP/p1.json")" full "type of point 1"
assert_eq "$(jget "d['devices'][0]['checksum']" <"$TEST_TMP/p1.json")" xxh3-128 "checksum of point 1"
assert_eq "$(sum "$dev")" "$sum1" "the device did not change during the backup"
nothing_left "after the group's full backup"
assert_eq "$(stat -c %U "$ubackups/0001/manifest.json")" bs-backup "owner of the point"

# --- point 2: incremental after writes at known places ---------------------
for off in 3 17 64 100 127; do
	run dd if=/dev/urandom of="$dev" bs=1M seek=$off count=1 oflag=direct conv=notrunc status=none
done
sum2=$(sum "$dev")
[ "$sum2" != "$sum1" ] || fail "the writes changed nothing"
log "the backup group: an incremental backup after 5 MiB of writes"
as_user bs-backup "$ctl" backup "$dev" --to "$ubackups" --json >"$TEST_TMP/p2.json" ||
	fail "the backup group's incremental backup failed"
cat "$TEST_TMP/p2.json"
assert_eq "$(jget "d['devices'][0]['type']" <"$TEST_TMP/p2.json")" incremental "type of point 2"
read2=$(jget "d['devices'][0]['bytes-read']" <"$TEST_TMP/p2.json")
[ "$read2" -ge $((5 * MiB)) ] && [ "$read2" -le $((6 * MiB)) ] ||
	fail "the incremental read $read2 bytes for 5 MiB written"
nothing_left "after the group's incremental backup"

# --- restore both, as the user ---------------------------------------------
as_user bs-backup "$ctl" restore "$ubackups@1" --to "$TEST_TMP/store/bs-backup/r1.img" --quiet ||
	fail "restore of point 1 failed"
as_user bs-backup "$ctl" restore "$ubackups" --to "$TEST_TMP/store/bs-backup/r2.img" --quiet ||
	fail "restore of point 2 failed"
assert_eq "$(sum "$TEST_TMP/store/bs-backup/r1.img")" "$sum1" "restored point 1 against the device at backup 1"
assert_eq "$(sum "$TEST_TMP/store/bs-backup/r2.img")" "$sum2" "restored point 2 against the device at backup 2"
log "restored points 1 and 2 equal the device at each backup"

# the stranger, once more after the group's backups: still nothing
refused bs-stranger "$sbackups"
"$ctl" untrack "$dev"
