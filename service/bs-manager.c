/* SPDX-License-Identifier: GPL-2.0-or-later */

#define G_LOG_DOMAIN "blksnapd"

#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bs-cbt.h"
#include "bs-error.h"
#include "bs-manager.h"
#include "bs-state.h"
#include "bs-storage.h"

/* How often trackers and snapshots are re-read, to keep properties
 * current where the module sends no event (storage used, trackers lost
 * when a disk goes away). */
#define REFRESH_INTERVAL_S 2

struct _BsManager {
	GObject parent_instance;
	BsConfig *config;
	BsControl *control;
	gchar *state_path;
	GHashTable *snapshots;   /* id hex -> BsSnapshot */
	GHashTable *devices;     /* "MAJ:MIN" -> BsDeviceInfo */
	GHashTable *expiries;    /* id hex -> GSource id */
	gchar *module_version;
	guint refresh_id;
};

enum {
	SIGNAL_SNAPSHOT_ADDED,
	SIGNAL_SNAPSHOT_REMOVED,
	SIGNAL_DEVICES_CHANGED,
	SIGNAL_CHANGED,
	SIGNAL_LAST
};
static guint signals[SIGNAL_LAST];

G_DEFINE_TYPE (BsManager, bs_manager, G_TYPE_OBJECT)

static void
device_info_free (BsDeviceInfo *info)
{
	g_free (info->name);
	g_free (info);
}

const BsConfig *
bs_manager_get_config (BsManager *self)
{
	return self->config;
}

const gchar *
bs_manager_get_module_version (BsManager *self)
{
	return self->module_version != NULL ? self->module_version : "";
}

/**
 * bs_manager_get_snapshots:
 *
 * Returns: (transfer container) (element-type BsSnapshot)
 */
GList *
bs_manager_get_snapshots (BsManager *self)
{
	return g_hash_table_get_values (self->snapshots);
}

BsSnapshot *
bs_manager_find_snapshot (BsManager *self, const gchar *id_hex)
{
	return g_hash_table_lookup (self->snapshots, id_hex);
}

BsSnapshot *
bs_manager_find_snapshot_of_device (BsManager *self, const BsDev *dev)
{
	GHashTableIter iter;
	gpointer value;

	g_hash_table_iter_init (&iter, self->snapshots);
	while (g_hash_table_iter_next (&iter, NULL, &value)) {
		if (bs_snapshot_has_device (value, dev))
			return value;
	}
	return NULL;
}

/**
 * bs_manager_get_devices:
 *
 * Returns: (transfer container) (element-type BsDeviceInfo)
 */
GList *
bs_manager_get_devices (BsManager *self)
{
	return g_hash_table_get_values (self->devices);
}

BsDeviceInfo *
bs_manager_find_device (BsManager *self, const BsDev *dev)
{
	g_autofree gchar *name = bs_dev_to_string (dev);

	return g_hash_table_lookup (self->devices, name);
}

/* ---------------------------------------------------------------- state */

gboolean
bs_manager_save_state (BsManager *self, GError **error)
{
	g_autoptr(GPtrArray) records = g_ptr_array_new ();
	GHashTableIter iter;
	gpointer value;

	g_hash_table_iter_init (&iter, self->snapshots);
	while (g_hash_table_iter_next (&iter, NULL, &value))
		g_ptr_array_add (records, bs_snapshot_get_record (value));
	return bs_state_save (self->state_path, records, error);
}

static void
manager_save_state_or_warn (BsManager *self)
{
	g_autoptr(GError) error = NULL;

	if (!bs_manager_save_state (self, &error))
		g_warning ("cannot save the state: %s", error->message);
}

/* -------------------------------------------------------------- devices */

