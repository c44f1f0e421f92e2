#!/bin/bash
# Loading and unloading: unload with devices tracked detaches them and frees
# their maps; bad module parameters are refused at load; a second load
# fails cleanly; the reported CBT memory follows attach and detach exactly.
# timeout: 180
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"

read -r dev1 dev2 <<<"$VM_DISKS"
module_unload

# Bad parameters: refused, nothing left behind.
for bad in tracking_block_minimum_shift=8 tracking_block_maximum_shift=40 \
	"tracking_block_minimum_shift=20 tracking_block_maximum_shift=16" \
	tracking_block_maximum_count=10 copy_group_shift=11 copy_group_shift=25 \
	copy_group_eager=maybe; do
	# shellcheck disable=SC2086
	insmod "$BLKSNAP_KO" $bad 2>/dev/null && fail "insmod accepted $bad"
	module_loaded && fail "module loaded with $bad"
	[ -e /dev/blksnap-control ] && fail "control device left after refused load"
done

module_load
insmod "$BLKSNAP_KO" 2>/dev/null && fail "a second insmod succeeded"
assert_eq "$(bsio version)" "1.1.0.0" "module version"
assert_eq "$(cbt_memory)" 0 "CBT memory with nothing tracked"

# Memory accounting: one byte per block, page-rounded, plus a descriptor.
run bsio attach "$dev1"
count1=$(cbt_info "$dev1" block_count)
mem1=$(cbt_memory)
pages=$(((count1 + 4095) / 4096 * 4096))
[ "$mem1" -ge "$pages" ] && [ "$mem1" -le $((pages + 4096)) ] ||
	fail "CBT memory $mem1 for a $count1-block map"
run bsio attach "$dev2"
[ "$(cbt_memory)" -gt "$mem1" ] || fail "second map not accounted"
run bsio detach "$dev2"
assert_eq "$(cbt_memory)" "$mem1" "CBT memory after detaching one of two"

# Unload with a device tracked, then reload: clean slate.
dd if=/dev/urandom of="$dev1" bs=64k count=1 oflag=direct status=none
module_unload
[ -e /dev/blksnap-control ] && fail "control device survived unload"
module_load
[ -z "$(bsio list)" ] || fail "trackers survived unload: $(bsio list)"
assert_eq "$(cbt_memory)" 0 "CBT memory after reload"

# Parameters shape the geometry: 1 MiB minimum blocks.
module_unload
module_load tracking_block_minimum_shift=20
run bsio attach "$dev1"
assert_eq "$(cbt_info "$dev1" block_size)" 1048576 "block size with minimum shift 20"
run bsio detach "$dev1"
module_unload
module_load
