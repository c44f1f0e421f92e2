/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_TRACKER_H
#define __BLKSNAP_TRACKER_H

#include <linux/types.h>
#include <uapi/linux/blksnap.h>

struct bio;
struct gendisk;

int tracker_attach(dev_t dev);
int tracker_detach(dev_t dev);
int tracker_list(dev_t *devs, unsigned int *count);
int tracker_cbt_info(dev_t dev, struct blksnap_cbt_info *info);
u8 *tracker_cbt_copy(dev_t dev, u32 offset, u32 length);
int tracker_cbt_mark_dirty(dev_t dev, const struct blksnap_sectors *ranges,
			   unsigned int count);
void tracker_detach_all(void);

void tracker_mark_bio(struct bio *bio);
void tracker_disk_removed(struct gendisk *disk);

#endif /* __BLKSNAP_TRACKER_H */
