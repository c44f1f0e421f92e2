/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_DIFF_AREA_H
#define __BLKSNAP_DIFF_AREA_H

#include <linux/blk_types.h>
#include <linux/list.h>
#include <linux/semaphore.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/xarray.h>
#include "compat.h"

struct diff_storage;
struct snapshot;

#define DIFF_AREA_STRIPES 1024

/**
 * struct diff_area_stripe - Image reads of the original in flight.
 * @readers: Reads of not yet copied chunks of this stripe in flight.
 * @wait: Where copy-on-write waits for @readers to drain.
 *
 * Chunks hash onto stripes. Before a write may change a chunk of the
 * original, the reads of the old data through the image must be done.
 */
struct diff_area_stripe {
	atomic_t readers;
	wait_queue_head_t wait;
};

/*
 * Sweepers take the device's spans in turn, so that while one waits for
 * its read, the next read is already on its way.
 */
#define DIFF_AREA_SWEEPERS 2

/**
 * struct diff_area_sweeper - One worker of a device's sweep.
 * @work: Runs diff_area_sweep_fn().
 * @area: The device's area.
 */
struct diff_area_sweeper {
	struct work_struct work;
	struct diff_area *area;
};

/**
 * struct diff_area - Copy-on-write state of one device of a snapshot.
 * @bdev: The original device (whole disk or partition).
 * @dev: Its device number.
 * @capacity: Its size in sectors at the take.
 * @chunk_shift: log2 of the chunk size in sectors.
 * @chunks: Chunks that differ from the original, by index; a chunk is
 *	added when it is first copied and stays until the snapshot goes.
 * @free_lock: Protects @free_buffers and @nr_free.
 * @free_buffers: Chunk buffers ready for the next copy.
 * @nr_free: How many.
 * @max_free: At most this many are kept; also the number of store slots.
 * @free_wait: Where a copy waits for a buffer when memory is short.
 * @buffer_shrinker: Gives cached buffers back under memory pressure.
 * @storage: The snapshot's difference storage.
 * @snapshot: The snapshot, told when the area breaks.
 * @store_slots: Bounds the copies held in memory while they are stored.
 * @sweep_slots: The part of @store_slots the sweep may hold.
 * @stored: Where image writes wait for a copy to reach storage.
 * @store_lock: Protects @store_queue, @nr_queued and @nr_storing.
 * @store_queue: Copy batches read and published, their stores not sent.
 * @nr_queued: Chunks (and gaps) of the batches in @store_queue.
 * @nr_storing: Batches whose stores are in flight.
 * @next_chunk: The chunk after the last write that needed copies: a write
 *	starting there continues a sequential stream.
 * @nr_chunks: How many @chunks hold: tells dense writes from scattered.
 * @nr_placed: Chunks given room in storage. The others, gathered for a
 *	copy or waiting for one, count as still to place: see
 *	diff_area_dense().
 * @in_flight: Copy batches and image bios under way: their completions
 *	use the area, so it is freed only once there are none.
 * @sweepers: Copy the rest of the device once writes are dense.
 * @sweep_next: The first chunk of the next span a sweeper takes.
 * @sweep_state: Whether the sweep was started, must stop, or has ended.
 * @stripes: See &struct diff_area_stripe.
 */
struct diff_area {
	struct block_device *bdev;
	dev_t dev;
	sector_t capacity;
	unsigned int chunk_shift;
	struct xarray chunks;
	spinlock_t free_lock;
	struct list_head free_buffers;
	unsigned int nr_free;
	unsigned int max_free;
	wait_queue_head_t free_wait;
	struct compat_shrinker buffer_shrinker;
	struct diff_storage *storage;
	struct snapshot *snapshot;
	struct semaphore store_slots;
	struct semaphore sweep_slots;
	wait_queue_head_t stored;
	spinlock_t store_lock;
	struct list_head store_queue;
	unsigned int nr_queued;
	unsigned int nr_storing;
	unsigned long next_chunk;
	atomic_long_t nr_chunks;
	atomic_long_t nr_placed;
	atomic_t in_flight;
	struct diff_area_sweeper sweepers[DIFF_AREA_SWEEPERS];
	atomic_long_t sweep_next;
	unsigned long sweep_state;
	struct diff_area_stripe stripes[DIFF_AREA_STRIPES];
};

struct diff_area *diff_area_new(struct block_device *bdev, dev_t dev,
				struct diff_storage *storage,
				struct snapshot *snapshot);
void diff_area_stop(struct diff_area *area);
void diff_area_free(struct diff_area *area);
bool diff_area_range_stable(struct diff_area *area, sector_t sector,
			    sector_t count);
void diff_area_submit_write(struct diff_area *area, struct bio *bio,
			    sector_t offset);
void diff_area_submit_image_bio(struct diff_area *area, struct bio *bio);

static inline u32 diff_area_chunk_bytes(const struct diff_area *area)
{
	return 1U << (area->chunk_shift + SECTOR_SHIFT);
}

int diff_area_module_init(void);
void diff_area_module_exit(void);
void diff_area_drain(void);
void diff_area_defer_bio(struct bio *bio, void (*fn)(struct bio *bio));
bool diff_area_owns_bio(const struct bio *bio);

#endif /* __BLKSNAP_DIFF_AREA_H */
