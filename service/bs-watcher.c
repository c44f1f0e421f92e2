/* SPDX-License-Identifier: GPL-2.0-or-later */

#define G_LOG_DOMAIN "blksnapd"

#include "bs-error.h"
#include "bs-watcher.h"

/* How long one wait-event ioctl blocks: bounds how long a stopped watcher
 * thread lingers. Events themselves wake it at once. */
#define WATCH_TIMEOUT_MS 500

/* ---------------------------------------------------------------- spares */

struct _BsSpares {
	gatomicrefcount ref;
	GMutex lock;
	GPtrArray *files;  /* BsStorageFile, under @lock */
	guint64 taken;     /* bytes the watcher appended that the main loop has
	                    * not seen in the snapshot's allocation yet */
};

BsSpares *
bs_spares_new (void)
{
	BsSpares *spares = g_new0 (BsSpares, 1);

	g_atomic_ref_count_init (&spares->ref);
	g_mutex_init (&spares->lock);
	spares->files = g_ptr_array_new_with_free_func ((GDestroyNotify) bs_storage_file_free);
	return spares;
}

BsSpares *
bs_spares_ref (BsSpares *spares)
{
	g_atomic_ref_count_inc (&spares->ref);
	return spares;
}

void
bs_spares_unref (BsSpares *spares)
{
	if (!g_atomic_ref_count_dec (&spares->ref))
		return;
	g_ptr_array_unref (spares->files);
	g_mutex_clear (&spares->lock);
	g_free (spares);
}

/**
 * bs_spares_take:
 * @newest: the newest instead of the oldest
 * @for_watcher: count its bytes as spares until bs_spares_settle(), so the
 *   main loop never sees room that is being appended
 *
 * Returns: (transfer full) (nullable): a spare, or %NULL if there is none.
 */
BsStorageFile *
bs_spares_take (BsSpares *spares, gboolean newest, gboolean for_watcher)
{
	BsStorageFile *file = NULL;

	g_mutex_lock (&spares->lock);
	if (spares->files->len > 0)
		file = g_ptr_array_steal_index (spares->files,
		                                newest ? spares->files->len - 1 : 0);
	if (file != NULL && for_watcher)
		spares->taken += file->size;
	g_mutex_unlock (&spares->lock);
	return file;
}

/* The main loop has accounted for @size bytes the watcher took. */
void
bs_spares_settle (BsSpares *spares, guint64 size)
{
	g_mutex_lock (&spares->lock);
	spares->taken -= MIN (spares->taken, size);
	g_mutex_unlock (&spares->lock);
}

/* @file: (transfer full) */
void
bs_spares_add (BsSpares *spares, BsStorageFile *file)
{
	g_mutex_lock (&spares->lock);
	g_ptr_array_add (spares->files, file);
	g_mutex_unlock (&spares->lock);
}

/* @bytes counts the ready spares and those being appended. */
void
bs_spares_count (BsSpares *spares, guint *count, guint64 *bytes)
{
	g_mutex_lock (&spares->lock);
	*count = spares->files->len;
	*bytes = spares->taken;
	for (guint i = 0; i < spares->files->len; i++)
		*bytes += ((BsStorageFile *) g_ptr_array_index (spares->files, i))->size;
	g_mutex_unlock (&spares->lock);
}

void
bs_spares_clear (BsSpares *spares)
{
	g_mutex_lock (&spares->lock);
	g_ptr_array_set_size (spares->files, 0);
	g_mutex_unlock (&spares->lock);
}

/* --------------------------------------------------------------- watcher */

/*
 * The thread must not keep the snapshot alive, so it holds only a weak
 * reference, resolved in the main loop when an event arrives.
 */
struct _BsWatcher {
	gatomicrefcount ref;
	gint stop;
	GWeakRef owner;
	BsControl *control;
	BsUuid id;
	GMainContext *context;
	BsSpares *spares;
	BsWatcherFunc func;
};

typedef struct {
	BsWatcher *watcher;
	BsWatcherEvent event;
} WatcherMessage;

static BsWatcher *
watcher_ref (BsWatcher *watcher)
{
	g_atomic_ref_count_inc (&watcher->ref);
	return watcher;
}

static void
watcher_unref (BsWatcher *watcher)
{
	if (!g_atomic_ref_count_dec (&watcher->ref))
		return;
	g_weak_ref_clear (&watcher->owner);
	bs_spares_unref (watcher->spares);
	g_object_unref (watcher->control);
	g_main_context_unref (watcher->context);
	g_free (watcher);
}

