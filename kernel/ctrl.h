/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_CTRL_H
#define __BLKSNAP_CTRL_H

int ctrl_init(void);
void ctrl_done(void);

#endif /* __BLKSNAP_CTRL_H */
