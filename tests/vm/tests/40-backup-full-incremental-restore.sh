#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# blksnapctl end to end, through blksnapd on a real system bus: ext4 with
# files on a partition of /dev/vdb; a full backup while files change
# (point 1), more changes, an incremental backup (point 2); each point
# restored to an image file equals, by SHA-256, the snapshot image read
# at backup time. Point 1 is checksummed with sha256 and its manifest
# rewritten in the format of blksnapctl before xxh3-128 (format 1, no
# "checksum"): an old chain still takes incrementals and restores. A
# flipped byte in a data file fails the restore (exit status 8). Then:
# after small random writes an incremental reads at most 1.1 x the changed
# tracking blocks, and restores to the device's bytes; a backup
# interrupted by SIGINT leaves no snapshot, no storage file and no partial
# point; --json output parses. Backups and difference storage live on
# ext4 on /dev/vdc, so the images are exact. (Throughput: the benchmark
# bench/guest/backup-throughput.sh.)
#
# DEMO=1: the same scenario told in plain words (./demo.sh).
# timeout: 900
set -eu
# shellcheck source=../lib.sh
. "$BLKSNAP_SRC/tests/vm/lib.sh"
# shellcheck source=../service-lib.sh
. "$BLKSNAP_SRC/tests/vm/service-lib.sh"
# shellcheck source=../backup-lib.sh
. "$BLKSNAP_SRC/tests/vm/backup-lib.sh"

need_cmd sfdisk mkfs.ext4 e2fsck python3 sha256sum blockdev
ctl=$BLKSNAP_BUILD/client/blksnapctl
[ -x "$ctl" ] || fail "blksnapctl not built (needs json-glib-1.0)"
DEMO=${DEMO:-0}
MiB=$((1 << 20))

say() { # plain words in the demo, a log line in the test
	if [ "$DEMO" = 1 ]; then printf '\n==> %s\n' "$*"; else log "$*"; fi
}
json_ok() { python3 -m json.tool >/dev/null || fail "not valid JSON: $1"; }
image_of() { # SNAPSHOT-ID MAJ:MIN: the image's device node
	"$ctl" snapshot info --json "$1" | jget "d['Images']['$2']"
}
sum() { sha256sum "$1" | cut -d' ' -f1; }
flip() { # FILE OFFSET: invert the byte at OFFSET
	python3 -c "import sys; f = open(sys.argv[1], 'r+b'); f.seek(int(sys.argv[2]))
b = f.read(1)[0]; f.seek(int(sys.argv[2])); f.write(bytes([b ^ 0xff]))" "$1" "$2"
}

read -r disk store_disk <<<"$VM_DISKS"
module_load
on_exit module_unload

say "Preparing: a 256 MiB partition on $disk with an ext4 file system"
bk_partition "$disk" 256
dev=$BK_DEV
majmin=$(printf '%d:%d' "0x$(stat -c %t "$dev")" "0x$(stat -c %T "$dev")")

say "Starting the system bus, polkitd and blksnapd (snapshot storage on $store_disk)"
svc_storage "$store_disk"
svc_config
svc_bus
svc_start
backups=$TEST_TMP/store/backups
"$ctl" status
"$ctl" status --json | json_ok "status --json"

fs=$TEST_TMP/fs
mkdir -p "$fs"
run mkfs.ext4 -q -F "$dev"
mount "$dev" "$fs"
on_exit "umount '$fs' 2>/dev/null || true"
for i in $(seq 1 30); do
	head -c $(((i % 5 + 1) * 700 * 1024)) /dev/urandom >"$fs/file-$i"
done
sync
say "Wrote 30 files ($(du -sh "$fs" | cut -f1)) to $dev; tracking its changes"
"$ctl" track "$dev"
"$ctl" cbt "$dev"
"$ctl" cbt --json "$dev" | json_ok "cbt --json"

# writer: changes files while a backup runs
writer() {
	local n=0
	while :; do
		n=$((n + 1))
		head -c $((256 * 1024)) /dev/urandom >"$fs/during-$((n % 8))"
		dd if=/dev/urandom of="$fs/file-$((n % 30 + 1))" bs=64k count=1 conv=notrunc \
			status=none
		sync
		sleep 0.05
	done
}

