#!/bin/bash
# Every ioctl with bad arguments (unknown device, out-of-range numbers,
# ranges beyond the map or the device, zero and absurd counts, null
# pointers, reserved fields) fails with the documented errno and leaves the
# CBT state unchanged; a caller without CAP_SYS_ADMIN gets EPERM.
# timeout: 120
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"
need_cmd setpriv

dev=${VM_DISKS%% *}
module_load
run bsio attach "$dev"
on_exit "bsio detach $dev"
dd if=/dev/urandom of="$dev" bs=64k count=3 seek=5 oflag=direct status=none

bsio badargs "$dev" || fail "a bad request was not refused as documented"

# Without CAP_SYS_ADMIN: even with the node opened up, every ioctl is EPERM.
ctl=/dev/blksnap-control
mode=$(stat -c %a "$ctl")
assert_eq "$mode" 600 "mode of $ctl"
chmod 0666 "$ctl"
on_exit "chmod $mode $ctl"
for cmd in version list "info $(dev_number "$dev")" "detach $(dev_number "$dev")"; do
	# shellcheck disable=SC2086
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		"$BSIO" $cmd 2>&1) && fail "unprivileged '$cmd' succeeded"
	case "$out" in
	*"Operation not permitted"*) ;;
	*) fail "unprivileged '$cmd': expected EPERM, got: $out" ;;
	esac
done
tracked "$dev" || fail "an unprivileged detach took effect"
