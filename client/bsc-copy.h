/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Moving runs of bytes between file descriptors with a checksum of each:
 * the data path of backup (image fd -> data file) and restore (data
 * file -> target, verified). A reader thread keeps the next runs coming,
 * workers checksum them in parallel, the caller's thread writes them in
 * order.
 */
#pragma once

#include <glib.h>

#include "bsc-checksum.h"
#include "bsc-manifest.h"

G_BEGIN_DECLS

typedef struct _BscProgress BscProgress;

BscProgress *bsc_progress_new    (const gchar *label, guint64 total, gboolean enabled);
void         bsc_progress_add    (BscProgress *progress, guint64 bytes);
void         bsc_progress_finish (BscProgress *progress);
void         bsc_progress_free   (BscProgress *progress);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BscProgress, bsc_progress_free)

/**
 * BscCopyMode:
 * @BSC_COPY_BACKUP: fill in each run's checksum
 * @BSC_COPY_VERIFY: check each run against its checksum before writing
 */
typedef enum {
	BSC_COPY_BACKUP,
	BSC_COPY_VERIFY,
} BscCopyMode;

gboolean bsc_copy_runs (gint in_fd, gint out_fd, GArray *runs, BscChecksum checksum,
                        BscCopyMode mode, volatile gint *interrupted, BscProgress *progress,
                        guint64 *bytes_read, GError **error);

G_END_DECLS
