#!/bin/bash
# Each take advances the change number by one; after 255 the CBT starts a
# new generation (number back at the start, map empty) instead of
# wrapping, so no backup chain can mistake an old number for a new one.
# timeout: 600
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"

read -r dev store <<<"$VM_DISKS"
module_load
run bsio attach "$dev"
on_exit "bsio detach $dev"

gen=$(cbt_info "$dev" generation)
dd if=/dev/urandom of="$dev" bs=64k count=1 seek=10 oflag=direct status=none
n=$(cbt_info "$dev" changes_number)
assert_eq "$n" 1 "first change number"
# 254 takes in one process (one each would spend minutes starting
# processes in the guest), checking the number after each
numbers=$(bsio take-cycle "$dev" "$store" $((255 - n)) | tr '\n' ' ')
assert_eq "$numbers" "$(seq -s ' ' $((n + 1)) 255) " "change numbers after each take"
assert_eq "$(cbt_info "$dev" generation)" "$gen" "generation before the wrap"
assert_eq "$(cbt_blocks "$dev")" "10 1" "map before the wrap"

run bsio take-cycle "$dev" "$store" 1
gen2=$(cbt_info "$dev" generation)
[ "$gen2" != "$gen" ] || fail "change number wrapped inside generation $gen"
assert_eq "$(cbt_info "$dev" changes_number)" 2 "change number in the new generation"
[ -z "$(bsio map "$dev")" ] || fail "new generation's map is not empty: $(bsio map "$dev")"
dd if=/dev/urandom of="$dev" bs=64k count=1 seek=20 oflag=direct status=none
assert_eq "$(cbt_blocks "$dev")" "20 2" "write after the wrap"

# While a snapshot is held, the map frozen at its take stays as it was;
# the live map goes on with the next number.
dd if=/dev/urandom of="$dev" bs=64k count=1 seek=30 oflag=direct status=none
id=$(bsio snapshot-create)
on_exit "bsio snapshot-destroy $id 2>/dev/null || true"
run bsio snapshot-add "$id" "$dev"
run bsio snapshot-append "$id" "$store" 0 65536
run bsio snapshot-take "$id"
dd if=/dev/urandom of="$dev" bs=64k count=1 seek=40 oflag=direct status=none
assert_eq "$(bsio map-snapshot "$dev" | tr '\n' ' ')" "20 1 2 30 1 2 " "frozen map"
assert_eq "$(bsio map "$dev" | tr '\n' ' ')" "20 1 2 30 1 2 40 1 3 " "live map"
run bsio snapshot-destroy "$id"
bsio map-snapshot "$dev" 2>/dev/null && fail "a frozen map outlived its snapshot"
exit 0