static void
watcher_message_free (WatcherMessage *msg)
{
	watcher_unref (msg->watcher);
	bs_storage_file_free (msg->event.spare);
	g_clear_error (&msg->event.append_error);
	g_free (msg);
}

/* Main loop. */
static gboolean
watcher_deliver (gpointer user_data)
{
	WatcherMessage *msg = user_data;
	g_autoptr(GObject) owner = g_weak_ref_get (&msg->watcher->owner);

	if (owner != NULL && !g_atomic_int_get (&msg->watcher->stop))
		msg->watcher->func (owner, &msg->event);
	return G_SOURCE_REMOVE;
}

/*
 * The answer to low space, right here: the oldest spare is appended before
 * the main loop hears of the event, so a busy main loop (D-Bus calls, state
 * saves, a slow disk) does not keep the module waiting. The main loop
 * records it when it gets the message.
 */
static void
watcher_append_spare (BsWatcher *watcher, BsWatcherEvent *ev)
{
	ev->spare = bs_spares_take (watcher->spares, FALSE, TRUE);
	if (ev->spare == NULL)
		return;
	ev->append_ns = bs_monotonic_ns ();
	if (bs_control_snapshot_append_storage (watcher->control, &watcher->id, &ev->spare->dev,
	                                        (struct blksnap_sectors *) ev->spare->ranges->data,
	                                        ev->spare->ranges->len, &ev->append_error))
		ev->appended_ns = bs_monotonic_ns ();
}

static void
watcher_post (BsWatcher *watcher, const struct blksnap_snapshot_event *event,
              gboolean vanished)
{
	WatcherMessage *msg = g_new0 (WatcherMessage, 1);

	msg->watcher = watcher_ref (watcher);
	msg->event.read_ns = bs_monotonic_ns ();
	if (event != NULL)
		msg->event.event = *event;
	msg->event.vanished = vanished;
	if (event != NULL && event->code == BLKSNAP_EVENT_LOW_FREE_SPACE)
		watcher_append_spare (watcher, &msg->event);
	g_main_context_invoke_full (watcher->context, G_PRIORITY_DEFAULT, watcher_deliver, msg,
	                            (GDestroyNotify) watcher_message_free);
}

static gpointer
watcher_thread (gpointer user_data)
{
	BsWatcher *watcher = user_data;

	while (!g_atomic_int_get (&watcher->stop)) {
		struct blksnap_snapshot_event event;
		gboolean timed_out = FALSE;
		g_autoptr(GError) error = NULL;

		if (!bs_control_snapshot_wait_event (watcher->control, &watcher->id,
		                                     WATCH_TIMEOUT_MS, &event, &timed_out,
		                                     &error)) {
			if (!g_atomic_int_get (&watcher->stop)) {
				if (g_error_matches (error, BS_ERROR, BS_ERROR_NOT_FOUND))
					watcher_post (watcher, NULL, TRUE);
				else
					g_warning ("event watcher: %s", error->message);
			}
			break;
		}
		if (!timed_out)
			watcher_post (watcher, &event, FALSE);
	}
	watcher_unref (watcher);
	return NULL;
}

/**
 * bs_watcher_start:
 * @owner: handed to @func while it is alive; not kept alive by the watcher
 * @spares: the spares the thread may append on low space
 * @name: the thread's name
 *
 * Starts a thread that waits for the events of snapshot @id and hands them
 * to @func in the caller's thread-default main context.
 *
 * Returns: (transfer full): the watcher, for bs_watcher_stop().
 */
BsWatcher *
bs_watcher_start (GObject *owner, BsControl *control, const BsUuid *id, BsSpares *spares,
                  BsWatcherFunc func, const gchar *name)
{
	BsWatcher *watcher = g_new0 (BsWatcher, 1);
	GThread *thread;

	g_atomic_ref_count_init (&watcher->ref);
	g_weak_ref_init (&watcher->owner, owner);
	watcher->control = g_object_ref (control);
	watcher->id = *id;
	watcher->context = g_main_context_ref_thread_default ();
	watcher->spares = bs_spares_ref (spares);
	watcher->func = func;
	thread = g_thread_new (name, watcher_thread, watcher_ref (watcher));
	g_thread_unref (thread);
	return watcher;
}

/**
 * bs_watcher_stop:
 *
 * Tells the thread to end and drops the caller's reference. The thread
 * notices within WATCH_TIMEOUT_MS, or at once if the kernel's snapshot is
 * destroyed; no event is delivered after this call.
 */
void
bs_watcher_stop (BsWatcher *watcher)
{
	g_atomic_int_set (&watcher->stop, 1);
	watcher_unref (watcher);
}