# --- point 1: full, while files change ---------------------------------
say "Full backup (point 1) of $dev into $backups, while a program keeps changing files"
id1=$("$ctl" snapshot create "$dev")
writer &
wpid=$!
on_exit "kill $wpid 2>/dev/null || true"
"$ctl" backup "$dev" --to "$backups" --snapshot "$id1" --checksum sha256 --json >"$TEST_TMP/p1.json"
kill $wpid
wait $wpid 2>/dev/null || true
json_ok "backup --json" <"$TEST_TMP/p1.json"
cat "$TEST_TMP/p1.json"
assert_eq "$(jget "d['devices'][0]['type']" <"$TEST_TMP/p1.json")" full "type of point 1"
full_read=$(jget "d['devices'][0]['bytes-read']" <"$TEST_TMP/p1.json")
img1=$(sum "$(image_of "$id1" "$majmin")")
"$ctl" snapshot destroy "$id1"
say "Point 1 done: read $((full_read / MiB)) MiB; the snapshot image had SHA-256 $img1"
# as blksnapctl wrote it before xxh3-128: format 1, sha256 implied
python3 - "$backups/0001/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["format"] == 2 and m["devices"][0]["checksum"] == "sha256", m
m["format"] = 1
del m["devices"][0]["checksum"]
json.dump(m, open(sys.argv[1], "w"), indent=2)
PY

# --- point 2: incremental ----------------------------------------------
say "Changing files: 5 rewritten, 3 deleted, 4 new"
for i in 2 7 11 19 23; do head -c $((300 * 1024)) /dev/urandom >"$fs/file-$i"; done
rm -f "$fs/file-3" "$fs/file-4" "$fs/file-5"
for i in 1 2 3 4; do head -c $((500 * 1024)) /dev/urandom >"$fs/new-$i"; done
sync
say "Incremental backup (point 2), again while files change"
id2=$("$ctl" snapshot create "$dev")
writer &
wpid=$!
"$ctl" backup "$dev" --to "$backups" --snapshot "$id2" --incremental --json >"$TEST_TMP/p2.json"
kill $wpid
wait $wpid 2>/dev/null || true
json_ok "backup --json" <"$TEST_TMP/p2.json"
cat "$TEST_TMP/p2.json"
assert_eq "$(jget "d['devices'][0]['type']" <"$TEST_TMP/p2.json")" incremental "type of point 2"
assert_eq "$(jget "d['devices'][0]['checksum']" <"$TEST_TMP/p2.json")" xxh3-128 "checksum of point 2"
incr_read=$(jget "d['devices'][0]['bytes-read']" <"$TEST_TMP/p2.json")
[ "$incr_read" -lt $((full_read / 4)) ] ||
	fail "the incremental read $incr_read bytes, the full one $full_read"
img2=$(sum "$(image_of "$id2" "$majmin")")
"$ctl" snapshot destroy "$id2"
say "Point 2 done: read $((incr_read / 1024)) KiB instead of $((full_read / MiB)) MiB for a full one"

# --- restore both ------------------------------------------------------
say "Restoring point 1 and point 2 to new image files, verifying every checksum"
"$ctl" restore "$backups@1" --to "$TEST_TMP/store/r1.img" --json | json_ok "restore --json"
"$ctl" restore "$backups@2" --to "$TEST_TMP/store/r2.img"
r1=$(sum "$TEST_TMP/store/r1.img")
r2=$(sum "$TEST_TMP/store/r2.img")
assert_eq "$r1" "$img1" "restored point 1 against the snapshot image of point 1"
assert_eq "$r2" "$img2" "restored point 2 against the snapshot image of point 2"
[ "$img1" != "$img2" ] || fail "points 1 and 2 are equal: nothing changed?"
e2fsck -fn "$TEST_TMP/store/r2.img" || log "e2fsck -n of the restored image: status $? (a frozen, mounted ext4 keeps its recovery flag)"
say "Restored point 1 = snapshot 1 ($r1), point 2 = snapshot 2 ($r2); the file system checks clean"
rm -f "$TEST_TMP/store/r1.img" "$TEST_TMP/store/r2.img"

