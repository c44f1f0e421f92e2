#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Benchmark (not a test): how fast blksnapd answers the module, and what it
# costs. In one guest, with a real system bus and polkitd, a snapshot of
# /dev/vdb with its difference storage on ext4 on /dev/vdc:
#  1. default grow step and threshold (GrowStep=256M, diff_storage_minimum
#     128 MiB), fio writing 1 MiB blocks as fast as the disk sustains
#     (BENCH_WRITE_MB, default 1400): the snapshot must not overflow.
#  2. a small grow step (BENCH_STEP_MB, default 32) and threshold 64 MiB,
#     the same writes: many growths. For every growth the daemon logs the
#     time from the kernel's low-space event (its ktime label) to the
#     append ioctl's return ("low-space event answered in N ms"): p50, p99,
#     max over all growths of both runs, against p99 <= 100 ms.
#  3. blksnapd's RSS when idle and with 4 snapshots, and the time of one
#     GetManagedObjects call (from a client that keeps its connection)
#     with 4 snapshots of 4 partitions, BENCH_CALLS times.
# Prints "result ..." and "memory ..." lines, "bench-check: PASS|FAIL".
# timeout: 1800
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/service-lib.sh"
need_cmd fio sfdisk wipefs

write_mb=${BENCH_WRITE_MB:-1400}
step_mb=${BENCH_STEP_MB:-32}
calls=${BENCH_CALLS:-200}
read -r disk store_disk <<<"$VM_DISKS"
MiB=$((1 << 20))

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$SVC_PID/status"; }

# percentiles FILE: "n=N p50=X p99=Y max=Z" of the numbers in FILE
percentiles() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "n=0"; exit }
		i50 = int(NR * 0.50 + 0.999); i99 = int(NR * 0.99 + 0.999)
		printf "n=%d p50=%.1f p99=%.1f max=%.1f\n", NR, v[i50], v[i99], v[NR] }'
}

# growth_run NAME [CreateSnapshot options]: fio over the disk under a snapshot
growth_run() {
	local name=$1 opts=${2:-} snap state mbs lines
	lines=$(wc -l <"$SVC_LOG")
	svc_call "$SVC_MANAGER" Manager.TrackDevice "$disk" '{}' >/dev/null
	snap=$(svc_create "['$disk']" "{$opts}")
	fio --name=w --filename="$disk" --rw=write --bs=1M --direct=1 --ioengine=libaio \
		--iodepth=8 --size=${write_mb}m --output-format=terse --terse-version=3 \
		>"$TEST_TMP/fio.$name" || fail "fio failed"
	sleep 2
	mbs=$(awk -F';' '{ printf "%.1f", $48 / 1024 }' "$TEST_TMP/fio.$name")
	state=$(svc_prop "$snap" Snapshot State | cut -d' ' -f2 | tr -d '"')
	tail -n +$((lines + 1)) "$SVC_LOG" >"$TEST_TMP/log.$name"
	sed -n 's/.*low-space event answered in \([0-9.]*\) ms.*/\1/p' "$TEST_TMP/log.$name" \
		>"$TEST_TMP/lat.$name"
	# where the time of the slowest answers went
	grep 'low-space event answered' "$TEST_TMP/log.$name" |
		sed 's/.*answered in \([0-9.]*\) ms/\1 ms/' | sort -rn | head -3 |
		sed "s/^/slowest $name: /"
	echo "result growth $name: fio ${mbs} MiB/s, $(wc -l <"$TEST_TMP/lat.$name") growths" \
		"($(grep -c 'of storage from the spare' "$TEST_TMP/log.$name") from the spare)," \
		"$(($(svc_prop "$snap" Snapshot StorageAllocated | cut -d' ' -f2) / MiB)) MiB allocated," \
		"state $state; latency ms $(percentiles "$TEST_TMP/lat.$name")"
	svc_call "$snap" Snapshot.Destroy '{}' >/dev/null
	svc_call "$SVC_MANAGER" Manager.UntrackDevice "$disk" '{}' >/dev/null
	RUN_STATE=$state
}

log "zero-filling $disk"
dd if=/dev/zero of="$disk" bs=4M oflag=direct status=none 2>/dev/null || true
svc_storage "$store_disk"
svc_config
svc_bus

# 1. defaults
module_load
on_exit module_unload
svc_start
sleep 2
idle=$(rss_kb)
echo "memory blksnapd idle: VmRSS $idle KiB"
growth_run default
[ "$RUN_STATE" = taken ] &&
	echo "bench-check: PASS no overflow at full write rate with the default grow step" ||
	echo "bench-check: FAIL the snapshot overflowed ($RUN_STATE) with the default grow step"
svc_stop

# 2. many small growths
module_unload
module_load diff_storage_minimum=$((64 * 2048))
svc_start
growth_run small "'initial-size': <uint64 $((step_mb * MiB))>, 'grow-step': <uint64 $((step_mb * MiB))>"
cat "$TEST_TMP/lat.default" "$TEST_TMP/lat.small" >"$TEST_TMP/lat.all"
p=$(percentiles "$TEST_TMP/lat.all")
echo "result low-space event to storage appended, all growths: $p ms (target p99 <= 100)"
p99=$(sed -n 's/.*p99=\([0-9.]*\).*/\1/p' <<<"$p")
[ -n "$p99" ] && awk -v p="$p99" 'BEGIN { exit !(p <= 100) }' &&
	echo "bench-check: PASS low-space answer p99 $p99 ms" ||
	echo "bench-check: FAIL low-space answer p99 ${p99:-none} ms"

# 3. four snapshots: RSS and GetManagedObjects
printf 'label: gpt\nstart=2048, size=262144\nstart=264192, size=262144\nstart=526336, size=262144\nstart=788480, size=262144\n' |
	sfdisk -q "$disk"
on_exit "wipefs -q -a $disk; blockdev --rereadpt $disk"
blockdev --rereadpt "$disk"
snaps=()
for i in 1 2 3 4; do
	[ -b "$disk$i" ] || fail "no $disk$i"
	svc_call "$SVC_MANAGER" Manager.TrackDevice "$disk$i" '{}' >/dev/null
	snaps+=("$(svc_create "['$disk$i']" "{'initial-size': <uint64 $((16 * MiB))>}")")
done
sleep 2
echo "memory blksnapd with 4 snapshots: VmRSS $(rss_kb) KiB (idle $idle KiB)"
/usr/bin/python3 - "$calls" <<'PY'
import sys, time
from gi.repository import Gio, GLib
bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
times = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter()
    r = bus.call_sync("org.blksnap.BlkSnap1", "/org/blksnap/BlkSnap1",
                      "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", None,
                      GLib.VariantType("(a{oa{sa{sv}}})"), Gio.DBusCallFlags.NONE, -1, None)
    times.append((time.perf_counter() - t) * 1000)
objs = r.unpack()[0]
snaps = [o for o in objs if "/snapshots/" in o]
times.sort()
n = len(times)
print("result GetManagedObjects with %d snapshots, %d objects, %d bytes: "
      "p50 %.2f ms, p99 %.2f ms, mean %.2f ms over %d calls" % (
          len(snaps), len(objs), len(r.get_data_as_bytes().get_data()),
          times[n // 2], times[min(n - 1, int(n * 0.99))], sum(times) / n, n))
PY
for s in "${snaps[@]}"; do svc_call "$s" Snapshot.Destroy '{}' >/dev/null; done
for i in 1 2 3 4; do svc_call "$SVC_MANAGER" Manager.UntrackDevice "$disk$i" '{}' >/dev/null; done
