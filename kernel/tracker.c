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
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/srcu.h>
#include <linux/xarray.h>
#include "cbt_map.h"
#include "compat.h"
#include "diff_area.h"
#include "snapimage.h"
#include "snapshot.h"
#include "tracker.h"

/**
 * enum tracker_state - Where a tracker stands with snapshots.
 * @TRACKER_IDLE: In no snapshot: writes are only recorded in the CBT.
 * @TRACKER_HELD: In a snapshot not taken yet: writes pass through
 *	blksnap code, so a take can wait for them (tracker_wait_submitters()).
 * @TRACKER_TAKING: A take is under way: new writes are parked.
 * @TRACKER_COW: Taken: writes to chunks not yet copied wait for the copy.
 */
enum tracker_state {
	TRACKER_IDLE,
	TRACKER_HELD,
	TRACKER_TAKING,
	TRACKER_COW,
};

/**
 * struct tracker - A tracked block device.
 * @kref: The registry holds one reference, a snapshot another.
 * @dev: Device number, the key in &trackers.
 * @bdev: The device. A reference, not an open: the device may go away.
 * @diskseq: Sequence number of the disk's medium when tracking started. A
 *	different number means another medium (e.g. a loop device re-bound
 *	to another file): the map no longer describes the device.
 * @cbt: The CBT map; replaced (under tracker_mutex) when it is reset.
 * @snapshot: The snapshot the device belongs to, under tracker_mutex.
 * @state: &enum tracker_state; read locklessly by the submit hook,
 *	changed under @submit_lock.
 * @submit_lock: Protects @state changes and @parked.
 * @parked: Writes that arrived during a take.
 * @area: Copy-on-write state while @state is TRACKER_COW.
 * @image: The snapshot image, after the take.
 * @frozen_copy: Memory for the CBT's frozen copy, from take_prepare to
 *	the switch.
 * @held_writes: Writes sent on in TRACKER_HELD state and not yet
 *	completed, under @submit_lock (see &struct held_write).
 * @held_uncounted: One of them could not be counted.
 * @held_wait: Woken when @held_writes drops to 0.
 */
struct tracker {
	struct kref kref;
	dev_t dev;
	struct block_device *bdev;
	u64 diskseq;
	struct cbt_map __rcu *cbt;
	struct snapshot *snapshot;
	int state;
	spinlock_t submit_lock;
	struct bio_list parked;
	struct diff_area __rcu *area;
	struct snapimage *image;
	u8 *frozen_copy;
	unsigned int held_writes;
	bool held_uncounted;
	wait_queue_head_t held_wait;
};

/* Tracked devices by dev_t. Readers use RCU, writers tracker_mutex. */
static DEFINE_XARRAY(trackers);
static DEFINE_MUTEX(tracker_mutex);
/* Held by tracker_submit_bio() while it decides about and passes a bio. */
DEFINE_STATIC_SRCU(submit_srcu);

static inline struct cbt_map *tracker_cbt(struct tracker *tracker)
{
	return rcu_dereference_protected(tracker->cbt,
					 lockdep_is_held(&tracker_mutex));
}

static void tracker_release(struct kref *kref)
{
	struct tracker *tracker = container_of(kref, struct tracker, kref);

	cbt_map_free(rcu_dereference_raw(tracker->cbt));
	compat_bdev_put_ref(tracker->bdev);
	kfree(tracker);
}

void tracker_put(struct tracker *tracker)
{
	kref_put(&tracker->kref, tracker_release);
}

/*
 * Remove a tracker from the registry; the caller holds tracker_mutex. A
 * snapshot holding the device breaks: its image can no longer be right.
 */
static void tracker_remove(struct tracker *tracker, const char *why)
{
	xa_erase(&trackers, tracker->dev);
	if (tracker->snapshot)
		snapshot_set_corrupted(tracker->snapshot, tracker->dev, -ENODEV);
	synchronize_rcu();
	synchronize_srcu(&submit_srcu);
	pr_info("stopped tracking %u:%u: %s\n", MAJOR(tracker->dev),
		MINOR(tracker->dev), why);
	tracker_put(tracker);
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
	/* The frozen copy must match the snapshot: reset after it goes. */
	if (capacity == old->capacity || tracker->snapshot)
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
	if (snapimage_is_image(bdev)) {
		compat_bdev_put_ref(bdev);
		return ERR_PTR(-EINVAL);
	}
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
	kref_init(&tracker->kref);
	spin_lock_init(&tracker->submit_lock);
	bio_list_init(&tracker->parked);
	init_waitqueue_head(&tracker->held_wait);
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
	tracker_put(tracker);
	return ret;
}

