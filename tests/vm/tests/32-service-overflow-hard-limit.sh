#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A snapshot whose storage limit is far below what is written overflows:
# the daemon grows it up to the limit and no further, then the snapshot
# turns "corrupted" (State, Error -ENOSPC) and a Corrupted signal names the
# device; every write to the original succeeds and the original holds
# exactly what was written; Destroy removes the storage files.
# timeout: 240
set -eu
# shellcheck source=../lib.sh
. "$BLKSNAP_SRC/tests/vm/lib.sh"
# shellcheck source=../service-lib.sh
. "$BLKSNAP_SRC/tests/vm/service-lib.sh"

read -r disk store_disk <<<"$VM_DISKS"
MiB=$((1 << 20))
size=128	# MiB written over the device
module_load	# default diff_storage_minimum (128 MiB): low space at once
on_exit module_unload
svc_storage "$store_disk"
svc_config
svc_bus
svc_start

gdbus monitor --system --dest "$SVC_NAME" >"$TEST_TMP/monitor" 2>&1 &
mon=$!
on_exit "kill $mon 2>/dev/null || true"
sleep 1

svc_call "$SVC_MANAGER" Manager.TrackDevice "$disk" '{}' >/dev/null
dev=$(lsblk -dno MAJ:MIN "$disk" | tr -d ' ')
snap=$(svc_create "['$disk']" "{'initial-size': <uint64 $((8 * MiB))>, \
'grow-step': <uint64 $((8 * MiB))>, 'limit': <uint64 $((16 * MiB))>}")
log "snapshot $snap of $dev"
assert_eq "$(svc_prop "$snap" Snapshot StorageLimit)" "t $((16 * MiB))" "StorageLimit"

# far more than 16 MiB of copies; none of the writes may fail
head -c $((size * MiB)) /dev/urandom >"$TEST_TMP/data"
want=$(sha256sum <"$TEST_TMP/data" | cut -d' ' -f1)
run dd if="$TEST_TMP/data" of="$disk" bs=1M oflag=direct conv=fsync status=none

for _ in $(seq 50); do
	grep -q "Snapshot.Corrupted" "$TEST_TMP/monitor" && break
	sleep 0.2
done
kill $mon
grep -E 'low on storage|added|corrupt|cannot|limit' "$SVC_LOG" || true
grep -q "$snap: $SVC_IFACE.Snapshot.Corrupted ('$dev', -28)" "$TEST_TMP/monitor" ||
	fail "no Corrupted ('$dev', -28) signal: $(grep "$SVC_IFACE" "$TEST_TMP/monitor")"
assert_eq "$(svc_prop "$snap" Snapshot State)" 's "corrupted"' "State after the overflow"
assert_eq "$(svc_prop "$snap" Snapshot Error)" "i -28" "Error after the overflow"
grep -q "'State': <'corrupted'>" "$TEST_TMP/monitor" || fail "no PropertiesChanged to corrupted"
allocated=$(svc_prop "$snap" Snapshot StorageAllocated | cut -d' ' -f2)
assert_eq "$allocated" $((16 * MiB)) "StorageAllocated: grown to the limit, not beyond"
grep -q 'cannot grow: the limit' "$SVC_LOG" || fail "the daemon did not log that the limit was reached"
svc_expect_error NoSpace svc_call "$snap" Snapshot.AppendStorage "uint64 $MiB" '{}' >/dev/null

got=$(head -c $((size * MiB)) "$disk" | sha256sum | cut -d' ' -f1)
assert_eq "$got" "$want" "checksum of the original"
svc_expect_error Failed "$SVC_OPEN_IMAGE" "$snap" "$disk" 4096 >/dev/null

[ "$(storage_files | wc -l)" -ge 1 ] || fail "no storage files before destroy"
svc_call "$snap" Snapshot.Destroy '{}' >/dev/null
assert_eq "$(storage_files | wc -l)" 0 "storage files after destroy"
[ -z "$("$BSIOCTL" snapshot-list)" ] || fail "kernel snapshot left"
