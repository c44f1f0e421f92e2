/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <json-glib/json-glib.h>
#include <stdlib.h>
#include <string.h>

#include "bsc-manifest.h"

BscDeviceEntry *
bsc_device_entry_new (void)
{
	BscDeviceEntry *entry = g_new0 (BscDeviceEntry, 1);

	entry->runs = g_array_new (FALSE, FALSE, sizeof (BscRun));
	entry->checksum = BSC_CHECKSUM_DEFAULT;
	return entry;
}

void
bsc_device_entry_free (BscDeviceEntry *entry)
{
	if (entry == NULL)
		return;
	g_free (entry->name);
	g_free (entry->node);
	g_free (entry->device);
	g_free (entry->generation);
	g_free (entry->data);
	g_array_unref (entry->runs);
	g_free (entry);
}

BscManifest *
bsc_manifest_new (void)
{
	BscManifest *manifest = g_new0 (BscManifest, 1);

	manifest->devices = g_ptr_array_new_with_free_func ((GDestroyNotify) bsc_device_entry_free);
	return manifest;
}

void
bsc_manifest_free (BscManifest *manifest)
{
	if (manifest == NULL)
		return;
	g_free (manifest->snapshot);
	g_ptr_array_unref (manifest->devices);
	g_free (manifest);
}

/* a member of the object being built: "name": value */
void
bsc_json_member_int (JsonBuilder *b, const gchar *name, gint64 value)
{
	json_builder_set_member_name (b, name);
	json_builder_add_int_value (b, value);
}

void
bsc_json_member_string (JsonBuilder *b, const gchar *name, const gchar *value)
{
	json_builder_set_member_name (b, name);
	json_builder_add_string_value (b, value);
}

/**
 * bsc_device_entry_add_members:
 *
 * Adds what describes @entry to the object being built in @b: the members
 * its manifest entry and the backup's --json report share (not the runs).
 */
void
bsc_device_entry_add_members (const BscDeviceEntry *e, JsonBuilder *b)
{
	bsc_json_member_string (b, "name", e->name);
	bsc_json_member_string (b, "node", e->node);
	bsc_json_member_string (b, "device", e->device);
	bsc_json_member_int (b, "capacity", e->capacity);
	bsc_json_member_int (b, "block-size", e->block_size);
	bsc_json_member_string (b, "generation", e->generation);
	bsc_json_member_int (b, "changes-number", e->changes_number);
	bsc_json_member_string (b, "type", e->full ? "full" : "incremental");
	bsc_json_member_string (b, "data", e->data);
	bsc_json_member_int (b, "bytes-read", e->bytes_read);
	bsc_json_member_string (b, "checksum", bsc_checksum_name (e->checksum));
}

/**
 * bsc_manifest_to_json:
 *
 * Returns: (transfer full): the manifest as pretty-printed JSON
 */
gchar *
bsc_manifest_to_json (const BscManifest *manifest)
{
	g_autoptr(JsonBuilder) b = json_builder_new ();
	g_autoptr(JsonGenerator) gen = json_generator_new ();
	g_autoptr(JsonNode) root = NULL;
	g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (manifest->time_us / G_USEC_PER_SEC);
	g_autofree gchar *time = dt ? g_date_time_format_iso8601 (dt) : g_strdup ("");

	json_builder_begin_object (b);
	bsc_json_member_int (b, "format", BSC_MANIFEST_FORMAT);
	bsc_json_member_int (b, "point", manifest->number);
	bsc_json_member_string (b, "time", time);
	bsc_json_member_int (b, "time-us", manifest->time_us);
	bsc_json_member_string (b, "snapshot", manifest->snapshot ? manifest->snapshot : "");
	json_builder_set_member_name (b, "devices");
	json_builder_begin_array (b);
	for (guint i = 0; i < manifest->devices->len; i++) {
		const BscDeviceEntry *e = g_ptr_array_index (manifest->devices, i);

		json_builder_begin_object (b);
		bsc_device_entry_add_members (e, b);
		json_builder_set_member_name (b, "runs");
		json_builder_begin_array (b);
		for (guint r = 0; r < e->runs->len; r++) {
			const BscRun *run = &g_array_index (e->runs, BscRun, r);

			json_builder_begin_array (b);
			json_builder_add_int_value (b, run->offset);
			json_builder_add_int_value (b, run->length);
			json_builder_add_string_value (b, run->sum);
			json_builder_end_array (b);
		}
		json_builder_end_array (b);
		json_builder_end_object (b);
	}
	json_builder_end_array (b);
	json_builder_end_object (b);

	root = json_builder_get_root (b);
	json_generator_set_root (gen, root);
	json_generator_set_pretty (gen, TRUE);
	return json_generator_to_data (gen, NULL);
}

