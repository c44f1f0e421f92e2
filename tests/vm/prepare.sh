#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Prepare (and cache) everything one kernel needs for the VM tests:
#
#   tests/vm/prepare.sh [--refresh] RELEASE|all     RELEASE: bookworm trixie sid
#
# Result, under ${BLKSNAP_VM_CACHE:-/var/cache/blksnap-vm}/RELEASE/:
#   vmlinuz             the kernel image
#   initramfs.cpio.gz   busybox + the modules to mount the host's / over 9p
#   root/               (trixie, sid) a minbase chroot of the release with
#                       the kernel, its headers and the compiler it was
#                       built with; bookworm uses the host's own packages
#   env                 KVER VMLINUZ MODDIR KDIR ROOT (shell variables)
#   stamp               written last: its presence means "complete"
#
# A rerun with a valid stamp does no network access and takes well under a
# second. Every step is restartable: an interrupted run leaves no stamp, and
# the next run redoes (or repairs) the missing steps. --refresh upgrades
# the chroot (or the host kernel packages for bookworm) from the archive.
set -euo pipefail

# shellcheck source=host-lib.sh
. "$(dirname "$0")/host-lib.sh"

refresh=0
while [ $# -gt 0 ]; do
	case "$1" in
	--refresh) refresh=1; shift ;;
	-h|--help) sed -n '3,20p' "$0"; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || die "usage: prepare.sh [--refresh] RELEASE|all"
[ "$(id -u)" = 0 ] || die "prepare.sh must run as root"

if [ "$1" = all ]; then
	for r in $RELEASES; do
		flags=()
		[ "$refresh" = 1 ] && flags+=(--refresh)
		"$0" "${flags[@]}" "$r"
	done
	exit 0
fi

RELEASE=$1
valid_release "$RELEASE" || die "unknown release '$RELEASE' (one of: $RELEASES)"
DIR=$CACHE_ROOT/$RELEASE
mkdir -p "$DIR"
start=$(now)

# One prepare per release at a time (run.sh and shell.sh both call us).
exec 9>"$DIR.lock"
flock 9

# ---------------------------------------------------------------------------
# Fast path: a complete cache whose files are all still there. For bookworm
# also check that the host's linux-image-amd64 still points at the same
# kernel (an apt upgrade on the host would otherwise go unnoticed).

# The stamp names the cache format and a hash of the scripts that shape the
# cache: editing one of them makes the next run re-check every step (cheap:
# finished steps keep their own stamps) and rebuild the initramfs if needed.
stamp_text() {
	echo "format=$CACHE_FORMAT decompress=${BLKSNAP_VM_DECOMPRESS:-0}" \
		"inputs=$(cat "$0" "$VM_DIR/host-lib.sh" "$VM_DIR/initramfs-init.sh" |
			sha256sum | cut -c1-16)"
}

cache_valid() {
	[ -f "$DIR/stamp" ] && [ -f "$DIR/env" ] || return 1
	[ "$(cat "$DIR/stamp")" = "$(stamp_text)" ] || return 1
	(
		# shellcheck disable=SC1091
		. "$DIR/env"
		[ -f "$VMLINUZ" ] && [ -f "$MODDIR/modules.dep" ] &&
			[ -f "$ROOT$KDIR/Makefile" ] &&
			[ -f "$DIR/initramfs.cpio.gz" ] || exit 1
		if [ -z "$ROOT" ]; then
			[ "$(image_kver)" = "$KVER" ] || exit 1
		fi
	)
}

# KVER the linux-image-amd64 metapackage depends on, in the chroot $1 (or on
# the host when $1 is empty), from "linux-image-6.12.57+deb13-amd64 (= ...)".
image_kver() {
	local root=${1:-} dep
	if [ -n "$root" ]; then
		# shellcheck disable=SC2016 # a dpkg-query format
		dep=$(chroot "$root" dpkg-query -W -f='${Depends}' linux-image-amd64)
	else
		# shellcheck disable=SC2016
		dep=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null) || return 0
	fi
	# The dependency list varies (sid's also names linux-base-amd64): pick
	# the versioned image package.
	printf '%s\n' "$dep" | tr ',' '\n' |
		sed -n 's/^ *linux-image-\([0-9][^ ]*\).*/\1/p' | head -n1
}

if [ "$refresh" = 0 ] && cache_valid; then
	say "prepare $RELEASE: cached ($DIR)"
	exit 0
