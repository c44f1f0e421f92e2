#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The main job in one command: build everything, boot a Debian 12 guest
# (kernel 6.1) under QEMU, show change block tracking at work (track a
# disk, write, print the CBT map), then start the system bus, polkitd and blksnapd in
# it, make an ext4 file system on a virtual disk, write files, run a full
# backup with blksnapctl, change files (also while the backup runs), run
# an incremental backup, restore both points to new images and prove with
# SHA-256 that each equals the snapshot taken for it.
#
#   sudo ./demo.sh [RELEASE]     (bookworm by default; trixie, sid)
#
# Everything it prints comes from the guest, in words; the full log is in
# build/demo-results/RELEASE/backup-demo.log.
set -euo pipefail
cd "$(dirname "$0")"
release=${1:-bookworm}
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (sudo ./demo.sh)" >&2; exit 1; }

echo "==> Building blksnap (module, blksnapd, blksnapctl) in ./build"
[ -f build/build.ninja ] || meson setup build >/dev/null
meson compile -C build >/dev/null
[ -x build/client/blksnapctl ] ||
	{ echo "demo.sh: blksnapctl was not built (apt-get install libjson-glib-dev libxxhash-dev)" >&2; exit 1; }

dir=build/demo-results/$release
cbt_log=$dir/10-track-write-show-cbt.log
log=$dir/backup-demo.log
mkdir -p "$dir"
: >"$cbt_log"
: >"$log"
echo "==> Booting a $release guest under QEMU (the first run prepares it: minutes)"
tail -q -n +1 -F "$cbt_log" "$log" 2>/dev/null | grep --line-buffered -E '^(==>|result|blksnapd|[0-9]+ tracked|[0-9]+ snapshot)' &
tailer=$!
trap 'kill $tailer 2>/dev/null || true' EXIT
rc=0
BLKSNAP_VM_QUIET=1 BLKSNAP_VM_TESTS_DIR=$PWD/tests/vm/demo BLKSNAP_VM_RESULTS_NAME=demo-results \
	tests/vm/run.sh --build build --filter '*' "$release" >/dev/null 2>build/demo-run.log || rc=$?
sleep 1
if [ "$rc" = 0 ]; then
	echo
	echo "==> Demo passed. Details: $log"
else
	echo
	echo "==> Demo FAILED (status $rc). Last lines of $log:"
	tail -n 30 "$log"
	echo "(the harness's messages: build/demo-run.log)"
fi
exit "$rc"
