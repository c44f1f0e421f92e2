/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_DIFF_STORAGE_H
#define __BLKSNAP_DIFF_STORAGE_H

#include <linux/blk_types.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <uapi/linux/blksnap.h>

struct event_queue;

/**
 * struct diff_storage_range - A piece of difference storage.
 * @link: In &diff_storage.ranges, in the order of appending.
 * @bdev: The device (a reference, see compat_bdev_get_ref()).
 * @start: First sector.
 * @count: Number of sectors.
 */
struct diff_storage_range {
	struct list_head link;
	struct block_device *bdev;
	sector_t start;
	sector_t count;
};

/**
 * struct diff_storage - The difference storage of one snapshot.
 * @ranges: All ranges, used in the order they were appended.
 * @append_lock: Serializes appends (and their overlap checks).
 * @lock: Protects the allocation state below; taken in the I/O path.
 * @cur: The range allocations come from now, NULL before the first.
 * @cur_used: Sectors of @cur handed out.
 * @capacity: Sectors appended in all.
 * @used: Sectors handed out, plus tails of ranges too short to use.
 * @grain: Sectors of every allocation from the take on, where all devices
 *	copy chunks of one size; 0 otherwise (see diff_storage_expect()).
 * @whole: Sectors not handed out yet that lie in whole grains: what can
 *	still be allocated, with the tails of ranges left out.
 * @unkept: Sectors the chunks that have no room yet would take.
 * @low_space_sent: The low space event went out since the last append.
 * @events: Where the low space event goes.
 */
struct diff_storage {
	struct list_head ranges;
	struct mutex append_lock;
	spinlock_t lock;
	struct diff_storage_range *cur;
	sector_t cur_used;
	sector_t capacity;
	sector_t used;
	sector_t grain;
	sector_t whole;
	sector_t unkept;
	bool low_space_sent;
	struct event_queue *events;
};

/**
 * struct diff_storage_loc - Where a chunk's copy lives.
 * @bdev: Storage device.
 * @sector: First sector on it.
 */
struct diff_storage_loc {
	struct block_device *bdev;
	sector_t sector;
};

void diff_storage_init(struct diff_storage *storage,
		       struct event_queue *events);
void diff_storage_done(struct diff_storage *storage);
int diff_storage_append(struct diff_storage *storage, dev_t dev,
			struct blksnap_sectors *ranges, unsigned int count);
unsigned int diff_storage_alloc(struct diff_storage *storage, sector_t sectors,
				struct diff_storage_loc **locs,
				unsigned int count);
void diff_storage_usage(struct diff_storage *storage, u64 *capacity,
			u64 *used);
void diff_storage_expect(struct diff_storage *storage, sector_t grain,
			 sector_t sectors);
void diff_storage_lost(struct diff_storage *storage, sector_t sectors);
sector_t diff_storage_room(struct diff_storage *storage);

#endif /* __BLKSNAP_DIFF_STORAGE_H */