fi
rm -f "$DIR/stamp"

# shellcheck disable=SC2086 # a list
host_need_pkgs $HOST_PKGS

# ---------------------------------------------------------------------------
# The release's kernel, headers and compiler.

# Run a command in the chroot with /proc and /dev available (package
# scripts and the compiler driver use them), and a clean environment.
ROOTFS=$DIR/root
in_chroot() {
	chroot "$ROOTFS" /usr/bin/env -i \
		PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \
		DEBIAN_FRONTEND=noninteractive "$@"
}
chroot_mount() {
	mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
	mountpoint -q "$ROOTFS/dev" || mount --bind /dev "$ROOTFS/dev"
}
chroot_umount() { [ -d "$ROOTFS" ] && umount_below "$ROOTFS/proc" && umount_below "$ROOTFS/dev"; }

prepare_chroot() {
	local mirror t
	mirror=$(host_mirror)

	if [ ! -f "$ROOTFS/.blksnap-debootstrap-ok" ]; then
		# A partial chroot (interrupted debootstrap) cannot be resumed
		# reliably: start it over, after making sure nothing is mounted
		# inside it.
		if [ -e "$ROOTFS" ]; then
			umount_below "$ROOTFS"
			rm -rf "$ROOTFS"
		fi
		say "prepare $RELEASE: debootstrap from $mirror"
		t=$(now)
		# -o Acquire::Check-Valid-Until is not needed here: debootstrap
		# does not check Valid-Until (sid's dated Release would fail it).
		debootstrap --variant=minbase \
			"$RELEASE" "$ROOTFS" "$mirror" >"$DIR/debootstrap.log" 2>&1 || {
			tail -n 30 "$DIR/debootstrap.log" >&2
			die "debootstrap $RELEASE failed (log: $DIR/debootstrap.log)"
		}
		touch "$ROOTFS/.blksnap-debootstrap-ok"
		say "prepare $RELEASE: debootstrap took $(( $(now) - t )) s"
	fi

	# apt settings private to the chroot. The archive may be a dated copy
	# whose Release files are past Valid-Until (sid): accept that here
	# only, never on the host.
	mkdir -p "$ROOTFS/etc/apt/apt.conf.d" "$ROOTFS/etc/dpkg/dpkg.cfg.d"
	cat >"$ROOTFS/etc/apt/apt.conf.d/90blksnap-vm" <<-'EOF'
	Acquire::Check-Valid-Until "false";
	APT::Install-Recommends "false";
	APT::Install-Suggests "false";
	Acquire::Languages "none";
	EOF
	echo "deb $mirror $RELEASE main" >"$ROOTFS/etc/apt/sources.list"
	# No documentation: smaller and faster to unpack.
	cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/90blksnap-vm-nodoc" <<-'EOF'
	path-exclude=/usr/share/doc/*
	path-exclude=/usr/share/man/*
	path-exclude=/usr/share/info/*
	path-exclude=/usr/share/locale/*
	EOF
	# The kernel's postinst would build an initramfs we never use (tens of
	# seconds): divert update-initramfs to a no-op before it is installed.
	if ! in_chroot dpkg-divert --list /usr/sbin/update-initramfs | grep -q .; then
		in_chroot dpkg-divert --local --rename --add /usr/sbin/update-initramfs >/dev/null
	fi
	printf '#!/bin/sh\nexit 0\n' >"$ROOTFS/usr/sbin/update-initramfs"
	chmod 755 "$ROOTFS/usr/sbin/update-initramfs"

	if [ ! -f "$ROOTFS/.blksnap-packages-ok" ] || [ "$refresh" = 1 ]; then
		rm -f "$ROOTFS/.blksnap-packages-ok"
		t=$(now)
		chroot_mount
		trap chroot_umount EXIT
		# Repair a dpkg run interrupted by a previous prepare.
		in_chroot dpkg --configure -a >>"$DIR/apt.log" 2>&1 || true
		in_chroot apt-get update -qq >>"$DIR/apt.log" 2>&1 ||
			{ tail -n 20 "$DIR/apt.log" >&2; die "apt-get update in the $RELEASE chroot failed"; }
		[ "$refresh" = 1 ] && in_chroot apt-get -y -qq dist-upgrade >>"$DIR/apt.log" 2>&1
		local libelf=libelf1t64
		in_chroot apt-cache show libelf1t64 >/dev/null 2>&1 || libelf=libelf1
		say "prepare $RELEASE: installing kernel, headers and toolchain in the chroot"
		in_chroot apt-get install -y -qq linux-image-amd64 linux-headers-amd64 \
			make dwarves "$libelf" >>"$DIR/apt.log" 2>&1 ||
			{ tail -n 30 "$DIR/apt.log" >&2; die "apt-get install in the $RELEASE chroot failed"; }

		# The headers name the compiler the kernel was built with
		# (CONFIG_CC_VERSION_TEXT, e.g. "x86_64-linux-gnu-gcc-14 (Debian
		# 14.2.0-19) 14.2.0"). Debian's headers normally depend on it;
		# make sure, and install gcc-N if not.
		local kver cc ccver
		kver=$(image_kver "$ROOTFS")
		cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\([^ ]*\).*/\1/p' \
			"$ROOTFS/usr/src/linux-headers-$kver/.config")
		[ -n "$cc" ] || die "cannot read the compiler from the $RELEASE headers"
		if ! in_chroot sh -c "command -v '$cc'" >/dev/null; then
			ccver=${cc##*gcc-}
			say "prepare $RELEASE: installing gcc-$ccver (the kernel's compiler, $cc)"
			in_chroot apt-get install -y -qq "gcc-$ccver" >>"$DIR/apt.log" 2>&1 ||
				die "cannot install gcc-$ccver in the $RELEASE chroot"
		fi
		in_chroot apt-get clean
		chroot_umount
		trap - EXIT
		touch "$ROOTFS/.blksnap-packages-ok"
		say "prepare $RELEASE: packages took $(( $(now) - t )) s"
	fi
}

if [ "$RELEASE" = bookworm ]; then
	# The host's own release: its kernel and headers come from the host
	# archive, and the host's gcc-12 is the kernel's compiler.
	host_need_pkgs linux-image-amd64 linux-headers-amd64 make gcc
	if [ "$refresh" = 1 ]; then
		{ apt-get update -qq && apt-get install -y -qq --only-upgrade \
			linux-image-amd64 linux-headers-amd64 </dev/null; } \
			>>"$CACHE_ROOT/host-apt.log" 2>&1 ||
			die "upgrading the host's kernel packages failed"
	fi
	ROOT=
	KVER=$(image_kver)
	src_vmlinuz=/boot/vmlinuz-$KVER
	MODDIR=/lib/modules/$KVER
	KDIR=/usr/src/linux-headers-$KVER
else
	prepare_chroot
	ROOT=$ROOTFS
	KVER=$(image_kver "$ROOT")
	src_vmlinuz=$ROOT/boot/vmlinuz-$KVER
	# /lib is a symlink into /usr in these chroots; name the real place.
	MODDIR=$(readlink -f "$ROOT/lib/modules/$KVER")
	KDIR=/usr/src/linux-headers-$KVER
fi
[ -n "$KVER" ] || die "cannot tell which kernel linux-image-amd64 installs"
[ -f "$src_vmlinuz" ] || die "$src_vmlinuz missing"
[ -f "$MODDIR/modules.dep" ] || die "$MODDIR/modules.dep missing"
[ -f "$ROOT$KDIR/Makefile" ] || die "kernel headers missing at $ROOT$KDIR"

# Keep our own copy of the image: the cache then stays bootable even if the
# host's kernel package is upgraded underneath it.
VMLINUZ=$DIR/vmlinuz
cmp -s "$src_vmlinuz" "$VMLINUZ" 2>/dev/null || cp "$src_vmlinuz" "$VMLINUZ.tmp"
[ -f "$VMLINUZ.tmp" ] && mv "$VMLINUZ.tmp" "$VMLINUZ"

# ---------------------------------------------------------------------------
# Modules must be readable by the host's kmod, which the guest runs for
# modprobe. Debian 12's kmod reads xz and zstd; if a future release uses a
# compression it lacks, keep a decompressed copy of the tree in the cache.

mod_compression() {
	local f
	f=$(awk -F: 'NR == 1 { print $1 }' "$MODDIR/modules.dep")
	case "$f" in
	*.ko.xz) echo XZ ;;
	*.ko.zst) echo ZSTD ;;
	*.ko.gz) echo ZLIB ;;
	*) echo NONE ;;
	esac
}
# BLKSNAP_VM_DECOMPRESS=1 forces the decompressed copy (to test this path,
# or to spare the guest decompressing modules in software).
comp=$(mod_compression)
if [ "$comp" != NONE ] && { [ "${BLKSNAP_VM_DECOMPRESS:-0}" = 1 ] ||
	! kmod --version | grep -q "+$comp"; }; then
	# depmod -b wants BASE/lib/modules/KVER.
	plain=$DIR/plainmods/lib/modules/$KVER
	if [ ! -f "$plain/.complete" ]; then
		say "prepare $RELEASE: decompressing the modules ($comp) for the host's kmod"
		rm -rf "$DIR/plainmods"
		mkdir -p "$plain"
		cp -a "$MODDIR/." "$plain/"
		find "$plain" -name '*.ko.xz' -print0 | xargs -0r -P"$(nproc)" -n64 xz -d
		find "$plain" -name '*.ko.zst' -print0 | xargs -0r -P"$(nproc)" -n64 zstd -q -d --rm
		find "$plain" -name '*.ko.gz' -print0 | xargs -0r -P"$(nproc)" -n64 gzip -d
		depmod -b "$DIR/plainmods" "$KVER"
		touch "$plain/.complete"
	fi
	MODDIR=$plain
