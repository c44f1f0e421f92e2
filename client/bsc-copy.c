/* SPDX-License-Identifier: GPL-2.0-or-later */

#define _GNU_SOURCE  /* O_DIRECT */

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bsc-copy.h"
#include "bsc-util.h"

/* ---------------------------------------------------------- progress */

struct _BscProgress {
	gchar   *label;
	guint64  total;
	guint64  done;
	gint64   start_us;
	gint64   shown_us;
	gboolean enabled;
};

/**
 * bsc_progress_new:
 * @enabled: draw a bar on stderr (only when it is a terminal)
 */
BscProgress *
bsc_progress_new (const gchar *label, guint64 total, gboolean enabled)
{
	BscProgress *p = g_new0 (BscProgress, 1);

	p->label = g_strdup (label);
	p->total = total;
	p->start_us = g_get_monotonic_time ();
	p->enabled = enabled && isatty (STDERR_FILENO);
	return p;
}

static void
progress_draw (BscProgress *p, gboolean last)
{
	gint64 now = g_get_monotonic_time ();
	gdouble secs = MAX (now - p->start_us, 1) / (gdouble) G_USEC_PER_SEC;
	gdouble rate = p->done / secs;
	g_autofree gchar *done = bsc_size_format (p->done);
	g_autofree gchar *total = bsc_size_format (p->total);
	g_autofree gchar *speed = bsc_size_format ((guint64) rate);
	guint pct = p->total ? (guint) (100.0 * p->done / p->total) : 100;
	guint width = 24, fill = pct * width / 100;
	gchar bar[32];
	guint64 eta = rate > 0 ? (guint64) ((p->total - p->done) / rate) : 0;

	memset (bar, '#', fill);
	memset (bar + fill, '.', width - fill);
	bar[width] = '\0';
	fprintf (stderr, "\r%-10s [%s] %3u%% %s / %s  %s/s  ETA %" G_GUINT64_FORMAT ":%02u  %s",
	         p->label, bar, pct, done, total, speed, eta / 60, (guint) (eta % 60),
	         last ? "\n" : "");
	fflush (stderr);
	p->shown_us = now;
}

void
bsc_progress_add (BscProgress *p, guint64 bytes)
{
	if (p == NULL)
		return;
	p->done += bytes;
	if (p->enabled && g_get_monotonic_time () - p->shown_us > G_USEC_PER_SEC / 4)
		progress_draw (p, FALSE);
}

void
bsc_progress_finish (BscProgress *p)
{
	if (p != NULL && p->enabled)
		progress_draw (p, TRUE);
}

void
bsc_progress_free (BscProgress *p)
{
	if (p == NULL)
		return;
	g_free (p->label);
	g_free (p);
}

/* -------------------------------------------------------------- copy */

/*
 * The copy is a pipeline over a few buffers (slots): one thread reads the
 * runs in order, a pool of workers checksums them in parallel (the one
 * costly step on a slow CPU), and the calling thread takes them back in
 * run order to record or check the sums and write them. Both ends use
 * O_DIRECT where the file takes it: the bytes go from the device into a
 * slot and out again with no copy through the page cache, which is what
 * costs most CPU on the way, and a backup read once does not evict what
 * the machine is working with.
 */

#define DIRECT_ALIGN   4096
#define SLOTS_BYTES    (G_GUINT64_CONSTANT (256) << 20)  /* memory for slots, at most */
#define WORKERS_MAX    8

typedef struct {
	guint     index;     /* of the run */
	guint8   *data;
	gsize     length;
	gint      errsv;     /* the read failed */
	gboolean  summed;    /* under Pipeline.lock */
	gchar     sum[BSC_CHECKSUM_HEX_MAX + 1];
} Slot;

typedef struct {
	gint           fd;
	GArray        *runs;
	BscChecksum    checksum;
	GAsyncQueue   *free;     /* Slot */
	GAsyncQueue   *order;    /* Slot, in run order, read; then &end */
	GThreadPool   *workers;
	GMutex         lock;
	GCond          summed;
	Slot           end;
	volatile gint *interrupted;
	gint           stop;
} Pipeline;

