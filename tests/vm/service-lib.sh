#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Sourced by the VM tests of blksnapd and its clients (after lib.sh): a
# real system bus with the service's policy, a real polkitd with its
# actions, blksnapd with its difference storage on ext4 on a scratch disk.
# Everything started is stopped, and the disk unmounted, by on_exit.
#
#   svc_storage DISK          ext4 on DISK, mounted; SVC_STORE is the
#                             storage directory on it
#   svc_config [KEY=VALUE..]  write the configuration (Storage: InitialSize
#                             256M, GrowStep 256M, Reserve 1%; Lifetime goes
#                             to [Snapshot]); KEY=VALUE overrides
#   svc_bus                   dbus-daemon --system and polkitd
#   svc_polkit_stop, svc_polkit_start   restart polkitd (new rules)
#   svc_start, svc_stop [SIG] blksnapd (log appended to SVC_LOG; its state
#                             file SVC_STATE survives a restart)
#   svc_call OBJ METHOD ARGS  gdbus call; METHOD without "org." is taken
#                             relative to SVC_IFACE ("Manager.TrackDevice")
#   svc_path TEXT             the object path in gdbus output
#   svc_create DEVICES OPTS   CreateSnapshot; prints the object path
#   svc_prop OBJ IFACE NAME   busctl get-property ("t 42", 's "taken"')
#   svc_objects               GetManagedObjects
#   svc_expect_error NAME CMD...  CMD must fail with the D-Bus error NAME
#                             (relative to SVC_IFACE.Error unless dotted);
#                             prints its output
#   svc_user NAME [GROUP]     an unprivileged user (in GROUP)
#   as_user NAME CMD...       run CMD as NAME
#   storage_files             all storage files, sorted
#   appended_files            those handed to the module (not spares)
#   spare_files               spares: allocated ahead, not appended yet
#                             (as the state file names them)
#   BSIOCTL                   the ioctl tool (to check the kernel's side)

SVC_NAME=org.blksnap.BlkSnap1
SVC_IFACE=org.blksnap.BlkSnap1
SVC_ROOT=/org/blksnap/BlkSnap1
SVC_MANAGER=$SVC_ROOT/Manager
SVC_DAEMON=$BLKSNAP_BUILD/service/blksnapd
SVC_OPEN_IMAGE=$BLKSNAP_BUILD/tests/service/open-image
SVC_CONF=$TEST_TMP/blksnapd.conf
SVC_STATE=$TEST_TMP/state
SVC_LOG=$TEST_TMP/blksnapd.log
SVC_PID=
SVC_POLKIT_PID=
BSIOCTL=$BLKSNAP_BUILD/tests/vm/blksnap-ioctl

need_cmd dbus-daemon gdbus busctl mkfs.ext4 sha256sum useradd setpriv
[ -x "$SVC_DAEMON" ] || fail "blksnapd not built"
[ -x /usr/lib/polkit-1/polkitd ] || fail "polkitd not installed (apt-get install polkitd)"

svc_storage() { # DISK
	local mnt=$TEST_TMP/store
	mkdir -p "$mnt"
	run mkfs.ext4 -q -F "$1"
	mount "$1" "$mnt"
	on_exit "umount '$mnt'"
	SVC_STORE=$mnt/blksnap
	mkdir -m 0700 "$SVC_STORE"
}

