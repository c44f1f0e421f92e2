/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <string.h>
#include <glib/gstdio.h>
#include <sys/stat.h>

#include "bs-error.h"
#include "bs-state.h"

static BsStateRecord *
record_new (const gchar *id, guint32 owner, const gchar *bound_to)
{
	BsStateRecord *r;
	BsUuid uuid;

	g_assert_true (bs_uuid_parse (id, &uuid, NULL));
	r = bs_state_record_new (&uuid);
	r->owner = owner;
	r->created_us = 1700000000000000;
	r->expiry_us = owner ? 1700000360000000 : 0;
	r->bound_to = g_strdup (bound_to);
	r->limit = 1 << 30;
	r->grow_step = 256 << 20;
	return r;
}

static void
test_state_round_trip (void)
{
	g_autofree gchar *dir = g_dir_make_tmp ("bs-state-XXXXXX", NULL);
	g_autofree gchar *path = g_build_filename (dir, "state", NULL);
	g_autoptr(GPtrArray) records =
		g_ptr_array_new_with_free_func ((GDestroyNotify) bs_state_record_free);
	g_autoptr(GPtrArray) loaded = NULL;
	g_autoptr(GError) error = NULL;
	BsStateRecord *a, *b;
	struct stat st;

	a = record_new ("0123456789abcdef0123456789abcdef", 1000, ":1.42");
	g_ptr_array_add (a->files, g_strdup ("/var/lib/blksnap/a-0.blksnap"));
	g_ptr_array_add (a->files, g_strdup ("/var/lib/blksnap/a 1;x.blksnap"));
	g_ptr_array_add (a->spares, g_strdup ("/var/lib/blksnap/a-2.blksnap"));
	g_ptr_array_add (a->spares, g_strdup ("/var/lib/blksnap/a-3.blksnap"));
	g_ptr_array_add (records, a);
	b = record_new ("fedcba98-7654-3210-fedc-ba9876543210", 0, NULL);
	g_ptr_array_add (records, b);

	g_assert_true (bs_state_save (path, records, &error));
	g_assert_no_error (error);
	g_assert_cmpint (stat (path, &st), ==, 0);
	g_assert_cmpint (st.st_mode & 0777, ==, 0600);

	loaded = bs_state_load (path, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (loaded->len, ==, 2);
	for (guint i = 0; i < 2; i++) {
		BsStateRecord *x = g_ptr_array_index (records, i);
		BsStateRecord *y = g_ptr_array_index (loaded, i);

		g_assert_cmpmem (x->id.b, 16, y->id.b, 16);
		g_assert_cmpuint (x->owner, ==, y->owner);
		g_assert_cmpint (x->created_us, ==, y->created_us);
		g_assert_cmpint (x->expiry_us, ==, y->expiry_us);
		g_assert_cmpstr (x->bound_to, ==, y->bound_to);
		g_assert_cmpuint (x->limit, ==, y->limit);
		g_assert_cmpuint (x->grow_step, ==, y->grow_step);
		g_assert_cmpuint (x->spares->len, ==, y->spares->len);
		for (guint j = 0; j < x->spares->len; j++)
			g_assert_cmpstr (g_ptr_array_index (x->spares, j), ==,
			                 g_ptr_array_index (y->spares, j));
		g_assert_cmpuint (x->files->len, ==, y->files->len);
		for (guint j = 0; j < x->files->len; j++)
			g_assert_cmpstr (g_ptr_array_index (x->files, j), ==,
			                 g_ptr_array_index (y->files, j));
	}
	g_unlink (path);
	g_rmdir (dir);
}

static void
test_missing_state_is_empty (void)
{
	g_autoptr(GPtrArray) loaded = bs_state_load ("/nonexistent/state", NULL);

	g_assert_nonnull (loaded);
	g_assert_cmpuint (loaded->len, ==, 0);
}

static void
test_corrupt_state_refused (void)
{
	const gchar *bad[] = {
		"garbage",
		"[Snapshot not-a-uuid]\nOwner=0\n",
		"[Other]\nx=1\n",
		"[Snapshot 0123456789abcdef0123456789abcdef]\nOwner=-1\nCreated=0\nExpiry=0\n"
		"Limit=0\nGrowStep=0\nBoundTo=\n",
		"[Snapshot 0123456789abcdef0123456789abcdef]\nOwner=0\nCreated=0\nExpiry=0\n"
		"Limit=0\nGrowStep=0\nBoundTo=\nFiles=relative.blksnap;\n",
		"[Snapshot 0123456789abcdef0123456789abcdef]\nOwner=0\nCreated=0\nExpiry=0\n"
		"Limit=0\nGrowStep=0\nBoundTo=\nSpares=/s/a.blksnap;relative.blksnap;\n",
	};

	for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) loaded = bs_state_load_data (bad[i], &error);

		g_assert_null (loaded);
		g_assert_nonnull (error);
	}
}

