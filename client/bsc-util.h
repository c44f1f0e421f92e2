/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Small pure helpers of blksnapctl: sizes as text, the exit codes.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * BscExit:
 * The exit status of blksnapctl (documented in blksnapctl(1)).
 */
typedef enum {
	BSC_EXIT_OK = 0,
	BSC_EXIT_FAILED = 1,            /* anything not listed below */
	BSC_EXIT_USAGE = 2,             /* bad command line */
	BSC_EXIT_NOT_AUTHORIZED = 3,    /* polkit said no */
	BSC_EXIT_NOT_FOUND = 4,         /* no such device, snapshot, backup point */
	BSC_EXIT_UNAVAILABLE = 5,       /* service not running or module not loaded */
	BSC_EXIT_NO_SPACE = 6,          /* difference storage or target full */
	BSC_EXIT_BUSY = 7,              /* device busy (in another snapshot...) */
	BSC_EXIT_DATA = 8,              /* a checksum did not match: backup damaged */
	BSC_EXIT_INTERRUPTED = 130,     /* SIGINT/SIGTERM; everything cleaned up */
} BscExit;

gboolean bsc_size_parse  (const gchar *text, guint64 *size, GError **error);
gchar   *bsc_size_format (guint64 size);

G_END_DECLS
