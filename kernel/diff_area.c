// SPDX-License-Identifier: GPL-2.0
/*
 * Copy-on-write for one device of a snapshot, and the I/O of its image.
 *
 * The original device is cut into chunks. Before the first write after the
 * take changes a chunk, the chunk's old data is copied into difference
 * storage; the write waits for that, later writes to the chunk pass
 * straight through. The image reads copied chunks from the storage and the
 * others from the original.
 *
 * Copies are written behind: a write to the original waits only until the
 * chunk's old data is read into memory; storing it runs in the background,
 * at most DIFF_AREA_QUEUE_BYTES per device, and until it is stored the
 * image reads the chunk from memory. Snapshots do not outlive a crash,
 * so memory keeps the old data as safely as storage does. Copies made
 * while stores are in flight are stored together (copy_store_queue()).
 *
 * A chunk's state is a set of bits the I/O path tests without locks:
 *  - BUFFERED: its old data is in memory (chunk->buf).
 *  - STABLE: additionally, no image read of the original is in flight for
 *    it any more; writes to the original may pass.
 *  - COPIED: its old data is in storage; image reads go there.
 * Before STABLE, copy-on-write waits for the stripe's in-flight image
 * reads of the original (see &struct diff_area_stripe).
 *
 * Once writes are dense (see diff_area_dense()), a sweep copies the rest of
 * the device span by span beside them: on a fresh snapshot under random
 * writes, nearly every write would otherwise wait for a copy of its own
 * until the device is covered. While it runs, a write waits only for its
 * own chunks: the sweep's large reads cover the rest.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-cow: " fmt
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/mempool.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/wait_bit.h>
#include <linux/workqueue.h>
#include "diff_area.h"
#include "diff_storage.h"
#include "params.h"
#include "snapshot.h"

enum chunk_bits {
	CHUNK_BUFFERED,
	CHUNK_STABLE,
	CHUNK_COPIED,
};

/* &struct diff_area's @sweep_state. */
enum area_sweep_bits {
	AREA_SWEEP_STARTED,
	AREA_SWEEP_STOP,
	AREA_SWEEP_ENDED,
};

static void diff_area_sweep_fn(struct work_struct *work);

/* Memory for copies in flight, per device. */
#define DIFF_AREA_QUEUE_BYTES (16U << 20)
/*
 * The sweep may hold 1/DIFF_AREA_SWEEP_SHARE of the store slots, so that a
 * write waiting for a copy of its own chunk takes a free slot at once
 * rather than queueing behind the sweep's copies.
 */
#define DIFF_AREA_SWEEP_SHARE 2

/**
 * struct chunk - A chunk whose old data is (being) kept.
 * @flags: &enum chunk_bits.
 * @lock: Serializes copying the chunk.
 * @buf_lock: Protects @buf.
 * @buf: The old data while it is being stored, else NULL.
 * @loc: Where the copy goes; valid once CHUNK_BUFFERED is set.
 */
struct chunk {
	unsigned long flags;
	struct mutex lock;
	spinlock_t buf_lock;
	struct chunk_buffer *buf;
	struct diff_storage_loc loc;
};

/*
 * Every bio blksnap sends comes from this set: the submit hook recognizes
 * them and lets them pass, so copies written into storage on a device
 * under copy-on-write are not copied again.
 */
struct blksnap_bio {
	struct image_io *io;
	unsigned long first_counted;
	unsigned int nr_counted;
	struct bio bio;
};

static struct bio_set blksnap_bio_set;
static struct workqueue_struct *blksnap_wq;
/*
 * Stores get their own queue: copy-on-write work waits for free store
 * slots, which must not depend on a free worker of its own queue.
 */
static struct workqueue_struct *store_wq;
static struct kmem_cache *chunk_cache;
static mempool_t *work_pool;
static mempool_t *batch_pool;

/* An original write waiting for its chunks to be copied. */
struct cow_work {
	struct work_struct work;
	struct diff_area *area;
	struct bio *bio;
	sector_t offset;
};

/* An image bio, split into one bio per chunk. */
struct image_io {
	struct work_struct work;
	struct diff_area *area;
	struct bio *bio;
	atomic_t pending;
	blk_status_t status;
};

/* A bio to be handled by a worker, out of its submitter's context. */
struct defer_work {
	struct work_struct work;
	struct bio *bio;
	void (*fn)(struct bio *bio);
};

#define WORK_SIZE max3(sizeof(struct cow_work), sizeof(struct image_io), \
		       sizeof(struct defer_work))

/*
 * A chunk-sized page array; image reads may hold extra references. Free
 * ones are kept in the area for the next copy (see buffer_get()). @nr_segs
 * bounds the physically contiguous runs in @pages: 1 when they are one
 * block, so that a bio carries several chunks in one request.
 */
struct chunk_buffer {
	struct list_head link;
	refcount_t users;
	unsigned int nr_pages;
	unsigned int nr_segs;
	struct page *pages[];
};

bool diff_area_owns_bio(const struct bio *bio)
{
	return bio->bi_pool == &blksnap_bio_set;
}

/* A copy batch or an image bio starts: the area stays until it is done. */
static void diff_area_io_start(struct diff_area *area)
{
	atomic_inc(&area->in_flight);
}

/* Must be its last access to the area: diff_area_free() may follow. */
static void diff_area_io_done(struct diff_area *area)
{
	/* wake_up_var() only hashes the address, freed or not. */
	if (atomic_dec_and_test(&area->in_flight))
		wake_up_var(&area->in_flight);
}

static unsigned long diff_area_chunk_count(const struct diff_area *area)
{
	return DIV_ROUND_UP_ULL(area->capacity, 1ULL << area->chunk_shift);
}

/* Same rule as for tracking blocks, with the chunk parameters. */
static unsigned int diff_area_chunk_shift(sector_t capacity)
{
	u64 bytes = (u64)capacity << SECTOR_SHIFT;
	unsigned int shift = max_t(unsigned int, chunk_minimum_shift,
				   PAGE_SHIFT);

	while (shift < chunk_maximum_shift &&
	       DIV_ROUND_UP_ULL(bytes, 1ULL << shift) > chunk_maximum_count)
		shift++;
	return shift - SECTOR_SHIFT;
}

static void buffer_free(struct chunk_buffer *buf)
{
	unsigned int i;

	for (i = 0; i < buf->nr_pages; i++)
		__free_page(buf->pages[i]);
	kfree(buf);
}

/*
 * The pages as one block, split so that each is freed on its own. Only if
 * one is free at once: single pages do as well, so it is not worth any
 * reclaim or compaction.
 */
static bool buffer_alloc_block(struct chunk_buffer *buf, unsigned int nr,
			       gfp_t gfp)
{
	unsigned int i, order = ilog2(nr);
	struct page *page;

	page = alloc_pages((gfp & ~__GFP_DIRECT_RECLAIM) | __GFP_NOWARN, order);
	if (!page)
		return false;
	split_page(page, order);
	for (i = 0; i < nr; i++)
		buf->pages[i] = page + i;
	buf->nr_pages = nr;
	buf->nr_segs = 1;
	return true;
}

static struct chunk_buffer *buffer_alloc(struct diff_area *area, gfp_t gfp)
{
	unsigned int nr = diff_area_chunk_bytes(area) >> PAGE_SHIFT;
	struct chunk_buffer *buf;

	buf = kmalloc(struct_size(buf, pages, nr), gfp);
	if (!buf)
		return NULL;
	if (buffer_alloc_block(buf, nr, gfp))
		return buf;
	buf->nr_segs = nr;
	for (buf->nr_pages = 0; buf->nr_pages < nr; buf->nr_pages++) {
		buf->pages[buf->nr_pages] = alloc_page(gfp);
		if (!buf->pages[buf->nr_pages]) {
			buffer_free(buf);
			return NULL;
		}
	}
	return buf;
}

