/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The a{sv} options of the service's methods, checked before anything
 * happens: an unknown option, a wrong type or an absurd value is refused.
 */
#pragma once

#include <glib.h>

#include "bs-config.h"

G_BEGIN_DECLS

#define BS_OPTION_NO_USER_INTERACTION "auth.no_user_interaction"

/* Largest size accepted anywhere: 1 EiB, far beyond any disk, and far
 * from overflowing when added to others. */
#define BS_SIZE_MAX (G_GUINT64_CONSTANT (1) << 60)

typedef struct {
	gboolean no_user_interaction;
	guint64  initial_size;
	guint64  grow_step;
	guint64  limit;
	guint64  lifetime_s;
	gboolean take;
	gboolean bind_to_caller;
} BsSnapshotOptions;

gboolean bs_options_parse_common   (GVariant *options, gboolean *no_user_interaction,
                                    GError **error);
gboolean bs_options_parse_changed   (GVariant *options, gboolean *no_user_interaction,
                                    gboolean *snapshot, GError **error);
gboolean bs_options_parse_snapshot (GVariant *options, const BsConfig *config,
                                    BsSnapshotOptions *out, GError **error);
guint64  bs_size_round_mib         (guint64 size);

G_END_DECLS
