#!/bin/bash
# Data written through a tracked device reads back intact (fio verify with
# crc32c, two concurrent writers of mixed unaligned sizes, direct and
# buffered), and every block the writers covered is marked, nothing else.
# timeout: 600
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
need_cmd fio

dev=${VM_DISKS%% *}
module_load
run bsio attach "$dev"
on_exit "bsio detach $dev"
bs=$(cbt_info "$dev" block_size)

# Two regions of 96 MiB each, starting at 64 MiB and 256 MiB. fio's random
# map makes each job write every byte of its region once before verifying.
cat >"$TEST_TMP/job.fio" <<FIO
[global]
filename=$dev
rw=randwrite
bsrange=512-96k
blockalign=512
size=96m
verify=crc32c
verify_fatal=1
do_verify=1
[direct]
ioengine=libaio
iodepth=16
direct=1
offset=64m
[buffered]
ioengine=psync
direct=0
end_fsync=1
offset=256m
FIO
fio --output="$TEST_TMP/fio.out" "$TEST_TMP/job.fio" ||
	{ cat "$TEST_TMP/fio.out"; fail "fio reported an error or a verify mismatch"; }
# Read it all back from the disk, not the page cache: the same workload,
# verify only (fio's default random seeds repeat).
echo 3 >/proc/sys/vm/drop_caches
fio --verify_only --output="$TEST_TMP/fio-verify.out" "$TEST_TMP/job.fio" ||
	{ cat "$TEST_TMP/fio-verify.out"; fail "data read back from the disk differs"; }

mib=$((1024 * 1024))
{
	blocks_of "$bs" $((64 * mib)) $((160 * mib))
	blocks_of "$bs" $((256 * mib)) $((352 * mib))
} >"$TEST_TMP/want"
assert_blocks "$dev" 1 "$TEST_TMP/want"
