#!/bin/bash
# One snapshot of two devices is one instant across both. A writer
# alternates ordered writes (sequence N to A, and once that completed N to
# B, then N+1 to A...) into a ring on a whole disk (A) and on a partition of
# the other disk (B); five snapshots taken while it runs (storage on a loop
# device over tmpfs) show B at A's sequence or one behind, never ahead and
# never further behind, and each ring is a consistent prefix of the writes.
# Each take advances both devices' change numbers by one. The writer runs
# until the rounds are done (a loaded host may take 20 s a round).
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"
need_cmd sfdisk wipefs
need_loop

read -r a disk <<<"$VM_DISKS"
module_load

printf 'label: gpt\nstart=2048, size=%d\n' $((256 * MIB)) | sfdisk -q "$disk"
on_exit "wipefs -q -a $disk; blockdev --rereadpt $disk"
blockdev --rereadpt "$disk"
b=${disk}1
wait_for "-b $b" 10 || fail "partition $b did not appear"

truncate -s 384M "$TEST_TMP/storage"
loopdev=$(losetup -f --show "$TEST_TMP/storage")
on_exit "losetup -d $loopdev"
track "$a" "$b"
cn_a=$(cbt_info "$a" changes_number)
cn_b=$(cbt_info "$b" changes_number)

rounds_wanted=5
# Not the stamp function: $! must be the writer itself, for the SIGTERM.
"$STAMP" pingpong "$a" "$b" 7 240 --ready "$TEST_TMP/ready" >"$TEST_TMP/pingpong.out" 2>&1 &
writer=$!
on_exit "kill $writer 2>/dev/null; wait $writer 2>/dev/null; true"
wait_for "-e $TEST_TMP/ready" 60 || fail "the writer did not start"

rounds=0
while [ "$rounds" -lt "$rounds_wanted" ]; do
	kill -0 "$writer" 2>/dev/null || fail "the writer ended after $rounds rounds"
	rounds=$((rounds + 1))
	snap_create "$a" "$b"
	snap_storage "$SNAP_ID" "$loopdev" 0 "$(sectors "$loopdev")"
	sleep 0.$((RANDOM % 10))
	snap_take "$SNAP_ID"
	assert_cn "$a" $((cn_a + rounds))
	assert_cn "$b" $((cn_b + rounds))
	img_a=$(image_of "$a")
	img_b=$(image_of "$b")
	last_a=$(stamp last "$img_a" 7 2>&1) || fail "image of $a: $last_a"
	last_b=$(stamp last "$img_b" 7 2>&1) || fail "image of $b: $last_b"
	last_a=${last_a#last } last_b=${last_b#last }
	log "round $rounds: image of A at $last_a, image of B at $last_b"
	[ "$last_b" = "$last_a" ] || [ "$last_b" = $((last_a - 1)) ] ||
		fail "not one instant: image of A at $last_a, image of B at $last_b"
	# The writer went on past the take.
	sleep 1
	now_a=$(stamp last "$a" 7 --live)
	[ "${now_a#last }" -gt "$last_a" ] ||
		fail "no write after the take (writer stuck?)"
	assert_eq "$(snap_info "$SNAP_ID" state)" taken "state after round $rounds"
	run bsio snapshot-destroy "$SNAP_ID"
done
kill -TERM "$writer"
wait "$writer" || { cat "$TEST_TMP/pingpong.out"; fail "the writer failed"; }
cat "$TEST_TMP/pingpong.out"

# Both rings end at the writer's last sequence.
final=$(sed -n 's/^pingpong: last //p' "$TEST_TMP/pingpong.out")
assert_eq "$(stamp last "$a" 7)" "last $final" "ring on $a at the end"
assert_eq "$(stamp last "$b" 7)" "last $final" "ring on $b at the end"
