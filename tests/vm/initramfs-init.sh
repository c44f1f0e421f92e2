#!/bin/busybox sh
# shellcheck shell=dash
# SPDX-License-Identifier: GPL-2.0
#
# /init of the bench's initramfs (stage 1), run by the guest kernel as PID 1.
# prepare.sh copies it into the cpio next to a static busybox and the
# kernel's virtio/9p/overlay modules (decompressed, listed in load order in
# /lib/modules/load-order).
#
# It mounts the host's / (9p tag "hostroot", read-only) as the lower layer of
# an overlayfs whose upper layer is a tmpfs, and switch_roots into it: the
# guest then runs the host's own binaries, but may write anywhere. Stage 2
# is the script named by bvm.init= on the kernel command line (a path on the
# host, tests/vm/guest-init.sh).
#
# Busybox sh on purpose: nothing else exists yet.

/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# The host watches the console for this marker: without it a broken
# initramfs would only show up as a timeout.
fail() {
	echo "BLKSNAP-VM-INIT-FAILED: $*"
	sleep 1
	poweroff -f
}

while read -r m; do
	insmod "/lib/modules/$m" || fail "insmod $m"
done </lib/modules/load-order

stage2=
# shellcheck disable=SC2013 # words, not lines
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	bvm.init=*) stage2=${arg#bvm.init=} ;;
	esac
done
[ -n "$stage2" ] || fail "no bvm.init= on the kernel command line"

# msize: the largest the virtio transport allows (fewer round trips);
# cache=loose: the share is read-only and does not change during a run.
mkdir -p /mnt/lower /mnt/rw
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 \
	hostroot /mnt/lower || fail "cannot mount the host's / over 9p"
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw || fail "tmpfs"
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay overlay \
	-o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work \
	/newroot || fail "cannot mount the overlay"

[ -x "/newroot$stage2" ] || fail "stage 2 $stage2 not found on the host's /"
read -r up _ </proc/uptime
echo "initramfs: host / mounted at $up s, switching to $stage2"
for d in proc sys dev; do
	mount --move "/$d" "/newroot/$d" || fail "cannot move /$d"
done
exec switch_root /newroot "$stage2"
