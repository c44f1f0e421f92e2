/* SPDX-License-Identifier: GPL-2.0-or-later */

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

#define BUFFERS 4

typedef struct {
	guint    index;     /* of the run */
	guint8  *data;
	gsize    length;
	gint     errsv;     /* read failed */
} Chunk;

typedef struct {
	gint           fd;
	GArray        *runs;
	GAsyncQueue   *full;   /* Chunk, in run order; NULL data = stop */
	GAsyncQueue   *empty;  /* free buffers */
	volatile gint *interrupted;
	gint           stop;
} Reader;

static gboolean
read_all (gint fd, guint8 *buf, gsize len, guint64 offset, gint *errsv)
{
	gsize done = 0;

	while (done < len) {
		ssize_t n = pread (fd, buf + done, len - done, offset + done);

		if (n < 0 && errno == EINTR)
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

static gpointer
reader_thread (gpointer data)
{
	Reader *r = data;

	for (guint i = 0; i < r->runs->len; i++) {
		const BscRun *run = &g_array_index (r->runs, BscRun, i);
		Chunk *c = g_async_queue_pop (r->empty);

		if (g_atomic_int_get (&r->stop) || (r->interrupted && *r->interrupted)) {
			g_async_queue_push (r->empty, c);
			break;
		}
		c->index = i;
		c->length = run->length;
		c->errsv = 0;
		read_all (r->fd, c->data, run->length, run->offset, &c->errsv);
		g_async_queue_push (r->full, c);
		if (c->errsv != 0)
			break;
	}
	g_async_queue_push (r->full, g_new0 (Chunk, 1));  /* end */
	return NULL;
}

static void
sha256_hex (const guint8 *data, gsize len, gchar out[65])
{
	g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);

	g_checksum_update (sum, data, len);
	g_strlcpy (out, g_checksum_get_string (sum), 65);
}

static gboolean
write_all (gint fd, const guint8 *buf, gsize len, guint64 offset, GError **error)
{
	gsize done = 0;

	while (done < len) {
		ssize_t n = pwrite (fd, buf + done, len - done, offset + done);

		if (n < 0 && errno == EINTR)
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

/**
 * bsc_copy_runs:
 * @runs: #BscRun; the same offsets are read from @in_fd and written to @out_fd
 * @interrupted: (nullable): set (by a signal handler) to stop early; the
 *   copy then fails with G_IO_ERROR_CANCELLED
 * @bytes_read: (out) (optional): bytes read from @in_fd
 *
 * Errors name the offset; a checksum mismatch is G_IO_ERROR_INVALID_DATA.
 */
gboolean
bsc_copy_runs (gint in_fd, gint out_fd, GArray *runs, BscCopyMode mode,
               volatile gint *interrupted, BscProgress *progress, guint64 *bytes_read,
               GError **error)
{
	Reader r = { 0 };
	g_autoptr(GThread) thread = NULL;
	guint64 max = 0, total = 0;
	gboolean ok = TRUE, ended = FALSE;
	Chunk chunks[BUFFERS];

	for (guint i = 0; i < runs->len; i++)
		max = MAX (max, g_array_index (runs, BscRun, i).length);
	if (runs->len == 0) {
		if (bytes_read)
			*bytes_read = 0;
		return TRUE;
	}
	(void) posix_fadvise (in_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	r.fd = in_fd;
	r.runs = runs;
	r.interrupted = interrupted;
	r.full = g_async_queue_new ();
	r.empty = g_async_queue_new ();
	for (guint i = 0; i < BUFFERS; i++) {
		chunks[i].data = g_malloc (max);
		g_async_queue_push (r.empty, &chunks[i]);
	}
	thread = g_thread_new ("bsc-reader", reader_thread, &r);

	while (!ended) {
		Chunk *c = g_async_queue_pop (r.full);
		BscRun *run;

		if (c->data == NULL) {
			g_free (c);
			ended = TRUE;
			break;
		}
		run = &g_array_index (runs, BscRun, c->index);
		if (ok && c->errsv != 0) {
			g_set_error (error, G_IO_ERROR, g_io_error_from_errno (c->errsv),
			             "read at offset %" G_GUINT64_FORMAT ": %s", run->offset,
			             c->errsv == ENODATA ? "unexpected end of file" :
			             g_strerror (c->errsv));
			ok = FALSE;
		}
		if (ok) {
			gchar sum[65];

			total += c->length;
			sha256_hex (c->data, c->length, sum);
			if (mode == BSC_COPY_BACKUP) {
				memcpy (run->sha256, sum, sizeof (sum));
			} else if (strcmp (sum, run->sha256) != 0) {
				g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				             "checksum mismatch at offset %" G_GUINT64_FORMAT
				             " (%" G_GUINT64_FORMAT " bytes): the backup is damaged",
				             run->offset, run->length);
				ok = FALSE;
			}
			if (ok)
				ok = write_all (out_fd, c->data, c->length, run->offset, error);
			if (ok)
				bsc_progress_add (progress, c->length);
		}
		if (!ok)
			g_atomic_int_set (&r.stop, 1);
		g_async_queue_push (r.empty, c);
	}
	g_thread_join (g_steal_pointer (&thread));
	if (ok && interrupted != NULL && *interrupted) {
		g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "interrupted");
		ok = FALSE;
	}
	if (ok && total != 0)
		bsc_progress_finish (progress);
	for (guint i = 0; i < BUFFERS; i++)
		g_free (chunks[i].data);
	g_async_queue_unref (r.full);
	g_async_queue_unref (r.empty);
	if (bytes_read)
		*bytes_read = total;
	return ok;
}
