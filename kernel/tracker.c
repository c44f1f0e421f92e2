// SPDX-License-Identifier: GPL-2.0
/*
 * Trackers: which block devices are watched, and the CBT map of each.
 *
 * The I/O path looks a device up in an xarray under RCU, so a bio for an
 * untracked device costs one lockless lookup and a bio for a tracked one a
 * few byte stores. Everything that changes the set of trackers or replaces
 * a map holds tracker_mutex and waits for an RCU grace period before it
 * frees anything the I/O path may still see.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-tracker: " fmt
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/xarray.h>
#include "cbt_map.h"
#include "compat.h"
#include "tracker.h"

/**
 * struct tracker - A tracked block device.
 * @dev: Device number, the key in &trackers.
 * @bdev: The device. A reference, not an open: the device may go away.
 * @diskseq: Sequence number of the disk's medium when tracking started. A
 *	different number means another medium (e.g. a loop device re-bound
 *	to another file): the map no longer describes the device.
 * @cbt: The CBT map; replaced (under tracker_mutex) when it is reset.
 */
struct tracker {
	dev_t dev;
	struct block_device *bdev;
	u64 diskseq;
	struct cbt_map __rcu *cbt;
};

/* Tracked devices by dev_t. Readers use RCU, writers tracker_mutex. */
static DEFINE_XARRAY(trackers);
static DEFINE_MUTEX(tracker_mutex);

static inline struct cbt_map *tracker_cbt(struct tracker *tracker)
{
	return rcu_dereference_protected(tracker->cbt,
					 lockdep_is_held(&tracker_mutex));
}

static void tracker_free(struct tracker *tracker)
{
	cbt_map_free(rcu_dereference_raw(tracker->cbt));
	compat_bdev_put_ref(tracker->bdev);
	kfree(tracker);
}

/* Remove a tracker; the caller holds tracker_mutex. */
static void tracker_remove(struct tracker *tracker, const char *why)
{
	xa_erase(&trackers, tracker->dev);
	synchronize_rcu();
	pr_info("stopped tracking %u:%u: %s\n", MAJOR(tracker->dev),
		MINOR(tracker->dev), why);
	tracker_free(tracker);
}

/*
 * Is the device still the one tracking started on? It is not once it has
 * been deleted (disk or partition), or its medium changed.
 */
static bool tracker_device_present(struct tracker *tracker)
{
	struct block_device *bdev = tracker->bdev;

	return device_is_registered(&bdev->bd_device) &&
	       bdev->bd_disk->diskseq == tracker->diskseq &&
	       bdev_nr_sectors(bdev);
}

/*
 * Bring a tracker up to date before its map is reported: drop it if its
 * device is gone, start a new generation if the device was resized.
 * Called with tracker_mutex held.
 */
static int tracker_refresh(struct tracker *tracker)
{
	struct cbt_map *old = tracker_cbt(tracker);
	struct cbt_map *cbt;
	sector_t capacity;

	if (!tracker_device_present(tracker)) {
		tracker_remove(tracker, "device gone");
		return -ENOENT;
	}
	capacity = bdev_nr_sectors(tracker->bdev);
	if (capacity == old->capacity)
		return 0;

	cbt = cbt_map_create(capacity);
	if (IS_ERR(cbt))
		return PTR_ERR(cbt);
	rcu_assign_pointer(tracker->cbt, cbt);
	synchronize_rcu();
	cbt_map_free(old);
	pr_info("%u:%u resized to %llu sectors, CBT map reset\n",
		MAJOR(tracker->dev), MINOR(tracker->dev),
		(unsigned long long)capacity);
	return 0;
}

/* Find a tracker and refresh it; the caller holds tracker_mutex. */
static struct tracker *tracker_get_fresh(dev_t dev)
{
	struct tracker *tracker = xa_load(&trackers, dev);
	int ret;

	if (!tracker)
		return ERR_PTR(-ENOENT);
	ret = tracker_refresh(tracker);
	return ret ? ERR_PTR(ret) : tracker;
}

static struct tracker *tracker_new(dev_t dev)
{
	struct block_device *bdev;
	struct tracker *tracker;
	struct cbt_map *cbt;

	bdev = compat_bdev_get_ref(dev);
	if (IS_ERR(bdev))
		return ERR_PTR(-ENODEV);
	if (!bdev_nr_sectors(bdev)) {
		compat_bdev_put_ref(bdev);
		return ERR_PTR(-ENODEV);
	}

