// SPDX-License-Identifier: GPL-2.0
/*
 * Difference storage: sector ranges on block devices that userspace hands
 * over (typically the extents of fallocate()d files). Copies of original
 * chunks are allocated from them front to back; running low raises an
 * event so userspace can append more.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-storage: " fmt
#include <linux/blkdev.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include "compat.h"
#include "diff_storage.h"
#include "event_queue.h"
#include "params.h"
#include "snapimage.h"

/* Bounds the overlap checks and the memory userspace can make us hold. */
#define DIFF_STORAGE_MAX_RANGES (16 * BLKSNAP_MAX_STORAGE_RANGES)

void diff_storage_init(struct diff_storage *storage,
		       struct event_queue *events)
{
	memset(storage, 0, sizeof(*storage));
	INIT_LIST_HEAD(&storage->ranges);
	mutex_init(&storage->append_lock);
	spin_lock_init(&storage->lock);
	storage->events = events;
}

void diff_storage_done(struct diff_storage *storage)
{
	struct diff_storage_range *range, *tmp;

	list_for_each_entry_safe(range, tmp, &storage->ranges, link) {
		compat_bdev_put_ref(range->bdev);
		kfree(range);
	}
	INIT_LIST_HEAD(&storage->ranges);
}

static int cmp_sectors(const void *a, const void *b)
{
	const struct blksnap_sectors *x = a, *y = b;

	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return 0;
}