/* Re-reads the trackers; emits ::devices-changed if anything differs. */
static void
manager_refresh_devices (BsManager *self)
{
	g_autoptr(GArray) list = NULL;
	g_autoptr(GHashTable) fresh = NULL;
	gboolean changed = FALSE;
	GHashTableIter iter;
	gpointer key, value;

	fresh = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
	                               (GDestroyNotify) device_info_free);
	list = bs_control_tracker_list (self->control, NULL);
	for (guint i = 0; list != NULL && i < list->len; i++) {
		BsDeviceInfo *info = g_new0 (BsDeviceInfo, 1);
		BsDeviceInfo *old;

		info->dev = g_array_index (list, BsDev, i);
		info->name = bs_dev_to_string (&info->dev);
		if (!bs_control_cbt_info (self->control, &info->dev, &info->info, NULL)) {
			device_info_free (info);
			continue;
		}
		old = g_hash_table_lookup (self->devices, info->name);
		if (old == NULL || memcmp (&old->info, &info->info, sizeof (info->info)) != 0)
			changed = TRUE;
		g_hash_table_insert (fresh, info->name, info);
	}
	g_hash_table_iter_init (&iter, self->devices);
	while (g_hash_table_iter_next (&iter, &key, NULL)) {
		if (!g_hash_table_contains (fresh, key))
			changed = TRUE;
	}
	/* move the fresh entries over (keys are owned by the values) */
	g_hash_table_remove_all (self->devices);
	g_hash_table_iter_init (&iter, fresh);
	while (g_hash_table_iter_next (&iter, &key, &value)) {
		g_hash_table_iter_steal (&iter);
		g_hash_table_insert (self->devices, key, value);
	}
	if (changed)
		g_signal_emit (self, signals[SIGNAL_DEVICES_CHANGED], 0);
}

gboolean
bs_manager_track (BsManager *self, const BsDev *dev, GError **error)
{
	if (!bs_control_tracker_attach (self->control, dev, error))
		return FALSE;
	g_message ("tracking %u:%u", dev->major, dev->minor);
	manager_refresh_devices (self);
	return TRUE;
}

gboolean
bs_manager_untrack (BsManager *self, const BsDev *dev, GError **error)
{
	BsSnapshot *snapshot = bs_manager_find_snapshot_of_device (self, dev);

	if (snapshot != NULL) {
		g_set_error (error, BS_ERROR, BS_ERROR_BUSY,
		             "%u:%u belongs to snapshot %s", dev->major, dev->minor,
		             bs_snapshot_get_id_string (snapshot));
		return FALSE;
	}
	if (!bs_control_tracker_detach (self->control, dev, error))
		return FALSE;
	g_message ("stopped tracking %u:%u", dev->major, dev->minor);
	manager_refresh_devices (self);
	return TRUE;
}

static gchar *
generation_to_string (const struct blksnap_cbt_info *info)
{
	return bs_uuid_to_string ((const BsUuid *) info->generation_id);
}

/**
 * bs_manager_read_cbt_map:
 * @flags: 0 or %BLKSNAP_CBT_MAP_SNAPSHOT (the map frozen at the take)
 * @generation: (out): the generation of the map
 */
GBytes *
bs_manager_read_cbt_map (BsManager *self, const BsDev *dev, guint32 flags, gchar **generation,
                         GError **error)
{
	struct blksnap_cbt_info info, after;
	g_autoptr(GBytes) map = NULL;

	if (!bs_control_cbt_info (self->control, dev, &info, error))
		return NULL;
	map = bs_control_cbt_map (self->control, dev, info.block_count, flags, error);
	if (map == NULL)
		return NULL;
	/* a reset in between would pair a map with the wrong generation */
	if (!bs_control_cbt_info (self->control, dev, &after, error))
		return NULL;
	if (memcmp (info.generation_id, after.generation_id, BLKSNAP_UUID_SIZE) != 0) {
		g_set_error (error, BS_ERROR, BS_ERROR_BUSY,
		             "the CBT generation changed while reading the map; try again");
		return NULL;
	}
	*generation = generation_to_string (&info);
	return g_steal_pointer (&map);
}

/**
 * bs_manager_get_changed_blocks:
 * @generation: the generation of the last backup point
 * @since: its change number
 * @at_take: read the map frozen at the take of the device's snapshot, which
 *   matches its image exactly, instead of the live map
 *
 * Returns: (transfer full): a #GArray of #BsRange (bytes)
 */
GArray *
bs_manager_get_changed_blocks (BsManager *self, const BsDev *dev, const gchar *generation,
                               guint8 since, gboolean at_take, GError **error)
{
	struct blksnap_cbt_info info;
	g_autoptr(GBytes) map = NULL;
	g_autofree gchar *current = NULL;
	BsUuid wanted;
	gsize len;
	const guint8 *data;

	if (!bs_uuid_parse (generation, &wanted, error))
		return NULL;
	if (!bs_control_cbt_info (self->control, dev, &info, error))
		return NULL;
	map = bs_manager_read_cbt_map (self, dev, at_take ? BLKSNAP_CBT_MAP_SNAPSHOT : 0,
	                               &current, error);
	if (map == NULL)
		return NULL;
	if (memcmp (wanted.b, info.generation_id, BLKSNAP_UUID_SIZE) != 0) {
		g_set_error (error, BS_ERROR, BS_ERROR_GENERATION_CHANGED,
		             "the CBT generation is %s now, not %s: a full backup is needed",
		             current, generation);
		return NULL;
	}
	data = g_bytes_get_data (map, &len);
	return bs_cbt_changed_ranges (data, len, info.block_size,
	                              info.device_capacity * 512, since);
}

