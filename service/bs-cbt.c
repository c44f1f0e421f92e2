/* SPDX-License-Identifier: GPL-2.0-or-later */

#include "bs-cbt.h"

/**
 * bs_cbt_changed_ranges:
 * @map: CBT map, one change number per tracking block
 * @block_count: number of blocks in @map
 * @block_size: tracking block size in bytes
 * @device_size: device size in bytes; the last block may be partial
 * @since_number: change number of the last backup point, 0 for "ever"
 *
 * Every block whose change number is above @since_number was written
 * after that point (or in the same snapshot generation but later), so it
 * must be copied. Adjacent blocks are merged into one range.
 *
 * Returns: (transfer full): a #GArray of #BsRange in ascending order
 */
GArray *
bs_cbt_changed_ranges (const guint8 *map,
                       gsize         block_count,
                       guint32       block_size,
                       guint64       device_size,
                       guint8        since_number)
{
	GArray *ranges = g_array_new (FALSE, FALSE, sizeof (BsRange));
	gsize i = 0;

	while (i < block_count) {
		BsRange range;
		gsize first;

		if (map[i] <= since_number) {
			i++;
			continue;
		}
		first = i;
		while (i < block_count && map[i] > since_number)
			i++;
		range.offset = (guint64) first * block_size;
		if (range.offset >= device_size)
			break;
		range.length = MIN ((guint64) (i - first) * block_size,
		                    device_size - range.offset);
		g_array_append_val (ranges, range);
	}
	return ranges;
}

/**
 * bs_ranges_total:
 * @ranges: a #GArray of #BsRange
 *
 * Returns: the number of bytes the ranges cover
 */
guint64
bs_ranges_total (const GArray *ranges)
{
	guint64 total = 0;

	for (guint i = 0; i < ranges->len; i++)
		total += g_array_index (ranges, BsRange, i).length;
	return total;
}
