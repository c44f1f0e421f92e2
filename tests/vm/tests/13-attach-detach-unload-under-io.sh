#!/bin/bash
# Attaching and detaching trackers, and unloading and reloading the module,
# while writers run on the devices: no kernel complaint, and every byte the
# writers wrote reads back intact (fio crc32c verify).
# timeout: 600
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
need_cmd fio

read -r dev1 dev2 <<<"$VM_DISKS"
module_load

cat >"$TEST_TMP/job.fio" <<FIO
[global]
rw=randwrite
bsrange=4k-64k
size=64m
loops=4
verify=crc32c
verify_fatal=1
ioengine=libaio
iodepth=8
direct=1
[a]
filename=$dev1
[b]
filename=$dev2
FIO
fio --output="$TEST_TMP/fio.out" "$TEST_TMP/job.fio" &
fio_pid=$!
on_exit "kill $fio_pid 2>/dev/null; wait $fio_pid 2>/dev/null; true"

cycles=0
while kill -0 "$fio_pid" 2>/dev/null; do
	bsio attach "$dev1" && bsio attach "$dev2" || fail "attach under I/O"
	bsio info "$dev1" >/dev/null || fail "info under I/O"
	bsio detach "$dev1" || fail "detach under I/O"
	if [ $((cycles % 4)) = 3 ]; then
		# Unload with dev2 still tracked: the module detaches it.
		module_unload
		module_load
	else
		bsio detach "$dev2" || fail "detach under I/O"
	fi
	cycles=$((cycles + 1))
done
wait "$fio_pid" || { cat "$TEST_TMP/fio.out"; fail "fio failed: data corrupted or I/O error"; }
log "$cycles attach/detach cycles ($((cycles / 4)) unloads) while fio ran"
[ "$cycles" -ge 8 ] || fail "only $cycles cycles ran while fio wrote; the test proved little"
