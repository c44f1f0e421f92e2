#!/bin/bash
# A take waits for the writes in flight on its devices. The device is a
# dm-delay target that completes each write only after it has been held
# for 1.5 s. A write sent after the device was added to the snapshot and
# still in flight when the take starts is in the image: the take lasts
# until it completes. A second write to the same chunk, sent the moment the
# take returns (its copy-on-write reads the chunk at once), is not in the
# image. The original holds both. A take with nothing in flight is quick.
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"
need_cmd dmsetup

read -r disk store <<<"$VM_DISKS"
delay_ms=1500
module_load

# 64 MiB of zeros behind a target that holds writes (not reads).
run dd if=/dev/zero of="$disk" bs=1M count=64 oflag=direct status=none
dm_delay blksnap-slow "$disk" $((64 * MIB)) 0 "$delay_ms"
slow=/dev/mapper/blksnap-slow

head -c 65536 /dev/urandom >"$TEST_TMP/first"
head -c 65536 /dev/urandom >"$TEST_TMP/second"
zero=$(head -c 65536 /dev/zero | sha256sum | cut -d' ' -f1)
sum_of() { sha256sum <"$1" | cut -d' ' -f1; }
# at DEV KIB: checksum of the 64 KiB at KIB KiB, read past any cache.
at() {
	dd if="$1" bs=64k skip=$(($2 / 64)) count=1 iflag=direct status=none |
		sha256sum | cut -d' ' -f1
}
# write_at FILE KIB: write FILE's 64 KiB at KIB KiB of the slow device.
write_at() {
	dd if="$1" of="$slow" bs=64k seek=$(($2 / 64)) oflag=direct conv=notrunc status=none
}

track "$slow"
snap_create "$slow"
snap_storage "$SNAP_ID" "$store" 0 $((256 * MIB))

# The first write is in flight (held by dm-delay) when the take starts.
# It cannot complete before $delay_ms ms from its start, so a take that
# waits for it cannot end earlier, however slow the guest is.
sent=$(date +%s%N)
write_at "$TEST_TMP/first" 1024 &
first=$!
sleep 0.3
kill -0 "$first" 2>/dev/null || fail "the first write completed in under 0.3 s: the delay does not work"
take_us=$(bsio snapshot-take-timed "$SNAP_ID") || fail "take failed"
taken=$(date +%s%N)
# Sent at once: copy-on-write reads the whole chunk before it passes.
write_at "$TEST_TMP/second" 1088 &
second=$!
since_ms=$(((taken - sent) / 1000000))
log "take with a write in flight: $((take_us / 1000)) ms, ended $since_ms ms after the write was sent"
[ "$since_ms" -ge "$delay_ms" ] ||
	fail "the take ended $since_ms ms after the write was sent, took $((take_us / 1000)) ms: it did not wait for the write in flight (held ${delay_ms} ms)"
wait "$first" || fail "the first write failed"
wait "$second" || fail "the second write failed"
assert_eq "$(snap_info "$SNAP_ID" error)" 0 "snapshot error"

img=$(image_of "$slow")
assert_eq "$(image_info "$slow" chunk_size)" 131072 "chunk size"
assert_eq "$(at "$img" 1024)" "$(sum_of "$TEST_TMP/first")" "image: the write in flight at the take"
assert_eq "$(at "$img" 1088)" "$zero" "image: the write sent after the take"
assert_eq "$(at "$slow" 1024)" "$(sum_of "$TEST_TMP/first")" "original: the first write"
assert_eq "$(at "$slow" 1088)" "$(sum_of "$TEST_TMP/second")" "original: the second write"
run bsio snapshot-destroy "$SNAP_ID"

# With nothing in flight the take does not wait for the delay.
snap_create "$slow"
snap_storage "$SNAP_ID" "$store" 0 $((256 * MIB))
take_us=$(bsio snapshot-take-timed "$SNAP_ID") || fail "take failed"
log "take with nothing in flight: $((take_us / 1000)) ms"
[ "$take_us" -lt $((delay_ms * 1000)) ] ||
	fail "an idle take took $((take_us / 1000)) ms"
run bsio snapshot-destroy "$SNAP_ID"