/*
 * Buffers are kept once allocated, up to what the store queue can hold:
 * page allocation (which zeroes pages on distribution kernels) cost more
 * than the copying itself. Memory pressure takes back all but the ones
 * made with the area (buffer_cache_scan()); those guarantee progress when
 * memory is short.
 */
#define DIFF_AREA_MIN_BUFFERS 2

static struct chunk_buffer *buffer_get_cached(struct diff_area *area)
{
	struct chunk_buffer *buf;

	spin_lock(&area->free_lock);
	buf = list_first_entry_or_null(&area->free_buffers,
				       struct chunk_buffer, link);
	if (buf) {
		list_del(&buf->link);
		area->nr_free--;
	}
	spin_unlock(&area->free_lock);
	return buf;
}

/**
 * buffer_get() - A buffer for a chunk's old data.
 * @area: The device's area.
 * @wait: Wait for one to be given back if memory is short; else NULL then.
 */
static struct chunk_buffer *buffer_get(struct diff_area *area, bool wait)
{
	struct chunk_buffer *buf;

	for (;;) {
		buf = buffer_get_cached(area);
		if (!buf)
			buf = buffer_alloc(area, GFP_NOIO | __GFP_NORETRY |
						 __GFP_NOWARN);
		if (buf || !wait)
			break;
		wait_event(area->free_wait, READ_ONCE(area->nr_free));
	}
	if (buf)
		refcount_set(&buf->users, 1);
	return buf;
}

static void buffer_put(struct diff_area *area, struct chunk_buffer *buf)
{
	if (!refcount_dec_and_test(&buf->users))
		return;
	spin_lock(&area->free_lock);
	if (area->nr_free < area->max_free) {
		list_add(&buf->link, &area->free_buffers);
		area->nr_free++;
		buf = NULL;
	}
	spin_unlock(&area->free_lock);
	if (buf)
		buffer_free(buf);
	else
		wake_up(&area->free_wait);
}

/*
 * Memory pressure takes the cached buffers beyond the reserve. Counted in
 * pages, so that reclaim weighs them like the page-sized objects of other
 * caches.
 */
static unsigned long buffer_cache_count(struct shrinker *shrinker,
					struct shrink_control *sc)
{
	struct diff_area *area = compat_shrinker_owner(shrinker);
	unsigned int nr = READ_ONCE(area->nr_free);

	if (nr <= DIFF_AREA_MIN_BUFFERS)
		return 0;
	return (unsigned long)(nr - DIFF_AREA_MIN_BUFFERS) <<
	       (area->chunk_shift + SECTOR_SHIFT - PAGE_SHIFT);
}

static unsigned long buffer_cache_scan(struct shrinker *shrinker,
				       struct shrink_control *sc)
{
	struct diff_area *area = compat_shrinker_owner(shrinker);
	unsigned long freed = 0;
	struct chunk_buffer *buf, *next;
	LIST_HEAD(victims);

	spin_lock(&area->free_lock);
	while (freed < sc->nr_to_scan &&
	       area->nr_free > DIFF_AREA_MIN_BUFFERS) {
		buf = list_last_entry(&area->free_buffers, struct chunk_buffer,
				      link);
		list_move(&buf->link, &victims);
		area->nr_free--;
		freed += buf->nr_pages;
	}
	spin_unlock(&area->free_lock);
	list_for_each_entry_safe(buf, next, &victims, link)
		buffer_free(buf);
	return freed ? freed : SHRINK_STOP;
}

/* The buffers that guarantee progress, and the shrinker for the rest. */
static int buffer_cache_init(struct diff_area *area)
{
	char name[32];
	int i;

	for (i = 0; i < DIFF_AREA_MIN_BUFFERS; i++) {
		struct chunk_buffer *buf = buffer_alloc(area, GFP_KERNEL);

		if (!buf)
			return -ENOMEM;
		list_add(&buf->link, &area->free_buffers);
		area->nr_free++;
	}
	snprintf(name, sizeof(name), "blksnap-%u:%u", MAJOR(area->dev),
		 MINOR(area->dev));
	return compat_shrinker_register(&area->buffer_shrinker,
					buffer_cache_count, buffer_cache_scan,
					area, name);
}

/**
 * diff_area_new() - Prepare copy-on-write for a device.
 * @bdev: The original device.
 * @dev: Its number.
 * @storage: The snapshot's difference storage.
 * @snapshot: The snapshot.
 *
 * Return: the area or an ERR_PTR.
 */
struct diff_area *diff_area_new(struct block_device *bdev, dev_t dev,
				struct diff_storage *storage,
				struct snapshot *snapshot)
{
	struct diff_area *area;
	int i, ret;

	area = kvzalloc(sizeof(*area), GFP_KERNEL);
	if (!area)
		return ERR_PTR(-ENOMEM);
	area->bdev = bdev;
	area->dev = dev;
	area->capacity = bdev_nr_sectors(bdev);
	area->chunk_shift = diff_area_chunk_shift(area->capacity);
	area->storage = storage;
	area->snapshot = snapshot;
	xa_init(&area->chunks);
	for (i = 0; i < DIFF_AREA_STRIPES; i++) {
		atomic_set(&area->stripes[i].readers, 0);
		init_waitqueue_head(&area->stripes[i].wait);
	}
	area->max_free = max(4U, DIFF_AREA_QUEUE_BYTES /
				 diff_area_chunk_bytes(area));
	sema_init(&area->store_slots, area->max_free);
	sema_init(&area->sweep_slots, area->max_free / DIFF_AREA_SWEEP_SHARE);
	init_waitqueue_head(&area->stored);
	spin_lock_init(&area->store_lock);
	INIT_LIST_HEAD(&area->store_queue);
	for (i = 0; i < DIFF_AREA_SWEEPERS; i++) {
		INIT_WORK(&area->sweepers[i].work, diff_area_sweep_fn);
		area->sweepers[i].area = area;
	}
	atomic_long_set(&area->sweep_next, 0);
	spin_lock_init(&area->free_lock);
	INIT_LIST_HEAD(&area->free_buffers);
	init_waitqueue_head(&area->free_wait);
	ret = buffer_cache_init(area);
	if (ret) {
		diff_area_free(area);
		return ERR_PTR(ret);
	}
	return area;
}

/**
 * diff_area_free() - Free an area no new I/O can reach.
 * @area: The area, after diff_area_drain().
 *
 * Waits for its stores and image bios still in flight: a store landing
 * after the storage is given back would overwrite whatever reuses it.
 */
void diff_area_free(struct diff_area *area)
{
	struct chunk_buffer *buf, *next;
	struct chunk *chunk;
	unsigned long idx;

	diff_area_stop(area);
	wait_var_event(&area->in_flight, !atomic_read(&area->in_flight));
	compat_shrinker_unregister(&area->buffer_shrinker);
	xa_for_each(&area->chunks, idx, chunk)
		kmem_cache_free(chunk_cache, chunk);
	xa_destroy(&area->chunks);
	list_for_each_entry_safe(buf, next, &area->free_buffers, link)
		buffer_free(buf);
	kvfree(area);
}

/**
 * diff_area_stop() - No more copies the writes did not ask for.
 * @area: The area.
 *
 * Stops the sweep at its next span, so that draining does not wait for it
 * to copy the rest of the device.
 */
void diff_area_stop(struct diff_area *area)
{
	set_bit(AREA_SWEEP_STOP, &area->sweep_state);
}

