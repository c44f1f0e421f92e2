// SPDX-License-Identifier: GPL-2.0
/*
 * blksnap: snapshots and change block tracking for any block device.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <uapi/linux/blksnap.h>
#include "ctrl.h"
#include "diff_area.h"
#include "hook.h"
#include "params.h"
#include "snapshot.h"
#include "tracker.h"

/*
 * Tracking block size: the smallest power of two from 2^minimum_shift up
 * that keeps a device's map within maximum_count blocks, but at most
 * 2^maximum_shift. With the defaults a map takes at most 1 MiB for any
 * device up to 64 TiB: 1 MiB of CBT per TiB tracked, 64 KiB blocks for
 * devices up to 64 GiB.
 */
unsigned int tracking_block_minimum_shift = 16;
module_param(tracking_block_minimum_shift, uint, 0444);
MODULE_PARM_DESC(tracking_block_minimum_shift,
		 "log2 of the smallest tracking block size in bytes (12-30, default 16)");

unsigned int tracking_block_maximum_shift = 26;
module_param(tracking_block_maximum_shift, uint, 0444);
MODULE_PARM_DESC(tracking_block_maximum_shift,
		 "log2 of the largest tracking block size in bytes (12-30, default 26)");

unsigned int tracking_block_maximum_count = 1U << 20;
module_param(tracking_block_maximum_count, uint, 0444);
MODULE_PARM_DESC(tracking_block_maximum_count,
		 "tracking blocks per device before the block size grows (1024-16777216, default 1048576)");

/*
 * Copy-on-write chunk size: the same rule with its own bounds. A chunk is
 * copied whole on the first write to it, and one bio carries it, so it is
 * at most 1 MiB. 128 KiB at least: a scattered write on a fresh snapshot
 * waits for its chunk's read, and larger copies come from copy groups
 * and the sweep anyway.
 */
unsigned int chunk_minimum_shift = 17;
module_param(chunk_minimum_shift, uint, 0444);
MODULE_PARM_DESC(chunk_minimum_shift,
		 "log2 of the smallest copy-on-write chunk in bytes (12-20, default 17)");

unsigned int chunk_maximum_shift = 20;
module_param(chunk_maximum_shift, uint, 0444);
MODULE_PARM_DESC(chunk_maximum_shift,
		 "log2 of the largest copy-on-write chunk in bytes (12-20, default 20)");

unsigned int chunk_maximum_count = 1U << 20;
module_param(chunk_maximum_count, uint, 0444);
MODULE_PARM_DESC(chunk_maximum_count,
		 "chunks per device before the chunk size grows (default 1048576)");

/*
 * Once a second chunk of an aligned span of this size is written, the
 * rest of the span is copied with it, in one read and store, while
 * storage has room: dense writes then cost fewer, larger copies, for some
 * storage spent on chunks not (yet) written. At or below the chunk size,
 * only chunks being written are copied.
 */
unsigned int copy_group_shift = 20;
module_param(copy_group_shift, uint, 0444);
MODULE_PARM_DESC(copy_group_shift,
		 "log2 of the span in bytes copied whole from its second written chunk on (12-24, default 20)");

/* Storage is plentiful: copy the span from its first written chunk on. */
bool copy_group_eager;
module_param(copy_group_eager, bool, 0444);
MODULE_PARM_DESC(copy_group_eager,
		 "copy a span whole from its first written chunk on (default N)");

/*
 * Dense writes will reach the whole device: copy the rest of it in the
 * background, so that they find their chunks copied instead of waiting.
 */
bool copy_sweep = true;
module_param(copy_sweep, bool, 0444);
MODULE_PARM_DESC(copy_sweep,
		 "once writes are dense, copy the rest of the device beside them (default Y)");

/* Free difference storage below which userspace is asked for more. */
unsigned long diff_storage_minimum = 262144;
module_param(diff_storage_minimum, ulong, 0444);
MODULE_PARM_DESC(diff_storage_minimum,
		 "low free space threshold in sectors (default 262144 = 128 MiB)");

static bool params_valid(void)
{
	if (tracking_block_minimum_shift < 12 ||
	    tracking_block_maximum_shift > 30 ||
	    tracking_block_minimum_shift > tracking_block_maximum_shift) {
		pr_err("tracking block shifts must satisfy 12 <= minimum <= maximum <= 30\n");
		return false;
	}
	if (tracking_block_maximum_count < 1024 ||
	    tracking_block_maximum_count > (1U << 24)) {
		pr_err("tracking_block_maximum_count must be 1024 to 16777216\n");
		return false;
	}
	if (chunk_minimum_shift < 12 || chunk_maximum_shift > 20 ||
	    chunk_minimum_shift > chunk_maximum_shift || !chunk_maximum_count) {
		pr_err("chunk shifts must satisfy 12 <= minimum <= maximum <= 20\n");
		return false;
	}
	if (copy_group_shift < 12 || copy_group_shift > 24) {
		pr_err("copy_group_shift must be 12 to 24\n");
		return false;
	}
	return true;
}

static int __init blksnap_init(void)
{
	int ret;

	if (!params_valid())
		return -EINVAL;

	ret = diff_area_module_init();
	if (ret)
		return ret;
	ret = hook_register();
	if (ret)
		goto fail_diff_area;
	ret = ctrl_init();
	if (ret)
		goto fail_hook;
	pr_info("version %u.%u loaded\n", BLKSNAP_VERSION_MAJOR,
		BLKSNAP_VERSION_MINOR);
	return 0;

fail_hook:
	hook_unregister();
fail_diff_area:
	diff_area_module_exit();
	return ret;
}

static void __exit blksnap_exit(void)
{
	ctrl_done();
	snapshot_destroy_all();
	hook_unregister();
	tracker_detach_all();
	diff_area_module_exit();
	pr_info("unloaded\n");
}

module_init(blksnap_init);
module_exit(blksnap_exit);

MODULE_DESCRIPTION("Snapshots and change block tracking for block devices");
MODULE_VERSION("1.0");
MODULE_AUTHOR("blksnap developers");
MODULE_LICENSE("GPL");
