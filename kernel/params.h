/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_PARAMS_H
#define __BLKSNAP_PARAMS_H

#include <linux/types.h>

/* Module parameters, read-only after load (see main.c). */
extern unsigned int tracking_block_minimum_shift;
extern unsigned int tracking_block_maximum_shift;
extern unsigned int tracking_block_maximum_count;
extern unsigned int chunk_minimum_shift;
extern unsigned int chunk_maximum_shift;
extern unsigned int chunk_maximum_count;
extern unsigned int copy_group_shift;
extern bool copy_group_eager;
extern bool copy_sweep;
extern unsigned long diff_storage_minimum;

#endif /* __BLKSNAP_PARAMS_H */