	cbt = cbt_map_create(bdev_nr_sectors(bdev));
	if (IS_ERR(cbt)) {
		compat_bdev_put_ref(bdev);
		return ERR_CAST(cbt);
	}
	tracker = kzalloc(sizeof(*tracker), GFP_KERNEL);
	if (!tracker) {
		cbt_map_free(cbt);
		compat_bdev_put_ref(bdev);
		return ERR_PTR(-ENOMEM);
	}
	tracker->dev = dev;
	tracker->bdev = bdev;
	tracker->diskseq = bdev->bd_disk->diskseq;
	RCU_INIT_POINTER(tracker->cbt, cbt);
	return tracker;
}

/**
 * tracker_attach() - Start tracking a block device.
 * @dev: Whole disk or partition.
 *
 * Return: 0, -ENODEV if there is no such device or it is empty,
 * -EALREADY if it is tracked already, -ENOMEM.
 */
int tracker_attach(dev_t dev)
{
	struct tracker *tracker, *old;
	int ret;

	/* Opening the device may take driver locks: not under our mutex. */
	tracker = tracker_new(dev);
	if (IS_ERR(tracker))
		return PTR_ERR(tracker);

	mutex_lock(&tracker_mutex);
	old = xa_load(&trackers, dev);
	if (old) {
		/* A tracker left from a device that is gone makes way. */
		ret = tracker_refresh(old);
		if (ret != -ENOENT) {
			ret = ret ? ret : -EALREADY;
			goto out_free;
		}
	}
	ret = xa_insert(&trackers, dev, tracker, GFP_KERNEL);
	if (ret)
		goto out_free;
	mutex_unlock(&tracker_mutex);
	pr_info("tracking %u:%u, %u blocks of %u KiB\n", MAJOR(dev),
		MINOR(dev), rcu_dereference_raw(tracker->cbt)->blk_count,
		1U << (rcu_dereference_raw(tracker->cbt)->blk_shift - 10));
	return 0;

out_free:
	mutex_unlock(&tracker_mutex);
	tracker_free(tracker);
	return ret;
}

int tracker_detach(dev_t dev)
{
	struct tracker *tracker;

	mutex_lock(&tracker_mutex);
	tracker = xa_load(&trackers, dev);
	if (tracker)
		tracker_remove(tracker, "detached");
	mutex_unlock(&tracker_mutex);
	return tracker ? 0 : -ENOENT;
}

/**
 * tracker_list() - List the tracked devices.
 * @devs: Array to fill.
 * @count: In: capacity of @devs. Out: number of tracked devices.
 *
 * Return: 0, or -ENOBUFS if @devs is too small.
 */
int tracker_list(dev_t *devs, unsigned int *count)
{
	struct tracker *tracker;
	unsigned int n = 0;
	unsigned long idx;

	mutex_lock(&tracker_mutex);
	xa_for_each(&trackers, idx, tracker) {
		if (!tracker_device_present(tracker)) {
			tracker_remove(tracker, "device gone");
			continue;
		}
		if (n < *count)
			devs[n] = tracker->dev;
		n++;
	}
	mutex_unlock(&tracker_mutex);

	if (n > *count) {
		*count = n;
		return -ENOBUFS;
	}
	*count = n;
	return 0;
}

int tracker_cbt_info(dev_t dev, struct blksnap_cbt_info *info)
{
	struct tracker *tracker;
	struct cbt_map *cbt;

	mutex_lock(&tracker_mutex);
	tracker = tracker_get_fresh(dev);
	if (IS_ERR(tracker)) {
		mutex_unlock(&tracker_mutex);
		return PTR_ERR(tracker);
	}
	cbt = tracker_cbt(tracker);
	info->device_capacity = cbt->capacity;
	info->block_size = 1U << cbt->blk_shift;
	info->block_count = cbt->blk_count;
	export_uuid(info->generation_id, &cbt->generation);
	info->changes_number = cbt->changes_number;
	mutex_unlock(&tracker_mutex);
	return 0;
}

/**
 * tracker_cbt_copy() - Copy a part of a CBT map.
 * @dev: Tracked device.
 * @offset: First block.
 * @length: Number of blocks, not 0.
 *
 * The copy lets the caller hand the map to userspace without holding
 * tracker_mutex across page faults.
 *
 * Return: a kvmalloc()ed buffer of @length bytes, or an ERR_PTR: -ENOENT
 * if not tracked, -EINVAL if the range is outside the map, -ENOMEM.
 */
