/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "bs-control.h"
#include "bs-error.h"

struct _BsControl {
	GObject parent_instance;
	gchar *path;
	gint fd;
	GMutex lock; /* protects fd while it is being opened */
};

G_DEFINE_TYPE (BsControl, bs_control, G_TYPE_OBJECT)

/* ------------------------------------------------------------ identifiers */

/**
 * bs_dev_parse:
 * @str: "MAJ:MIN" or the path of a block device node
 * @dev: (out): the device number
 * @error: a #GError
 *
 * Returns: %TRUE for success
 */
gboolean
bs_dev_parse (const gchar *str, BsDev *dev, GError **error)
{
	struct stat st;
	guint64 major, minor;
	g_auto(GStrv) parts = NULL;

	if (str == NULL || str[0] == '\0') {
		g_set_error_literal (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		                     "no device given");
		return FALSE;
	}
	if (str[0] != '/') {
		parts = g_strsplit (str, ":", -1);
		if (g_strv_length (parts) != 2 ||
		    !g_ascii_string_to_unsigned (parts[0], 10, 0, G_MAXUINT32, &major, NULL) ||
		    !g_ascii_string_to_unsigned (parts[1], 10, 0, G_MAXUINT32, &minor, NULL)) {
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "'%s' is neither a device node nor MAJ:MIN", str);
			return FALSE;
		}
		dev->major = major;
		dev->minor = minor;
		return TRUE;
	}
	if (stat (str, &st) != 0) {
		gint errsv = errno;
		g_set_error (error, BS_ERROR,
		             errsv == ENOENT ? BS_ERROR_NOT_FOUND : BS_ERROR_INVALID_ARGUMENT,
		             "%s: %s", str, g_strerror (errsv));
		return FALSE;
	}
	if (!S_ISBLK (st.st_mode)) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "%s is not a block device", str);
		return FALSE;
	}
	dev->major = major (st.st_rdev);
	dev->minor = minor (st.st_rdev);
	return TRUE;
}

gchar *
bs_dev_to_string (const BsDev *dev)
{
	return g_strdup_printf ("%u:%u", dev->major, dev->minor);
}

gboolean
bs_dev_equal (const BsDev *a, const BsDev *b)
{
	return a->major == b->major && a->minor == b->minor;
}

static gint
hex_value (gchar c)
{
	return g_ascii_isxdigit (c) ? g_ascii_xdigit_value (c) : -1;
}

/**
 * bs_uuid_parse:
 * @str: 8-4-4-4-12 or 32 hex digits
 * @id: (out): the UUID
 * @error: a #GError
 *
 * Returns: %TRUE for success
 */
gboolean
bs_uuid_parse (const gchar *str, BsUuid *id, GError **error)
{
	gsize len = str != NULL ? strlen (str) : 0;
	guint n = 0;

	if (len != 32 && len != 36)
		goto bad;
	memset (id, 0, sizeof (*id));
	for (gsize i = 0; i < len; i++) {
		gint v;

		if (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
			if (str[i] != '-')
				goto bad;
			continue;
		}
		v = hex_value (str[i]);
		if (v < 0)
			goto bad;
		id->b[n / 2] |= (n % 2) ? v : v << 4;
		n++;
	}
	return TRUE;
bad:
	g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
	             "'%s' is not a UUID", str != NULL ? str : "");
	return FALSE;
}

