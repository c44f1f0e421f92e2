/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>

#include "bs-error.h"
#include "bs-options.h"

static GVariant *
parse_vardict (const gchar *text)
{
	g_autoptr(GError) error = NULL;
	GVariant *v = g_variant_parse (G_VARIANT_TYPE_VARDICT, text, NULL, NULL, &error);

	g_assert_no_error (error);
	return g_variant_ref_sink (v);
}

static void
test_snapshot_defaults_from_config (void)
{
	g_autoptr(BsConfig) config = bs_config_new_default ();
	g_autoptr(GVariant) options = parse_vardict ("@a{sv} {}");
	BsSnapshotOptions o;

	config->lifetime_s = 60;
	g_assert_true (bs_options_parse_snapshot (options, config, &o, NULL));
	g_assert_cmpuint (o.initial_size, ==, config->initial_size);
	g_assert_cmpuint (o.grow_step, ==, config->grow_step);
	g_assert_cmpuint (o.lifetime_s, ==, 60);
	g_assert_true (o.take);
	g_assert_false (o.bind_to_caller);
	g_assert_false (o.no_user_interaction);
}

static void
test_snapshot_options_applied (void)
{
	g_autoptr(BsConfig) config = bs_config_new_default ();
	g_autoptr(GVariant) options = parse_vardict (
		"{'initial-size': <uint64 1000>, 'grow-step': <uint64 3145728>, "
		"'limit': <uint64 10485760>, 'take': <false>, 'lifetime': <uint64 5>, "
		"'bind-to-caller': <true>, 'auth.no_user_interaction': <true>}");
	BsSnapshotOptions o;
	g_autoptr(GError) error = NULL;

	g_assert_true (bs_options_parse_snapshot (options, config, &o, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (o.initial_size, ==, BS_MIB); /* rounded up */
	g_assert_cmpuint (o.grow_step, ==, 3 * BS_MIB);
	g_assert_cmpuint (o.limit, ==, 10 * BS_MIB);
	g_assert_false (o.take);
	g_assert_cmpuint (o.lifetime_s, ==, 5);
	g_assert_true (o.bind_to_caller);
	g_assert_true (o.no_user_interaction);
}

static void
check_refused (const gchar *text)
{
	g_autoptr(BsConfig) config = bs_config_new_default ();
	g_autoptr(GVariant) options = parse_vardict (text);
	g_autoptr(GError) error = NULL;
	BsSnapshotOptions o;

	g_assert_false (bs_options_parse_snapshot (options, config, &o, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
}

static void
test_bad_snapshot_options_refused (void)
{
	check_refused ("{'initial-size': <0>}");                /* wrong type (i) */
	check_refused ("{'initial-size': <uint64 0>}");         /* zero */
	check_refused ("{'grow-step': <uint64 0>}");
	check_refused ("{'limit': <uint64 1048576>, 'initial-size': <uint64 4194304>}");
	check_refused ("{'initial-size': <uint64 18446744073709551615>}");
	check_refused ("{'lifetime': <uint64 100000000>}");
	check_refused ("{'take': <'yes'>}");
	check_refused ("{'storage-directory': <'/tmp'>}");      /* unknown */
	check_refused ("{'auth.no_user_interaction': <1>}");
}

static void
test_common_options (void)
{
	g_autoptr(GVariant) empty = parse_vardict ("@a{sv} {}");
	g_autoptr(GVariant) yes = parse_vardict ("{'auth.no_user_interaction': <true>}");
	g_autoptr(GVariant) unknown = parse_vardict ("{'take': <true>}");
	g_autoptr(GVariant) wrong = g_variant_ref_sink (g_variant_new_string ("x"));
	g_autoptr(GError) error = NULL;
	gboolean nui = TRUE;

	g_assert_true (bs_options_parse_common (empty, &nui, NULL));
	g_assert_false (nui);
	g_assert_true (bs_options_parse_common (yes, &nui, NULL));
	g_assert_true (nui);
	g_assert_true (bs_options_parse_common (NULL, &nui, NULL));
	g_assert_false (bs_options_parse_common (unknown, &nui, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
	g_clear_error (&error);
	g_assert_false (bs_options_parse_common (wrong, &nui, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
}

static void
test_changed_options (void)
{
	g_autoptr(GError) error = NULL;
	gboolean noi = TRUE, snap = TRUE;
	g_autoptr(GVariant) good = g_variant_ref_sink (g_variant_new_parsed (
		"{'snapshot': <true>, 'auth.no_user_interaction': <false>}"));
	g_autoptr(GVariant) typo = g_variant_ref_sink (g_variant_new_parsed ("{'snapshots': <true>}"));
	g_autoptr(GVariant) type = g_variant_ref_sink (g_variant_new_parsed ("{'snapshot': <1>}"));

	g_assert_true (bs_options_parse_changed (NULL, &noi, &snap, &error));
	g_assert_no_error (error);
	g_assert_false (noi);
	g_assert_false (snap);
	g_assert_true (bs_options_parse_changed (good, &noi, &snap, &error));
	g_assert_no_error (error);
	g_assert_true (snap);
	g_assert_false (noi);
	g_assert_false (bs_options_parse_changed (typo, &noi, &snap, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
	g_clear_error (&error);
	g_assert_false (bs_options_parse_changed (type, &noi, &snap, &error));
	g_assert_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT);
}

static void
test_errno_mapping (void)
{
	g_assert_cmpint (bs_error_from_errno (ESRCH), ==, BS_ERROR_NOT_FOUND);
	g_assert_cmpint (bs_error_from_errno (ENOENT), ==, BS_ERROR_NOT_FOUND);
	g_assert_cmpint (bs_error_from_errno (EBUSY), ==, BS_ERROR_BUSY);
	g_assert_cmpint (bs_error_from_errno (EALREADY), ==, BS_ERROR_BUSY);
	g_assert_cmpint (bs_error_from_errno (EINVAL), ==, BS_ERROR_INVALID_ARGUMENT);
	g_assert_cmpint (bs_error_from_errno (ENOSPC), ==, BS_ERROR_NO_SPACE);
	g_assert_cmpint (bs_error_from_errno (EIO), ==, BS_ERROR_FAILED);
	g_assert_cmpstr (bs_error_to_name (BS_ERROR_MODULE_NOT_LOADED), ==, "ModuleNotLoaded");
	g_assert_cmpstr (bs_error_to_name (BS_ERROR_NOT_AUTHORIZED), ==, "NotAuthorized");
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/options/snapshot-defaults-from-config", test_snapshot_defaults_from_config);
	g_test_add_func ("/options/snapshot-options-applied", test_snapshot_options_applied);
	g_test_add_func ("/options/bad-snapshot-options-refused", test_bad_snapshot_options_refused);
	g_test_add_func ("/options/common", test_common_options);
	g_test_add_func ("/options/changed-blocks", test_changed_options);
	g_test_add_func ("/errors/errno-mapping", test_errno_mapping);
	return g_test_run ();
}
