/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's configuration, /etc/blksnap/blksnapd.conf (GKeyFile):
 *
 *   [Storage]
 *   Directory=/var/lib/blksnap   where difference storage files go
 *   InitialSize=256M             allocated when a snapshot is created
 *   GrowStep=256M                added on each low-space event
 *   Limit=0                      most storage per snapshot, 0 = no limit
 *   Reserve=5%                   free space never used on the filesystem
 *                                (a size or a percentage of its size)
 *   [Snapshot]
 *   Lifetime=0                   seconds before a snapshot is destroyed,
 *                                0 = no limit
 *
 * Sizes take a K, M, G or T suffix (powers of 1024). A file that does not
 * parse, an unknown key or group, or a value out of range is an error for
 * the whole file: nothing is half-applied.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define BS_CONFIG_DEFAULT_PATH "/etc/blksnap/blksnapd.conf"
#define BS_MIB (G_GUINT64_CONSTANT (1) << 20)

typedef struct {
	gchar   *storage_dir;
	guint64  initial_size;
	guint64  grow_step;
	guint64  limit;          /* 0: none */
	guint64  reserve_bytes;  /* used when reserve_percent is 0 */
	guint    reserve_percent;
	guint64  lifetime_s;     /* 0: none */
} BsConfig;

BsConfig *bs_config_new_default   (void);
BsConfig *bs_config_new_from_data (const gchar *data, GError **error);
BsConfig *bs_config_new_from_file (const gchar *path, GError **error);
void      bs_config_free          (BsConfig *config);
guint64   bs_config_reserve_for   (const BsConfig *config, guint64 fs_size);

gboolean  bs_parse_size           (const gchar *str, guint64 *value, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BsConfig, bs_config_free)

G_END_DECLS
