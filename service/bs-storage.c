/* SPDX-License-Identifier: GPL-2.0-or-later */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/blksnap.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "bs-error.h"
#include "bs-storage.h"

#define FIEMAP_BATCH 256

/*
 * Flags that say nothing about where the data is: unwritten (what
 * fallocate() leaves), merged, last. Every other flag — unknown, delalloc,
 * encoded, encrypted, not aligned, inline, tail, shared, and any flag
 * added later — means the extent is not plain blocks we may overwrite.
 */
#define FIEMAP_FLAGS_PLAIN (FIEMAP_EXTENT_LAST | FIEMAP_EXTENT_UNWRITTEN | \
                            FIEMAP_EXTENT_MERGED)

#ifndef XFS_SUPER_MAGIC
#define XFS_SUPER_MAGIC 0x58465342
#endif

void
bs_storage_file_free (BsStorageFile *file)
{
	if (file == NULL)
		return;
	if (file->fd >= 0)
		close (file->fd);
	g_free (file->path);
	if (file->ranges != NULL)
		g_array_unref (file->ranges);
	g_free (file);
}

static gchar *
fiemap_flags_to_string (guint32 flags)
{
	static const struct {
		guint32 flag;
		const gchar *name;
	} names[] = {
		{ FIEMAP_EXTENT_UNKNOWN, "unknown" },
		{ FIEMAP_EXTENT_DELALLOC, "delalloc" },
		{ FIEMAP_EXTENT_ENCODED, "encoded" },
		{ FIEMAP_EXTENT_DATA_ENCRYPTED, "encrypted" },
		{ FIEMAP_EXTENT_NOT_ALIGNED, "not-aligned" },
		{ FIEMAP_EXTENT_DATA_INLINE, "inline" },
		{ FIEMAP_EXTENT_DATA_TAIL, "tail" },
		{ FIEMAP_EXTENT_SHARED, "shared" },
	};
	g_autoptr(GString) str = g_string_new (NULL);

	for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
		if (flags & names[i].flag) {
			g_string_append_printf (str, "%s%s", str->len ? "," : "", names[i].name);
			flags &= ~names[i].flag;
		}
	}
	if (flags != 0)
		g_string_append_printf (str, "%s0x%x", str->len ? "," : "", flags);
	return g_string_free (g_steal_pointer (&str), FALSE);
}

/**
 * bs_extents_to_ranges:
 * @extents: extents as FS_IOC_FIEMAP returns them, in file order
 * @ranges: a #GArray of struct blksnap_sectors to append to
 *
 * Appends the extents as sector ranges, merging one with the last range
 * when it continues it on the device. Refuses extents that are not plain
 * blocks, or not whole sectors; @ranges is then unchanged.
 *
 * Returns: %TRUE for success
 */
gboolean
bs_extents_to_ranges (const struct fiemap_extent *extents, guint count, GArray *ranges,
                      GError **error)
{
	guint len_before = ranges->len;

	for (guint i = 0; i < count; i++) {
		const struct fiemap_extent *e = &extents[i];
		struct blksnap_sectors r;
		guint32 bad = e->fe_flags & ~(guint32) FIEMAP_FLAGS_PLAIN;

		if (bad != 0) {
			g_autofree gchar *what = fiemap_flags_to_string (bad);
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "extent at file offset %llu is %s, not plain blocks "
			             "on the device",
			             (unsigned long long) e->fe_logical, what);
			goto fail;
		}
		if (e->fe_physical % 512 != 0 || e->fe_length % 512 != 0 || e->fe_length == 0 ||
		    e->fe_physical + e->fe_length < e->fe_physical) {
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "extent at file offset %llu is not whole sectors",
			             (unsigned long long) e->fe_logical);
			goto fail;
		}
		r.offset = e->fe_physical / 512;
		r.count = e->fe_length / 512;
		if (ranges->len > len_before) {
			struct blksnap_sectors *last =
				&g_array_index (ranges, struct blksnap_sectors, ranges->len - 1);
			if (last->offset + last->count == r.offset) {
				last->count += r.count;
				continue;
			}
		}
		g_array_append_val (ranges, r);
	}
	return TRUE;
