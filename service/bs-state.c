/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#include "bs-error.h"
#include "bs-state.h"

#define GROUP_PREFIX "Snapshot "

BsStateRecord *
bs_state_record_new (const BsUuid *id)
{
	BsStateRecord *record = g_new0 (BsStateRecord, 1);

	record->id = *id;
	record->files = g_ptr_array_new_with_free_func (g_free);
	record->spares = g_ptr_array_new_with_free_func (g_free);
	return record;
}

void
bs_state_record_free (BsStateRecord *record)
{
	if (record == NULL)
		return;
	g_free (record->bound_to);
	g_ptr_array_unref (record->spares);
	g_ptr_array_unref (record->files);
	g_free (record);
}

/**
 * bs_state_to_data:
 * @records: a #GPtrArray of #BsStateRecord
 *
 * Returns: (transfer full): the text of a state file
 */
gchar *
bs_state_to_data (GPtrArray *records)
{
	g_autoptr(GKeyFile) kf = g_key_file_new ();

	for (guint i = 0; i < records->len; i++) {
		BsStateRecord *r = g_ptr_array_index (records, i);
		g_autofree gchar *id = bs_uuid_to_string (&r->id);
		g_autofree gchar *group = g_strconcat (GROUP_PREFIX, id, NULL);

		g_key_file_set_uint64 (kf, group, "Owner", r->owner);
		g_key_file_set_int64 (kf, group, "Created", r->created_us);
		g_key_file_set_int64 (kf, group, "Expiry", r->expiry_us);
		g_key_file_set_string (kf, group, "BoundTo", r->bound_to != NULL ? r->bound_to : "");
		g_key_file_set_uint64 (kf, group, "Limit", r->limit);
		g_key_file_set_uint64 (kf, group, "GrowStep", r->grow_step);
		g_key_file_set_string_list (kf, group, "Files",
		                            (const gchar *const *) r->files->pdata, r->files->len);
		g_key_file_set_string_list (kf, group, "Spares",
		                            (const gchar *const *) r->spares->pdata, r->spares->len);
	}
	return g_key_file_to_data (kf, NULL, NULL);
}

static gboolean
state_get_u64 (GKeyFile *kf, const gchar *group, const gchar *key, guint64 max,
               guint64 *value, GError **error)
{
	g_autofree gchar *str = g_key_file_get_value (kf, group, key, error);

	if (str == NULL)
		return FALSE;
	if (!g_ascii_string_to_unsigned (str, 10, 0, max, value, NULL)) {
		g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
		             "[%s] %s: bad value '%s'", group, key, str);
		return FALSE;
	}
	return TRUE;
}

/**
 * bs_state_load_data:
 *
 * Returns: (transfer container): a #GPtrArray of #BsStateRecord, or %NULL
 *	if the text is not a valid state file
 */
