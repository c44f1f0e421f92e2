/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Difference storage files: created by the daemon in a root-only
 * directory, fallocate()d and synced, their extents read with FIEMAP and
 * turned into sector ranges of the block device the filesystem is on.
 * The module then writes there directly, under the filesystem's nose: that
 * is safe only for plain, allocated, unshared extents of a filesystem that
 * does not move them (ext2/3/4, XFS), so everything else is refused.
 */
#pragma once

#include <glib.h>
#include <linux/fiemap.h>

#include "bs-control.h"

G_BEGIN_DECLS

#define BS_STORAGE_SUFFIX ".blksnap"

typedef struct {
	gchar   *path;
	gint     fd;      /* open between create and fill, else -1 */
	BsDev    dev;     /* block device holding the filesystem */
	guint64  size;    /* bytes */
	GArray  *ranges;  /* struct blksnap_sectors on @dev */
	/* how long each step of the allocation took (CLOCK_MONOTONIC ns) */
	guint64  fallocate_ns;
	guint64  fsync_ns;
	guint64  fiemap_ns;
} BsStorageFile;

void     bs_storage_file_free     (BsStorageFile *file);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BsStorageFile, bs_storage_file_free)

gboolean bs_extents_to_ranges     (const struct fiemap_extent *extents, guint count,
                                   GArray *ranges, GError **error);
guint64  bs_ranges_sectors        (const GArray *ranges);
gboolean bs_storage_check_fs_type (gint64 f_type, GError **error);
gboolean bs_storage_prepare_dir   (const gchar *dir, gboolean create, GError **error);
gboolean bs_storage_fs_space      (const gchar *dir, guint64 *free_bytes,
                                   guint64 *fs_bytes, GError **error);

BsStorageFile *bs_storage_file_create   (const gchar *dir, const gchar *name,
                                         guint64 size, GError **error);
gboolean       bs_storage_file_fill     (BsStorageFile *file, GError **error);
BsStorageFile *bs_storage_file_allocate (const gchar *dir, const gchar *name,
                                         guint64 size, GError **error);
gboolean bs_storage_file_remove   (const gchar *path, GError **error);
guint64  bs_monotonic_ns          (void);

G_END_DECLS
