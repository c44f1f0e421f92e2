/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <gio/gunixfdlist.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "bs-error.h"
#include "bsc-dbus.h"

static void
register_errors (void)
{
	static gsize done = 0;

	if (g_once_init_enter (&done)) {
		for (gint code = BS_ERROR_FAILED; code < BS_ERROR_LAST; code++) {
			g_autofree gchar *name = g_strconcat ("org.blksnap.BlkSnap1.Error.",
			                                      bs_error_to_name (code), NULL);
			g_dbus_error_register_error (BS_ERROR, code, name);
		}
		g_once_init_leave (&done, 1);
	}
}

GDBusConnection *
bsc_dbus_connect (GError **error)
{
	GDBusConnection *bus;
	g_autoptr(GError) local = NULL;

	register_errors ();
	bus = g_bus_get_sync (G_BUS_TYPE_SYSTEM, NULL, &local);
	if (bus == NULL)
		g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN,
		             "cannot connect to the system bus: %s", local->message);
	return bus;
}

/* Rewrites a failed call's error into words: what went wrong, and what to do. */
static void
explain (GError **error, const gchar *path, const gchar *method)
{
	GError *e = *error;
	const gchar *hint = NULL;

	if (g_dbus_error_is_remote_error (e))
		g_dbus_error_strip_remote_error (e);
	if (e->domain == BS_ERROR) {
		switch (e->code) {
		case BS_ERROR_NOT_AUTHORIZED:
			hint = "not authorized";
			break;
		case BS_ERROR_MODULE_NOT_LOADED:
			hint = "the blksnap module is not loaded (modprobe blksnap)";
			break;
		case BS_ERROR_NO_SPACE:
			hint = "no space for the difference storage";
			break;
		case BS_ERROR_NOT_FOUND:
			hint = "not found";
			break;
		case BS_ERROR_BUSY:
			hint = "busy";
			break;
		case BS_ERROR_GENERATION_CHANGED:
			hint = "the CBT generation changed";
			break;
		default:
			break;
		}
		if (hint != NULL && strstr (e->message, hint) == NULL)
			g_prefix_error (error, "%s: ", hint);
		return;
	}
	if (g_error_matches (e, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
	    g_error_matches (e, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER) ||
	    g_error_matches (e, G_DBUS_ERROR, G_DBUS_ERROR_SPAWN_SERVICE_NOT_FOUND) ||
	    g_error_matches (e, G_DBUS_ERROR, G_DBUS_ERROR_SPAWN_EXEC_FAILED) ||
	    g_error_matches (e, G_DBUS_ERROR, G_DBUS_ERROR_SPAWN_CHILD_EXITED)) {
		g_prefix_error (error, "blksnapd is not running (%s): ", BSC_BUS_NAME);
		return;
	}
	if (g_error_matches (e, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT) ||
	    g_error_matches (e, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD) ||
	    g_error_matches (e, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_INTERFACE)) {
		/* the service has no such object: the device is not tracked,
		 * the snapshot does not exist */
		g_clear_error (error);
		g_set_error (error, BS_ERROR, BS_ERROR_NOT_FOUND, "not found: %s has no object %s",
		             BSC_BUS_NAME, path);
		return;
	}
	if (g_error_matches (e, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED)) {
		g_clear_error (error);
		g_set_error (error, BS_ERROR, BS_ERROR_NOT_AUTHORIZED,
		             "not authorized: the bus refused %s", method);
	}
}

/**
 * bsc_dbus_call:
 * @params: (transfer floating) (nullable)
 * @fds: (out) (optional): file descriptors of the reply
 *
 * A synchronous call with no timeout (a take may wait for a freeze).
 */
GVariant *
bsc_dbus_call (GDBusConnection *bus, const gchar *path, const gchar *iface,
               const gchar *method, GVariant *params, const GVariantType *reply,
               GUnixFDList **fds, GError **error)
{
	GVariant *ret;

	ret = g_dbus_connection_call_with_unix_fd_list_sync (
		bus, BSC_BUS_NAME, path, iface, method, params, reply,
		G_DBUS_CALL_FLAGS_NONE, G_MAXINT, NULL, fds, NULL, error);
	if (ret == NULL)
		explain (error, path, method);
	return ret;
}

/**
 * bsc_dbus_get:
 *
 * Returns: (transfer full): the property's value (unboxed)
 */
GVariant *
bsc_dbus_get (GDBusConnection *bus, const gchar *path, const gchar *iface,
              const gchar *name, GError **error)
{
	g_autoptr(GVariant) ret = bsc_dbus_call (bus, path, "org.freedesktop.DBus.Properties", "Get",
	                                         g_variant_new ("(ss)", iface, name),
	                                         G_VARIANT_TYPE ("(v)"), NULL, error);
	GVariant *value;

	if (ret == NULL)
		return NULL;
	g_variant_get (ret, "(v)", &value);
	return value;
}

/**
 * bsc_dbus_get_all:
 *
 * Returns: (transfer full): a{sv} of the interface's properties
 */
GVariant *
bsc_dbus_get_all (GDBusConnection *bus, const gchar *path, const gchar *iface, GError **error)
{
	g_autoptr(GVariant) ret = bsc_dbus_call (bus, path, "org.freedesktop.DBus.Properties",
	                                         "GetAll", g_variant_new ("(s)", iface),
	                                         G_VARIANT_TYPE ("(a{sv})"), NULL, error);

	return ret ? g_variant_get_child_value (ret, 0) : NULL;
}

/**
 * bsc_dbus_options:
 * @extra: (nullable): more options; cleared
 *
 * Returns: (transfer floating): the a{sv} of a call
 */
GVariant *
bsc_dbus_options (gboolean no_interaction, GVariantDict *extra)
{
	GVariantDict dict;

	g_variant_dict_init (&dict, extra ? g_variant_dict_end (extra) : NULL);
	if (no_interaction)
		g_variant_dict_insert (&dict, "auth.no_user_interaction", "b", TRUE);
	return g_variant_dict_end (&dict);
}

/**
 * bsc_device_resolve:
 * @device: a block device node or "MAJ:MIN"
 * @majmin: (out) (optional): "MAJ:MIN"
 * @object_path: (out) (optional): its Device object (exists only if tracked)
 */
gboolean
bsc_device_resolve (const gchar *device, gchar **majmin, gchar **object_path, GError **error)
{
	guint maj, min;
	gchar tail;
	struct stat st;

	if (sscanf (device, "%u:%u%c", &maj, &min, &tail) != 2) {
		if (stat (device, &st) != 0) {
			gint errsv = errno;

			g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
			             "%s: %s", device, g_strerror (errsv));
			return FALSE;
		}
		if (!S_ISBLK (st.st_mode)) {
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			             "%s is not a block device", device);
			return FALSE;
		}
		maj = major (st.st_rdev);
		min = minor (st.st_rdev);
	}
	if (majmin != NULL)
		*majmin = g_strdup_printf ("%u:%u", maj, min);
	if (object_path != NULL)
		*object_path = g_strdup_printf (BSC_ROOT_PATH "/devices/%u_%u", maj, min);
	return TRUE;
}