int tracker_detach(dev_t dev)
{
	struct tracker *tracker;

	int ret = 0;

	mutex_lock(&tracker_mutex);
	tracker = xa_load(&trackers, dev);
	if (!tracker)
		ret = -ENOENT;
	else if (tracker->snapshot)
		ret = -EBUSY;
	else
		tracker_remove(tracker, "detached");
	mutex_unlock(&tracker_mutex);
	return ret;
}

/**
 * tracker_list() - List the tracked devices.
 * @devs: Array to fill.
 * @count: In: capacity of @devs. Out: number of tracked devices.
 *
 * Return: 0, or -ENOBUFS if @devs is too small.
 */
int tracker_list(struct blksnap_bdev *devs, unsigned int *count)
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
		if (n < *count) {
			devs[n].major = MAJOR(tracker->dev);
			devs[n].minor = MINOR(tracker->dev);
		}
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
 * @frozen: Copy the map as frozen at the take of the device's snapshot.
 *
 * The copy lets the caller hand the map to userspace without holding
 * tracker_mutex across page faults.
 *
 * Return: a kvmalloc()ed buffer of @length bytes, or an ERR_PTR: -ENOENT
 * if not tracked, -EINVAL if the range is outside the map, -ENODATA if
 * there is no frozen map, -ENOMEM.
 */
u8 *tracker_cbt_copy(dev_t dev, u32 offset, u32 length, bool frozen)
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
	if (frozen && !cbt->frozen) {
		buf = ERR_PTR(-ENODATA);
		goto out;
	}
	buf = kvmalloc(length, GFP_KERNEL);
	if (!buf) {
		buf = ERR_PTR(-ENOMEM);
		goto out;
	}
	memcpy(buf, (frozen ? cbt->frozen : cbt->map) + offset, length);
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

/*
 * @state is stored with release semantics after what it enables (the
 * switched CBT, the area) and loaded with acquire semantics by the
 * lockless submit hook, which then sees those too.
 */
static int tracker_state(struct tracker *tracker)
{
	/* Pairs with tracker_store_state(). */
	return smp_load_acquire(&tracker->state);
}

static void tracker_store_state(struct tracker *tracker, int state)
{
	/* Pairs with tracker_state(). */
	smp_store_release(&tracker->state, state);
}

/*
 * The tracker of @bdev itself, if it is the device tracking started on;
 * a bio for another device behind the same number (a re-created partition
 * or disk) or another medium is not ours. Called under RCU.
 */
static struct tracker *tracker_lookup(struct block_device *bdev)
{
	struct tracker *tracker = xa_load(&trackers, bdev->bd_dev);

	if (!tracker || tracker->bdev != bdev ||
	    bdev->bd_disk->diskseq != tracker->diskseq)
		return NULL;
	return tracker;
}

static void tracker_mark(struct tracker *tracker, sector_t sector,
			 sector_t count)
{
	cbt_map_mark(rcu_dereference(tracker->cbt), sector, count);
}

/*
 * The tracker that does copy-on-write for a bio's device, of the device's
 * own (@own) and, for a partition, its whole disk's (@whole), with
 * @offset set to the partition's start for the latter. At most one of
 * them is in a snapshot (tracker_claim()). Called under RCU.
 */
static struct tracker *tracker_pick_cow(struct tracker *own,
					struct tracker *whole,
					struct block_device *bdev,
					sector_t *offset)
{
	*offset = 0;
	if (own && tracker_state(own) != TRACKER_IDLE)
		return own;
	if (whole && tracker_state(whole) != TRACKER_IDLE) {
		*offset = bdev->bd_start_sect;
		return whole;
	}
	return NULL;
}

/* The tracker of the whole disk, if @bdev is a partition of it. */
static struct tracker *tracker_lookup_whole(struct block_device *bdev)
{
	if (!bdev_is_partition(bdev))
		return NULL;
	return tracker_lookup(bdev->bd_disk->part0);
}

static struct tracker *tracker_cow_target(struct block_device *bdev,
					  sector_t *offset)
{
	return tracker_pick_cow(tracker_lookup(bdev),
				tracker_lookup_whole(bdev), bdev, offset);
}

