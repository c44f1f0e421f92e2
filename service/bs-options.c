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

/* What an option's value must be, and where it goes. */
typedef enum {
	OPTION_BOOLEAN,   /* b, into a gboolean */
	OPTION_SIZE,      /* t, bytes up to BS_SIZE_MAX, into a guint64 */
	OPTION_LIFETIME,  /* t, seconds up to a year, into a guint64 */
} OptionKind;

typedef struct {
	const gchar *key;
	OptionKind kind;
	gpointer out;
} OptionSpec;

/* Most a snapshot may be given to live: beyond that a typo is likelier. */
#define LIFETIME_MAX_S (366 * 24 * 3600)

static gboolean
option_get_u64 (const gchar *key, GVariant *value, guint64 max, const gchar *too_large,
                guint64 *out, GError **error)
{
	guint64 v;

	if (!option_type_is (key, value, G_VARIANT_TYPE_UINT64, error))
		return FALSE;
	v = g_variant_get_uint64 (value);
	if (v > max) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "option %s: %" G_GUINT64_FORMAT " is %s", key, v, too_large);
		return FALSE;
	}
	*out = v;
	return TRUE;
}

static gboolean
option_get (const OptionSpec *spec, GVariant *value, GError **error)
{
	switch (spec->kind) {
	case OPTION_BOOLEAN:
		if (!option_type_is (spec->key, value, G_VARIANT_TYPE_BOOLEAN, error))
			return FALSE;
		*(gboolean *) spec->out = g_variant_get_boolean (value);
		return TRUE;
	case OPTION_SIZE:
		return option_get_u64 (spec->key, value, BS_SIZE_MAX, "absurdly large",
		                       spec->out, error);
	case OPTION_LIFETIME:
		return option_get_u64 (spec->key, value, LIFETIME_MAX_S, "more than a year",
		                       spec->out, error);
	}
	g_assert_not_reached ();
}

/* Unknown keys and wrong types are errors; absent keys leave their output. */
static gboolean
options_parse (GVariant *options, const OptionSpec *specs, guint n_specs, GError **error)
{
	GVariantIter iter;
	const gchar *key;
	GVariant *value;

	if (!options_check_type (options, error))
		return FALSE;
	if (options == NULL)
		return TRUE;
	g_variant_iter_init (&iter, options);
	while (g_variant_iter_next (&iter, "{&sv}", &key, &value)) {
		g_autoptr(GVariant) owned = value;
		const OptionSpec *spec = NULL;

		for (guint i = 0; i < n_specs && spec == NULL; i++)
			if (g_strcmp0 (key, specs[i].key) == 0)
				spec = &specs[i];
		if (spec == NULL) {
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "unknown option %s", key);
			return FALSE;
		}
		if (!option_get (spec, value, error))
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
	const OptionSpec specs[] = {
		{ BS_OPTION_NO_USER_INTERACTION, OPTION_BOOLEAN, no_user_interaction },
	};

	*no_user_interaction = FALSE;
	return options_parse (options, specs, G_N_ELEMENTS (specs), error);
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
	const OptionSpec specs[] = {
		{ BS_OPTION_NO_USER_INTERACTION, OPTION_BOOLEAN, no_user_interaction },
		{ "snapshot", OPTION_BOOLEAN, snapshot },
	};

	*no_user_interaction = FALSE;
	*snapshot = FALSE;
	return options_parse (options, specs, G_N_ELEMENTS (specs), error);
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
	const OptionSpec specs[] = {
		{ BS_OPTION_NO_USER_INTERACTION, OPTION_BOOLEAN, &out->no_user_interaction },
		{ "initial-size", OPTION_SIZE, &out->initial_size },
		{ "grow-step", OPTION_SIZE, &out->grow_step },
		{ "limit", OPTION_SIZE, &out->limit },
		{ "lifetime", OPTION_LIFETIME, &out->lifetime_s },
		{ "take", OPTION_BOOLEAN, &out->take },
		{ "bind-to-caller", OPTION_BOOLEAN, &out->bind_to_caller },
	};

	out->no_user_interaction = FALSE;
	out->initial_size = config->initial_size;
	out->grow_step = config->grow_step;
	out->limit = config->limit;
	out->lifetime_s = config->lifetime_s;
	out->take = TRUE;
	out->bind_to_caller = FALSE;
	if (!options_parse (options, specs, G_N_ELEMENTS (specs), error))
		return FALSE;

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