GPtrArray *
bs_state_load_data (const gchar *data, GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new ();
	g_autoptr(GPtrArray) records =
		g_ptr_array_new_with_free_func ((GDestroyNotify) bs_state_record_free);
	g_auto(GStrv) groups = NULL;

	if (!g_key_file_load_from_data (kf, data, -1, G_KEY_FILE_NONE, error))
		return NULL;
	groups = g_key_file_get_groups (kf, NULL);
	for (guint i = 0; groups[i] != NULL; i++) {
		g_autoptr(BsStateRecord) r = NULL;
		g_auto(GStrv) files = NULL;
		guint64 owner, created, expiry;
		BsUuid id;

		if (!g_str_has_prefix (groups[i], GROUP_PREFIX) ||
		    !bs_uuid_parse (groups[i] + strlen (GROUP_PREFIX), &id, NULL)) {
			g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
			             "unknown group [%s]", groups[i]);
			return NULL;
		}
		r = bs_state_record_new (&id);
		if (!state_get_u64 (kf, groups[i], "Owner", G_MAXUINT32, &owner, error) ||
		    !state_get_u64 (kf, groups[i], "Created", G_MAXINT64, &created, error) ||
		    !state_get_u64 (kf, groups[i], "Expiry", G_MAXINT64, &expiry, error) ||
		    !state_get_u64 (kf, groups[i], "Limit", G_MAXUINT64, &r->limit, error) ||
		    !state_get_u64 (kf, groups[i], "GrowStep", G_MAXUINT64, &r->grow_step, error))
			return NULL;
		r->owner = owner;
		r->created_us = created;
		r->expiry_us = expiry;
		r->bound_to = g_key_file_get_string (kf, groups[i], "BoundTo", error);
		if (r->bound_to == NULL)
			return NULL;
		if (r->bound_to[0] == '\0')
			g_clear_pointer (&r->bound_to, g_free);
		files = g_key_file_get_string_list (kf, groups[i], "Files", NULL, NULL);
		for (guint j = 0; files != NULL && files[j] != NULL; j++) {
			if (!g_path_is_absolute (files[j])) {
				g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
				             "[%s] Files: '%s' is not an absolute path",
				             groups[i], files[j]);
				return NULL;
			}
			g_ptr_array_add (r->files, g_strdup (files[j]));
		}
		/* optional: state files of 0.1.0 have no spares */
		g_clear_pointer (&files, g_strfreev);
		files = g_key_file_get_string_list (kf, groups[i], "Spares", NULL, NULL);
		for (guint j = 0; files != NULL && files[j] != NULL; j++) {
			if (!g_path_is_absolute (files[j])) {
				g_set_error (error, BS_ERROR, BS_ERROR_INVALID_ARGUMENT,
				             "[%s] Spares: '%s' is not an absolute path",
				             groups[i], files[j]);
				return NULL;
			}
			g_ptr_array_add (r->spares, g_strdup (files[j]));
		}
		g_ptr_array_add (records, g_steal_pointer (&r));
	}
	return g_steal_pointer (&records);
}

/**
 * bs_state_load:
 *
 * A missing file is an empty state.
 */
GPtrArray *
bs_state_load (const gchar *path, GError **error)
{
	g_autofree gchar *data = NULL;
	g_autoptr(GError) error_local = NULL;
	GPtrArray *records;

	if (!g_file_get_contents (path, &data, NULL, &error_local)) {
		if (g_error_matches (error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			return g_ptr_array_new_with_free_func ((GDestroyNotify) bs_state_record_free);
		g_propagate_error (error, g_steal_pointer (&error_local));
		return NULL;
	}
	records = bs_state_load_data (data, error);
	if (records == NULL)
		g_prefix_error (error, "%s: ", path);
	return records;
}

/**
 * bs_state_save:
 *
 * Replaces @path atomically (write a new file, rename it over), so a
 * daemon crash leaves the old or the new state, never a torn one. Not
 * synced: snapshots do not survive a reboot, and after one every storage
 * file is an orphan, removed by its name; a crashed daemon leaves the page
 * cache behind. So the main loop never waits for the disk here, which is
 * busiest exactly when the storage grows.
 */
gboolean
bs_state_save (const gchar *path, GPtrArray *records, GError **error)
{
	g_autofree gchar *data = bs_state_to_data (records);
	g_autofree gchar *tmp = g_strconcat (path, ".new", NULL);

	if (!g_file_set_contents_full (tmp, data, -1, G_FILE_SET_CONTENTS_NONE, 0600, error))
		return FALSE;
	if (g_rename (tmp, path) != 0) {
		gint errsv = errno;
		g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errsv),
		             "rename %s to %s: %s", tmp, path, g_strerror (errsv));
		g_unlink (tmp);
		return FALSE;
	}
	return TRUE;
}

/**
 * bs_state_spare_fate:
 * @kernel_bytes: the storage the kernel's snapshot has
 * @files_bytes: the sizes of the snapshot's storage files, summed
 * @spare_bytes: the size of its spare file
 *
 * A spare is appended before the state file says so: after a crash in
 * between, only the sizes tell whether the module has it. The module's
 * storage is exactly the sum of what was appended.
 */
BsSpareFate
bs_state_spare_fate (guint64 kernel_bytes, guint64 files_bytes, guint64 spare_bytes)
{
	if (kernel_bytes == files_bytes)
		return BS_SPARE_UNUSED;
	if (files_bytes <= G_MAXUINT64 - spare_bytes && kernel_bytes == files_bytes + spare_bytes)
		return BS_SPARE_APPENDED;
	return BS_SPARE_UNKNOWN;
}
