# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# Helpers for the VM tests (tests/vm/tests/*.sh), sourced by each test and
# by the runner (guest-run.sh). Runs inside the guest, as root, with the
# host's userspace.
#
# A test is a bash script that exits 0 on success, 77 to skip (see skip),
# anything else on failure. The runner provides in the environment:
#   BLKSNAP_SRC    repository root         BLKSNAP_BUILD  meson build dir
#   BLKSNAP_KO     blksnap.ko for this kernel
#   KVER RELEASE   running kernel, Debian release it comes from
#   VM_DISKS       "/dev/vdb /dev/vdc" (scratch disks, VM_DISK_BYTES each)
#   TEST_TMP       fresh scratch directory (tmpfs), also the cwd
#   TEST_RESULTS   directory on the host for artifacts; name them $TEST_NAME.*
# Header lines a test may carry (first 30 lines):
#   # timeout: SECONDS      per-test timeout (default 300)
#   # dmesg-allow: ERE      kernel lines matching ERE are not counted as
#                           problems (for tests that provoke warnings)

# ---------------------------------------------------------------- messages

log() { printf '# [%s] %s\n' "$(date +%T)" "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}
# Exit status 77 (the automake convention) makes the runner print "# SKIP".
skip() {
	printf 'SKIP: %s\n' "$*"
	exit 77
}

need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || fail "required command '$c' not found"
	done
}

# assert_eq ACTUAL EXPECTED WHAT
assert_eq() {
	[ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

# run CMD...: run a command, fail the test with its output if it fails.
run() {
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	[ "$rc" = 0 ] || fail "'$*' exited $rc: $out"
	[ -z "$out" ] || printf '%s\n' "$out"
}

# ---------------------------------------------------------------- cleanup

# on_exit CMD...: register a cleanup command (evaluated as a string), run
# when the test exits for any reason (success, fail, timeout's SIGTERM), in
# reverse order of registration. The test's exit status is preserved; a
# failing cleanup is logged and turns a success into a failure, because it
# means state leaked into the next test.
_bvm_cleanups=()
on_exit() {
	_bvm_cleanups+=("$*")
	trap _bvm_run_cleanups EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
}
_bvm_run_cleanups() {
	local rc=$? i c
	trap - EXIT
	for ((i = ${#_bvm_cleanups[@]} - 1; i >= 0; i--)); do
		c=${_bvm_cleanups[i]}
		if ! (eval "$c"); then
			printf 'cleanup failed: %s\n' "$c" >&2
			[ "$rc" = 0 ] && rc=1
		fi
	done
	_bvm_cleanups=()
	exit "$rc"
}

# ---------------------------------------------------------------- module

module_loaded() { [ -d /sys/module/blksnap ]; }

# module_load [PARAM=VALUE...]: insmod $BLKSNAP_KO unless already loaded.
module_load() {
	module_loaded && return 0
	[ -f "${BLKSNAP_KO:-}" ] || fail "module not built: BLKSNAP_KO='${BLKSNAP_KO:-}'"
	insmod "$BLKSNAP_KO" "$@" || fail "insmod $BLKSNAP_KO failed"
}

# module_unload: rmmod if loaded. Retries briefly: a reference dropped by a
# just-closed file can lag the close by a moment.
module_unload() {
	local i
	module_loaded || return 0
	for i in 1 2 3 4 5; do
		rmmod blksnap 2>/dev/null && return 0
		sleep 1
	done
	rmmod blksnap || fail "rmmod blksnap failed"
}

# ---------------------------------------------------------------- kernel log

# The kernel log is read from /dev/kmsg, not dmesg: records carry a
# sequence number, so "what was logged since position P" stays exact even if
# a test clears the ring buffer (dmesg -C) or it wraps.
# dd stops at the end of the log (EAGAIN, thanks to nonblock).
_bvm_kmsg() { dd if=/dev/kmsg iflag=nonblock bs=64k 2>/dev/null; }

# kmsg_pos: sequence number of the newest kernel log record.
kmsg_pos() {
	_bvm_kmsg | awk -F'[,;]' '/^[0-9]/ { s = $2 } END { print s + 0 }'
}

# kmsg_since POS: the text of the records newer than POS, one per line
# (continuation lines of multi-line records are kept; dictionary lines are
# dropped).
kmsg_since() {
	_bvm_kmsg | awk -v p="$1" '
		/^ / { next }
		{ split($0, h, ","); if (h[2] + 0 > p) { sub(/^[^;]*;/, ""); print } }'
}

# Patterns that mean the kernel is unhappy: oopses, BUG/WARN, sanitizers,
# list/refcount corruption, hung tasks, lockups and RCU stalls.
DMESG_BAD='Oops|BUG:|kernel BUG|WARNING:|KFENCE|KASAN|UBSAN|general protection|'\
'hung_task|blocked for more than|soft lockup|hard LOCKUP|detected stalls?|'\
'list_add corruption|list_del corruption|refcount_t|Kernel panic|stack-protector|'\
'BUG [a-zA-Z0-9_-]+ \(|Slab cache still has objects'

# dmesg_check [ALLOW_ERE] < LOG: print the offending lines of a kernel log
# excerpt; return 1 if there are any, 0 if it is clean.
dmesg_check() {
	local allow=${1:-} bad
	if [ -n "$allow" ]; then
		bad=$(grep -E -- "$DMESG_BAD" | grep -Ev -- "$allow" || true)
	else
		bad=$(grep -E -- "$DMESG_BAD" || true)
	fi
	[ -z "$bad" ] && return 0
	printf '%s\n' "$bad"
	return 1
}
