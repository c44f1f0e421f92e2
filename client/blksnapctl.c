/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blksnapctl: the command-line client of blksnapd. It speaks only D-Bus
 * to the service (never the module's ioctls), so whatever it does any
 * other client may do, and polkit decides who may.
 *
 * See blksnapctl(1) for the commands and the exit codes.
 */
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <unistd.h>

#include "bs-error.h"
#include "bsc-cli.h"
#include "bsc-copy.h"
#include "bsc-dbus.h"
#include "bsc-manifest.h"
#include "bsc-plan.h"
#include "bsc-util.h"


volatile gint bsc_cli_interrupted;

static void
on_signal (int sig)
{
	bsc_cli_interrupted = 1;
}

/* ------------------------------------------------------------ helpers */

static gboolean opt_json, opt_no_interaction, opt_quiet;

static const GOptionEntry common_entries[] = {
	{ "json", 'j', 0, G_OPTION_ARG_NONE, &opt_json, "Print the result as JSON", NULL },
	{ "no-interaction", 'n', 0, G_OPTION_ARG_NONE, &opt_no_interaction,
	  "Fail instead of asking for authentication", NULL },
	{ "quiet", 'q', 0, G_OPTION_ARG_NONE, &opt_quiet, "No progress or messages", NULL },
	{ NULL }
};

/* Parses a subcommand's bsc_cli_options; leaves the operands in argv[1..]. */
gboolean
bsc_cli_parse_args (Ctx *ctx, gint *argc, gchar ***argv, const gchar *params, const gchar *summary,
            const GOptionEntry *entries, gint min_operands, gint max_operands, GError **error)
{
	g_autoptr(GOptionContext) oc = g_option_context_new (params);
	gint n;

	g_option_context_set_summary (oc, summary);
	g_option_context_add_main_entries (oc, common_entries, NULL);
	if (entries != NULL)
		g_option_context_add_main_entries (oc, entries, NULL);
	if (!g_option_context_parse (oc, argc, argv, error))
		return FALSE;
	n = *argc - 1;
	if (n < min_operands || (max_operands >= 0 && n > max_operands)) {
		g_autofree gchar *help = g_option_context_get_help (oc, TRUE, NULL);

		g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
		             "%s: wrong number of arguments\n%s", (*argv)[0], help);
		return FALSE;
	}
	ctx->json |= opt_json;
	ctx->no_interaction |= opt_no_interaction;
	ctx->quiet |= opt_quiet;
	return TRUE;
}

/* A progress message for a person: stderr, never with --json or --quiet. */
void
bsc_cli_say (Ctx *ctx, const gchar *format, ...)
{
	va_list args;

	if (ctx->json || ctx->quiet)
		return;
	va_start (args, format);
	vfprintf (stderr, format, args);
	va_end (args);
	fputc ('\n', stderr);
}

void
bsc_cli_print_json (JsonBuilder *b)
{
	g_autoptr(JsonGenerator) gen = json_generator_new ();
	g_autoptr(JsonNode) root = json_builder_get_root (b);
	g_autofree gchar *text = NULL;

	json_generator_set_root (gen, root);
	json_generator_set_pretty (gen, TRUE);
	text = json_generator_to_data (gen, NULL);
	g_print ("%s\n", text);
}

GVariant *
bsc_cli_options (Ctx *ctx, GVariantDict *extra)
{
	return bsc_dbus_options (ctx->no_interaction, extra);
}

