/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blksnapctl backup and restore.
 *
 * backup: one snapshot of all the devices (taken together, bound to our
 * bus connection so the service destroys it if we die), then for each
 * device the image is read through the fd OpenImage hands out: all of it,
 * or only the blocks whose change number in the map frozen at the take is
 * above the last point's. The point is written as NNNN.partial and
 * renamed when whole; the snapshot is destroyed in every case.
 */
#include <errno.h>
#include <fcntl.h>
#include <gio/gunixfdlist.h>
#include <glib/gstdio.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bs-error.h"
#include "bsc-cli.h"
#include "bsc-copy.h"
#include "bsc-dbus.h"
#include "bsc-manifest.h"
#include "bsc-plan.h"
#include "bsc-util.h"

#define DEFAULT_RUN_SIZE (G_GUINT64_CONSTANT (4) << 20)

static gboolean
set_errno_error (GError **error, const gchar *what, const gchar *path)
{
	gint errsv = errno;

	g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv), "%s %s: %s", what, path,
	             g_strerror (errsv));
	return FALSE;
}

/* A device's name in a point: its node's base name, or MAJ_MIN. */
static gchar *
device_file_name (const gchar *device)
{
	g_autofree gchar *base = g_path_get_basename (device);

	g_strdelimit (base, ":/ ", '_');
	if (*base == '.' || *base == '\0')
		return g_strdup ("device");
	return g_steal_pointer (&base);
}

/* Removes a half-written point (only the files we put there). */
static void
remove_partial (const gchar *dir)
{
	g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
	const gchar *name;

	while (d != NULL && (name = g_dir_read_name (d)) != NULL) {
		g_autofree gchar *path = g_build_filename (dir, name, NULL);

		g_unlink (path);
	}
	g_rmdir (dir);
}

static gint
open_image (Ctx *ctx, const gchar *snapshot, const gchar *device, GError **error)
{
	g_autoptr(GUnixFDList) fds = NULL;
	g_autoptr(GVariant) ret = NULL;
	gint32 index;
	gint fd;

	ret = bsc_dbus_call (ctx->bus, snapshot, BSC_IFACE_SNAPSHOT, "OpenImage",
	                     g_variant_new ("(s@a{sv})", device, bsc_cli_options (ctx, NULL)),
	                     G_VARIANT_TYPE ("(h)"), &fds, error);
	if (ret == NULL)
		return -1;
	g_variant_get (ret, "(h)", &index);
	fd = g_unix_fd_list_get (fds, index, error);
	return fd;
}

typedef struct {
	gchar  *node;        /* as given */
	gchar  *majmin;
	gchar  *path;        /* Device object */
} Target;

static void
target_clear (Target *t)
{
	g_free (t->node);
	g_free (t->majmin);
	g_free (t->path);
}

/* The ranges to copy for @t, or NULL with *@full set for all of it. */
static GArray *
changed_ranges (Ctx *ctx, const Target *t, GPtrArray *chain, GVariant *props, gboolean *full,
                const BscManifest **base_out, GError **error)
{
	const BscManifest *base;
	const BscDeviceEntry *entry;
	g_autoptr(GVariantDict) extra = g_variant_dict_new (NULL);
	g_autoptr(GVariant) ret = NULL;
	g_autoptr(GVariant) list = NULL;
	g_autoptr(GError) local = NULL;
	GArray *ranges;
	GVariantIter iter;
	BsRange r;

	if (!bsc_plan_base (chain, t->node, &base, &entry)) {
		bsc_cli_say (ctx, "%s: no earlier backup in this directory: full backup", t->node);
		*full = TRUE;
		return NULL;
	}
	*base_out = base;
	if (entry->capacity != bsc_prop_u64 (props, "Capacity")) {
		bsc_cli_say (ctx, "%s: the size changed since point %u: full backup", t->node,
		             base->number);
		*full = TRUE;
		return NULL;
	}
	g_variant_dict_insert (extra, "snapshot", "b", TRUE);
	ret = bsc_dbus_call (ctx->bus, t->path, BSC_IFACE_DEVICE, "GetChangedBlocks",
	                     g_variant_new ("(sy@a{sv})", entry->generation, entry->changes_number,
	                                    bsc_cli_options (ctx, extra)),
	                     G_VARIANT_TYPE ("(a(tt))"), NULL, &local);
	if (ret == NULL) {
		if (g_error_matches (local, BS_ERROR, BS_ERROR_GENERATION_CHANGED)) {
			bsc_cli_say (ctx, "%s: the change tracking was reset since point %u (the "
			             "driver was reloaded, the device resized or re-attached): "
			             "the changes are unknown, so this is a full backup",
			             t->node, base->number);
			*full = TRUE;
			return NULL;
		}
		g_propagate_prefixed_error (error, g_steal_pointer (&local),
		                            "changed blocks of %s since point %u: ", t->node,
		                            base->number);
		return NULL;
	}
	list = g_variant_get_child_value (ret, 0);
	ranges = g_array_new (FALSE, FALSE, sizeof (BsRange));
	g_variant_iter_init (&iter, list);
	while (g_variant_iter_next (&iter, "(tt)", &r.offset, &r.length))
		g_array_append_val (ranges, r);
	*full = FALSE;
	return ranges;
}

