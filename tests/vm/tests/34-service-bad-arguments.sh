#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Every method of blksnapd, called with bad arguments (a wrong device, an
# unknown snapshot, absurd sizes, bad options, the wrong D-Bus signature),
# fails with a named error (org.blksnap.BlkSnap1.Error.*, or
# org.freedesktop.DBus.Error.InvalidArgs for a wrong signature) and
# changes nothing: the exported objects, the kernel's trackers, CBT maps
# and snapshots, and the storage directory are as before. A snapshot or
# device object path that does not exist (never did, or destroyed) gives
# Error.NotFound naming the path. The daemon answers on afterwards.
# timeout: 240
set -eu
# shellcheck source=../lib.sh
. "$BLKSNAP_SRC/tests/vm/lib.sh"
# shellcheck source=../service-lib.sh
. "$BLKSNAP_SRC/tests/vm/service-lib.sh"
need_cmd dbus-send

read -r disk store_disk <<<"$VM_DISKS"
MiB=$((1 << 20))
TiB=$((1 << 40))
HUGE=$((1 << 62))
M=$SVC_MANAGER
module_load
on_exit module_unload
svc_storage "$store_disk"
svc_config InitialSize=16M
svc_bus
svc_start

devobj=$(svc_path "$(svc_call $M Manager.TrackDevice "$disk" '{}')")
cap=$(svc_prop "$devobj" Device Capacity | cut -d' ' -f2)
store_dev=$(lsblk -dno MAJ:MIN "$store_disk" | tr -d ' ')

# what must not change: objects, kernel state, CBT map, storage files
state() {
	svc_objects
	"$BSIOCTL" list
	for d in $("$BSIOCTL" list); do
		"$BSIOCTL" info "$d"
		"$BSIOCTL" map "$d" | sha256sum
	done
	for id in $("$BSIOCTL" snapshot-list); do "$BSIOCTL" snapshot-info "$id"; done
	storage_files
}
# bad ERROR OBJECT METHOD ARGS...
n=0
bad() {
	local err=$1
	shift
	svc_expect_error "$err" svc_call "$@" >"$TEST_TMP/err" || exit 1
	n=$((n + 1))
	log "$2: $(cat "$TEST_TMP/err")"
}
# badsig OBJECT INTERFACE.METHOD DBUS-SEND-ARGS...: the wrong signature
badsig() {
	local obj=$1 method=$2
	shift 2
	svc_expect_error org.freedesktop.DBus.Error.InvalidArgs \
		dbus-send --system --print-reply --dest="$SVC_NAME" "$obj" "$SVC_IFACE.$method" "$@" \
		>"$TEST_TMP/err" || exit 1
	n=$((n + 1))
	log "$method ($*): $(cat "$TEST_TMP/err")"
}

# ---- Manager, with the disk tracked and in no snapshot
before=$(state)
bad NotFound $M Manager.TrackDevice /dev/nonexistent '{}'
bad InvalidArgument $M Manager.TrackDevice /etc/passwd '{}'
bad InvalidArgument $M Manager.TrackDevice '' '{}'
bad InvalidArgument $M Manager.TrackDevice 'vdb' '{}'
bad InvalidArgument $M Manager.TrackDevice '1:2:3' '{}'
bad NotFound $M Manager.TrackDevice '4095:1048575' '{}'
bad Busy $M Manager.TrackDevice "$disk" '{}'
bad InvalidArgument $M Manager.TrackDevice "$store_disk" "{'bogus': <true>}"
bad InvalidArgument $M Manager.TrackDevice "$store_disk" "{'auth.no_user_interaction': <'yes'>}"
bad NotFound $M Manager.UntrackDevice "$store_disk" '{}'
bad NotFound $M Manager.UntrackDevice "$store_dev" '{}'
bad InvalidArgument $M Manager.UntrackDevice /dev/null '{}'
bad InvalidArgument $M Manager.CreateSnapshot '@as []' '{}'
bad NotFound $M Manager.CreateSnapshot "['$store_disk']" '{}'
bad NotFound $M Manager.CreateSnapshot "['/dev/nonexistent']" '{}'
bad InvalidArgument $M Manager.CreateSnapshot "['$disk', '$disk']" '{}'
bad InvalidArgument $M Manager.CreateSnapshot "['$disk', '$(lsblk -dno MAJ:MIN "$disk" | tr -d ' ')']" '{}'
bad InvalidArgument $M Manager.CreateSnapshot "['$disk']" "{'initial-size': <uint64 0>}"
bad InvalidArgument $M Manager.CreateSnapshot "['$disk']" "{'initial-size': <uint64 $HUGE>}"
bad InvalidArgument $M Manager.CreateSnapshot "['$disk']" "{'grow-step': <uint64 $HUGE>}"
bad InvalidArgument $M Manager.CreateSnapshot "['$disk']" "{'limit': <uint64 $HUGE>}"
bad InvalidArgument $M Manager.CreateSnapshot "['$disk']" "{'initial-size': <-1>}"
bad InvalidArgument $M Manager.CreateSnapshot "['$disk']" \
	"{'initial-size': <uint64 $((64 * MiB))>, 'limit': <uint64 $((32 * MiB))>}"