fail:
	g_array_set_size (ranges, len_before);
	return FALSE;
}

guint64
bs_ranges_sectors (const GArray *ranges)
{
	guint64 total = 0;

	for (guint i = 0; i < ranges->len; i++)
		total += g_array_index (ranges, struct blksnap_sectors, i).count;
	return total;
}

/**
 * bs_storage_check_fs_type:
 * @f_type: statfs(2)'s f_type
 *
 * Only filesystems that keep a file's blocks where fallocate() put them,
 * and whose FIEMAP addresses are offsets on st_dev's block device, are
 * fit: ext2/3/4 and XFS. The message names what was found for the others.
 */
gboolean
bs_storage_check_fs_type (gint64 f_type, GError **error)
{
	static const struct {
		gint64 magic;
		const gchar *name;
	} known[] = {
		{ TMPFS_MAGIC, "tmpfs" },
		{ RAMFS_MAGIC, "ramfs" },
		{ NFS_SUPER_MAGIC, "NFS" },
		{ SMB_SUPER_MAGIC, "SMB" },
		{ 0xFE534D42, "SMB2" },
		{ 0xFF534D42, "CIFS" },
		{ V9FS_MAGIC, "9p" },
		{ FUSE_SUPER_MAGIC, "FUSE" },
		{ CEPH_SUPER_MAGIC, "Ceph" },
		{ AFS_SUPER_MAGIC, "AFS" },
		{ OVERLAYFS_SUPER_MAGIC, "overlayfs" },
		{ BTRFS_SUPER_MAGIC, "btrfs" },
		{ SQUASHFS_MAGIC, "squashfs" },
		{ 0x2fc12fc1, "ZFS" },
		{ 0xF2F52010, "F2FS" },
	};

	if (f_type == EXT4_SUPER_MAGIC || f_type == XFS_SUPER_MAGIC)
		return TRUE;
	for (guint i = 0; i < G_N_ELEMENTS (known); i++) {
		if (known[i].magic == f_type) {
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "difference storage cannot live on %s: only on ext2/3/4 "
			             "or XFS, whose file extents are plain blocks of one "
			             "block device", known[i].name);
			return FALSE;
		}
	}
	g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
	             "difference storage cannot live on a filesystem of type 0x%llx: "
	             "only on ext2/3/4 or XFS", (unsigned long long) f_type);
	return FALSE;
}

/**
 * bs_storage_prepare_dir:
 * @create: make @dir (mode 0700) if it does not exist
 *
 * The directory must be ours alone: a directory (not a symlink), owned by
 * the daemon's user, writable by nobody else — otherwise someone could
 * plant a file or link there and have the module write over it.
 */
gboolean
bs_storage_prepare_dir (const gchar *dir, gboolean create, GError **error)
{
	struct stat st;

	if (create && mkdir (dir, 0700) != 0 && errno != EEXIST) {
		gint errsv = errno;
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED, "cannot create %s: %s", dir,
		             g_strerror (errsv));
		return FALSE;
	}
	if (lstat (dir, &st) != 0) {
		gint errsv = errno;
		g_set_error (error, BS_ERROR, bs_error_from_errno (errsv), "%s: %s", dir,
		             g_strerror (errsv));
		return FALSE;
	}
	if (!S_ISDIR (st.st_mode)) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "%s is not a directory", dir);
		return FALSE;
	}
	if (st.st_uid != geteuid () || (st.st_mode & 0022) != 0) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "%s must be owned by uid %u and writable by nobody else "
		             "(it is uid %u, mode %04o)", dir, geteuid (), st.st_uid,
		             st.st_mode & 07777);
		return FALSE;
	}
	return TRUE;
}

