/* SPDX-License-Identifier: GPL-2.0-or-later */

#define G_LOG_DOMAIN "blksnapd"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "bs-error.h"
#include "bs-options.h"
#include "bs-snapshot.h"
#include "bs-storage.h"
#include "bs-watcher.h"

struct _BsSnapshot {
	GObject parent_instance;
	BsControl *control;
	gchar *storage_dir;
	BsStateRecord *record;
	gchar *id_string;
	gchar *id_hex;
	GArray *devices;                    /* BsDev */
	struct blksnap_snapshot_info info;  /* as last refreshed */
	GHashTable *images;                 /* "MAJ:MIN" -> "/dev/NAME" */
	guint64 pending;                    /* bytes being appended */
	BsSpares *spares;                   /* allocated ahead; record->spares names
	                                     * them, and the one being allocated */
	guint64 refill_size;                /* a spare being allocated, or 0 */
	gboolean spare_wanted;              /* an event waits for that spare */
	GPtrArray *refill_waiters;          /* GTasks returned when it is done */
	GPtrArray *inflight;                /* GrowData of the workers running */
	guint64 minimum;                    /* the module's low-space mark, bytes */
	guint file_seq;
	guint reserve_percent;
	guint64 reserve_bytes;
	BsWatcher *watcher;
	guint64 low_space_ns;               /* event not yet answered, ktime */
	guint64 event_read_ns;              /* when the watcher read it */
	guint64 event_handled_ns;           /* when the main loop saw it */
	guint64 deferred_ns;                /* event that came during a growth */
	guint64 deferred_read_ns;
	guint64 deferred_handled_ns;
	gboolean destroyed;
};

enum {
	SIGNAL_CHANGED,
	SIGNAL_LOW_SPACE,
	SIGNAL_STORAGE_APPENDED,
	SIGNAL_CORRUPTED,
	SIGNAL_VANISHED,
	SIGNAL_RECORD_CHANGED,
	SIGNAL_LAST
};
static guint signals[SIGNAL_LAST];

G_DEFINE_TYPE (BsSnapshot, bs_snapshot, G_TYPE_OBJECT)

void
bs_snapshot_log (BsSnapshot *self, GLogLevelFlags level, const gchar *format, ...)
{
	g_autofree gchar *msg = NULL;
	va_list args;

	va_start (args, format);
	msg = g_strdup_vprintf (format, args);
	va_end (args);
	/* BLKSNAP_SNAPSHOT lets `journalctl BLKSNAP_SNAPSHOT=ID` find it all */
	g_log_structured (G_LOG_DOMAIN, level, "BLKSNAP_SNAPSHOT", self->id_string,
	                  "MESSAGE", "snapshot %s: %s", self->id_string, msg);
}

/* --------------------------------------------------------------- getters */

const BsUuid *
bs_snapshot_get_id (BsSnapshot *self)
{
	return &self->record->id;
}

const gchar *
bs_snapshot_get_id_string (BsSnapshot *self)
{
	return self->id_string;
}

const gchar *
bs_snapshot_get_id_hex (BsSnapshot *self)
{
	return self->id_hex;
}

BsStateRecord *
bs_snapshot_get_record (BsSnapshot *self)
{
	return self->record;
}

GArray *
bs_snapshot_get_devices (BsSnapshot *self)
{
	return self->devices;
}

guint32
bs_snapshot_get_state (BsSnapshot *self)
{
	return self->info.state;
}

const gchar *
bs_snapshot_get_state_string (BsSnapshot *self)
{
	switch (self->info.state) {
	case BLKSNAP_SNAPSHOT_CREATED:
		return "created";
	case BLKSNAP_SNAPSHOT_TAKEN:
		return "taken";
	case BLKSNAP_SNAPSHOT_CORRUPTED:
		return "corrupted";
	default:
		return "unknown";
	}
}

gint32
bs_snapshot_get_error (BsSnapshot *self)
{
	return self->info.error;
}

GHashTable *
bs_snapshot_get_images (BsSnapshot *self)
{
	return self->images;
}

guint64
bs_snapshot_get_allocated (BsSnapshot *self)
{
	return self->info.storage_sectors * 512;
}

guint64
bs_snapshot_get_used (BsSnapshot *self)
{
	return self->info.storage_used * 512;
}

/* Bytes allocated ahead and not handed to the module yet. */
guint64
bs_snapshot_get_spare (BsSnapshot *self)
{
	guint64 ready;
	guint count;

	bs_spares_count (self->spares, &count, &ready);
	return ready;
}

gboolean
bs_snapshot_has_device (BsSnapshot *self, const BsDev *dev)
{
	for (guint i = 0; i < self->devices->len; i++) {
		if (bs_dev_equal (&g_array_index (self->devices, BsDev, i), dev))
			return TRUE;
	}
	return FALSE;
}

void
bs_snapshot_set_reserve (BsSnapshot *self, const BsConfig *config)
{
	self->reserve_percent = config->reserve_percent;
	self->reserve_bytes = config->reserve_bytes;
}

/* --------------------------------------------------------------- refresh */

static gboolean
snapshot_refresh_images (BsSnapshot *self, gboolean *changed)
{
	for (guint i = 0; i < self->devices->len; i++) {
		BsDev *dev = &g_array_index (self->devices, BsDev, i);
		struct blksnap_image_info ii;
		g_autofree gchar *key = bs_dev_to_string (dev);
		g_autofree gchar *node = NULL;
		const gchar *old;

		if (!bs_control_image_info (self->control, dev, &ii, NULL))
			continue;
		ii.name[BLKSNAP_IMAGE_NAME_LEN - 1] = '\0';
		if (ii.name[0] == '\0')
			continue;
		node = g_strconcat ("/dev/", ii.name, NULL);
		old = g_hash_table_lookup (self->images, key);
		if (g_strcmp0 (old, node) != 0) {
			g_hash_table_insert (self->images, g_steal_pointer (&key),
			                     g_steal_pointer (&node));
			*changed = TRUE;
		}
	}
	return TRUE;
}