gchar *
bs_uuid_to_string (const BsUuid *id)
{
	const guint8 *b = id->b;

	return g_strdup_printf ("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	                        "%02x%02x%02x%02x%02x%02x",
	                        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
	                        b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

gchar *
bs_uuid_to_hex (const BsUuid *id)
{
	GString *str = g_string_new (NULL);

	for (guint i = 0; i < BLKSNAP_UUID_SIZE; i++)
		g_string_append_printf (str, "%02x", id->b[i]);
	return g_string_free (str, FALSE);
}

/* ---------------------------------------------------------------- control */

/**
 * bs_control_new:
 * @path: (nullable): the control device, %NULL for /dev/blksnap-control
 *
 * The device is opened lazily, so the daemon can start before the module
 * is loaded.
 */
BsControl *
bs_control_new (const gchar *path)
{
	BsControl *self = g_object_new (BS_TYPE_CONTROL, NULL);

	self->path = g_strdup (path != NULL ? path : BS_CONTROL_DEFAULT_PATH);
	return self;
}

gboolean
bs_control_open (BsControl *self, GError **error)
{
	g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
	gint fd;

	if (self->fd >= 0)
		return TRUE;
	fd = open (self->path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		gint errsv = errno;
		if (errsv == ENOENT || errsv == ENXIO || errsv == ENODEV) {
			g_set_error (error, BS_ERROR, BS_ERROR_MODULE_NOT_LOADED,
			             "%s: %s (is the blksnap module loaded?)",
			             self->path, g_strerror (errsv));
		} else {
			g_set_error (error, BS_ERROR, bs_error_from_errno (errsv),
			             "%s: %s", self->path, g_strerror (errsv));
		}
		return FALSE;
	}
	self->fd = fd;
	return TRUE;
}

/* One ioctl; on failure *errsv_out (if given) gets errno. */
static gboolean
control_ioctl (BsControl *self, unsigned long request, void *arg, const gchar *what,
               gint *errsv_out, GError **error)
{
	gint errsv;

	if (!bs_control_open (self, error))
		return FALSE;
	if (ioctl (g_atomic_int_get (&self->fd), request, arg) == 0)
		return TRUE;
	errsv = errno;
	if (errsv_out != NULL)
		*errsv_out = errsv;
	g_set_error (error, BS_ERROR, bs_error_from_errno (errsv), "%s: %s", what,
	             g_strerror (errsv));
	return FALSE;
}

gboolean
bs_control_version (BsControl *self, struct blksnap_version *version, GError **error)
{
	memset (version, 0, sizeof (*version));
	return control_ioctl (self, IOCTL_BLKSNAP_VERSION, version, "module version",
	                      NULL, error);
}

gboolean
bs_control_tracker_attach (BsControl *self, const BsDev *dev, GError **error)
{
	BsDev d = *dev;
	g_autofree gchar *name = bs_dev_to_string (dev);
	g_autofree gchar *what = g_strdup_printf ("track %s", name);

	return control_ioctl (self, IOCTL_BLKSNAP_TRACKER_ATTACH, &d, what, NULL, error);
}

gboolean
bs_control_tracker_detach (BsControl *self, const BsDev *dev, GError **error)
{
	BsDev d = *dev;
	g_autofree gchar *name = bs_dev_to_string (dev);
	g_autofree gchar *what = g_strdup_printf ("untrack %s", name);

	return control_ioctl (self, IOCTL_BLKSNAP_TRACKER_DETACH, &d, what, NULL, error);
}

/* Lists of either kind: ask with the largest capacity once. */
static GArray *
control_list (BsControl *self, unsigned long request, gsize elt_size, const gchar *what,
              GError **error)
{
	g_autoptr(GArray) items = g_array_sized_new (FALSE, TRUE, elt_size, 64);
	guint32 cap = 64;

	for (;;) {
		struct blksnap_tracker_list req = { .count = cap };
		gint errsv = 0;
		g_autoptr(GError) error_local = NULL;

		/* tracker_list and snapshot_list have the same layout */
		G_STATIC_ASSERT (sizeof (struct blksnap_tracker_list) ==
		                 sizeof (struct blksnap_snapshot_list));
		g_array_set_size (items, cap);
		req.devices = (guintptr) items->data;
		if (control_ioctl (self, request, &req, what, &errsv, &error_local)) {
			g_array_set_size (items, req.count);
			return g_steal_pointer (&items);
		}
		if (errsv != ENOBUFS || req.count <= cap || req.count > BLKSNAP_MAX_LIST) {
			g_propagate_error (error, g_steal_pointer (&error_local));
			return NULL;
		}
		cap = req.count;
	}
}

/**
 * bs_control_tracker_list:
 *
 * Returns: (transfer full): a #GArray of #BsDev
 */
GArray *
bs_control_tracker_list (BsControl *self, GError **error)
{
	return control_list (self, IOCTL_BLKSNAP_TRACKER_LIST, sizeof (BsDev),
	                     "list trackers", error);
}

gboolean
bs_control_cbt_info (BsControl *self, const BsDev *dev, struct blksnap_cbt_info *info,
                     GError **error)
{
	g_autofree gchar *name = bs_dev_to_string (dev);
	g_autofree gchar *what = g_strdup_printf ("CBT of %s", name);
	gint errsv = 0;

	memset (info, 0, sizeof (*info));
	info->dev = *dev;
	if (!control_ioctl (self, IOCTL_BLKSNAP_CBT_INFO, info, what, &errsv, error)) {
		if (errsv == ENOENT)
			g_prefix_error (error, "%s is not tracked: ", name);
		return FALSE;
	}
	return TRUE;
}

/**
 * bs_control_cbt_map:
 * @block_count: the map's size, from bs_control_cbt_info()
 * @flags: 0 for the live map, %BLKSNAP_CBT_MAP_SNAPSHOT for the copy frozen
 *   at the take (fails with %BS_ERROR_NOT_FOUND without a taken snapshot)
 *
 * Returns: (transfer full): the whole map
 */
GBytes *
bs_control_cbt_map (BsControl *self, const BsDev *dev, guint32 block_count, guint32 flags,
                    GError **error)
{
	g_autofree guint8 *map = g_malloc0 (MAX (block_count, 1));
	struct blksnap_cbt_map req = {
		.dev = *dev,
		.offset = 0,
		.length = block_count,
		.flags = flags,
		.buffer = (guintptr) map,
	};
	gint errsv = 0;

	if (block_count > 0 &&
	    !control_ioctl (self, IOCTL_BLKSNAP_CBT_MAP, &req, "read CBT map", &errsv, error)) {
		if (errsv == ENODATA && error != NULL && *error != NULL) {
			(*error)->code = BS_ERROR_NOT_FOUND;
			g_prefix_error (error, "the device is in no taken snapshot: ");
		}
		return NULL;
	}
	return g_bytes_new_take (g_steal_pointer (&map), block_count);
}

gboolean
bs_control_cbt_dirty (BsControl *self, const BsDev *dev,
                      const struct blksnap_sectors *ranges, guint count, GError **error)
{
	struct blksnap_cbt_dirty req = {
		.dev = *dev,
		.count = count,
		.ranges = (guintptr) ranges,
	};

	return control_ioctl (self, IOCTL_BLKSNAP_CBT_DIRTY, &req, "mark dirty", NULL, error);
}

gboolean
bs_control_snapshot_create (BsControl *self, BsUuid *id, GError **error)
{
	return control_ioctl (self, IOCTL_BLKSNAP_SNAPSHOT_CREATE, id, "create snapshot",
	                      NULL, error);
}

gboolean
bs_control_snapshot_add_device (BsControl *self, const BsUuid *id, const BsDev *dev,
                                GError **error)
{
	struct blksnap_snapshot_device req = { .id = *id, .dev = *dev };
	g_autofree gchar *name = bs_dev_to_string (dev);
	g_autofree gchar *what = g_strdup_printf ("add %s to the snapshot", name);
	gint errsv = 0;

	if (!control_ioctl (self, IOCTL_BLKSNAP_SNAPSHOT_ADD_DEVICE, &req, what, &errsv, error)) {
		if (errsv == ENOENT)
			g_prefix_error (error, "%s is not tracked: ", name);
		else if (errsv == EBUSY)
			g_prefix_error (error, "%s belongs to another snapshot: ", name);
		return FALSE;
	}
	return TRUE;
}

/**
 * bs_control_snapshot_append_storage:
 *
 * Appends @count ranges of @dev in as few requests as the module's limit
 * allows.
 */
gboolean
bs_control_snapshot_append_storage (BsControl *self, const BsUuid *id, const BsDev *dev,
                                    const struct blksnap_sectors *ranges, gsize count,
                                    GError **error)
{
	while (count > 0) {
		gsize n = MIN (count, BLKSNAP_MAX_STORAGE_RANGES);
		struct blksnap_snapshot_append_storage req = {
			.id = *id,
			.dev = *dev,
			.count = n,
			.ranges = (guintptr) ranges,
		};

		if (!control_ioctl (self, IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE, &req,
		                    "append difference storage", NULL, error))
			return FALSE;
		ranges += n;
		count -= n;
	}
	return TRUE;
}

gboolean
bs_control_snapshot_take (BsControl *self, const BsUuid *id, GError **error)
{
	BsUuid copy = *id;
	gint errsv = 0;

	if (!control_ioctl (self, IOCTL_BLKSNAP_SNAPSHOT_TAKE, &copy, "take snapshot",
	                    &errsv, error)) {
		if (errsv == EALREADY)
			g_prefix_error (error, "taken already: ");
		return FALSE;
	}
	return TRUE;
}

gboolean
bs_control_snapshot_destroy (BsControl *self, const BsUuid *id, GError **error)
{
	BsUuid copy = *id;

	return control_ioctl (self, IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &copy, "destroy snapshot",
	                      NULL, error);
}

/**
 * bs_control_snapshot_list:
 *
 * Returns: (transfer full): a #GArray of #BsUuid
 */
GArray *
bs_control_snapshot_list (BsControl *self, GError **error)
{
	return control_list (self, IOCTL_BLKSNAP_SNAPSHOT_LIST, sizeof (BsUuid),
	                     "list snapshots", error);
}

/**
 * bs_control_snapshot_info:
 * @devices: (out) (optional): a #GArray of #BsDev
 */
gboolean
bs_control_snapshot_info (BsControl *self, const BsUuid *id,
                          struct blksnap_snapshot_info *info, GArray **devices,
                          GError **error)
{
	g_autoptr(GArray) devs = g_array_new (FALSE, TRUE, sizeof (BsDev));
	guint32 cap = 0;

	/* learn the count, then fetch; again if a device came in between */
	for (;;) {
		gint errsv = 0;
		g_autoptr(GError) error_local = NULL;

		memset (info, 0, sizeof (*info));
		info->id = *id;
		if (devices != NULL && cap > 0) {
			g_array_set_size (devs, cap);
			info->device_count = cap;
			info->devices = (guintptr) devs->data;
		}
		if (control_ioctl (self, IOCTL_BLKSNAP_SNAPSHOT_INFO, info, "snapshot info",
		                   &errsv, &error_local)) {
			if (devices == NULL)
				return TRUE;
			if (info->device_count > cap) {
				cap = info->device_count;
				continue;
			}
			g_array_set_size (devs, info->device_count);
			*devices = g_steal_pointer (&devs);
			return TRUE;
		}
		if (errsv != ENOBUFS) {
			g_propagate_error (error, g_steal_pointer (&error_local));
			return FALSE;
		}
		cap = info->device_count;
	}
}

gboolean
bs_control_image_info (BsControl *self, const BsDev *dev, struct blksnap_image_info *info,
                       GError **error)
{
	memset (info, 0, sizeof (*info));
	info->dev = *dev;
	return control_ioctl (self, IOCTL_BLKSNAP_IMAGE_INFO, info, "image info", NULL, error);
}

/**
 * bs_control_snapshot_wait_event:
 * @timed_out: (out): set to %TRUE (and %TRUE returned) when no event came
 *	within @timeout_ms
 *
 * Blocks up to @timeout_ms: call it from a worker thread. A snapshot that
 * is destroyed while waiting ends the wait with %BS_ERROR_NOT_FOUND.
 */
gboolean
bs_control_snapshot_wait_event (BsControl *self, const BsUuid *id, guint32 timeout_ms,
                                struct blksnap_snapshot_event *event, gboolean *timed_out,
                                GError **error)
{
	gint errsv = 0;
	g_autoptr(GError) error_local = NULL;

	memset (event, 0, sizeof (*event));
	event->id = *id;
	event->timeout_ms = timeout_ms;
	*timed_out = FALSE;
	if (control_ioctl (self, IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, event, "wait for event",
	                   &errsv, &error_local))
		return TRUE;
	if (errsv == ETIMEDOUT || errsv == EINTR) {
		*timed_out = TRUE;
		return TRUE;
	}
	g_propagate_error (error, g_steal_pointer (&error_local));
	return FALSE;
}

static void
bs_control_finalize (GObject *object)
{
	BsControl *self = BS_CONTROL (object);

	if (self->fd >= 0)
		close (self->fd);
	g_mutex_clear (&self->lock);
	g_free (self->path);
	G_OBJECT_CLASS (bs_control_parent_class)->finalize (object);
}

static void
bs_control_init (BsControl *self)
{
	self->fd = -1;
	g_mutex_init (&self->lock);
}

static void
bs_control_class_init (BsControlClass *klass)
{
	G_OBJECT_CLASS (klass)->finalize = bs_control_finalize;
}
