// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshot images: one bio-based disk per device of a taken snapshot,
 * named blksnap-image_MAJOR:MINOR after the original. Images are
 * writable; writes land in difference storage.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-image: " fmt
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/module.h>
#include <linux/slab.h>
#include "compat.h"
#include "diff_area.h"
#include "snapimage.h"
#include "tracker.h"

static void snapimage_submit_bio(struct bio *bio)
{
	struct snapimage *image = bio->bi_bdev->bd_disk->private_data;

	if (op_is_write(bio_op(bio)) && bio_sectors(bio))
		tracker_mark_image_write(image->tracker,
					 bio->bi_iter.bi_sector,
					 bio_sectors(bio));
	diff_area_submit_image_bio(image->area, bio);
}

static const struct block_device_operations snapimage_fops = {
	.owner = THIS_MODULE,
	.submit_bio = snapimage_submit_bio,
};

bool snapimage_is_image(struct block_device *bdev)
{
	return bdev->bd_disk->fops == &snapimage_fops;
}

/**
 * snapimage_create() - Make the image disk of a device.
 * @area: The device's copy-on-write state.
 * @tracker: The device's tracker.
 *
 * Return: the image or an ERR_PTR.
 */
struct snapimage *snapimage_create(struct diff_area *area,
				   struct tracker *tracker)
{
	struct block_device *orig = area->bdev;
	struct snapimage *image;
	struct gendisk *disk;
	int ret;

	image = kzalloc(sizeof(*image), GFP_KERNEL);
	if (!image)
		return ERR_PTR(-ENOMEM);
	disk = compat_alloc_disk(bdev_logical_block_size(orig),
				 bdev_physical_block_size(orig));
	if (IS_ERR(disk)) {
		kfree(image);
		return ERR_CAST(disk);
	}
	image->disk = disk;
	image->area = area;
	image->tracker = tracker;

	/* major 0 and no minors: the block layer picks an extended dev_t. */
	disk->flags |= GENHD_FL_NO_PART;
	disk->fops = &snapimage_fops;
	disk->private_data = image;
	snprintf(disk->disk_name, DISK_NAME_LEN, "blksnap-image_%u:%u",
		 MAJOR(area->dev), MINOR(area->dev));
	set_capacity(disk, area->capacity);

	ret = add_disk(disk);
	if (ret) {
		put_disk(disk);
		kfree(image);
		return ERR_PTR(ret);
	}
	pr_info("%s created\n", disk->disk_name);
	return image;
}

/*
 * Remove the disk. Once del_gendisk() returns, no new bio reaches
 * snapimage_submit_bio(); work already queued is drained by the caller.
 */
void snapimage_destroy(struct snapimage *image)
{
	pr_info("%s removed\n", image->disk->disk_name);
	del_gendisk(image->disk);
	put_disk(image->disk);
	kfree(image);
}
