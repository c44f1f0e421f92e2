/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Change block tracking maps: turning the module's one-byte-per-block map
 * into the byte ranges a backup has to copy.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * BsRange:
 * @offset: first byte
 * @length: number of bytes
 */
typedef struct {
	guint64 offset;
	guint64 length;
} BsRange;

GArray *bs_cbt_changed_ranges (const guint8 *map,
                               gsize         block_count,
                               guint32       block_size,
                               guint64       device_size,
                               guint8        since_number);

guint64 bs_ranges_total (const GArray *ranges);

G_END_DECLS