/**
 * bs_manager_mark_dirty:
 * @byte_ranges: a #GArray of #BsRange
 *
 * Each range is widened to whole sectors.
 */
gboolean
bs_manager_mark_dirty (BsManager *self, const BsDev *dev, const GArray *byte_ranges,
                       GError **error)
{
	struct blksnap_cbt_info info;
	g_autoptr(GArray) sectors = g_array_new (FALSE, FALSE, sizeof (struct blksnap_sectors));

	if (byte_ranges->len == 0 || byte_ranges->len > BLKSNAP_MAX_DIRTY_RANGES) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "give 1 to %u ranges", BLKSNAP_MAX_DIRTY_RANGES);
		return FALSE;
	}
	if (!bs_control_cbt_info (self->control, dev, &info, error))
		return FALSE;
	for (guint i = 0; i < byte_ranges->len; i++) {
		const BsRange *r = &g_array_index (byte_ranges, BsRange, i);
		guint64 capacity = info.device_capacity * 512;
		struct blksnap_sectors s;

		if (r->length == 0 || r->offset >= capacity || r->length > capacity - r->offset) {
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "range %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT
			             " is empty or not inside the device (%" G_GUINT64_FORMAT
			             " bytes)", r->offset, r->length, capacity);
			return FALSE;
		}
		s.offset = r->offset / 512;
		s.count = (r->offset + r->length + 511) / 512 - s.offset;
		g_array_append_val (sectors, s);
	}
	return bs_control_cbt_dirty (self->control, dev,
	                             (struct blksnap_sectors *) sectors->data, sectors->len,
	                             error);
}

/* ------------------------------------------------------------ snapshots */

static void manager_remove_snapshot (BsManager *self, BsSnapshot *snapshot);

/* Longest single wait for an expiry: the real-time clock may be set
 * meanwhile, and GLib timers count monotonic time. */
#define EXPIRY_CHECK_MAX_MS (3600 * 1000)

static gboolean manager_expired_cb (gpointer user_data);

/*
 * (Re)arm the snapshot's expiry timer: millisecond timers, rounded up,
 * because second timers may fire up to a quarter second early.
 */
static void
manager_arm_expiry (BsManager *self, BsSnapshot *snapshot)
{
	BsStateRecord *record = bs_snapshot_get_record (snapshot);
	gint64 left_ms = (record->expiry_us - g_get_real_time () + 999) / 1000;
	guint id = g_timeout_add (CLAMP (left_ms, 0, EXPIRY_CHECK_MAX_MS), manager_expired_cb,
	                          snapshot);

	g_hash_table_replace (self->expiries, g_strdup (bs_snapshot_get_id_hex (snapshot)),
	                      GUINT_TO_POINTER (id));
}

static gboolean
manager_expired_cb (gpointer user_data)
{
	BsSnapshot *snapshot = user_data;
	BsManager *self = g_object_get_data (G_OBJECT (snapshot), "bs-manager");
	g_autoptr(GError) error = NULL;

	if (g_get_real_time () < bs_snapshot_get_record (snapshot)->expiry_us) {
		manager_arm_expiry (self, snapshot);
		return G_SOURCE_REMOVE;
	}
	g_hash_table_remove (self->expiries, bs_snapshot_get_id_hex (snapshot));
	bs_snapshot_log (snapshot, G_LOG_LEVEL_MESSAGE, "lifetime is over");
	if (!bs_manager_destroy_snapshot (self, snapshot, &error))
		bs_snapshot_log (snapshot, G_LOG_LEVEL_WARNING, "cannot destroy: %s",
		                 error->message);
	return G_SOURCE_REMOVE;
}

static void
manager_snapshot_vanished_cb (BsSnapshot *snapshot, BsManager *self)
{
	manager_remove_snapshot (self, snapshot);
}

