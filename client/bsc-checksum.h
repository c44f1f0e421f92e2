/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The checksum of each run of a backup. A manifest names its algorithm,
 * so points written with another one still restore and verify.
 *
 * xxh3-128 (the default) is what a run's checksum is for: catching a
 * damaged or misplaced run at restore, at a speed that keeps up with the
 * disk; sha256 is there for chains written before it and for those who
 * want a cryptographic digest. Both print as lower-case hex, xxh3-128 in
 * its canonical (big-endian) form, as xxh128sum prints it.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
	BSC_CHECKSUM_SHA256,
	BSC_CHECKSUM_XXH3_128,
} BscChecksum;

#define BSC_CHECKSUM_DEFAULT BSC_CHECKSUM_XXH3_128
/* the longest hex digest, without its NUL */
#define BSC_CHECKSUM_HEX_MAX 64

const gchar *bsc_checksum_name       (BscChecksum type);
gboolean     bsc_checksum_from_name  (const gchar *name, BscChecksum *type, GError **error);
gsize        bsc_checksum_hex_length (BscChecksum type);
gboolean     bsc_checksum_is_hex     (BscChecksum type, const gchar *text);
void         bsc_checksum_hex        (BscChecksum type, const guint8 *data, gsize length,
                                      gchar out[BSC_CHECKSUM_HEX_MAX + 1]);

G_END_DECLS
