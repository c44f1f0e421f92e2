/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <string.h>

#include "bs-config.h"
#include "bs-error.h"

static void
test_defaults (void)
{
	g_autoptr(BsConfig) config = bs_config_new_from_data ("", NULL);

	g_assert_nonnull (config);
	g_assert_cmpstr (config->storage_dir, ==, "/var/lib/blksnap");
	g_assert_cmpuint (config->initial_size, ==, 256 * BS_MIB);
	g_assert_cmpuint (config->limit, ==, 0);
	g_assert_cmpuint (config->reserve_percent, ==, 5);
	g_assert_cmpuint (bs_config_reserve_for (config, 1000 * BS_MIB), ==, 50 * BS_MIB);
}

static void
test_all_keys_parsed (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(BsConfig) config = bs_config_new_from_data (
		"[Storage]\n"
		"Directory=/srv/snap//store/\n"
		"InitialSize=64M\n"
		"GrowStep=2G\n"
		"Limit=1T\n"
		"Reserve=100M\n"
		"[Snapshot]\n"
		"Lifetime=3600\n", &error);

	g_assert_no_error (error);
	g_assert_cmpstr (config->storage_dir, ==, "/srv/snap/store");
	g_assert_cmpuint (config->initial_size, ==, 64 * BS_MIB);
	g_assert_cmpuint (config->grow_step, ==, 2048 * BS_MIB);
	g_assert_cmpuint (config->limit, ==, G_GUINT64_CONSTANT (1) << 40);
	g_assert_cmpuint (config->reserve_percent, ==, 0);
	g_assert_cmpuint (bs_config_reserve_for (config, 1 << 30), ==, 100 * BS_MIB);
	g_assert_cmpuint (config->lifetime_s, ==, 3600);
}

static void
check_refused (const gchar *data, const gchar *word)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(BsConfig) config = bs_config_new_from_data (data, &error);

	g_assert_null (config);
	g_assert_nonnull (error);
	if (word != NULL && strstr (error->message, word) == NULL)
		g_error ("'%s' not in '%s'", word, error->message);
}

static void
test_bad_config_refused (void)
{
	check_refused ("this is not a key file", NULL);
	check_refused ("[Storage]\nDirecotry=/x\n", "Direcotry");
	check_refused ("[Stroage]\n", "Stroage");
	check_refused ("[Storage]\nDirectory=relative/path\n", "absolute");
	check_refused ("[Storage]\nInitialSize=lots\n", "InitialSize");
	check_refused ("[Storage]\nInitialSize=-5\n", "InitialSize");
	check_refused ("[Storage]\nGrowStep=17179869184T\n", "GrowStep");
	check_refused ("[Storage]\nGrowStep=1K\n", "GrowStep");
	check_refused ("[Storage]\nInitialSize=1G\nLimit=512M\n", "Limit");
	check_refused ("[Storage]\nReserve=95%\n", "Reserve");
	check_refused ("[Storage]\nReserve=x%\n", "Reserve");
	check_refused ("[Snapshot]\nLifetime=forever\n", "Lifetime");
}

static void
test_missing_file_means_defaults (void)
{
	g_autoptr(BsConfig) config = bs_config_new_from_file ("/nonexistent/blksnapd.conf", NULL);

	g_assert_nonnull (config);
	g_assert_cmpuint (config->grow_step, ==, 256 * BS_MIB);
}

static void
test_parse_size (void)
{
	guint64 v = 0;

	g_assert_true (bs_parse_size ("0", &v, NULL));
	g_assert_cmpuint (v, ==, 0);
	g_assert_true (bs_parse_size ("3k", &v, NULL));
	g_assert_cmpuint (v, ==, 3072);
	g_assert_false (bs_parse_size ("", &v, NULL));
	g_assert_false (bs_parse_size ("M", &v, NULL));
	g_assert_false (bs_parse_size ("1.5G", &v, NULL));
	g_assert_false (bs_parse_size ("16777216T", &v, NULL));
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/config/defaults", test_defaults);
	g_test_add_func ("/config/all-keys-parsed", test_all_keys_parsed);
	g_test_add_func ("/config/bad-config-refused", test_bad_config_refused);
	g_test_add_func ("/config/missing-file-means-defaults", test_missing_file_means_defaults);
	g_test_add_func ("/config/parse-size", test_parse_size);
	return g_test_run ();
}
