/* SPDX-License-Identifier: GPL-2.0-or-later */

#include "bs-error.h"
#include "bs-options.h"

guint64
bs_size_round_mib (guint64 size)
{
	return (size + BS_MIB - 1) & ~(BS_MIB - 1);
}

static gboolean
option_type_is (const gchar *key, GVariant *value, const GVariantType *type, GError **error)
{
	if (g_variant_is_of_type (value, type))
		return TRUE;
	g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
	             "option %s must be of type '%s', not '%s'", key,
	             (const gchar *) type, g_variant_get_type_string (value));
	return FALSE;
}

static gboolean
options_check_type (GVariant *options, GError **error)
{
	if (options != NULL && !g_variant_is_of_type (options, G_VARIANT_TYPE_VARDICT)) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "options must be a{sv}, not %s", g_variant_get_type_string (options));
		return FALSE;
	}
	return TRUE;
}

/**
 * bs_options_parse_common:
 * @options: (nullable): a{sv}
 *
 * For methods whose only option is auth.no_user_interaction.
 */
gboolean
bs_options_parse_common (GVariant *options, gboolean *no_user_interaction, GError **error)
{
	GVariantIter iter;
	const gchar *key;
	GVariant *value;

	*no_user_interaction = FALSE;
	if (!options_check_type (options, error))
		return FALSE;
	if (options == NULL)
		return TRUE;
	g_variant_iter_init (&iter, options);
	while (g_variant_iter_next (&iter, "{&sv}", &key, &value)) {
		g_autoptr(GVariant) owned = value;

		if (g_strcmp0 (key, BS_OPTION_NO_USER_INTERACTION) != 0) {
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "unknown option %s", key);
			return FALSE;
		}
		if (!option_type_is (key, value, G_VARIANT_TYPE_BOOLEAN, error))
			return FALSE;
		*no_user_interaction = g_variant_get_boolean (value);
	}
	return TRUE;
}

/**
 * bs_options_parse_changed:
 * @options: (nullable): GetChangedBlocks' a{sv}
 * @snapshot: (out): TRUE to read the map as frozen at the take
 */
gboolean
bs_options_parse_changed (GVariant *options, gboolean *no_user_interaction,
                          gboolean *snapshot, GError **error)
{
	GVariantIter iter;
	const gchar *key;
	GVariant *value;

	*no_user_interaction = FALSE;
	*snapshot = FALSE;
	if (!options_check_type (options, error))
		return FALSE;
	if (options == NULL)
		return TRUE;
	g_variant_iter_init (&iter, options);
	while (g_variant_iter_next (&iter, "{&sv}", &key, &value)) {
		g_autoptr(GVariant) owned = value;
		gboolean *out;

		if (g_strcmp0 (key, BS_OPTION_NO_USER_INTERACTION) == 0) {
			out = no_user_interaction;
		} else if (g_strcmp0 (key, "snapshot") == 0) {
			out = snapshot;
		} else {
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "unknown option %s", key);
			return FALSE;
		}
		if (!option_type_is (key, value, G_VARIANT_TYPE_BOOLEAN, error))
			return FALSE;
		*out = g_variant_get_boolean (value);
	}
	return TRUE;
}

static gboolean
option_get_size (const gchar *key, GVariant *value, guint64 *out, GError **error)
{
	guint64 v;

	if (!option_type_is (key, value, G_VARIANT_TYPE_UINT64, error))
		return FALSE;
	v = g_variant_get_uint64 (value);
	if (v > BS_SIZE_MAX) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "option %s: %" G_GUINT64_FORMAT " is absurdly large", key, v);
		return FALSE;
	}
	*out = v;
	return TRUE;
}

/**
 * bs_options_parse_snapshot:
 * @options: (nullable): CreateSnapshot's a{sv}
 * @config: where the defaults come from
 *
 * Sizes are rounded up to whole MiB.
 */
gboolean
bs_options_parse_snapshot (GVariant *options, const BsConfig *config, BsSnapshotOptions *out,
                           GError **error)
{
	GVariantIter iter;
	const gchar *key;
	GVariant *value;

	out->no_user_interaction = FALSE;
	out->initial_size = config->initial_size;
	out->grow_step = config->grow_step;
	out->limit = config->limit;
	out->lifetime_s = config->lifetime_s;
	out->take = TRUE;
	out->bind_to_caller = FALSE;
	if (!options_check_type (options, error))
		return FALSE;

	if (options != NULL) {
		g_variant_iter_init (&iter, options);
		while (g_variant_iter_next (&iter, "{&sv}", &key, &value)) {
			g_autoptr(GVariant) owned = value;
			gboolean ok;

			if (g_strcmp0 (key, BS_OPTION_NO_USER_INTERACTION) == 0) {
				ok = option_type_is (key, value, G_VARIANT_TYPE_BOOLEAN, error);
				if (ok)
					out->no_user_interaction = g_variant_get_boolean (value);
			} else if (g_strcmp0 (key, "initial-size") == 0) {
				ok = option_get_size (key, value, &out->initial_size, error);
			} else if (g_strcmp0 (key, "grow-step") == 0) {
				ok = option_get_size (key, value, &out->grow_step, error);
			} else if (g_strcmp0 (key, "limit") == 0) {
				ok = option_get_size (key, value, &out->limit, error);
			} else if (g_strcmp0 (key, "lifetime") == 0) {
				ok = option_type_is (key, value, G_VARIANT_TYPE_UINT64, error);
				if (ok && g_variant_get_uint64 (value) > 366 * 24 * 3600) {
					g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
					             "option lifetime: more than a year");
					ok = FALSE;
				}
				if (ok)
					out->lifetime_s = g_variant_get_uint64 (value);
			} else if (g_strcmp0 (key, "take") == 0) {
				ok = option_type_is (key, value, G_VARIANT_TYPE_BOOLEAN, error);
				if (ok)
					out->take = g_variant_get_boolean (value);
			} else if (g_strcmp0 (key, "bind-to-caller") == 0) {
				ok = option_type_is (key, value, G_VARIANT_TYPE_BOOLEAN, error);
				if (ok)
					out->bind_to_caller = g_variant_get_boolean (value);
			} else {
				g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
				             "unknown option %s", key);
				ok = FALSE;
			}
			if (!ok)
				return FALSE;
		}
	}

	out->initial_size = bs_size_round_mib (out->initial_size);
	out->grow_step = bs_size_round_mib (out->grow_step);
	out->limit = bs_size_round_mib (out->limit);
	if (out->initial_size == 0 || out->grow_step == 0) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "initial-size and grow-step must not be 0");
		return FALSE;
	}
	if (out->limit != 0 && out->limit < out->initial_size) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "limit (%" G_GUINT64_FORMAT ") is below initial-size (%"
		             G_GUINT64_FORMAT ")", out->limit, out->initial_size);
		return FALSE;
	}
	return TRUE;
}