/* O_DIRECT on @fd where its file system takes it (not tmpfs before 6.6) */
static void
direct_on (gint fd)
{
	gint flags = fcntl (fd, F_GETFL);

	if (flags >= 0)
		(void) fcntl (fd, F_SETFL, flags | O_DIRECT);
}

/*
 * An O_DIRECT transfer that is not aligned to the device's logical block
 * (the last run of a device whose size is not a multiple of the backup
 * disk's 4 KiB blocks) fails with EINVAL: go on through the page cache.
 */
static gboolean
direct_off_after (gint fd, gint errsv)
{
	gint flags = fcntl (fd, F_GETFL);

	return errsv == EINVAL && flags >= 0 && (flags & O_DIRECT) &&
	       fcntl (fd, F_SETFL, flags & ~O_DIRECT) == 0;
}

static gboolean
read_all (gint fd, guint8 *buf, gsize len, guint64 offset, gint *errsv)
{
	gsize done = 0;

	while (done < len) {
		ssize_t n = pread (fd, buf + done, len - done, offset + done);

		if (n < 0 && (errno == EINTR || direct_off_after (fd, errno)))
			continue;
		if (n < 0) {
			*errsv = errno;
			return FALSE;
		}
		if (n == 0) {
			*errsv = ENODATA;  /* shorter than the manifest says */
			return FALSE;
		}
		done += n;
	}
	return TRUE;
}

static gboolean
write_all (gint fd, const guint8 *buf, gsize len, guint64 offset, GError **error)
{
	gsize done = 0;

	while (done < len) {
		ssize_t n = pwrite (fd, buf + done, len - done, offset + done);

		if (n < 0 && (errno == EINTR || direct_off_after (fd, errno)))
			continue;
		if (n < 0) {
			gint errsv = errno;

			g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
			             "write at offset %" G_GUINT64_FORMAT ": %s", offset + done,
			             g_strerror (errsv));
			return FALSE;
		}
		done += n;
	}
	return TRUE;
}

static gpointer
reader_thread (gpointer data)
{
	Pipeline *p = data;

	for (guint i = 0; i < p->runs->len; i++) {
		const BscRun *run = &g_array_index (p->runs, BscRun, i);
		Slot *s = g_async_queue_pop (p->free);

		if (g_atomic_int_get (&p->stop) || (p->interrupted && *p->interrupted)) {
			g_async_queue_push (p->free, s);
			break;
		}
		s->index = i;
		s->length = run->length;
		s->errsv = 0;
		s->summed = FALSE;
		read_all (p->fd, s->data, run->length, run->offset, &s->errsv);
		g_async_queue_push (p->order, s);
		if (s->errsv != 0)
			break;
		g_thread_pool_push (p->workers, s, NULL);
	}
	g_async_queue_push (p->order, &p->end);
	return NULL;
}

static void
sum_slot (gpointer data, gpointer user_data)
{
	Slot *s = data;
	Pipeline *p = user_data;

	bsc_checksum_hex (p->checksum, s->data, s->length, s->sum);
	g_mutex_lock (&p->lock);
	s->summed = TRUE;
	g_cond_broadcast (&p->summed);
	g_mutex_unlock (&p->lock);
}

/* Records (backup) or checks (verify) the sum of @s and writes it. */
static gboolean
finish_slot (Pipeline *p, Slot *s, gint out_fd, BscCopyMode mode, BscProgress *progress,
             GError **error)
{
	BscRun *run = &g_array_index (p->runs, BscRun, s->index);

	if (s->errsv != 0) {
		g_set_error (error, G_IO_ERROR, g_io_error_from_errno (s->errsv),
		             "read at offset %" G_GUINT64_FORMAT ": %s", run->offset,
		             s->errsv == ENODATA ? "unexpected end of file" : g_strerror (s->errsv));
		return FALSE;
	}
	g_mutex_lock (&p->lock);
	while (!s->summed)
		g_cond_wait (&p->summed, &p->lock);
	g_mutex_unlock (&p->lock);
	if (mode == BSC_COPY_BACKUP) {
		memcpy (run->sum, s->sum, sizeof (run->sum));
	} else if (strcmp (s->sum, run->sum) != 0) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
		             "%s checksum mismatch at offset %" G_GUINT64_FORMAT
		             " (%" G_GUINT64_FORMAT " bytes): the backup is damaged",
		             bsc_checksum_name (p->checksum), run->offset, run->length);
		return FALSE;
	}
	if (!write_all (out_fd, s->data, s->length, run->offset, error))
		return FALSE;
	bsc_progress_add (progress, s->length);
	return TRUE;
}