/**
 * bs_snapshot_refresh:
 *
 * Reads the kernel's state of the snapshot and emits ::changed if it
 * differs. Fails with %BS_ERROR_NOT_FOUND when the kernel no longer has
 * it.
 */
gboolean
bs_snapshot_refresh (BsSnapshot *self, GError **error)
{
	struct blksnap_snapshot_info info;
	g_autoptr(GArray) devs = NULL;
	gboolean changed = FALSE;

	if (self->destroyed) {
		g_set_error (error, BS_ERROR, BS_ERROR_NOT_FOUND, "snapshot %s is destroyed",
		             self->id_string);
		return FALSE;
	}
	if (!bs_control_snapshot_info (self->control, &self->record->id, &info, &devs, error))
		return FALSE;
	if (info.state != self->info.state || info.error != self->info.error ||
	    info.storage_sectors != self->info.storage_sectors ||
	    info.storage_used != self->info.storage_used)
		changed = TRUE;
	self->info = info;
	self->info.devices = 0;
	if (devs->len != self->devices->len ||
	    memcmp (devs->data, self->devices->data, devs->len * sizeof (BsDev)) != 0) {
		g_array_set_size (self->devices, 0);
		g_array_append_vals (self->devices, devs->data, devs->len);
		changed = TRUE;
	}
	if (info.state != BLKSNAP_SNAPSHOT_CREATED)
		snapshot_refresh_images (self, &changed);
	if (changed)
		g_signal_emit (self, signals[SIGNAL_CHANGED], 0);
	return TRUE;
}

/* ---------------------------------------------------------------- growth */

/*
 * How storage grows. Allocating a file (create, fallocate, fsync, FIEMAP)
 * takes hundreds of milliseconds when the disk is busy, and a low-space
 * event means the disk is busy: so each snapshot keeps spare files
 * allocated ahead, and the answer to an event is just the append ioctl
 * with the oldest spare's extents. A new spare is then allocated in the
 * background. One spare is the size of an automatic growth; there are
 * as many as it takes to hold twice the module's threshold (one, with the
 * defaults; at most SPARES_MAX): the threshold is what the module expects
 * to be written while it waits for an answer, so the next event finds a
 * spare even if the refill after this one is slow. Spares count against
 * the limit and the reserve (made only when they fit, dropped when an
 * explicit growth needs their room); the state file names them, so a
 * restarted daemon removes or adopts them.
 */
#define SPARES_MAX 4

/*
 * One allocation and/or append in a worker thread. The worker creates the
 * file too (creating a file may wait for the journal as long as fsync
 * does), so a destroy meanwhile must either see the file and remove it,
 * or keep the worker from creating it: @lock orders the two.
 */
typedef struct {
	BsControl *control;
	BsUuid id;
	gchar *dir;
	gchar *name;
	gchar *path;
	guint64 size;
	GMutex lock;
	gboolean cancelled;     /* under @lock: the snapshot was destroyed */
	BsStorageFile *file;    /* made by the worker unless given */
	gboolean fill;          /* allocate the file first */
	gboolean append;        /* hand it to the module */
	gboolean spare;         /* it is a spare, named @path in the record */
	guint64 queued_ns;      /* CLOCK_MONOTONIC when the work was asked for */
	guint64 started_ns;     /* when the worker thread began */
	guint64 append_ns;      /* before the append ioctl */
	guint64 appended_ns;    /* and once the module took it */
} GrowData;

static void
grow_data_free (GrowData *data)
{
	g_object_unref (data->control);
	g_free (data->dir);
	g_free (data->name);
	g_free (data->path);
	g_mutex_clear (&data->lock);
	bs_storage_file_free (data->file);
	g_free (data);
}

static void snapshot_answer_low_space (BsSnapshot *self, guint64 requested);
static void snapshot_refill_spare (BsSnapshot *self, GTask *outer);

/* Milliseconds from @from_ns to @to_ns, negative if earlier. */
#define MS(to_ns, from_ns) ((gdouble) (gint64) ((to_ns) - (from_ns)) / 1e6)

/* Worker thread: allocate the file and/or hand its extents to the module. */
static void
storage_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
	GrowData *data = task_data;
	GError *error = NULL;

	data->started_ns = bs_monotonic_ns ();
	if (data->file == NULL) {
		g_mutex_lock (&data->lock);
		if (data->cancelled)
			g_set_error_literal (&error, BS_ERROR, BS_ERROR_NOT_FOUND,
			                     "the snapshot was destroyed");
		else
			data->file = bs_storage_file_create (data->dir, data->name, data->size,
			                                     &error);
		g_mutex_unlock (&data->lock);
		if (data->file == NULL) {
			g_task_return_error (task, error);
			return;
		}
	}
	if (data->fill && !bs_storage_file_fill (data->file, &error)) {
		g_task_return_error (task, error);
		return;
	}
	if (data->append) {
		data->append_ns = bs_monotonic_ns ();
		if (!bs_control_snapshot_append_storage (data->control, &data->id,
		                                         &data->file->dev,
		                                         (struct blksnap_sectors *)
		                                         data->file->ranges->data,
		                                         data->file->ranges->len, &error)) {
			/* the module took none of it (it checks all ranges first) */
			bs_storage_file_remove (data->file->path, NULL);
			g_task_return_error (task, error);
			return;
		}
		data->appended_ns = bs_monotonic_ns ();
	}
	g_task_return_boolean (task, TRUE);
}

/*
 * @file: (transfer full) (nullable): a file to append, or %NULL to
 *   create and fill @name of @size bytes first
 */
