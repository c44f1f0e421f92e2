/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blksnapd's D-Bus glue, and nothing else: maps the generated skeletons'
 * method calls to #BsManager and #BsSnapshot after polkit said yes, and
 * mirrors the logic's state into exported objects and signals.
 */

#define G_LOG_DOMAIN "blksnapd"

#include <gio/gunixfdlist.h>
#include <glib-unix.h>
#include <polkit/polkit.h>
#include <unistd.h>

#include "bs-cbt.h"
#include "bs-daemon.h"
#include "bs-dbus-generated.h"
#include "bs-error.h"
#include "bs-manager.h"
#include "bs-options.h"

#define BS_DBUS_ROOT        "/org/blksnap/BlkSnap1"
#define BS_ACTION_PREFIX    "org.blksnap.BlkSnap1."
#define BS_ERROR_PREFIX     "org.blksnap.BlkSnap1.Error."

struct _BsDaemon {
	GObject parent_instance;
	BsManager *manager;
	GDBusConnection *connection;
	GDBusObjectManagerServer *object_manager;
	BsDBusManager *manager_iface;
	PolkitAuthority *authority;
	GHashTable *snapshot_objects;   /* id hex -> BsDBusObjectSkeleton */
	GHashTable *device_objects;     /* "MAJ:MIN" -> BsDBusObjectSkeleton */
	GHashTable *name_watches;       /* id hex -> watch id */
	guint unknown_subtrees[2];      /* snapshots/, devices/ */
};

G_DEFINE_TYPE (BsDaemon, bs_daemon, G_TYPE_OBJECT)

static void
bs_daemon_register_errors (void)
{
	static gsize once = 0;

	if (g_once_init_enter (&once)) {
		for (guint code = 0; code < BS_ERROR_LAST; code++) {
			g_autofree gchar *name =
				g_strconcat (BS_ERROR_PREFIX, bs_error_to_name (code), NULL);
			g_dbus_error_register_error (BS_ERROR, code, name);
		}
		g_once_init_leave (&once, 1);
	}
}

/* ---------------------------------------------------------------- polkit */

typedef void (*BsAuthorizedFunc) (BsDaemon *self, GDBusMethodInvocation *invocation,
                                  gpointer data);

typedef struct {
	BsDaemon *self;
	GDBusMethodInvocation *invocation;
	GPtrArray *actions;       /* all must be granted, in order */
	BsSnapshot *snapshot;     /* nullable: whose owner decides own/any */
	const gchar *any_action;  /* added when the caller is not the owner */
	gboolean interactive;
	guint32 uid;
	BsAuthorizedFunc func;
	gpointer data;
	GDestroyNotify data_free;
} BsAuthRequest;

static void
auth_request_free (BsAuthRequest *req)
{
	g_object_unref (req->self);
	g_object_unref (req->invocation);
	g_ptr_array_unref (req->actions);
	g_clear_object (&req->snapshot);
	if (req->data_free != NULL && req->data != NULL)
		req->data_free (req->data);
	g_free (req);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BsAuthRequest, auth_request_free)

static void auth_check_next (BsAuthRequest *req);

static void
auth_deny (BsAuthRequest *req, const gchar *action, const gchar *why)
{
	g_dbus_method_invocation_return_error (req->invocation, BS_ERROR,
	                                       BS_ERROR_NOT_AUTHORIZED,
	                                       "not authorized for action %s%s%s", action,
	                                       why != NULL ? ": " : "", why != NULL ? why : "");
	auth_request_free (req);
}

static void
auth_check_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	BsAuthRequest *req = user_data;
	const gchar *action = g_ptr_array_index (req->actions, 0);
	g_autoptr(PolkitAuthorizationResult) result = NULL;
	g_autoptr(GError) error = NULL;

	result = polkit_authority_check_authorization_finish (POLKIT_AUTHORITY (source), res,
	                                                      &error);
	if (result == NULL) {
		auth_deny (req, action, error->message);
		return;
	}
	if (!polkit_authorization_result_get_is_authorized (result)) {
		auth_deny (req, action,
		           polkit_authorization_result_get_is_challenge (result)
		           ? "authentication is required" : NULL);
		return;
	}
	g_ptr_array_remove_index (req->actions, 0);
	auth_check_next (req);
}

static void
auth_check_next (BsAuthRequest *req)
{
	g_autoptr(PolkitSubject) subject = NULL;
	const gchar *action;

	if (req->actions->len == 0) {
		g_object_set_data (G_OBJECT (req->invocation), "bs-uid",
		                   GUINT_TO_POINTER (req->uid));
		req->func (req->self, req->invocation, req->data);
		auth_request_free (req);
		return;
	}
	action = g_ptr_array_index (req->actions, 0);
	if (req->self->authority == NULL) {
		/* no polkitd: only root, who could use the ioctls anyway */
		if (req->uid == 0) {
			g_ptr_array_remove_index (req->actions, 0);
			auth_check_next (req);
		} else {
			auth_deny (req, action, "polkit is not available");
		}
		return;
	}
	subject = polkit_system_bus_name_new (g_dbus_method_invocation_get_sender (req->invocation));
	polkit_authority_check_authorization (
		req->self->authority, subject, action, NULL,
		req->interactive ? POLKIT_CHECK_AUTHORIZATION_FLAGS_ALLOW_USER_INTERACTION
		                 : POLKIT_CHECK_AUTHORIZATION_FLAGS_NONE,
		NULL, auth_check_cb, req);
}

static void
auth_get_uid_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	BsAuthRequest *req = user_data;
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GError) error = NULL;

	reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), res, &error);
	if (reply == NULL) {
		g_dbus_method_invocation_return_error (req->invocation, BS_ERROR, BS_ERROR_FAILED,
		                                       "cannot identify the caller: %s",
		                                       error->message);
		auth_request_free (req);
		return;
	}
	g_variant_get (reply, "(u)", &req->uid);
	if (req->snapshot != NULL && req->any_action != NULL &&
	    bs_snapshot_get_record (req->snapshot)->owner != req->uid)
		g_ptr_array_insert (req->actions, 0, g_strdup (req->any_action));
	auth_check_next (req);
}

