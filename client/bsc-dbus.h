/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blksnapctl's side of the D-Bus API: calls, properties, object paths,
 * and errors turned into text a person can act on.
 */
#pragma once

#include <gio/gio.h>

#include "bsc-util.h"

G_BEGIN_DECLS

#define BSC_BUS_NAME      "org.blksnap.BlkSnap1"
#define BSC_ROOT_PATH     "/org/blksnap/BlkSnap1"
#define BSC_MANAGER_PATH  BSC_ROOT_PATH "/Manager"
#define BSC_IFACE_MANAGER "org.blksnap.BlkSnap1.Manager"
#define BSC_IFACE_DEVICE  "org.blksnap.BlkSnap1.Device"
#define BSC_IFACE_SNAPSHOT "org.blksnap.BlkSnap1.Snapshot"

GDBusConnection *bsc_dbus_connect      (GError **error);
GVariant        *bsc_dbus_call         (GDBusConnection *bus, const gchar *path,
                                        const gchar *iface, const gchar *method,
                                        GVariant *params, const GVariantType *reply,
                                        GUnixFDList **fds, GError **error);
GVariant        *bsc_dbus_get          (GDBusConnection *bus, const gchar *path,
                                        const gchar *iface, const gchar *name,
                                        GError **error);
GVariant        *bsc_dbus_get_all      (GDBusConnection *bus, const gchar *path,
                                        const gchar *iface, GError **error);
GVariant        *bsc_dbus_options      (gboolean no_interaction, GVariantDict *extra);

gboolean         bsc_device_resolve    (const gchar *device, gchar **majmin,
                                        gchar **object_path, GError **error);
gchar           *bsc_snapshot_path     (const gchar *id, GError **error);
gchar           *bsc_snapshot_id       (const gchar *object_path);

BscExit          bsc_exit_for_error    (const GError *error);

guint64 bsc_prop_u64 (GVariant *props, const gchar *name);

G_END_DECLS
