#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# What "meson install" puts under <prefix>/src/blksnap-VERSION is a DKMS
# source tree that dkms can build for an installed kernel. Installs into a
# scratch DESTDIR and uses a scratch DKMS tree: the system is not touched.
#   dkms-build.sh BUILDDIR KERNEL_RELEASE
set -eu

build=$1
kver=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

command -v dkms >/dev/null || { echo "dkms is not installed" >&2; exit 1; }
[ -d "/lib/modules/$kver/build" ] || {
	echo "no headers for $kver: apt-get install linux-headers-$kver" >&2; exit 1; }

DESTDIR=$scratch/root meson install -C "$build" --quiet --no-rebuild
src=$(ls -d "$scratch"/root/usr/src/blksnap-* "$scratch"/root/usr/local/src/blksnap-* 2>/dev/null | head -1)
[ -f "$src/dkms.conf" ] || { echo "no dkms.conf installed" >&2; exit 1; }
ver=${src##*/blksnap-}

mkdir -p "$scratch/dkms"
dkms build -m blksnap -v "$ver" -k "$kver" \
	--sourcetree "${src%/*}" --dkmstree "$scratch/dkms" >"$scratch/log" 2>&1 || {
	cat "$scratch/log"; find "$scratch/dkms" -name make.log -exec cat {} \; ; exit 1; }
ko=$(find "$scratch/dkms" -name 'blksnap.ko*' | head -1)
[ -n "$ko" ] || { cat "$scratch/log"; echo "dkms built no blksnap.ko" >&2; exit 1; }
modinfo -F vermagic "$ko" | grep -q "^$kver " || {
	echo "built for the wrong kernel: $(modinfo -F vermagic "$ko")" >&2; exit 1; }
echo "dkms built $ko for $kver"