/*
 * Runs @func once the caller holds @action (and, for someone else's
 * @snapshot, BS_ACTION_PREFIX "manage-any-snapshot" too). Never blocks:
 * the caller's uid and polkit's answer come asynchronously. Nothing
 * happens before the answer, so a denied call has no effect at all.
 */
static void
bs_daemon_authorize (BsDaemon *self, GDBusMethodInvocation *invocation, const gchar *action,
                     BsSnapshot *snapshot, gboolean no_user_interaction,
                     BsAuthorizedFunc func, gpointer data, GDestroyNotify data_free)
{
	BsAuthRequest *req = g_new0 (BsAuthRequest, 1);

	req->self = g_object_ref (self);
	req->invocation = g_object_ref (invocation);
	req->actions = g_ptr_array_new_with_free_func (g_free);
	g_ptr_array_add (req->actions, g_strconcat (BS_ACTION_PREFIX, action, NULL));
	if (snapshot != NULL) {
		req->snapshot = g_object_ref (snapshot);
		req->any_action = BS_ACTION_PREFIX "manage-any-snapshot";
	}
	req->interactive = !no_user_interaction;
	req->func = func;
	req->data = data;
	req->data_free = data_free;
	g_dbus_connection_call (g_dbus_method_invocation_get_connection (invocation),
	                        "org.freedesktop.DBus", "/org/freedesktop/DBus",
	                        "org.freedesktop.DBus", "GetConnectionUnixUser",
	                        g_variant_new ("(s)",
	                                       g_dbus_method_invocation_get_sender (invocation)),
	                        G_VARIANT_TYPE ("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL,
	                        auth_get_uid_cb, req);
}

/* The uid polkit's check ran for, kept on the invocation for handlers. */
static guint32
invocation_uid (GDBusMethodInvocation *invocation)
{
	return GPOINTER_TO_UINT (g_object_get_data (G_OBJECT (invocation), "bs-uid"));
}

/* ---------------------------------------------------------------- paths */

static gchar *
device_object_path (const BsDev *dev)
{
	return g_strdup_printf (BS_DBUS_ROOT "/devices/%u_%u", dev->major, dev->minor);
}

static gchar *
snapshot_object_path (BsSnapshot *snapshot)
{
	return g_strdup_printf (BS_DBUS_ROOT "/snapshots/%s", bs_snapshot_get_id_hex (snapshot));
}

/* ------------------------------------------------------------- devices */

static gboolean handle_get_changed_blocks (BsDBusDevice *iface,
                                           GDBusMethodInvocation *invocation,
                                           const gchar *generation, guchar since,
                                           GVariant *options, BsDaemon *self);
static gboolean handle_read_cbt_map (BsDBusDevice *iface, GDBusMethodInvocation *invocation,
                                     GVariant *options, BsDaemon *self);
static gboolean handle_mark_dirty (BsDBusDevice *iface, GDBusMethodInvocation *invocation,
                                   GVariant *ranges, GVariant *options, BsDaemon *self);

static void
bs_daemon_sync_devices (BsDaemon *self)
{
	g_autoptr(GList) devices = bs_manager_get_devices (self->manager);
	g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
	GHashTableIter iter;
	gpointer key, value;

	for (GList *l = devices; l != NULL; l = l->next) {
		BsDeviceInfo *info = l->data;
		BsDBusObjectSkeleton *object = g_hash_table_lookup (self->device_objects, info->name);
		g_autoptr(BsDBusDevice) iface = NULL;
		g_autofree gchar *generation = bs_uuid_to_string ((BsUuid *) info->info.generation_id);
		g_autofree gchar *snapshot_path = NULL;
		BsSnapshot *snapshot = bs_manager_find_snapshot_of_device (self->manager, &info->dev);

		if (object == NULL) {
			g_autofree gchar *path = device_object_path (&info->dev);

			object = bs_dbus_object_skeleton_new (path);
			iface = bs_dbus_device_skeleton_new ();
			bs_dbus_object_skeleton_set_device (object, iface);
			g_object_set_data_full (G_OBJECT (iface), "bs-dev",
			                        g_memdup2 (&info->dev, sizeof (BsDev)), g_free);
			g_hash_table_insert (self->device_objects, g_strdup (info->name), object);
			g_signal_connect (iface, "handle-get-changed-blocks",
			                  G_CALLBACK (handle_get_changed_blocks), self);
			g_signal_connect (iface, "handle-read-cbt-map",
			                  G_CALLBACK (handle_read_cbt_map), self);
			g_signal_connect (iface, "handle-mark-dirty",
			                  G_CALLBACK (handle_mark_dirty), self);
			g_dbus_object_manager_server_export (self->object_manager,
			                                     G_DBUS_OBJECT_SKELETON (object));
		} else {
			iface = bs_dbus_object_get_device (BS_DBUS_OBJECT (object));
		}
		snapshot_path = snapshot != NULL ? snapshot_object_path (snapshot) : g_strdup ("/");
		bs_dbus_device_set_device (iface, info->name);
		bs_dbus_device_set_capacity (iface, info->info.device_capacity * 512);
		bs_dbus_device_set_block_size (iface, info->info.block_size);
		bs_dbus_device_set_block_count (iface, info->info.block_count);
		bs_dbus_device_set_generation (iface, generation);
		bs_dbus_device_set_changes_number (iface, info->info.changes_number);
		bs_dbus_device_set_snapshot (iface, snapshot_path);
		g_hash_table_add (seen, info->name);
	}
	g_hash_table_iter_init (&iter, self->device_objects);
	while (g_hash_table_iter_next (&iter, &key, &value)) {
		if (g_hash_table_contains (seen, key))
			continue;
		g_dbus_object_manager_server_unexport (
			self->object_manager,
			g_dbus_object_get_object_path (G_DBUS_OBJECT (value)));
		g_hash_table_iter_remove (&iter);
	}
}

static gboolean
device_lookup (BsDaemon *self, GDBusMethodInvocation *invocation, BsDBusDevice *iface,
               BsDev *dev)
{
	BsDev *d = g_object_get_data (G_OBJECT (iface), "bs-dev");

	if (d == NULL || bs_manager_find_device (self->manager, d) == NULL) {
		g_dbus_method_invocation_return_error_literal (invocation, BS_ERROR,
		                                               BS_ERROR_NOT_FOUND,
		                                               "the device is not tracked");
		return FALSE;
	}
	*dev = *d;
	return TRUE;
}

static void
get_changed_blocks_authorized (BsDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	GVariant *params = g_dbus_method_invocation_get_parameters (invocation);
	BsDev *dev = data;
	const gchar *generation;
	guint8 since;
	g_autoptr(GVariant) options = NULL;
	g_autoptr(GArray) ranges = NULL;
	g_autoptr(GError) error = NULL;
	gboolean no_interaction, at_take;
	GVariantBuilder builder;

	g_variant_get (params, "(&sy@a{sv})", &generation, &since, &options);
	/* checked before authorization already */
	if (!bs_options_parse_changed (options, &no_interaction, &at_take, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	ranges = bs_manager_get_changed_blocks (self->manager, dev, generation, since, at_take,
	                                        &error);
	if (ranges == NULL) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	g_variant_builder_init (&builder, G_VARIANT_TYPE ("a(tt)"));
	for (guint i = 0; i < ranges->len; i++) {
		BsRange *r = &g_array_index (ranges, BsRange, i);
		g_variant_builder_add (&builder, "(tt)", r->offset, r->length);
	}
	g_dbus_method_invocation_return_value (invocation,
	                                       g_variant_new ("(a(tt))", &builder));
}

static gboolean
handle_get_changed_blocks (BsDBusDevice *iface, GDBusMethodInvocation *invocation,
                           const gchar *generation, guchar since, GVariant *options,
                           BsDaemon *self)
{
	g_autoptr(GError) error = NULL;
	gboolean no_interaction, at_take;
	BsDev dev;
	BsUuid id;

	if (!bs_options_parse_changed (options, &no_interaction, &at_take, &error) ||
	    !bs_uuid_parse (generation, &id, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return TRUE;
	}
	if (!device_lookup (self, invocation, iface, &dev))
		return TRUE;
	bs_daemon_authorize (self, invocation, "read-cbt", NULL, no_interaction,
	                     get_changed_blocks_authorized, g_memdup2 (&dev, sizeof (dev)), g_free);
	return TRUE;
}

static void
read_cbt_map_authorized (BsDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *generation = NULL;
	g_autoptr(GBytes) map = bs_manager_read_cbt_map (self->manager, data, 0, &generation,
	                                                          &error);

	if (map == NULL) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	g_dbus_method_invocation_return_value (
		invocation,
		g_variant_new ("(s@ay)", generation,
		               g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, map, TRUE)));
}

static gboolean
handle_read_cbt_map (BsDBusDevice *iface, GDBusMethodInvocation *invocation, GVariant *options,
                     BsDaemon *self)
{
	g_autoptr(GError) error = NULL;
	gboolean no_interaction;
	BsDev dev;

	if (!bs_options_parse_common (options, &no_interaction, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return TRUE;
	}
	if (!device_lookup (self, invocation, iface, &dev))
		return TRUE;
	bs_daemon_authorize (self, invocation, "read-cbt", NULL, no_interaction,
	                     read_cbt_map_authorized, g_memdup2 (&dev, sizeof (dev)), g_free);
	return TRUE;
}

typedef struct {
	BsDev dev;
	GArray *ranges;
} MarkDirtyData;

static void
mark_dirty_data_free (MarkDirtyData *data)
{
	g_array_unref (data->ranges);
	g_free (data);
}

static void
mark_dirty_authorized (BsDaemon *self, GDBusMethodInvocation *invocation, gpointer user_data)
{
	MarkDirtyData *data = user_data;
	g_autoptr(GError) error = NULL;

	if (!bs_manager_mark_dirty (self->manager, &data->dev, data->ranges, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	bs_manager_refresh (self->manager);
	g_dbus_method_invocation_return_value (invocation, NULL);
}

static gboolean
handle_mark_dirty (BsDBusDevice *iface, GDBusMethodInvocation *invocation, GVariant *ranges,
                   GVariant *options, BsDaemon *self)
{
	g_autoptr(GError) error = NULL;
	MarkDirtyData *data;
	gboolean no_interaction;
	GVariantIter iter;
	BsRange r;
	BsDev dev;

	if (!bs_options_parse_common (options, &no_interaction, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return TRUE;
	}
	if (g_variant_n_children (ranges) == 0 ||
	    g_variant_n_children (ranges) > BLKSNAP_MAX_DIRTY_RANGES) {
		g_dbus_method_invocation_return_error (invocation, BS_ERROR,
		                                       BS_ERROR_INVALID_ARGUMENT,
		                                       "give 1 to %u ranges",
		                                       BLKSNAP_MAX_DIRTY_RANGES);
		return TRUE;
	}
	if (!device_lookup (self, invocation, iface, &dev))
		return TRUE;
	data = g_new0 (MarkDirtyData, 1);
	data->dev = dev;
	data->ranges = g_array_new (FALSE, FALSE, sizeof (BsRange));
	g_variant_iter_init (&iter, ranges);
	while (g_variant_iter_next (&iter, "(tt)", &r.offset, &r.length))
		g_array_append_val (data->ranges, r);
	bs_daemon_authorize (self, invocation, "track-devices", NULL, no_interaction,
	                     mark_dirty_authorized, data, (GDestroyNotify) mark_dirty_data_free);
	return TRUE;
}

/* ------------------------------------------------------------ snapshots */

static void
bs_daemon_sync_snapshot (BsDaemon *self, BsSnapshot *snapshot)
{
	BsDBusObjectSkeleton *object =
		g_hash_table_lookup (self->snapshot_objects, bs_snapshot_get_id_hex (snapshot));
	g_autoptr(BsDBusSnapshot) iface = NULL;
	BsStateRecord *record = bs_snapshot_get_record (snapshot);
	GArray *devices = bs_snapshot_get_devices (snapshot);
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
	GVariantBuilder images;
	GHashTableIter iter;
	gpointer key, value;

	if (object == NULL)
		return;
	iface = bs_dbus_object_get_snapshot (BS_DBUS_OBJECT (object));
	for (guint i = 0; i < devices->len; i++)
		g_ptr_array_add (names, bs_dev_to_string (&g_array_index (devices, BsDev, i)));
	g_ptr_array_add (names, NULL);
	g_variant_builder_init (&images, G_VARIANT_TYPE ("a{ss}"));
	g_hash_table_iter_init (&iter, bs_snapshot_get_images (snapshot));
	while (g_hash_table_iter_next (&iter, &key, &value))
		g_variant_builder_add (&images, "{ss}", key, value);

	g_object_freeze_notify (G_OBJECT (iface));
	bs_dbus_snapshot_set_id (iface, bs_snapshot_get_id_string (snapshot));
	bs_dbus_snapshot_set_devices (iface, (const gchar *const *) names->pdata);
	bs_dbus_snapshot_set_state (iface, bs_snapshot_get_state_string (snapshot));
	bs_dbus_snapshot_set_error (iface, bs_snapshot_get_error (snapshot));
	bs_dbus_snapshot_set_images (iface, g_variant_builder_end (&images));
	bs_dbus_snapshot_set_owner (iface, record->owner);
	bs_dbus_snapshot_set_creation_time (iface, record->created_us);
	bs_dbus_snapshot_set_expiry_time (iface, record->expiry_us);
	bs_dbus_snapshot_set_bound_to (iface, record->bound_to != NULL ? record->bound_to : "");
	bs_dbus_snapshot_set_storage_allocated (iface, bs_snapshot_get_allocated (snapshot));
	bs_dbus_snapshot_set_storage_used (iface, bs_snapshot_get_used (snapshot));
	bs_dbus_snapshot_set_storage_spare (iface, bs_snapshot_get_spare (snapshot));
	bs_dbus_snapshot_set_storage_limit (iface, record->limit);
	bs_dbus_snapshot_set_grow_step (iface, record->grow_step);
	g_object_thaw_notify (G_OBJECT (iface));
}

static BsSnapshot *
snapshot_lookup (BsDaemon *self, GDBusMethodInvocation *invocation, BsDBusSnapshot *iface)
{
	const gchar *hex = g_object_get_data (G_OBJECT (iface), "bs-id-hex");
	BsSnapshot *snapshot = hex != NULL ? bs_manager_find_snapshot (self->manager, hex) : NULL;

	if (snapshot == NULL)
		g_dbus_method_invocation_return_error_literal (invocation, BS_ERROR,
		                                               BS_ERROR_NOT_FOUND,
		                                               "no such snapshot (any more)");
	return snapshot;
}

/* After polkit: the snapshot may have gone meanwhile. */
static BsSnapshot *
snapshot_recheck (BsDaemon *self, GDBusMethodInvocation *invocation, BsSnapshot *snapshot)
{
	if (bs_manager_find_snapshot (self->manager, bs_snapshot_get_id_hex (snapshot)) == snapshot)
		return snapshot;
	g_dbus_method_invocation_return_error_literal (invocation, BS_ERROR, BS_ERROR_NOT_FOUND,
	                                               "the snapshot was destroyed meanwhile");
	return NULL;
}

static void
take_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GDBusMethodInvocation) invocation = user_data;
	g_autoptr(GError) error = NULL;

	if (!bs_snapshot_take_finish (BS_SNAPSHOT (source), res, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	g_dbus_method_invocation_return_value (invocation, NULL);
}

static void
take_authorized (BsDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	BsSnapshot *snapshot = snapshot_recheck (self, invocation, data);

	if (snapshot != NULL)
		bs_snapshot_take_async (snapshot, take_done, g_object_ref (invocation));
}

static void
destroy_authorized (BsDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	BsSnapshot *snapshot = snapshot_recheck (self, invocation, data);
	g_autoptr(GError) error = NULL;

	if (snapshot == NULL)
		return;
	if (!bs_manager_destroy_snapshot (self->manager, snapshot, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	g_dbus_method_invocation_return_value (invocation, NULL);
}

static void
append_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GDBusMethodInvocation) invocation = user_data;
	g_autoptr(GError) error = NULL;

	if (!bs_snapshot_grow_finish (BS_SNAPSHOT (source), res, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	g_dbus_method_invocation_return_value (invocation, NULL);
}

static void
append_authorized (BsDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	BsSnapshot *snapshot = snapshot_recheck (self, invocation, data);
	guint64 size;

	if (snapshot == NULL)
		return;
	g_variant_get (g_dbus_method_invocation_get_parameters (invocation), "(t@a{sv})", &size,
	               NULL);
	bs_snapshot_grow_async (snapshot, size, append_done, g_object_ref (invocation));
}

static void
open_image_authorized (BsDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	BsSnapshot *snapshot = snapshot_recheck (self, invocation, data);
	g_autoptr(GUnixFDList) fd_list = NULL;
	g_autoptr(GError) error = NULL;
	const gchar *device;
	BsDev dev;
	gint fd, index;

	if (snapshot == NULL)
		return;
	g_variant_get (g_dbus_method_invocation_get_parameters (invocation), "(&s@a{sv})",
	               &device, NULL);
	if (!bs_dev_parse (device, &dev, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	fd = bs_snapshot_open_image (snapshot, &dev, &error);
	if (fd < 0) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	fd_list = g_unix_fd_list_new ();
	index = g_unix_fd_list_append (fd_list, fd, &error);
	close (fd);
	if (index < 0) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	bs_snapshot_log (snapshot, G_LOG_LEVEL_MESSAGE, "image of %s opened for %s", device,
	                 g_dbus_method_invocation_get_sender (invocation));
	g_dbus_method_invocation_return_value_with_unix_fd_list (
		invocation, g_variant_new ("(h)", index), fd_list);
}

/* The common part of the Snapshot methods: options, lookup, polkit. */
static gboolean
snapshot_method (BsDaemon *self, BsDBusSnapshot *iface, GDBusMethodInvocation *invocation,
                 GVariant *options, const gchar *action, BsAuthorizedFunc func)
{
	g_autoptr(GError) error = NULL;
	gboolean no_interaction;
	BsSnapshot *snapshot;

	if (!bs_options_parse_common (options, &no_interaction, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return TRUE;
	}
	snapshot = snapshot_lookup (self, invocation, iface);
	if (snapshot == NULL)
		return TRUE;
	bs_daemon_authorize (self, invocation, action, snapshot, no_interaction, func,
	                     g_object_ref (snapshot), g_object_unref);
	return TRUE;
}

static gboolean
handle_take (BsDBusSnapshot *iface, GDBusMethodInvocation *invocation, GVariant *options,
             BsDaemon *self)
{
	return snapshot_method (self, iface, invocation, options, "manage-own-snapshots",
	                        take_authorized);
}

static gboolean
handle_destroy (BsDBusSnapshot *iface, GDBusMethodInvocation *invocation, GVariant *options,
                BsDaemon *self)
{
	return snapshot_method (self, iface, invocation, options, "manage-own-snapshots",
	                        destroy_authorized);
}

static gboolean
handle_append_storage (BsDBusSnapshot *iface, GDBusMethodInvocation *invocation, guint64 size,
                       GVariant *options, BsDaemon *self)
{
	if (size == 0 || size > BS_SIZE_MAX) {
		g_dbus_method_invocation_return_error (invocation, BS_ERROR,
		                                       BS_ERROR_INVALID_ARGUMENT,
		                                       "size %" G_GUINT64_FORMAT " is 0 or absurd",
		                                       size);
		return TRUE;
	}
	return snapshot_method (self, iface, invocation, options, "manage-own-snapshots",
	                        append_authorized);
}

static gboolean
handle_open_image (BsDBusSnapshot *iface, GDBusMethodInvocation *invocation,
                   GUnixFDList *fd_list, const gchar *device, GVariant *options,
                   BsDaemon *self)
{
	g_autoptr(GError) error = NULL;
	BsDev dev;

	if (!bs_dev_parse (device, &dev, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return TRUE;
	}
	return snapshot_method (self, iface, invocation, options, "open-image",
	                        open_image_authorized);
}

static void
snapshot_changed_cb (BsSnapshot *snapshot, BsDaemon *self)
{
	bs_daemon_sync_snapshot (self, snapshot);
	bs_daemon_sync_devices (self);
}

static BsDBusSnapshot *
snapshot_iface (BsDaemon *self, BsSnapshot *snapshot)
{
	BsDBusObjectSkeleton *object =
		g_hash_table_lookup (self->snapshot_objects, bs_snapshot_get_id_hex (snapshot));

	return object != NULL ? bs_dbus_object_peek_snapshot (BS_DBUS_OBJECT (object)) : NULL;
}

static void
snapshot_low_space_cb (BsSnapshot *snapshot, guint64 free_bytes, guint64 requested,
                       BsDaemon *self)
{
	BsDBusSnapshot *iface = snapshot_iface (self, snapshot);

	bs_daemon_sync_snapshot (self, snapshot);
	if (iface != NULL)
		bs_dbus_snapshot_emit_low_space (iface, free_bytes, requested);
}

static void
snapshot_storage_appended_cb (BsSnapshot *snapshot, guint64 added, guint64 allocated,
                              BsDaemon *self)
{
	BsDBusSnapshot *iface = snapshot_iface (self, snapshot);

	bs_daemon_sync_snapshot (self, snapshot);
	if (iface != NULL)
		bs_dbus_snapshot_emit_storage_appended (iface, added, allocated);
}

static void
snapshot_corrupted_cb (BsSnapshot *snapshot, const gchar *device, gint error, BsDaemon *self)
{
	BsDBusSnapshot *iface = snapshot_iface (self, snapshot);

	bs_daemon_sync_snapshot (self, snapshot);
	if (iface != NULL)
		bs_dbus_snapshot_emit_corrupted (iface, device, error);
}

static void
bound_name_vanished_cb (GDBusConnection *connection, const gchar *name, gpointer user_data)
{
	BsDaemon *self = bs_daemon_get_default ();
	BsSnapshot *snapshot = bs_manager_find_snapshot (self->manager, user_data);
	g_autoptr(GError) error = NULL;

	if (snapshot == NULL)
		return;
	bs_snapshot_log (snapshot, G_LOG_LEVEL_MESSAGE, "%s left the bus: destroying", name);
	if (!bs_manager_destroy_snapshot (self->manager, snapshot, &error))
		bs_snapshot_log (snapshot, G_LOG_LEVEL_WARNING, "cannot destroy: %s", error->message);
}

static void
manager_snapshot_added_cb (BsManager *manager, BsSnapshot *snapshot, BsDaemon *self)
{
	g_autofree gchar *path = snapshot_object_path (snapshot);
	g_autoptr(BsDBusObjectSkeleton) object = bs_dbus_object_skeleton_new (path);
	g_autoptr(BsDBusSnapshot) iface = bs_dbus_snapshot_skeleton_new ();
	const gchar *hex = bs_snapshot_get_id_hex (snapshot);
	const gchar *bound_to = bs_snapshot_get_record (snapshot)->bound_to;

	g_object_set_data_full (G_OBJECT (iface), "bs-id-hex", g_strdup (hex), g_free);
	bs_dbus_object_skeleton_set_snapshot (object, iface);
	g_signal_connect (iface, "handle-take", G_CALLBACK (handle_take), self);
	g_signal_connect (iface, "handle-destroy", G_CALLBACK (handle_destroy), self);
	g_signal_connect (iface, "handle-append-storage", G_CALLBACK (handle_append_storage), self);
	g_signal_connect (iface, "handle-open-image", G_CALLBACK (handle_open_image), self);
	g_signal_connect_object (snapshot, "changed", G_CALLBACK (snapshot_changed_cb), self, 0);
	/* spares made or dropped: StorageSpare */
	g_signal_connect_object (snapshot, "record-changed", G_CALLBACK (snapshot_changed_cb),
	                         self, 0);
	g_signal_connect_object (snapshot, "low-space", G_CALLBACK (snapshot_low_space_cb), self, 0);
	g_signal_connect_object (snapshot, "storage-appended",
	                         G_CALLBACK (snapshot_storage_appended_cb), self, 0);
	g_signal_connect_object (snapshot, "corrupted", G_CALLBACK (snapshot_corrupted_cb), self, 0);
	g_hash_table_insert (self->snapshot_objects, g_strdup (hex), g_object_ref (object));
	bs_daemon_sync_snapshot (self, snapshot);
	g_dbus_object_manager_server_export (self->object_manager, G_DBUS_OBJECT_SKELETON (object));

	/* a snapshot bound to a connection dies with it; after a restart of
	 * the daemon the watch fires at once if the name is gone already */
	if (bound_to != NULL && self->connection != NULL) {
		guint id = g_bus_watch_name_on_connection (self->connection, bound_to,
		                                           G_BUS_NAME_WATCHER_FLAGS_NONE, NULL,
		                                           bound_name_vanished_cb, g_strdup (hex),
		                                           g_free);
		g_hash_table_insert (self->name_watches, g_strdup (hex), GUINT_TO_POINTER (id));
	}
	bs_daemon_sync_devices (self);
}

static void
manager_snapshot_removed_cb (BsManager *manager, BsSnapshot *snapshot, BsDaemon *self)
{
	const gchar *hex = bs_snapshot_get_id_hex (snapshot);
	g_autofree gchar *path = snapshot_object_path (snapshot);
	guint watch = GPOINTER_TO_UINT (g_hash_table_lookup (self->name_watches, hex));

	if (watch != 0) {
		g_bus_unwatch_name (watch);
		g_hash_table_remove (self->name_watches, hex);
	}
	g_dbus_object_manager_server_unexport (self->object_manager, path);
	g_hash_table_remove (self->snapshot_objects, hex);
	/* the devices' Snapshot property */
	bs_daemon_sync_devices (self);
}

/* ------------------------------------------------------ unknown objects */

/*
 * A call on a snapshot or device object that does not exist (destroyed,
 * untracked, or never there) fails with BS_ERROR_NOT_FOUND naming the
 * path, rather than D-Bus's generic UnknownMethod. GDBus dispatches a call
 * to an object registered at its own path (every exported one) before it
 * tries the subtree of the parent path, so these subtrees only ever see
 * the paths nothing else answers.
 */
typedef struct {
	BsDaemon *self;
	const gchar *kind;               /* "snapshot", "device" */
	GHashTable *(*objects) (BsDaemon *self);
	GDBusInterfaceInfo *(*info) (void);
} UnknownSubtree;

static GHashTable *
snapshot_objects_of (BsDaemon *self)
{
	return self->snapshot_objects;
}

static GHashTable *
device_objects_of (BsDaemon *self)
{
	return self->device_objects;
}

static void
unknown_object_method_call (GDBusConnection *connection, const gchar *sender,
                            const gchar *object_path, const gchar *interface_name,
                            const gchar *method_name, GVariant *parameters,
                            GDBusMethodInvocation *invocation, gpointer user_data)
{
	UnknownSubtree *subtree = user_data;

	g_dbus_method_invocation_return_error (invocation, BS_ERROR, BS_ERROR_NOT_FOUND,
	                                       "no %s at %s (gone, or never there)",
	                                       subtree->kind, object_path);
}

static GVariant *
unknown_object_get_property (GDBusConnection *connection, const gchar *sender,
                             const gchar *object_path, const gchar *interface_name,
                             const gchar *property_name, GError **error,
                             gpointer user_data)
{
	UnknownSubtree *subtree = user_data;

	g_set_error (error, BS_ERROR, BS_ERROR_NOT_FOUND, "no %s at %s (gone, or never there)",
	             subtree->kind, object_path);
	return NULL;
}

static const GDBusInterfaceVTable unknown_object_vtable = {
	unknown_object_method_call,
	unknown_object_get_property,
	NULL,   /* no writable properties: GDBus refuses Set itself */
	{ 0 }
};

/* The children are the exported objects, so that introspection of the
 * subtree's root still lists them. */
static gchar **
unknown_subtree_enumerate (GDBusConnection *connection, const gchar *sender,
                           const gchar *object_path, gpointer user_data)
{
	UnknownSubtree *subtree = user_data;
	GHashTable *objects = subtree->objects (subtree->self);
	GPtrArray *nodes = g_ptr_array_new ();
	GHashTableIter iter;
	gpointer value;

	g_hash_table_iter_init (&iter, objects);
	while (g_hash_table_iter_next (&iter, NULL, &value)) {
		const gchar *path = g_dbus_object_get_object_path (G_DBUS_OBJECT (value));
		g_ptr_array_add (nodes, g_path_get_basename (path));
	}
	g_ptr_array_add (nodes, NULL);
	return (gchar **) g_ptr_array_free (nodes, FALSE);
}

static GDBusInterfaceInfo **
unknown_subtree_introspect (GDBusConnection *connection, const gchar *sender,
                            const gchar *object_path, const gchar *node, gpointer user_data)
{
	UnknownSubtree *subtree = user_data;
	GDBusInterfaceInfo **infos;

	if (node == NULL)
		return NULL;
	/* the interface the calls are checked against (names, signatures) */
	infos = g_new0 (GDBusInterfaceInfo *, 2);
	infos[0] = g_dbus_interface_info_ref (subtree->info ());
	return infos;
}

static const GDBusInterfaceVTable *
unknown_subtree_dispatch (GDBusConnection *connection, const gchar *sender,
                          const gchar *object_path, const gchar *interface_name,
                          const gchar *node, gpointer *out_user_data, gpointer user_data)
{
	*out_user_data = user_data;
	return &unknown_object_vtable;
}

static const GDBusSubtreeVTable unknown_subtree_vtable = {
	unknown_subtree_enumerate,
	unknown_subtree_introspect,
	unknown_subtree_dispatch,
	{ 0 }
};

static void
bs_daemon_register_unknown_subtrees (BsDaemon *self)
{
	static UnknownSubtree subtrees[2];
	static const gchar *paths[2] = { BS_DBUS_ROOT "/snapshots", BS_DBUS_ROOT "/devices" };

	subtrees[0] = (UnknownSubtree) { self, "snapshot", snapshot_objects_of,
	                                 bs_dbus_snapshot_interface_info };
	subtrees[1] = (UnknownSubtree) { self, "device", device_objects_of,
	                                 bs_dbus_device_interface_info };
	for (guint i = 0; i < G_N_ELEMENTS (subtrees); i++) {
		g_autoptr(GError) error = NULL;

		self->unknown_subtrees[i] = g_dbus_connection_register_subtree (
			self->connection, paths[i], &unknown_subtree_vtable,
			G_DBUS_SUBTREE_FLAGS_DISPATCH_TO_UNENUMERATED_NODES, &subtrees[i], NULL,
			&error);
		/* not fatal: such calls then get D-Bus's UnknownMethod */
		if (self->unknown_subtrees[i] == 0)
			g_warning ("cannot register %s: %s", paths[i], error->message);
	}
}

/* -------------------------------------------------------------- manager */

static void
track_authorized (BsDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *path = NULL;

	if (!bs_manager_track (self->manager, data, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	bs_daemon_sync_devices (self);
	path = device_object_path (data);
	g_dbus_method_invocation_return_value (invocation, g_variant_new ("(o)", path));
}

static void
untrack_authorized (BsDaemon *self, GDBusMethodInvocation *invocation, gpointer data)
{
	g_autoptr(GError) error = NULL;

	if (!bs_manager_untrack (self->manager, data, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	bs_daemon_sync_devices (self);
	g_dbus_method_invocation_return_value (invocation, NULL);
}

static gboolean
device_method (BsDaemon *self, GDBusMethodInvocation *invocation, const gchar *device,
               GVariant *options, BsAuthorizedFunc func)
{
	g_autoptr(GError) error = NULL;
	gboolean no_interaction;
	BsDev dev;

	if (!bs_options_parse_common (options, &no_interaction, &error) ||
	    !bs_dev_parse (device, &dev, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return TRUE;
	}
	bs_daemon_authorize (self, invocation, "track-devices", NULL, no_interaction, func,
	                     g_memdup2 (&dev, sizeof (dev)), g_free);
	return TRUE;
}

static gboolean
handle_track_device (BsDBusManager *iface, GDBusMethodInvocation *invocation,
                     const gchar *device, GVariant *options, BsDaemon *self)
{
	return device_method (self, invocation, device, options, track_authorized);
}

static gboolean
handle_untrack_device (BsDBusManager *iface, GDBusMethodInvocation *invocation,
                       const gchar *device, GVariant *options, BsDaemon *self)
{
	return device_method (self, invocation, device, options, untrack_authorized);
}

typedef struct {
	GArray *devices;
	BsSnapshotOptions options;
	guint32 uid;
} CreateData;

static void
create_data_free (CreateData *data)
{
	g_array_unref (data->devices);
	g_free (data);
}

static void
create_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GDBusMethodInvocation) invocation = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(BsSnapshot) snapshot = NULL;
	g_autofree gchar *path = NULL;

	snapshot = bs_manager_create_snapshot_finish (BS_MANAGER (source), res, &error);
	if (snapshot == NULL) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	path = snapshot_object_path (snapshot);
	g_dbus_method_invocation_return_value (invocation, g_variant_new ("(o)", path));
}

static void
create_authorized (BsDaemon *self, GDBusMethodInvocation *invocation, gpointer user_data)
{
	CreateData *data = user_data;
	g_autoptr(GError) error = NULL;

	/* checked again: things may have changed while polkit thought */
	if (!bs_manager_check_devices (self->manager, data->devices, &error)) {
		g_dbus_method_invocation_return_gerror (invocation, error);
		return;
	}
	bs_manager_create_snapshot_async (self->manager, data->devices, &data->options,
	                                  invocation_uid (invocation),
	                                  data->options.bind_to_caller
	                                  ? g_dbus_method_invocation_get_sender (invocation)
	                                  : NULL,
	                                  create_done, g_object_ref (invocation));
}

static gboolean
handle_create_snapshot (BsDBusManager *iface, GDBusMethodInvocation *invocation,
                        const gchar *const *devices, GVariant *options, BsDaemon *self)
{
	g_autoptr(GError) error = NULL;
	CreateData *data = g_new0 (CreateData, 1);

	data->devices = g_array_new (FALSE, FALSE, sizeof (BsDev));
	if (!bs_options_parse_snapshot (options, bs_manager_get_config (self->manager),
	                                &data->options, &error))
		goto fail;
	for (guint i = 0; devices[i] != NULL; i++) {
		BsDev dev;

		if (!bs_dev_parse (devices[i], &dev, &error))
			goto fail;
		g_array_append_val (data->devices, dev);
	}
	if (!bs_manager_check_devices (self->manager, data->devices, &error))
		goto fail;
	bs_daemon_authorize (self, invocation, "create-snapshot", NULL,
	                     data->options.no_user_interaction, create_authorized, data,
	                     (GDestroyNotify) create_data_free);
	return TRUE;
fail:
	create_data_free (data);
	g_dbus_method_invocation_return_gerror (invocation, error);
	return TRUE;
}

static void
bs_daemon_sync_manager (BsDaemon *self)
{
	bs_dbus_manager_set_version (self->manager_iface, PACKAGE_VERSION);
	bs_dbus_manager_set_module_version (self->manager_iface,
	                                    bs_manager_get_module_version (self->manager));
	bs_dbus_manager_set_storage_directory (self->manager_iface,
	                                       bs_manager_get_config (self->manager)->storage_dir);
}

static void
manager_changed_cb (BsManager *manager, BsDaemon *self)
{
	bs_daemon_sync_manager (self);
}

static void
manager_devices_changed_cb (BsManager *manager, BsDaemon *self)
{
	bs_daemon_sync_devices (self);
}

/* ------------------------------------------------------------ lifecycle */

static BsDaemon *default_daemon;

BsDaemon *
bs_daemon_get_default (void)
{
	return default_daemon;
}

/**
 * bs_daemon_new:
 * @manager: the logic, started already
 * @authority: (nullable): polkit, or %NULL to allow root only
 */
BsDaemon *
bs_daemon_new (BsManager *manager, PolkitAuthority *authority)
{
	BsDaemon *self = g_object_new (BS_TYPE_DAEMON, NULL);
	g_autoptr(BsDBusObjectSkeleton) object = NULL;

	bs_daemon_register_errors ();
	self->manager = g_object_ref (manager);
	if (authority != NULL)
		self->authority = g_object_ref (authority);
	self->object_manager = g_dbus_object_manager_server_new (BS_DBUS_ROOT);

	object = bs_dbus_object_skeleton_new (BS_DBUS_ROOT "/Manager");
	self->manager_iface = bs_dbus_manager_skeleton_new ();
	bs_dbus_object_skeleton_set_manager (object, self->manager_iface);
	g_signal_connect (self->manager_iface, "handle-track-device",
	                  G_CALLBACK (handle_track_device), self);
	g_signal_connect (self->manager_iface, "handle-untrack-device",
	                  G_CALLBACK (handle_untrack_device), self);
	g_signal_connect (self->manager_iface, "handle-create-snapshot",
	                  G_CALLBACK (handle_create_snapshot), self);
	bs_daemon_sync_manager (self);
	g_dbus_object_manager_server_export (self->object_manager, G_DBUS_OBJECT_SKELETON (object));

	g_signal_connect_object (manager, "changed", G_CALLBACK (manager_changed_cb), self, 0);
	g_signal_connect_object (manager, "devices-changed",
	                         G_CALLBACK (manager_devices_changed_cb), self, 0);
	g_signal_connect_object (manager, "snapshot-added",
	                         G_CALLBACK (manager_snapshot_added_cb), self, 0);
	g_signal_connect_object (manager, "snapshot-removed",
	                         G_CALLBACK (manager_snapshot_removed_cb), self, 0);
	default_daemon = self;
	return self;
}

/**
 * bs_daemon_export:
 *
 * Puts the objects on @connection: the recovered snapshots too, and starts
 * watching the bus names of connection-bound ones.
 */
void
bs_daemon_export (BsDaemon *self, GDBusConnection *connection)
{
	g_autoptr(GList) snapshots = bs_manager_get_snapshots (self->manager);

	self->connection = g_object_ref (connection);
	for (GList *l = snapshots; l != NULL; l = l->next)
		manager_snapshot_added_cb (self->manager, l->data, self);
	bs_daemon_sync_devices (self);
	g_dbus_object_manager_server_set_connection (self->object_manager, connection);
	bs_daemon_register_unknown_subtrees (self);
}

static void
bs_daemon_finalize (GObject *object)
{
	BsDaemon *self = BS_DAEMON (object);
	GHashTableIter iter;
	gpointer value;

	g_hash_table_iter_init (&iter, self->name_watches);
	while (g_hash_table_iter_next (&iter, NULL, &value))
		g_bus_unwatch_name (GPOINTER_TO_UINT (value));
	for (guint i = 0; i < G_N_ELEMENTS (self->unknown_subtrees); i++) {
		if (self->unknown_subtrees[i] != 0)
			g_dbus_connection_unregister_subtree (self->connection,
			                                      self->unknown_subtrees[i]);
	}
	g_hash_table_unref (self->name_watches);
	g_hash_table_unref (self->snapshot_objects);
	g_hash_table_unref (self->device_objects);
	g_clear_object (&self->manager_iface);
	g_clear_object (&self->object_manager);
	g_clear_object (&self->authority);
	g_clear_object (&self->connection);
	g_object_unref (self->manager);
	if (default_daemon == self)
		default_daemon = NULL;
	G_OBJECT_CLASS (bs_daemon_parent_class)->finalize (object);
}

static void
bs_daemon_init (BsDaemon *self)
{
	self->snapshot_objects = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
	                                                g_object_unref);
	self->device_objects = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
	                                              g_object_unref);
	self->name_watches = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

static void
bs_daemon_class_init (BsDaemonClass *klass)
{
	G_OBJECT_CLASS (klass)->finalize = bs_daemon_finalize;
}