static GrowData *
grow_data_new (BsSnapshot *self, BsStorageFile *file, const gchar *name, guint64 size,
               gboolean append)
{
	GrowData *data = g_new0 (GrowData, 1);

	data->control = g_object_ref (self->control);
	data->id = self->record->id;
	g_mutex_init (&data->lock);
	if (file != NULL) {
		data->path = g_strdup (file->path);
		data->size = file->size;
	} else {
		data->dir = g_strdup (self->storage_dir);
		data->name = g_strdup (name);
		data->path = g_build_filename (self->storage_dir, name, NULL);
		data->size = size;
		data->fill = TRUE;
	}
	data->file = file;
	data->append = append;
	data->queued_ns = bs_monotonic_ns ();
	/* so that a destroy can stop it */
	g_ptr_array_add (self->inflight, data);
	return data;
}

/* Keeps the worker from creating its file, or removes it (main loop). */
static void
grow_data_cancel (GrowData *data)
{
	g_mutex_lock (&data->lock);
	data->cancelled = TRUE;
	/* a worker still filling it holds an fd: the blocks go with it */
	bs_storage_file_remove (data->path, NULL);
	g_mutex_unlock (&data->lock);
}

/* A new file's name: the id in it lets recovery tell whose file it is
 * even if the daemon died before writing the state file. (A spare is
 * named like any other: whether the module has it is in the record.) */
static gchar *
snapshot_file_name (BsSnapshot *self)
{
	return g_strdup_printf ("%s-%u-%" G_GINT64_FORMAT BS_STORAGE_SUFFIX, self->id_hex,
	                        self->file_seq++, g_get_real_time ());
}

/* Bytes the limit still allows, counting what is under way. */
static guint64
snapshot_room (BsSnapshot *self)
{
	guint64 taken = bs_snapshot_get_allocated (self) + self->pending;

	if (self->record->limit == 0)
		return G_MAXUINT64;
	return self->record->limit - MIN (self->record->limit, taken);
}

/* Forgets @path as a spare in the record. */
static void
snapshot_forget_spare (BsSnapshot *self, const gchar *path)
{
	for (guint i = 0; i < self->record->spares->len; i++) {
		if (g_strcmp0 (g_ptr_array_index (self->record->spares, i), path) == 0) {
			g_ptr_array_remove_index (self->record->spares, i);
			break;
		}
	}
}

/* Bytes of the spares, ready and being allocated. */
static guint64
snapshot_spares_bytes (BsSnapshot *self)
{
	return bs_snapshot_get_spare (self) + self->refill_size;
}

/* Removes the newest ready spare (not appended) and forgets it. */
static gboolean
snapshot_drop_spare (BsSnapshot *self, const gchar *why)
{
	g_autoptr(BsStorageFile) file = bs_spares_take (self->spares, TRUE, FALSE);
	g_autoptr(GError) error = NULL;

	if (file == NULL)
		return FALSE;
	bs_snapshot_log (self, G_LOG_LEVEL_INFO, "dropping a spare of %" G_GUINT64_FORMAT
	                 " MiB: %s", file->size / BS_MIB, why);
	if (!bs_storage_file_remove (file->path, &error))
		bs_snapshot_log (self, G_LOG_LEVEL_WARNING, "%s", error->message);
	snapshot_forget_spare (self, file->path);
	g_signal_emit (self, signals[SIGNAL_RECORD_CHANGED], 0);
	return TRUE;
}

/* Drops spares until they fit under the limit again (an explicit growth
 * took the room they were kept in). */
static void
snapshot_trim_spares (BsSnapshot *self)
{
	while (snapshot_spares_bytes (self) > snapshot_room (self) &&
	       snapshot_drop_spare (self, "the limit has no room for it any more"))
		;
}

/* The free space of the storage filesystem beyond its reserve. */
static gboolean
snapshot_fs_room (BsSnapshot *self, guint64 *room, guint64 *free_out, guint64 *reserve_out,
                  GError **error)
{
	guint64 free_bytes, fs_bytes, reserve;

	if (!bs_storage_fs_space (self->storage_dir, &free_bytes, &fs_bytes, error))
		return FALSE;
	reserve = self->reserve_percent > 0 ? fs_bytes / 100 * self->reserve_percent
	                                    : self->reserve_bytes;
	*room = free_bytes > reserve ? free_bytes - reserve : 0;
	if (free_out != NULL)
		*free_out = free_bytes;
	if (reserve_out != NULL)
		*reserve_out = reserve;
	return TRUE;
}