static void
manager_snapshot_storage_cb (BsSnapshot *snapshot, guint64 added, guint64 allocated,
                             BsManager *self)
{
	manager_save_state_or_warn (self);
}

static void
manager_snapshot_record_cb (BsSnapshot *snapshot, BsManager *self)
{
	manager_save_state_or_warn (self);
}

static void
manager_snapshot_changed_cb (BsSnapshot *snapshot, BsManager *self)
{
	/* a take advances the change numbers of the devices */
	manager_refresh_devices (self);
}

static void
manager_add_snapshot (BsManager *self, BsSnapshot *snapshot)
{
	BsStateRecord *record = bs_snapshot_get_record (snapshot);

	g_object_set_data (G_OBJECT (snapshot), "bs-manager", self);
	bs_snapshot_set_reserve (snapshot, self->config);
	g_hash_table_insert (self->snapshots, g_strdup (bs_snapshot_get_id_hex (snapshot)),
	                     g_object_ref (snapshot));
	g_signal_connect_object (snapshot, "vanished",
	                         G_CALLBACK (manager_snapshot_vanished_cb), self, 0);
	g_signal_connect_object (snapshot, "storage-appended",
	                         G_CALLBACK (manager_snapshot_storage_cb), self, 0);
	g_signal_connect_object (snapshot, "changed",
	                         G_CALLBACK (manager_snapshot_changed_cb), self, 0);
	g_signal_connect_object (snapshot, "record-changed",
	                         G_CALLBACK (manager_snapshot_record_cb), self, 0);
	if (record->expiry_us > 0)
		manager_arm_expiry (self, snapshot);
	bs_snapshot_start_watcher (snapshot);
	manager_save_state_or_warn (self);
	g_signal_emit (self, signals[SIGNAL_SNAPSHOT_ADDED], 0, snapshot);
	manager_refresh_devices (self);
}

/* Forget a snapshot that is destroyed or gone from the kernel. */
static void
manager_remove_snapshot (BsManager *self, BsSnapshot *snapshot)
{
	g_autoptr(BsSnapshot) ref = g_object_ref (snapshot);
	const gchar *hex = bs_snapshot_get_id_hex (snapshot);
	guint expiry = GPOINTER_TO_UINT (g_hash_table_lookup (self->expiries, hex));

	if (!g_hash_table_contains (self->snapshots, hex))
		return;
	if (expiry != 0)
		g_source_remove (expiry);
	g_hash_table_remove (self->expiries, hex);
	/* the kernel no longer has it (or never will again): release files */
	bs_snapshot_destroy (snapshot, NULL);
	g_hash_table_remove (self->snapshots, hex);
	manager_save_state_or_warn (self);
	g_signal_emit (self, signals[SIGNAL_SNAPSHOT_REMOVED], 0, snapshot);
	manager_refresh_devices (self);
}

gboolean
bs_manager_destroy_snapshot (BsManager *self, BsSnapshot *snapshot, GError **error)
{
	if (!bs_snapshot_destroy (snapshot, error))
		return FALSE;
	manager_remove_snapshot (self, snapshot);
	return TRUE;
}

/**
 * bs_manager_check_devices:
 * @devices: a #GArray of #BsDev
 *
 * Checks what can be checked before a snapshot is created: at least one
 * device, no duplicates, each tracked and in no snapshot.
 */
gboolean
bs_manager_check_devices (BsManager *self, GArray *devices, GError **error)
{
	if (devices->len == 0) {
		g_set_error_literal (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		                     "a snapshot needs at least one device");
		return FALSE;
	}
	for (guint i = 0; i < devices->len; i++) {
		BsDev *dev = &g_array_index (devices, BsDev, i);
		BsSnapshot *other;
		struct blksnap_cbt_info info;

		for (guint j = 0; j < i; j++) {
			if (bs_dev_equal (dev, &g_array_index (devices, BsDev, j))) {
				g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
				             "%u:%u is given twice", dev->major, dev->minor);
				return FALSE;
			}
		}
		if (!bs_control_cbt_info (self->control, dev, &info, error))
			return FALSE;
		other = bs_manager_find_snapshot_of_device (self, dev);
		if (other != NULL) {
			g_set_error (error, BS_ERROR, BS_ERROR_BUSY, "%u:%u belongs to snapshot %s",
			             dev->major, dev->minor, bs_snapshot_get_id_string (other));
			return FALSE;
		}
	}
	return TRUE;
}

