/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What to copy and what to apply: runs of a backup from CBT ranges, the
 * points a restore replays.
 */
#pragma once

#include <glib.h>

#include "bs-cbt.h"
#include "bsc-manifest.h"

G_BEGIN_DECLS

/**
 * BscRestoreStep:
 * A point to apply and its entry of the device, borrowed from the chain.
 */
typedef struct {
	const BscManifest    *point;
	const BscDeviceEntry *entry;
} BscRestoreStep;

GArray  *bsc_plan_runs    (const GArray *ranges, guint64 max_run);
GArray  *bsc_plan_restore (GPtrArray *chain, guint point, const gchar *device,
                           GError **error);
gboolean bsc_plan_base    (GPtrArray *chain, const gchar *device,
                           const BscManifest **point, const BscDeviceEntry **entry);

G_END_DECLS
