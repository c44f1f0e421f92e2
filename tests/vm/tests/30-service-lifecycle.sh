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

need_cmd dbus-daemon gdbus mkfs.ext4 sha256sum useradd
daemon=$BLKSNAP_BUILD/service/blksnapd
open_image=$BLKSNAP_BUILD/tests/service/open-image
[ -x "$daemon" ] || fail "blksnapd not built"
[ -x /usr/lib/polkit-1/polkitd ] || fail "polkitd not installed (apt-get install polkitd)"

read -r disk store_disk <<<"$VM_DISKS"
module_load
on_exit module_unload

# Difference storage on ext4 (the guest's root is an overlay: refused).
store=$TEST_TMP/store
mkdir -p "$store"
run mkfs.ext4 -q -F "$store_disk"
mount "$store_disk" "$store"
on_exit "umount '$store'"
mkdir -m 0700 "$store/blksnap"
cat >"$TEST_TMP/blksnapd.conf" <<CONF
[Storage]
Directory=$store/blksnap
InitialSize=256M
GrowStep=256M
Reserve=1%
CONF

# System bus with our policy, polkitd with our actions.
cp "$BLKSNAP_SRC/data/org.blksnap.BlkSnap1.conf" /etc/dbus-1/system.d/
cp "$BLKSNAP_SRC/policy/org.blksnap.BlkSnap1.policy" /usr/share/polkit-1/actions/
mkdir -p /run/dbus
dbus_pid=$(dbus-daemon --system --fork --print-pid)
on_exit "kill $dbus_pid; rm -f /run/dbus/pid"
/usr/lib/polkit-1/polkitd --no-debug >"$TEST_TMP/polkitd.log" 2>&1 &
polkit_pid=$!
on_exit "kill $polkit_pid"

"$daemon" --config "$TEST_TMP/blksnapd.conf" --state-file "$TEST_TMP/state" \
	>"$TEST_TMP/blksnapd.log" 2>&1 &
daemon_pid=$!
on_exit "kill $daemon_pid 2>/dev/null; while kill -0 $daemon_pid 2>/dev/null; do sleep 0.1; done; cp '$TEST_TMP/blksnapd.log' '$TEST_RESULTS/$TEST_NAME.blksnapd.log'"
for _ in $(seq 50); do
	gdbus introspect --system -d org.blksnap.BlkSnap1 -o /org/blksnap/BlkSnap1 \
		>/dev/null 2>&1 && break
	sleep 0.2
done

call() { # OBJECT METHOD ARGS...
	local obj=$1 method=$2
	shift 2
	gdbus call --system -d org.blksnap.BlkSnap1 -o "$obj" -m "$method" "$@"
}
M=/org/blksnap/BlkSnap1/Manager
I=org.blksnap.BlkSnap1

# 1. the module's version is shown
ver=$(gdbus call --system -d org.blksnap.BlkSnap1 -o $M \
	-m org.freedesktop.DBus.Properties.Get $I.Manager ModuleVersion)
log "module version property: $ver"
case "$ver" in *"'1."*) ;; *) fail "ModuleVersion not set: $ver" ;; esac

# 2. data before the snapshot
run dd if=/dev/urandom of="$disk" bs=1M count=64 oflag=direct status=none
before=$(head -c $((64 << 20)) "$disk" | sha256sum | cut -d' ' -f1)

# 3. an unprivileged user is refused, with the action named, and nothing changes
useradd -M nobody-bs 2>/dev/null || true
out=$(su nobody-bs -s /bin/sh -c "gdbus call --system -d $I -o $M -m $I.Manager.TrackDevice $disk \"{'auth.no_user_interaction': <true>}\"" 2>&1) &&
	fail "unprivileged TrackDevice succeeded: $out"
case "$out" in
*"$I.Error.NotAuthorized"*"$I.track-devices"*) log "unprivileged refused: $out" ;;
*) fail "unprivileged TrackDevice: unexpected error: $out" ;;
esac
[ -z "$("$BLKSNAP_BUILD/tests/vm/blksnap-ioctl" list)" ] || fail "a refused call tracked a device"

# 4. track, create + take
devobj=$(call $M $I.Manager.TrackDevice "$disk" '{}')
log "tracked: $devobj"
on_exit "'$BLKSNAP_BUILD/tests/vm/blksnap-ioctl' detach '$disk' 2>/dev/null || true"
snap=$(call $M $I.Manager.CreateSnapshot "['$disk']" '{}' | sed -E "s/^\(objectpath '([^']+)',\)$/\1/")
log "snapshot: $snap"
case "$snap" in /org/blksnap/BlkSnap1/snapshots/*) ;; *) fail "CreateSnapshot: $snap" ;; esac
state=$(call "$snap" org.freedesktop.DBus.Properties.Get $I.Snapshot State)
assert_eq "$state" "(<'taken'>,)" "State after create"
nfiles=$(find "$store/blksnap" -name '*.blksnap' | wc -l)
assert_eq "$nfiles" 1 "storage files after create"
grep -q "blksnap" "$TEST_TMP/state" || fail "state file does not list the snapshot"

# 5. overwrite the original; the image keeps the data of the take
run dd if=/dev/urandom of="$disk" bs=1M count=64 oflag=direct status=none
after=$(head -c $((64 << 20)) "$disk" | sha256sum | cut -d' ' -f1)
[ "$before" != "$after" ] || fail "the overwrite did not change the disk"
image=$("$open_image" "$snap" "$disk" $((64 << 20)) | sha256sum | cut -d' ' -f1)
assert_eq "$image" "$before" "checksum of the image read through OpenImage"

# 6. bad arguments: named errors
out=$(call "$snap" $I.Snapshot.OpenImage /dev/null '{}' 2>&1) && fail "OpenImage /dev/null succeeded"
case "$out" in *"$I.Error.InvalidArgument"*) ;; *) fail "OpenImage /dev/null: $out" ;; esac
out=$(call $M $I.Manager.CreateSnapshot "['$disk']" '{}' 2>&1) && fail "second snapshot of the disk succeeded"
case "$out" in *"$I.Error.Busy"*) ;; *) fail "second CreateSnapshot: $out" ;; esac
out=$(call /org/blksnap/BlkSnap1/snapshots/00000000000000000000000000000000 $I.Snapshot.Destroy '{}' 2>&1) &&
	fail "Destroy of an unknown snapshot succeeded"

# 7. destroy: object and storage files gone, tracking goes on
call "$snap" $I.Snapshot.Destroy '{}' >/dev/null
nfiles=$(find "$store/blksnap" -name '*.blksnap' | wc -l)
assert_eq "$nfiles" 0 "storage files after destroy"
[ -z "$("$BLKSNAP_BUILD/tests/vm/blksnap-ioctl" snapshot-list)" ] || fail "kernel snapshot left"
objs=$(call /org/blksnap/BlkSnap1 org.freedesktop.DBus.ObjectManager.GetManagedObjects)
# neither the object nor the device's Snapshot property may name it
case "$objs" in *snapshots/*) fail "snapshot still referenced: $objs" ;; esac
case "$objs" in *devices/*) ;; *) fail "device object gone after destroy: $objs" ;; esac
call $M $I.Manager.UntrackDevice "$disk" '{}' >/dev/null
log "lifecycle ok"
