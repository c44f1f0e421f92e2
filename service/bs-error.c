/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>

#include "bs-error.h"

G_DEFINE_QUARK (bs-error-quark, bs_error)

/**
 * bs_error_to_name:
 * @code: a #BsError
 *
 * Returns: the last component of the D-Bus error name for @code
 */
const gchar *
bs_error_to_name (BsError code)
{
	switch (code) {
	case BS_ERROR_NOT_AUTHORIZED:
		return "NotAuthorized";
	case BS_ERROR_NOT_FOUND:
		return "NotFound";
	case BS_ERROR_BUSY:
		return "Busy";
	case BS_ERROR_INVALID_ARGUMENT:
		return "InvalidArgument";
	case BS_ERROR_NO_SPACE:
		return "NoSpace";
	case BS_ERROR_MODULE_NOT_LOADED:
		return "ModuleNotLoaded";
	case BS_ERROR_GENERATION_CHANGED:
		return "GenerationChanged";
	case BS_ERROR_FAILED:
	case BS_ERROR_LAST:
		break;
	}
	return "Failed";
}

/**
 * bs_error_from_errno:
 * @errsv: a positive errno value from the module or a system call
 *
 * The errnos the module documents for its ioctls, sorted into what a
 * caller can act on. The message of the #GError still carries the errno's
 * own text.
 *
 * Returns: a #BsError
 */
BsError
bs_error_from_errno (gint errsv)
{
	switch (errsv) {
	case ENOENT:
	case ESRCH:
	case ENODEV:
	case ENXIO:
		return BS_ERROR_NOT_FOUND;
	case EBUSY:
	case EALREADY:
	case EEXIST:
		return BS_ERROR_BUSY;
	case EINVAL:
	case ERANGE:
	case E2BIG:
	case EOVERFLOW:
		return BS_ERROR_INVALID_ARGUMENT;
	case ENOSPC:
	case EDQUOT:
		return BS_ERROR_NO_SPACE;
	case EPERM:
		/* the daemon runs as root: the module means "not now" */
		return BS_ERROR_BUSY;
	case EACCES:
		return BS_ERROR_NOT_AUTHORIZED;
	default:
		return BS_ERROR_FAILED;
	}
}