gboolean
bs_storage_fs_space (const gchar *dir, guint64 *free_bytes, guint64 *fs_bytes,
                     GError **error)
{
	struct statvfs sv;

	if (statvfs (dir, &sv) != 0) {
		gint errsv = errno;
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED, "statvfs %s: %s", dir,
		             g_strerror (errsv));
		return FALSE;
	}
	*free_bytes = (guint64) sv.f_bavail * sv.f_frsize;
	*fs_bytes = (guint64) sv.f_blocks * sv.f_frsize;
	return TRUE;
}

/* All extents of @fd from FS_IOC_FIEMAP as sector ranges. */
static gboolean
storage_read_extents (gint fd, GArray *ranges, GError **error)
{
	gsize size = sizeof (struct fiemap) + FIEMAP_BATCH * sizeof (struct fiemap_extent);
	g_autofree struct fiemap *fm = g_malloc0 (size);
	guint64 start = 0;
	gboolean last = FALSE;

	while (!last) {
		memset (fm, 0, size);
		fm->fm_start = start;
		fm->fm_length = FIEMAP_MAX_OFFSET - start;
		fm->fm_flags = FIEMAP_FLAG_SYNC;
		fm->fm_extent_count = FIEMAP_BATCH;
		if (ioctl (fd, FS_IOC_FIEMAP, fm) != 0) {
			gint errsv = errno;
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "FIEMAP: %s", g_strerror (errsv));
			return FALSE;
		}
		if (fm->fm_mapped_extents == 0)
			break;
		if (!bs_extents_to_ranges (fm->fm_extents, fm->fm_mapped_extents, ranges, error))
			return FALSE;
		{
			struct fiemap_extent *e = &fm->fm_extents[fm->fm_mapped_extents - 1];
			start = e->fe_logical + e->fe_length;
			last = (e->fe_flags & FIEMAP_EXTENT_LAST) != 0;
		}
	}
	return TRUE;
}

/**
 * bs_storage_file_create:
 * @dir: a directory checked with bs_storage_prepare_dir()
 * @name: a new file name in @dir (no slash)
 * @size: bytes to allocate later, a multiple of 512
 *
 * Creates the file (it must not exist; symlinks are not followed) and
 * checks that its filesystem is fit, without allocating anything: only
 * quick metadata work, so the main loop may call it. The file exists on
 * return, so whoever removes the snapshot's files by path removes it even
 * while bs_storage_file_fill() still works on it. On failure nothing is
 * left.
 *
 * Returns: (transfer full): the file, open, or %NULL
 */
BsStorageFile *
bs_storage_file_create (const gchar *dir, const gchar *name, guint64 size, GError **error)
{
	g_autoptr(BsStorageFile) file = g_new0 (BsStorageFile, 1);
	g_autofree gchar *sysfs = NULL;
	struct statfs sfs;
	struct stat st;
	gint dirfd;
	gint errsv;

	file->fd = -1;
	if (size == 0 || size % 512 != 0 || strchr (name, '/') != NULL) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "bad storage file request %s (%" G_GUINT64_FORMAT " bytes)",
		             name, size);
		return NULL;
	}
	file->path = g_build_filename (dir, name, NULL);
	file->size = size;
	file->ranges = g_array_new (FALSE, FALSE, sizeof (struct blksnap_sectors));

	dirfd = open (dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0) {
		errsv = errno;
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED, "%s: %s", dir, g_strerror (errsv));
		return NULL;
	}
	file->fd = openat (dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	                   0600);
	if (file->fd < 0) {
		errsv = errno;
		close (dirfd);
		g_set_error (error, BS_ERROR, bs_error_from_errno (errsv), "create %s: %s",
		             file->path, g_strerror (errsv));
		return NULL;
	}

	if (fstatfs (file->fd, &sfs) != 0) {
		errsv = errno;
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED, "statfs %s: %s", file->path,
		             g_strerror (errsv));
		goto fail;
	}
	if (!bs_storage_check_fs_type (sfs.f_type, error))
		goto fail;
	if (fstat (file->fd, &st) != 0) {
		errsv = errno;
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED, "stat %s: %s", file->path,
		             g_strerror (errsv));
		goto fail;
	}
	file->dev.major = major (st.st_dev);
	file->dev.minor = minor (st.st_dev);
	sysfs = g_strdup_printf ("/sys/dev/block/%u:%u", file->dev.major, file->dev.minor);
	if (!g_file_test (sysfs, G_FILE_TEST_EXISTS)) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "the filesystem of %s is not on a block device (%u:%u)", dir,
		             file->dev.major, file->dev.minor);
		goto fail;
	}
	close (dirfd);
	return g_steal_pointer (&file);