static gboolean
manifest_invalid (GError **error, const gchar *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
manifest_invalid (GError **error, const gchar *format, ...)
{
	va_list args;
	g_autofree gchar *msg = NULL;

	va_start (args, format);
	msg = g_strdup_vprintf (format, args);
	va_end (args);
	g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "invalid manifest: %s", msg);
	return FALSE;
}

/* A member of the given type, or an error naming it. */
static JsonNode *
member (JsonObject *obj, const gchar *name, GType type, GError **error)
{
	JsonNode *node = json_object_get_member (obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
	    json_node_get_value_type (node) != type) {
		manifest_invalid (error, "\"%s\" is missing or not a%s", name,
		                  type == G_TYPE_STRING ? " string" : "n integer");
		return NULL;
	}
	return node;
}

static gboolean
get_uint (JsonObject *obj, const gchar *name, guint64 max, guint64 *out, GError **error)
{
	JsonNode *node = member (obj, name, G_TYPE_INT64, error);
	gint64 v;

	if (node == NULL)
		return FALSE;
	v = json_node_get_int (node);
	if (v < 0 || (guint64) v > max)
		return manifest_invalid (error, "\"%s\" is out of range", name);
	*out = v;
	return TRUE;
}

static gchar *
get_string (JsonObject *obj, const gchar *name, GError **error)
{
	JsonNode *node = member (obj, name, G_TYPE_STRING, error);

	return node ? g_strdup (json_node_get_string (node)) : NULL;
}

/* a plain file name: no directory parts, nothing hidden */
static gboolean
is_plain_name (const gchar *s)
{
	return s != NULL && *s != '\0' && *s != '.' && strchr (s, '/') == NULL;
}