/* Does a write to a device under snapshot need blksnap's attention? */
static bool tracker_needs_divert(struct tracker *tracker, struct bio *bio,
				 sector_t offset)
{
	struct diff_area *area;

	if (tracker_state(tracker) != TRACKER_COW)
		return true;
	area = rcu_dereference(tracker->area);
	return area && !diff_area_range_stable(area,
					       bio->bi_iter.bi_sector + offset,
					       bio_sectors(bio));
}

/**
 * tracker_intercept_bio() - Look at a bio entering submit_bio_noacct().
 * @bio: The bio.
 *
 * Records the blocks a write is about to change, for the device and, for a
 * partition, for its whole disk, whichever is tracked. Runs in the
 * submitter's context, possibly atomic; never sleeps.
 *
 * Return: true if the bio must go to tracker_submit_bio() instead: a write
 * to a device in a snapshot, unless it only touches chunks copied already.
 */
bool tracker_intercept_bio(struct bio *bio)
{
	struct block_device *bdev = bio->bi_bdev;
	sector_t sector = bio->bi_iter.bi_sector;
	sector_t count = bio_sectors(bio);
	struct tracker *own, *whole, *tracker;
	sector_t offset;
	bool divert = false;

	if (xa_empty(&trackers) || !op_is_write(bio_op(bio)) || !count)
		return false;
	/*
	 * A remapped bio was handled when it first entered: a split
	 * remainder coming back holds whole-disk sectors on a partition.
	 */
	if (bio_flagged(bio, BIO_REMAPPED))
		return false;

	rcu_read_lock();
	own = tracker_lookup(bdev);
	whole = tracker_lookup_whole(bdev);
	if (own)
		tracker_mark(own, sector, count);
	if (whole)
		tracker_mark(whole, sector + bdev->bd_start_sect, count);
	/* blksnap's own writes (copies into storage) are not copied again. */
	if (!diff_area_owns_bio(bio)) {
		tracker = tracker_pick_cow(own, whole, bdev, &offset);
		divert = tracker && tracker_needs_divert(tracker, bio, offset);
	}
	rcu_read_unlock();
	return divert;
}

/*
 * A write sent on while its device is held for a take. The take waits for
 * these to complete rather than for a frozen queue to drain: freezing
 * costs an RCU grace period, tens of milliseconds on a slow machine, with
 * every write to the device held meanwhile.
 */
struct held_write {
	struct tracker *tracker;
	bio_end_io_t *end_io;
	void *private;
};

static void held_write_endio(struct bio *bio)
{
	struct held_write *hw = bio->bi_private;
	struct tracker *tracker = hw->tracker;
	unsigned long flags;

	bio->bi_end_io = hw->end_io;
	bio->bi_private = hw->private;
	kfree(hw);
	/* Under the lock: the waiter may free the tracker once it sees 0. */
	spin_lock_irqsave(&tracker->submit_lock, flags);
	if (!--tracker->held_writes)
		wake_up(&tracker->held_wait);
	spin_unlock_irqrestore(&tracker->submit_lock, flags);
	/* bio_endio() has done all but this. */
	if (bio->bi_end_io)
		bio->bi_end_io(bio);
}

/*
 * Count a write of a held device until it completes. Called with
 * @submit_lock held; @hw is NULL if it could not be allocated, and the
 * take then drains the queue instead.
 */
static void tracker_count_held(struct tracker *tracker, struct bio *bio,
			       struct held_write *hw)
{
	if (!hw) {
		tracker->held_uncounted = true;
		return;
	}
	hw->tracker = tracker;
	hw->end_io = bio->bi_end_io;
	hw->private = bio->bi_private;
	bio->bi_end_io = held_write_endio;
	bio->bi_private = hw;
	tracker->held_writes++;
}

/* Decide about a diverted write; called within submit_srcu. */
static void tracker_submit_cow(struct tracker *tracker, struct bio *bio,
			       sector_t offset)
{
	struct held_write *hw = NULL;
	struct diff_area *area;
	unsigned long flags;

	if (tracker_state(tracker) == TRACKER_HELD)
		hw = kmalloc(sizeof(*hw), bio->bi_opf & REQ_NOWAIT ?
				GFP_NOWAIT : GFP_NOIO);
	spin_lock_irqsave(&tracker->submit_lock, flags);
	switch (tracker->state) {
	case TRACKER_TAKING:
		bio_list_add(&tracker->parked, bio);
		spin_unlock_irqrestore(&tracker->submit_lock, flags);
		break;
	case TRACKER_COW:
		area = rcu_dereference_protected(tracker->area, true);
		spin_unlock_irqrestore(&tracker->submit_lock, flags);
		/*
		 * The hook may have marked the CBT just before the take
		 * switched numbers: mark again with the new one.
		 */
		rcu_read_lock();
		tracker_mark(tracker, bio->bi_iter.bi_sector + offset,
			     bio_sectors(bio));
		rcu_read_unlock();
		diff_area_submit_write(area, bio, offset);
		break;
	case TRACKER_HELD:
		tracker_count_held(tracker, bio, hw);
		hw = NULL;
		spin_unlock_irqrestore(&tracker->submit_lock, flags);
		submit_bio_noacct(bio);
		break;
	default:
		spin_unlock_irqrestore(&tracker->submit_lock, flags);
		submit_bio_noacct(bio);
	}
	kfree(hw);
}