svc_config() { # [KEY=VALUE...]
	local -A storage=([Directory]=$SVC_STORE [InitialSize]=256M [GrowStep]=256M [Reserve]=1%)
	local lifetime= kv key
	for kv in "$@"; do
		key=${kv%%=*}
		if [ "$key" = Lifetime ]; then lifetime=${kv#*=}; else storage[$key]=${kv#*=}; fi
	done
	{
		echo "[Storage]"
		for key in "${!storage[@]}"; do echo "$key=${storage[$key]}"; done
		[ -z "$lifetime" ] || printf '[Snapshot]\nLifetime=%s\n' "$lifetime"
	} >"$SVC_CONF"
}

svc_polkit_start() {
	/usr/lib/polkit-1/polkitd --no-debug >>"$TEST_TMP/polkitd.log" 2>&1 &
	SVC_POLKIT_PID=$!
	local _
	for _ in $(seq 50); do
		busctl --system status org.freedesktop.PolicyKit1 >/dev/null 2>&1 && return 0
		sleep 0.1
	done
}

svc_polkit_stop() {
	[ -n "$SVC_POLKIT_PID" ] || return 0
	kill "$SVC_POLKIT_PID" 2>/dev/null || true
	while kill -0 "$SVC_POLKIT_PID" 2>/dev/null; do sleep 0.1; done
	SVC_POLKIT_PID=
}

svc_bus() {
	cp "$BLKSNAP_SRC/data/org.blksnap.BlkSnap1.conf" /etc/dbus-1/system.d/
	cp "$BLKSNAP_SRC/policy/org.blksnap.BlkSnap1.policy" /usr/share/polkit-1/actions/
	mkdir -p /run/dbus
	local dbus_pid
	dbus_pid=$(dbus-daemon --system --fork --print-pid)
	on_exit "kill $dbus_pid; rm -f /run/dbus/pid"
	svc_polkit_start
	on_exit svc_polkit_stop
}

_svc_cleanup() {
	svc_stop
	cp "$SVC_LOG" "$TEST_RESULTS/$TEST_NAME.blksnapd.log" 2>/dev/null || true
}

svc_start() {
	[ -n "${_SVC_CLEANUP:-}" ] || { on_exit _svc_cleanup; _SVC_CLEANUP=1; }
	"$SVC_DAEMON" --config "$SVC_CONF" --state-file "$SVC_STATE" >>"$SVC_LOG" 2>&1 &
	SVC_PID=$!
	local _
	for _ in $(seq 100); do
		gdbus introspect --system -d $SVC_NAME -o $SVC_ROOT >/dev/null 2>&1 && return 0
		kill -0 "$SVC_PID" 2>/dev/null || fail "blksnapd exited: $(tail -5 "$SVC_LOG")"
		sleep 0.1
	done
	fail "blksnapd did not come up on the system bus"
}

svc_stop() { # [SIGNAL]
	[ -n "$SVC_PID" ] || return 0
	kill -"${1:-TERM}" "$SVC_PID" 2>/dev/null || true
	while kill -0 "$SVC_PID" 2>/dev/null; do sleep 0.1; done
	wait "$SVC_PID" 2>/dev/null || true
	SVC_PID=
}

svc_call() { # OBJECT METHOD ARGS...
	local obj=$1 method=$2
	shift 2
	case $method in org.*) ;; *) method=$SVC_IFACE.$method ;; esac
	gdbus call --system -d $SVC_NAME -o "$obj" -m "$method" "$@"
}

svc_path() { sed -E "s/^\(objectpath '([^']+)',\)$/\1/" <<<"$1"; }

svc_create() { # DEVICES OPTIONS
	local out
	out=$(svc_call $SVC_MANAGER Manager.CreateSnapshot "$1" "$2") || return 1
	svc_path "$out"
}

svc_prop() { busctl --system get-property $SVC_NAME "$1" "$SVC_IFACE.$2" "$3"; }

svc_objects() { svc_call $SVC_ROOT org.freedesktop.DBus.ObjectManager.GetManagedObjects; }

svc_expect_error() { # NAME CMD...
	local name=$1 out
	shift
	case $name in *.*) ;; *) name=$SVC_IFACE.Error.$name ;; esac
	if out=$("$@" 2>&1); then
		fail "$* succeeded, expected $name: $out"
	fi
	case $out in
	*"$name"*) printf '%s\n' "$out" ;;
	*) fail "$*: expected $name, got: $out" ;;
	esac
}

svc_user() { # NAME [GROUP]
	id "$1" >/dev/null 2>&1 || useradd -M -s /bin/sh "$1"
	if [ $# -gt 1 ]; then
		getent group "$2" >/dev/null || groupadd "$2"
		usermod -a -G "$2" "$1"
	fi
}

as_user() { # NAME CMD...
	local user=$1
	shift
	setpriv --reuid "$(id -u "$user")" --regid "$(id -g "$user")" --init-groups \
		env HOME=/ "$@"
}

storage_files() { find "$SVC_STORE" -name '*.blksnap' | sort; }
# spares are named like the others; the state file says which they are
spare_files() {
	sed -n 's/^Spares=//p' "$SVC_STATE" 2>/dev/null | tr ';' '\n' | grep . | sort || true
}
appended_files() { comm -23 <(storage_files) <(spare_files); }
