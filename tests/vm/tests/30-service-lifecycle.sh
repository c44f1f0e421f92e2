#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# blksnapd end to end on a real system bus with a real polkitd: track a
# disk, create and take a snapshot (storage on ext4 on the other disk),
# overwrite the disk, read the image through OpenImage's fd and check it
# still holds the data of the take; destroy it and check the storage files
# are gone. An unprivileged caller is refused with a named error.
# timeout: 300
set -eu
# shellcheck source=../lib.sh
. "$BLKSNAP_SRC/tests/vm/lib.sh"
# shellcheck source=../service-lib.sh
. "$BLKSNAP_SRC/tests/vm/service-lib.sh"

read -r disk store_disk <<<"$VM_DISKS"
module_load
on_exit module_unload
svc_storage "$store_disk"
svc_config
svc_bus
svc_start
M=$SVC_MANAGER
I=$SVC_IFACE

# 1. the module's version is shown
ver=$(svc_call $M org.freedesktop.DBus.Properties.Get $I.Manager ModuleVersion)
log "module version property: $ver"
case "$ver" in *"'1."*) ;; *) fail "ModuleVersion not set: $ver" ;; esac

# 2. data before the snapshot
run dd if=/dev/urandom of="$disk" bs=1M count=64 oflag=direct status=none
before=$(head -c $((64 << 20)) "$disk" | sha256sum | cut -d' ' -f1)

# 3. an unprivileged user is refused, with the action named, and nothing changes
svc_user nobody-bs
out=$(as_user nobody-bs gdbus call --system -d $I -o $M -m $I.Manager.TrackDevice "$disk" \
	"{'auth.no_user_interaction': <true>}" 2>&1) &&
	fail "unprivileged TrackDevice succeeded: $out"
case "$out" in
*"$I.Error.NotAuthorized"*"$I.track-devices"*) log "unprivileged refused: $out" ;;
*) fail "unprivileged TrackDevice: unexpected error: $out" ;;
esac
[ -z "$("$BSIOCTL" list)" ] || fail "a refused call tracked a device"

# 4. track, create + take
devobj=$(svc_call $M Manager.TrackDevice "$disk" '{}')
log "tracked: $devobj"
on_exit "'$BSIOCTL' detach '$disk' 2>/dev/null || true"
snap=$(svc_create "['$disk']" '{}')
log "snapshot: $snap"
state=$(svc_call "$snap" org.freedesktop.DBus.Properties.Get $I.Snapshot State)
assert_eq "$state" "(<'taken'>,)" "State after create"
assert_eq "$(appended_files | wc -l)" 1 "storage files appended at create"
# the next growth is allocated ahead: one spare, named in the state file
assert_eq "$(spare_files | wc -l)" 1 "spare storage files after create"
grep -q "blksnap" "$SVC_STATE" || fail "state file does not list the snapshot"
[ -f "$(spare_files)" ] || fail "the spare named in the state file is not there: $(spare_files)"
assert_eq "$(svc_prop "$snap" Snapshot StorageSpare)" "t $(stat -c %s "$(spare_files)")" \
	"StorageSpare after create (the spare file's size)"

# 5. overwrite the original; the image keeps the data of the take
run dd if=/dev/urandom of="$disk" bs=1M count=64 oflag=direct status=none
after=$(head -c $((64 << 20)) "$disk" | sha256sum | cut -d' ' -f1)
[ "$before" != "$after" ] || fail "the overwrite did not change the disk"
image=$("$SVC_OPEN_IMAGE" "$snap" "$disk" $((64 << 20)) | sha256sum | cut -d' ' -f1)
assert_eq "$image" "$before" "checksum of the image read through OpenImage"

# 6. bad arguments: named errors
svc_expect_error InvalidArgument svc_call "$snap" Snapshot.OpenImage /dev/null '{}' >/dev/null
svc_expect_error Busy svc_call $M Manager.CreateSnapshot "['$disk']" '{}' >/dev/null
out=$(svc_call $SVC_ROOT/snapshots/00000000000000000000000000000000 Snapshot.Destroy '{}' 2>&1) &&
	fail "Destroy of an unknown snapshot succeeded"

# 7. destroy: object and storage files gone, tracking goes on
svc_call "$snap" Snapshot.Destroy '{}' >/dev/null
assert_eq "$(storage_files | wc -l)" 0 "storage files after destroy"
[ -z "$("$BSIOCTL" snapshot-list)" ] || fail "kernel snapshot left"
objs=$(svc_objects)
# neither the object nor the device's Snapshot property may name it
case "$objs" in *snapshots/*) fail "snapshot still referenced: $objs" ;; esac
case "$objs" in *devices/*) ;; *) fail "device object gone after destroy: $objs" ;; esac
svc_call $M Manager.UntrackDevice "$disk" '{}' >/dev/null
log "lifecycle ok"