static void
grow_thread_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
	BsSnapshot *self = BS_SNAPSHOT (source);
	g_autoptr(GTask) outer = G_TASK (user_data);
	GrowData *data = g_task_get_task_data (G_TASK (res));
	BsStorageFile *file = data->file;
	GError *error = NULL;

	g_ptr_array_remove_fast (self->inflight, data);
	self->pending -= data->size;
	if (!g_task_propagate_boolean (G_TASK (res), &error)) {
		bs_snapshot_log (self, G_LOG_LEVEL_WARNING, "cannot add %" G_GUINT64_FORMAT
		                 " MiB of storage%s: %s", data->size / BS_MIB,
		                 data->spare ? " from the spare" : "", error->message);
		if (data->spare) {
			snapshot_forget_spare (self, data->path);
			g_signal_emit (self, signals[SIGNAL_RECORD_CHANGED], 0);
		}
		self->low_space_ns = 0;
		self->deferred_ns = 0;
		g_task_return_error (outer, error);
		return;
	}
	if (self->destroyed) {
		/* removed by grow_data_cancel() */
		g_task_return_new_error (outer, BS_ERROR, BS_ERROR_NOT_FOUND,
		                         "snapshot %s was destroyed", self->id_string);
		return;
	}
	if (data->spare)
		snapshot_forget_spare (self, data->path);
	g_ptr_array_add (self->record->files, g_strdup (file->path));
	bs_snapshot_refresh (self, NULL);
	bs_snapshot_log (self, G_LOG_LEVEL_MESSAGE,
	                 "added %" G_GUINT64_FORMAT " MiB of storage%s (%u ranges on %u:%u), "
	                 "%" G_GUINT64_FORMAT " MiB in all", file->size / BS_MIB,
	                 data->spare ? " from the spare" : "", file->ranges->len,
	                 file->dev.major, file->dev.minor,
	                 bs_snapshot_get_allocated (self) / BS_MIB);
	if (self->low_space_ns != 0) {
		/* how long the module waited for more room, and where it went */
		bs_snapshot_log (self, G_LOG_LEVEL_MESSAGE,
		                 "low-space event answered in %.1f ms (read by the watcher "
		                 "%.1f, main loop %.1f, worker %.1f, fallocate %.1f, fsync %.1f, "
		                 "FIEMAP %.1f, append %.1f)",
		                 MS (data->appended_ns, self->low_space_ns),
		                 MS (self->event_read_ns, self->low_space_ns),
		                 MS (self->event_handled_ns, self->event_read_ns),
		                 MS (data->started_ns, data->queued_ns),
		                 data->fill ? file->fallocate_ns / 1e6 : 0.0,
		                 data->fill ? file->fsync_ns / 1e6 : 0.0,
		                 data->fill ? file->fiemap_ns / 1e6 : 0.0,
		                 MS (data->appended_ns, data->append_ns));
		self->low_space_ns = 0;
	}
	/* the manager saves the state */
	g_signal_emit (self, signals[SIGNAL_STORAGE_APPENDED], 0, file->size,
	               bs_snapshot_get_allocated (self));
	snapshot_trim_spares (self);
	snapshot_refill_spare (self, NULL);
	/*
	 * The module re-arms its low-space event with each append and raises
	 * it once per crossing: an event raised after this append started
	 * will not come again, so it must be answered now, or the snapshot
	 * may overflow with room left to grow. (An event from before the
	 * append is answered by it.)
	 */
	if (self->deferred_ns > data->append_ns) {
		self->low_space_ns = self->deferred_ns;
		self->event_read_ns = self->deferred_read_ns;
		self->event_handled_ns = self->deferred_handled_ns;
		self->deferred_ns = 0;
		bs_snapshot_log (self, G_LOG_LEVEL_MESSAGE,
		                 "the module asked for more during that growth: growing again");
		snapshot_answer_low_space (self, 0);
	}
	self->deferred_ns = 0;
	g_task_return_boolean (outer, TRUE);
}

static void
snapshot_auto_grow_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
	/* logged by grow_thread_done; corruption follows if it was needed */
	bs_snapshot_grow_finish (BS_SNAPSHOT (source), res, NULL);
}

/* Hands the oldest spare to the module (from the main loop: when a spare
 * comes after the event). */
static gboolean
snapshot_append_spare (BsSnapshot *self)
{
	BsStorageFile *file = bs_spares_take (self->spares, FALSE, FALSE);
	GTask *outer;
	g_autoptr(GTask) task = NULL;
	GrowData *data;

	if (file == NULL)
		return FALSE;
	outer = g_task_new (self, NULL, snapshot_auto_grow_done, NULL);
	task = g_task_new (self, NULL, grow_thread_done, outer);
	data = grow_data_new (self, file, NULL, 0, TRUE);
	data->spare = TRUE;
	self->pending += file->size;
	g_task_set_task_data (task, data, (GDestroyNotify) grow_data_free);
	g_task_run_in_thread (task, storage_thread);
	return TRUE;
}

/* Without a spare: the grow step (or what the module asks for, if more),
 * within the limit, allocated now. */
static void
snapshot_auto_grow (BsSnapshot *self, guint64 requested)
{
	guint64 size = MAX (self->record->grow_step, MAX (requested, self->minimum));

	size = MIN (size, snapshot_room (self));

	if (size == 0) {
		self->low_space_ns = 0;
		bs_snapshot_log (self, G_LOG_LEVEL_WARNING,
		                 "cannot grow: the limit of %" G_GUINT64_FORMAT " MiB is reached",
		                 self->record->limit / BS_MIB);
		return;
	}
	bs_snapshot_grow_async (self, size, snapshot_auto_grow_done, NULL);
}

/* The answer to a low-space event (self->low_space_ns is set). */
static void
snapshot_answer_low_space (BsSnapshot *self, guint64 requested)
{
	snapshot_trim_spares (self);
	if (snapshot_append_spare (self))
		return;
	if (self->refill_size > 0) {
		/* it is the quickest way to more room */
		bs_snapshot_log (self, G_LOG_LEVEL_MESSAGE,
		                 "waiting for the spare being allocated");
		self->spare_wanted = TRUE;
		return;
	}
	snapshot_auto_grow (self, requested);
}

static void
refill_thread_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
	BsSnapshot *self = BS_SNAPSHOT (source);
	g_autoptr(GPtrArray) waiters = g_steal_pointer (&self->refill_waiters);
	GrowData *data = g_task_get_task_data (G_TASK (res));
	g_autoptr(BsStorageFile) file = g_steal_pointer (&data->file);
	g_autoptr(GError) error = NULL;
	gboolean wanted = self->spare_wanted;

	g_ptr_array_remove_fast (self->inflight, data);
	self->refill_size = 0;
	self->spare_wanted = FALSE;
	if (self->destroyed) {
		/* removed by grow_data_cancel() */
	} else if (!g_task_propagate_boolean (G_TASK (res), &error)) {
		bs_snapshot_log (self, G_LOG_LEVEL_WARNING, "cannot allocate a spare of %"
		                 G_GUINT64_FORMAT " MiB: %s", data->size / BS_MIB, error->message);
		snapshot_forget_spare (self, data->path);
		g_signal_emit (self, signals[SIGNAL_RECORD_CHANGED], 0);
		/* no retry until the next growth: the same would likely fail */
		if (wanted)
			snapshot_auto_grow (self, 0);
	} else {
		bs_snapshot_log (self, G_LOG_LEVEL_INFO,
		                 "spare of %" G_GUINT64_FORMAT " MiB ready in %.1f ms (fallocate "
		                 "%.1f, fsync %.1f, FIEMAP %.1f)", file->size / BS_MIB,
		                 MS (bs_monotonic_ns (), data->queued_ns), file->fallocate_ns / 1e6,
		                 file->fsync_ns / 1e6, file->fiemap_ns / 1e6);
		if (snapshot_spares_bytes (self) + file->size > snapshot_room (self)) {
			/* an explicit growth took the room meanwhile: not handed
			 * to the watcher even for a moment */
			bs_snapshot_log (self, G_LOG_LEVEL_INFO, "dropping the new spare: the "
			                 "limit has no room for it any more");
			bs_storage_file_remove (file->path, NULL);
			snapshot_forget_spare (self, file->path);
			g_signal_emit (self, signals[SIGNAL_RECORD_CHANGED], 0);
		} else {
			bs_spares_add (self->spares, g_steal_pointer (&file));
			/* StorageSpare */
			g_signal_emit (self, signals[SIGNAL_CHANGED], 0);
		}
		if (wanted)
			snapshot_answer_low_space (self, 0);
		/* the next one, if more are kept */
		snapshot_refill_spare (self, NULL);
	}
	for (guint i = 0; waiters != NULL && i < waiters->len; i++)
		g_task_return_boolean (g_ptr_array_index (waiters, i), TRUE);
}

