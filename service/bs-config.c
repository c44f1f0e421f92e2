/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>
#include <string.h>

#include "bs-config.h"
#include "bs-error.h"

/* Smallest storage step worth a file: the module wants room to work. */
#define MINIMUM_SIZE BS_MIB

BsConfig *
bs_config_new_default (void)
{
	BsConfig *config = g_new0 (BsConfig, 1);

	config->storage_dir = g_strdup ("/var/lib/blksnap");
	config->initial_size = 256 * BS_MIB;
	config->grow_step = 256 * BS_MIB;
	config->limit = 0;
	config->reserve_percent = 5;
	config->lifetime_s = 0;
	return config;
}

void
bs_config_free (BsConfig *config)
{
	if (config == NULL)
		return;
	g_free (config->storage_dir);
	g_free (config);
}

/**
 * bs_parse_size:
 * @str: digits with an optional K, M, G or T suffix (binary)
 *
 * Returns: %TRUE if @str is a size that fits in 64 bits
 */
gboolean
bs_parse_size (const gchar *str, guint64 *value, GError **error)
{
	g_autofree gchar *digits = NULL;
	guint shift = 0;
	gsize len;
	guint64 n;

	if (str == NULL || (len = strlen (str)) == 0)
		goto bad;
	switch (g_ascii_toupper (str[len - 1])) {
	case 'K': shift = 10; len--; break;
	case 'M': shift = 20; len--; break;
	case 'G': shift = 30; len--; break;
	case 'T': shift = 40; len--; break;
	default: break;
	}
	digits = g_strndup (str, len);
	if (!g_ascii_string_to_unsigned (digits, 10, 0, G_MAXUINT64, &n, NULL))
		goto bad;
	if (shift > 0 && n > (G_MAXUINT64 >> shift))
		goto bad;
	*value = n << shift;
	return TRUE;
bad:
	g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
	             "'%s' is not a size (bytes, or a number with K, M, G or T)",
	             str != NULL ? str : "");
	return FALSE;
}

static const gchar *const known_keys[][2] = {
	{ "Storage", "Directory" },
	{ "Storage", "InitialSize" },
	{ "Storage", "GrowStep" },
	{ "Storage", "Limit" },
	{ "Storage", "Reserve" },
	{ "Snapshot", "Lifetime" },
};

static gboolean
config_check_known (GKeyFile *kf, GError **error)
{
	g_auto(GStrv) groups = g_key_file_get_groups (kf, NULL);

	for (guint i = 0; groups[i] != NULL; i++) {
		g_auto(GStrv) keys = g_key_file_get_keys (kf, groups[i], NULL, NULL);

		for (guint j = 0; keys != NULL && keys[j] != NULL; j++) {
			gboolean known = FALSE;

			for (guint k = 0; k < G_N_ELEMENTS (known_keys); k++) {
				if (g_strcmp0 (known_keys[k][0], groups[i]) == 0 &&
				    g_strcmp0 (known_keys[k][1], keys[j]) == 0)
					known = TRUE;
			}
			if (!known) {
				g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
				             "unknown key %s in group [%s]", keys[j], groups[i]);
				return FALSE;
			}
		}
		if (g_strcmp0 (groups[i], "Storage") != 0 &&
		    g_strcmp0 (groups[i], "Snapshot") != 0) {
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "unknown group [%s]", groups[i]);
			return FALSE;
		}
	}
	return TRUE;
}

/* A size key, left alone when absent. */
static gboolean
config_get_size (GKeyFile *kf, const gchar *group, const gchar *key, guint64 *value,
                 GError **error)
{
	g_autofree gchar *str = g_key_file_get_string (kf, group, key, NULL);

	if (str == NULL)
		return TRUE;
	g_strstrip (str);
	if (!bs_parse_size (str, value, error)) {
		g_prefix_error (error, "[%s] %s: ", group, key);
		return FALSE;
	}
	return TRUE;
}