u8 *tracker_cbt_copy(dev_t dev, u32 offset, u32 length)
{
	struct tracker *tracker;
	struct cbt_map *cbt;
	u8 *buf;

	mutex_lock(&tracker_mutex);
	tracker = tracker_get_fresh(dev);
	if (IS_ERR(tracker)) {
		buf = ERR_CAST(tracker);
		goto out;
	}
	cbt = tracker_cbt(tracker);
	if ((u64)offset + length > cbt->blk_count) {
		buf = ERR_PTR(-EINVAL);
		goto out;
	}
	buf = kvmalloc(length, GFP_KERNEL);
	if (!buf) {
		buf = ERR_PTR(-ENOMEM);
		goto out;
	}
	memcpy(buf, cbt->map + offset, length);
out:
	mutex_unlock(&tracker_mutex);
	return buf;
}

/**
 * tracker_cbt_mark_dirty() - Mark sector ranges as changed.
 * @dev: Tracked device.
 * @ranges: Ranges, each inside the device and not empty.
 * @count: Number of ranges.
 *
 * All ranges are checked before any is marked.
 *
 * Return: 0, -ENOENT if not tracked, -EINVAL for a bad range.
 */
int tracker_cbt_mark_dirty(dev_t dev, const struct blksnap_sectors *ranges,
			   unsigned int count)
{
	struct tracker *tracker;
	struct cbt_map *cbt;
	unsigned int i;
	int ret = 0;

	mutex_lock(&tracker_mutex);
	tracker = tracker_get_fresh(dev);
	if (IS_ERR(tracker)) {
		ret = PTR_ERR(tracker);
		goto out;
	}
	cbt = tracker_cbt(tracker);
	for (i = 0; i < count; i++) {
		if (!ranges[i].count || ranges[i].offset >= cbt->capacity ||
		    ranges[i].count > cbt->capacity - ranges[i].offset) {
			ret = -EINVAL;
			goto out;
		}
	}
	for (i = 0; i < count; i++)
		cbt_map_mark(cbt, ranges[i].offset, ranges[i].count);
out:
	mutex_unlock(&tracker_mutex);
	return ret;
}

/* Called on module unload, after the I/O hooks are gone. */
void tracker_detach_all(void)
{
	struct tracker *tracker;
	unsigned long idx;

	mutex_lock(&tracker_mutex);
	xa_for_each(&trackers, idx, tracker)
		tracker_remove(tracker, "module unloaded");
	mutex_unlock(&tracker_mutex);
}

/* Mark a write on one tracker; called under rcu_read_lock(). */
static void tracker_mark(dev_t dev, struct block_device *bdev,
			 sector_t sector, sector_t count)
{
	struct tracker *tracker = xa_load(&trackers, dev);

	/*
	 * A bio for another device behind the same number (a re-created
	 * partition or disk) or another medium is not ours to record.
	 */
	if (!tracker || tracker->bdev != bdev ||
	    bdev->bd_disk->diskseq != tracker->diskseq)
		return;
	cbt_map_mark(rcu_dereference(tracker->cbt), sector, count);
}

/**
 * tracker_mark_bio() - Record the blocks a bio is about to change.
 * @bio: A bio entering submit_bio_noacct().
 *
 * A write to a partition is recorded for the partition and for its whole
 * disk, whichever is tracked. Runs in the submitter's context, possibly
 * atomic; never sleeps.
 */
void tracker_mark_bio(struct bio *bio)
{
	struct block_device *bdev = bio->bi_bdev;
	sector_t sector = bio->bi_iter.bi_sector;
	sector_t count = bio_sectors(bio);

	if (xa_empty(&trackers) || !op_is_write(bio_op(bio)) || !count)
		return;
	/*
	 * A remapped bio was recorded when it first entered: a split
	 * remainder coming back holds whole-disk sectors on a partition.
	 */
	if (bio_flagged(bio, BIO_REMAPPED))
		return;

	rcu_read_lock();
	tracker_mark(bdev->bd_dev, bdev, sector, count);
	if (bdev_is_partition(bdev))
		tracker_mark(bdev->bd_disk->part0->bd_dev,
			     bdev->bd_disk->part0,
			     sector + bdev->bd_start_sect, count);
	rcu_read_unlock();
}

/**
 * tracker_disk_removed() - Let go of a disk that is being deleted.
 * @disk: The disk, on its way through del_gendisk().
 *
 * Trackers of the disk and of its partitions are dropped before the disk
 * is torn down.
 */
void tracker_disk_removed(struct gendisk *disk)
{
	struct tracker *tracker;
	unsigned long idx;

	mutex_lock(&tracker_mutex);
	xa_for_each(&trackers, idx, tracker) {
		if (tracker->bdev->bd_disk == disk)
			tracker_remove(tracker, "device removed");
	}
	mutex_unlock(&tracker_mutex);
}