bad InvalidArgument $M Manager.CreateSnapshot "['$disk']" "{'lifetime': <uint64 $((10 * 366 * 86400))>}"
bad InvalidArgument $M Manager.CreateSnapshot "['$disk']" "{'take': <'yes'>}"
bad InvalidArgument $M Manager.CreateSnapshot "['$disk']" "{'bind-to-caller': <1>}"
bad InvalidArgument $M Manager.CreateSnapshot "['$disk']" "{'bogus': <true>}"
# more storage than the filesystem has: made, refused, cleaned up
bad NoSpace $M Manager.CreateSnapshot "['$disk']" "{'initial-size': <uint64 $TiB>}"
badsig $M Manager.TrackDevice uint32:5
badsig $M Manager.TrackDevice string:"$store_disk"
badsig $M Manager.UntrackDevice string:"$disk" string:x
badsig $M Manager.CreateSnapshot string:"$disk" dict:string:string:a,b
out=$(busctl --system call "$SVC_NAME" $M $SVC_IFACE.Manager CreateSnapshot u 1 2>&1) &&
	fail "busctl call with signature u succeeded: $out"
case $out in *"does not match expected type"*) ;; *) fail "busctl, signature u: $out" ;; esac

# ---- Device
gen=$(svc_prop "$devobj" Device Generation | cut -d' ' -f2 | tr -d '"')
bad InvalidArgument "$devobj" Device.GetChangedBlocks 'not-a-uuid' 0 '{}'
bad InvalidArgument "$devobj" Device.GetChangedBlocks '' 0 '{}'
bad GenerationChanged "$devobj" Device.GetChangedBlocks 01234567-89ab-cdef-0123-456789abcdef 0 '{}'
bad InvalidArgument "$devobj" Device.GetChangedBlocks "$gen" 0 "{'bogus': <1>}"
bad InvalidArgument "$devobj" Device.ReadCbtMap "{'auth.no_user_interaction': <uint32 1>}"
bad InvalidArgument "$devobj" Device.MarkDirty '@a(tt) []' '{}'
bad InvalidArgument "$devobj" Device.MarkDirty "[(uint64 0, uint64 0)]" '{}'
bad InvalidArgument "$devobj" Device.MarkDirty "[(uint64 $cap, uint64 4096)]" '{}'
bad InvalidArgument "$devobj" Device.MarkDirty "[(uint64 0, uint64 4096), (uint64 $((cap - 512)), uint64 1024)]" '{}'
bad InvalidArgument "$devobj" Device.MarkDirty "[(uint64 4096, uint64 18446744073709551615)]" '{}'
bad InvalidArgument "$devobj" Device.MarkDirty "[(uint64 0, uint64 4096)]" "{'bogus': <1>}"
badsig "$devobj" Device.MarkDirty array:uint32:1,2 dict:string:string:a,b
badsig "$devobj" Device.GetChangedBlocks string:"$gen" uint32:0 dict:string:string:a,b
bad NotFound "$SVC_ROOT/devices/${store_dev/:/_}" Device.ReadCbtMap '{}'
bad NotFound "$SVC_ROOT/devices/${store_dev/:/_}" Device.MarkDirty "[(uint64 0, uint64 4096)]" '{}'
bad NotFound "$SVC_ROOT/devices/doesnotexist" Device.GetChangedBlocks "$gen" 0 '{}'
bad NotFound "$SVC_ROOT/devices/doesnotexist" org.freedesktop.DBus.Properties.Get \
	$SVC_IFACE.Device Capacity
grep -q "Error.NotFound: no device at $SVC_ROOT/devices/doesnotexist" "$TEST_TMP/err" ||
	fail "the NotFound error does not name the path: $(cat "$TEST_TMP/err")"