/* How many spares to keep: see the top of this section. */
static guint
snapshot_spares_wanted (BsSnapshot *self, guint64 size)
{
	guint64 want = 2 * self->minimum;

	return CLAMP ((want + size - 1) / MAX (size, 1), 1, SPARES_MAX);
}

/*
 * Allocates a spare in the background if the snapshot has fewer than it
 * keeps: the size of an automatic growth, if the limit and the
 * filesystem's reserve leave room for it (else smaller, or none). @outer,
 * if given, returns when a spare is ready or known not to come (joining a
 * refill under way); it never fails: a snapshot works without a spare,
 * only slower to answer.
 */
static void
snapshot_refill_spare (BsSnapshot *self, GTask *outer)
{
	g_autoptr(GTask) outer_owned = outer;
	g_autoptr(GTask) task = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *name = NULL;
	guint64 size, fs_room, ready;
	guint count;

	if (self->refill_size > 0) {
		if (outer_owned != NULL) {
			if (self->refill_waiters == NULL)
				self->refill_waiters = g_ptr_array_new_with_free_func (g_object_unref);
			g_ptr_array_add (self->refill_waiters, g_steal_pointer (&outer_owned));
		}
		return;
	}
	size = MAX (self->record->grow_step, self->minimum);
	bs_spares_count (self->spares, &count, &ready);
	if (self->destroyed || count >= snapshot_spares_wanted (self, size) ||
	    self->info.state == BLKSNAP_SNAPSHOT_CORRUPTED)
		goto done;
	size = MIN (size, snapshot_room (self) - MIN (snapshot_room (self),
	                                              snapshot_spares_bytes (self)));
	if (!snapshot_fs_room (self, &fs_room, NULL, NULL, &error)) {
		bs_snapshot_log (self, G_LOG_LEVEL_WARNING, "no spare: %s", error->message);
		goto done;
	}
	/* whole MiB, rounded down: never beyond the limit or the reserve */
	size = MIN (size, fs_room) & ~(BS_MIB - 1);
	if (size == 0)
		goto done;
	name = snapshot_file_name (self);
	/* named in the state before it exists: a crash leaves no unknown file */
	g_ptr_array_add (self->record->spares, g_build_filename (self->storage_dir, name, NULL));
	g_signal_emit (self, signals[SIGNAL_RECORD_CHANGED], 0);
	self->refill_size = size;
	if (outer_owned != NULL) {
		self->refill_waiters = g_ptr_array_new_with_free_func (g_object_unref);
		g_ptr_array_add (self->refill_waiters, g_steal_pointer (&outer_owned));
	}
	task = g_task_new (self, NULL, refill_thread_done, NULL);
	g_task_set_task_data (task, grow_data_new (self, NULL, name, size, FALSE),
	                      (GDestroyNotify) grow_data_free);
	g_task_run_in_thread (task, storage_thread);
	return;
done:
	if (outer_owned != NULL)
		g_task_return_boolean (outer_owned, TRUE);
}

/**
 * bs_snapshot_refill_spare_async:
 *
 * Allocates a spare file if the snapshot has fewer than it keeps and
 * there is room; finishes when one is ready (or will not come). Never
 * fails.
 */
void
bs_snapshot_refill_spare_async (BsSnapshot *self, GAsyncReadyCallback callback,
                                gpointer user_data)
{
	snapshot_refill_spare (self, g_task_new (self, NULL, callback, user_data));
}

gboolean
bs_snapshot_refill_spare_finish (BsSnapshot *self, GAsyncResult *res, GError **error)
{
	return g_task_propagate_boolean (G_TASK (res), error);
}

/* May @size more bytes be allocated? A spare in the way is dropped. */
static gboolean
snapshot_check_growth (BsSnapshot *self, guint64 size, GError **error)
{
	guint64 allocated = bs_snapshot_get_allocated (self) + self->pending;
	guint64 room, free_bytes, reserve;

	if (size > snapshot_room (self)) {
		g_set_error (error, BS_ERROR, BS_ERROR_NO_SPACE,
		             "the storage limit of %" G_GUINT64_FORMAT " MiB would be exceeded "
		             "(%" G_GUINT64_FORMAT " MiB allocated)",
		             self->record->limit / BS_MIB, allocated / BS_MIB);
		return FALSE;
	}
	if (!snapshot_fs_room (self, &room, &free_bytes, &reserve, error))
		return FALSE;
	while (size > room && snapshot_drop_spare (self, "a growth needs its room on the "
	                                            "filesystem")) {
		if (!snapshot_fs_room (self, &room, &free_bytes, &reserve, error))
			return FALSE;
	}
	if (size > room) {
		g_set_error (error, BS_ERROR, BS_ERROR_NO_SPACE,
		             "%s has %" G_GUINT64_FORMAT " MiB free; taking %" G_GUINT64_FORMAT
		             " MiB would eat into its reserve of %" G_GUINT64_FORMAT " MiB",
		             self->storage_dir, free_bytes / BS_MIB, size / BS_MIB,
		             reserve / BS_MIB);
		return FALSE;
	}
	return TRUE;
}