static void
create_failed (BsManager *self, GTask *task, BsSnapshot *snapshot, GError *error)
{
	g_autoptr(GError) error_destroy = NULL;

	bs_snapshot_log (snapshot, G_LOG_LEVEL_MESSAGE, "creation failed: %s", error->message);
	if (!bs_manager_destroy_snapshot (self, snapshot, &error_destroy))
		bs_snapshot_log (snapshot, G_LOG_LEVEL_WARNING, "cannot destroy: %s",
		                 error_destroy->message);
	g_task_return_error (task, error);
}

static void
create_take_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = G_TASK (user_data);
	BsSnapshot *snapshot = BS_SNAPSHOT (source);
	GError *error = NULL;

	if (!bs_snapshot_take_finish (snapshot, res, &error)) {
		create_failed (g_task_get_source_object (task), task, snapshot, error);
		return;
	}
	g_task_return_pointer (task, g_object_ref (snapshot), g_object_unref);
}

static void
create_spare_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = G_TASK (user_data);
	BsSnapshot *snapshot = BS_SNAPSHOT (source);
	BsManager *self = g_task_get_source_object (task);
	gboolean *take = g_task_get_task_data (task);

	bs_snapshot_refill_spare_finish (snapshot, res, NULL);  /* never fails */
	if (bs_manager_find_snapshot (self, bs_snapshot_get_id_hex (snapshot)) != snapshot) {
		g_task_return_new_error (task, BS_ERROR, BS_ERROR_NOT_FOUND,
		                         "snapshot %s was destroyed meanwhile",
		                         bs_snapshot_get_id_string (snapshot));
		return;
	}
	if (*take) {
		bs_snapshot_take_async (snapshot, create_take_done, g_steal_pointer (&task));
		return;
	}
	g_task_return_pointer (task, g_object_ref (snapshot), g_object_unref);
}

static void
create_grow_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = G_TASK (user_data);
	BsSnapshot *snapshot = BS_SNAPSHOT (source);
	GError *error = NULL;

	if (!bs_snapshot_grow_finish (snapshot, res, &error)) {
		create_failed (g_task_get_source_object (task), task, snapshot, error);
		return;
	}
	/* ready for its first low-space event before the caller has it */
	bs_snapshot_refill_spare_async (snapshot, create_spare_done, g_steal_pointer (&task));
}

/**
 * bs_manager_create_snapshot_async:
 * @devices: a #GArray of #BsDev, checked with bs_manager_check_devices()
 * @owner: uid recorded as the owner
 * @bound_to: (nullable): bus name the snapshot lives no longer than
 *
 * Creates the kernel's snapshot, allocates the initial storage in a
 * worker thread and takes it if the options say so. On failure nothing is
 * left: the snapshot is destroyed, its files removed.
 */
void
bs_manager_create_snapshot_async (BsManager *self, GArray *devices,
                                  const BsSnapshotOptions *options, guint32 owner,
                                  const gchar *bound_to, GAsyncReadyCallback callback,
                                  gpointer user_data)
{
	g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);
	g_autoptr(BsStateRecord) record = NULL;
	g_autoptr(BsSnapshot) snapshot = NULL;
	GError *error = NULL;
	BsUuid id;

	if (!bs_control_snapshot_create (self->control, &id, &error)) {
		g_task_return_error (task, error);
		return;
	}
	for (guint i = 0; i < devices->len; i++) {
		if (!bs_control_snapshot_add_device (self->control, &id,
		                                     &g_array_index (devices, BsDev, i), &error)) {
			bs_control_snapshot_destroy (self->control, &id, NULL);
			g_task_return_error (task, error);
			return;
		}
	}
	record = bs_state_record_new (&id);
	record->owner = owner;
	record->created_us = g_get_real_time ();
	if (options->lifetime_s > 0)
		record->expiry_us = record->created_us + options->lifetime_s * G_USEC_PER_SEC;
	record->bound_to = g_strdup (bound_to);
	record->limit = options->limit;
	record->grow_step = options->grow_step;
	snapshot = bs_snapshot_new (self->control, self->config->storage_dir,
	                            g_steal_pointer (&record));
	if (!bs_snapshot_refresh (snapshot, &error)) {
		bs_control_snapshot_destroy (self->control, &id, NULL);
		g_task_return_error (task, error);
		return;
	}
	bs_snapshot_log (snapshot, G_LOG_LEVEL_MESSAGE, "created for uid %u", owner);
	manager_add_snapshot (self, snapshot);
	g_task_set_task_data (task, g_memdup2 (&options->take, sizeof (gboolean)), g_free);
	bs_snapshot_grow_async (snapshot, options->initial_size, create_grow_done,
	                        g_steal_pointer (&task));
}