/* @format: of the manifest; format 1 had no "checksum" and used sha256 */
static BscDeviceEntry *
device_from_json (JsonNode *node, guint format, GError **error)
{
	g_autoptr(BscDeviceEntry) e = bsc_device_entry_new ();
	g_autofree gchar *type = NULL;
	g_autofree gchar *checksum = NULL;
	JsonObject *obj;
	JsonArray *runs;
	JsonNode *runs_node;
	guint64 v, end = 0;

	if (!JSON_NODE_HOLDS_OBJECT (node)) {
		manifest_invalid (error, "a device is not an object");
		return NULL;
	}
	obj = json_node_get_object (node);
	if ((e->name = get_string (obj, "name", error)) == NULL ||
	    (e->node = get_string (obj, "node", error)) == NULL ||
	    (e->device = get_string (obj, "device", error)) == NULL ||
	    (e->generation = get_string (obj, "generation", error)) == NULL ||
	    (e->data = get_string (obj, "data", error)) == NULL ||
	    (type = get_string (obj, "type", error)) == NULL)
		return NULL;
	if (!is_plain_name (e->name) || !is_plain_name (e->data)) {
		manifest_invalid (error, "device name or data file \"%s\" is not a plain file name",
		                  e->data);
		return NULL;
	}
	if (format == 1) {
		e->checksum = BSC_CHECKSUM_SHA256;
	} else if ((checksum = get_string (obj, "checksum", error)) == NULL) {
		return NULL;
	} else if (!bsc_checksum_from_name (checksum, &e->checksum, NULL)) {
		manifest_invalid (error, "%s: unknown checksum \"%s\"", e->name, checksum);
		return NULL;
	}
	if (!get_uint (obj, "capacity", G_MAXINT64, &e->capacity, error))
		return NULL;
	if (!get_uint (obj, "block-size", G_MAXUINT32, &v, error))
		return NULL;
	e->block_size = v;
	if (!get_uint (obj, "changes-number", G_MAXUINT8, &v, error))
		return NULL;
	e->changes_number = v;
	if (!get_uint (obj, "bytes-read", G_MAXINT64, &e->bytes_read, error))
		return NULL;
	if (g_strcmp0 (type, "full") == 0) {
		e->full = TRUE;
	} else if (g_strcmp0 (type, "incremental") != 0) {
		manifest_invalid (error, "%s: type \"%s\" is neither full nor incremental",
		                  e->name, type);
		return NULL;
	}

	runs_node = json_object_get_member (obj, "runs");
	if (runs_node == NULL || !JSON_NODE_HOLDS_ARRAY (runs_node)) {
		manifest_invalid (error, "%s: \"runs\" is missing or not an array", e->name);
		return NULL;
	}
	runs = json_node_get_array (runs_node);
	for (guint i = 0; i < json_array_get_length (runs); i++) {
		JsonNode *rn = json_array_get_element (runs, i);
		JsonArray *ra;
		BscRun run = { 0 };
		const gchar *sum;
		gint64 off, len;

		if (!JSON_NODE_HOLDS_ARRAY (rn) || json_array_get_length (ra = json_node_get_array (rn)) != 3 ||
		    json_node_get_value_type (json_array_get_element (ra, 0)) != G_TYPE_INT64 ||
		    json_node_get_value_type (json_array_get_element (ra, 1)) != G_TYPE_INT64 ||
		    json_node_get_value_type (json_array_get_element (ra, 2)) != G_TYPE_STRING) {
			manifest_invalid (error, "%s: run %u is not [offset, length, checksum]", e->name, i);
			return NULL;
		}
		off = json_array_get_int_element (ra, 0);
		len = json_array_get_int_element (ra, 1);
		sum = json_array_get_string_element (ra, 2);
		if (off < 0 || len <= 0 || (guint64) off < end || (guint64) len > e->capacity ||
		    (guint64) off > e->capacity - len) {
			manifest_invalid (error, "%s: run %u (%" G_GINT64_FORMAT "+%" G_GINT64_FORMAT
			                  ") overlaps the one before or lies outside the device",
			                  e->name, i, off, len);
			return NULL;
		}
		if (e->full && (guint64) off != end) {
			manifest_invalid (error, "%s: a full backup with a gap at %" G_GUINT64_FORMAT,
			                  e->name, end);
			return NULL;
		}
		if (!bsc_checksum_is_hex (e->checksum, sum)) {
			manifest_invalid (error, "%s: run %u has no valid %s checksum", e->name, i,
			                  bsc_checksum_name (e->checksum));
			return NULL;
		}
		run.offset = off;
		run.length = len;
		g_strlcpy (run.sum, sum, sizeof (run.sum));
		end = off + len;
		g_array_append_val (e->runs, run);
	}
	if (e->full && end != e->capacity) {
		manifest_invalid (error, "%s: a full backup that ends at %" G_GUINT64_FORMAT
		                  " of %" G_GUINT64_FORMAT " bytes", e->name, end, e->capacity);
		return NULL;
	}
	return g_steal_pointer (&e);
}

/**
 * bsc_manifest_from_json:
 *
 * Checks everything a restore relies on: types, runs in order, inside the
 * device, without overlap, a full backup covering the device, plain file
 * names, unique device names.
 */
BscManifest *
bsc_manifest_from_json (const gchar *json, gssize length, GError **error)
{
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(BscManifest) m = bsc_manifest_new ();
	JsonObject *obj;
	JsonNode *devices;
	guint64 v;
	guint format;

	if (!json_parser_load_from_data (parser, json, length, error)) {
		g_prefix_error (error, "invalid manifest: ");
		return NULL;
	}
	if (json_parser_get_root (parser) == NULL ||
	    !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
		manifest_invalid (error, "not a JSON object");
		return NULL;
	}
	obj = json_node_get_object (json_parser_get_root (parser));
	if (!get_uint (obj, "format", G_MAXUINT32, &v, error))
		return NULL;
	if (v < 1 || v > BSC_MANIFEST_FORMAT) {
		manifest_invalid (error, "format %" G_GUINT64_FORMAT " is not 1 to %d (written by "
		                  "a newer blksnapctl?)", v, BSC_MANIFEST_FORMAT);
		return NULL;
	}
	format = v;
	if (!get_uint (obj, "point", G_MAXUINT32, &v, error))
		return NULL;
	if (v == 0) {
		manifest_invalid (error, "point 0");
		return NULL;
	}
	m->number = v;
	if (!get_uint (obj, "time-us", G_MAXINT64, &v, error))
		return NULL;
	m->time_us = v;
	if ((m->snapshot = get_string (obj, "snapshot", error)) == NULL)
		return NULL;
	devices = json_object_get_member (obj, "devices");
	if (devices == NULL || !JSON_NODE_HOLDS_ARRAY (devices)) {
		manifest_invalid (error, "\"devices\" is missing or not an array");
		return NULL;
	}
	for (guint i = 0; i < json_array_get_length (json_node_get_array (devices)); i++) {
		BscDeviceEntry *e = device_from_json (
			json_array_get_element (json_node_get_array (devices), i), format, error);

		if (e == NULL)
			return NULL;
		for (guint j = 0; j < m->devices->len; j++) {
			BscDeviceEntry *o = g_ptr_array_index (m->devices, j);

			if (g_strcmp0 (o->name, e->name) == 0 || g_strcmp0 (o->data, e->data) == 0) {
				manifest_invalid (error, "device %s appears twice", e->name);
				bsc_device_entry_free (e);
				return NULL;
			}
		}
		g_ptr_array_add (m->devices, e);
	}
	return g_steal_pointer (&m);
}

