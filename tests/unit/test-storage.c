/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <linux/magic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bs-error.h"
#include "bs-storage.h"

static struct fiemap_extent
extent (guint64 logical, guint64 physical, guint64 length, guint32 flags)
{
	struct fiemap_extent e = {
		.fe_logical = logical,
		.fe_physical = physical,
		.fe_length = length,
		.fe_flags = flags,
	};
	return e;
}

static GArray *
new_ranges (void)
{
	return g_array_new (FALSE, FALSE, sizeof (struct blksnap_sectors));
}

static void
assert_sectors (GArray *ranges, guint idx, guint64 offset, guint64 count)
{
	struct blksnap_sectors *r;

	g_assert_cmpuint (idx, <, ranges->len);
	r = &g_array_index (ranges, struct blksnap_sectors, idx);
	g_assert_cmpuint (r->offset, ==, offset);
	g_assert_cmpuint (r->count, ==, count);
}

static void
test_extents_become_sector_ranges (void)
{
	struct fiemap_extent e[] = {
		extent (0, 1 << 20, 65536, FIEMAP_EXTENT_UNWRITTEN),
		extent (65536, 8 << 20, 4096, FIEMAP_EXTENT_UNWRITTEN | FIEMAP_EXTENT_LAST),
	};
	g_autoptr(GArray) ranges = new_ranges ();
	g_autoptr(GError) error = NULL;

	g_assert_true (bs_extents_to_ranges (e, G_N_ELEMENTS (e), ranges, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (ranges->len, ==, 2);
	assert_sectors (ranges, 0, 2048, 128);
	assert_sectors (ranges, 1, 16384, 8);
	g_assert_cmpuint (bs_ranges_sectors (ranges), ==, 136);
}

static void
test_contiguous_extents_merge (void)
{
	struct fiemap_extent e[] = {
		extent (0, 4096, 4096, FIEMAP_EXTENT_UNWRITTEN),
		extent (4096, 8192, 4096, FIEMAP_EXTENT_UNWRITTEN | FIEMAP_EXTENT_MERGED),
		extent (8192, 1 << 20, 4096, FIEMAP_EXTENT_LAST),
	};
	g_autoptr(GArray) ranges = new_ranges ();

	g_assert_true (bs_extents_to_ranges (e, G_N_ELEMENTS (e), ranges, NULL));
	g_assert_cmpuint (ranges->len, ==, 2);
	assert_sectors (ranges, 0, 8, 16);
	assert_sectors (ranges, 1, 2048, 8);
}

/* FIEMAP batches append; ranges of earlier batches are never touched, so
 * a failing batch can be undone by truncating. */
static void
test_batches_append (void)
{
	struct fiemap_extent a = extent (0, 4096, 4096, 0);
	struct fiemap_extent b = extent (4096, 8192, 4096, FIEMAP_EXTENT_LAST);
	g_autoptr(GArray) ranges = new_ranges ();

	g_assert_true (bs_extents_to_ranges (&a, 1, ranges, NULL));
	g_assert_true (bs_extents_to_ranges (&b, 1, ranges, NULL));
	g_assert_cmpuint (ranges->len, ==, 2);
	assert_sectors (ranges, 0, 8, 8);
	assert_sectors (ranges, 1, 16, 8);
}

static void
check_flag_refused (guint32 flag, const gchar *word)
{
	struct fiemap_extent e[] = {
		extent (0, 4096, 4096, FIEMAP_EXTENT_UNWRITTEN),
		extent (4096, 1 << 20, 4096, flag | FIEMAP_EXTENT_LAST),
	};
	g_autoptr(GArray) ranges = new_ranges ();
	g_autoptr(GError) error = NULL;

	g_assert_false (bs_extents_to_ranges (e, G_N_ELEMENTS (e), ranges, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
	g_assert_nonnull (strstr (error->message, word));
	/* nothing half-appended */
	g_assert_cmpuint (ranges->len, ==, 0);
}

static void
test_unusable_extents_refused (void)
{
	check_flag_refused (FIEMAP_EXTENT_UNKNOWN, "unknown");
	check_flag_refused (FIEMAP_EXTENT_DELALLOC, "delalloc");
	check_flag_refused (FIEMAP_EXTENT_ENCODED, "encoded");
	check_flag_refused (FIEMAP_EXTENT_DATA_INLINE, "inline");
	check_flag_refused (FIEMAP_EXTENT_SHARED, "shared");
	check_flag_refused (FIEMAP_EXTENT_DATA_ENCRYPTED, "encrypted");
	check_flag_refused (0x40000000, "0x40000000");
}

static void
test_unaligned_extent_refused (void)
{
	struct fiemap_extent odd = extent (0, 4097, 4096, FIEMAP_EXTENT_LAST);
	struct fiemap_extent empty = extent (0, 4096, 0, FIEMAP_EXTENT_LAST);
	g_autoptr(GArray) ranges = new_ranges ();
	g_autoptr(GError) error = NULL;

	g_assert_false (bs_extents_to_ranges (&odd, 1, ranges, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
	g_clear_error (&error);
	g_assert_false (bs_extents_to_ranges (&empty, 1, ranges, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
}

static void
test_filesystem_types (void)
{
	g_autoptr(GError) error = NULL;

	g_assert_true (bs_storage_check_fs_type (EXT4_SUPER_MAGIC, NULL));
	g_assert_true (bs_storage_check_fs_type (0x58465342 /* XFS */, NULL));
	g_assert_false (bs_storage_check_fs_type (TMPFS_MAGIC, &error));
	g_assert_nonnull (strstr (error->message, "tmpfs"));
	g_clear_error (&error);
	g_assert_false (bs_storage_check_fs_type (NFS_SUPER_MAGIC, &error));
	g_assert_nonnull (strstr (error->message, "NFS"));
	g_clear_error (&error);
	g_assert_false (bs_storage_check_fs_type (BTRFS_SUPER_MAGIC, &error));
	g_clear_error (&error);
	g_assert_false (bs_storage_check_fs_type (0x12345678, &error));
	g_assert_nonnull (strstr (error->message, "0x12345678"));
}

/* The directory must be ours alone. */
static void
test_storage_dir_must_be_private (void)
{
	g_autofree gchar *base = g_dir_make_tmp ("bs-storage-XXXXXX", NULL);
	g_autofree gchar *dir = g_build_filename (base, "store", NULL);
	g_autofree gchar *link = g_build_filename (base, "link", NULL);
	g_autoptr(GError) error = NULL;

	g_assert_true (bs_storage_prepare_dir (dir, TRUE, &error));
	g_assert_no_error (error);
	g_assert_cmpint (chmod (dir, 0777), ==, 0);
	g_assert_false (bs_storage_prepare_dir (dir, TRUE, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
	g_clear_error (&error);
	g_assert_cmpint (chmod (dir, 0700), ==, 0);
	g_assert_cmpint (symlink (dir, link), ==, 0);
	g_assert_false (bs_storage_prepare_dir (link, FALSE, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
	unlink (link);
	rmdir (dir);
	rmdir (base);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/storage/extents-become-sector-ranges", test_extents_become_sector_ranges);
	g_test_add_func ("/storage/contiguous-extents-merge", test_contiguous_extents_merge);
	g_test_add_func ("/storage/batches-append", test_batches_append);
	g_test_add_func ("/storage/unusable-extents-refused", test_unusable_extents_refused);
	g_test_add_func ("/storage/unaligned-extent-refused", test_unaligned_extent_refused);
	g_test_add_func ("/storage/filesystem-types", test_filesystem_types);
	g_test_add_func ("/storage/dir-must-be-private", test_storage_dir_must_be_private);
	return g_test_run ();
}