BsSnapshot *
bs_manager_create_snapshot_finish (BsManager *self, GAsyncResult *res, GError **error)
{
	return g_task_propagate_pointer (G_TASK (res), error);
}

/* ------------------------------------------------------------- recovery */

/* The snapshot id a storage file name starts with, if it is ours. */
static gboolean
storage_file_id (const gchar *name, gchar hex[33])
{
	if (!g_str_has_suffix (name, BS_STORAGE_SUFFIX) || strlen (name) < 33 || name[32] != '-')
		return FALSE;
	for (guint i = 0; i < 32; i++) {
		if (!g_ascii_isxdigit (name[i]))
			return FALSE;
	}
	memcpy (hex, name, 32);
	hex[32] = '\0';
	return TRUE;
}

/* The size of a file, 0 if it is not there. */
static guint64
file_size (const gchar *path)
{
	GStatBuf st;

	return g_lstat (path, &st) == 0 && S_ISREG (st.st_mode) ? (guint64) st.st_size : 0;
}

/*
 * The spare files of an adopted snapshot. Spares are appended oldest
 * first, one at a time, so only the first may have reached the module:
 * it becomes a storage file like the others if it did; the others, and
 * it if not, are removed (new ones are allocated). If the sizes do not
 * tell, all are kept as storage files until the snapshot goes, to be safe.
 */
static void
manager_recover_spares (BsManager *self, BsSnapshot *snapshot)
{
	BsStateRecord *record = bs_snapshot_get_record (snapshot);
	g_autoptr(GPtrArray) spares = g_steal_pointer (&record->spares);
	guint64 files_bytes = 0;
	BsSpareFate fate;

	record->spares = g_ptr_array_new_with_free_func (g_free);
	if (spares->len == 0)
		return;
	for (guint i = 0; i < record->files->len; i++)
		files_bytes += file_size (g_ptr_array_index (record->files, i));
	fate = bs_state_spare_fate (bs_snapshot_get_allocated (snapshot), files_bytes,
	                            file_size (g_ptr_array_index (spares, 0)));
	for (guint i = 0; i < spares->len; i++) {
		gchar *spare = g_ptr_array_index (spares, i);
		g_autoptr(GError) error = NULL;

		if (fate == BS_SPARE_UNKNOWN) {
			bs_snapshot_log (snapshot, G_LOG_LEVEL_WARNING,
			                 "cannot tell whether the module has the spare %s "
			                 "(%" G_GUINT64_FORMAT " bytes in the kernel, %"
			                 G_GUINT64_FORMAT " in the files): keeping it until the "
			                 "snapshot goes", spare, bs_snapshot_get_allocated (snapshot),
			                 files_bytes);
			g_ptr_array_add (record->files, g_strdup (spare));
		} else if (i == 0 && fate == BS_SPARE_APPENDED) {
			bs_snapshot_log (snapshot, G_LOG_LEVEL_MESSAGE,
			                 "the module has the spare %s: adopting it", spare);
			g_ptr_array_add (record->files, g_strdup (spare));
		} else {
			bs_snapshot_log (snapshot, G_LOG_LEVEL_MESSAGE, "removing unused spare %s",
			                 spare);
			if (!bs_storage_file_remove (spare, &error))
				g_warning ("%s", error->message);
		}
	}
}

/*
 * Storage files in the storage directory that belong to no snapshot the
 * kernel has are orphans of a crash: remove them. A file of a live
 * snapshot the state file does not list (the daemon died between
 * appending and saving) is adopted: the module may be writing to it.
 */
