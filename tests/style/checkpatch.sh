#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The module must be clean under the kernel's own style checker:
#   checkpatch.pl --no-tree -f on every source file of kernel/.
# checkpatch.pl ships in Debian only inside linux-source-*.tar.xz; it is
# extracted once into CACHE (default: /var/cache/blksnap-vm/checkpatch).
set -eu

src=$(cd "$(dirname "$0")/../.." && pwd)
cache=${CHECKPATCH_CACHE:-/var/cache/blksnap-vm/checkpatch}
script=$cache/scripts/checkpatch.pl

if [ ! -f "$script" ]; then
	tarball=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | tail -1)
	if [ -z "$tarball" ]; then
		echo "checkpatch.pl not found: apt-get install linux-source" >&2
		exit 1
	fi
	top=$(basename "$tarball" .tar.xz)
	mkdir -p "$cache"
	tar -xJf "$tarball" -C "$cache" --strip-components=1 \
		"$top/scripts/checkpatch.pl" "$top/scripts/spelling.txt" \
		"$top/scripts/const_structs.checkpatch"
fi

cd "$src/kernel"
# shellcheck disable=SC2046
out=$(perl "$script" --no-tree --terse --show-types -f \
	$(ls ./*.c ./*.h include/uapi/linux/*.h) 2>&1 || true)
problems=$(printf '%s\n' "$out" | grep -E ': (ERROR|WARNING|CHECK):' || true)
if [ -n "$problems" ]; then
	printf '%s\n' "$problems"
	exit 1
fi
echo "checkpatch: $(ls ./*.c ./*.h include/uapi/linux/*.h | wc -l) files clean"