/* A JSON value for a property, for the common types. */
static void
json_add_variant (JsonBuilder *b, GVariant *v)
{
	if (g_variant_is_of_type (v, G_VARIANT_TYPE_STRING) ||
	    g_variant_is_of_type (v, G_VARIANT_TYPE_OBJECT_PATH)) {
		json_builder_add_string_value (b, g_variant_get_string (v, NULL));
	} else if (g_variant_is_of_type (v, G_VARIANT_TYPE_UINT64)) {
		json_builder_add_int_value (b, g_variant_get_uint64 (v));
	} else if (g_variant_is_of_type (v, G_VARIANT_TYPE_UINT32)) {
		json_builder_add_int_value (b, g_variant_get_uint32 (v));
	} else if (g_variant_is_of_type (v, G_VARIANT_TYPE_INT32)) {
		json_builder_add_int_value (b, g_variant_get_int32 (v));
	} else if (g_variant_is_of_type (v, G_VARIANT_TYPE_BYTE)) {
		json_builder_add_int_value (b, g_variant_get_byte (v));
	} else if (g_variant_is_of_type (v, G_VARIANT_TYPE_BOOLEAN)) {
		json_builder_add_boolean_value (b, g_variant_get_boolean (v));
	} else if (g_variant_is_of_type (v, G_VARIANT_TYPE_STRING_ARRAY)) {
		g_autofree const gchar **strv = g_variant_get_strv (v, NULL);

		json_builder_begin_array (b);
		for (guint i = 0; strv[i]; i++)
			json_builder_add_string_value (b, strv[i]);
		json_builder_end_array (b);
	} else if (g_variant_is_of_type (v, G_VARIANT_TYPE ("a{ss}"))) {
		GVariantIter iter;
		const gchar *k, *val;

		json_builder_begin_object (b);
		g_variant_iter_init (&iter, v);
		while (g_variant_iter_next (&iter, "{&s&s}", &k, &val)) {
			json_builder_set_member_name (b, k);
			json_builder_add_string_value (b, val);
		}
		json_builder_end_object (b);
	} else {
		g_autofree gchar *text = g_variant_print (v, FALSE);

		json_builder_add_string_value (b, text);
	}
}

static void
json_add_props (JsonBuilder *b, GVariant *props)
{
	GVariantIter iter;
	const gchar *key;
	GVariant *value;

	json_builder_begin_object (b);
	g_variant_iter_init (&iter, props);
	while (g_variant_iter_next (&iter, "{&sv}", &key, &value)) {
		g_autoptr(GVariant) owned = value;

		json_builder_set_member_name (b, key);
		json_add_variant (b, value);
	}
	json_builder_end_object (b);
}

/* The properties of every object implementing @iface, by path. */
static GVariant *
managed_objects (Ctx *ctx, GError **error)
{
	g_autoptr(GVariant) ret = bsc_dbus_call (ctx->bus, BSC_ROOT_PATH,
	                                         "org.freedesktop.DBus.ObjectManager",
	                                         "GetManagedObjects", NULL,
	                                         G_VARIANT_TYPE ("(a{oa{sa{sv}}})"), NULL, error);

	return ret ? g_variant_get_child_value (ret, 0) : NULL;
}

static GPtrArray *
objects_of (GVariant *objects, const gchar *iface, GPtrArray **props_out)
{
	GPtrArray *paths = g_ptr_array_new_with_free_func (g_free);
	GVariantIter iter;
	const gchar *path;
	GVariant *ifaces;

	*props_out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
	g_variant_iter_init (&iter, objects);
	while (g_variant_iter_next (&iter, "{&o@a{sa{sv}}}", &path, &ifaces)) {
		g_autoptr(GVariant) owned = ifaces;
		GVariant *props = g_variant_lookup_value (ifaces, iface, G_VARIANT_TYPE_VARDICT);

		if (props == NULL)
			continue;
		g_ptr_array_add (paths, g_strdup (path));
		g_ptr_array_add (*props_out, props);
	}
	return paths;
}

static const gchar *
prop_s (GVariant *props, const gchar *name)
{
	const gchar *s = NULL;

	if (!g_variant_lookup (props, name, "&s", &s) && !g_variant_lookup (props, name, "&o", &s))
		return "";
	return s;
}

/* ------------------------------------------------------------- status */

static void
print_snapshot_line (GVariant *props)
{
	g_autofree const gchar **devs = NULL;
	g_autofree gchar *devlist = NULL;
	g_autofree gchar *used = bsc_size_format (bsc_prop_u64 (props, "StorageUsed"));
	g_autofree gchar *alloc = bsc_size_format (bsc_prop_u64 (props, "StorageAllocated"));

	if (!g_variant_lookup (props, "Devices", "^a&s", &devs))
		devs = NULL;
	devlist = devs ? g_strjoinv (",", (gchar **) devs) : g_strdup ("");
	g_print ("%-36s  %-9s  %-16s  %s of %s\n", prop_s (props, "Id"), prop_s (props, "State"),
	         devlist, used, alloc);
}