/**
 * tracker_submit_bio() - Handle a write the submit hook diverted.
 * @bio: A write to a device in a snapshot.
 *
 * A bio submitted by a stacking driver (current->bio_list set) would only
 * be sent on after this returns, out of sight of a take waiting for
 * submitters; such bios are handed to a worker first.
 */
void tracker_submit_bio(struct bio *bio)
{
	struct tracker *tracker;
	sector_t offset;
	int idx;

	if (current->bio_list) {
		diff_area_defer_bio(bio, tracker_submit_bio);
		return;
	}
	idx = srcu_read_lock(&submit_srcu);
	rcu_read_lock();
	tracker = tracker_cow_target(bio->bi_bdev, &offset);
	rcu_read_unlock();
	if (tracker)
		tracker_submit_cow(tracker, bio, offset);
	else
		submit_bio_noacct(bio);
	srcu_read_unlock(&submit_srcu, idx);
}

/**
 * tracker_mark_image_write() - Record a write to a snapshot image.
 * @tracker: The original's tracker.
 * @sector: First sector written.
 * @count: Sectors written.
 *
 * The image now differs from the original at the take: both the live map
 * and the snapshot's frozen copy say so.
 */
void tracker_mark_image_write(struct tracker *tracker, sector_t sector,
			      sector_t count)
{
	struct cbt_map *cbt;

	rcu_read_lock();
	cbt = rcu_dereference(tracker->cbt);
	cbt_map_mark(cbt, sector, count);
	cbt_map_mark_frozen(cbt, sector, count);
	rcu_read_unlock();
}

/**
 * tracker_disk_removed() - Let go of a disk that is being deleted.
 * @disk: The disk, on its way through del_gendisk().
 *
 * Trackers of the disk and of its partitions are dropped before the disk
 * is torn down; a snapshot holding one of them breaks.
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

/* ---- snapshots ---- */

/**
 * tracker_get_by_dev() - Find a tracker for a snapshot.
 * @dev: Tracked device.
 *
 * Return: a reference to the tracker, or ERR_PTR(-ENOENT).
 */
struct tracker *tracker_get_by_dev(dev_t dev)
{
	struct tracker *tracker;

	mutex_lock(&tracker_mutex);
	tracker = tracker_get_fresh(dev);
	if (!IS_ERR(tracker))
		kref_get(&tracker->kref);
	mutex_unlock(&tracker_mutex);
	return tracker;
}

dev_t tracker_dev(struct tracker *tracker)
{
	return tracker->dev;
}

struct block_device *tracker_bdev(struct tracker *tracker)
{
	return tracker->bdev;
}

/* Is the tracker still registered for a present device? */
bool tracker_present(struct tracker *tracker)
{
	bool present;

	mutex_lock(&tracker_mutex);
	present = xa_load(&trackers, tracker->dev) == tracker &&
		  tracker_device_present(tracker);
	mutex_unlock(&tracker_mutex);
	return present;
}

static void tracker_set_state(struct tracker *tracker, int state)
{
	unsigned long flags;

	spin_lock_irqsave(&tracker->submit_lock, flags);
	tracker_store_state(tracker, state);
	spin_unlock_irqrestore(&tracker->submit_lock, flags);
}

/**
 * tracker_claim() - Make a tracker part of a snapshot.
 * @tracker: The tracker.
 * @snapshot: The snapshot.
 *
 * A whole disk and its partitions are never in snapshots together, so a
 * write has one copy-on-write owner; partitions of one disk may be.
 *
 * Return: 0 or -EBUSY.
 */
