/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's logic as a whole: trackers, snapshots, recovery on start,
 * the state file, lifetimes. Knows nothing of D-Bus: the glue watches its
 * signals and calls its methods.
 */
#pragma once

#include <gio/gio.h>

#include "bs-config.h"
#include "bs-control.h"
#include "bs-options.h"
#include "bs-snapshot.h"

G_BEGIN_DECLS

#define BS_TYPE_MANAGER (bs_manager_get_type ())
G_DECLARE_FINAL_TYPE (BsManager, bs_manager, BS, MANAGER, GObject)

typedef struct {
	BsDev dev;
	gchar *name;                  /* "MAJ:MIN" */
	struct blksnap_cbt_info info;
} BsDeviceInfo;

BsManager    *bs_manager_new            (BsConfig *config, BsControl *control,
                                         const gchar *state_path);
gboolean      bs_manager_start          (BsManager *self, GError **error);
const BsConfig *bs_manager_get_config   (BsManager *self);
const gchar  *bs_manager_get_module_version (BsManager *self);
GList        *bs_manager_get_snapshots  (BsManager *self);
BsSnapshot   *bs_manager_find_snapshot  (BsManager *self, const gchar *id_hex);
BsSnapshot   *bs_manager_find_snapshot_of_device (BsManager *self, const BsDev *dev);
GList        *bs_manager_get_devices    (BsManager *self);
BsDeviceInfo *bs_manager_find_device    (BsManager *self, const BsDev *dev);
void          bs_manager_refresh        (BsManager *self);

gboolean      bs_manager_track          (BsManager *self, const BsDev *dev, GError **error);
gboolean      bs_manager_untrack        (BsManager *self, const BsDev *dev, GError **error);
GArray       *bs_manager_get_changed_blocks (BsManager *self, const BsDev *dev,
                                             const gchar *generation, guint8 since,
                                             gboolean at_take, GError **error);
GBytes       *bs_manager_read_cbt_map   (BsManager *self, const BsDev *dev,
                                         guint32 flags, gchar **generation,
                                         GError **error);
gboolean      bs_manager_mark_dirty     (BsManager *self, const BsDev *dev,
                                         const GArray *byte_ranges, GError **error);

gboolean      bs_manager_check_devices  (BsManager *self, GArray *devices, GError **error);
void          bs_manager_create_snapshot_async (BsManager *self, GArray *devices,
                                                const BsSnapshotOptions *options,
                                                guint32 owner, const gchar *bound_to,
                                                GAsyncReadyCallback callback,
                                                gpointer user_data);
BsSnapshot   *bs_manager_create_snapshot_finish (BsManager *self, GAsyncResult *res,
                                                 GError **error);
gboolean      bs_manager_destroy_snapshot (BsManager *self, BsSnapshot *snapshot,
                                           GError **error);
gboolean      bs_manager_save_state     (BsManager *self, GError **error);

G_END_DECLS
