/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A thin wrapper of /dev/blksnap-control: one function per ioctl, GError
 * with a #BsError code instead of errno. Thread-safe (the ioctls are), so
 * event watcher threads share one #BsControl with the main loop.
 */
#pragma once

#include <glib-object.h>
#include <linux/blksnap.h>

G_BEGIN_DECLS

#define BS_CONTROL_DEFAULT_PATH "/dev/" BLKSNAP_CTL_NAME

#define BS_TYPE_CONTROL (bs_control_get_type ())
G_DECLARE_FINAL_TYPE (BsControl, bs_control, BS, CONTROL, GObject)

typedef struct blksnap_bdev BsDev;
typedef struct blksnap_uuid BsUuid;

/* device numbers and ids as text */
gboolean  bs_dev_parse            (const gchar *str, BsDev *dev, GError **error);
gchar    *bs_dev_to_string        (const BsDev *dev);
gboolean  bs_dev_equal            (const BsDev *a, const BsDev *b);
gboolean  bs_uuid_parse           (const gchar *str, BsUuid *id, GError **error);
gchar    *bs_uuid_to_string       (const BsUuid *id);
gchar    *bs_uuid_to_hex          (const BsUuid *id);

BsControl *bs_control_new         (const gchar *path);
gboolean   bs_control_open        (BsControl *self, GError **error);
gboolean   bs_control_version     (BsControl *self, struct blksnap_version *version,
                                   GError **error);

gboolean   bs_control_tracker_attach (BsControl *self, const BsDev *dev, GError **error);
gboolean   bs_control_tracker_detach (BsControl *self, const BsDev *dev, GError **error);
GArray    *bs_control_tracker_list   (BsControl *self, GError **error);
gboolean   bs_control_cbt_info       (BsControl *self, const BsDev *dev,
                                      struct blksnap_cbt_info *info, GError **error);
GBytes    *bs_control_cbt_map        (BsControl *self, const BsDev *dev,
                                      guint32 block_count, guint32 flags,
                                      GError **error);
gboolean   bs_control_cbt_dirty      (BsControl *self, const BsDev *dev,
                                      const struct blksnap_sectors *ranges, guint count,
                                      GError **error);

gboolean   bs_control_snapshot_create  (BsControl *self, BsUuid *id, GError **error);
gboolean   bs_control_snapshot_add_device (BsControl *self, const BsUuid *id,
                                           const BsDev *dev, GError **error);
gboolean   bs_control_snapshot_append_storage (BsControl *self, const BsUuid *id,
                                               const BsDev *dev,
                                               const struct blksnap_sectors *ranges,
                                               gsize count, GError **error);
gboolean   bs_control_snapshot_take    (BsControl *self, const BsUuid *id, GError **error);
gboolean   bs_control_snapshot_destroy (BsControl *self, const BsUuid *id, GError **error);
GArray    *bs_control_snapshot_list    (BsControl *self, GError **error);
gboolean   bs_control_snapshot_info    (BsControl *self, const BsUuid *id,
                                        struct blksnap_snapshot_info *info,
                                        GArray **devices, GError **error);
gboolean   bs_control_image_info       (BsControl *self, const BsDev *dev,
                                        struct blksnap_image_info *info, GError **error);

/* Returns FALSE with BS_ERROR_NOT_FOUND... see the .c for the timeout case */
gboolean   bs_control_snapshot_wait_event (BsControl *self, const BsUuid *id,
                                           guint32 timeout_ms,
                                           struct blksnap_snapshot_event *event,
                                           gboolean *timed_out, GError **error);

G_END_DECLS