/* A state file written before spares existed still loads. */
static void
test_state_without_spare_loads (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) loaded = bs_state_load_data (
		"[Snapshot 0123456789abcdef0123456789abcdef]\nOwner=0\nCreated=0\nExpiry=0\n"
		"Limit=0\nGrowStep=0\nBoundTo=\nFiles=/s/a.blksnap;\n", &error);
	BsStateRecord *r;

	g_assert_no_error (error);
	g_assert_cmpuint (loaded->len, ==, 1);
	r = g_ptr_array_index (loaded, 0);
	g_assert_cmpuint (r->spares->len, ==, 0);
	g_assert_cmpuint (r->files->len, ==, 1);
}

/* After a crash, the sizes tell whether the module got the spare. */
static void
test_spare_fate (void)
{
	const guint64 M = 1 << 20;

	g_assert_cmpint (bs_state_spare_fate (256 * M, 256 * M, 256 * M), ==, BS_SPARE_UNUSED);
	g_assert_cmpint (bs_state_spare_fate (512 * M, 256 * M, 256 * M), ==, BS_SPARE_APPENDED);
	g_assert_cmpint (bs_state_spare_fate (288 * M, 256 * M, 32 * M), ==, BS_SPARE_APPENDED);
	/* a file missing, or a snapshot the state did not know: keep it */
	g_assert_cmpint (bs_state_spare_fate (512 * M, 0, 256 * M), ==, BS_SPARE_UNKNOWN);
	g_assert_cmpint (bs_state_spare_fate (300 * M, 256 * M, 32 * M), ==, BS_SPARE_UNKNOWN);
	g_assert_cmpint (bs_state_spare_fate (0, G_MAXUINT64, 2), ==, BS_SPARE_UNKNOWN);
}

static void
test_uuid_text (void)
{
	BsUuid id;
	g_autofree gchar *str = NULL;
	g_autofree gchar *hex = NULL;
	g_autoptr(GError) error = NULL;

	g_assert_true (bs_uuid_parse ("0123456789ABCDEF0123456789abcdef", &id, NULL));
	str = bs_uuid_to_string (&id);
	hex = bs_uuid_to_hex (&id);
	g_assert_cmpstr (str, ==, "01234567-89ab-cdef-0123-456789abcdef");
	g_assert_cmpstr (hex, ==, "0123456789abcdef0123456789abcdef");
	g_assert_false (bs_uuid_parse ("01234567-89ab-cdef-0123-456789abcde", &id, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
	g_clear_error (&error);
	g_assert_false (bs_uuid_parse ("01234567+89ab-cdef-0123-456789abcdef", &id, &error));
	g_clear_error (&error);
	g_assert_false (bs_uuid_parse ("0123456789abcdef0123456789abcdeg", &id, &error));
}

static void
test_device_text (void)
{
	BsDev dev;
	g_autoptr(GError) error = NULL;

	g_assert_true (bs_dev_parse ("8:16", &dev, NULL));
	g_assert_cmpuint (dev.major, ==, 8);
	g_assert_cmpuint (dev.minor, ==, 16);
	g_assert_false (bs_dev_parse ("8:", &dev, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
	g_clear_error (&error);
	g_assert_false (bs_dev_parse ("8:16:1", &dev, &error));
	g_clear_error (&error);
	g_assert_false (bs_dev_parse ("/dev/null", &dev, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
	g_clear_error (&error);
	g_assert_false (bs_dev_parse ("/nonexistent", &dev, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_NOT_FOUND);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/state/round-trip", test_state_round_trip);
	g_test_add_func ("/state/missing-is-empty", test_missing_state_is_empty);
	g_test_add_func ("/state/corrupt-refused", test_corrupt_state_refused);
	g_test_add_func ("/state/without-spare-loads", test_state_without_spare_loads);
	g_test_add_func ("/state/spare-fate", test_spare_fate);
	g_test_add_func ("/ids/uuid-text", test_uuid_text);
	g_test_add_func ("/ids/device-text", test_device_text);
	return g_test_run ();
}