/**
 * bs_snapshot_grow_async:
 * @size: bytes to add, rounded up to whole MiB
 *
 * Allocates a new storage file in a worker thread and appends it. Refused
 * with %BS_ERROR_NO_SPACE beyond the limit or into the filesystem's
 * reserve.
 */
void
bs_snapshot_grow_async (BsSnapshot *self, guint64 size, GAsyncReadyCallback callback,
                        gpointer user_data)
{
	g_autoptr(GTask) outer = g_task_new (self, NULL, callback, user_data);
	g_autoptr(GTask) task = NULL;
	g_autofree gchar *name = NULL;
	GError *error = NULL;

	size = bs_size_round_mib (MIN (size, BS_SIZE_MAX));
	if (self->destroyed) {
		g_task_return_new_error (outer, BS_ERROR, BS_ERROR_NOT_FOUND,
		                         "snapshot %s is destroyed", self->id_string);
		return;
	}
	if (size == 0) {
		g_task_return_new_error (outer, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		                         "cannot add 0 bytes of storage");
		return;
	}
	if (!snapshot_check_growth (self, size, &error)) {
		g_task_return_error (outer, error);
		return;
	}
	/* the watcher may append a spare any time: the spares must fit in
	 * what the limit leaves after this growth */
	while (snapshot_spares_bytes (self) + size > snapshot_room (self) &&
	       snapshot_drop_spare (self, "a growth needs its room under the limit"))
		;
	name = snapshot_file_name (self);
	self->pending += size;
	task = g_task_new (self, NULL, grow_thread_done, g_steal_pointer (&outer));
	g_task_set_task_data (task, grow_data_new (self, NULL, name, size, TRUE),
	                      (GDestroyNotify) grow_data_free);
	g_task_run_in_thread (task, storage_thread);
}

gboolean
bs_snapshot_grow_finish (BsSnapshot *self, GAsyncResult *res, GError **error)
{
	return g_task_propagate_boolean (G_TASK (res), error);
}

/* ------------------------------------------------------------------ take */
/* ------------------------------------------------------------------ take */

static void
take_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
	BsSnapshot *self = BS_SNAPSHOT (source);
	GError *error = NULL;

	/* freezing filesystems may take a while: not on the main loop */
	if (!bs_control_snapshot_take (self->control, task_data, &error)) {
		g_task_return_error (task, error);
		return;
	}
	g_task_return_boolean (task, TRUE);
}

void
bs_snapshot_take_async (BsSnapshot *self, GAsyncReadyCallback callback, gpointer user_data)
{
	g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);

	if (self->destroyed) {
		g_task_return_new_error (task, BS_ERROR, BS_ERROR_NOT_FOUND,
		                         "snapshot %s is destroyed", self->id_string);
		return;
	}
	if (self->info.state != BLKSNAP_SNAPSHOT_CREATED) {
		g_task_return_new_error (task, BS_ERROR, BS_ERROR_BUSY,
		                         "snapshot %s is %s already", self->id_string,
		                         bs_snapshot_get_state_string (self));
		return;
	}
	g_task_set_task_data (task, g_memdup2 (&self->record->id, sizeof (BsUuid)), g_free);
	g_task_run_in_thread (task, take_thread);
}

gboolean
bs_snapshot_take_finish (BsSnapshot *self, GAsyncResult *res, GError **error)
{
	if (!g_task_propagate_boolean (G_TASK (res), error))
		return FALSE;
	bs_snapshot_refresh (self, NULL);
	bs_snapshot_log (self, G_LOG_LEVEL_MESSAGE, "taken");
	return TRUE;
}

/* --------------------------------------------------------------- watcher */

/* Main loop: the watcher appended a spare. */
static void
snapshot_spare_appended (BsSnapshot *self, BsWatcherEvent *ev)
{
	BsStorageFile *file = ev->spare;

	snapshot_forget_spare (self, file->path);
	g_ptr_array_add (self->record->files, g_strdup (file->path));
	bs_snapshot_refresh (self, NULL);
	/* now counted in the allocation */
	bs_spares_settle (self->spares, file->size);
	bs_snapshot_log (self, G_LOG_LEVEL_MESSAGE,
	                 "added %" G_GUINT64_FORMAT " MiB of storage from the spare (%u ranges "
	                 "on %u:%u), %" G_GUINT64_FORMAT " MiB in all", file->size / BS_MIB,
	                 file->ranges->len, file->dev.major, file->dev.minor,
	                 bs_snapshot_get_allocated (self) / BS_MIB);
	bs_snapshot_log (self, G_LOG_LEVEL_MESSAGE,
	                 "low-space event answered in %.1f ms by the watcher (read %.1f, "
	                 "append %.1f)", MS (ev->appended_ns, ev->event.time_label),
	                 MS (ev->read_ns, ev->event.time_label),
	                 MS (ev->appended_ns, ev->append_ns));
	/* the manager saves the state */
	g_signal_emit (self, signals[SIGNAL_STORAGE_APPENDED], 0, file->size,
	               bs_snapshot_get_allocated (self));
	snapshot_trim_spares (self);
	snapshot_refill_spare (self, NULL);
}