static struct diff_area_stripe *chunk_stripe(struct diff_area *area,
					     unsigned long idx)
{
	return &area->stripes[idx % DIFF_AREA_STRIPES];
}

static struct chunk *chunk_get_or_create(struct diff_area *area,
					 unsigned long idx)
{
	struct chunk *chunk, *old;

	chunk = xa_load(&area->chunks, idx);
	if (chunk)
		return chunk;
	chunk = kmem_cache_zalloc(chunk_cache, GFP_NOIO);
	if (!chunk)
		return ERR_PTR(-ENOMEM);
	mutex_init(&chunk->lock);
	spin_lock_init(&chunk->buf_lock);
	old = xa_cmpxchg(&area->chunks, idx, NULL, chunk, GFP_NOIO);
	if (old) {
		kmem_cache_free(chunk_cache, chunk);
		if (xa_is_err(old))
			return ERR_PTR(xa_err(old));
		return old;
	}
	atomic_long_inc(&area->nr_chunks);
	return chunk;
}

/* Where @sector lies within its chunk. */
static sector_t chunk_offset(struct diff_area *area, sector_t sector)
{
	return sector & ((1ULL << area->chunk_shift) - 1);
}

static sector_t chunk_sectors(struct diff_area *area, unsigned long idx)
{
	sector_t start = (sector_t)idx << area->chunk_shift;

	return min_t(sector_t, 1ULL << area->chunk_shift,
		     area->capacity - start);
}

/* Chunks copied together: their reads go out at once. */
#define COPY_BATCH 16

/*
 * The sweep reads across at most this many chunks in a row that writes
 * copied already: a read costs mostly per request, so one read over such
 * a gap beats two around it.
 */
#define COPY_GAP_MAX 2

/**
 * struct copy_item - A chunk being copied.
 * @chunk: The chunk, locked until its old data is published; NULL for a
 *	   gap, a chunk copied already that is only read over (see
 *	   COPY_GAP_MAX) and whose data is dropped.
 * @idx: Its index.
 * @buf: Memory for its old data.
 * @loc: Where in storage it goes; not for a gap.
 */
struct copy_item {
	struct chunk *chunk;
	unsigned long idx;
	struct chunk_buffer *buf;
	struct diff_storage_loc loc;
};

/**
 * struct copy_batch - Chunks copied together.
 * @work: Finishes the stores of a store group (store_wq).
 * @link: In the area's store queue, then in its store group.
 * @group: The first batch of a store group: the others (see
 *	   copy_store_groups()).
 * @area: The device's area.
 * @pending: Bios in flight: the batch's reads, then its group's stores.
 * @status: The first error of a read, or of a store of the group.
 * @done: Completes when the reads are done.
 * @sweep: The sweep's: each chunk also holds one of the sweep's slots.
 * @count: Chunks in @items.
 * @items: The chunks, in ascending order.
 *
 * Runs of chunks adjacent on the original are read with one bio each.
 * Stores are written behind, with those of other batches: runs adjacent
 * in storage are stored with one bio each. The batch lives until they
 * complete.
 */
struct copy_batch {
	struct work_struct work;
	struct list_head link;
	struct list_head group;
	struct diff_area *area;
	atomic_t pending;
	blk_status_t status;
	struct completion done;
	bool sweep;
	unsigned int count;
	struct copy_item items[COPY_BATCH];
};

static bool copy_item_is_gap(const struct copy_item *item)
{
	return !item->chunk;
}

/*
 * Does @item's copy go to storage right after @prev's data? The last chunk
 * of a device may be shorter than the room it gets.
 */
static bool copy_loc_follows(struct diff_area *area,
			     const struct copy_item *prev,
			     const struct copy_item *item)
{
	return item->loc.bdev == prev->loc.bdev &&
	       item->loc.sector == prev->loc.sector +
				   chunk_sectors(area, prev->idx);
}

/*
 * How many of the @n @items one bio can read (adjacent on the original,
 * gaps included) or store (adjacent in storage, no gaps).
 */
static unsigned int copy_run_len(struct diff_area *area,
				 struct copy_item **items, unsigned int n,
				 bool store)
{
	unsigned int segs = items[0]->buf->nr_segs;
	unsigned int i;

	for (i = 1; i < n; i++) {
		segs += items[i]->buf->nr_segs;
		if (segs > BIO_MAX_VECS ||
		    (store ? !copy_loc_follows(area, items[i - 1], items[i]) :
			     items[i]->idx != items[i - 1]->idx + 1))
			break;
	}
	return i;
}

static void copy_bio_status(struct copy_batch *batch, struct bio *bio)
{
	if (bio->bi_status)
		cmpxchg(&batch->status, BLK_STS_OK, bio->bi_status);
	bio_put(bio);
}

static void copy_read_endio(struct bio *bio)
{
	struct copy_batch *batch = bio->bi_private;

	copy_bio_status(batch, bio);
	if (atomic_dec_and_test(&batch->pending))
		complete(&batch->done);
}

static void copy_batch_free(struct copy_batch *batch)
{
	struct diff_area *area = batch->area;

	mempool_free(batch, batch_pool);
	diff_area_io_done(area);
}

/* Give back the store slot of one chunk (and the sweep's, if held). */
static void copy_slot_put(struct diff_area *area, bool sweep)
{
	if (sweep)
		up(&area->sweep_slots);
	up(&area->store_slots);
}

/* The batch's chunks are stored: image reads go to storage from now on. */
static void copy_stored(struct copy_batch *batch)
{
	struct diff_area *area = batch->area;
	unsigned int i;

	for (i = 0; i < batch->count; i++) {
		struct chunk *chunk = batch->items[i].chunk;

		if (copy_item_is_gap(&batch->items[i]))
			continue;
		/* Readers that see COPIED find the data in storage. */
		smp_mb__before_atomic();
		set_bit(CHUNK_COPIED, &chunk->flags);
		spin_lock(&chunk->buf_lock);
		chunk->buf = NULL;
		spin_unlock(&chunk->buf_lock);
		buffer_put(area, batch->items[i].buf);
		copy_slot_put(area, batch->sweep);
	}
}

static void copy_store_groups(struct list_head *ready);

/*
 * Queue @batch, if any, and count @done batches whose stores completed.
 * Then, once a full batch's worth of chunks is queued or no stores are in
 * flight, move the queue to @ready for the caller to store.
 */
static void copy_store_take(struct diff_area *area, struct copy_batch *batch,
			    unsigned int done, struct list_head *ready)
{
	spin_lock(&area->store_lock);
	area->nr_storing -= done;
	if (batch) {
		list_add_tail(&batch->link, &area->store_queue);
		area->nr_queued += batch->count;
	}
	if (area->nr_queued >= COPY_BATCH || !area->nr_storing) {
		list_for_each_entry(batch, &area->store_queue, link)
			area->nr_storing++;
		list_splice_init(&area->store_queue, ready);
		area->nr_queued = 0;
	}
	spin_unlock(&area->store_lock);
}

/* A store group is done: its batches go, queued ones are stored. */
static void copy_stored_work(struct work_struct *work)
{
	struct copy_batch *leader = container_of(work, struct copy_batch, work);
	struct diff_area *area = leader->area;
	struct copy_batch *batch, *next;
	unsigned int n = 0;
	LIST_HEAD(ready);
	LIST_HEAD(done);

	if (leader->status)
		snapshot_set_corrupted(area->snapshot, area->dev, -EIO);
	list_splice_init(&leader->group, &done);
	list_add(&leader->link, &done);
	list_for_each_entry(batch, &done, link) {
		copy_stored(batch);
		n++;
	}
	wake_up_all(&area->stored);
	copy_store_take(area, NULL, n, &ready);
	copy_store_groups(&ready);
	/* The area may go with the last of them. */
	list_for_each_entry_safe(batch, next, &done, link)
		copy_batch_free(batch);
}