static gboolean
cmd_status (Ctx *ctx, gint argc, gchar **argv, GError **error)
{
	g_autoptr(GVariant) manager = NULL;
	g_autoptr(GVariant) objects = NULL;
	g_autoptr(GPtrArray) dev_props = NULL, snap_props = NULL;
	g_autoptr(GPtrArray) devs = NULL, snaps = NULL;

	if (!bsc_cli_parse_args (ctx, &argc, &argv, "", "The service, the module, tracked devices and "
	                 "snapshots.", NULL, 0, 0, error))
		return FALSE;
	manager = bsc_dbus_get_all (ctx->bus, BSC_MANAGER_PATH, BSC_IFACE_MANAGER, error);
	if (manager == NULL)
		return FALSE;
	objects = managed_objects (ctx, error);
	if (objects == NULL)
		return FALSE;
	devs = objects_of (objects, BSC_IFACE_DEVICE, &dev_props);
	snaps = objects_of (objects, BSC_IFACE_SNAPSHOT, &snap_props);

	if (ctx->json) {
		g_autoptr(JsonBuilder) b = json_builder_new ();

		json_builder_begin_object (b);
		json_builder_set_member_name (b, "manager");
		json_add_props (b, manager);
		json_builder_set_member_name (b, "devices");
		json_builder_begin_array (b);
		for (guint i = 0; i < dev_props->len; i++)
			json_add_props (b, g_ptr_array_index (dev_props, i));
		json_builder_end_array (b);
		json_builder_set_member_name (b, "snapshots");
		json_builder_begin_array (b);
		for (guint i = 0; i < snap_props->len; i++)
			json_add_props (b, g_ptr_array_index (snap_props, i));
		json_builder_end_array (b);
		json_builder_end_object (b);
		bsc_cli_print_json (b);
		return TRUE;
	}
	g_print ("blksnapd %s, module %s, storage in %s\n", prop_s (manager, "Version"),
	         *prop_s (manager, "ModuleVersion") ? prop_s (manager, "ModuleVersion") :
	         "not loaded", prop_s (manager, "StorageDirectory"));
	g_print ("\n%u tracked device(s)\n", devs->len);
	if (devs->len > 0)
		g_print ("%-8s  %10s  %10s  %-36s  %6s  %s\n", "DEVICE", "CAPACITY", "BLOCK",
		         "GENERATION", "NUMBER", "SNAPSHOT");
	for (guint i = 0; i < dev_props->len; i++) {
		GVariant *p = g_ptr_array_index (dev_props, i);
		g_autofree gchar *cap = bsc_size_format (bsc_prop_u64 (p, "Capacity"));
		g_autofree gchar *bs = bsc_size_format (bsc_prop_u64 (p, "BlockSize"));
		g_autofree gchar *snap = g_strcmp0 (prop_s (p, "Snapshot"), "/") == 0 ?
			g_strdup ("-") : bsc_snapshot_id (prop_s (p, "Snapshot"));

		g_print ("%-8s  %10s  %10s  %-36s  %6" G_GUINT64_FORMAT "  %s\n",
		         prop_s (p, "Device"), cap, bs, prop_s (p, "Generation"),
		         bsc_prop_u64 (p, "ChangesNumber"), snap);
	}
	g_print ("\n%u snapshot(s)\n", snaps->len);
	for (guint i = 0; i < snap_props->len; i++)
		print_snapshot_line (g_ptr_array_index (snap_props, i));
	return TRUE;
}

/* ------------------------------------------------------- track, untrack */

static gboolean
cmd_track (Ctx *ctx, gint argc, gchar **argv, GError **error)
{
	gboolean track = g_strcmp0 (argv[0], "track") == 0;

	if (!bsc_cli_parse_args (ctx, &argc, &argv, "DEVICE...", track ?
	                 "Start change block tracking (a new CBT generation)." :
	                 "Stop change block tracking; the CBT map is dropped.", NULL, 1, -1, error))
		return FALSE;
	for (gint i = 1; i < argc; i++) {
		g_autoptr(GVariant) ret = bsc_dbus_call (
			ctx->bus, BSC_MANAGER_PATH, BSC_IFACE_MANAGER,
			track ? "TrackDevice" : "UntrackDevice",
			g_variant_new ("(s@a{sv})", argv[i], bsc_cli_options (ctx, NULL)), NULL, NULL, error);

		if (ret == NULL) {
			g_prefix_error (error, "%s %s: ", track ? "track" : "untrack", argv[i]);
			return FALSE;
		}
		bsc_cli_say (ctx, "%s %s", track ? "tracking" : "stopped tracking", argv[i]);
	}
	return TRUE;
}