/* Main loop: what the watcher thread saw. */
static void
snapshot_handle_event (GObject *owner, BsWatcherEvent *ev)
{
	BsSnapshot *self = BS_SNAPSHOT (owner);
	guint64 handled_ns = bs_monotonic_ns ();

	if (self->destroyed)
		return;
	if (ev->vanished) {
		bs_snapshot_log (self, G_LOG_LEVEL_WARNING, "gone from the kernel");
		g_signal_emit (self, signals[SIGNAL_VANISHED], 0);
		return;
	}
	switch (ev->event.code) {
	case BLKSNAP_EVENT_LOW_FREE_SPACE: {
		guint64 free_bytes = ev->event.low_space.free_sectors * 512;
		guint64 requested = ev->event.low_space.requested_sectors * 512;

		self->minimum = MAX (self->minimum, requested);
		if (ev->spare != NULL && ev->append_error == NULL) {
			bs_snapshot_log (self, G_LOG_LEVEL_MESSAGE,
			                 "low on storage: %" G_GUINT64_FORMAT " MiB free, module asks "
			                 "for %" G_GUINT64_FORMAT " MiB; a spare was appended",
			                 free_bytes / BS_MIB, requested / BS_MIB);
			g_signal_emit (self, signals[SIGNAL_LOW_SPACE], 0, free_bytes, requested);
			snapshot_spare_appended (self, ev);
			break;
		}
		if (ev->spare != NULL) {
			/* the module took none of it: the main loop tries again */
			bs_snapshot_log (self, G_LOG_LEVEL_WARNING, "cannot append the spare %s: %s",
			                 ev->spare->path, ev->append_error->message);
			bs_storage_file_remove (ev->spare->path, NULL);
			snapshot_forget_spare (self, ev->spare->path);
			bs_spares_settle (self->spares, ev->spare->size);
			g_signal_emit (self, signals[SIGNAL_RECORD_CHANGED], 0);
		}
		if (self->pending > 0) {
			bs_snapshot_log (self, G_LOG_LEVEL_MESSAGE,
			                 "low on storage: %" G_GUINT64_FORMAT " MiB free, module asks "
			                 "for %" G_GUINT64_FORMAT " MiB; a growth is under way already",
			                 free_bytes / BS_MIB, requested / BS_MIB);
			if (ev->event.time_label > self->deferred_ns) {
				self->deferred_ns = ev->event.time_label;
				self->deferred_read_ns = ev->read_ns;
				self->deferred_handled_ns = handled_ns;
			}
		} else {
			self->low_space_ns = ev->event.time_label;
			self->event_read_ns = ev->read_ns;
			self->event_handled_ns = handled_ns;
			/* first the answer, then the news: the module is waiting */
			snapshot_answer_low_space (self, requested);
			bs_snapshot_log (self, G_LOG_LEVEL_MESSAGE,
			                 "low on storage: %" G_GUINT64_FORMAT " MiB free, module asks "
			                 "for %" G_GUINT64_FORMAT " MiB; growing", free_bytes / BS_MIB,
			                 requested / BS_MIB);
		}
		bs_snapshot_refresh (self, NULL);
		g_signal_emit (self, signals[SIGNAL_LOW_SPACE], 0, free_bytes, requested);
		break;
	}
	case BLKSNAP_EVENT_CORRUPTED: {
		BsDev dev = { ev->event.corrupted.dev.major, ev->event.corrupted.dev.minor };
		g_autofree gchar *name = bs_dev_to_string (&dev);
		gint err = ev->event.corrupted.error;

		bs_snapshot_refresh (self, NULL);
		bs_snapshot_log (self, G_LOG_LEVEL_WARNING,
		                 "corrupted: image of %s failed with %s (%d)%s", name,
		                 g_strerror (-err), err,
		                 err == -ENOSPC ? ": difference storage overflowed" : "");
		g_signal_emit (self, signals[SIGNAL_CORRUPTED], 0, name, err);
		break;
	}
	default:
		bs_snapshot_log (self, G_LOG_LEVEL_INFO, "unknown event 0x%x", ev->event.code);
		break;
	}
}

/**
 * bs_snapshot_start_watcher:
 *
 * Starts the thread that waits for the module's events of this snapshot
 * and hands them to the thread-default main context of the caller.
 */
void
bs_snapshot_start_watcher (BsSnapshot *self)
{
	g_autofree gchar *name = NULL;

	if (self->watcher != NULL)
		return;
	name = g_strdup_printf ("watch-%.8s", self->id_hex);
	self->watcher = bs_watcher_start (G_OBJECT (self), self->control, &self->record->id,
	                                  self->spares, snapshot_handle_event, name);
}

static void
snapshot_stop_watcher (BsSnapshot *self)
{
	g_clear_pointer (&self->watcher, bs_watcher_stop);
}

/* --------------------------------------------------------------- destroy */

/**
 * bs_snapshot_destroy:
 *
 * Destroys the kernel's snapshot (if it still exists), then removes the
 * storage files: in that order, so the module never writes to blocks the
 * filesystem may have handed to someone else.
 */
gboolean
bs_snapshot_destroy (BsSnapshot *self, GError **error)
{
	g_autoptr(GError) error_local = NULL;

	if (self->destroyed)
		return TRUE;
	if (!bs_control_snapshot_destroy (self->control, &self->record->id, &error_local) &&
	    !g_error_matches (error_local, BS_ERROR, BS_ERROR_NOT_FOUND)) {
		/* keep the files: the module may still be writing there */
		g_propagate_error (error, g_steal_pointer (&error_local));
		return FALSE;
	}
	snapshot_stop_watcher (self);
	self->destroyed = TRUE;
	for (guint i = 0; i < self->record->files->len; i++) {
		const gchar *path = g_ptr_array_index (self->record->files, i);
		g_autoptr(GError) error_rm = NULL;

		if (!bs_storage_file_remove (path, &error_rm))
			bs_snapshot_log (self, G_LOG_LEVEL_WARNING, "%s", error_rm->message);
	}
	g_ptr_array_set_size (self->record->files, 0);
	/* the spares, ready or still being allocated (a worker holds an fd
	 * and lets go of the blocks when it ends) */
	for (guint i = 0; i < self->record->spares->len; i++) {
		g_autoptr(GError) error_rm = NULL;

		if (!bs_storage_file_remove (g_ptr_array_index (self->record->spares, i),
		                             &error_rm))
			bs_snapshot_log (self, G_LOG_LEVEL_WARNING, "%s", error_rm->message);
	}
	g_ptr_array_set_size (self->record->spares, 0);
	bs_spares_clear (self->spares);
	/* and files the workers are making or appending right now */
	for (guint i = 0; i < self->inflight->len; i++)
		grow_data_cancel (g_ptr_array_index (self->inflight, i));
	bs_snapshot_log (self, G_LOG_LEVEL_MESSAGE, "destroyed");
	return TRUE;
}

