/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * open-image: call OpenImage on blksnapd's snapshot object and copy what
 * the returned fd reads to stdout, the way an unprivileged backup tool
 * would. For the VM tests of the service.
 *
 *   open-image SNAPSHOT_OBJECT_PATH DEVICE [BYTES]
 *
 * Exit status 0 on success; 1 with the D-Bus error name and message on
 * stderr if the call failed.
 */
#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int
main (int argc, char **argv)
{
	g_autoptr(GDBusConnection) bus = NULL;
	g_autoptr(GUnixFDList) fds = NULL;
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GError) error = NULL;
	guint64 left = G_MAXUINT64;
	gint32 index;
	gint fd;

	if (argc < 3) {
		g_printerr ("usage: open-image SNAPSHOT_OBJECT_PATH DEVICE [BYTES]\n");
		return 2;
	}
	if (argc > 3)
		left = g_ascii_strtoull (argv[3], NULL, 10);
	bus = g_bus_get_sync (G_BUS_TYPE_SYSTEM, NULL, &error);
	if (bus == NULL)
		goto fail;
	reply = g_dbus_connection_call_with_unix_fd_list_sync (
		bus, "org.blksnap.BlkSnap1", argv[1], "org.blksnap.BlkSnap1.Snapshot", "OpenImage",
		g_variant_new ("(s@a{sv})", argv[2],
		               g_variant_new_parsed ("{'auth.no_user_interaction': <true>}")),
		G_VARIANT_TYPE ("(h)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, &fds, NULL, &error);
	if (reply == NULL)
		goto fail;
	g_variant_get (reply, "(h)", &index);
	fd = g_unix_fd_list_get (fds, index, &error);
	if (fd < 0)
		goto fail;
	/* it must be read-only: a write has to fail */
	if (write (fd, "x", 1) >= 0) {
		g_printerr ("the image fd is writable\n");
		return 1;
	}
	while (left > 0) {
		gchar buf[65536];
		ssize_t n = read (fd, buf, MIN (sizeof (buf), left));

		if (n < 0) {
			perror ("read");
			return 1;
		}
		if (n == 0)
			break;
		if (fwrite (buf, 1, n, stdout) != (size_t) n)
			return 1;
		left -= n;
	}
	close (fd);
	return 0;
fail:
	if (g_dbus_error_is_remote_error (error)) {
		g_autofree gchar *name = g_dbus_error_get_remote_error (error);
		g_dbus_error_strip_remote_error (error);
		g_printerr ("%s: %s\n", name, error->message);
	} else {
		g_printerr ("%s\n", error->message);
	}
	return 1;
}