static void copy_store_endio(struct bio *bio)
{
	struct copy_batch *batch = bio->bi_private;

	copy_bio_status(batch, bio);
	if (atomic_dec_and_test(&batch->pending))
		queue_work(store_wq, &batch->work);
}

/* A bio reading or storing @n @items, counted in @batch. */
static struct bio *copy_bio(struct copy_batch *batch, struct copy_item **items,
			    unsigned int n, bool store)
{
	struct diff_area *area = batch->area;
	unsigned int i, p, nr_segs = 0;
	struct bio *bio;

	for (i = 0; i < n; i++)
		nr_segs += items[i]->buf->nr_segs;
	if (store) {
		bio = bio_alloc_bioset(items[0]->loc.bdev, nr_segs,
				       REQ_OP_WRITE, GFP_NOIO, &blksnap_bio_set);
		bio->bi_iter.bi_sector = items[0]->loc.sector;
		bio->bi_end_io = copy_store_endio;
	} else {
		bio = bio_alloc_bioset(area->bdev, nr_segs, REQ_OP_READ,
				       GFP_NOIO, &blksnap_bio_set);
		bio->bi_iter.bi_sector = (sector_t)items[0]->idx <<
					 area->chunk_shift;
		bio->bi_end_io = copy_read_endio;
	}
	bio->bi_private = batch;
	for (i = 0; i < n; i++) {
		unsigned int bytes = chunk_sectors(area, items[i]->idx) <<
				     SECTOR_SHIFT;

		for (p = 0; bytes; p++) {
			unsigned int len = min_t(unsigned int, bytes, PAGE_SIZE);

			/* Merges contiguous pages: @nr_segs vecs are enough. */
			if (WARN_ON_ONCE(!bio_add_page(bio,
						       items[i]->buf->pages[p],
						       len, 0)))
				batch->status = BLK_STS_RESOURCE;
			bytes -= len;
		}
	}
	return bio;
}

/* Send one bio per run of the @n @items, under a plug; @batch counts them. */
static void copy_submit(struct copy_batch *batch, struct copy_item **items,
			unsigned int n, bool store)
{
	unsigned int i, len;
	struct blk_plug plug;

	atomic_set(&batch->pending, 1);
	blk_start_plug(&plug);
	for (i = 0; i < n; i += len) {
		len = copy_run_len(batch->area, items + i, n - i, store);
		atomic_inc(&batch->pending);
		/* Ours: the submit hook lets it pass. */
		submit_bio(copy_bio(batch, items + i, len, store));
	}
	blk_finish_plug(&plug);
}

/*
 * At most this many chunks are stored as one group: the queue is taken
 * once it holds COPY_BATCH, so it never holds more.
 */
#define STORE_GROUP_MAX (2 * COPY_BATCH)

static int copy_item_cmp_loc(const void *a, const void *b)
{
	const struct copy_item *x = *(const struct copy_item * const *)a;
	const struct copy_item *y = *(const struct copy_item * const *)b;

	if (x->loc.bdev != y->loc.bdev)
		return (uintptr_t)x->loc.bdev < (uintptr_t)y->loc.bdev ? -1 : 1;
	if (x->loc.sector != y->loc.sector)
		return x->loc.sector < y->loc.sector ? -1 : 1;
	return 0;
}

/* Add the batch's chunks (not its gaps) to @items, which holds @n. */
static unsigned int copy_store_items(struct copy_batch *batch,
				     struct copy_item **items, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < batch->count; i++)
		if (!copy_item_is_gap(&batch->items[i]))
			items[n++] = &batch->items[i];
	return n;
}

/*
 * Store the @ready batches in groups of up to STORE_GROUP_MAX chunks, in
 * storage order: one bio per run adjacent in storage, whichever batches
 * its chunks come from. The first batch of a group counts its bios.
 */
static void copy_store_groups(struct list_head *ready)
{
	struct copy_item *items[STORE_GROUP_MAX];
	struct copy_batch *leader, *batch;
	unsigned int n;

	while (!list_empty(ready)) {
		leader = list_first_entry(ready, struct copy_batch, link);
		list_del(&leader->link);
		INIT_LIST_HEAD(&leader->group);
		n = copy_store_items(leader, items, 0);
		while (!list_empty(ready)) {
			batch = list_first_entry(ready, struct copy_batch, link);
			if (n + batch->count > STORE_GROUP_MAX)
				break;
			list_move_tail(&batch->link, &leader->group);
			n = copy_store_items(batch, items, n);
		}
		sort(items, n, sizeof(items[0]), copy_item_cmp_loc, NULL);
		INIT_WORK(&leader->work, copy_stored_work);
		copy_submit(leader, items, n, true);
		if (atomic_dec_and_test(&leader->pending))
			queue_work(store_wq, &leader->work);
	}
}

/*
 * Store the batch's chunks behind. Scattered writes copy a chunk each,
 * every one given room in storage right after the one before, but read
 * and published one at a time: stored at once, each would cost a request
 * of its own. So while stores are in flight, a published batch waits in
 * the area's queue until a full batch's worth of chunks gathers, or the
 * stores in flight complete; then the queue is stored as one.
 */
static void copy_store_queue(struct copy_batch *batch)
{
	LIST_HEAD(ready);

	copy_store_take(batch->area, batch, 0, &ready);
	copy_store_groups(&ready);
}

/*
 * Add a locked chunk to copy, or a gap (@chunk NULL), to the batch; room
 * in storage comes in copy_alloc().
 */
static void copy_add(struct copy_batch *batch, struct chunk *chunk,
		     unsigned long idx, struct chunk_buffer *buf)
{
	struct copy_item *item = &batch->items[batch->count++];

	item->chunk = chunk;
	item->idx = idx;
	item->buf = buf;
}

/* Drop the batch's last item: it is not (or no longer) being copied. */
static void copy_drop_last(struct copy_batch *batch)
{
	struct copy_item *item = &batch->items[--batch->count];

	buffer_put(batch->area, item->buf);
	if (copy_item_is_gap(item))
		return;
	copy_slot_put(batch->area, batch->sweep);
	mutex_unlock(&item->chunk->lock);
}

/* Gaps at the end of the batch would only be read for nothing. */
static void copy_batch_trim(struct copy_batch *batch)
{
	while (batch->count &&
	       copy_item_is_gap(&batch->items[batch->count - 1]))
		copy_drop_last(batch);
}

/*
 * The sweep met chunk @idx copied already: read over it if it follows the
 * batch's last item and a chunk to copy comes before it, with at most
 * COPY_GAP_MAX gaps in a row, and a buffer is at hand at once. The last
 * item stays a chunk to copy: the batch runs when that one fills it.
 */
static void copy_add_gap(struct copy_batch *batch, unsigned long idx)
{
	unsigned int i, gaps = 0;
	struct chunk_buffer *buf;

	for (i = batch->count; i && copy_item_is_gap(&batch->items[i - 1]); i--)
		gaps++;
	if (!i || gaps >= COPY_GAP_MAX || batch->count >= COPY_BATCH - 1 ||
	    batch->items[batch->count - 1].idx + 1 != idx) {
		copy_batch_trim(batch);
		return;
	}
	buf = buffer_get(batch->area, false);
	if (!buf) {
		copy_batch_trim(batch);
		return;
	}
	copy_add(batch, NULL, idx, buf);
}

