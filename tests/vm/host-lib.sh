# shellcheck shell=bash
# Variables here are used by the scripts that source this file.
# shellcheck disable=SC2034
# SPDX-License-Identifier: GPL-2.0
#
# Helpers shared by the host-side scripts of the VM test bench
# (prepare.sh, run.sh, shell.sh). Sourced, never executed.
#
# Everything here runs on a plain Debian 12 host as root. The guest side has
# its own helpers (lib.sh, guest-*.sh) because it runs under a different
# kernel, with the host's userspace mounted read-only over virtio-9p.

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=$(cd "$VM_DIR/../.." && pwd)
CACHE_ROOT=${BLKSNAP_VM_CACHE:-/var/cache/blksnap-vm}
RELEASES="bookworm trixie sid"

# Bump when the layout of the cache changes, so that old caches are redone
# instead of half-used.
CACHE_FORMAT=3

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

say() { printf '%s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

valid_release() {
	case " $RELEASES " in *" $1 "*) return 0 ;; esac
	return 1
}

# A wall clock in seconds (integer); SECONDS would do, but child scripts
# report their own spans and this keeps them comparable.
now() { date +%s; }

# Install host packages that are missing. "apt-get update" only runs when
# something is actually missing, so a prepared machine never touches the
# network. Recommends are skipped: qemu-system-x86 alone would pull a GUI.
host_need_pkgs() {
	local p missing=
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed'; then
			missing="$missing $p"
		fi
	done
	[ -z "$missing" ] && return 0
	local log=$CACHE_ROOT/host-apt.log
	mkdir -p "$CACHE_ROOT"
	say "installing host packages:$missing (log: $log)"
	apt-get update -qq >>"$log" 2>&1 ||
		{ tail -n 20 "$log" >&2; die "apt-get update failed"; }
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef \
		-o Dpkg::Options::=--force-confold $missing </dev/null >>"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; die "apt-get install$missing failed"; }
}

# Packages the bench needs on the host for every release: the emulator and
# its firmware, the initramfs tools, and the userspace the guest runs
# (the guest executes the host's binaries over 9p).
HOST_PKGS="qemu-system-x86 qemu-system-data seabios busybox-static debootstrap
	kmod cpio gzip xz-utils zstd util-linux coreutils procps
	fio e2fsprogs"

# The Debian mirror the host itself uses, so that chroots come from the same
# (possibly dated, possibly local) archive. deb822 sources first, then the
# classic one-line format; BLKSNAP_VM_MIRROR overrides.
host_mirror() {
	if [ -n "${BLKSNAP_VM_MIRROR:-}" ]; then
		echo "$BLKSNAP_VM_MIRROR"; return
	fi
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# Paragraphs whose Suites include plain "bookworm" (not -security).
		uri=$(awk '
			/^[[:space:]]*$/ { if (u && s && !d) { print u; exit } u=s=d=0; next }
			/^URIs:/ { u=$2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") s=1 }
			/^Enabled:[[:space:]]*no/ { d=1 }
			END { if (u && s && !d) print u }' "$f" | head -n1)
		[ -n "$uri" ] && { echo "${uri%/}"; return; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i+1) == "bookworm") { print $i; exit } break } }' "$f")
		[ -n "$uri" ] && { echo "${uri%/}"; return; }
	done
	echo http://deb.debian.org/debian
}

# Unmount everything at or below a directory, deepest first. Used before
# deleting a chroot left behind by an interrupted run: "rm -rf" through a
# live /proc or /dev bind mount would be a disaster.
umount_below() {
	local dir m
	dir=$(readlink -f "$1") || return 0
	awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts |
		sort -r | while read -r m; do
			umount "$m" 2>/dev/null || umount -l "$m"
		done
}

# Load RELEASE/env from the cache into the caller (KVER, VMLINUZ, ...).
load_env() {
	local envf="$CACHE_ROOT/$1/env"
	[ -f "$envf" ] || die "$envf missing: run tests/vm/prepare.sh $1"
	# shellcheck disable=SC1090
	. "$envf"
}

# Meson build dir: --build DIR, else $BLKSNAP_BUILD, else SRC/build.
default_build_dir() { echo "${BLKSNAP_BUILD:-$SRC_DIR/build}"; }

# Build the module for the release loaded by load_env into $1/blksnap.ko.
# BLKSNAP_KERNEL_DIR lets the bench itself be tested with a stand-in module.
build_module() {
	local out=$1 kdir_src=${BLKSNAP_KERNEL_DIR:-$SRC_DIR/kernel}
	local args=(--kdir "$KDIR" --out "$out")
	[ -n "$ROOT" ] && args+=(--root "$ROOT")
	rm -f "$out/blksnap.ko"
	"$kdir_src/build.sh" "${args[@]}" && [ -f "$out/blksnap.ko" ]
}

# Size strings for the test disks: "2G", "512M", or bytes.
size_bytes() {
	numfmt --from=iec "$1" 2>/dev/null || die "bad size '$1'"
}