fail:
	unlinkat (dirfd, name, 0);
	close (dirfd);
	return NULL;
}

/**
 * bs_storage_file_fill:
 * @file: from bs_storage_file_create()
 *
 * Allocates the file's blocks, syncs them and reads its extents into
 * @file->ranges, then closes it. Blocks for as long as fallocate() and
 * fsync() take: call it from a worker thread. On failure the file is
 * removed.
 */
gboolean
bs_storage_file_fill (BsStorageFile *file, GError **error)
{
	gint errsv;
	guint64 t;

	g_return_val_if_fail (file->fd >= 0, FALSE);
	t = bs_monotonic_ns ();
	if (fallocate (file->fd, 0, 0, file->size) != 0) {
		errsv = errno;
		g_set_error (error, BS_ERROR,
		             errsv == EOPNOTSUPP ? BS_ERROR_INVALID_ARGUMENT
		                                 : bs_error_from_errno (errsv),
		             "allocate %" G_GUINT64_FORMAT " bytes for %s: %s", file->size,
		             file->path, g_strerror (errsv));
		goto fail;
	}
	file->fallocate_ns = bs_monotonic_ns () - t;
	t = bs_monotonic_ns ();
	if (fsync (file->fd) != 0) {
		errsv = errno;
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED, "fsync %s: %s", file->path,
		             g_strerror (errsv));
		goto fail;
	}
	file->fsync_ns = bs_monotonic_ns () - t;
	t = bs_monotonic_ns ();
	if (!storage_read_extents (file->fd, file->ranges, error)) {
		g_prefix_error (error, "%s: ", file->path);
		goto fail;
	}
	file->fiemap_ns = bs_monotonic_ns () - t;
	if (bs_ranges_sectors (file->ranges) * 512 != file->size) {
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED,
		             "%s: extents cover %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
		             " bytes", file->path, bs_ranges_sectors (file->ranges) * 512,
		             file->size);
		goto fail;
	}
	close (file->fd);
	file->fd = -1;
	return TRUE;
fail:
	g_array_set_size (file->ranges, 0);
	close (file->fd);
	file->fd = -1;
	unlink (file->path);
	return FALSE;
}

/**
 * bs_storage_file_allocate:
 *
 * bs_storage_file_create() and bs_storage_file_fill() in one: blocks, so
 * call it from a worker thread.
 *
 * Returns: (transfer full): the file and its ranges, or %NULL
 */
BsStorageFile *
bs_storage_file_allocate (const gchar *dir, const gchar *name, guint64 size, GError **error)
{
	g_autoptr(BsStorageFile) file = bs_storage_file_create (dir, name, size, error);

	if (file == NULL || !bs_storage_file_fill (file, error))
		return NULL;
	return g_steal_pointer (&file);
}

/* The clock of the module's event time labels (ktime_get_ns). */
guint64
bs_monotonic_ns (void)
{
	struct timespec ts;

	clock_gettime (CLOCK_MONOTONIC, &ts);
	return (guint64) ts.tv_sec * G_GUINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

/**
 * bs_storage_file_remove:
 *
 * A file that is gone already is fine.
 */
gboolean
bs_storage_file_remove (const gchar *path, GError **error)
{
	if (unlink (path) != 0 && errno != ENOENT) {
		gint errsv = errno;
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED, "remove %s: %s", path,
		             g_strerror (errsv));
		return FALSE;
	}
	return TRUE;
}
