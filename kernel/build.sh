#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Build blksnap.ko out of the source tree, so the tree stays clean and one
# source can be built for several kernels side by side.
#
#   build.sh --kdir HEADERS_BUILD_DIR --out OUTDIR [--root CHROOT]
#
# With --root, the build runs inside CHROOT (a Debian chroot holding the
# kernel's headers and the compiler the kernel was built with); KDIR is then
# a path inside that chroot. The result is OUTDIR/blksnap.ko.
set -eu

src=$(cd "$(dirname "$0")" && pwd)
kdir=/lib/modules/$(uname -r)/build
out=
root=

while [ $# -gt 0 ]; do
	case "$1" in
	--kdir) kdir=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--root) root=$2; shift 2 ;;
	*) echo "build.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
[ -n "$out" ] || { echo "build.sh: --out is required" >&2; exit 2; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

copy_sources() {
	# $1: destination. Copy only what kbuild needs.
	mkdir -p "$1"
	cp "$src"/Kbuild "$src"/Makefile "$src"/*.c "$src"/*.h "$src"/*.sh "$1"/
	mkdir -p "$1"/include/uapi/linux
	cp "$src"/include/uapi/linux/*.h "$1"/include/uapi/linux/
}

if [ -z "$root" ]; then
	[ -f "$kdir/Makefile" ] || {
		echo "build.sh: no kernel headers at $kdir" >&2; exit 1; }
	copy_sources "$out/src"
	make -s -C "$kdir" M="$out/src" -j"$jobs" modules
	cp "$out/src/blksnap.ko" "$out/blksnap.ko"
else
	[ -f "$root$kdir/Makefile" ] || {
		echo "build.sh: no kernel headers at $root$kdir" >&2; exit 1; }
	work=/tmp/blksnap-build.$$
	rm -rf "$root$work"
	copy_sources "$root$work"
	# objtool of newer kernels (7.x) reads /proc: give the chroot one, in
	# a private mount namespace so it goes away with the build, even if
	# the build is interrupted. Where that is impossible (this script
	# itself runs in a chroot, whose / is no mount point), mount it for
	# the time of the build.
	set -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		make -s -C "$kdir" M="$work" -j"$jobs" modules
	if unshare --mount --propagation private true 2>/dev/null; then
		# shellcheck disable=SC2016 # expanded by the inner sh
		unshare --mount --propagation private sh -c '
			mount -t proc proc "$1/proc" && exec chroot "$@"' sh \
			"$root" "$@"
	else
		umount_proc=
		if ! mountpoint -q "$root/proc"; then
			mount -t proc proc "$root/proc"
			umount_proc=1
			trap 'umount "$root/proc"' EXIT
		fi
		chroot "$root" "$@"
		[ -n "$umount_proc" ] && umount "$root/proc" && trap - EXIT
	fi
	cp "$root$work/blksnap.ko" "$out/blksnap.ko"
	rm -rf "$root$work"
fi
echo "built $out/blksnap.ko"