int tracker_claim(struct tracker *tracker, struct snapshot *snapshot)
{
	struct tracker *other;
	unsigned long idx;
	int ret = 0;

	mutex_lock(&tracker_mutex);
	if (tracker->snapshot) {
		ret = -EBUSY;
		goto out;
	}
	xa_for_each(&trackers, idx, other) {
		if (other->snapshot && other != tracker &&
		    other->bdev->bd_disk == tracker->bdev->bd_disk &&
		    (!bdev_is_partition(other->bdev) ||
		     !bdev_is_partition(tracker->bdev))) {
			ret = -EBUSY;
			goto out;
		}
	}
	tracker->snapshot = snapshot;
	tracker_set_state(tracker, TRACKER_HELD);
out:
	mutex_unlock(&tracker_mutex);
	return ret;
}

/* Wait for every write in the device's queue: freeze it, and let go. */
static void tracker_drain_queue(struct tracker *tracker)
{
	struct request_queue *q = bdev_get_queue(tracker->bdev);
	unsigned int noio;

	noio = memalloc_noio_save();
	compat_queue_freeze_start(q);
	compat_queue_freeze_wait(q);
	compat_queue_unfreeze(q);
	memalloc_noio_restore(noio);
}

/**
 * tracker_drain_unheld() - Wait for writes sent before the device was held.
 * @tracker: A tracker just claimed.
 *
 * Those were not counted (see &struct held_write). Draining the queue
 * once here spares the take from doing it.
 */
void tracker_drain_unheld(struct tracker *tracker)
{
	/* Submitters that saw the tracker idle have sent their writes on. */
	synchronize_rcu();
	synchronize_srcu_expedited(&submit_srcu);
	tracker_drain_queue(tracker);
}

/*
 * Wait for the writes counted while the device was held. Return: true if
 * one could not be counted.
 */
static bool tracker_wait_counted(struct tracker *tracker)
{
	bool uncounted;

	spin_lock_irq(&tracker->submit_lock);
	wait_event_lock_irq(tracker->held_wait, !tracker->held_writes,
			    tracker->submit_lock);
	uncounted = tracker->held_uncounted;
	tracker->held_uncounted = false;
	spin_unlock_irq(&tracker->submit_lock);
	return uncounted;
}

/**
 * tracker_drain_held() - Wait for the writes sent while the device was held.
 * @tracker: A tracker in TRACKER_TAKING state, its submitters waited for.
 *
 * New writes are parked, so none enters the queue meanwhile. Rarely,
 * memory was short for counting a write: the queue is drained then.
 */
void tracker_drain_held(struct tracker *tracker)
{
	if (tracker_wait_counted(tracker))
		tracker_drain_queue(tracker);
}

/* Leave the snapshot (after tracker_release_cow() if it was taken). */
void tracker_unclaim(struct tracker *tracker)
{
	mutex_lock(&tracker_mutex);
	/* Left over if the snapshot was never taken. */
	cbt_map_free_copy(tracker_cbt(tracker), tracker->frozen_copy);
	tracker->frozen_copy = NULL;
	tracker_set_state(tracker, TRACKER_IDLE);
	tracker->snapshot = NULL;
	mutex_unlock(&tracker_mutex);
	/* Counted writes end in held_write_endio(), which uses the tracker. */
	synchronize_srcu_expedited(&submit_srcu);
	tracker_wait_counted(tracker);
}

/* Allocate what the take needs before anything is frozen. */
int tracker_take_prepare(struct tracker *tracker)
{
	int ret = 0;

	mutex_lock(&tracker_mutex);
	if (!tracker_device_present(tracker)) {
		ret = -ENODEV;
	} else if (!tracker->frozen_copy) {
		tracker->frozen_copy =
			cbt_map_alloc_copy(tracker_cbt(tracker));
		if (!tracker->frozen_copy)
			ret = -ENOMEM;
	}
	mutex_unlock(&tracker_mutex);
	return ret;
}

/* Park new writes; the caller then waits for those already passing. */
void tracker_take_hold(struct tracker *tracker)
{
	tracker_set_state(tracker, TRACKER_TAKING);
}

/*
 * Wait until every diverted write that saw the old state has been sent
 * on (and, if the device was held, counted: see tracker_drain_held()).
 */
void tracker_wait_submitters(void)
{
	/* A take waits for this with writes held: be quick. */
	synchronize_srcu_expedited(&submit_srcu);
}

/**
 * tracker_take_switch() - The instant of the snapshot, for one device.
 * @tracker: A tracker in TRACKER_TAKING state with no write in flight.
 * @area: Its copy-on-write state.
 *
 * Freezes the CBT with the current change number and starts the next one.
 */