/* ---------------------------------------------------------------- cbt */

static gboolean
parse_point (const gchar *text, gchar **generation, guint8 *number, GError **error)
{
	const gchar *colon = strrchr (text, ':');
	guint64 n;

	if (colon == NULL || colon == text ||
	    !g_ascii_string_to_unsigned (colon + 1, 10, 0, 255, &n, NULL)) {
		g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		             "'%s' is not GENERATION:NUMBER (NUMBER 0..255)", text);
		return FALSE;
	}
	*generation = g_strndup (text, colon - text);
	*number = n;
	return TRUE;
}

static gboolean
cmd_cbt (Ctx *ctx, gint argc, gchar **argv, GError **error)
{
	g_autofree gchar *since = NULL;
	gboolean at_take = FALSE;
	const GOptionEntry entries[] = {
		{ "changed-since", 's', 0, G_OPTION_ARG_STRING, &since,
		  "List the ranges changed since a point", "GENERATION:NUMBER" },
		{ "snapshot", 0, 0, G_OPTION_ARG_NONE, &at_take,
		  "Use the map frozen at the take of the device's snapshot", NULL },
		{ NULL }
	};
	g_autofree gchar *path = NULL, *majmin = NULL, *generation = NULL;
	g_autoptr(GVariant) props = NULL;
	g_autoptr(GVariant) ret = NULL;
	g_autoptr(GVariantDict) extra = g_variant_dict_new (NULL);
	guint8 number = 0;

	if (!bsc_cli_parse_args (ctx, &argc, &argv, "DEVICE", "CBT information of a tracked device, "
	                 "or the ranges changed since a backup point.", entries, 1, 1, error))
		return FALSE;
	if (!bsc_device_resolve (argv[1], &majmin, &path, error))
		return FALSE;
	if (since != NULL && !parse_point (since, &generation, &number, error))
		return FALSE;
	props = bsc_dbus_get_all (ctx->bus, path, BSC_IFACE_DEVICE, error);
	if (props == NULL) {
		g_prefix_error (error, "%s (%s) is not tracked? ", argv[1], majmin);
		return FALSE;
	}
	if (since == NULL) {
		if (ctx->json) {
			g_autoptr(JsonBuilder) b = json_builder_new ();

			json_add_props (b, props);
			bsc_cli_print_json (b);
		} else {
			g_autofree gchar *cap = bsc_size_format (bsc_prop_u64 (props, "Capacity"));
			g_autofree gchar *bs = bsc_size_format (bsc_prop_u64 (props, "BlockSize"));

			g_print ("device:          %s (%s)\n", argv[1], prop_s (props, "Device"));
			g_print ("capacity:        %s (%" G_GUINT64_FORMAT " bytes)\n", cap,
			         bsc_prop_u64 (props, "Capacity"));
			g_print ("block size:      %s, %" G_GUINT64_FORMAT " blocks\n", bs,
			         bsc_prop_u64 (props, "BlockCount"));
			g_print ("generation:      %s\n", prop_s (props, "Generation"));
			g_print ("changes number:  %" G_GUINT64_FORMAT " (live)\n",
			         bsc_prop_u64 (props, "ChangesNumber"));
			g_print ("snapshot:        %s\n", prop_s (props, "Snapshot"));
		}
		return TRUE;
	}
	if (at_take)
		g_variant_dict_insert (extra, "snapshot", "b", TRUE);
	ret = bsc_dbus_call (ctx->bus, path, BSC_IFACE_DEVICE, "GetChangedBlocks",
	                     g_variant_new ("(sy@a{sv})", generation, number, bsc_cli_options (ctx, extra)),
	                     G_VARIANT_TYPE ("(a(tt))"), NULL, error);
	if (ret == NULL) {
		g_prefix_error (error, "changed blocks of %s: ", argv[1]);
		return FALSE;
	}
	{
		g_autoptr(GVariant) ranges = g_variant_get_child_value (ret, 0);
		g_autoptr(JsonBuilder) b = json_builder_new ();
		GVariantIter iter;
		guint64 off, len, total = 0;

		json_builder_begin_object (b);
		json_builder_set_member_name (b, "ranges");
		json_builder_begin_array (b);
		g_variant_iter_init (&iter, ranges);
		while (g_variant_iter_next (&iter, "(tt)", &off, &len)) {
			total += len;
			if (ctx->json) {
				json_builder_begin_array (b);
				json_builder_add_int_value (b, off);
				json_builder_add_int_value (b, len);
				json_builder_end_array (b);
			} else {
				g_print ("%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT "\n", off, len);
			}
		}
		json_builder_end_array (b);
		json_builder_set_member_name (b, "bytes");
		json_builder_add_int_value (b, total);
		json_builder_end_object (b);
		if (ctx->json)
			bsc_cli_print_json (b);
		else
			bsc_cli_say (ctx, "%" G_GUINT64_FORMAT " bytes changed", total);
	}
	return TRUE;
}

/* ----------------------------------------------------------- snapshots */

gchar *
bsc_cli_snapshot_create (Ctx *ctx, gchar **devices, gboolean take, guint64 size, guint64 limit,
                 gboolean bind, GError **error)
{
	g_autoptr(GVariantDict) extra = g_variant_dict_new (NULL);
	g_autoptr(GVariant) ret = NULL;
	gchar *path = NULL;

	g_variant_dict_insert (extra, "take", "b", take);
	if (bind)
		g_variant_dict_insert (extra, "bind-to-caller", "b", TRUE);
	if (size > 0)
		g_variant_dict_insert (extra, "initial-size", "t", size);
	if (limit > 0)
		g_variant_dict_insert (extra, "limit", "t", limit);
	ret = bsc_dbus_call (ctx->bus, BSC_MANAGER_PATH, BSC_IFACE_MANAGER, "CreateSnapshot",
	                     g_variant_new ("(^as@a{sv})", devices, bsc_cli_options (ctx, extra)),
	                     G_VARIANT_TYPE ("(o)"), NULL, error);
	if (ret == NULL) {
		g_autofree gchar *list = g_strjoinv (" ", devices);

		g_prefix_error (error, "snapshot of %s: ", list);
		return NULL;
	}
	g_variant_get (ret, "(o)", &path);
	return path;
}

static gboolean
snapshot_call (Ctx *ctx, const gchar *path, const gchar *method, GVariant *params,
               GError **error)
{
	g_autoptr(GVariant) ret = bsc_dbus_call (ctx->bus, path, BSC_IFACE_SNAPSHOT, method, params,
	                                         NULL, NULL, error);

	if (ret == NULL) {
		g_autofree gchar *id = bsc_snapshot_id (path);

		g_prefix_error (error, "%s of snapshot %s: ", method, id);
		return FALSE;
	}
	return TRUE;
}

gboolean
bsc_cli_snapshot_destroy (Ctx *ctx, const gchar *path, GError **error)
{
	return snapshot_call (ctx, path, "Destroy", g_variant_new ("(@a{sv})", bsc_cli_options (ctx, NULL)),
	                      error);
}

static gboolean
cmd_snapshot_create (Ctx *ctx, gint argc, gchar **argv, GError **error)
{
	g_autofree gchar *size_s = NULL, *limit_s = NULL, *path = NULL, *id = NULL;
	gboolean no_take = FALSE;
	guint64 size = 0, limit = 0;
	const GOptionEntry entries[] = {
		{ "storage-size", 's', 0, G_OPTION_ARG_STRING, &size_s,
		  "Difference storage allocated at once (default: the service's)", "SIZE" },
		{ "limit", 'l', 0, G_OPTION_ARG_STRING, &limit_s,
		  "Never allocate more storage than this", "SIZE" },
		{ "no-take", 0, 0, G_OPTION_ARG_NONE, &no_take,
		  "Only create; take it later with 'snapshot take'", NULL },
		{ NULL }
	};

	if (!bsc_cli_parse_args (ctx, &argc, &argv, "DEVICE...", "Create (and take) a snapshot of the "
	                 "devices; they are frozen together.", entries, 1, -1, error))
		return FALSE;
	if ((size_s && !bsc_size_parse (size_s, &size, error)) ||
	    (limit_s && !bsc_size_parse (limit_s, &limit, error)))
		return FALSE;
	path = bsc_cli_snapshot_create (ctx, argv + 1, !no_take, size, limit, FALSE, error);
	if (path == NULL)
		return FALSE;
	id = bsc_snapshot_id (path);
	if (ctx->json) {
		g_autoptr(JsonBuilder) b = json_builder_new ();

		json_builder_begin_object (b);
		json_builder_set_member_name (b, "id");
		json_builder_add_string_value (b, id);
		json_builder_set_member_name (b, "object");
		json_builder_add_string_value (b, path);
		json_builder_end_object (b);
		bsc_cli_print_json (b);
	} else {
		g_print ("%s\n", id);
	}
	return TRUE;
}

static gboolean
cmd_snapshot_simple (Ctx *ctx, gint argc, gchar **argv, GError **error)
{
	gboolean take = g_strcmp0 (argv[0], "take") == 0;
	g_autofree gchar *path = NULL;

	if (!bsc_cli_parse_args (ctx, &argc, &argv, "ID", take ? "Take a snapshot made with --no-take." :
	                 "Destroy a snapshot: images go, storage is deleted, tracking goes on.",
	                 NULL, 1, 1, error))
		return FALSE;
	path = bsc_snapshot_path (argv[1], error);
	if (path == NULL)
		return FALSE;
	if (!snapshot_call (ctx, path, take ? "Take" : "Destroy",
	                    g_variant_new ("(@a{sv})", bsc_cli_options (ctx, NULL)), error))
		return FALSE;
	bsc_cli_say (ctx, "snapshot %s %s", argv[1], take ? "taken" : "destroyed");
	return TRUE;
}

static gboolean
cmd_snapshot_grow (Ctx *ctx, gint argc, gchar **argv, GError **error)
{
	g_autofree gchar *path = NULL;
	guint64 size;

	if (!bsc_cli_parse_args (ctx, &argc, &argv, "ID SIZE", "Add difference storage to a snapshot.",
	                 NULL, 2, 2, error))
		return FALSE;
	path = bsc_snapshot_path (argv[1], error);
	if (path == NULL || !bsc_size_parse (argv[2], &size, error))
		return FALSE;
	return snapshot_call (ctx, path, "AppendStorage",
	                      g_variant_new ("(t@a{sv})", size, bsc_cli_options (ctx, NULL)), error);
}

static gboolean
cmd_snapshot_info (Ctx *ctx, gint argc, gchar **argv, GError **error)
{
	g_autofree gchar *path = NULL;
	g_autoptr(GVariant) props = NULL;
	g_autoptr(JsonBuilder) b = json_builder_new ();
	GVariantIter iter;
	const gchar *key;
	GVariant *value;

	if (!bsc_cli_parse_args (ctx, &argc, &argv, "ID", "Everything about one snapshot.", NULL, 1, 1,
	                 error))
		return FALSE;
	path = bsc_snapshot_path (argv[1], error);
	if (path == NULL)
		return FALSE;
	props = bsc_dbus_get_all (ctx->bus, path, BSC_IFACE_SNAPSHOT, error);
	if (props == NULL) {
		g_prefix_error (error, "snapshot %s: ", argv[1]);
		return FALSE;
	}
	if (ctx->json) {
		json_add_props (b, props);
		bsc_cli_print_json (b);
		return TRUE;
	}
	g_variant_iter_init (&iter, props);
	while (g_variant_iter_next (&iter, "{&sv}", &key, &value)) {
		g_autoptr(GVariant) owned = value;
		g_autofree gchar *text = NULL;

		if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
			text = g_variant_dup_string (value, NULL);
		else if (g_str_has_prefix (key, "Storage") || g_strcmp0 (key, "GrowStep") == 0)
			text = bsc_size_format (g_variant_get_uint64 (value));
		else
			text = g_variant_print (value, FALSE);
		g_print ("%-18s %s\n", key, text);
	}
	return TRUE;
}

static gboolean
cmd_snapshot_list (Ctx *ctx, gint argc, gchar **argv, GError **error)
{
	g_autoptr(GVariant) objects = NULL;
	g_autoptr(GPtrArray) props = NULL, paths = NULL;

	if (!bsc_cli_parse_args (ctx, &argc, &argv, "", "The snapshots the service holds.", NULL, 0, 0,
	                 error))
		return FALSE;
	objects = managed_objects (ctx, error);
	if (objects == NULL)
		return FALSE;
	paths = objects_of (objects, BSC_IFACE_SNAPSHOT, &props);
	if (ctx->json) {
		g_autoptr(JsonBuilder) b = json_builder_new ();

		json_builder_begin_array (b);
		for (guint i = 0; i < props->len; i++)
			json_add_props (b, g_ptr_array_index (props, i));
		json_builder_end_array (b);
		bsc_cli_print_json (b);
		return TRUE;
	}
	if (props->len > 0)
		g_print ("%-36s  %-9s  %-16s  %s\n", "ID", "STATE", "DEVICES", "STORAGE USED");
	for (guint i = 0; i < props->len; i++)
		print_snapshot_line (g_ptr_array_index (props, i));
	return TRUE;
}

/* --------------------------------------------------------------- watch */

static void
on_snapshot_signal (GDBusConnection *bus, const gchar *sender, const gchar *path,
                    const gchar *iface, const gchar *name, GVariant *params, gpointer data)
{
	Ctx *ctx = data;
	g_autofree gchar *id = bsc_snapshot_id (path);
	g_autoptr(GDateTime) now = g_date_time_new_now_local ();
	g_autofree gchar *time = g_date_time_format (now, "%T");

	if (ctx->json) {
		g_autoptr(JsonBuilder) b = json_builder_new ();
		g_autoptr(JsonGenerator) gen = json_generator_new ();
		g_autoptr(JsonNode) root = NULL;
		g_autofree gchar *text = NULL;
		g_autofree gchar *args = g_variant_print (params, FALSE);

		json_builder_begin_object (b);
		json_builder_set_member_name (b, "time");
		json_builder_add_string_value (b, time);
		json_builder_set_member_name (b, "snapshot");
		json_builder_add_string_value (b, id);
		json_builder_set_member_name (b, "signal");
		json_builder_add_string_value (b, name);
		json_builder_set_member_name (b, "args");
		json_builder_add_string_value (b, args);
		json_builder_end_object (b);
		root = json_builder_get_root (b);
		json_generator_set_root (gen, root);
		text = json_generator_to_data (gen, NULL);
		g_print ("%s\n", text);
	} else if (g_strcmp0 (name, "LowSpace") == 0) {
		guint64 free_b, req;
		g_autofree gchar *f = NULL, *r = NULL;

		g_variant_get (params, "(tt)", &free_b, &req);
		f = bsc_size_format (free_b);
		r = bsc_size_format (req);
		g_print ("%s %s low space: %s free, %s requested\n", time, id, f, r);
	} else if (g_strcmp0 (name, "StorageAppended") == 0) {
		guint64 added, alloc;
		g_autofree gchar *a = NULL, *t = NULL;

		g_variant_get (params, "(tt)", &added, &alloc);
		a = bsc_size_format (added);
		t = bsc_size_format (alloc);
		g_print ("%s %s storage appended: +%s, %s in all\n", time, id, a, t);
	} else if (g_strcmp0 (name, "Corrupted") == 0) {
		const gchar *dev;
		gint err;

		g_variant_get (params, "(&si)", &dev, &err);
		g_print ("%s %s CORRUPTED: image of %s failed: %s\n", time, id, dev,
		         g_strerror (-err));
	}
	fflush (stdout);
}

static gboolean
quit_loop (gpointer loop)
{
	g_main_loop_quit (loop);
	return G_SOURCE_REMOVE;
}

static gboolean
cmd_watch (Ctx *ctx, gint argc, gchar **argv, GError **error)
{
	g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
	guint sub;

	if (!bsc_cli_parse_args (ctx, &argc, &argv, "", "Follow the snapshots' events (low space, "
	                 "storage appended, corrupted) until bsc_cli_interrupted.", NULL, 0, 0, error))
		return FALSE;
	sub = g_dbus_connection_signal_subscribe (ctx->bus, BSC_BUS_NAME, BSC_IFACE_SNAPSHOT, NULL,
	                                          NULL, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
	                                          on_snapshot_signal, ctx, NULL);
	g_unix_signal_add (SIGINT, quit_loop, loop);
	g_unix_signal_add (SIGTERM, quit_loop, loop);
	bsc_cli_say (ctx, "watching snapshot events; Ctrl-C ends");
	g_main_loop_run (loop);
	g_dbus_connection_signal_unsubscribe (ctx->bus, sub);
	return TRUE;
}

static gboolean
cmd_snapshot (Ctx *ctx, gint argc, gchar **argv, GError **error)
{
	static const struct {
		const gchar *name;
		gboolean (*func) (Ctx *, gint, gchar **, GError **);
	} subs[] = {
		{ "create", cmd_snapshot_create },
		{ "take", cmd_snapshot_simple },
		{ "destroy", cmd_snapshot_simple },
		{ "info", cmd_snapshot_info },
		{ "list", cmd_snapshot_list },
		{ "grow", cmd_snapshot_grow },
	};

	if (argc < 2) {
		g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
		             "usage: blksnapctl snapshot create|take|destroy|info|list|grow ...");
		return FALSE;
	}
	for (guint i = 0; i < G_N_ELEMENTS (subs); i++)
		if (g_strcmp0 (argv[1], subs[i].name) == 0)
			return subs[i].func (ctx, argc - 1, argv + 1, error);
	g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
	             "unknown command 'snapshot %s' (create, take, destroy, info, list, grow)",
	             argv[1]);
	return FALSE;
}


