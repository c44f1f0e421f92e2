#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Stage 2 of the guest's boot: PID 1 after initramfs-init.sh switch_roots
# into the overlay of the host's /. Runs the host's bash.
#
# It finishes the system setup the tests rely on (runtime filesystems, the
# booted kernel's modules at /lib/modules/KVER, the results share), then
# either runs the tests (bvm.mode=test) or gives an interactive root shell
# on the serial console (bvm.mode=shell), and powers the guest off.
#
# Its whole configuration comes from vm.env on the results share (9p tag
# "results"), written by the host for this boot.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=${TERM:-linux}
VM_DIR=$(cd "$(dirname "$0")" && pwd)

# As PID 1 we must never just exit (that panics the kernel): every way out
# goes through here.
# No sync: nothing written in the guest needs to survive it (the results
# share is mounted synchronous, the rest is tmpfs and throw-away disks),
# and a sync can hang forever behind a stuck block device.
power_off() {
	# busybox from busybox-static calls reboot(2) directly (-n: without
	# syncing first); the host's poweroff is systemctl, which needs a
	# running systemd.
	busybox poweroff -n -f
	echo o >/proc/sysrq-trigger
	sleep 60
}
die() {
	echo "BLKSNAP-VM-INIT-FAILED: $*"
	power_off
}

mode="test"
# shellcheck disable=SC2013 # words, not lines
for arg in $(</proc/cmdline); do
	case "$arg" in
	bvm.mode=*) mode=${arg#bvm.mode=} ;;
	# bvm.trace=1 (BLKSNAP_VM_APPEND): trace this script with timestamps,
	# to see where the boot spends its time.
	bvm.trace=1) PS4='+ ${EPOCHREALTIME} '; set -x ;;
	esac
done

read -r t_stage2 _ </proc/uptime

# --------------------------------------------------------------- filesystems
# The overlay's lower layer is the host's /, so /run, /tmp etc. hold the
# host's files: cover them with fresh tmpfs mounts. The host's /tmp stays
# reachable under /run/blksnap-vm/host-tmp (a build dir may live there).
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/dbus /run/lock /run/user /run/blksnap-vm/host-tmp
mount --bind /tmp /run/blksnap-vm/host-tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t configfs configfs /sys/kernel/config 2>/dev/null
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# devtmpfs has no /dev/fd: bash's <(...) and many scripts need it.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
hostname blksnap-vm
ip link set lo up 2>/dev/null

# poweroff/reboot/halt of the host are systemctl: replace them, in the
# overlay only, by commands that work without systemd (-no-reboot turns a
# reboot into QEMU's exit too).
for c in poweroff reboot halt; do
	printf '#!/bin/sh\nexec busybox poweroff -n -f\n' >/usr/local/sbin/$c
	chmod 755 /usr/local/sbin/$c
done

VM_RESULTS=/mnt/vm-results
mkdir -p "$VM_RESULTS"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results "$VM_RESULTS" ||
	die "cannot mount the results share"
[ -f "$VM_RESULTS/vm.env" ] || die "vm.env missing on the results share"
# shellcheck source=/dev/null
. "$VM_RESULTS/vm.env"
export VM_RESULTS RELEASE KVER BLKSNAP_SRC BLKSNAP_BUILD BLKSNAP_KO VM_DISKS \
	VM_DISK_BYTES BLKSNAP_VM_TEST_TIMEOUT BLKSNAP_VM_TESTS_DIR
# The benchmark knobs set on the host; empty means "the script's default".
for v in ${VM_BENCH_KNOBS:-}; do
	if [ -n "${!v:-}" ]; then export "${v?}"; else unset "$v"; fi
done
# Paths the host handed over that lie in the host's /tmp: put them back
# at the same place, over the guest's own /tmp.
for p in "$BLKSNAP_SRC" "$BLKSNAP_BUILD" "$MODDIR"; do
	case "$p" in
	/tmp/?*)
		mkdir -p "$p"
		mount --bind "/run/blksnap-vm/host-tmp/${p#/tmp/}" "$p" ||
			die "cannot reach the host's $p"
		;;
	esac
done

# The host reads the boot time off this file's mtime.
read -r t_booted _ </proc/uptime
echo "uptime $t_booted" >"$VM_RESULTS/booted"
echo "BLKSNAP-VM-BOOTED $RELEASE $(uname -r) after $t_booted s (stage 2 from $t_stage2 s)"

[ "$(uname -r)" = "$KVER" ] ||
	echo "BLKSNAP-VM: warning: running $(uname -r), expected $KVER"

# The booted kernel's modules, where modprobe looks for them. The host has
# only its own kernel's tree there; the release's tree (in the cache, in
# its chroot) is visible over 9p at MODDIR.
if [ "$(readlink -f "/lib/modules/$KVER")" != "$(readlink -f "$MODDIR")" ]; then
	mkdir -p "/lib/modules/$KVER"
	mount --bind "$MODDIR" "/lib/modules/$KVER" ||
		die "cannot bind $MODDIR to /lib/modules/$KVER"
fi

# The scratch disks are given serial numbers by the host: check that the
# kernel named them as the tests expect.
for d in vdb:vmdisk1 vdc:vmdisk2; do
	[ "$(cat "/sys/block/${d%%:*}/serial" 2>/dev/null)" = "${d#*:}" ] ||
		echo "BLKSNAP-VM: warning: /dev/${d%%:*} is not the disk ${d#*:}"
done

# --------------------------------------------------------------- work
case "$mode" in
test)
	# shellcheck disable=SC2086 # a list of test names
	"$VM_DIR/guest-run.sh" --results "$VM_RESULTS" ${VM_TESTS:-}
	echo "BLKSNAP-VM-DONE status=$?"
	;;
shell)
	if [ -f "$BLKSNAP_KO" ]; then
		insmod "$BLKSNAP_KO" && echo "blksnap loaded from $BLKSNAP_KO"
	else
		echo "note: $BLKSNAP_KO not built, blksnap not loaded"
	fi
	[ -n "${VM_ROWS:-}" ] && stty -F /dev/ttyS0 rows "$VM_ROWS" cols "$VM_COLS"
	cat >/run/blksnap-vm/bashrc <<-EOF
	[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc
	PS1='[vm $RELEASE \\w]# '
	cd /root
	EOF
	cat <<-EOF

	blksnap VM shell: $RELEASE, kernel $(uname -r), disks $VM_DISKS
	  tests:  $VM_DIR/guest-run.sh [--filter GLOB]
	          (results go to the host, in $VM_RESULTS_HOST)
	  module: \$BLKSNAP_KO = $BLKSNAP_KO
	  leave:  poweroff   (or Ctrl-a x to kill QEMU)

	EOF
	# setsid -c makes ttyS0 the controlling terminal: job control and
	# Ctrl-C then work in the shell.
	setsid -w -c bash --rcfile /run/blksnap-vm/bashrc -i \
		</dev/ttyS0 >/dev/ttyS0 2>&1
	;;
*)
	echo "BLKSNAP-VM: unknown mode '$mode'"
	;;
esac
power_off