static void
manager_collect_storage_files (BsManager *self)
{
	g_autoptr(GDir) dir = g_dir_open (self->config->storage_dir, 0, NULL);
	const gchar *name;

	if (dir == NULL)
		return;
	while ((name = g_dir_read_name (dir)) != NULL) {
		g_autofree gchar *path = g_build_filename (self->config->storage_dir, name, NULL);
		BsSnapshot *snapshot;
		BsStateRecord *record;
		gchar hex[33];
		gboolean listed = FALSE;

		if (!storage_file_id (name, hex))
			continue;
		snapshot = g_hash_table_lookup (self->snapshots, hex);
		if (snapshot == NULL) {
			g_autoptr(GError) error = NULL;

			g_message ("removing orphan storage file %s", path);
			if (!bs_storage_file_remove (path, &error))
				g_warning ("%s", error->message);
			continue;
		}
		record = bs_snapshot_get_record (snapshot);
		for (guint i = 0; i < record->files->len; i++)
			listed |= g_strcmp0 (g_ptr_array_index (record->files, i), path) == 0;
		for (guint i = 0; i < record->spares->len; i++)
			listed |= g_strcmp0 (g_ptr_array_index (record->spares, i), path) == 0;
		if (!listed) {
			bs_snapshot_log (snapshot, G_LOG_LEVEL_MESSAGE, "adopting storage file %s", path);
			g_ptr_array_add (record->files, g_steal_pointer (&path));
		}
	}
}

static gboolean
manager_recover (BsManager *self, GError **error)
{
	g_autoptr(GPtrArray) records = NULL;
	g_autoptr(GArray) ids = NULL;
	g_autoptr(GError) error_list = NULL;

	records = bs_state_load (self->state_path, error);
	if (records == NULL)
		return FALSE;
	ids = bs_control_snapshot_list (self->control, &error_list);
	if (ids == NULL) {
		/* without the module no snapshot survives: clean everything */
		if (!g_error_matches (error_list, BS_ERROR, BS_ERROR_MODULE_NOT_LOADED)) {
			g_propagate_error (error, g_steal_pointer (&error_list));
			return FALSE;
		}
		ids = g_array_new (FALSE, FALSE, sizeof (BsUuid));
	}

	for (guint i = 0; i < ids->len; i++) {
		BsUuid *id = &g_array_index (ids, BsUuid, i);
		g_autoptr(BsStateRecord) record = NULL;
		g_autoptr(BsSnapshot) snapshot = NULL;
		g_autoptr(GError) error_refresh = NULL;

		for (guint j = 0; j < records->len; j++) {
			BsStateRecord *r = g_ptr_array_index (records, j);
			if (memcmp (r->id.b, id->b, sizeof (id->b)) == 0) {
				record = g_ptr_array_steal_index (records, j);
				break;
			}
		}
		if (record == NULL) {
			/* made by someone else, or we died before saving: keep it,
			 * as root's, so an administrator can destroy it */
			record = bs_state_record_new (id);
			record->created_us = g_get_real_time ();
			record->limit = self->config->limit;
			record->grow_step = self->config->grow_step;
		}
		snapshot = bs_snapshot_new (self->control, self->config->storage_dir,
		                            g_steal_pointer (&record));
		if (!bs_snapshot_refresh (snapshot, &error_refresh)) {
			g_warning ("snapshot vanished during recovery: %s", error_refresh->message);
			continue;
		}
		bs_snapshot_log (snapshot, G_LOG_LEVEL_MESSAGE, "adopted (%s, owner uid %u)",
		                 bs_snapshot_get_state_string (snapshot),
		                 bs_snapshot_get_record (snapshot)->owner);
		manager_recover_spares (self, snapshot);
		manager_add_snapshot (self, snapshot);
	}

	/* what is left in the state is gone from the kernel */
	for (guint j = 0; j < records->len; j++) {
		BsStateRecord *r = g_ptr_array_index (records, j);
		g_autofree gchar *id = bs_uuid_to_string (&r->id);

		g_ptr_array_extend_and_steal (r->files, g_steal_pointer (&r->spares));
		r->spares = g_ptr_array_new_with_free_func (g_free);
		g_message ("snapshot %s is gone from the kernel: removing its %u storage file(s)",
		           id, r->files->len);
		for (guint k = 0; k < r->files->len; k++) {
			g_autoptr(GError) error_rm = NULL;
			if (!bs_storage_file_remove (g_ptr_array_index (r->files, k), &error_rm))
				g_warning ("%s", error_rm->message);
		}
	}
	manager_collect_storage_files (self);
	if (!bs_manager_save_state (self, error))
		return FALSE;
	/* new spares for the adopted snapshots, in the background */
	{
		g_autoptr(GList) snapshots = bs_manager_get_snapshots (self);

		for (GList *l = snapshots; l != NULL; l = l->next)
			bs_snapshot_refill_spare_async (l->data, NULL, NULL);
	}
	return TRUE;
}

