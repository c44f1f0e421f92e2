/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The service's error domain. The D-Bus glue maps each code to
 * org.blksnap.BlkSnap1.Error.<Name>; the logic only knows the codes.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define BS_ERROR (bs_error_quark ())

typedef enum {
	BS_ERROR_FAILED,
	BS_ERROR_NOT_AUTHORIZED,
	BS_ERROR_NOT_FOUND,
	BS_ERROR_BUSY,
	BS_ERROR_INVALID_ARGUMENT,
	BS_ERROR_NO_SPACE,
	BS_ERROR_MODULE_NOT_LOADED,
	BS_ERROR_GENERATION_CHANGED,
	BS_ERROR_LAST /*< skip >*/
} BsError;

GQuark       bs_error_quark    (void);
const gchar *bs_error_to_name  (BsError code);
BsError      bs_error_from_errno (gint errsv);

G_END_DECLS
