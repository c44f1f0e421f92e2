#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Host test of the stamp tool on regular files (the VM tests trust it to
# tell a right image from a wrong one):
#   stamp-selftest.sh PATH_TO_STAMP
# fill + verify; churn + check against the journal; each kind of damage
# (a flipped byte, a stale sector, a misplaced sector, zeros) is caught and
# reported at the right sector; write; pingpong (timed and stopped by
# SIGTERM) + last.
set -eu

stamp=$(readlink -f "$1")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stamp-selftest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}
# must_fail WHAT CMD...: CMD exits 1; its output is kept in $out.
must_fail() {
	local what=$1 rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	[ "$rc" = 1 ] || fail "$what: exit status $rc, expected 1: $out"
}
ok() {
	out=$("$@" 2>&1) || fail "'$*' failed: $out"
}

sectors=$((64 * 2048))
truncate -s 64M dev
ok "$stamp" fill dev 1 --journal j
ok "$stamp" verify dev 1
must_fail "verify with the wrong generation" "$stamp" verify dev 2
grep -q "^sector 0: gen 1 seq 0 .*expected gen 2$" <<<"$out" || fail "mismatch not described: $out"
grep -q " $sectors bad " <<<"$out" || fail "not every sector counted bad: $out"
ok "$stamp" check dev --journal j

# Churn: some of everything, and the result is exactly the journal.
ok "$stamp" churn dev 2 3 --journal j --threads 4
echo "$out"
read -r writes direct buffered < <(sed -n \
	's/.*: \([0-9]*\) writes (\([0-9]*\) direct, \([0-9]*\) buffered.*/\1 \2 \3/p' <<<"$out")
[ "${writes:-0}" -ge 100 ] && [ "$direct" -gt 0 ] && [ "$buffered" -gt 0 ] ||
	fail "churn did too little or not both kinds: $out"
grep -q " 4 threads" <<<"$out" || fail "not 4 threads: $out"
ok "$stamp" check dev --journal j
must_fail "verify after churn" "$stamp" verify dev 1
# A second churn continues the journal (fresh sequence numbers).
ok "$stamp" churn dev 3 1 --journal j --threads 2 --region 4096:40960
ok "$stamp" check dev --journal j
must_fail "verify of the second churn's region" "$stamp" verify dev 2 --region 4096:40960

# Damage, each caught at its sector.
# poke SECTOR BYTE_IN_SECTOR: flip one byte.
poke() {
	local off=$(($1 * 512 + $2)) b
	b=$(od -An -tu1 -j "$off" -N1 dev | tr -d ' ')
	# shellcheck disable=SC2059 # an octal escape made on purpose
	printf "\\$(printf '%03o' $(((b ^ 0x40) & 255)))" |
		dd of=dev bs=1 seek="$off" conv=notrunc status=none
}
cp dev dev.good
poke 77777 300
must_fail "check after a flipped payload byte" "$stamp" check dev --journal j
grep -q "^sector 77777: damaged stamp" <<<"$out" || fail "flipped byte not reported: $out"
grep -q " 1 bad " <<<"$out" || fail "more than one bad sector: $out"
cp dev.good dev
poke 5000 8
must_fail "check after a flipped LBA byte" "$stamp" check dev --journal j
grep -q "^sector 5000: damaged stamp" <<<"$out" || fail "flipped LBA not reported: $out"
cp dev.good dev
# A stale sector: a valid stamp of sector 100, but not the one expected.
"$stamp" write dev 1 100 1 >/dev/null
ok "$stamp" verify dev 1 --region 100:1
must_fail "check after a stale sector" "$stamp" check dev --journal j
grep -q "^sector 100: gen 1 seq [0-9]* (writer 0, sector 1/1 of its write), expected gen [0-9]* seq [0-9]*$" <<<"$out" ||
	fail "stale sector not reported: $out"
cp dev.good dev
# A misplaced sector: sector 9 copied over sector 10.
dd if=dev.good of=dev bs=512 skip=9 seek=10 count=1 conv=notrunc status=none
must_fail "check after a misplaced sector" "$stamp" check dev --journal j
grep -q "^sector 10: stamp of sector 9 " <<<"$out" || fail "misplaced sector not reported: $out"
cp dev.good dev
dd if=/dev/zero of=dev bs=512 seek=$((sectors - 1)) count=1 conv=notrunc status=none
must_fail "check after zeroing the last sector" "$stamp" check dev --journal j
grep -q "^sector $((sectors - 1)): zeros" <<<"$out" || fail "zeroed sector not reported: $out"
cp dev.good dev
ok "$stamp" check dev --journal j

# write: unaligned, buffered and direct, recorded in the journal.
ok "$stamp" write dev 4 12345 7 --journal j
ok "$stamp" write dev 4 20001 3000 --journal j --buffered
ok "$stamp" check dev --journal j
ok "$stamp" verify dev 4 --region 12345:7
must_fail "write past the end" "$stamp" write dev 4 $((sectors - 1)) 2

# A journal of another device is refused.
truncate -s 32M small
"$stamp" check small --journal j >/dev/null 2>&1 && fail "journal of another size accepted"

# pingpong: the rings end consistent, B never ahead of A.
truncate -s 80M a b
ok "$stamp" pingpong a b 5 1 --ready ready
[ -f ready ] || fail "pingpong did not signal ready"
last=$(sed -n 's/^pingpong: last //p' <<<"$out")
[ "${last:-0}" -gt 0 ] || fail "pingpong wrote nothing: $out"
assert_last() {
	ok "$stamp" last "$1" 5
	[ "$out" = "last $2" ] || fail "$1: $out, expected last $2"
}
assert_last a "$last"
assert_last b "$last"
# SIGTERM ends a long pingpong at once with its rings consistent.
rm -f ready
"$stamp" pingpong a b 6 600 --ready ready >pp.out 2>&1 &
writer=$!
for ((i = 0; i < 100; i++)); do [ -f ready ] && break; sleep 0.1; done
[ -f ready ] || fail "pingpong did not signal ready"
sleep 0.3
kill -TERM "$writer"
SECONDS=0
wait "$writer" || fail "pingpong stopped by SIGTERM failed: $(cat pp.out)"
[ "$SECONDS" -lt 10 ] || fail "pingpong took $SECONDS s to stop"
last=$(sed -n 's/^pingpong: last //p' pp.out)
[ "${last:-0}" -gt 0 ] || fail "stopped pingpong wrote nothing: $(cat pp.out)"
ok "$stamp" last a 6
[ "$out" = "last $last" ] || fail "a after SIGTERM: $out, expected last $last"
ok "$stamp" last b 6
[ "$out" = "last $last" ] || fail "b after SIGTERM: $out, expected last $last"
# A ring with a hole (an older write lost) is caught.
"$stamp" write a 5 $((129 * 3)) 1 >/dev/null
must_fail "ring with a foreign stamp" "$stamp" last a 5
echo "stamp selftest: all good"