# qemu_cmd MODE RESULTS_DIR DISK_DIR: fill the array QEMU with the command
# line for one boot of the release loaded by load_env. MODE is "test" or
# "shell"; the guest learns the rest from RESULTS_DIR/vm.env.
#
# Why these options:
# - TCG only: /dev/kvm has no backend on the CI machines.
# - One host thread for all vCPUs (thread=single; BLKSNAP_VM_TCG_THREAD=multi
#   to override). QEMU 7.2's multi-threaded TCG can go on running an old
#   translation of kernel text that another vCPU has just patched: when
#   ftrace adds or removes blksnap's hook on submit_bio_noacct while a
#   writer runs on the other vCPU, that vCPU keeps hitting the int3 of the
#   patching sequence after the kernel has removed it. 6.1 livelocks there
#   (soft lockup, rmmod stuck in synchronize_rcu_tasks_rude), 6.12 oopses
#   ("Oops: int3"). Reproduced in tens of insmod/rmmod cycles under fio;
#   with thread=single, 400 cycles ran clean.
# - The host's / read-only over 9p (multidevs=remap: / spans several
#   filesystems, and inode numbers must not collide in the guest);
#   cache=loose in the guest is safe because nothing on it changes during a
#   run, and it makes exec'ing host binaries much faster.
# - A small read-only placeholder disk comes first so the two test disks are
#   /dev/vdb and /dev/vdc, the names tests are written against. The disks
#   are "-drive if=none" + "-device virtio-blk-pci" (what if=virtio expands
#   to) because only -device takes a serial number, which lets the guest
#   check the mapping; fixed PCI slots keep the probe order stable.
# - event_idx=off on the test disks: with it on, QEMU 7.2 (TCG) now and
#   then never completes a queue's requests: the guest shows them in
#   flight for good, QEMU has no I/O outstanding, and later requests on
#   the same queue complete around them. A loop of 15 s fio runs (4 KiB
#   random writes, QD16, no blksnap loaded) hung in its 3rd and 7th run
#   (also with num-queues=1 or aio=native); with event_idx=off, 40 runs
#   and then a 45-run bench probe went through at the same IOPS.
# - -no-reboot: a guest panic (panic=1) or reboot ends QEMU at once instead
#   of looping; the host then counts unreported tests as failed.
qemu_cmd() {
	local mode=$1 results=$2 disks=$3
	local mem=${BLKSNAP_VM_MEM:-4096} smp=${BLKSNAP_VM_SMP:-2}
	# The path travels on the kernel command line, split at spaces.
	case "$VM_DIR" in *[[:space:]]*) die "the repository path must not contain spaces" ;; esac
	local cmdline="console=ttyS0,115200 panic=1 loglevel=5 rdinit=/init"
	cmdline="$cmdline bvm.init=$VM_DIR/guest-init.sh bvm.mode=$mode"
	# Slab caches unmerged: objects the module leaks are reported when its
	# cache is destroyed (guest-run.sh unloads it after every test).
	cmdline="$cmdline slab_nomerge"
	# The TSC as the guests' clock: without this, 6.1 finds the vCPUs' TSCs
	# unsynchronized at boot and 6.12's watchdog finds the TSC skewed
	# against the HPET once the host is busy, and both go on with the HPET,
	# whose every read is an emulated MMIO access (a trixie guest wrote 4
	# KiB at QD16 at 27-30 MB/s with it, 40-45 MB/s without, an hour
	# apart). The switch at run time also patches sched_clock's static
	# key, which under multi-threaded TCG oopsed a trixie guest ("Oops:
	# int3"; see thread=single above).
	cmdline="$cmdline tsc=reliable"
	cmdline="$cmdline ${BLKSNAP_VM_APPEND:-}"
	# shellcheck disable=SC2054 # commas belong to QEMU options
	QEMU=(qemu-system-x86_64
		-machine pc -accel "tcg,thread=${BLKSNAP_VM_TCG_THREAD:-single}" -cpu max
		-smp "$smp" -m "$mem"
		-nodefaults -no-user-config -no-reboot
		-display none -vga none -nic none
		-kernel "$VMLINUZ" -initrd "$CACHE_ROOT/$RELEASE/initramfs.cpio.gz"
		-append "$cmdline"
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
		-virtfs "local,path=$results,mount_tag=results,security_model=none,multidevs=remap"
		-drive "file=$disks/vda.img,if=none,id=vda,format=raw,readonly=on"
		-device virtio-blk-pci,drive=vda,serial=placeholder,addr=0x5
		-drive "file=$disks/vdb.img,if=none,id=vdb,format=raw,cache=$DISK_CACHE"
		-device virtio-blk-pci,drive=vdb,serial=vmdisk1,addr=0x6,event_idx=off
		-drive "file=$disks/vdc.img,if=none,id=vdc,format=raw,cache=$DISK_CACHE"
		-device virtio-blk-pci,drive=vdc,serial=vmdisk2,addr=0x7,event_idx=off)
}

# make_disks DIR SIZE: fresh sparse images for one boot. cache=none (O_DIRECT
# on the host: the guest's flushes and FUA mean something, and the host's
# page cache does not hide I/O costs) needs a filesystem that supports it;
# tmpfs before 6.6 does not, so fall back to writeback there.
make_disks() {
	local dir=$1 size=$2
	mkdir -p "$dir"
	rm -f "$dir"/vd?.img
	truncate -s 1M "$dir/vda.img"
	truncate -s "$size" "$dir/vdb.img"
	truncate -s "$size" "$dir/vdc.img"
	DISK_CACHE=none
	if ! dd if=/dev/zero of="$dir/vda.img" bs=4096 count=1 oflag=direct \
		conv=notrunc status=none 2>/dev/null; then
		say "note: $dir does not support O_DIRECT, disks use cache=writeback"
		DISK_CACHE=writeback
	fi
}

# write_vm_env FILE: the guest's whole configuration, read by guest-init.sh.
# Values are %q-quoted so paths with spaces survive.
write_vm_env() {
	local f=$1 k
	shift
	: >"$f"
	for k in "$@"; do
		printf '%s=%q\n' "$k" "${!k}" >>"$f"
	done
}