/**
 * bsc_snapshot_path:
 * @id: a snapshot's UUID, with or without dashes, or its object path
 *
 * Returns: (transfer full): the object path
 */
gchar *
bsc_snapshot_path (const gchar *id, GError **error)
{
	g_autoptr(GString) hex = g_string_new (NULL);
	const gchar *prefix = BSC_ROOT_PATH "/snapshots/";

	if (g_str_has_prefix (id, prefix))
		id += strlen (prefix);
	for (const gchar *c = id; *c; c++) {
		if (*c == '-')
			continue;
		if (!g_ascii_isxdigit (*c))
			break;
		g_string_append_c (hex, g_ascii_tolower (*c));
	}
	if (hex->len != 32 || strspn (id, "0123456789abcdefABCDEF-") != strlen (id)) {
		g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		             "'%s' is not a snapshot id (a UUID, see 'blksnapctl snapshot list')", id);
		return NULL;
	}
	return g_strconcat (prefix, hex->str, NULL);
}

/**
 * bsc_snapshot_id:
 *
 * Returns: (transfer full): the UUID (8-4-4-4-12) of a snapshot object
 */
gchar *
bsc_snapshot_id (const gchar *object_path)
{
	const gchar *hex = strrchr (object_path, '/');

	hex = hex ? hex + 1 : object_path;
	if (strlen (hex) != 32)
		return g_strdup (hex);
	return g_strdup_printf ("%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
	                        hex + 20);
}

