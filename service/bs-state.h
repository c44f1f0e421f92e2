/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's state file: what the kernel does not know about each
 * snapshot (owner, lifetime, binding, storage files), so a restarted
 * daemon can adopt its snapshots or clean up after them. One GKeyFile
 * group per snapshot, replaced atomically on every change.
 */
#pragma once

#include <glib.h>

#include "bs-control.h"

G_BEGIN_DECLS

typedef struct {
	BsUuid     id;
	guint32    owner;
	gint64     created_us;   /* wall clock */
	gint64     expiry_us;    /* wall clock, 0: none */
	gchar     *bound_to;     /* bus name or NULL */
	guint64    limit;
	guint64    grow_step;
	GPtrArray *files;        /* paths of storage files */
	GPtrArray *spares;       /* files allocated ahead, not appended, oldest
	                          * first (the next to be appended) */
} BsStateRecord;

/* What became of the oldest spare file (the only one that may have been
 * on its way to the module) when the daemon stopped, told by the sizes. */
typedef enum {
	BS_SPARE_UNUSED,    /* the kernel has just the files: the spare is free */
	BS_SPARE_APPENDED,  /* the kernel has the files and the spare */
	BS_SPARE_UNKNOWN,   /* neither: the module may be writing to it */
} BsSpareFate;

BsStateRecord *bs_state_record_new  (const BsUuid *id);
void           bs_state_record_free (BsStateRecord *record);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BsStateRecord, bs_state_record_free)

GPtrArray *bs_state_load_data (const gchar *data, GError **error);
gchar     *bs_state_to_data   (GPtrArray *records);
GPtrArray *bs_state_load      (const gchar *path, GError **error);
gboolean   bs_state_save      (const gchar *path, GPtrArray *records, GError **error);

BsSpareFate bs_state_spare_fate (guint64 kernel_bytes, guint64 files_bytes,
                                 guint64 spare_bytes);

G_END_DECLS
