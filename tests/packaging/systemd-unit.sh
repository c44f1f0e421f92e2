#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The installed systemd unit of blksnapd is valid and hardened: installed
# with `meson install` into a scratch root (next to a copy of the host's
# systemd units), `systemd-analyze verify` finds nothing to say about it
# (directives, ExecStart= executable, man page of Documentation=), the
# D-Bus activation file names it, and `systemd-analyze security` rates
# its exposure at most BLKSNAP_UNIT_EXPOSURE (default 2.0) with the
# hardening the service relies on in place.
#
#   systemd-unit.sh BUILD_DIR
set -euo pipefail

build=$1
max_exposure=${BLKSNAP_UNIT_EXPOSURE:-2.0}
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v systemd-analyze >/dev/null ||
	fail "systemd-analyze is missing (apt-get install systemd)"
[ -d /usr/lib/systemd/system ] || fail "no /usr/lib/systemd/system to verify against"

root=$(mktemp -d /tmp/blksnap-unit.XXXXXX)
trap 'rm -rf "$root"' EXIT
meson install -C "$build" --no-rebuild --quiet --destdir "$root" >"$root.install.log" 2>&1 ||
	{ cat "$root.install.log"; rm -f "$root.install.log"; fail "meson install failed"; }
rm -f "$root.install.log"

unit=$(find "$root" -path '*/systemd/system/blksnapd.service' | head -1)
[ -n "$unit" ] || fail "meson install put no blksnapd.service under $root"
activation=$(find "$root" -path '*/dbus-1/system-services/org.blksnap.BlkSnap1.service' | head -1)
[ -n "$activation" ] || fail "meson install put no D-Bus activation file under $root"
man=$(find "$root" -name 'blksnapd.8*' | head -1)
[ -n "$man" ] || fail "meson install put no blksnapd(8) under $root"
echo "unit: ${unit#"$root"}"

# the units the service depends on (sysinit.target, dbus.socket, ...)
mkdir -p "$root/usr/lib/systemd"
cp -an /usr/lib/systemd/system "$root/usr/lib/systemd/"
[ -e "$root/lib" ] || ln -s usr/lib "$root/lib"

# 1. verify: any message is a finding
out=$(cd "$root" && MANPATH=$(dirname "$(dirname "$man")") \
	systemd-analyze verify --root="$root" "$unit" 2>&1) ||
	fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify complained: $out"
echo "verify: clean"

# 2. what the service relies on
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -x "$root$exec_start" ] || fail "ExecStart=$exec_start is not an installed executable"
for line in Type=dbus BusName=org.blksnap.BlkSnap1 CapabilityBoundingSet=CAP_SYS_ADMIN \
	NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes ProtectHome=yes \
	RestrictAddressFamilies=AF_UNIX UMask=0077; do
	grep -qx "$line" "$unit" || fail "$line is not in the unit"
done
grep -qx "SystemdService=blksnapd.service" "$activation" ||
	fail "the activation file does not name blksnapd.service: $(cat "$activation")"
grep -qx "Exec=$exec_start" "$activation" ||
	fail "the activation file runs another binary: $(cat "$activation")"
grep -qx "Alias=dbus-org.blksnap.BlkSnap1.service" "$unit" ||
	fail "no Alias=dbus-org.blksnap.BlkSnap1.service (activation by systemd)"

# 3. exposure
out=$(systemd-analyze security --offline=true --root="$root" "$unit" 2>&1) || true
exposure=$(sed -n 's/.*Overall exposure level for blksnapd.service: \([0-9.]*\).*/\1/p' <<<"$out")
[ -n "$exposure" ] || fail "systemd-analyze security said: $out"
echo "exposure: $exposure (at most $max_exposure)"
awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' ||
	fail "exposure $exposure is above $max_exposure: $(grep '✗' <<<"$out")"
echo "PASS"