static gboolean
config_get_reserve (GKeyFile *kf, BsConfig *config, GError **error)
{
	g_autofree gchar *str = g_key_file_get_string (kf, "Storage", "Reserve", NULL);
	gsize len;

	if (str == NULL)
		return TRUE;
	g_strstrip (str);
	len = strlen (str);
	if (len > 0 && str[len - 1] == '%') {
		guint64 pct;

		str[len - 1] = '\0';
		if (!g_ascii_string_to_unsigned (str, 10, 0, 90, &pct, NULL)) {
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "[Storage] Reserve: '%s%%' is not a percentage from 0 to 90",
			             str);
			return FALSE;
		}
		config->reserve_percent = pct;
		config->reserve_bytes = 0;
		return TRUE;
	}
	if (!bs_parse_size (str, &config->reserve_bytes, error)) {
		g_prefix_error (error, "[Storage] Reserve: ");
		return FALSE;
	}
	config->reserve_percent = 0;
	return TRUE;
}

/**
 * bs_config_new_from_data:
 * @data: the text of a configuration file
 *
 * Returns: (transfer full): the defaults with what @data sets, or %NULL
 *	if anything in @data is wrong
 */
BsConfig *
bs_config_new_from_data (const gchar *data, GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new ();
	g_autoptr(BsConfig) config = bs_config_new_default ();
	g_autofree gchar *dir = NULL;
	g_autofree gchar *lifetime = NULL;

	if (!g_key_file_load_from_data (kf, data, -1, G_KEY_FILE_NONE, error))
		return NULL;
	if (!config_check_known (kf, error))
		return NULL;

	dir = g_key_file_get_string (kf, "Storage", "Directory", NULL);
	if (dir != NULL) {
		g_strstrip (dir);
		if (!g_path_is_absolute (dir)) {
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "[Storage] Directory: '%s' is not an absolute path", dir);
			return NULL;
		}
		g_free (config->storage_dir);
		config->storage_dir = g_canonicalize_filename (dir, NULL);
	}
	if (!config_get_size (kf, "Storage", "InitialSize", &config->initial_size, error) ||
	    !config_get_size (kf, "Storage", "GrowStep", &config->grow_step, error) ||
	    !config_get_size (kf, "Storage", "Limit", &config->limit, error) ||
	    !config_get_reserve (kf, config, error))
		return NULL;

	lifetime = g_key_file_get_string (kf, "Snapshot", "Lifetime", NULL);
	if (lifetime != NULL) {
		g_strstrip (lifetime);
		/* a year is surely a typo; it also keeps the µs arithmetic in range */
		if (!g_ascii_string_to_unsigned (lifetime, 10, 0, 366 * 24 * 3600,
		                                 &config->lifetime_s, NULL)) {
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "[Snapshot] Lifetime: '%s' is not a number of seconds "
			             "(at most a year)", lifetime);
			return NULL;
		}
	}

	if (config->initial_size < MINIMUM_SIZE || config->grow_step < MINIMUM_SIZE) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "[Storage] InitialSize and GrowStep must be at least 1M");
		return NULL;
	}
	if (config->limit != 0 && config->limit < config->initial_size) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "[Storage] Limit is smaller than InitialSize");
		return NULL;
	}
	return g_steal_pointer (&config);
}

/**
 * bs_config_new_from_file:
 * @path: a configuration file; a missing one means the defaults
 */
BsConfig *
bs_config_new_from_file (const gchar *path, GError **error)
{
	g_autofree gchar *data = NULL;
	g_autoptr(GError) error_local = NULL;
	BsConfig *config;

	if (!g_file_get_contents (path, &data, NULL, &error_local)) {
		if (g_error_matches (error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			return bs_config_new_default ();
		g_propagate_error (error, g_steal_pointer (&error_local));
		return NULL;
	}
	config = bs_config_new_from_data (data, error);
	if (config == NULL)
		g_prefix_error (error, "%s: ", path);
	return config;
}

/**
 * bs_config_reserve_for:
 * @fs_size: size of the filesystem in bytes
 *
 * Returns: bytes of the filesystem that storage must leave free
 */
guint64
bs_config_reserve_for (const BsConfig *config, guint64 fs_size)
{
	if (config->reserve_percent > 0)
		return fs_size / 100 * config->reserve_percent;
	return config->reserve_bytes;
}
