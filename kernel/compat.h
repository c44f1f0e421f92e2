/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One home for the differences between the kernels blksnap supports
 * (6.1 to 7.x). Which variant applies is decided by feature-test.sh from
 * the target kernel's headers, never by comparing version numbers.
 */
#ifndef __BLKSNAP_COMPAT_H
#define __BLKSNAP_COMPAT_H

#include <linux/blkdev.h>
#include <linux/blk-mq.h>
#include <linux/fs.h>
#include <linux/ftrace.h>
#include <linux/sched/mm.h>
#include <linux/shrinker.h>
#include <linux/workqueue.h>
#include "compat_gen.h"

/*
 * The system's unbound workqueue: system_dfl_wq where it exists (7.x logs
 * system_unbound_wq as deprecated), system_unbound_wq before.
 */
#ifdef BLKSNAP_HAVE_SYSTEM_DFL_WQ
#define compat_unbound_wq system_dfl_wq
#else
#define compat_unbound_wq system_unbound_wq
#endif

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

/* Flush and freeze the file system on @bdev, if any. */
static inline int compat_bdev_freeze(struct block_device *bdev)
{
#ifdef BLKSNAP_HAVE_BDEV_FREEZE
	return bdev_freeze(bdev);
#else
	return freeze_bdev(bdev);
#endif
}

static inline void compat_bdev_thaw(struct block_device *bdev)
{
#ifdef BLKSNAP_HAVE_BDEV_FREEZE
	bdev_thaw(bdev);
#else
	thaw_bdev(bdev);
#endif
}

/*
 * Freezing a queue holds new requests and lets the caller wait for those
 * in flight. Starting the freeze of several queues before waiting for
 * any overlaps their grace periods. The caller keeps its allocations
 * from doing I/O meanwhile (memalloc_noio_save()).
 */
static inline void compat_queue_freeze_start(struct request_queue *q)
{
	blk_freeze_queue_start(q);
}

static inline void compat_queue_freeze_wait(struct request_queue *q)
{
	blk_mq_freeze_queue_wait(q);
}

static inline void compat_queue_unfreeze(struct request_queue *q)
{
#ifdef BLKSNAP_HAVE_FREEZE_MEMFLAGS
	blk_mq_unfreeze_queue_nomemrestore(q);
#else
	blk_mq_unfreeze_queue(q);
#endif
}

/**
 * compat_alloc_disk() - Allocate a bio-based disk.
 * @logical: Logical block size in bytes.
 * @physical: Physical block size in bytes.
 *
 * Return: the disk or an ERR_PTR.
 */
static inline struct gendisk *compat_alloc_disk(unsigned int logical,
						unsigned int physical)
{
#ifdef BLKSNAP_HAVE_BLK_ALLOC_DISK_LIMITS
	struct queue_limits lim = {
		.logical_block_size = logical,
		.physical_block_size = physical,
	};

	return blk_alloc_disk(&lim, NUMA_NO_NODE);
#else
	struct gendisk *disk = blk_alloc_disk(NUMA_NO_NODE);

	if (!disk)
		return ERR_PTR(-ENOMEM);
	blk_queue_logical_block_size(disk->queue, logical);
	blk_queue_physical_block_size(disk->queue, physical);
	return disk;
#endif
}

/**
 * struct compat_shrinker - A shrinker that finds its owner.
 * @shrinker: The registration (allocated by the kernel since 6.7).
 * @owner: What compat_shrinker_owner() returns, where the kernel's
 *	&struct shrinker has no private_data.
 */
struct compat_shrinker {
#ifdef BLKSNAP_HAVE_SHRINKER_ALLOC
	struct shrinker *shrinker;
#else
	struct shrinker shrinker;
	void *owner;
#endif
};

/**
 * compat_shrinker_register() - Offer objects to reclaim.
 * @cs: Zeroed storage for the registration.
 * @count: Returns how many objects could be freed.
 * @scan: Frees up to sc->nr_to_scan of them.
 * @owner: Given back by compat_shrinker_owner() in the callbacks.
 * @name: Shown by the shrinker debugfs.
 *
 * Return: 0 or a negative errno.
 */
