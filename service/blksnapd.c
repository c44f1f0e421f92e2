/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blksnapd: the blksnap system service. Loads the configuration, recovers
 * what the kernel and the state file hold, then serves
 * org.blksnap.BlkSnap1 on the system bus until told to stop.
 */

#define G_LOG_DOMAIN "blksnapd"

#include <glib-unix.h>
#include <locale.h>
#include <stdlib.h>

#include "bs-config.h"
#include "bs-control.h"
#include "bs-daemon.h"
#include "bs-manager.h"

#define BS_BUS_NAME "org.blksnap.BlkSnap1"

typedef struct {
	GMainLoop *loop;
	BsDaemon *daemon;
	gint exit_status;
} BsMain;

static void
bus_acquired_cb (GDBusConnection *connection, const gchar *name, gpointer user_data)
{
	BsMain *m = user_data;

	bs_daemon_export (m->daemon, connection);
}

static void
name_acquired_cb (GDBusConnection *connection, const gchar *name, gpointer user_data)
{
	g_message ("serving %s", name);
}

static void
name_lost_cb (GDBusConnection *connection, const gchar *name, gpointer user_data)
{
	BsMain *m = user_data;

	g_warning ("could not own %s on the bus (another blksnapd running, or not allowed)",
	           name);
	m->exit_status = EXIT_FAILURE;
	g_main_loop_quit (m->loop);
}

static gboolean
quit_cb (gpointer user_data)
{
	BsMain *m = user_data;

	g_message ("stopping; snapshots stay and are adopted on the next start");
	g_main_loop_quit (m->loop);
	return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
	g_autofree gchar *config_path = NULL;
	g_autofree gchar *state_path = NULL;
	g_autofree gchar *control_path = NULL;
	gboolean session_bus = FALSE;
	gboolean check_config = FALSE;
	const GOptionEntry entries[] = {
		{ "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path,
		  "Configuration file (default " BS_CONFIG_DEFAULT_PATH ")", "FILE" },
		{ "state-file", 0, 0, G_OPTION_ARG_FILENAME, &state_path,
		  "State file (default /var/lib/blksnap/blksnapd.state)", "FILE" },
		{ "control", 0, 0, G_OPTION_ARG_FILENAME, &control_path,
		  "Control device (default " BS_CONTROL_DEFAULT_PATH ")", "PATH" },
		{ "session", 0, 0, G_OPTION_ARG_NONE, &session_bus,
		  "Use the session bus (for tests)", NULL },
		{ "check-config", 0, 0, G_OPTION_ARG_NONE, &check_config,
		  "Check the configuration file and exit", NULL },
		{ NULL }
	};
	g_autoptr(GOptionContext) context = g_option_context_new ("- blksnap system service");
	g_autoptr(GError) error = NULL;
	g_autoptr(BsConfig) config = NULL;
	g_autoptr(BsControl) control = NULL;
	g_autoptr(BsManager) manager = NULL;
	g_autoptr(PolkitAuthority) authority = NULL;
	g_autoptr(GMainLoop) loop = NULL;
	BsMain m = { 0 };
	guint owner_id;

	setlocale (LC_ALL, "");
	g_option_context_add_main_entries (context, entries, NULL);
	if (!g_option_context_parse (context, &argc, &argv, &error)) {
		g_printerr ("blksnapd: %s\n", error->message);
		return EXIT_FAILURE;
	}

	/* a bad configuration stops the start: nothing half-applied */
	config = bs_config_new_from_file (config_path != NULL ? config_path
	                                                      : BS_CONFIG_DEFAULT_PATH, &error);
	if (config == NULL) {
		g_printerr ("blksnapd: bad configuration: %s\n", error->message);
		return EXIT_FAILURE;
	}
	if (check_config) {
		g_print ("configuration is valid; storage in %s\n", config->storage_dir);
		return EXIT_SUCCESS;
	}
	if (state_path == NULL)
		state_path = g_build_filename ("/var/lib/blksnap", "blksnapd.state", NULL);

	control = bs_control_new (control_path);
	manager = bs_manager_new (g_steal_pointer (&config), control, state_path);
	if (!bs_manager_start (manager, &error)) {
		g_printerr ("blksnapd: cannot start: %s\n", error->message);
		return EXIT_FAILURE;
	}

	authority = polkit_authority_get_sync (NULL, &error);
	if (authority == NULL) {
		g_warning ("polkit is not available, only root may call: %s", error->message);
		g_clear_error (&error);
	}

	loop = g_main_loop_new (NULL, FALSE);
	m.loop = loop;
	m.daemon = bs_daemon_new (manager, authority);
	g_unix_signal_add (SIGTERM, quit_cb, &m);
	g_unix_signal_add (SIGINT, quit_cb, &m);
	owner_id = g_bus_own_name (session_bus ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM,
	                           BS_BUS_NAME, G_BUS_NAME_OWNER_FLAGS_NONE, bus_acquired_cb,
	                           name_acquired_cb, name_lost_cb, &m, NULL);
	g_main_loop_run (loop);
	g_bus_unown_name (owner_id);
	g_object_unref (m.daemon);
	return m.exit_status;
}