/* Backs up one device of the taken snapshot into @point_dir. */
static BscDeviceEntry *
backup_device (Ctx *ctx, const gchar *snapshot, const Target *t, GPtrArray *chain,
               gboolean force_full, guint64 run_size, BscChecksum checksum,
               const gchar *point_dir, GError **error)
{
	g_autoptr(BscDeviceEntry) e = bsc_device_entry_new ();
	g_autoptr(GVariant) props = NULL;
	g_autoptr(GArray) ranges = NULL;
	g_autoptr(GArray) runs = NULL;
	g_autoptr(BscProgress) progress = NULL;
	g_autofree gchar *data_path = NULL;
	const gchar *gen = NULL;
	const BscManifest *base = NULL;
	gboolean full = force_full;
	guint64 live, total;
	gint in_fd = -1, out_fd = -1;
	gboolean ok;

	props = bsc_dbus_get_all (ctx->bus, t->path, BSC_IFACE_DEVICE, error);
	if (props == NULL)
		return NULL;
	e->node = g_strdup (t->node);
	e->device = g_strdup (t->majmin);
	e->name = device_file_name (t->node);
	e->data = g_strconcat (e->name, ".data", NULL);
	e->checksum = checksum;
	e->capacity = bsc_prop_u64 (props, "Capacity");
	e->block_size = bsc_prop_u64 (props, "BlockSize");
	if (!g_variant_lookup (props, "Generation", "&s", &gen))
		gen = "";
	e->generation = g_strdup (gen);
	live = bsc_prop_u64 (props, "ChangesNumber");
	/* after the take the device's live number is N+1, N being the take's */
	if (live < 1) {
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED,
		             "%s: change number %" G_GUINT64_FORMAT " after the take", t->node, live);
		return NULL;
	}
	e->changes_number = live - 1;

	if (force_full)
		bsc_cli_say (ctx, "%s: full backup (asked for)", t->node);
	else
		ranges = changed_ranges (ctx, t, chain, props, &full, &base, error);
	if (!full && ranges == NULL)
		return NULL;
	if (full) {
		BsRange all = { 0, e->capacity };

		g_clear_pointer (&ranges, g_array_unref);
		ranges = g_array_new (FALSE, FALSE, sizeof (BsRange));
		g_array_append_val (ranges, all);
	}
	e->full = full;
	runs = bsc_plan_runs (ranges, run_size);
	total = bs_ranges_total (ranges);
	if (!full) {
		g_autofree gchar *sz = bsc_size_format (total);
		bsc_cli_say (ctx, "%s: incremental since point %u: %s changed in %u range(s)",
		             t->node, base->number, sz, ranges->len);
	}

	in_fd = open_image (ctx, snapshot, t->node, error);
	if (in_fd < 0) {
		g_prefix_error (error, "image of %s: ", t->node);
		return NULL;
	}
	data_path = g_build_filename (point_dir, e->data, NULL);
	out_fd = open (data_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out_fd < 0) {
		set_errno_error (error, "cannot create", data_path);
		close (in_fd);
		return NULL;
	}
	/* the data file has the device's size; an incremental is sparse */
	if (ftruncate (out_fd, e->capacity) != 0) {
		set_errno_error (error, "cannot size", data_path);
		close (in_fd);
		close (out_fd);
		return NULL;
	}
	progress = bsc_progress_new (e->name, total, !ctx->json && !ctx->quiet);
	ok = bsc_copy_runs (in_fd, out_fd, runs, e->checksum, BSC_COPY_BACKUP, &bsc_cli_interrupted,
	                    progress, &e->bytes_read, error);
	close (in_fd);
	if (ok && fsync (out_fd) != 0)
		ok = set_errno_error (error, "cannot sync", data_path);
	close (out_fd);
	if (!ok) {
		if (!g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
			g_prefix_error (error, "%s: ", t->node);
		return NULL;
	}
	g_array_append_vals (e->runs, runs->data, runs->len);
	return g_steal_pointer (&e);
}