/* Does [start, start + count) overlap one of the sorted @ranges? */
static bool overlaps_sorted(const struct blksnap_sectors *ranges,
			    unsigned int n, sector_t start, sector_t count)
{
	unsigned int lo = 0, hi = n;

	/* First range that ends after @start. */
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (ranges[mid].offset + ranges[mid].count <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && ranges[lo].offset < start + count;
}

/*
 * Does an appended range overlap one of the sorted new @ranges on @bdev?
 * Both may be given on partitions of one disk: compare disk sectors.
 */
static bool diff_storage_overlaps(const struct diff_storage_range *old,
				  struct block_device *bdev,
				  const struct blksnap_sectors *ranges,
				  unsigned int count)
{
	sector_t base = bdev->bd_start_sect;
	sector_t start = old->bdev->bd_start_sect + old->start;
	sector_t end = start + old->count;

	if (end <= base)
		return false;
	start = max(start, base);
	return overlaps_sorted(ranges, count, start - base, end - start);
}

/*
 * Check new ranges (sorted here) against the device and against each
 * other and the ranges appended before. Called with append_lock held.
 */
static int diff_storage_check(struct diff_storage *storage,
			      struct block_device *bdev,
			      struct blksnap_sectors *ranges,
			      unsigned int count, unsigned int *total)
{
	sector_t capacity = bdev_nr_sectors(bdev);
	struct diff_storage_range *old;
	unsigned int i, n = 0;

	for (i = 0; i < count; i++) {
		if (!ranges[i].count || ranges[i].offset >= capacity ||
		    ranges[i].count > capacity - ranges[i].offset)
			return -EINVAL;
	}
	sort(ranges, count, sizeof(*ranges), cmp_sectors, NULL);
	for (i = 1; i < count; i++) {
		if (ranges[i - 1].offset + ranges[i - 1].count >
		    ranges[i].offset)
			return -EINVAL;
	}
	list_for_each_entry(old, &storage->ranges, link) {
		n++;
		if (old->bdev->bd_disk == bdev->bd_disk &&
		    diff_storage_overlaps(old, bdev, ranges, count))
			return -EINVAL;
		cond_resched();
	}
	if (n + count > DIFF_STORAGE_MAX_RANGES)
		return -E2BIG;
	*total = n;
	return 0;
}

/**
 * diff_storage_append() - Add ranges of a device to the storage.
 * @storage: The snapshot's storage.
 * @dev: Device the ranges are on.
 * @ranges: The ranges (sorted in place).
 * @count: Number of ranges, at least 1.
 *
 * All or nothing: every range is checked before any is added.
 *
 * Return: 0; -ENODEV for a missing device; -EINVAL for an empty range,
 * one beyond the device or overlapping, or a snapshot image as storage;
 * -E2BIG for too many ranges in all; -ENOMEM.
 */
int diff_storage_append(struct diff_storage *storage, dev_t dev,
			struct blksnap_sectors *ranges, unsigned int count)
{
	struct diff_storage_range *range, *tmp;
	struct block_device *bdev;
	unsigned int total, i;
	sector_t added = 0, whole = 0;
	LIST_HEAD(list);
	int ret;

	bdev = compat_bdev_get_ref(dev);
	if (IS_ERR(bdev))
		return -ENODEV;
	/* An image as storage would copy into itself. */
	ret = -EINVAL;
	if (snapimage_is_image(bdev))
		goto out_put;

	mutex_lock(&storage->append_lock);
	ret = diff_storage_check(storage, bdev, ranges, count, &total);
	if (ret)
		goto out_unlock;

	for (i = 0; i < count; i++) {
		range = kzalloc(sizeof(*range), GFP_KERNEL);
		if (!range) {
			ret = -ENOMEM;
			goto out_free;
		}
		get_device(&bdev->bd_device);
		range->bdev = bdev;
		range->start = ranges[i].offset;
		range->count = ranges[i].count;
		added += range->count;
		/* @grain changes only under append_lock. */
		if (storage->grain)
			whole += round_down(range->count, storage->grain);
		list_add_tail(&range->link, &list);
	}

	spin_lock(&storage->lock);
	list_splice_tail(&list, &storage->ranges);
	storage->capacity += added;
	storage->whole += whole;
	storage->low_space_sent = false;
	spin_unlock(&storage->lock);
	pr_info("%u range(s), %llu sectors appended on %u:%u\n", count,
		(unsigned long long)added, MAJOR(dev), MINOR(dev));
	ret = 0;
	goto out_unlock;

out_free:
	list_for_each_entry_safe(range, tmp, &list, link) {
		compat_bdev_put_ref(range->bdev);
		kfree(range);
	}
out_unlock:
	mutex_unlock(&storage->append_lock);
out_put:
	compat_bdev_put_ref(bdev);
	return ret;
}

/*
 * Can storage take every chunk that has no room yet? Then no copy can
 * make the snapshot overflow. Called with storage->lock held.
 */
static bool diff_storage_covers(struct diff_storage *storage)
{
	return storage->grain && storage->whole >= storage->unkept;
}

/* Move to a range with @sectors free; called with storage->lock held. */
static bool diff_storage_find_room(struct diff_storage *storage,
				   sector_t sectors)
{
	if (!storage->cur) {
		if (list_empty(&storage->ranges))
			return false;
		storage->cur = list_first_entry(&storage->ranges,
						struct diff_storage_range,
						link);
		storage->cur_used = 0;
	}
	while (storage->cur->count - storage->cur_used < sectors) {
		/* The tail of a range too short for a chunk is lost. */
		storage->used += storage->cur->count - storage->cur_used;
		storage->cur_used = storage->cur->count;
		if (list_is_last(&storage->cur->link, &storage->ranges))
			return false;
		storage->cur = list_next_entry(storage->cur, link);
		storage->cur_used = 0;
	}
	return true;
}

/* Hand out room diff_storage_find_room() found. */
static void diff_storage_take(struct diff_storage *storage, sector_t sectors,
			      struct diff_storage_loc *loc)
{
	loc->bdev = storage->cur->bdev;
	loc->sector = storage->cur->start + storage->cur_used;
	storage->cur_used += sectors;
	storage->used += sectors;
	if (sectors != storage->grain) {
		storage->grain = 0;
	} else {
		storage->whole -= min(storage->whole, sectors);
		storage->unkept -= min(storage->unkept, sectors);
	}
}

/**
 * diff_storage_alloc() - Reserve room for chunks' copies.
 * @storage: The snapshot's storage.
 * @sectors: Size of each chunk.
 * @locs: Filled in with where the room is, one per chunk.
 * @count: Number of chunks.
 *
 * The chunks get room in turn under one lock, so that their copies lie
 * one after the other wherever a range has room for them, and are stored
 * with one bio. Raises the low space event when free space falls below
 * diff_storage_minimum, once until the next append, unless storage has
 * room for every chunk not copied yet. Does not sleep.
 *
 * Return: the number of chunks given room, from the first on: fewer than
 * @count only when storage is full.
 */
unsigned int diff_storage_alloc(struct diff_storage *storage, sector_t sectors,
				struct diff_storage_loc **locs,
				unsigned int count)
{
	bool notify = false;
	unsigned int n;
	sector_t free;

	spin_lock(&storage->lock);
	for (n = 0; n < count && diff_storage_find_room(storage, sectors); n++)
		diff_storage_take(storage, sectors, locs[n]);
	free = storage->capacity - storage->used;
	if (n && free < diff_storage_minimum && !storage->low_space_sent &&
	    !diff_storage_covers(storage)) {
		storage->low_space_sent = true;
		notify = true;
	}
	spin_unlock(&storage->lock);

	if (notify)
		event_low_space(storage->events, diff_storage_minimum, free);
	return n;
}

void diff_storage_usage(struct diff_storage *storage, u64 *capacity,
			u64 *used)
{
	spin_lock(&storage->lock);
	*capacity = storage->capacity;
	*used = storage->used;
	spin_unlock(&storage->lock);
}

/**
 * diff_storage_expect() - Tell storage what the snapshot may still ask of it.
 * @storage: The snapshot's storage.
 * @grain: Sectors of each allocation from now on: the chunk size, where
 *	all devices of the snapshot have the same; 0 otherwise.
 * @sectors: Sectors all chunks of all devices would take.
 *
 * Called at the take, before any allocation. With it, storage can tell
 * when it holds room for every chunk that may still be copied.
 */
void diff_storage_expect(struct diff_storage *storage, sector_t grain,
			 sector_t sectors)
{
	struct diff_storage_range *range;
	sector_t whole = 0;

	mutex_lock(&storage->append_lock);
	if (grain) {
		list_for_each_entry(range, &storage->ranges, link) {
			whole += round_down(range->count, grain);
			cond_resched();
		}
	}
	spin_lock(&storage->lock);
	/* Only whole ranges are counted: there must be no allocation yet. */
	storage->grain = storage->cur ? 0 : grain;
	storage->whole = whole;
	storage->unkept = sectors;
	spin_unlock(&storage->lock);
	mutex_unlock(&storage->append_lock);
}

/**
 * diff_storage_lost() - Room was handed out for a copy that failed.
 * @storage: The snapshot's storage.
 * @sectors: What it took.
 *
 * The room stays used; its chunk will ask for room again.
 */
void diff_storage_lost(struct diff_storage *storage, sector_t sectors)
{
	spin_lock(&storage->lock);
	storage->unkept += sectors;
	spin_unlock(&storage->lock);
}

/**
 * diff_storage_room() - Room for copies no write asked for yet.
 * @storage: The snapshot's storage.
 *
 * Return: free sectors above the low space mark, or all there is when
 * storage can take every chunk not copied yet: then no copy can make the
 * snapshot overflow, whoever asks for it.
 */
sector_t diff_storage_room(struct diff_storage *storage)
{
	sector_t free, room = 0;

	spin_lock(&storage->lock);
	free = storage->capacity - storage->used;
	if (diff_storage_covers(storage))
		room = free;
	else if (free > diff_storage_minimum)
		room = free - diff_storage_minimum;
	spin_unlock(&storage->lock);
	return room;
}
