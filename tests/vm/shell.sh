#!/bin/bash
# Several variables are only read through write_vm_env (by name).
# shellcheck disable=SC2034
# SPDX-License-Identifier: GPL-2.0
#
# Interactive root shell in the test guest:
#
#   tests/vm/shell.sh [--build DIR] [RELEASE]        (default: bookworm)
#
# Same guest as run.sh (host's / over 9p + tmpfs overlay, /dev/vdb and
# /dev/vdc scratch disks, the release's modules), with blksnap.ko built and
# loaded. The shell runs on the serial console with job control. Leave with
# "poweroff" (or Ctrl-a x, which kills QEMU). Tests can be run by hand with
# tests/vm/guest-run.sh; their results land in BUILD/vm-results/shell-RELEASE.
set -uo pipefail

# shellcheck source=host-lib.sh
. "$(dirname "$0")/host-lib.sh"

build=$(default_build_dir)
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	-h|--help) sed -n '3,12p' "$0"; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
done
RELEASE=${1:-bookworm}
valid_release "$RELEASE" || die "unknown release '$RELEASE' (one of: $RELEASES)"
[ "$(id -u)" = 0 ] || die "shell.sh must run as root"
mkdir -p "$build"
build=$(cd "$build" && pwd)

"$VM_DIR/prepare.sh" "$RELEASE" || exit 1
load_env "$RELEASE"

BLKSNAP_KO=$build/vm/$RELEASE/blksnap.ko
if ! build_module "$build/vm/$RELEASE"; then
	say "warning: blksnap.ko did not build for $KVER; booting without it"
fi

results=$build/vm-results/shell-$RELEASE
rm -rf "$results"
mkdir -p "$results"
scratch=$(mktemp -d "${BLKSNAP_VM_SCRATCH:-/var/tmp}/blksnap-vm.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
disk_size=${BLKSNAP_VM_DISK_SIZE:-2G}
make_disks "$scratch" "$disk_size"

# The serial line does not carry the terminal's size: pass it along.
VM_ROWS="" VM_COLS=""
if [ -t 0 ] && size=$(stty size 2>/dev/null); then
	VM_ROWS=${size% *} VM_COLS=${size#* }
fi
VM_DISKS="/dev/vdb /dev/vdc"
VM_DISK_BYTES=$(size_bytes "$disk_size")
VM_RESULTS_HOST=$results
BLKSNAP_VM_TEST_TIMEOUT=${BLKSNAP_VM_TEST_TIMEOUT:-300}
BLKSNAP_SRC=$SRC_DIR BLKSNAP_BUILD=$build \
	write_vm_env "$results/vm.env" RELEASE KVER MODDIR BLKSNAP_SRC \
	BLKSNAP_BUILD BLKSNAP_KO VM_DISKS VM_DISK_BYTES BLKSNAP_VM_TEST_TIMEOUT \
	VM_RESULTS_HOST VM_ROWS VM_COLS

qemu_cmd shell "$results" "$scratch"
say "booting $RELEASE ($KVER) under TCG; Ctrl-a x kills QEMU"
# mon:stdio: the serial console on this terminal, with QEMU's monitor
# behind Ctrl-a c (and Ctrl-a x to quit).
"${QEMU[@]}" -serial mon:stdio
