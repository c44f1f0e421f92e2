/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_SNAPIMAGE_H
#define __BLKSNAP_SNAPIMAGE_H

#include <linux/blk_types.h>
#include <linux/workqueue.h>
#include <uapi/linux/blksnap.h>

struct diff_area;
struct tracker;

/**
 * struct snapimage - The block device that shows a snapshot of a device.
 * @disk: The bio-based disk.
 * @area: Copy-on-write state of the original.
 * @tracker: The original's tracker; image writes are marked in its CBT.
 * @publish: Registers @disk beside the other images of the take.
 * @publish_error: What add_disk() returned there.
 */
struct snapimage {
	struct gendisk *disk;
	struct diff_area *area;
	struct tracker *tracker;
	struct work_struct publish;
	int publish_error;
};

struct snapimage *snapimage_alloc(struct diff_area *area,
				  struct tracker *tracker);
void snapimage_publish_start(struct snapimage *image);
int snapimage_publish_wait(struct snapimage *image);
void snapimage_free(struct snapimage *image);
void snapimage_destroy(struct snapimage *image);
bool snapimage_is_image(struct block_device *bdev);

#endif /* __BLKSNAP_SNAPIMAGE_H */
