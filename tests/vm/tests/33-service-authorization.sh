#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# polkit decides who may do what: root may do everything; an unprivileged
# user is refused every method with NotAuthorized naming the action, and
# nothing changes (objects, kernel trackers and snapshots, storage files);
# a member of the group "backup" is let in by the example rules file
# (policy/50-blksnap-backup-group.rules.example installed into
# /etc/polkit-1/rules.d): creates a snapshot, reads its image through
# OpenImage, reads the CBT, destroys it; but may still not track devices
# nor touch root's snapshot.
# timeout: 240
set -eu
# shellcheck source=../lib.sh
. "$BLKSNAP_SRC/tests/vm/lib.sh"
# shellcheck source=../service-lib.sh
. "$BLKSNAP_SRC/tests/vm/service-lib.sh"

read -r disk store_disk <<<"$VM_DISKS"
MiB=$((1 << 20))
I=$SVC_IFACE
NOI="{'auth.no_user_interaction': <true>}"
module_load
on_exit module_unload
svc_storage "$store_disk"
svc_config
svc_bus
svc_start
svc_user bs-stranger
svc_user bs-backup backup

# call USER OBJECT METHOD ARGS...: gdbus call as USER
call() {
	local user=$1 obj=$2 method=$3
	shift 3
	as_user "$user" gdbus call --system -d "$SVC_NAME" -o "$obj" -m "$I.$method" "$@"
}
# denied USER ACTION OBJECT METHOD ARGS...: refused, naming ACTION
denied() {
	local user=$1 action=$2 out
	shift 2
	out=$(call "$user" "$@" 2>&1) && fail "$user: $2 succeeded: $out"
	case $out in
	*"$I.Error.NotAuthorized"*"$I.$action"*) log "$user: $2 refused ($action)" ;;
	*) fail "$user: $2: expected NotAuthorized for $action, got: $out" ;;
	esac
}
# kernel_state: what the kernel and the storage directory hold
kernel_state() {
	"$BSIOCTL" list
	for id in $("$BSIOCTL" snapshot-list); do "$BSIOCTL" snapshot-info "$id"; done
	storage_files
}

# root: track, snapshot (the same methods the others are refused)
run dd if=/dev/urandom of="$disk" bs=1M count=16 oflag=direct status=none
before=$(head -c $((16 * MiB)) "$disk" | sha256sum | cut -d' ' -f1)
devobj=$(svc_path "$(svc_call "$SVC_MANAGER" Manager.TrackDevice "$disk" "$NOI")")
gen=$(svc_prop "$devobj" Device Generation | cut -d' ' -f2 | tr -d '"')
# (CreateSnapshot checks the devices first: refused while the disk is free)
denied bs-stranger create-snapshot "$SVC_MANAGER" Manager.CreateSnapshot "['$disk']" "$NOI"
# interactive (no agent): refused just the same
denied bs-stranger create-snapshot "$SVC_MANAGER" Manager.CreateSnapshot "['$disk']" '{}'
[ -z "$("$BSIOCTL" snapshot-list)$(storage_files)" ] || fail "a refused CreateSnapshot left something"
root_snap=$(svc_create "['$disk']" "$NOI")
assert_eq "$(svc_prop "$root_snap" Snapshot Owner)" "u 0" "Owner of root's snapshot"

# a stranger: refused everything, changing nothing
objs_before=$(svc_objects)
kernel_before=$(kernel_state)
for user in bs-stranger bs-backup; do
	denied $user track-devices "$SVC_MANAGER" Manager.TrackDevice "$store_disk" "$NOI"
	denied $user track-devices "$SVC_MANAGER" Manager.UntrackDevice "$disk" "$NOI"
	denied $user track-devices "$devobj" Device.MarkDirty "[(0, 4096)]" "$NOI"
	denied $user manage-any-snapshot "$root_snap" Snapshot.Destroy "$NOI"
	denied $user manage-any-snapshot "$root_snap" Snapshot.AppendStorage "uint64 $MiB" "$NOI"
	denied $user manage-any-snapshot "$root_snap" Snapshot.Take "$NOI"
	denied $user manage-any-snapshot "$root_snap" Snapshot.OpenImage "$disk" "$NOI"
done
denied bs-stranger read-cbt "$devobj" Device.GetChangedBlocks "$gen" 0 "$NOI"
denied bs-stranger read-cbt "$devobj" Device.ReadCbtMap "$NOI"
# properties are readable by anyone
out=$(as_user bs-stranger busctl --system get-property "$SVC_NAME" "$root_snap" \
	$I.Snapshot State) || fail "a stranger cannot read State: $out"
assert_eq "$out" 's "taken"' "State read by a stranger"
assert_eq "$(svc_objects)" "$objs_before" "objects after the refused calls"
assert_eq "$(kernel_state)" "$kernel_before" "kernel state and storage after the refused calls"

# the backup group, once the rules file is installed
svc_call "$root_snap" Snapshot.Destroy "$NOI" >/dev/null
install -m 0644 "$BLKSNAP_SRC/policy/50-blksnap-backup-group.rules.example" \
	/etc/polkit-1/rules.d/50-blksnap-backup-group.rules
on_exit "rm -f /etc/polkit-1/rules.d/50-blksnap-backup-group.rules"
svc_polkit_stop
svc_polkit_start
# still a stranger for the stranger
denied bs-stranger create-snapshot "$SVC_MANAGER" Manager.CreateSnapshot "['$disk']" "$NOI"
denied bs-backup track-devices "$SVC_MANAGER" Manager.TrackDevice "$store_disk" "$NOI"
out=$(call bs-backup "$SVC_MANAGER" Manager.CreateSnapshot "['$disk']" "$NOI") ||
	fail "backup group: CreateSnapshot refused: $out"
snap=$(svc_path "$out")
log "backup group: created $snap"
assert_eq "$(svc_prop "$snap" Snapshot Owner)" "u $(id -u bs-backup)" "Owner of the backup user's snapshot"
run dd if=/dev/urandom of="$disk" bs=1M count=16 oflag=direct status=none
image=$(as_user bs-backup "$SVC_OPEN_IMAGE" "$snap" "$disk" $((16 * MiB)) | sha256sum | cut -d' ' -f1)
assert_eq "$image" "$before" "image read by the backup user through OpenImage"
call bs-backup "$devobj" Device.ReadCbtMap "$NOI" >/dev/null || fail "backup group: ReadCbtMap refused"
call bs-backup "$devobj" Device.GetChangedBlocks "$gen" 0 "$NOI" >/dev/null ||
	fail "backup group: GetChangedBlocks refused"
call bs-backup "$snap" Snapshot.AppendStorage "uint64 $MiB" "$NOI" >/dev/null ||
	fail "backup group: AppendStorage of its own snapshot refused"
# root may touch anyone's snapshot; the stranger may not touch this one
denied bs-stranger manage-any-snapshot "$snap" Snapshot.Destroy "$NOI"
call bs-backup "$snap" Snapshot.Destroy "$NOI" >/dev/null || fail "backup group: Destroy refused"
[ -z "$("$BSIOCTL" snapshot-list)" ] || fail "kernel snapshot left"
assert_eq "$(storage_files | wc -l)" 0 "storage files at the end"