/* ------------------------------------------------------------ lifecycle */

void
bs_manager_refresh (BsManager *self)
{
	struct blksnap_version v;
	g_autofree gchar *version = NULL;
	GList *snapshots = bs_manager_get_snapshots (self);

	if (bs_control_version (self->control, &v, NULL))
		version = g_strdup_printf ("%u.%u.%u.%u", v.major, v.minor, v.revision, v.build);
	if (g_strcmp0 (version, self->module_version) != 0) {
		g_free (self->module_version);
		self->module_version = g_steal_pointer (&version);
		g_signal_emit (self, signals[SIGNAL_CHANGED], 0);
	}
	for (GList *l = snapshots; l != NULL; l = l->next) {
		g_autoptr(GError) error = NULL;

		if (!bs_snapshot_refresh (l->data, &error) &&
		    g_error_matches (error, BS_ERROR, BS_ERROR_NOT_FOUND)) {
			bs_snapshot_log (l->data, G_LOG_LEVEL_WARNING, "gone from the kernel");
			manager_remove_snapshot (self, l->data);
		}
	}
	g_list_free (snapshots);
	manager_refresh_devices (self);
}

static gboolean
manager_refresh_cb (gpointer user_data)
{
	bs_manager_refresh (BS_MANAGER (user_data));
	return G_SOURCE_CONTINUE;
}

/**
 * bs_manager_start:
 *
 * Checks the storage directory, recovers snapshots and state, and starts
 * keeping things current. Fails, changing nothing, if the storage
 * directory is unfit or the state file is unreadable.
 */
gboolean
bs_manager_start (BsManager *self, GError **error)
{
	if (!bs_storage_prepare_dir (self->config->storage_dir, TRUE, error))
		return FALSE;
	if (!manager_recover (self, error))
		return FALSE;
	bs_manager_refresh (self);
	self->refresh_id = g_timeout_add_seconds (REFRESH_INTERVAL_S, manager_refresh_cb, self);
	return TRUE;
}

/**
 * bs_manager_new:
 * @config: (transfer full): the configuration
 * @state_path: the state file
 */
BsManager *
bs_manager_new (BsConfig *config, BsControl *control, const gchar *state_path)
{
	BsManager *self = g_object_new (BS_TYPE_MANAGER, NULL);

	self->config = config;
	self->control = g_object_ref (control);
	self->state_path = g_strdup (state_path);
	return self;
}

static void
bs_manager_finalize (GObject *object)
{
	BsManager *self = BS_MANAGER (object);
	GHashTableIter iter;
	gpointer value;

	if (self->refresh_id != 0)
		g_source_remove (self->refresh_id);
	g_hash_table_iter_init (&iter, self->expiries);
	while (g_hash_table_iter_next (&iter, NULL, &value))
		g_source_remove (GPOINTER_TO_UINT (value));
	g_hash_table_unref (self->expiries);
	/* snapshots outlive the daemon: they are adopted on the next start */
	g_hash_table_unref (self->snapshots);
	g_hash_table_unref (self->devices);
	g_object_unref (self->control);
	bs_config_free (self->config);
	g_free (self->state_path);
	g_free (self->module_version);
	G_OBJECT_CLASS (bs_manager_parent_class)->finalize (object);
}

static void
bs_manager_init (BsManager *self)
{
	self->snapshots = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
	self->devices = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
	                                       (GDestroyNotify) device_info_free);
	self->expiries = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

static void
bs_manager_class_init (BsManagerClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS (klass);

	object_class->finalize = bs_manager_finalize;
	signals[SIGNAL_SNAPSHOT_ADDED] =
		g_signal_new ("snapshot-added", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
		              NULL, NULL, NULL, G_TYPE_NONE, 1, BS_TYPE_SNAPSHOT);
	signals[SIGNAL_SNAPSHOT_REMOVED] =
		g_signal_new ("snapshot-removed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
		              NULL, NULL, NULL, G_TYPE_NONE, 1, BS_TYPE_SNAPSHOT);
	signals[SIGNAL_DEVICES_CHANGED] =
		g_signal_new ("devices-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
		              NULL, NULL, NULL, G_TYPE_NONE, 0);
	signals[SIGNAL_CHANGED] =
		g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
		              NULL, NULL, G_TYPE_NONE, 0);
}