gboolean
bsc_manifest_save (const BscManifest *manifest, const gchar *path, GError **error)
{
	g_autofree gchar *json = bsc_manifest_to_json (manifest);

	return g_file_set_contents_full (path, json, -1, G_FILE_SET_CONTENTS_CONSISTENT |
	                                 G_FILE_SET_CONTENTS_DURABLE, 0644, error);
}

BscManifest *
bsc_manifest_load (const gchar *path, GError **error)
{
	g_autofree gchar *json = NULL;
	gsize len;
	BscManifest *m;

	if (!g_file_get_contents (path, &json, &len, error))
		return NULL;
	m = bsc_manifest_from_json (json, len, error);
	if (m == NULL)
		g_prefix_error (error, "%s: ", path);
	return m;
}

BscDeviceEntry *
bsc_manifest_find_device (const BscManifest *manifest, const gchar *node)
{
	for (guint i = 0; i < manifest->devices->len; i++) {
		BscDeviceEntry *e = g_ptr_array_index (manifest->devices, i);

		if (g_strcmp0 (e->node, node) == 0 || g_strcmp0 (e->name, node) == 0 ||
		    g_strcmp0 (e->device, node) == 0)
			return e;
	}
	return NULL;
}

gchar *
bsc_point_dir_name (guint number)
{
	return g_strdup_printf ("%04u", number);
}

static gint
compare_points (gconstpointer a, gconstpointer b)
{
	const BscManifest *ma = *(BscManifest **) a;
	const BscManifest *mb = *(BscManifest **) b;

	return (ma->number > mb->number) - (ma->number < mb->number);
}

/**
 * bsc_chain_load:
 * @dir: a backup chain directory (need not exist)
 *
 * Loads the manifests of the complete points (directories of digits),
 * ignoring *.partial leftovers.
 *
 * Returns: (transfer full): #BscManifest ascending by number
 */
GPtrArray *
bsc_chain_load (const gchar *dir, GError **error)
{
	g_autoptr(GPtrArray) points = g_ptr_array_new_with_free_func (
		(GDestroyNotify) bsc_manifest_free);
	g_autoptr(GDir) d = NULL;
	g_autoptr(GError) local = NULL;
	const gchar *name;

	d = g_dir_open (dir, 0, &local);
	if (d == NULL) {
		if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			return g_steal_pointer (&points);
		g_propagate_error (error, g_steal_pointer (&local));
		return NULL;
	}
	while ((name = g_dir_read_name (d)) != NULL) {
		g_autofree gchar *path = NULL;
		BscManifest *m;
		const gchar *c;

		for (c = name; g_ascii_isdigit (*c); c++)
			;
		if (*c != '\0' || c == name)
			continue;
		path = g_build_filename (dir, name, BSC_MANIFEST_FILE, NULL);
		m = bsc_manifest_load (path, error);
		if (m == NULL)
			return NULL;
		if (m->number != strtoul (name, NULL, 10)) {
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			             "%s: says point %u", path, m->number);
			bsc_manifest_free (m);
			return NULL;
		}
		g_ptr_array_add (points, m);
	}
	g_ptr_array_sort (points, compare_points);
	return g_steal_pointer (&points);
}
