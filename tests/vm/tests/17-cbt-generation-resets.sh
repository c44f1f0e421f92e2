#!/bin/bash
# The generation changes, and the map starts empty, when the device is
# resized and when tracking restarts; it stays the same otherwise.
# timeout: 180
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
need_loop

module_load
truncate -s 64M "$TEST_TMP/img"
loopdev=$(losetup -f --show "$TEST_TMP/img")
on_exit "losetup -d $loopdev"
run bsio attach "$loopdev"
on_exit "bsio detach $loopdev 2>/dev/null || true"

gen=$(cbt_info "$loopdev" generation)
dd if=/dev/urandom of="$loopdev" bs=64k count=2 oflag=direct status=none
assert_eq "$(cbt_info "$loopdev" generation)" "$gen" "generation after writes"
[ -n "$(bsio map "$loopdev")" ] || fail "writes not marked"

# Grow the backing file and tell the loop driver.
truncate -s 128M "$TEST_TMP/img"
losetup -c "$loopdev"
assert_eq "$(cbt_info "$loopdev" capacity)" 262144 "capacity after resize"
gen2=$(cbt_info "$loopdev" generation)
[ "$gen2" != "$gen" ] || fail "resize kept generation $gen"
[ -z "$(bsio map "$loopdev")" ] || fail "map not reset by the resize"
# Writes past the old end are tracked in the new map.
dd if=/dev/urandom of="$loopdev" bs=64k count=1 seek=1500 oflag=direct status=none
assert_eq "$(cbt_blocks "$loopdev")" "1500 1" "block written past the old end"

# Restart tracking: new generation again.
run bsio detach "$loopdev"
run bsio attach "$loopdev"
gen3=$(cbt_info "$loopdev" generation)
[ "$gen3" != "$gen2" ] || fail "re-attach kept generation $gen2"
