#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# blksnapd grows the difference storage by itself: a snapshot made with a
# small initial size and grow step (the module raising low-space events
# below diff_storage_minimum) while fio writes several times that much to
# the device. The daemon answers every event: StorageAllocated rises,
# LowSpace and StorageAppended signals are seen on the bus, no Corrupted
# signal, State stays "taken" (in the kernel too), and the image still
# holds the region written before the take. The answers come from the
# spare file allocated ahead, which is allocated again after each.
# timeout: 240
set -eu
# shellcheck source=../lib.sh
. "$BLKSNAP_SRC/tests/vm/lib.sh"
# shellcheck source=../service-lib.sh
. "$BLKSNAP_SRC/tests/vm/service-lib.sh"
need_cmd fio

read -r disk store_disk <<<"$VM_DISKS"
MiB=$((1 << 20))
minimum=48	# MiB: the module asks for more below this much free
initial=64	# MiB, also the grow step
written=256	# MiB fio writes, at 16 MiB/s: about 4 growths
kept=32		# MiB written before the take, checked on the image

module_unload
module_load diff_storage_minimum=$((minimum * 2048))
on_exit module_unload
svc_storage "$store_disk"
svc_config
svc_bus
svc_start

run dd if=/dev/urandom of="$disk" bs=1M count=$kept oflag=direct status=none
before=$(head -c $((kept * MiB)) "$disk" | sha256sum | cut -d' ' -f1)

gdbus monitor --system --dest "$SVC_NAME" >"$TEST_TMP/monitor" 2>&1 &
mon=$!
on_exit "kill $mon 2>/dev/null || true"
sleep 1	# subscribed

svc_call "$SVC_MANAGER" Manager.TrackDevice "$disk" '{}' >/dev/null
snap=$(svc_create "['$disk']" \
	"{'initial-size': <uint64 $((initial * MiB))>, 'grow-step': <uint64 $((initial * MiB))>}")
log "snapshot $snap"
id=$(svc_prop "$snap" Snapshot Id | tr -d '"' | cut -d' ' -f2)
assert_eq "$(svc_prop "$snap" Snapshot StorageAllocated)" "t $((initial * MiB))" \
	"StorageAllocated after the create"

run fio --name=churn --filename="$disk" --rw=randwrite --bs=64k --size=${written}m \
	--rate=16m --direct=1 --ioengine=libaio --iodepth=4 --randrepeat=0 \
	--output="$TEST_TMP/fio.out"
sleep 2	# a growth under way ends

grep -E 'low on storage|added|answered|spare|corrupt|cannot' "$SVC_LOG" || true
allocated=$(svc_prop "$snap" Snapshot StorageAllocated | cut -d' ' -f2)
used=$(svc_prop "$snap" Snapshot StorageUsed | cut -d' ' -f2)
log "storage: $((used / MiB)) MiB used of $((allocated / MiB)) MiB allocated"
assert_eq "$(svc_prop "$snap" Snapshot State)" 's "taken"' "State after the writes"
assert_eq "$(svc_prop "$snap" Snapshot Error)" "i 0" "Error after the writes"
[ "$used" -gt $((initial * MiB)) ] || fail "fio used only $((used / MiB)) MiB: the test proved little"
[ "$allocated" -gt "$used" ] || fail "allocated $allocated <= used $used"
"$BSIOCTL" snapshot-info "$id" | grep -qx 'state taken' || fail "kernel: $("$BSIOCTL" snapshot-info "$id")"

# the signals, as a client sees them
kill $mon
lows=$(grep -c "$snap: $SVC_IFACE.Snapshot.LowSpace" "$TEST_TMP/monitor" || true)
appends=$(grep -c "$snap: $SVC_IFACE.Snapshot.StorageAppended" "$TEST_TMP/monitor" || true)
log "$lows LowSpace, $appends StorageAppended signals"
grep -q "Snapshot.Corrupted" "$TEST_TMP/monitor" && fail "Corrupted signal: $(grep Corrupted "$TEST_TMP/monitor")"
[ "$lows" -ge 2 ] || fail "$lows LowSpace signals: $(cat "$TEST_TMP/monitor")"
# the initial allocation, then one per growth
[ "$appends" -ge $((1 + lows - 1)) ] || fail "$appends StorageAppended for $lows LowSpace"
last=$(grep "$snap: $SVC_IFACE.Snapshot.StorageAppended" "$TEST_TMP/monitor" | tail -1 |
	sed -E 's/.*, uint64 ([0-9]+)\)$/\1/')
assert_eq "$last" "$allocated" "allocated in the last StorageAppended signal"
grep -q "'StorageAllocated': <uint64 $allocated>" "$TEST_TMP/monitor" ||
	fail "no PropertiesChanged for StorageAllocated $allocated"
assert_eq "$(appended_files | wc -l)" $((appends)) "storage files (one per append)"
spared=$(grep -c "MiB of storage from the spare" "$SVC_LOG" || true)
log "$spared growths from the spare"
[ "$spared" -ge 1 ] || fail "no growth was answered from the spare"
# spares of one growth each, holding twice the threshold: 2 x 48 MiB -> 2
spares_ready() { [ "$(spare_files | wc -l)" = 2 ] && [ "$(spare_files | xargs ls 2>/dev/null | wc -l)" = 2 ]; }
for _ in $(seq 100); do spares_ready && break; sleep 0.1; done
assert_eq "$(spare_files | wc -l)" 2 "spare files (allocated again after the last growth)"
for f in $(spare_files); do [ -f "$f" ] || fail "the spare $f is not there"; done
# StorageSpare follows: the two files once both are allocated
spare_bytes=$(spare_files | xargs stat -c %s | awk '{ n += $1 } END { print n }')
for _ in $(seq 100); do
	[ "$(svc_prop "$snap" Snapshot StorageSpare)" = "t $spare_bytes" ] && break
	sleep 0.1
done
assert_eq "$(svc_prop "$snap" Snapshot StorageSpare)" "t $spare_bytes" "StorageSpare"

image=$("$SVC_OPEN_IMAGE" "$snap" "$disk" $((kept * MiB)) | sha256sum | cut -d' ' -f1)
assert_eq "$image" "$before" "checksum of the image's first $kept MiB"

svc_call "$snap" Snapshot.Destroy '{}' >/dev/null
assert_eq "$(storage_files | wc -l)" 0 "storage files after destroy"