fi

# ---------------------------------------------------------------------------
# The initramfs: static busybox, /init (initramfs-init.sh) and the modules
# needed to reach the host's / (virtio PCI, 9p over virtio, overlayfs) plus
# virtio_blk, in dependency order, decompressed for busybox insmod. Rebuilt
# only when one of its inputs changes.

INITRD_MODS="virtio_pci virtio_blk 9pnet_virtio 9p overlay"

# modprobe --show-depends resolves the order (and tells builtins apart) with
# the same index the guest will use. -d wants the directory holding
# lib/modules/KVER.
moddir_base=${MODDIR%/lib/modules/"$KVER"}
moddir_base=${moddir_base:-/}
mod_paths() {
	local m
	for m in $INITRD_MODS; do
		modprobe -d "$moddir_base" -S "$KVER" --show-depends "$m" ||
			die "module $m not found for $KVER"
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}
paths=$(mod_paths)
key=$( { echo "kver=$KVER mods=$INITRD_MODS"; echo "$paths";
	cat "$VM_DIR/initramfs-init.sh"; sha256sum /bin/busybox; } | sha256sum | cut -d' ' -f1)
if [ ! -f "$DIR/initramfs.cpio.gz" ] || [ "$(cat "$DIR/initramfs.key" 2>/dev/null)" != "$key" ]; then
	say "prepare $RELEASE: building initramfs"
	tmp=$(mktemp -d)
	mkdir -p "$tmp"/{bin,dev,proc,sys,mnt,newroot,lib/modules}
	cp /bin/busybox "$tmp/bin/busybox"
	cp "$VM_DIR/initramfs-init.sh" "$tmp/init"
	chmod 755 "$tmp/init"
	: >"$tmp/lib/modules/load-order"
	while read -r p; do
		[ -n "$p" ] || continue
		name=$(basename "$p")
		name=${name%.xz}; name=${name%.zst}; name=${name%.gz}
		case "$p" in
		*.xz) xz -dc "$p" ;;
		*.zst) zstd -qdc "$p" ;;
		*.gz) gzip -dc "$p" ;;
		*) cat "$p" ;;
		esac >"$tmp/lib/modules/$name"
		echo "$name" >>"$tmp/lib/modules/load-order"
	done <<<"$paths"
	(cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$DIR/initramfs.cpio.gz.tmp"
	rm -rf "$tmp"
	mv "$DIR/initramfs.cpio.gz.tmp" "$DIR/initramfs.cpio.gz"
	echo "$key" >"$DIR/initramfs.key"
fi

# ---------------------------------------------------------------------------
{
	echo "# Generated by tests/vm/prepare.sh $RELEASE on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	for v in RELEASE KVER VMLINUZ MODDIR KDIR ROOT; do
		printf '%s=%q\n' "$v" "${!v}"
	done
} >"$DIR/env.tmp"
mv "$DIR/env.tmp" "$DIR/env"
stamp_text >"$DIR/stamp"
say "prepare $RELEASE: ready, KVER=$KVER ($(( $(now) - start )) s)"
