// SPDX-License-Identifier: GPL-2.0
/*
 * blksnap: snapshots and change block tracking for any block device.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <uapi/linux/blksnap.h>
#include "ctrl.h"
#include "hook.h"
#include "params.h"
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
	return true;
}

static int __init blksnap_init(void)
{
	int ret;

	if (!params_valid())
		return -EINVAL;

	ret = hook_register();
	if (ret)
		return ret;
	ret = ctrl_init();
	if (ret) {
		hook_unregister();
		return ret;
	}
	pr_info("version %u.%u loaded\n", BLKSNAP_VERSION_MAJOR,
		BLKSNAP_VERSION_MINOR);
	return 0;
}

static void __exit blksnap_exit(void)
{
	ctrl_done();
	hook_unregister();
	tracker_detach_all();
	pr_info("unloaded\n");
}

module_init(blksnap_init);
module_exit(blksnap_exit);

MODULE_DESCRIPTION("Snapshots and change block tracking for block devices");
MODULE_VERSION("1.0");
MODULE_AUTHOR("blksnap developers");
MODULE_LICENSE("GPL");