/*
 * Reserve room in storage for the batch's chunks at once, so that storage
 * takes them in as few bios as they are read in: chunks gathered one by
 * one would be interleaved with those of other copies in flight.
 * Return: 0, or -ENOSPC once the chunks without room are dropped.
 */
static int copy_alloc(struct copy_batch *batch)
{
	struct diff_storage_loc *locs[COPY_BATCH];
	unsigned int i, n = 0, got;

	for (i = 0; i < batch->count; i++)
		if (!copy_item_is_gap(&batch->items[i]))
			locs[n++] = &batch->items[i].loc;
	/* Room is taken for a whole chunk, so the last one may grow. */
	got = diff_storage_alloc(batch->area->storage,
				 1ULL << batch->area->chunk_shift, locs, n);
	atomic_long_add(got, &batch->area->nr_placed);
	if (got == n)
		return 0;
	while (got < n) {
		if (!copy_item_is_gap(&batch->items[batch->count - 1]))
			n--;
		copy_drop_last(batch);
	}
	copy_batch_trim(batch);
	return -ENOSPC;
}

/* The old data is in memory: publish it. */
static void copy_publish(struct copy_item *item)
{
	struct chunk *chunk = item->chunk;

	chunk->loc = item->loc;
	spin_lock(&chunk->buf_lock);
	chunk->buf = item->buf;
	spin_unlock(&chunk->buf_lock);
	/* The buffer and location are visible before the bit is. */
	smp_mb__before_atomic();
	set_bit(CHUNK_BUFFERED, &chunk->flags);
}

/* A read failed: nothing of the batch is kept. */
static void copy_abandon(struct copy_batch *batch)
{
	struct diff_area *area = batch->area;

	while (batch->count) {
		if (!copy_item_is_gap(&batch->items[batch->count - 1])) {
			diff_storage_lost(area->storage,
					  1ULL << area->chunk_shift);
			atomic_long_dec(&area->nr_placed);
		}
		copy_drop_last(batch);
	}
	copy_batch_free(batch);
}

/*
 * Read the batch's chunks, publish them, let writes to them pass once
 * image reads of the original are done, and store them behind. Unlocks
 * the chunks; the batch is gone on return.
 */
static int copy_run(struct copy_batch *batch)
{
	struct copy_item *items[COPY_BATCH];
	struct diff_area *area = batch->area;
	unsigned int i;
	int ret;

	copy_batch_trim(batch);
	ret = copy_alloc(batch);
	if (!batch->count) {
		copy_batch_free(batch);
		return ret;
	}
	for (i = 0; i < batch->count; i++)
		items[i] = &batch->items[i];
	init_completion(&batch->done);
	copy_submit(batch, items, batch->count, false);
	if (!atomic_dec_and_test(&batch->pending))
		wait_for_completion_io(&batch->done);
	if (batch->status) {
		copy_abandon(batch);
		return -EIO;
	}

	for (i = 0; i < batch->count; i++) {
		struct copy_item *item = &batch->items[i];
		struct diff_area_stripe *stripe = chunk_stripe(area, item->idx);

		if (copy_item_is_gap(item)) {
			buffer_put(area, item->buf);
			continue;
		}
		copy_publish(item);
		/*
		 * Pairs with the barrier in image_read_part(): a reader
		 * either saw BUFFERED, or is counted in @readers and waited
		 * for here.
		 */
		smp_mb__after_atomic();
		wait_event(stripe->wait, !atomic_read(&stripe->readers));
		set_bit(CHUNK_STABLE, &item->chunk->flags);
		mutex_unlock(&item->chunk->lock);
	}
	copy_store_queue(batch);
	return ret;
}

/* Never fails: batches come back as their stores complete. */
static struct copy_batch *copy_batch_new(struct diff_area *area, bool sweep)
{
	struct copy_batch *batch = mempool_alloc(batch_pool, GFP_NOIO);

	batch->area = area;
	batch->sweep = sweep;
	batch->status = BLK_STS_OK;
	batch->count = 0;
	diff_area_io_start(area);
	return batch;
}

/* Run the batch being gathered, if it holds any chunk. */
static int copy_flush(struct copy_batch **batch)
{
	int ret = 0;

	if (*batch && (*batch)->count) {
		ret = copy_run(*batch);
		*batch = NULL;
	}
	return ret;
}

/*
 * Take a store slot and a buffer for one more chunk. Both come back as
 * stores complete; before waiting for them, the batch (which holds some)
 * is run. On error nothing is held.
 */
static int copy_reserve_store(struct diff_area *area,
			      struct copy_batch **batch,
			      struct chunk_buffer **buf)
{
	bool slot = !down_trylock(&area->store_slots);
	int ret;

	*buf = NULL;
	if (slot)
		*buf = buffer_get(area, false);
	if (*buf)
		return 0;
	ret = copy_flush(batch);
	if (!slot)
		down(&area->store_slots);
	if (ret) {
		up(&area->store_slots);
		return ret;
	}
	*buf = buffer_get(area, true);
	return 0;
}

/*
 * Like copy_reserve_store(), and for the sweep one of its own slots
 * first: it may hold only part of the store slots, so that a write
 * waiting for its own chunk never queues behind a whole queue of the
 * sweep's copies.
 */
static int copy_reserve(struct diff_area *area, struct copy_batch **batch,
			bool sweep, struct chunk_buffer **buf)
{
	int ret;

	*buf = NULL;
	if (sweep && down_trylock(&area->sweep_slots)) {
		ret = copy_flush(batch);
		if (ret)
			return ret;
		down(&area->sweep_slots);
	}
	ret = copy_reserve_store(area, batch, buf);
	if (ret && sweep)
		up(&area->sweep_slots);
	return ret;
}

/*
 * Lock a chunk that still needs copying. Return: the chunk, NULL if it
 * needs nothing, or an ERR_PTR.
 */
static struct chunk *chunk_lock_unstable(struct diff_area *area,
					 unsigned long idx)
{
	struct chunk *chunk = chunk_get_or_create(area, idx);

	if (IS_ERR(chunk) || test_bit(CHUNK_STABLE, &chunk->flags))
		return IS_ERR(chunk) ? chunk : NULL;
	mutex_lock(&chunk->lock);
	if (!test_bit(CHUNK_STABLE, &chunk->flags))
		return chunk;
	mutex_unlock(&chunk->lock);
	return NULL;
}

/**
 * diff_area_preserve() - Make sure chunks' old data is kept.
 * @area: The device's area.
 * @first: First chunk.
 * @last: Last chunk.
 * @sweep: For the sweep: see copy_reserve().
 *
 * On return 0 the original chunks may be overwritten; their old data is
 * in memory or storage. Chunks are locked in ascending order, and the
 * reads of up to COPY_BATCH of them go out together.
 *
 * Return: 0, -ENOSPC if storage is full, -EIO, -ENOMEM.
 */
static int diff_area_preserve(struct diff_area *area, unsigned long first,
			      unsigned long last, bool sweep)
{
	struct copy_batch *batch = NULL;
	struct chunk_buffer *buf;
	struct chunk *chunk;
	unsigned long idx;
	int ret = 0, ret2;

	for (idx = first; idx <= last && !ret; idx++) {
		chunk = chunk_lock_unstable(area, idx);
		if (!chunk && sweep && batch)
			copy_add_gap(batch, idx);
		if (IS_ERR_OR_NULL(chunk)) {
			ret = PTR_ERR_OR_ZERO(chunk);
			continue;
		}
		ret = copy_reserve(area, &batch, sweep, &buf);
		if (ret) {
			mutex_unlock(&chunk->lock);
			continue;
		}
		if (!batch)
			batch = copy_batch_new(area, sweep);
		copy_add(batch, chunk, idx, buf);
		if (batch->count == COPY_BATCH) {
			ret = copy_run(batch);
			batch = NULL;
		}
	}
	ret2 = 0;
	if (batch && batch->count)
		ret2 = copy_run(batch);
	else if (batch)
		copy_batch_free(batch);
	return ret ? ret : ret2;
}

