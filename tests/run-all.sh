#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The one test command: build, then run every test there is.
#
#   tests/run-all.sh [--build DIR] [RELEASE...|all]
#
# 1. meson setup (if needed) and compile in BUILD (default: ./build);
# 2. the host tests: GLib unit tests, checkpatch on the module, the DKMS
#    packaging check (meson test);
# 3. the VM suite on each kernel (default: all: bookworm 6.1, trixie 6.12,
#    sid newest) with tests/vm/run.sh.
# Every unit test case and every VM test on every kernel counts once. The
# last line is "N passed, N failed". Exit status 0 only if all passed.
# Must run as root (the VM suite prepares kernels and boots guests).
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	-h|--help) sed -n '3,15p' "$0"; exit 0 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || set -- all

if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$src" || { echo "0 passed, 1 failed"; exit 1; }
fi
meson compile -C "$build" || { echo "0 passed, 1 failed"; exit 1; }

start=$(date +%s)
meson test -C "$build" --no-rebuild --print-errorlogs
# Count TAP subtests of each host test (a GTest binary holds many), or the
# test itself when it does not speak TAP.
read -r host_pass host_fail < <(python3 - "$build/meson-logs/testlog.json" <<'PY'
import json, re, sys
passed = failed = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = t.get("stdout") or ""
    oks = len(re.findall(r"^ok ", out, re.M))
    bad = len(re.findall(r"^not ok ", out, re.M))
    if re.search(r"^1\.\.\d+", out, re.M):
        passed += oks
        failed += bad
        # A TAP test that crashed half-way counts as one more failure.
        if t["result"] not in ("OK", "EXPECTEDFAIL") and bad == 0:
            failed += 1
    elif t["result"] in ("OK", "EXPECTEDFAIL"):
        passed += 1
    else:
        failed += 1
print(passed, failed)
PY
)
echo "host tests: $host_pass passed, $host_fail failed ($(($(date +%s) - start)) s)"

vm_out=$(mktemp)
trap 'rm -f "$vm_out"' EXIT
"$src/tests/vm/run.sh" --build "$build" "$@" | tee "$vm_out"
vm_skip=$(grep -c '^ok .*# SKIP' "$vm_out")
vm_pass=$(($(grep -c '^ok ' "$vm_out") - vm_skip))
vm_fail=$(grep -c '^not ok ' "$vm_out")
# No VM result at all means the suite itself broke: that is a failure.
[ $((vm_pass + vm_fail)) -gt 0 ] || vm_fail=1

passed=$((host_pass + vm_pass))
failed=$((host_fail + vm_fail))
echo "whole run took $(($(date +%s) - start)) s"
if [ "$vm_skip" -gt 0 ]; then
	echo "$passed passed, $failed failed, $vm_skip skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" = 0 ]
