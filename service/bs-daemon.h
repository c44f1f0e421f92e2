/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <gio/gio.h>
#include <polkit/polkit.h>

#include "bs-manager.h"

G_BEGIN_DECLS

#define BS_TYPE_DAEMON (bs_daemon_get_type ())
G_DECLARE_FINAL_TYPE (BsDaemon, bs_daemon, BS, DAEMON, GObject)

BsDaemon *bs_daemon_new         (BsManager *manager, PolkitAuthority *authority);
BsDaemon *bs_daemon_get_default (void);
void      bs_daemon_export      (BsDaemon *self, GDBusConnection *connection);

G_END_DECLS
