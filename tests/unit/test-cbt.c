/* SPDX-License-Identifier: GPL-2.0-or-later */

#include "bs-cbt.h"

static void
assert_range (GArray *ranges, guint idx, guint64 offset, guint64 length)
{
	BsRange *r;

	g_assert_cmpuint (idx, <, ranges->len);
	r = &g_array_index (ranges, BsRange, idx);
	g_assert_cmpuint (r->offset, ==, offset);
	g_assert_cmpuint (r->length, ==, length);
}

static void
test_empty_map_has_no_ranges (void)
{
	guint8 map[16] = { 0 };
	g_autoptr(GArray) ranges = bs_cbt_changed_ranges (map, 16, 4096, 16 * 4096, 0);

	g_assert_cmpuint (ranges->len, ==, 0);
	g_assert_cmpuint (bs_ranges_total (ranges), ==, 0);
}

static void
test_adjacent_blocks_merge (void)
{
	guint8 map[8] = { 0, 1, 1, 0, 2, 2, 2, 0 };
	g_autoptr(GArray) ranges = bs_cbt_changed_ranges (map, 8, 65536, 8 * 65536, 0);

	g_assert_cmpuint (ranges->len, ==, 2);
	assert_range (ranges, 0, 65536, 2 * 65536);
	assert_range (ranges, 1, 4 * 65536, 3 * 65536);
	g_assert_cmpuint (bs_ranges_total (ranges), ==, 5 * 65536);
}

static void
test_since_number_filters_older_changes (void)
{
	guint8 map[6] = { 1, 2, 3, 2, 1, 3 };
	g_autoptr(GArray) ranges = bs_cbt_changed_ranges (map, 6, 512, 6 * 512, 2);

	g_assert_cmpuint (ranges->len, ==, 2);
	assert_range (ranges, 0, 2 * 512, 512);
	assert_range (ranges, 1, 5 * 512, 512);
}

static void
test_last_partial_block_is_clipped (void)
{
	guint8 map[3] = { 0, 0, 1 };
	/* 2.5 blocks: the last block covers only half a block of device */
	g_autoptr(GArray) ranges = bs_cbt_changed_ranges (map, 3, 4096, 2 * 4096 + 2048, 0);

	g_assert_cmpuint (ranges->len, ==, 1);
	assert_range (ranges, 0, 2 * 4096, 2048);
}

static void
test_number_255_is_changed_since_254 (void)
{
	guint8 map[2] = { 255, 254 };
	g_autoptr(GArray) ranges = bs_cbt_changed_ranges (map, 2, 4096, 2 * 4096, 254);

	g_assert_cmpuint (ranges->len, ==, 1);
	assert_range (ranges, 0, 0, 4096);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/cbt/empty-map-has-no-ranges", test_empty_map_has_no_ranges);
	g_test_add_func ("/cbt/adjacent-blocks-merge", test_adjacent_blocks_merge);
	g_test_add_func ("/cbt/since-number-filters-older-changes",
	                 test_since_number_filters_older_changes);
	g_test_add_func ("/cbt/last-partial-block-is-clipped", test_last_partial_block_is_clipped);
	g_test_add_func ("/cbt/number-255-is-changed-since-254", test_number_255_is_changed_since_254);
	return g_test_run ();
}
