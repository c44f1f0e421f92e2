#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The runner's kernel-log checker (dmesg_check, kmsg_since in lib.sh) must
# catch kernel splats, or a test that oopses the kernel would pass. Checked
# on fake log excerpts: a real WARN would fail this very test.
# timeout: 60
set -eu
# shellcheck source=../lib.sh
. "$BLKSNAP_SRC/tests/vm/lib.sh"

# Each of these lines alone must be flagged.
bad_lines=(
	"WARNING: CPU: 1 PID: 312 at drivers/block/blksnap/diff_area.c:42 diff_area_free+0x5e/0x70 [blksnap]"
	"BUG: kernel NULL pointer dereference, address: 0000000000000008"
	"Oops: 0000 [#1] PREEMPT SMP NOPTI"
	"kernel BUG at mm/slub.c:435!"
	"general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP"
	"BUG: KFENCE: use-after-free read in blksnap_free+0x1a/0x30 [blksnap]"
	"INFO: task fio:1234 blocked for more than 120 seconds."
	"\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message."
	"UBSAN: shift-out-of-bounds in drivers/block/blksnap/chunk.c:77:3"
	"list_add corruption. prev->next should be next (ffff8880047a8e08), but was 0000000000000000."
	"refcount_t: underflow; use-after-free."
	"watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [kworker/0:1:35]"
	"rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"
)
for l in "${bad_lines[@]}"; do
	out=$(printf '[   12.345678] %s\n' "$l" | dmesg_check) &&
		fail "not flagged: $l"
	assert_eq "$out" "[   12.345678] $l" "reported line"
done

# A realistic excerpt: only the splat's lines come out, the rest is noise.
clean="loop0: detected capacity change from 0 to 2097152
EXT4-fs (vdc): mounted filesystem with ordered data mode. Quota mode: none.
blksnap: snapshot taken, 2 devices
null_blk: disk nullb0 created"
splat="------------[ cut here ]------------
WARNING: CPU: 0 PID: 77 at kernel/fake.c:1 fake_fn+0x1/0x2 [blksnap]
Modules linked in: blksnap(O) null_blk loop"
printf '%s\n' "$clean" | dmesg_check >/dev/null || fail "clean log flagged"
out=$(printf '%s\n%s\n%s\n' "$clean" "$splat" "$clean" | dmesg_check) &&
	fail "splat in the middle of a log not flagged"
assert_eq "$out" "WARNING: CPU: 0 PID: 77 at kernel/fake.c:1 fake_fn+0x1/0x2 [blksnap]" "reported lines"

# "# dmesg-allow: ERE" in a test header suppresses matching lines only.
printf '%s\n' "$splat" | dmesg_check 'kernel/fake\.c' >/dev/null ||
	fail "allow pattern not honoured"
printf '%s\nBUG: other\n' "$splat" | dmesg_check 'kernel/fake\.c' >/dev/null &&
	fail "allow pattern hid an unrelated line"

# The position bookkeeping on the real kernel log: a line written now is
# seen after the position taken before it, and not after a later one. (An
# informational line, not a warning, so the runner stays happy.)
pos=$(kmsg_pos)
probe="blksnap-vm: dmesg checker probe $$ $RANDOM"
echo "<6>$probe" >/dev/kmsg
kmsg_since "$pos" | grep -qF "$probe" || fail "kmsg_since missed a new line"
pos2=$(kmsg_pos)
[ "$pos2" -gt "$pos" ] || fail "kmsg_pos did not advance ($pos -> $pos2)"
kmsg_since "$pos2" | grep -qF "$probe" && fail "kmsg_since returned an old line"
log "checker ok"