# one flipped byte in a run of point 2: the restore says so and fails
data2=$backups/0002/$(jget "d['devices'][0]['data']" <"$backups/0002/manifest.json")
off=$(jget "d['devices'][0]['runs'][0][0] + 100" <"$backups/0002/manifest.json")
flip "$data2" "$off"
rc=0
"$ctl" restore "$backups@2" --to "$TEST_TMP/store/bad.img" --quiet 2>"$TEST_TMP/bad.err" || rc=$?
cat "$TEST_TMP/bad.err"
assert_eq "$rc" 8 "exit status of a restore from a damaged point"
grep -q "xxh3-128 checksum mismatch at offset $((off - 100)) " "$TEST_TMP/bad.err" ||
	fail "the restore did not name the damaged run"
flip "$data2" "$off"   # back as it was
rm -f "$TEST_TMP/store/bad.img"

# --- small random writes: bytes read / changed bytes ---------------------
umount "$fs"
"$ctl" backup "$dev" --to "$backups" --quiet     # point 3: everything so far
bs=$("$ctl" cbt --json "$dev" | jget "d['BlockSize']")
say "200 random 4 KiB writes on $dev (tracking block $((bs / 1024)) KiB), then an incremental backup"
bk_random_writes "$dev" 200 "$bs"
changed=$BK_CHANGED
dev_sum=$(sum "$dev")
"$ctl" backup "$dev" --to "$backups" --json >"$TEST_TMP/p4.json"
json_ok "backup --json" <"$TEST_TMP/p4.json"
read4=$(jget "d['devices'][0]['bytes-read']" <"$TEST_TMP/p4.json")
ratio=$(python3 -c "print(f'{$read4 / $changed:.3f}')")
echo "result incremental bytes read / changed bytes: $read4 / $changed = $ratio (target <= 1.1)"
python3 -c "import sys; sys.exit(0 if $read4 <= 1.1 * $changed else 1)" ||
	fail "incremental read $read4 bytes for $changed changed (ratio $ratio > 1.1)"
[ "$read4" -ge "$changed" ] || fail "incremental read $read4 bytes, less than the $changed changed"
"$ctl" restore "$backups" --to "$TEST_TMP/store/r4.img" --quiet
assert_eq "$(sum "$TEST_TMP/store/r4.img")" "$dev_sum" "restored point 4 against the device"
rm -f "$TEST_TMP/store/r4.img"
say "Incremental after random writes read $read4 bytes for $changed changed (ratio $ratio); restore matches the device"

# --- interrupted backup -----------------------------------------------
say "A full backup interrupted with Ctrl-C (SIGINT) must leave nothing behind"
"$ctl" backup "$dev" --to "$backups" --full --run-size 64K --quiet 2>"$TEST_TMP/int.err" &
cpid=$!
for _ in $(seq 200); do
	ls "$backups"/*.partial/*.data >/dev/null 2>&1 && break
	sleep 0.05
done
ls "$backups"/*.partial/*.data >/dev/null 2>&1 || fail "the backup never started writing"
kill -INT $cpid
rc=0
wait $cpid || rc=$?
cat "$TEST_TMP/int.err"
assert_eq "$rc" 130 "exit status of the interrupted backup"
assert_eq "$("$ctl" snapshot list --json | jget 'len(d)')" 0 "snapshots after the interrupt"
[ -z "$("$BSIOCTL" snapshot-list)" ] || fail "a kernel snapshot is left"
assert_eq "$(storage_files | wc -l)" 0 "storage files after the interrupt"
assert_eq "$(find "$backups" -maxdepth 1 -name '*.partial' | wc -l)" 0 "partial points"
assert_eq "$(find "$backups" -mindepth 1 -maxdepth 1 | wc -l)" 4 "points kept"
"$ctl" snapshot list --json | json_ok "snapshot list --json"
say "Interrupted: no snapshot, no storage file, no partial point; the 4 points are intact"

"$ctl" untrack "$dev"
say "All done: two points restored exactly, incrementals read only what changed"
