/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <gio/gio.h>

#include "bsc-plan.h"

/**
 * bsc_plan_runs:
 * @ranges: #BsRange, ascending and disjoint (from GetChangedBlocks)
 * @max_run: longest run (> 0): the unit of copy and checksum
 *
 * Returns: (transfer full): #BscRun (checksums empty) covering exactly
 *   @ranges, none longer than @max_run
 */
GArray *
bsc_plan_runs (const GArray *ranges, guint64 max_run)
{
	GArray *runs = g_array_new (FALSE, TRUE, sizeof (BscRun));

	g_return_val_if_fail (max_run > 0, runs);
	for (guint i = 0; i < ranges->len; i++) {
		const BsRange *r = &g_array_index (ranges, BsRange, i);
		guint64 done = 0;

		while (done < r->length) {
			BscRun run = { 0 };

			run.offset = r->offset + done;
			run.length = MIN (max_run, r->length - done);
			g_array_append_val (runs, run);
			done += run.length;
		}
	}
	return runs;
}

/**
 * bsc_plan_base:
 * @device: node, name or "MAJ:MIN" of the device
 *
 * Finds the last point of @chain that holds @device: the base of the
 * next incremental backup.
 *
 * Returns: FALSE if no point holds it
 */
gboolean
bsc_plan_base (GPtrArray *chain, const gchar *device, const BscManifest **point,
               const BscDeviceEntry **entry)
{
	for (guint i = chain->len; i > 0; i--) {
		const BscManifest *m = g_ptr_array_index (chain, i - 1);
		const BscDeviceEntry *e = bsc_manifest_find_device (m, device);

		if (e != NULL) {
			*point = m;
			*entry = e;
			return TRUE;
		}
	}
	return FALSE;
}

/**
 * bsc_plan_restore:
 * @chain: the points of a backup chain, ascending (bsc_chain_load())
 * @point: the point to restore, 0 for the last one
 * @device: (nullable): the device; may be NULL if the point holds one only
 *
 * The last full backup of the device at or before @point, then every
 * incremental after it up to @point. Every point in between must hold
 * the device, in the same CBT generation (a new generation makes the next
 * backup a full one), with the same capacity.
 *
 * Returns: (transfer full): #BscRestoreStep in the order to apply
 */
GArray *
bsc_plan_restore (GPtrArray *chain, guint point, const gchar *device, GError **error)
{
	g_autoptr(GArray) steps = g_array_new (FALSE, FALSE, sizeof (BscRestoreStep));
	const BscManifest *target = NULL;
	const BscDeviceEntry *entry;
	guint idx = 0;

	for (guint i = 0; i < chain->len; i++) {
		const BscManifest *m = g_ptr_array_index (chain, i);

		if (m->number == point || (point == 0 && i + 1 == chain->len)) {
			target = m;
			idx = i;
		}
	}
	if (target == NULL) {
		if (point == 0)
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no backup point found");
		else
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
			             "there is no backup point %u", point);
		return NULL;
	}
	if (device == NULL) {
		if (target->devices->len != 1) {
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			             "point %u holds %u devices: name one with --device",
			             target->number, target->devices->len);
			return NULL;
		}
		entry = g_ptr_array_index (target->devices, 0);
	} else {
		entry = bsc_manifest_find_device (target, device);
		if (entry == NULL) {
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
			             "point %u holds no backup of %s", target->number, device);
			return NULL;
		}
	}

	for (guint i = idx + 1; i > 0; i--) {
		const BscManifest *m = g_ptr_array_index (chain, i - 1);
		const BscDeviceEntry *e = bsc_manifest_find_device (m, entry->node);
		BscRestoreStep step = { m, e };

		if (e == NULL || e->capacity != entry->capacity ||
		    g_strcmp0 (e->generation, entry->generation) != 0) {
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			             "the chain of %s is broken at point %u (%s): no full backup "
			             "leads to point %u", entry->node, m->number,
			             e == NULL ? "the device is missing" :
			             e->capacity != entry->capacity ? "another size" :
			             "another CBT generation", target->number);
			return NULL;
		}
		g_array_prepend_val (steps, step);
		if (e->full)
			return g_steal_pointer (&steps);
		/* an incremental's runs are relative to the point just before */
	}
	g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
	             "no full backup of %s at or before point %u", entry->node, target->number);
	return NULL;
}
