#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The demo of ./demo.sh: test 40 told in plain words (DEMO=1).
# timeout: 900
export DEMO=1
# shellcheck source=../tests/40-backup-full-incremental-restore.sh
. "$BLKSNAP_SRC/tests/vm/tests/40-backup-full-incremental-restore.sh"
