#!/bin/bash
# The write hook on submit_bio_noacct() alone takes no full register save
# (ftrace shows it with IPMODIFY, without REGS), and another ftrace user on
# the same function, a kprobe event as perf probe or bpftrace set, changes
# nothing: with the probe set before the module loads, writes mark exactly
# their blocks and a snapshot image keeps the data of the take while the
# original is churned; the probe counts bios throughout; removed under a
# held snapshot, both go on working; set after the load, the module unloads
# under it and the probe goes on counting.
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"

read -r dev store <<<"$VM_DISKS"
region=$((64 * MIB))
tracing=/sys/kernel/tracing
[ -e "$tracing/kprobe_events" ] || mount -t tracefs nodev "$tracing" ||
	fail "cannot mount tracefs"
[ -e "$tracing/kprobe_events" ] || fail "no kprobe events in this kernel"
probe=blksnap_test_submit
module_unload
on_exit "module_unload; module_load"

probe_add() {
	echo "p:$probe submit_bio_noacct" >>"$tracing/kprobe_events" ||
		fail "cannot set a kprobe on submit_bio_noacct"
	echo 1 >"$tracing/events/kprobes/$probe/enable"
}
probe_remove() {
	[ -d "$tracing/events/kprobes/$probe" ] || return 0
	echo 0 >"$tracing/events/kprobes/$probe/enable"
	echo "-:$probe" >>"$tracing/kprobe_events"
}
probe_hits() {
	awk -v p="$probe" '$1 == p { print $2 }' "$tracing/kprobe_profile"
}
# ftrace_users: "(N) FLAGS" of submit_bio_noacct in enabled_functions,
# without the trampoline and callback that follow.
ftrace_users() {
	awk '$1 == "submit_bio_noacct" { $1 = ""; print }' \
		"$tracing/enabled_functions" | sed 's/ tramp:.*//; s/ ->.*//'
}
# assert_users N WHEN: submit_bio_noacct has N ftrace users.
assert_users() {
	[[ $(ftrace_users) =~ ^\ *\($1\) ]] ||
		fail "ftrace users of submit_bio_noacct $2: '$(ftrace_users)'"
}
on_exit probe_remove

# The module alone: one user, IPMODIFY, no register save.
module_load
users=$(ftrace_users)
log "submit_bio_noacct with the module alone: $users"
assert_users 1 "with the module alone"
[[ $users == *" I"* ]] || fail "the hook does not modify the IP: '$users'"
[[ $users == *" R"* ]] && fail "the hook saves all registers: '$users'"
module_unload

# A probe first, then the module.
probe_add
module_load
users=$(ftrace_users)
log "submit_bio_noacct with a kprobe beside the module: $users"
assert_users 2 "with a kprobe beside the module"
hits=$(probe_hits)
snap_stamped "$dev" "$region" "$store" "$(sectors "$store")"
cn=$(cbt_info "$dev" changes_number)
run stamp churn "$dev" 2 5 --threads 2 --region "0:$region" \
	--journal "$TEST_TMP/orig"
run stamp verify "$img" 1 --region "0:$region"
run stamp check "$dev" --journal "$TEST_TMP/orig" --region "0:$region"
assert_marked_exactly "$dev" "$cn" "$TEST_TMP/orig:2"
[ "$(probe_hits)" -gt "$hits" ] || fail "the kprobe saw no bio"

# The probe goes while the snapshot is held.
probe_remove
assert_users 1 "after removing the kprobe"
run stamp write "$dev" 3 $((region / 2 + 5)) 300 --journal "$TEST_TMP/orig"
run stamp verify "$img" 1 --region "0:$region"
run stamp check "$dev" --journal "$TEST_TMP/orig" --region "0:$region"
assert_marked_exactly "$dev" "$cn" "$TEST_TMP/orig:2" "$TEST_TMP/orig:3"
assert_eq "$(snap_info "$SNAP_ID" error)" 0 "snapshot error"
run bsio snapshot-destroy "$SNAP_ID"
run bsio detach "$dev"

# The module first, then a probe; the module unloads under it.
probe_add
run bsio attach "$dev"
dd if=/dev/urandom of="$dev" bs=4096 count=2 seek=1000 oflag=direct status=none
blocks_of "$(cbt_info "$dev" block_size)" $((1000 * 4096)) $((1002 * 4096)) \
	>"$TEST_TMP/want"
assert_blocks "$dev" "$(cbt_info "$dev" changes_number)" "$TEST_TMP/want"
module_unload
assert_users 1 "after unloading the module"
hits=$(probe_hits)
dd if=/dev/zero of="$dev" bs=4096 count=1 oflag=direct status=none
[ "$(probe_hits)" -gt "$hits" ] || fail "the kprobe stopped counting after the unload"
probe_remove
