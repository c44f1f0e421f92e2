#!/bin/bash
# Writes at known offsets (O_DIRECT, buffered + fsync, unaligned, across
# tracking-block boundaries, the device's last block) mark exactly the
# tracking blocks they touch; reads mark nothing; MarkDirty marks exactly
# the blocks of its ranges. The reported geometry matches the device.
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"

dev=${VM_DISKS%% *}
module_load
run bsio attach "$dev"
on_exit "bsio detach $dev"

# Geometry: 64 KiB blocks (the minimum) for a device of a few GiB.
sectors=$(blockdev --getsz "$dev")
bs=$(cbt_info "$dev" block_size)
assert_eq "$(cbt_info "$dev" capacity)" "$sectors" "capacity in sectors"
assert_eq "$bs" 65536 "tracking block size"
assert_eq "$(cbt_info "$dev" block_count)" $(((sectors * 512 + bs - 1) / bs)) "block count"
assert_eq "$(cbt_info "$dev" changes_number)" 1 "first change number"
[ -z "$(bsio map "$dev")" ] || fail "fresh map is not empty"

# Reads, direct and buffered, change nothing.
dd if="$dev" of=/dev/null bs=1M count=64 iflag=direct status=none
dd if="$dev" of=/dev/null bs=1M count=64 skip=512 status=none
[ -z "$(bsio map "$dev")" ] || fail "reads marked blocks"

want=$TEST_TMP/want
: >"$want"
# wr_direct OFFSET LENGTH: O_DIRECT write of LENGTH bytes (a multiple of
# 4096) at byte OFFSET (4096-aligned).
wr_direct() {
	dd if=/dev/urandom of="$dev" bs=4096 count=$(($2 / 4096)) \
		seek=$(($1 / 4096)) oflag=direct conv=notrunc status=none
	blocks_of "$bs" "$1" $(($1 + $2)) >>"$want"
}
# wr_buffered OFFSET LENGTH: buffered write at any byte offset and length,
# then fsync. The page cache writes whole pages, so the blocks expected
# are those of the 4 KiB pages touched.
wr_buffered() {
	local first=$(($1 / 4096 * 4096)) end=$((($1 + $2 + 4095) / 4096 * 4096))
	head -c "$2" /dev/urandom | dd of="$dev" bs=1M seek="$1" iflag=fullblock \
		oflag=seek_bytes conv=notrunc,fsync status=none
	blocks_of "$bs" "$first" "$end" >>"$want"
}

wr_direct 0 4096                              # first block
wr_direct $((10 * bs - 4096)) 8192            # straddles blocks 9 and 10
wr_direct $((20 * bs)) "$bs"                  # exactly one block
wr_direct $((30 * bs - 4096)) $((2 * bs + 8192)) # 4 blocks, both ends partial
wr_direct $((sectors * 512 - 4096)) 4096      # last block of the device
wr_buffered $((100 * bs + 12345)) 1000        # unaligned, inside one page
wr_buffered $((200 * bs + 512)) $((3 * 1024 * 1024))  # unaligned, many blocks
wr_buffered $((300 * bs - 100)) 200           # unaligned, across a boundary
assert_blocks "$dev" 1 "$want"

# Reads after writes still change nothing.
dd if="$dev" of=/dev/null bs=1M count=32 skip=1000 iflag=direct status=none
assert_blocks "$dev" 1 "$want"

# MarkDirty: sector ranges, one inside a block, one across three blocks.
run bsio dirty "$dev" $((500 * bs / 512 + 3)) 1 $((600 * bs / 512 - 1)) $((2 * bs / 512 + 2))
{ echo 500; blocks_of "$bs" $((600 * bs - 512)) $((602 * bs + 512)); } >>"$want"
assert_blocks "$dev" 1 "$want"

# The changed ranges reported in bytes cover exactly these blocks.
expected_bytes=$(($(sort -n -u "$want" | wc -l) * bs))
got_bytes=$(bsio changed "$dev" 0 | awk '{ s += $2 } END { print s + 0 }')
assert_eq "$got_bytes" "$expected_bytes" "bytes in changed ranges"