static void
json_add_entry (JsonBuilder *b, const BscDeviceEntry *e, gdouble secs)
{
	guint64 changed = 0;

	for (guint i = 0; i < e->runs->len; i++)
		changed += g_array_index (e->runs, BscRun, i).length;
	json_builder_begin_object (b);
	bsc_device_entry_add_members (e, b);
	bsc_json_member_int (b, "bytes-copied", changed);
	bsc_json_member_int (b, "runs", e->runs->len);
	json_builder_set_member_name (b, "seconds");
	json_builder_add_double_value (b, secs);
	json_builder_end_object (b);
}

gboolean
bsc_cmd_backup (Ctx *ctx, gint argc, gchar **argv, GError **error)
{
	g_autofree gchar *to = NULL, *size_s = NULL, *limit_s = NULL, *run_s = NULL;
	g_autofree gchar *checksum_s = NULL;
	BscChecksum checksum = BSC_CHECKSUM_DEFAULT;
	g_autofree gchar *snap_id = NULL, *snapshot = NULL;
	g_autofree gchar *point_name = NULL, *partial = NULL, *final = NULL;
	g_autofree gchar *manifest_path = NULL;
	gboolean opt_full = FALSE, opt_incremental = FALSE, own_snapshot, created_to;
	guint64 size = 0, limit = 0, run_size = DEFAULT_RUN_SIZE;
	g_autoptr(GPtrArray) chain = NULL;
	g_autoptr(BscManifest) manifest = bsc_manifest_new ();
	g_autoptr(GArray) targets = g_array_new (FALSE, TRUE, sizeof (Target));
	g_autoptr(GPtrArray) nodes = g_ptr_array_new ();
	g_autoptr(GError) cleanup_error = NULL;
	gint64 start;
	gboolean ok = FALSE;
	const GOptionEntry entries[] = {
		{ "to", 't', 0, G_OPTION_ARG_FILENAME, &to,
		  "The backup directory (a chain of points)", "DIR" },
		{ "full", 'f', 0, G_OPTION_ARG_NONE, &opt_full, "Copy the whole devices", NULL },
		{ "incremental", 'i', 0, G_OPTION_ARG_NONE, &opt_incremental,
		  "Copy what changed since the last point (the default when there is one)", NULL },
		{ "snapshot", 0, 0, G_OPTION_ARG_STRING, &snap_id,
		  "Back up an existing taken snapshot (it is not destroyed)", "ID" },
		{ "storage-size", 's', 0, G_OPTION_ARG_STRING, &size_s,
		  "Difference storage allocated at once", "SIZE" },
		{ "limit", 'l', 0, G_OPTION_ARG_STRING, &limit_s,
		  "Most difference storage to allocate", "SIZE" },
		{ "checksum", 0, 0, G_OPTION_ARG_STRING, &checksum_s,
		  "Checksum of each run: xxh3-128 (the default) or sha256", "ALGORITHM" },
		{ "run-size", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &run_s,
		  "Unit of copy and checksum (4M)", "SIZE" },
		{ NULL }
	};

	g_array_set_clear_func (targets, (GDestroyNotify) target_clear);
	if (!bsc_cli_parse_args (ctx, &argc, &argv, "DEVICE... --to DIR",
	                         "Back up devices from one snapshot taken across all of them.",
	                         entries, 1, -1, error))
		return FALSE;
	if (to == NULL) {
		g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "--to DIR is required");
		return FALSE;
	}
	if (opt_full && opt_incremental) {
		g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
		             "--full and --incremental exclude each other");
		return FALSE;
	}
	if ((size_s && !bsc_size_parse (size_s, &size, error)) ||
	    (limit_s && !bsc_size_parse (limit_s, &limit, error)) ||
	    (run_s && !bsc_size_parse (run_s, &run_size, error)))
		return FALSE;
	if (checksum_s && !bsc_checksum_from_name (checksum_s, &checksum, NULL)) {
		g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		             "--checksum: \"%s\" is neither xxh3-128 nor sha256", checksum_s);
		return FALSE;
	}
	if (run_size < 4096 || run_size > (G_GUINT64_CONSTANT (256) << 20)) {
		g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		             "--run-size must be between 4K and 256M");
		return FALSE;
	}

	for (gint i = 1; i < argc; i++) {
		Target t = { 0 };
		g_autoptr(GVariant) tracked = NULL;
		g_autoptr(GError) local = NULL;

		if (!bsc_device_resolve (argv[i], &t.majmin, &t.path, error))
			return FALSE;
		t.node = g_strdup (argv[i]);
		g_array_append_val (targets, t);
		g_ptr_array_add (nodes, t.node);
		tracked = bsc_dbus_get (ctx->bus, t.path, BSC_IFACE_DEVICE, "Device", &local);
		if (tracked == NULL && snap_id == NULL &&
		    g_error_matches (local, BS_ERROR, BS_ERROR_NOT_FOUND)) {
			g_autoptr(GVariant) ret = NULL;

			bsc_cli_say (ctx, "%s is not tracked: tracking starts now", t.node);
			ret = bsc_dbus_call (ctx->bus, BSC_MANAGER_PATH, BSC_IFACE_MANAGER,
			                     "TrackDevice", g_variant_new ("(s@a{sv})", t.node,
			                     bsc_cli_options (ctx, NULL)), NULL, NULL, error);
			if (ret == NULL) {
				g_prefix_error (error, "track %s: ", t.node);
				return FALSE;
			}
		} else if (tracked == NULL) {
			g_propagate_prefixed_error (error, g_steal_pointer (&local), "%s: ", t.node);
			return FALSE;
		}
	}
	g_ptr_array_add (nodes, NULL);

	chain = bsc_chain_load (to, error);
	if (chain == NULL)
		return FALSE;
	if (opt_incremental && chain->len == 0)
		bsc_cli_say (ctx, "no earlier backup in %s: this one is full", to);
	manifest->number = chain->len ? ((BscManifest *) g_ptr_array_index (chain, chain->len - 1))->number + 1 : 1;
	point_name = bsc_point_dir_name (manifest->number);
	final = g_build_filename (to, point_name, NULL);
	partial = g_strconcat (final, ".partial", NULL);
	created_to = !g_file_test (to, G_FILE_TEST_EXISTS);
	if (g_mkdir_with_parents (to, 0700) != 0)
		return set_errno_error (error, "cannot create", to);
	remove_partial (partial);   /* a leftover of a killed run */
	if (g_mkdir (partial, 0700) != 0)
		return set_errno_error (error, "cannot create", partial);

	/* From here on: clean up on every path. */
	own_snapshot = snap_id == NULL;
	if (own_snapshot) {
		bsc_cli_say (ctx, "taking a snapshot of %s", argv[1]);
		snapshot = bsc_cli_snapshot_create (ctx, (gchar **) nodes->pdata, TRUE, size, limit,
		                                    TRUE, error);
	} else {
		snapshot = bsc_snapshot_path (snap_id, error);
	}
	if (snapshot == NULL)
		goto out;
	manifest->snapshot = bsc_snapshot_id (snapshot);
	manifest->time_us = g_get_real_time ();
	if (!own_snapshot) {
		g_autoptr(GVariant) state = bsc_dbus_get (ctx->bus, snapshot, BSC_IFACE_SNAPSHOT,
		                                          "State", error);
		if (state == NULL)
			goto out;
		if (g_strcmp0 (g_variant_get_string (state, NULL), "taken") != 0) {
			g_set_error (error, BS_ERROR, BS_ERROR_BUSY, "snapshot %s is %s, not taken",
			             manifest->snapshot, g_variant_get_string (state, NULL));
			goto out;
		}
	}

	start = g_get_monotonic_time ();
	for (guint i = 0; i < targets->len; i++) {
		const Target *t = &g_array_index (targets, Target, i);
		BscDeviceEntry *e = backup_device (ctx, snapshot, t, chain, opt_full, run_size,
		                                   checksum, partial, error);

		if (e == NULL)
			goto out;
		for (guint j = 0; j < manifest->devices->len; j++)
			if (g_strcmp0 (((BscDeviceEntry *) g_ptr_array_index (manifest->devices, j))->name,
			               e->name) == 0) {
				g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				             "%s is named twice", e->node);
				bsc_device_entry_free (e);
				goto out;
			}
		g_ptr_array_add (manifest->devices, e);
	}
	manifest_path = g_build_filename (partial, BSC_MANIFEST_FILE, NULL);
	if (!bsc_manifest_save (manifest, manifest_path, error))
		goto out;
	if (g_rename (partial, final) != 0) {
		set_errno_error (error, "cannot rename to", final);
		goto out;
	}
	ok = TRUE;

	{
		gdouble secs = (g_get_monotonic_time () - start) / (gdouble) G_USEC_PER_SEC;
		g_autoptr(JsonBuilder) b = json_builder_new ();

		json_builder_begin_object (b);
		bsc_json_member_int (b, "point", manifest->number);
		bsc_json_member_string (b, "directory", final);
		bsc_json_member_string (b, "snapshot", manifest->snapshot);
		json_builder_set_member_name (b, "devices");
		json_builder_begin_array (b);
		for (guint i = 0; i < manifest->devices->len; i++) {
			const BscDeviceEntry *e = g_ptr_array_index (manifest->devices, i);
			g_autofree gchar *read = bsc_size_format (e->bytes_read);
			g_autofree gchar *cap = bsc_size_format (e->capacity);
			g_autofree gchar *rate = bsc_size_format (e->bytes_read / MAX (secs, 1e-3));

			json_add_entry (b, e, secs);
			bsc_cli_say (ctx, "%s: %s backup, point %u: read %s of %s (%s/s)", e->node,
			             e->full ? "full" : "incremental", manifest->number, read, cap,
			             rate);
		}
		json_builder_end_array (b);
		json_builder_end_object (b);
		if (ctx->json)
			bsc_cli_print_json (b);
	}