static inline int compat_shrinker_register(struct compat_shrinker *cs,
	unsigned long (*count)(struct shrinker *, struct shrink_control *),
	unsigned long (*scan)(struct shrinker *, struct shrink_control *),
	void *owner, const char *name)
{
#ifdef BLKSNAP_HAVE_SHRINKER_ALLOC
	struct shrinker *s = shrinker_alloc(0, "%s", name);

	if (!s)
		return -ENOMEM;
	s->count_objects = count;
	s->scan_objects = scan;
	s->private_data = owner;
	shrinker_register(s);
	cs->shrinker = s;
	return 0;
#else
	int ret;

	cs->shrinker.count_objects = count;
	cs->shrinker.scan_objects = scan;
	cs->shrinker.seeks = DEFAULT_SEEKS;
	ret = register_shrinker(&cs->shrinker, "%s", name);
	if (!ret)
		cs->owner = owner;
	return ret;
#endif
}

/* On return no callback runs any more; a no-op if never registered. */
static inline void compat_shrinker_unregister(struct compat_shrinker *cs)
{
#ifdef BLKSNAP_HAVE_SHRINKER_ALLOC
	if (cs->shrinker)
		shrinker_free(cs->shrinker);
	cs->shrinker = NULL;
#else
	if (cs->owner)
		unregister_shrinker(&cs->shrinker);
	cs->owner = NULL;
#endif
}

static inline void *compat_shrinker_owner(struct shrinker *s)
{
#ifdef BLKSNAP_HAVE_SHRINKER_ALLOC
	return s->private_data;
#else
	return container_of(s, struct compat_shrinker, shrinker)->owner;
#endif
}

/*
 * An ftrace hook reads the hooked function's first argument and may send
 * the call elsewhere. Where handlers get the argument registers
 * (DYNAMIC_FTRACE_WITH_ARGS, which x86 has on every supported kernel),
 * both work without FTRACE_OPS_FL_SAVE_REGS, as livepatch does it: that
 * flag's trampoline saves a whole pt_regs and the flags on each call, a
 * cost that shows on a function every bio passes.
 */
#ifdef CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS
#define COMPAT_FTRACE_OPS_FL_REGS 0
#else
#define COMPAT_FTRACE_OPS_FL_REGS FTRACE_OPS_FL_SAVE_REGS
#endif

/**
 * compat_ftrace_arg0() - The first argument of a hooked function.
 * @fregs: What the ftrace handler was given.
 * @arg: Returns the argument.
 *
 * Return: false if @fregs does not hold it.
 */
static __always_inline bool compat_ftrace_arg0(struct ftrace_regs *fregs,
					       unsigned long *arg)
{
#if defined(CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS) && \
	defined(BLKSNAP_HAVE_FTRACE_REGS_ACCESSORS)
	*arg = ftrace_regs_get_argument(fregs, 0);
	return true;
#elif defined(CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS)
	/* 6.1: every arch with ARGS wraps a pt_regs in ftrace_regs. */
	*arg = regs_get_kernel_argument(&fregs->regs, 0);
	return true;
#else
	struct pt_regs *regs = ftrace_get_regs(fregs);

	if (!regs)
		return false;
	*arg = regs_get_kernel_argument(regs, 0);
	return true;
#endif
}

/* Makes the hooked function return to @ip's function instead of running. */
static __always_inline void compat_ftrace_set_ip(struct ftrace_regs *fregs,
						 unsigned long ip)
{
#if defined(CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS) && \
	defined(BLKSNAP_HAVE_FTRACE_REGS_ACCESSORS)
	ftrace_regs_set_instruction_pointer(fregs, ip);
#elif defined(CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS)
	ftrace_instruction_pointer_set(fregs, ip);
#else
	instruction_pointer_set(ftrace_get_regs(fregs), ip);
#endif
}

#endif /* __BLKSNAP_COMPAT_H */
