#!/bin/bash
# Low free difference storage raises an event (threshold: the module
# parameter diff_storage_minimum) that a watcher answers by appending more,
# while writers keep copying chunks: the snapshot never overflows, the
# event comes again after each append (re-armed) but not in a flood, and
# the image still holds the device as at the take.
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"

read -r dev store <<<"$VM_DISKS"
journal=$TEST_TMP/journal
# Sized for 256 KiB chunks (loaded so): a random 4 KiB write takes a
# whole chunk (the writers copy 20-50 MiB/s), and the bash watcher below
# may need seconds to answer on a loaded host: the mark leaves it ~10 s.
minimum=$((384 * MIB))
initial=$((512 * MIB))
region=$((1024 * MIB))

# The parameter is read at load: reload with it, and without it at exit.
module_unload
on_exit "module_unload; module_load"
module_load diff_storage_minimum=$minimum chunk_minimum_shift=18
param=/sys/module/blksnap/parameters/diff_storage_minimum
[ -r "$param" ] || fail "no module parameter diff_storage_minimum"
assert_eq "$(cat "$param")" "$minimum" "diff_storage_minimum"

run stamp fill "$dev" 1 --region 0:$region --journal "$journal"
track "$dev"
snap_create "$dev"
snap_storage "$SNAP_ID" "$store" 0 "$initial"
snap_take "$SNAP_ID"
img=$(image_of "$dev")

# The watcher: on low space, append the next piece of the other disk.
events=$TEST_TMP/events
: >"$events"
watcher() {
	local next=$initial size rc out req add
	size=$(sectors "$store")
	while :; do
		rc=0
		out=$(bsio wait-event "$SNAP_ID" 1000) || rc=$?
		case "$rc" in
		0) ;;
		3) continue ;;
		4) return 0 ;;	# snapshot destroyed
		*) echo "wait-event failed: $rc $out" >>"$events"; return 1 ;;
		esac
		echo "$out" >>"$events"
		case "$out" in
		low-space*)
			req=$(sed -n 's/.*requested=\([0-9]*\).*/\1/p' <<<"$out")
			add=$req
			[ $((next + add)) -le "$size" ] || add=$((size - next))
			if [ "$add" -gt 0 ]; then
				bsio snapshot-append "$SNAP_ID" "$store" "$next" "$add" ||
					{ echo "append failed" >>"$events"; return 1; }
				echo "appended $next $add" >>"$events"
				next=$((next + add))
			else
				echo "no room to append" >>"$events"
			fi
			;;
		esac
	done
}
watcher &
watch=$!
on_exit "kill $watch 2>/dev/null; wait $watch 2>/dev/null; true"

run stamp churn "$dev" 2 40 --threads 4 --region 0:$region --journal "$journal"
# Every event answered before counting: the last append may be under way
# (a loaded host can take seconds to fork the watcher's tools).
for _ in $(seq 150); do
	[ "$(grep -c '^low-space' "$events")" -le \
		"$(grep -c -e '^appended' -e '^no room' "$events")" ] && break
	sleep 0.2
done
cat "$events"
assert_eq "$(snap_info "$SNAP_ID" state)" taken "state after the writes (events above)"
assert_eq "$(snap_info "$SNAP_ID" error)" 0 "snapshot error"
grep -q '^corrupted' "$events" && fail "the snapshot reported corruption"
lows=$(grep -c '^low-space' "$events" || true)
appends=$(grep -c '^appended' "$events" || true)
[ "$appends" -ge 1 ] || fail "no low-space event: the writers copied $(snap_info "$SNAP_ID" storage_used) sectors"
[ "$lows" -le $((appends + 1)) ] || fail "$lows low-space events for $appends appends: not once per crossing"
given=$(awk -v s="$initial" '$1 == "appended" { s += $3 } END { print s }' "$events")
assert_eq "$(snap_info "$SNAP_ID" storage_sectors)" "$given" "storage appended"
used=$(snap_info "$SNAP_ID" storage_used)
log "$lows low-space events, $appends appends, $((used / MIB)) of $((given / MIB)) MiB used"
[ "$used" -gt "$initial" ] || fail "the first storage never ran out: the test proved little"

run stamp verify "$img" 1 --region 0:$region
run stamp check "$dev" --journal "$journal"
run bsio snapshot-destroy "$SNAP_ID"
# The watcher sees the snapshot go (ESRCH) and ends.
for _ in $(seq 50); do kill -0 "$watch" 2>/dev/null || break; sleep 0.2; done
kill -0 "$watch" 2>/dev/null && fail "wait-event did not return when the snapshot was destroyed"
wait "$watch" || fail "the watcher failed: $(tail -3 "$events")"
