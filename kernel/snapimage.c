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
 * snapimage_alloc() - Prepare the image disk of a device, unpublished.
 * @area: The device's copy-on-write state.
 * @tracker: The device's tracker.
 *
 * Done when the device is added to a snapshot, so that the take only has
 * to publish the disk. Free with snapimage_free() unless published.
 *
 * Return: the image or an ERR_PTR.
 */
struct snapimage *snapimage_alloc(struct diff_area *area,
				  struct tracker *tracker)
{
	struct block_device *orig = area->bdev;
	struct snapimage *image;
	struct gendisk *disk;

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
	return image;
}

static void snapimage_publish_fn(struct work_struct *work)
{
	struct snapimage *image = container_of(work, struct snapimage, publish);

	image->publish_error = add_disk(image->disk);
}

/**
 * snapimage_publish_start() - Start making a prepared image visible.
 * @image: From snapimage_alloc().
 *
 * Registering a disk mostly waits (sysfs, the bdi, RCU grace periods), so
 * the images of one take are registered side by side, on unbound workers.
 */
void snapimage_publish_start(struct snapimage *image)
{
	INIT_WORK(&image->publish, snapimage_publish_fn);
	queue_work(compat_unbound_wq, &image->publish);
}

/**
 * snapimage_publish_wait() - Wait until the image is a block device.
 * @image: Started with snapimage_publish_start(); still to be freed by
 *	the caller with snapimage_free() on error.
 *
 * Return: 0 or a negative errno.
 */
int snapimage_publish_wait(struct snapimage *image)
{
	flush_work(&image->publish);
	if (!image->publish_error)
		pr_info("%s created\n", image->disk->disk_name);
	return image->publish_error;
}

/* Free an image that was never published. */
void snapimage_free(struct snapimage *image)
{
	put_disk(image->disk);
	kfree(image);
}

/*
 * Remove a published disk. Once del_gendisk() returns, no new bio reaches
 * snapimage_submit_bio(); work already queued is drained by the caller.
 */
void snapimage_destroy(struct snapimage *image)
{
	pr_info("%s removed\n", image->disk->disk_name);
	del_gendisk(image->disk);
	put_disk(image->disk);
	kfree(image);
}