/* ------------------------------------------------------------ open image */

/**
 * bs_snapshot_open_image:
 * @dev: a device of the snapshot
 *
 * Returns: a read-only fd of the image of @dev, or -1
 */
gint
bs_snapshot_open_image (BsSnapshot *self, const BsDev *dev, GError **error)
{
	struct blksnap_image_info ii;
	g_autofree gchar *name = bs_dev_to_string (dev);
	g_autofree gchar *node = NULL;
	struct stat st;
	gint fd;

	if (!bs_snapshot_has_device (self, dev)) {
		g_set_error (error, BS_ERROR, BS_ERROR_NOT_FOUND, "%s is not in snapshot %s", name,
		             self->id_string);
		return -1;
	}
	bs_snapshot_refresh (self, NULL);
	if (self->info.state == BLKSNAP_SNAPSHOT_CREATED) {
		g_set_error (error, BS_ERROR, BS_ERROR_BUSY, "snapshot %s is not taken yet",
		             self->id_string);
		return -1;
	}
	if (self->info.state == BLKSNAP_SNAPSHOT_CORRUPTED) {
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED, "snapshot %s is corrupted",
		             self->id_string);
		return -1;
	}
	if (!bs_control_image_info (self->control, dev, &ii, error))
		return -1;
	ii.name[BLKSNAP_IMAGE_NAME_LEN - 1] = '\0';
	if (ii.name[0] == '\0' || strchr (ii.name, '/') != NULL) {
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED, "no image of %s", name);
		return -1;
	}
	node = g_strconcat ("/dev/", ii.name, NULL);
	fd = open (node, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		gint errsv = errno;
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED, "open %s: %s", node,
		             g_strerror (errsv));
		return -1;
	}
	/* the node must be the image itself, not whatever sits at that path */
	if (fstat (fd, &st) != 0 || !S_ISBLK (st.st_mode) ||
	    major (st.st_rdev) != ii.image.major || minor (st.st_rdev) != ii.image.minor) {
		close (fd);
		g_set_error (error, BS_ERROR, BS_ERROR_FAILED,
		             "%s is not the image device %u:%u", node, ii.image.major,
		             ii.image.minor);
		return -1;
	}
	return fd;
}

/* ------------------------------------------------------------- lifecycle */

/* The module's low-space threshold: a spare of at least that much answers
 * an event with one append. */
static guint64
snapshot_module_minimum (void)
{
	g_autofree gchar *text = NULL;
	guint64 sectors;

	if (!g_file_get_contents ("/sys/module/blksnap/parameters/diff_storage_minimum", &text,
	                          NULL, NULL) ||
	    !g_ascii_string_to_unsigned (g_strstrip (text), 10, 0, G_MAXUINT64 / 512, &sectors,
	                                 NULL))
		return 0;
	return sectors * 512;
}

/**
 * bs_snapshot_new:
 * @record: (transfer full): the daemon's record of the snapshot
 *
 * Wraps a snapshot the kernel has; call bs_snapshot_refresh() next.
 */
BsSnapshot *
bs_snapshot_new (BsControl *control, const gchar *storage_dir, BsStateRecord *record)
{
	BsSnapshot *self = g_object_new (BS_TYPE_SNAPSHOT, NULL);

	self->control = g_object_ref (control);
	self->storage_dir = g_strdup (storage_dir);
	self->record = record;
	self->id_string = bs_uuid_to_string (&record->id);
	self->id_hex = bs_uuid_to_hex (&record->id);
	self->file_seq = record->files->len;
	self->minimum = snapshot_module_minimum ();
	return self;
}

static void
bs_snapshot_finalize (GObject *object)
{
	BsSnapshot *self = BS_SNAPSHOT (object);

	snapshot_stop_watcher (self);
	g_object_unref (self->control);
	g_free (self->storage_dir);
	bs_state_record_free (self->record);
	bs_spares_unref (self->spares);
	g_free (self->id_string);
	g_free (self->id_hex);
	g_array_unref (self->devices);
	g_ptr_array_unref (self->inflight);
	g_hash_table_unref (self->images);
	G_OBJECT_CLASS (bs_snapshot_parent_class)->finalize (object);
}

static void
bs_snapshot_init (BsSnapshot *self)
{
	self->devices = g_array_new (FALSE, FALSE, sizeof (BsDev));
	self->inflight = g_ptr_array_new ();
	self->spares = bs_spares_new ();
	self->images = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	self->info.state = BLKSNAP_SNAPSHOT_CREATED;
}

static void
bs_snapshot_class_init (BsSnapshotClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS (klass);

	object_class->finalize = bs_snapshot_finalize;
	signals[SIGNAL_CHANGED] =
		g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
		              NULL, NULL, G_TYPE_NONE, 0);
	signals[SIGNAL_LOW_SPACE] =
		g_signal_new ("low-space", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
		              NULL, NULL, G_TYPE_NONE, 2, G_TYPE_UINT64, G_TYPE_UINT64);
	signals[SIGNAL_STORAGE_APPENDED] =
		g_signal_new ("storage-appended", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
		              NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_UINT64, G_TYPE_UINT64);
	signals[SIGNAL_CORRUPTED] =
		g_signal_new ("corrupted", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
		              NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_INT);
	signals[SIGNAL_VANISHED] =
		g_signal_new ("vanished", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
		              NULL, NULL, G_TYPE_NONE, 0);
	/* the record (what the state file keeps) changed otherwise than by
	 * ::storage-appended */
	signals[SIGNAL_RECORD_CHANGED] =
		g_signal_new ("record-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
		              NULL, NULL, NULL, G_TYPE_NONE, 0);
}