/* Like diff_area_preserve() for one chunk; the copy is in storage. */
static int diff_area_preserve_stored(struct diff_area *area,
				     unsigned long idx, struct chunk **chunk)
{
	int ret = diff_area_preserve(area, idx, idx, false);

	if (ret)
		return ret;
	*chunk = xa_load(&area->chunks, idx);
	wait_event(area->stored, test_bit(CHUNK_COPIED, &(*chunk)->flags));
	return 0;
}

/* How many chunks storage can spend on copies ahead of the writes. */
static unsigned long diff_area_room(struct diff_area *area)
{
	return min_t(u64, diff_storage_room(area->storage) >> area->chunk_shift,
		     ULONG_MAX);
}

/* Has a chunk of [@gfirst, @glast] outside [@first, @last] been written? */
static bool group_written(struct diff_area *area, unsigned long gfirst,
			  unsigned long glast, unsigned long first,
			  unsigned long last)
{
	unsigned long idx;

	for (idx = gfirst; idx <= glast; idx++)
		if ((idx < first || idx > last) && xa_load(&area->chunks, idx))
			return true;
	return false;
}

/*
 * Writes to a device count as dense once the chunks kept reach 1 in
 * 2^COPY_DENSE_SHIFT of its chunks: scattered writes that came that far
 * have touched all but (15/16)^16, about a third, of its 16-chunk spans,
 * and go on. Dense writes copy spans of 2^COPY_DENSE_SPAN groups whole from
 * their first written chunk on: the device is then copied in a quarter of
 * the requests and waits. That spends storage ahead of the writes, so
 * only while free storage (above the low-space mark) could take half of
 * the chunks without room yet (or all of them, see diff_storage_room()):
 * where storage is tight, a snapshot must not overflow for copies no write
 * asked for.
 */
#define COPY_DENSE_SHIFT 4
#define COPY_DENSE_SPAN 2
#define COPY_SPAN_MAX_SHIFT (24 - SECTOR_SHIFT)

/* log2 of the span in sectors that dense writes copy whole. */
static unsigned int dense_span_shift(void)
{
	return min_t(unsigned int,
		     copy_group_shift - SECTOR_SHIFT + COPY_DENSE_SPAN,
		     COPY_SPAN_MAX_SHIFT);
}

/*
 * @room: set to diff_area_room() when writes are dense enough to need it,
 * so that sparse writes do not take the storage lock here.
 */
static bool diff_area_dense(struct diff_area *area, unsigned long *room)
{
	unsigned long count = diff_area_chunk_count(area);
	unsigned long kept = atomic_long_read(&area->nr_chunks);
	unsigned long placed;

	if (kept < count >> COPY_DENSE_SHIFT)
		return false;
	/*
	 * Chunks kept but not placed yet (a sweeper's span being gathered)
	 * will take room that diff_area_room() still counts as free.
	 */
	placed = atomic_long_read(&area->nr_placed);
	*room = diff_area_room(area);
	return *room >= (count - min(placed, count)) / 2;
}

/*
 * Copy the device in dense spans, in ascending order, skipping what is
 * copied already, while writes count as dense (so never past the storage
 * room diff_area_dense() allows) and until stopped. The area's sweepers
 * take the spans in turn. An error ends this sweeper but is not the
 * snapshot's: a write that needs the chunk copies it itself. Once one
 * sweeper has ended, writes copy dense spans again.
 */
static void diff_area_sweep_fn(struct work_struct *work)
{
	struct diff_area *area = container_of(work, struct diff_area_sweeper,
					      work)->area;
	unsigned long last_chunk = diff_area_chunk_count(area) - 1;
	/* Started only where a group is larger than a chunk. */
	unsigned long span = 1UL << (dense_span_shift() - area->chunk_shift);
	unsigned long idx, room;

	for (;;) {
		if (test_bit(AREA_SWEEP_STOP, &area->sweep_state) ||
		    snapshot_is_corrupted(area->snapshot) ||
		    !diff_area_dense(area, &room))
			break;
		idx = atomic_long_fetch_add(span, &area->sweep_next);
		if (idx > last_chunk ||
		    diff_area_preserve(area, idx,
				       min(idx + span - 1, last_chunk), true))
			break;
		cond_resched();
	}
	set_bit(AREA_SWEEP_ENDED, &area->sweep_state);
	diff_area_io_done(area);
}

static void diff_area_sweep_start(struct diff_area *area)
{
	unsigned int i;

	/* Every dense write comes here: read before the atomic write. */
	if (test_bit(AREA_SWEEP_STARTED, &area->sweep_state) ||
	    test_and_set_bit(AREA_SWEEP_STARTED, &area->sweep_state))
		return;
	for (i = 0; i < DIFF_AREA_SWEEPERS; i++) {
		diff_area_io_start(area);
		queue_work(blksnap_wq, &area->sweepers[i].work);
	}
}

/*
 * Once a second chunk of an aligned group (copy_group_shift) is written,
 * copy the rest of the group with it, in as few reads and stores as their
 * buffers allow: a copy costs mostly per request, not per byte. Waiting
 * for the second write (unless copy_group_eager, or the writes are dense)
 * keeps scattered writes at one chunk each; so does the sweep while it
 * runs, since it copies the group anyway. Only while storage has room;
 * an error here is not the snapshot's, the caller then copies what the
 * write needs by itself. No groups where they are no larger than a chunk.
 * Return: true if the group is preserved.
 */
static bool diff_area_preserve_group(struct diff_area *area,
				     unsigned long first, unsigned long last)
{
	unsigned int shift = copy_group_shift - SECTOR_SHIFT;
	unsigned long last_chunk = diff_area_chunk_count(area) - 1;
	unsigned long group, gfirst, glast, room = 0;
	bool dense;

	if (shift <= area->chunk_shift)
		return false;
	dense = diff_area_dense(area, &room);
	if (dense && copy_sweep) {
		diff_area_sweep_start(area);
		if (!test_bit(AREA_SWEEP_ENDED, &area->sweep_state))
			return false;
	}
	if (dense)
		shift = dense_span_shift();
	group = 1UL << (shift - area->chunk_shift);
	gfirst = round_down(first, group);
	glast = min(round_down(last, group) + group - 1, last_chunk);
	if (gfirst == first && glast == last)
		return false;
	if (!copy_group_eager && !dense &&
	    !group_written(area, gfirst, glast, first, last))
		return false;
	if (!dense)
		room = diff_area_room(area);
	if (room < glast - gfirst + 1)
		return false;
	return !diff_area_preserve(area, gfirst, glast, false);
}

static void diff_area_preserve_range(struct diff_area *area, sector_t sector,
				     sector_t count)
{
	unsigned long last_chunk = diff_area_chunk_count(area) - 1;
	unsigned long first = sector >> area->chunk_shift;
	unsigned long last = (sector + count - 1) >> area->chunk_shift;
	int ret;

	if (first > last_chunk || snapshot_is_corrupted(area->snapshot))
		return;
	last = min(last, last_chunk);
	if (diff_area_preserve_group(area, first, last))
		return;
	ret = diff_area_preserve(area, first, last, false);
	if (ret)
		snapshot_set_corrupted(area->snapshot, area->dev, ret);
}