/**
 * bsc_copy_runs:
 * @runs: #BscRun; the same offsets are read from @in_fd and written to @out_fd
 * @checksum: of the runs: computed (%BSC_COPY_BACKUP) or checked
 * @interrupted: (nullable): set (by a signal handler) to stop early; the
 *   copy then fails with G_IO_ERROR_CANCELLED
 * @bytes_read: (out) (optional): bytes read from @in_fd and written
 *
 * Both descriptors are switched to O_DIRECT where their files allow it.
 * Errors name the offset; a checksum mismatch is G_IO_ERROR_INVALID_DATA.
 */
gboolean
bsc_copy_runs (gint in_fd, gint out_fd, GArray *runs, BscChecksum checksum, BscCopyMode mode,
               volatile gint *interrupted, BscProgress *progress, guint64 *bytes_read,
               GError **error)
{
	Pipeline p = { 0 };
	g_autoptr(GThread) reader = NULL;
	g_autofree Slot *slots = NULL;
	guint64 max = 0, total = 0;
	guint n_workers, n_slots;
	gboolean ok = TRUE;
	Slot *s;

	if (bytes_read)
		*bytes_read = 0;
	for (guint i = 0; i < runs->len; i++)
		max = MAX (max, g_array_index (runs, BscRun, i).length);
	if (runs->len == 0)
		return TRUE;
	max = (max + DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN;
	n_workers = CLAMP (g_get_num_processors (), 1, WORKERS_MAX);
	/* one being read, one per worker, one being written, one spare */
	n_slots = CLAMP (SLOTS_BYTES / max, 3, n_workers + 3);

	direct_on (in_fd);
	direct_on (out_fd);
	(void) posix_fadvise (in_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	p.fd = in_fd;
	p.runs = runs;
	p.checksum = checksum;
	p.interrupted = interrupted;
	g_mutex_init (&p.lock);
	g_cond_init (&p.summed);
	p.free = g_async_queue_new ();
	p.order = g_async_queue_new ();
	p.workers = g_thread_pool_new (sum_slot, &p, n_workers, TRUE, error);
	if (p.workers == NULL) {
		ok = FALSE;
		goto out;
	}
	slots = g_new0 (Slot, n_slots);
	for (guint i = 0; i < n_slots; i++) {
		slots[i].data = g_aligned_alloc (1, max, DIRECT_ALIGN);
		g_async_queue_push (p.free, &slots[i]);
	}
	reader = g_thread_new ("bsc-reader", reader_thread, &p);

	/* after a failure: drain what the reader already handed over */
	while ((s = g_async_queue_pop (p.order)) != &p.end) {
		if (ok) {
			ok = finish_slot (&p, s, out_fd, mode, progress, error);
			if (ok)
				total += s->length;
			else
				g_atomic_int_set (&p.stop, 1);
		}
		g_async_queue_push (p.free, s);
	}
	g_thread_join (g_steal_pointer (&reader));
	if (ok && interrupted != NULL && *interrupted) {
		g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "interrupted");
		ok = FALSE;
	}
	if (ok)
		bsc_progress_finish (progress);
out:
	/* waits for the workers: a slot dropped after a failure may be summing */
	if (p.workers != NULL)
		g_thread_pool_free (p.workers, FALSE, TRUE);
	for (guint i = 0; slots != NULL && i < n_slots; i++)
		g_aligned_free (slots[i].data);
	g_async_queue_unref (p.free);
	g_async_queue_unref (p.order);
	g_mutex_clear (&p.lock);
	g_cond_clear (&p.summed);
	if (bytes_read)
		*bytes_read = total;
	return ok;
}
