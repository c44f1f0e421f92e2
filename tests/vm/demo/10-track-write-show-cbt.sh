#!/bin/bash
# Demo: change block tracking. Track a disk, write to it, and show what
# the module recorded.
# timeout: 300
set -eu
. "$BLKSNAP_SRC/tests/vm/lib.sh"
. "$BLKSNAP_SRC/tests/vm/cbt-lib.sh"

say() { printf '==> %s\n' "$*"; }
dev=${VM_DISKS%% *}

say "Loading blksnap.ko into kernel $(uname -r)"
module_load
echo "module version $(bsio version); control device: $(ls -l /dev/blksnap-control)"

say "Tracking $dev ($(($(blockdev --getsz "$dev") / 2048)) MiB)"
bsio attach "$dev"
bsio info "$dev" | sed 's/^/result   /'

say "Writing: 4 KiB at 1 MiB, 1 MiB at 100 MiB, 8 KiB across the 64 KiB boundary at 200 MiB"
dd if=/dev/urandom of="$dev" bs=4k count=1 seek=256 oflag=direct status=none
dd if=/dev/urandom of="$dev" bs=1M count=1 seek=100 oflag=direct status=none
dd if=/dev/urandom of="$dev" bs=4k count=2 seek=$((200 * 256 + 15)) oflag=direct status=none

say "CBT map: runs of changed tracking blocks (first block, count, change number)"
bsio map "$dev" | sed 's/^/result   /'
say "The same as byte ranges a backup would copy (offset length)"
bsio changed "$dev" 0 | sed 's/^/result   /'

say "Reading does not mark anything"
dd if="$dev" of=/dev/null bs=1M count=64 skip=500 iflag=direct status=none
bsio map "$dev" | sed 's/^/result   /'

say "Done: stop tracking"
bsio detach "$dev"
