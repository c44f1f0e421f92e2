#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Snapshots do not outlive what they are tied to: one created with
# bind-to-caller is destroyed (kernel snapshot and storage files) when its
# creator leaves the bus — a gdbus call that exits at once, a Python
# client that exits later, and one whose creator left while blksnapd was
# down (destroyed when it starts again); one created with a lifetime is
# destroyed when the lifetime is over, not before.
# timeout: 240
set -eu
# shellcheck source=../lib.sh
. "$BLKSNAP_SRC/tests/vm/lib.sh"
# shellcheck source=../service-lib.sh
. "$BLKSNAP_SRC/tests/vm/service-lib.sh"
python=/usr/bin/python3
"$python" -c 'from gi.repository import Gio' || fail "python3-gi is not installed"

read -r disk store_disk <<<"$VM_DISKS"
module_load
on_exit module_unload
svc_storage "$store_disk"
svc_config InitialSize=32M
svc_bus
svc_start
svc_call "$SVC_MANAGER" Manager.TrackDevice "$disk" '{}' >/dev/null

# gone PATH SECONDS: the snapshot object, the kernel's snapshot and every
# storage file are gone within SECONDS
gone() {
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		case "$(svc_objects)" in
		*"$1"*) ;;
		*) [ -z "$("$BSIOCTL" snapshot-list)" ] && [ -z "$(storage_files)" ] && return 0 ;;
		esac
		sleep 0.2
	done
	return 1
}
exists() { # PATH: exported, in the kernel, with storage
	case "$(svc_objects)" in *"$1"*) ;; *) return 1 ;; esac
	[ -n "$("$BSIOCTL" snapshot-list)" ] && [ -n "$(storage_files)" ]
}

# a client that creates a bound snapshot, prints its path and unique
# name, and stays on the bus until killed
cat >"$TEST_TMP/client.py" <<'PY'
import signal, sys
from gi.repository import Gio, GLib
bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
reply = bus.call_sync("org.blksnap.BlkSnap1", "/org/blksnap/BlkSnap1/Manager",
                      "org.blksnap.BlkSnap1.Manager", "CreateSnapshot",
                      GLib.Variant("(asa{sv})", ([sys.argv[1]], {
                          "bind-to-caller": GLib.Variant("b", True),
                          "auth.no_user_interaction": GLib.Variant("b", True)})),
                      GLib.VariantType("(o)"), Gio.DBusCallFlags.NONE, -1, None)
print(reply.unpack()[0], bus.get_unique_name(), flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
GLib.MainLoop().run()
PY
# start_client: CLIENT_PID, SNAP, UNIQUE
start_client() {
	rm -f "$TEST_TMP/client.out"
	"$python" "$TEST_TMP/client.py" "$disk" >"$TEST_TMP/client.out" 2>&1 &
	CLIENT_PID=$!
	on_exit "kill $CLIENT_PID 2>/dev/null || true"
	for _ in $(seq 150); do
		[ -s "$TEST_TMP/client.out" ] && break
		sleep 0.2
	done
	read -r SNAP UNIQUE <"$TEST_TMP/client.out" || true
	case $SNAP in "$SVC_ROOT"/snapshots/*) ;; *) fail "client: $(cat "$TEST_TMP/client.out")" ;; esac
}

# 1. gdbus call: the caller is gone as soon as it has the answer
out=$(svc_call "$SVC_MANAGER" Manager.CreateSnapshot "['$disk']" "{'bind-to-caller': <true>}")
snap=$(svc_path "$out")
log "gdbus made $snap and left"
gone "$snap" 10 || fail "the snapshot bound to an exited gdbus call is still there"
grep -q "left the bus: destroying" "$SVC_LOG" || fail "the daemon logged no reason"

# 2. a client that stays a while, then exits
start_client
log "client $UNIQUE made $SNAP"
assert_eq "$(svc_prop "$SNAP" Snapshot BoundTo)" "s \"$UNIQUE\"" "BoundTo"
sleep 3
exists "$SNAP" || fail "the bound snapshot went while its client was there"
kill $CLIENT_PID
wait $CLIENT_PID || true
gone "$SNAP" 10 || fail "the snapshot outlived its client"

# 3. the client leaves while blksnapd is down
start_client
log "client $UNIQUE made $SNAP"
svc_stop KILL
kill $CLIENT_PID
wait $CLIENT_PID || true
[ -n "$("$BSIOCTL" snapshot-list)" ] || fail "the kernel snapshot went with the daemon"
svc_start
gone "$SNAP" 10 || fail "the snapshot of a client gone while blksnapd was down is still there"

# 4. a lifetime of 12 s
snap=$(svc_create "['$disk']" "{'lifetime': <uint64 12>}")
created=$(svc_prop "$snap" Snapshot CreationTime | cut -d' ' -f2)
expiry=$((created + 12000000))
assert_eq "$(svc_prop "$snap" Snapshot ExpiryTime)" "t $expiry" "ExpiryTime"
# still there a second before ExpiryTime. Commands start slowly in a busy
# guest: an empty list read after ExpiryTime proves nothing either way.
[ "$(date +%s%6N)" -lt $((expiry - 1000000)) ] || fail "too slow to check the snapshot before its expiry"
while [ "$(date +%s%6N)" -lt $((expiry - 1000000)) ]; do sleep 0.1; done
listed=$("$BSIOCTL" snapshot-list)
listed_by=$(date +%s%6N)
if [ -z "$listed" ]; then
	[ "$listed_by" -ge "$expiry" ] || fail "the snapshot went before its lifetime was over"
	log "list read only after ExpiryTime: not checked"
fi
gone "$snap" 10 || fail "the snapshot outlived its lifetime"
grep -q "lifetime is over" "$SVC_LOG" || fail "the daemon logged no reason"
svc_call "$SVC_MANAGER" Manager.UntrackDevice "$disk" '{}' >/dev/null