# the wrong signature on a missing object is still a wrong signature
badsig "$SVC_ROOT/devices/doesnotexist" Device.ReadCbtMap string:x
after=$(state)
[ "$after" = "$before" ] || fail "the refused Manager and Device calls changed something:
$(diff <(echo "$before") <(echo "$after"))"

# ---- Snapshot, created (not taken)
snap=$(svc_create "['$disk']" "{'take': <false>, 'limit': <uint64 $((64 * MiB))>}")
before=$(state)
bad Busy "$snap" Snapshot.OpenImage "$disk" '{}'
bad InvalidArgument "$snap" Snapshot.OpenImage /dev/null '{}'
bad InvalidArgument "$snap" Snapshot.OpenImage '' '{}'
bad NotFound "$snap" Snapshot.OpenImage "$store_disk" '{}'
bad InvalidArgument "$snap" Snapshot.OpenImage "$disk" "{'bogus': <1>}"
bad InvalidArgument "$snap" Snapshot.AppendStorage 0 '{}'
bad InvalidArgument "$snap" Snapshot.AppendStorage "$HUGE" '{}'
bad NoSpace "$snap" Snapshot.AppendStorage $((64 * MiB)) '{}'
bad InvalidArgument "$snap" Snapshot.AppendStorage $MiB "{'bogus': <1>}"
bad InvalidArgument "$snap" Snapshot.Take "{'bogus': <1>}"
bad InvalidArgument "$snap" Snapshot.Destroy "{'auth.no_user_interaction': <uint32 1>}"
bad Busy $M Manager.CreateSnapshot "['$disk']" '{}'
bad Busy $M Manager.UntrackDevice "$disk" '{}'
badsig "$snap" Snapshot.AppendStorage string:x dict:string:string:a,b
badsig "$snap" Snapshot.Take
badsig "$snap" Snapshot.OpenImage uint64:1 dict:string:string:a,b
unknown=$SVC_ROOT/snapshots/0123456789abcdef0123456789abcdef
bad NotFound "$unknown" Snapshot.Destroy '{}'
bad NotFound "$unknown" Snapshot.Take '{}'
bad NotFound "$unknown" Snapshot.OpenImage "$disk" '{}'
bad NotFound "$unknown" Snapshot.AppendStorage $MiB '{}'
bad NotFound "$SVC_ROOT/snapshots/doesnotexist" Snapshot.Destroy '{}'
grep -q "Error.NotFound: no snapshot at $SVC_ROOT/snapshots/doesnotexist" "$TEST_TMP/err" ||
	fail "the NotFound error does not name the path: $(cat "$TEST_TMP/err")"
bad NotFound "$SVC_ROOT/snapshots/doesnotexist" org.freedesktop.DBus.Properties.Get \
	$SVC_IFACE.Snapshot State
after=$(state)
[ "$after" = "$before" ] || fail "the refused Snapshot calls changed something:
$(diff <(echo "$before") <(echo "$after"))"

# ---- Snapshot, taken
svc_call "$snap" Snapshot.Take '{}' >/dev/null
before=$(state)
bad Busy "$snap" Snapshot.Take '{}'
bad NotFound "$snap" Snapshot.OpenImage "$store_disk" '{}'
after=$(state)
[ "$after" = "$before" ] || fail "the refused calls on the taken snapshot changed something:
$(diff <(echo "$before") <(echo "$after"))"
log "$n bad calls refused with the right error, nothing changed"

# still serving
svc_call "$snap" Snapshot.AppendStorage "uint64 $MiB" '{}' >/dev/null
"$SVC_OPEN_IMAGE" "$snap" "$disk" 4096 >/dev/null || fail "OpenImage failed after the bad calls"
svc_call "$snap" Snapshot.Destroy '{}' >/dev/null
# the destroyed snapshot's path, and the untracked device's, are not found
bad NotFound "$snap" Snapshot.Take '{}'
svc_call $M Manager.UntrackDevice "$disk" '{}' >/dev/null
bad NotFound "$devobj" Device.ReadCbtMap '{}'
assert_eq "$(storage_files | wc -l)" 0 "storage files at the end"
[ -z "$("$BSIOCTL" snapshot-list)$("$BSIOCTL" list)" ] || fail "kernel state left"
kill -0 "$SVC_PID" || fail "blksnapd died"
