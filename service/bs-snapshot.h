/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One snapshot: the kernel's view of it (refreshed), the daemon's own
 * record (owner, lifetime, storage files), its event watcher thread and
 * the growth of its difference storage.
 */
#pragma once

#include <gio/gio.h>

#include "bs-config.h"
#include "bs-control.h"
#include "bs-state.h"

G_BEGIN_DECLS

#define BS_TYPE_SNAPSHOT (bs_snapshot_get_type ())
G_DECLARE_FINAL_TYPE (BsSnapshot, bs_snapshot, BS, SNAPSHOT, GObject)

BsSnapshot    *bs_snapshot_new          (BsControl *control, const gchar *storage_dir,
                                         BsStateRecord *record);
const BsUuid  *bs_snapshot_get_id       (BsSnapshot *self);
const gchar   *bs_snapshot_get_id_string (BsSnapshot *self);
const gchar   *bs_snapshot_get_id_hex   (BsSnapshot *self);
BsStateRecord *bs_snapshot_get_record   (BsSnapshot *self);
GArray        *bs_snapshot_get_devices  (BsSnapshot *self);
guint32        bs_snapshot_get_state    (BsSnapshot *self);
const gchar   *bs_snapshot_get_state_string (BsSnapshot *self);
gint32         bs_snapshot_get_error    (BsSnapshot *self);
GHashTable    *bs_snapshot_get_images   (BsSnapshot *self);
guint64        bs_snapshot_get_allocated (BsSnapshot *self);
guint64        bs_snapshot_get_used     (BsSnapshot *self);
guint64        bs_snapshot_get_spare    (BsSnapshot *self);
gboolean       bs_snapshot_has_device   (BsSnapshot *self, const BsDev *dev);

gboolean       bs_snapshot_refresh      (BsSnapshot *self, GError **error);
void           bs_snapshot_start_watcher (BsSnapshot *self);
void           bs_snapshot_set_reserve  (BsSnapshot *self, const BsConfig *config);

void           bs_snapshot_grow_async   (BsSnapshot *self, guint64 size,
                                         GAsyncReadyCallback callback, gpointer user_data);
gboolean       bs_snapshot_grow_finish  (BsSnapshot *self, GAsyncResult *res, GError **error);
void           bs_snapshot_refill_spare_async (BsSnapshot *self, GAsyncReadyCallback callback,
                                               gpointer user_data);
gboolean       bs_snapshot_refill_spare_finish (BsSnapshot *self, GAsyncResult *res,
                                                GError **error);
void           bs_snapshot_take_async   (BsSnapshot *self,
                                         GAsyncReadyCallback callback, gpointer user_data);
gboolean       bs_snapshot_take_finish  (BsSnapshot *self, GAsyncResult *res, GError **error);
gboolean       bs_snapshot_destroy      (BsSnapshot *self, GError **error);
gint           bs_snapshot_open_image   (BsSnapshot *self, const BsDev *dev, GError **error);

void           bs_snapshot_log          (BsSnapshot *self, GLogLevelFlags level,
                                         const gchar *format, ...) G_GNUC_PRINTF (3, 4);

G_END_DECLS
