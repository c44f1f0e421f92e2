#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# blksnapd killed with SIGKILL while a snapshot is being written to, and
# restarted: it adopts what the kernel still has (a taken snapshot and one
# not taken yet, with their owner, state, storage files; the taken one's
# image intact, the other can still be taken), adopts a storage file of a
# live snapshot the state file missed, and removes an orphan storage file.
# The spare files (allocated ahead, named in the state file, never
# appended) are removed and new ones allocated.
# Killed again and the module reloaded in between (the kernel's snapshots
# gone): the restarted daemon forgets them and removes all their storage
# files.
# timeout: 240
set -eu
# shellcheck source=../lib.sh
. "$BLKSNAP_SRC/tests/vm/lib.sh"
# shellcheck source=../service-lib.sh
. "$BLKSNAP_SRC/tests/vm/service-lib.sh"
need_cmd fio sfdisk wipefs

read -r disk store_disk <<<"$VM_DISKS"
MiB=$((1 << 20))
module_load
on_exit module_unload
printf 'label: gpt\nstart=2048, size=524288\nstart=526336, size=524288\n' | sfdisk -q "$disk"
on_exit "wipefs -q -a $disk; blockdev --rereadpt $disk"
blockdev --rereadpt "$disk"
p1=${disk}1 p2=${disk}2
[ -b "$p2" ] || fail "partition $p2 did not appear"
svc_storage "$store_disk"
svc_config	# 256 MiB each: far from the low-space threshold (128 MiB)
svc_bus
svc_start

run dd if=/dev/urandom of="$p1" bs=1M count=16 oflag=direct status=none
before=$(head -c $((16 * MiB)) "$p1" | sha256sum | cut -d' ' -f1)
svc_call "$SVC_MANAGER" Manager.TrackDevice "$p1" '{}' >/dev/null
svc_call "$SVC_MANAGER" Manager.TrackDevice "$p2" '{}' >/dev/null
a=$(svc_create "['$p1']" '{}')
b=$(svc_create "['$p2']" "{'take': <false>}")
a_id=$(svc_prop "$a" Snapshot Id | cut -d' ' -f2 | tr -d '"')
b_id=$(svc_prop "$b" Snapshot Id | cut -d' ' -f2 | tr -d '"')
props() { # OBJECT: what must survive a restart
	for p in Id Owner State Devices CreationTime StorageAllocated StorageLimit GrowStep; do
		svc_prop "$1" Snapshot $p
	done
}
a_props=$(props "$a")
b_props=$(props "$b")
files=$(appended_files)
assert_eq "$(wc -l <<<"$files")" 2 "storage files of the two snapshots"
spares=$(spare_files)
assert_eq "$(wc -l <<<"$spares")" 2 "spare files of the two snapshots"
for f in $spares; do [ -f "$f" ] || fail "the spare $f named in the state file is not there"; done

# 1. SIGKILL in the middle of writes to the taken snapshot's device
fio --name=w --filename="$p1" --rw=write --bs=64k --size=32m --rate=8m --direct=1 \
	--ioengine=psync --output="$TEST_TMP/fio.out" &
fio=$!
sleep 1.5
svc_stop KILL
log "blksnapd killed during the writes"
wait $fio || fail "fio failed: $(cat "$TEST_TMP/fio.out")"
orphan=$SVC_STORE/0123456789abcdef0123456789abcdef-0-1.blksnap
missed=$SVC_STORE/${a#"$SVC_ROOT"/snapshots/}-7-1.blksnap
for f in "$orphan" "$missed"; do
	head -c $MiB /dev/zero >"$f"
	chmod 600 "$f"
done

svc_start
grep -E 'adopt|orphan|gone' "$SVC_LOG" || true
assert_eq "$(props "$a")" "$a_props" "properties of the taken snapshot after the restart"
assert_eq "$(props "$b")" "$b_props" "properties of the created snapshot after the restart"
[ ! -e "$orphan" ] || fail "the orphan storage file is still there"
assert_eq "$(appended_files)" "$(sort <<<"$files
$missed")" "storage files after the restart (the missed one adopted)"
grep -q "adopting storage file $missed" "$SVC_LOG" || fail "the missed file was not adopted"
for f in $spares; do
	[ ! -e "$f" ] || fail "the unused spare $f is still there"
	grep -q "removing unused spare $f" "$SVC_LOG" || fail "nothing logged about the spare $f"
done
for _ in $(seq 100); do
	[ "$(spare_files | wc -l)" = 2 ] && [ "$(grep -c '^Spares=/' "$SVC_STATE")" = 2 ] && break
	sleep 0.1
done
assert_eq "$(spare_files | wc -l)" 2 "spare files allocated again after the restart"
for id in "$a_id" "$b_id"; do grep -q "$id" "$SVC_STATE" || fail "$id not in the state file"; done
image=$("$SVC_OPEN_IMAGE" "$a" "$p1" $((16 * MiB)) | sha256sum | cut -d' ' -f1)
assert_eq "$image" "$before" "the adopted snapshot's image"
svc_call "$b" Snapshot.Take '{}' >/dev/null
assert_eq "$(svc_prop "$b" Snapshot State)" 's "taken"' "State of the adopted snapshot after Take"
# the adopted snapshots are watched: a growth by hand works and is recorded
svc_call "$a" Snapshot.AppendStorage "uint64 $((8 * MiB))" '{}' >/dev/null
assert_eq "$(appended_files | wc -l)" 4 "storage files after a growth"

# 2. killed again; the module reloaded meanwhile: the kernel's snapshots are gone
svc_stop KILL
module_unload
module_load
[ -z "$("$BSIOCTL" snapshot-list)" ] || fail "the reloaded module has snapshots"
svc_start
grep -E 'gone from the kernel' "$SVC_LOG" || fail "nothing logged about the vanished snapshots"
case "$(svc_objects)" in *snapshots/*) fail "vanished snapshots still exported: $(svc_objects)" ;; esac
assert_eq "$(storage_files | wc -l)" 0 "storage files after the restart"
for id in "$a_id" "$b_id"; do
	grep -q "$id" "$SVC_STATE" && fail "$id still in the state file"
done
ls -A "$SVC_STORE"
assert_eq "$(ls -A "$SVC_STORE" | wc -l)" 0 "files in the storage directory"
