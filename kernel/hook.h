/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_HOOK_H
#define __BLKSNAP_HOOK_H

int hook_register(void);
void hook_unregister(void);

#endif /* __BLKSNAP_HOOK_H */