/**
 * diff_area_range_stable() - May a write to this range pass at once?
 * @area: The device's area.
 * @sector: First sector of the write.
 * @count: Sectors written.
 *
 * Called under rcu_read_lock() from the submit hook; does not sleep.
 */
bool diff_area_range_stable(struct diff_area *area, sector_t sector,
			    sector_t count)
{
	unsigned long idx = sector >> area->chunk_shift;
	unsigned long last = (sector + count - 1) >> area->chunk_shift;
	struct chunk *chunk;

	if (snapshot_is_corrupted(area->snapshot))
		return true;
	last = min(last, diff_area_chunk_count(area) - 1);
	for (; idx <= last; idx++) {
		chunk = xa_load(&area->chunks, idx);
		if (!chunk || !test_bit(CHUNK_STABLE, &chunk->flags))
			return false;
	}
	return true;
}

/* Copy-ahead for sequential writers, at most this much per write. */
#define COPY_AHEAD_BYTES (4U << 20)

/*
 * A write that continues the previous one copies the chunks after it as
 * well: the writer's next writes then pass at once, and the copies go out
 * in fewer, larger bios. Only while storage is not short, and an error
 * here is not the snapshot's: a write that needs the chunk will retry.
 */
static void diff_area_copy_ahead(struct diff_area *area, sector_t sector,
				 sector_t count)
{
	unsigned long last_chunk = diff_area_chunk_count(area) - 1;
	unsigned long first = sector >> area->chunk_shift;
	unsigned long last = (sector + count - 1) >> area->chunk_shift;
	unsigned long expected = READ_ONCE(area->next_chunk);
	unsigned long ahead;

	WRITE_ONCE(area->next_chunk, last + 1);
	if ((first != expected && first + 1 != expected) ||
	    last >= last_chunk || snapshot_is_corrupted(area->snapshot))
		return;
	ahead = min_t(unsigned long, COPY_BATCH,
		      max(1U, COPY_AHEAD_BYTES / diff_area_chunk_bytes(area)));
	ahead = min(ahead, last_chunk - last);
	if (diff_area_room(area) < ahead)
		return;
	diff_area_preserve(area, last + 1, last + ahead, false);
}

static void cow_work_fn(struct work_struct *work)
{
	struct cow_work *cw = container_of(work, struct cow_work, work);
	struct diff_area *area = cw->area;
	struct bio *bio = cw->bio;
	sector_t sector = bio->bi_iter.bi_sector + cw->offset;
	sector_t count = bio_sectors(bio);

	diff_area_preserve_range(area, sector, count);
	/* Submitted from this module: the hook lets it through. */
	submit_bio_noacct(bio);
	diff_area_copy_ahead(area, sector, count);
	mempool_free(cw, work_pool);
}

/**
 * diff_area_submit_write() - Write to the original after copy-on-write.
 * @area: The device's area.
 * @bio: A write to the original (or one of its partitions).
 * @offset: Sectors to add to the bio's sectors to get the area's.
 *
 * The write is sent on once the chunks it touches are preserved. If the
 * snapshot breaks meanwhile, it is sent on anyway: the original device
 * never loses a write.
 */
void diff_area_submit_write(struct diff_area *area, struct bio *bio,
			    sector_t offset)
{
	struct cow_work *cw;

	cw = mempool_alloc(work_pool, bio->bi_opf & REQ_NOWAIT ?
			   GFP_NOWAIT : GFP_NOIO);
	if (!cw) {
		bio_wouldblock_error(bio);
		return;
	}
	INIT_WORK(&cw->work, cow_work_fn);
	cw->area = area;
	cw->bio = bio;
	cw->offset = offset;
	queue_work(blksnap_wq, &cw->work);
}

static void defer_work_fn(struct work_struct *work)
{
	struct defer_work *dw = container_of(work, struct defer_work, work);

	dw->fn(dw->bio);
	mempool_free(dw, work_pool);
}

/**
 * diff_area_defer_bio() - Handle a bio in a worker.
 * @bio: The bio.
 * @fn: What to do with it there.
 *
 * The work is drained by diff_area_drain() like all copy-on-write work.
 */
void diff_area_defer_bio(struct bio *bio, void (*fn)(struct bio *bio))
{
	struct defer_work *dw = mempool_alloc(work_pool, GFP_NOIO);

	INIT_WORK(&dw->work, defer_work_fn);
	dw->bio = bio;
	dw->fn = fn;
	queue_work(blksnap_wq, &dw->work);
}

/* ---- image I/O ---- */

static void stripe_read_done(struct diff_area_stripe *stripe)
{
	if (atomic_dec_and_test(&stripe->readers))
		wake_up(&stripe->wait);
}

static void image_io_put(struct image_io *io)
{
	struct diff_area *area = io->area;

	if (!atomic_dec_and_test(&io->pending))
		return;
	io->bio->bi_status = io->status;
	bio_endio(io->bio);
	mempool_free(io, work_pool);
	diff_area_io_done(area);
}

/*
 * A piece of an image bio sent to one place: the original or storage.
 * @done, @len: Sectors of the image bio it covers.
 * @bdev, @sector: Where they are read or written.
 * @first_counted, @nr_counted: Chunks read from the original, counted on
 *	their stripes until the read completes.
 */
struct image_run {
	sector_t done;
	sector_t len;
	struct block_device *bdev;
	sector_t sector;
	unsigned long first_counted;
	unsigned int nr_counted;
};

static void image_sub_endio(struct bio *bio)
{
	struct blksnap_bio *bb = container_of(bio, struct blksnap_bio, bio);
	struct image_io *io = bb->io;
	unsigned int i;

	if (bio->bi_status)
		io->status = bio->bi_status;
	for (i = 0; i < bb->nr_counted; i++)
		stripe_read_done(chunk_stripe(io->area, bb->first_counted + i));
	bio_put(bio);
	image_io_put(io);
}

/* Send a run of an image bio on. */
static void image_submit_run(struct image_io *io, const struct image_run *run)
{
	struct blksnap_bio *bb;
	struct bio *clone;

	clone = bio_alloc_clone(run->bdev, io->bio, GFP_NOIO, &blksnap_bio_set);
	bio_trim(clone, run->done, run->len);
	clone->bi_iter.bi_sector = run->sector;
	clone->bi_end_io = image_sub_endio;
	bb = container_of(clone, struct blksnap_bio, bio);
	bb->io = io;
	bb->first_counted = run->first_counted;
	bb->nr_counted = run->nr_counted;
	atomic_inc(&io->pending);
	/* Through submit_bio(): the hook records storage writes in the CBT. */
	submit_bio(clone);
}

/* Sectors of the bio from @done on that lie in the same chunk. */
static sector_t image_part_len(struct image_io *io, sector_t done)
{
	sector_t sector = io->bio->bi_iter.bi_sector + done;
	sector_t chunk_end = (sector | ((1ULL << io->area->chunk_shift) - 1)) + 1;

	return min_t(sector_t, chunk_end - sector, bio_sectors(io->bio) - done);
}

/*
 * Add a part to the run, sending the run first if the part does not
 * continue it on the same device (or differs in being counted).
 */
static void image_run_add(struct image_io *io, struct image_run *run,
			  const struct image_run *part)
{
	if (run->len && run->bdev == part->bdev &&
	    run->sector + run->len == part->sector &&
	    !run->nr_counted == !part->nr_counted) {
		run->len += part->len;
		run->nr_counted += part->nr_counted;
		return;
	}
	if (run->len)
		image_submit_run(io, run);
	*run = *part;
}