BscExit
bsc_exit_for_error (const GError *error)
{
	if (error == NULL)
		return BSC_EXIT_OK;
	if (error->domain == G_OPTION_ERROR)
		return BSC_EXIT_USAGE;
	if (error->domain == BS_ERROR) {
		switch (error->code) {
		case BS_ERROR_NOT_AUTHORIZED:
			return BSC_EXIT_NOT_AUTHORIZED;
		case BS_ERROR_NOT_FOUND:
			return BSC_EXIT_NOT_FOUND;
		case BS_ERROR_MODULE_NOT_LOADED:
			return BSC_EXIT_UNAVAILABLE;
		case BS_ERROR_NO_SPACE:
			return BSC_EXIT_NO_SPACE;
		case BS_ERROR_BUSY:
			return BSC_EXIT_BUSY;
		case BS_ERROR_INVALID_ARGUMENT:
			return BSC_EXIT_USAGE;
		default:
			return BSC_EXIT_FAILED;
		}
	}
	if (error->domain == G_DBUS_ERROR &&
	    (error->code == G_DBUS_ERROR_SERVICE_UNKNOWN ||
	     error->code == G_DBUS_ERROR_NAME_HAS_NO_OWNER))
		return BSC_EXIT_UNAVAILABLE;
	if (error->domain == G_IO_ERROR) {
		switch (error->code) {
		case G_IO_ERROR_CANCELLED:
			return BSC_EXIT_INTERRUPTED;
		case G_IO_ERROR_NOT_FOUND:
			return BSC_EXIT_NOT_FOUND;
		case G_IO_ERROR_NO_SPACE:
			return BSC_EXIT_NO_SPACE;
		case G_IO_ERROR_INVALID_DATA:
			return BSC_EXIT_DATA;
		case G_IO_ERROR_INVALID_ARGUMENT:
			return BSC_EXIT_USAGE;
		case G_IO_ERROR_PERMISSION_DENIED:
			return BSC_EXIT_NOT_AUTHORIZED;
		default:
			break;
		}
	}
	if (error->domain == G_FILE_ERROR && error->code == G_FILE_ERROR_NOENT)
		return BSC_EXIT_NOT_FOUND;
	return BSC_EXIT_FAILED;
}

/**
 * bsc_prop_u64:
 * @props: an a{sv} of properties
 * @name: a property of an unsigned integer type
 *
 * Returns: its value, or 0 if it is missing or of another type
 */
guint64
bsc_prop_u64 (GVariant *props, const gchar *name)
{
	g_autoptr(GVariant) v = g_variant_lookup_value (props, name, NULL);

	if (v == NULL)
		return 0;
	if (g_variant_is_of_type (v, G_VARIANT_TYPE_UINT64))
		return g_variant_get_uint64 (v);
	if (g_variant_is_of_type (v, G_VARIANT_TYPE_UINT32))
		return g_variant_get_uint32 (v);
	if (g_variant_is_of_type (v, G_VARIANT_TYPE_BYTE))
		return g_variant_get_byte (v);
	return 0;
}
