/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A snapshot's event watcher: a thread blocked in the module's wait-event
 * ioctl, which answers low space at once with a spare storage file made
 * ahead of time, and hands every event to the main loop.
 */
#pragma once

#include <glib-object.h>

#include "bs-control.h"
#include "bs-storage.h"

G_BEGIN_DECLS

/*
 * The spare storage files ready to be appended, oldest first. Shared by
 * the main loop, which adds and drops them, and the watcher thread, which
 * takes the oldest the moment the module asks.
 */
typedef struct _BsSpares BsSpares;

BsSpares      *bs_spares_new    (void);
BsSpares      *bs_spares_ref    (BsSpares *spares);
void           bs_spares_unref  (BsSpares *spares);
BsStorageFile *bs_spares_take   (BsSpares *spares, gboolean newest, gboolean for_watcher);
void           bs_spares_settle (BsSpares *spares, guint64 size);
void           bs_spares_add    (BsSpares *spares, BsStorageFile *file);
void           bs_spares_count  (BsSpares *spares, guint *count, guint64 *bytes);
void           bs_spares_clear  (BsSpares *spares);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BsSpares, bs_spares_unref)

/* What the watcher saw, and did, delivered in the main loop. */
typedef struct {
	struct blksnap_snapshot_event event;
	guint64 read_ns;          /* when the ioctl returned it */
	gboolean vanished;        /* the kernel no longer knows the snapshot */
	BsStorageFile *spare;     /* the spare appended (or tried), or NULL */
	GError *append_error;     /* why appending @spare failed */
	guint64 append_ns;        /* when the append started, and ended */
	guint64 appended_ns;
} BsWatcherEvent;

/* Called in the main context that started the watcher, with its owner
 * alive; @event is freed after the call. */
typedef void (*BsWatcherFunc) (GObject *owner, BsWatcherEvent *event);

typedef struct _BsWatcher BsWatcher;

BsWatcher *bs_watcher_start (GObject *owner, BsControl *control, const BsUuid *id,
                             BsSpares *spares, BsWatcherFunc func, const gchar *name);
void       bs_watcher_stop  (BsWatcher *watcher);

G_END_DECLS
