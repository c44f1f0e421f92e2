/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>
#include <string.h>

#include "bsc-util.h"

/**
 * bsc_size_parse:
 * @text: a number of bytes, optionally followed by K, M, G, T or P
 *   (powers of 1024; "KiB", "k", "KB" are the same), e.g. "512M"
 * @size: (out): the size in bytes
 *
 * Returns: FALSE for anything else (empty, negative, fractions, unknown
 *   suffix, more than 2^63 bytes)
 */
gboolean
bsc_size_parse (const gchar *text, guint64 *size, GError **error)
{
	static const gchar units[] = "KMGTP";
	const gchar *end = NULL;
	guint64 value;
	guint shift = 0;

	if (text == NULL || !g_ascii_isdigit (*text)) {
		g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		             "'%s' is not a size (e.g. 4096, 512M, 2G)", text ? text : "");
		return FALSE;
	}
	errno = 0;
	value = g_ascii_strtoull (text, (gchar **) &end, 10);
	if (errno != 0)
		goto bad;
	if (*end != '\0') {
		const gchar *u = strchr (units, g_ascii_toupper (*end));

		if (u == NULL || *u == '\0')
			goto bad;
		shift = 10 * (guint) (u - units + 1);
		end++;
		if (g_ascii_strcasecmp (end, "iB") != 0 && g_ascii_strcasecmp (end, "B") != 0 &&
		    *end != '\0')
			goto bad;
	}
	if (shift > 0 && value > ((guint64) G_MAXINT64 >> shift))
		goto bad;
	value <<= shift;
	if (value > (guint64) G_MAXINT64)
		goto bad;
	*size = value;
	return TRUE;
bad:
	g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
	             "'%s' is not a size (e.g. 4096, 512M, 2G) or is too large", text);
	return FALSE;
}

/**
 * bsc_size_format:
 *
 * Returns: (transfer full): @size in B, KiB, MiB, GiB or TiB, one decimal
 */
gchar *
bsc_size_format (guint64 size)
{
	static const gchar *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	gdouble v = size;
	guint i = 0;

	if (size < 1024)
		return g_strdup_printf ("%" G_GUINT64_FORMAT " B", size);
	v /= 1024;
	while (v >= 1024 && i + 1 < G_N_ELEMENTS (units)) {
		v /= 1024;
		i++;
	}
	return g_strdup_printf ("%.1f %s", v, units[i]);
}