out:
	if (!ok) {
		remove_partial (partial);
		/* a refused first backup leaves no empty chain behind */
		if (created_to)
			g_rmdir (to);
	}
	if (own_snapshot && snapshot != NULL &&
	    !bsc_cli_snapshot_destroy (ctx, snapshot, &cleanup_error)) {
		/* bound to our connection: the service drops it when we exit */
		g_printerr ("blksnapctl backup: %s\n", cleanup_error->message);
	}
	if (!ok && error != NULL && *error != NULL &&
	    g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		g_prefix_error (error, "backup to %s: snapshot destroyed, nothing kept: ", to);
	return ok;
}

/* ------------------------------------------------------------- restore */

gboolean
bsc_cmd_restore (Ctx *ctx, gint argc, gchar **argv, GError **error)
{
	g_autofree gchar *to = NULL, *device = NULL, *dir = NULL;
	g_autoptr(GPtrArray) chain = NULL;
	g_autoptr(GArray) steps = NULL;
	const gchar *at;
	guint64 point = 0, written = 0, capacity;
	gboolean is_blk;
	struct stat st;
	gint out_fd;
	gint64 start = g_get_monotonic_time ();
	const GOptionEntry entries[] = {
		{ "to", 't', 0, G_OPTION_ARG_FILENAME, &to,
		  "Device or image file to write (a file is created)", "TARGET" },
		{ "device", 'd', 0, G_OPTION_ARG_STRING, &device,
		  "Which device of the backup (when it holds several)", "DEVICE" },
		{ NULL }
	};

	if (!bsc_cli_parse_args (ctx, &argc, &argv, "DIR[@POINT] --to TARGET",
	                         "Rebuild a device or image file from a full backup and the "
	                         "incrementals after it, verifying every checksum.",
	                         entries, 1, 1, error))
		return FALSE;
	if (to == NULL) {
		g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "--to TARGET is required");
		return FALSE;
	}
	at = strrchr (argv[1], '@');
	if (at != NULL) {
		if (!g_ascii_string_to_unsigned (at + 1, 10, 1, G_MAXUINT32, &point, NULL)) {
			g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			             "'%s' is not a point number", at + 1);
			return FALSE;
		}
		dir = g_strndup (argv[1], at - argv[1]);
	} else {
		dir = g_strdup (argv[1]);
	}
	chain = bsc_chain_load (dir, error);
	if (chain == NULL)
		return FALSE;
	steps = bsc_plan_restore (chain, point, device, error);
	if (steps == NULL) {
		g_prefix_error (error, "%s: ", dir);
		return FALSE;
	}
	capacity = g_array_index (steps, BscRestoreStep, 0).entry->capacity;

	is_blk = stat (to, &st) == 0 && S_ISBLK (st.st_mode);
	out_fd = open (to, O_WRONLY | O_CLOEXEC | (is_blk ? 0 : O_CREAT | O_TRUNC), 0600);
	if (out_fd < 0)
		return set_errno_error (error, "cannot open", to);
	if (is_blk) {
		guint64 bytes = 0;

		if (ioctl (out_fd, BLKGETSIZE64, &bytes) != 0 || bytes < capacity) {
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
			             "%s holds %" G_GUINT64_FORMAT " bytes, the backup %" G_GUINT64_FORMAT,
			             to, bytes, capacity);
			close (out_fd);
			return FALSE;
		}
	} else if (ftruncate (out_fd, capacity) != 0) {
		set_errno_error (error, "cannot size", to);
		close (out_fd);
		return FALSE;
	}

	for (guint i = 0; i < steps->len; i++) {
		const BscRestoreStep *s = &g_array_index (steps, BscRestoreStep, i);
		g_autofree gchar *pname = bsc_point_dir_name (s->point->number);
		g_autofree gchar *data = g_build_filename (dir, pname, s->entry->data, NULL);
		g_autoptr(BscProgress) progress = NULL;
		g_autoptr(GArray) runs = g_array_copy (s->entry->runs);
		guint64 total = 0, done = 0;
		gint in_fd;
		gboolean ok;

		for (guint r = 0; r < runs->len; r++)
			total += g_array_index (runs, BscRun, r).length;
		bsc_cli_say (ctx, "applying point %u (%s) of %s", s->point->number,
		             s->entry->full ? "full" : "incremental", s->entry->node);
		in_fd = open (data, O_RDONLY | O_CLOEXEC);
		if (in_fd < 0) {
			set_errno_error (error, "cannot open", data);
			close (out_fd);
			return FALSE;
		}
		progress = bsc_progress_new (pname, total, !ctx->json && !ctx->quiet);
		ok = bsc_copy_runs (in_fd, out_fd, runs, s->entry->checksum, BSC_COPY_VERIFY,
		                    &bsc_cli_interrupted, progress, &done, error);
		close (in_fd);
		if (!ok) {
			g_prefix_error (error, "point %u of %s (%s): ", s->point->number,
			                s->entry->node, data);
			close (out_fd);
			return FALSE;
		}
		written += done;
	}
	if (fsync (out_fd) != 0) {
		set_errno_error (error, "cannot sync", to);
		close (out_fd);
		return FALSE;
	}
	close (out_fd);

	{
		const BscRestoreStep *last = &g_array_index (steps, BscRestoreStep, steps->len - 1);
		g_autoptr(JsonBuilder) b = json_builder_new ();
		g_autofree gchar *sz = bsc_size_format (written);

		json_builder_begin_object (b);
		bsc_json_member_string (b, "target", to);
		bsc_json_member_string (b, "device", last->entry->node);
		bsc_json_member_int (b, "point", last->point->number);
		json_builder_set_member_name (b, "points-applied");
		json_builder_begin_array (b);
		for (guint i = 0; i < steps->len; i++)
			json_builder_add_int_value (b, g_array_index (steps, BscRestoreStep, i).point->number);
		json_builder_end_array (b);
		bsc_json_member_int (b, "bytes-written", written);
		json_builder_set_member_name (b, "seconds");
		json_builder_add_double_value (b, (g_get_monotonic_time () - start) / 1e6);
		json_builder_end_object (b);
		if (ctx->json)
			bsc_cli_print_json (b);
		bsc_cli_say (ctx, "restored %s at point %u to %s: %s written from %u point(s), "
		             "every checksum verified", last->entry->node, last->point->number, to,
		             sz, steps->len);
	}
	return TRUE;
}
