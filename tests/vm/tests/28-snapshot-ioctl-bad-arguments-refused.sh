#!/bin/bash
# Every snapshot ioctl with bad arguments (unknown snapshot, untracked or
# nonexistent or doubly added device, bad, empty, overlapping or
# out-of-device storage ranges, zero and absurd counts, null pointers,
# reserved fields, too small arrays, take without devices or twice) fails
# with the documented errno and changes neither the snapshot nor the CBT
# state; the one take advances the change number by exactly one. Storage
# ranges overlapping on the medium are refused also when given once on a
# partition and once on its whole disk. A caller without CAP_SYS_ADMIN gets
# EPERM from every snapshot ioctl.
# timeout: 120
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
. "$BLKSNAP_SRC/tests/vm/snap-lib.sh"
need_cmd setpriv sfdisk wipefs

read -r dev disk <<<"$VM_DISKS"
module_load
[ -z "$(bsio snapshot-list)" ] || fail "snapshots left by an earlier test: $(bsio snapshot-list)"
track "$dev"
dd if=/dev/urandom of="$dev" bs=64k count=3 seek=5 oflag=direct status=none

bsio snapshot-badargs "$dev" || fail "a bad snapshot request was not refused as documented"
[ -z "$(bsio snapshot-list)" ] || fail "snapshot-badargs left snapshots behind"

# The same sectors as storage twice, through a partition and its disk: the
# module would write two chunks' copies over each other.
printf 'label: gpt\nstart=2048, size=65536\n' | sfdisk -q "$disk"
on_exit "wipefs -q -a $disk; blockdev --rereadpt $disk"
blockdev --rereadpt "$disk"
part=${disk}1
wait_for "-b $part" 10 || fail "partition $part did not appear"
# overlap FIRST_DEV SECTOR SECOND_DEV SECTOR: 2048 sectors on each, refused.
overlap() {
	local out
	snap_create
	snap_storage "$SNAP_ID" "$1" "$2" 2048
	out=$(bsio snapshot-append "$SNAP_ID" "$3" "$4" 2048 2>&1) &&
		fail "storage on $3 at $4 overlapping storage on $1 at $2 accepted"
	case "$out" in *"Invalid argument"*) ;; *) fail "overlap through $3: $out" ;; esac
	assert_eq "$(snap_info "$SNAP_ID" storage_sectors)" 2048 "storage after a refused overlap"
	run bsio snapshot-destroy "$SNAP_ID"
}
overlap "$part" 0 "$disk" 3072
overlap "$disk" 4000 "$part" 0
overlap "$part" 100 "$part" 1000

# Without CAP_SYS_ADMIN: EPERM, even with the node opened up.
snap_create "$dev"
ctl=/dev/blksnap-control
mode=$(stat -c %a "$ctl")
chmod 0666 "$ctl"
on_exit "chmod $mode $ctl"
for cmd in snapshot-create snapshot-list "snapshot-info $SNAP_ID" \
	"snapshot-take $SNAP_ID" "snapshot-destroy $SNAP_ID" \
	"snapshot-add $SNAP_ID $(dev_number "$dev")" \
	"snapshot-append $SNAP_ID $(dev_number "$dev") 0 8" \
	"image-info $(dev_number "$dev")" "wait-event $SNAP_ID 0"; do
	# shellcheck disable=SC2086
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		"$BSIO" $cmd 2>&1) && fail "unprivileged '$cmd' succeeded"
	case "$out" in
	*"Operation not permitted"*) ;;
	*) fail "unprivileged '$cmd': expected EPERM, got: $out" ;;
	esac
done
assert_eq "$(bsio snapshot-list)" "$SNAP_ID" "snapshots after the unprivileged attempts"
assert_eq "$(snap_info "$SNAP_ID" state)" created "state after the unprivileged attempts"
assert_eq "$(snap_info "$SNAP_ID" storage_sectors)" 0 "storage after the unprivileged attempts"
