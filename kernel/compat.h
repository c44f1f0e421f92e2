/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One home for the differences between the kernels blksnap supports
 * (6.1 to 7.x). Which variant applies is decided by feature-test.sh from
 * the target kernel's headers, never by comparing version numbers.
 */
#ifndef __BLKSNAP_COMPAT_H
#define __BLKSNAP_COMPAT_H

#include <linux/blkdev.h>
#include <linux/fs.h>
#include "compat_gen.h"

/**
 * compat_bdev_get_ref() - Get a reference on a block device by number.
 * @dev: Device number of a whole disk or partition.
 *
 * The device is opened only long enough to find it: the reference that is
 * returned keeps the &struct block_device alive without holding the device
 * open, so the device can still be detached or removed (the tracker
 * notices that and lets go).
 *
 * Return: the block device, or an ERR_PTR. Release it with
 * compat_bdev_put_ref().
 */
static inline struct block_device *compat_bdev_get_ref(dev_t dev)
{
	struct block_device *bdev;
#ifdef BLKSNAP_HAVE_BDEV_FILE_OPEN
	struct file *file;

	file = bdev_file_open_by_dev(dev, BLK_OPEN_READ, NULL, NULL);
	if (IS_ERR(file))
		return ERR_CAST(file);
	bdev = file_bdev(file);
	get_device(&bdev->bd_device);
	fput(file);
#else
	bdev = blkdev_get_by_dev(dev, FMODE_READ, NULL);
	if (IS_ERR(bdev))
		return bdev;
	get_device(&bdev->bd_device);
	blkdev_put(bdev, FMODE_READ);
#endif
	return bdev;
}

static inline void compat_bdev_put_ref(struct block_device *bdev)
{
	put_device(&bdev->bd_device);
}

#endif /* __BLKSNAP_COMPAT_H */