/* ---------------------------------------------------------------- main */

static const struct {
	const gchar *name;
	gboolean (*func) (Ctx *, gint, gchar **, GError **);
	const gchar *help;
} commands[] = {
	{ "status", cmd_status, "service and module versions, tracked devices, snapshots" },
	{ "track", cmd_track, "start change block tracking of devices" },
	{ "untrack", cmd_track, "stop tracking devices" },
	{ "cbt", cmd_cbt, "CBT information of a device, or its changed ranges" },
	{ "snapshot", cmd_snapshot, "create|take|destroy|info|list|grow snapshots" },
	{ "watch", cmd_watch, "follow snapshot events until interrupted" },
	{ "backup", bsc_cmd_backup, "full or incremental backup of devices into a directory" },
	{ "restore", bsc_cmd_restore, "rebuild a device or an image file from a backup" },
};

static void
usage (FILE *out)
{
	fprintf (out, "Usage: blksnapctl COMMAND [OPTION...] [ARG...]\n\nCommands:\n");
	for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
		fprintf (out, "  %-10s %s\n", commands[i].name, commands[i].help);
	fprintf (out, "\n'blksnapctl COMMAND --help' describes a command; blksnapctl(1) all of "
	         "them and the exit codes.\n");
}

int
main (int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GDBusConnection) bus = NULL;
	Ctx ctx = { 0 };
	struct sigaction sa = { 0 };
	gint cmd = -1;

	setlocale (LC_ALL, "");
	if (argc < 2) {
		usage (stderr);
		return BSC_EXIT_USAGE;
	}
	if (g_strcmp0 (argv[1], "--help") == 0 || g_strcmp0 (argv[1], "-h") == 0 ||
	    g_strcmp0 (argv[1], "help") == 0) {
		usage (stdout);
		return BSC_EXIT_OK;
	}
	if (g_strcmp0 (argv[1], "--version") == 0) {
		g_print ("blksnapctl %s\n", PACKAGE_VERSION);
		return BSC_EXIT_OK;
	}
	for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
		if (g_strcmp0 (argv[1], commands[i].name) == 0)
			cmd = i;
	if (cmd < 0) {
		g_printerr ("blksnapctl: unknown command '%s'\n", argv[1]);
		usage (stderr);
		return BSC_EXIT_USAGE;
	}

	/* a signal only sets a flag: the command winds down and cleans up */
	sa.sa_handler = on_signal;
	sigemptyset (&sa.sa_mask);
	if (g_strcmp0 (argv[1], "watch") != 0) {
		sigaction (SIGINT, &sa, NULL);
		sigaction (SIGTERM, &sa, NULL);
		sigaction (SIGHUP, &sa, NULL);
	}

	/* --help needs no bus */
	if (!g_strv_contains ((const gchar *const *) argv, "--help") &&
	    !g_strv_contains ((const gchar *const *) argv, "-h")) {
		bus = bsc_dbus_connect (&error);
		if (bus == NULL)
			goto out;
	}
	ctx.bus = bus;
	commands[cmd].func (&ctx, argc - 1, argv + 1, &error);
out:
	if (error != NULL) {
		BscExit code = bsc_exit_for_error (error);

		if (ctx.json && code != BSC_EXIT_USAGE) {
			g_autoptr(JsonBuilder) b = json_builder_new ();

			json_builder_begin_object (b);
			json_builder_set_member_name (b, "error");
			json_builder_add_string_value (b, error->message);
			json_builder_set_member_name (b, "exit-code");
			json_builder_add_int_value (b, code);
			json_builder_end_object (b);
			bsc_cli_print_json (b);
		}
		g_printerr ("blksnapctl %s: %s\n", argv[1], error->message);
		return code;
	}
	return BSC_EXIT_OK;
}
