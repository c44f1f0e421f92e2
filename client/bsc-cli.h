/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What blksnapctl's commands share: the invocation's context, argument
 * parsing, messages, JSON output, snapshots made for a command.
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct {
	GDBusConnection *bus;
	gboolean         json;
	gboolean         no_interaction;
	gboolean         quiet;
} Ctx;

/* set by SIGINT/SIGTERM/SIGHUP while a backup or restore runs */
extern volatile gint bsc_cli_interrupted;

gboolean  bsc_cli_parse_args (Ctx *ctx, gint *argc, gchar ***argv, const gchar *params,
                              const gchar *summary, const GOptionEntry *entries,
                              gint min_operands, gint max_operands, GError **error);
void      bsc_cli_say        (Ctx *ctx, const gchar *format, ...) G_GNUC_PRINTF (2, 3);
void      bsc_cli_print_json (JsonBuilder *b);
GVariant *bsc_cli_options    (Ctx *ctx, GVariantDict *extra);
gchar    *bsc_cli_snapshot_create  (Ctx *ctx, gchar **devices, gboolean take, guint64 size,
                                    guint64 limit, gboolean bind, GError **error);
gboolean  bsc_cli_snapshot_destroy (Ctx *ctx, const gchar *path, GError **error);

gboolean  bsc_cmd_backup  (Ctx *ctx, gint argc, gchar **argv, GError **error);
gboolean  bsc_cmd_restore (Ctx *ctx, gint argc, gchar **argv, GError **error);

G_END_DECLS