/* Copy a part of a chunk held in memory into the image bio. */
static void image_copy_from_buffer(struct image_io *io, sector_t done,
				   sector_t count, struct chunk_buffer *buf)
{
	sector_t sector = io->bio->bi_iter.bi_sector + done;
	size_t pos = chunk_offset(io->area, sector) << SECTOR_SHIFT;
	struct bvec_iter iter = io->bio->bi_iter;
	struct bio_vec bv;

	bio_advance_iter(io->bio, &iter, done << SECTOR_SHIFT);
	iter.bi_size = count << SECTOR_SHIFT;
	while (iter.bi_size) {
		unsigned int copied = 0;

		bv = bio_iter_iovec(io->bio, iter);
		while (copied < bv.bv_len) {
			size_t off = (pos + copied) & ~PAGE_MASK;
			size_t n = min_t(size_t, bv.bv_len - copied,
					 PAGE_SIZE - off);
			struct page *src = buf->pages[(pos + copied) >> PAGE_SHIFT];

			memcpy_to_page(bv.bv_page, bv.bv_offset + copied,
				       page_address(src) + off, n);
			copied += n;
		}
		pos += bv.bv_len;
		bio_advance_iter_single(io->bio, &iter, bv.bv_len);
	}
}

/* The chunk's buffer with a reference for the caller, if it has one. */
static struct chunk_buffer *chunk_get_buffer(struct chunk *chunk)
{
	struct chunk_buffer *buf;

	spin_lock(&chunk->buf_lock);
	buf = chunk->buf;
	if (buf)
		refcount_inc(&buf->users);
	spin_unlock(&chunk->buf_lock);
	return buf;
}

/*
 * Where the part of an image bio in one chunk is read: storage, memory
 * (copied into the bio at once; returns false), or the original. A read
 * of the original stays counted on the chunk's stripe until it completes,
 * so copy-on-write waits for it.
 */
static bool image_read_part(struct image_io *io, struct image_run *part)
{
	struct diff_area *area = io->area;
	sector_t sector = io->bio->bi_iter.bi_sector + part->done;
	unsigned long idx = sector >> area->chunk_shift;
	struct diff_area_stripe *stripe = chunk_stripe(area, idx);
	struct chunk_buffer *buf;
	struct chunk *chunk;

	atomic_inc(&stripe->readers);
	/* Pairs with the barrier in copy_run(). */
	smp_mb__after_atomic();
	chunk = xa_load(&area->chunks, idx);
	if (!chunk || !test_bit(CHUNK_BUFFERED, &chunk->flags)) {
		part->bdev = area->bdev;
		part->sector = sector;
		part->first_counted = idx;
		part->nr_counted = 1;
		return true;
	}
	stripe_read_done(stripe);
	if (!test_bit(CHUNK_COPIED, &chunk->flags)) {
		buf = chunk_get_buffer(chunk);
		if (buf) {
			image_copy_from_buffer(io, part->done, part->len, buf);
			buffer_put(area, buf);
			return false;
		}
	}
	/* Stored (the buffer goes only after COPIED is set). */
	part->bdev = chunk->loc.bdev;
	part->sector = chunk->loc.sector + chunk_offset(area, sector);
	part->nr_counted = 0;
	return true;
}

/* Parts adjacent where they are read from go out as one bio. */
static void image_read(struct image_io *io)
{
	sector_t total = bio_sectors(io->bio);
	struct image_run run = { .len = 0 }, part;

	for (part.done = 0; part.done < total; part.done += part.len) {
		part.len = image_part_len(io, part.done);
		if (image_read_part(io, &part))
			image_run_add(io, &run, &part);
	}
	if (run.len)
		image_submit_run(io, &run);
}

/* Image writes go to the chunk's copy, made first if need be. */
static void image_write_work(struct work_struct *work)
{
	struct image_io *io = container_of(work, struct image_io, work);
	struct diff_area *area = io->area;
	sector_t total = bio_sectors(io->bio);
	struct image_run run = { .len = 0 }, part = { .nr_counted = 0 };
	struct chunk *chunk;
	int ret;

	for (part.done = 0; part.done < total; part.done += part.len) {
		sector_t sector = io->bio->bi_iter.bi_sector + part.done;

		part.len = image_part_len(io, part.done);
		ret = diff_area_preserve_stored(area, sector >> area->chunk_shift,
						&chunk);
		if (ret) {
			snapshot_set_corrupted(area->snapshot, area->dev, ret);
			io->status = BLK_STS_IOERR;
			break;
		}
		part.bdev = chunk->loc.bdev;
		part.sector = chunk->loc.sector + chunk_offset(area, sector);
		image_run_add(io, &run, &part);
	}
	if (run.len)
		image_submit_run(io, &run);
	image_io_put(io);
}

/**
 * diff_area_submit_image_bio() - I/O on the snapshot image.
 * @area: The device's area.
 * @bio: A bio for the image disk.
 *
 * Reads are sent from the caller's context; writes need copies made and
 * go to a worker.
 */
void diff_area_submit_image_bio(struct diff_area *area, struct bio *bio)
{
	struct image_io *io;

	if (snapshot_is_corrupted(area->snapshot)) {
		bio_io_error(bio);
		return;
	}
	if (!bio_sectors(bio)) {
		/* A flush: copies are not meant to outlive a crash. */
		bio_endio(bio);
		return;
	}
	io = mempool_alloc(work_pool, GFP_NOIO);
	diff_area_io_start(area);
	io->area = area;
	io->bio = bio;
	io->status = BLK_STS_OK;
	atomic_set(&io->pending, 1);

	if (op_is_write(bio_op(bio))) {
		INIT_WORK(&io->work, image_write_work);
		queue_work(blksnap_wq, &io->work);
		return;
	}
	image_read(io);
	image_io_put(io);
}

/* Wait for all copy-on-write and image work queued so far. */
void diff_area_drain(void)
{
	flush_workqueue(blksnap_wq);
	flush_workqueue(store_wq);
}

int diff_area_module_init(void)
{
	int ret;

	ret = bioset_init(&blksnap_bio_set, 64,
			  offsetof(struct blksnap_bio, bio),
			  BIOSET_NEED_BVECS);
	if (ret)
		return ret;
	ret = -ENOMEM;
	chunk_cache = KMEM_CACHE(chunk, 0);
	if (!chunk_cache)
		goto fail_bioset;
	work_pool = mempool_create_kmalloc_pool(64, WORK_SIZE);
	if (!work_pool)
		goto fail_cache;
	batch_pool = mempool_create_kmalloc_pool(16, sizeof(struct copy_batch));
	if (!batch_pool)
		goto fail_pool;
	blksnap_wq = alloc_workqueue("blksnap", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!blksnap_wq)
		goto fail_batch;
	store_wq = alloc_workqueue("blksnap-store", WQ_UNBOUND | WQ_MEM_RECLAIM,
				   0);
	if (!store_wq)
		goto fail_wq;
	return 0;

fail_wq:
	destroy_workqueue(blksnap_wq);
fail_batch:
	mempool_destroy(batch_pool);
fail_pool:
	mempool_destroy(work_pool);
fail_cache:
	kmem_cache_destroy(chunk_cache);
fail_bioset:
	bioset_exit(&blksnap_bio_set);
	return ret;
}

void diff_area_module_exit(void)
{
	destroy_workqueue(blksnap_wq);
	destroy_workqueue(store_wq);
	mempool_destroy(batch_pool);
	mempool_destroy(work_pool);
	kmem_cache_destroy(chunk_cache);
	bioset_exit(&blksnap_bio_set);
}