void tracker_take_switch(struct tracker *tracker, struct diff_area *area)
{
	/*
	 * No tracker_mutex here: the devices' queues are frozen, and its
	 * holders may allocate memory with I/O. The map is not replaced
	 * while the tracker is in a snapshot (tracker_refresh()).
	 */
	cbt_map_switch(rcu_dereference_protected(tracker->cbt, true),
		       tracker->frozen_copy);
	tracker->frozen_copy = NULL;
	rcu_assign_pointer(tracker->area, area);
}

/* Send the parked writes back through the path they missed. */
static void tracker_unpark(struct tracker *tracker, struct bio_list *bios)
{
	struct bio *bio;

	while ((bio = bio_list_pop(bios)))
		tracker_submit_bio(bio);
}

/**
 * tracker_take_release() - Start copy-on-write and release parked writes.
 * @tracker: The tracker, switched.
 */
void tracker_take_release(struct tracker *tracker)
{
	struct bio_list parked;
	unsigned long flags;

	spin_lock_irqsave(&tracker->submit_lock, flags);
	tracker_store_state(tracker, TRACKER_COW);
	parked = tracker->parked;
	bio_list_init(&tracker->parked);
	spin_unlock_irqrestore(&tracker->submit_lock, flags);
	tracker_unpark(tracker, &parked);
}

/* The snapshot image of a taken device, for tracker_image_info(). */
void tracker_set_image(struct tracker *tracker, struct snapimage *image)
{
	mutex_lock(&tracker_mutex);
	tracker->image = image;
	mutex_unlock(&tracker_mutex);
}

/* The take failed: back to TRACKER_HELD, parked writes pass as before. */
void tracker_take_abort(struct tracker *tracker)
{
	struct bio_list parked;
	unsigned long flags;

	mutex_lock(&tracker_mutex);
	cbt_map_free_copy(tracker_cbt(tracker), tracker->frozen_copy);
	tracker->frozen_copy = NULL;
	mutex_unlock(&tracker_mutex);

	spin_lock_irqsave(&tracker->submit_lock, flags);
	tracker_store_state(tracker, TRACKER_HELD);
	parked = tracker->parked;
	bio_list_init(&tracker->parked);
	spin_unlock_irqrestore(&tracker->submit_lock, flags);
	tracker_unpark(tracker, &parked);
}

/**
 * tracker_release_cow() - Stop copy-on-write at snapshot destruction.
 * @tracker: A tracker of the snapshot.
 * @image: Set to its image, for the caller to remove.
 *
 * Writes pass untouched from now on; the caller waits for the I/O path
 * (tracker_wait_submitters(), diff_area_drain()) before freeing the area.
 */
void tracker_release_cow(struct tracker *tracker, struct snapimage **image)
{
	tracker_set_state(tracker, TRACKER_HELD);
	mutex_lock(&tracker_mutex);
	RCU_INIT_POINTER(tracker->area, NULL);
	cbt_map_release_frozen(tracker_cbt(tracker));
	*image = tracker->image;
	tracker->image = NULL;
	mutex_unlock(&tracker_mutex);
	/* The submit hook no longer looks at the area. */
	synchronize_rcu();
}

/**
 * tracker_image_info() - The snapshot image of a device.
 * @dev: A tracked device.
 * @info: Filled in.
 *
 * Return: 0, -ENOENT if the device is in no snapshot.
 */
int tracker_image_info(dev_t dev, struct blksnap_image_info *info)
{
	struct tracker *tracker;
	struct diff_area *area;
	int ret = 0;

	mutex_lock(&tracker_mutex);
	tracker = xa_load(&trackers, dev);
	if (!tracker || !tracker->snapshot) {
		ret = -ENOENT;
		goto out;
	}
	export_uuid(info->id.b, &tracker->snapshot->id);
	info->error = READ_ONCE(tracker->snapshot->error);
	area = rcu_dereference_protected(tracker->area,
					 lockdep_is_held(&tracker_mutex));
	if (area)
		info->chunk_size = diff_area_chunk_bytes(area);
	if (tracker->image) {
		struct gendisk *disk = tracker->image->disk;

		info->image.major = disk->major;
		info->image.minor = disk->first_minor;
		strscpy(info->name, disk->disk_name, sizeof(info->name));
	}
out:
	mutex_unlock(&tracker_mutex);
	return ret;
}
