/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_SNAPIMAGE_H
#define __BLKSNAP_SNAPIMAGE_H

#include <linux/blk_types.h>
#include <uapi/linux/blksnap.h>

struct diff_area;
struct tracker;

/**
 * struct snapimage - The block device that shows a snapshot of a device.
 * @disk: The bio-based disk.
 * @area: Copy-on-write state of the original.
 * @tracker: The original's tracker; image writes are marked in its CBT.
 */
struct snapimage {
	struct gendisk *disk;
	struct diff_area *area;
	struct tracker *tracker;
};

struct snapimage *snapimage_create(struct diff_area *area,
				   struct tracker *tracker);
void snapimage_destroy(struct snapimage *image);
bool snapimage_is_image(struct block_device *bdev);

#endif /* __BLKSNAP_SNAPIMAGE_H */
