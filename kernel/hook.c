// SPDX-License-Identifier: GPL-2.0
/*
 * Interception of block I/O on stock kernels.
 *
 * Mainline has no block device filter API, so blksnap puts ftrace hooks on
 * two exported functions:
 *  - submit_bio_noacct(), which every bio passes on its way to a driver.
 *    The callback records writes in the CBT; a write that needs
 *    copy-on-write first is diverted to blksnap_submit_bio_noacct().
 *    The callback never sleeps.
 *  - del_gendisk(), which is diverted to blksnap_del_gendisk() so trackers
 *    can let go of a disk before it is torn down.
 * Both are registered with FTRACE_OPS_FL_IPMODIFY: only one such user per
 * function is possible, and a conflict with another module must show when
 * blksnap loads, not later. Registers are saved in full only where the
 * kernel cannot hand over the arguments alone (see compat.h).
 *
 * Calls made from this module to the hooked functions pass through: their
 * return address lies inside the module.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-hook: " fmt
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/ftrace.h>
#include <linux/module.h>
#include <linux/srcu.h>
#include "compat.h"
#include "hook.h"
#include "tracker.h"

/* Held while a diverted call runs blksnap code, so unload can wait. */
DEFINE_STATIC_SRCU(hook_srcu);

/*
 * Runs instead of submit_bio_noacct() for diverted bios. noinline and the
 * work after the call keep the compiler from turning the call inside into
 * a jump, which would hide our return address and loop back into the hook.
 */
static noinline void blksnap_submit_bio_noacct(struct bio *bio)
{
	int idx = srcu_read_lock(&hook_srcu);

	tracker_submit_bio(bio);
	srcu_read_unlock(&hook_srcu, idx);
}

/* Runs instead of del_gendisk(); noinline for the same reason. */
static noinline void blksnap_del_gendisk(struct gendisk *disk)
{
	int idx = srcu_read_lock(&hook_srcu);

	tracker_disk_removed(disk);
	del_gendisk(disk);
	srcu_read_unlock(&hook_srcu, idx);
}

static bool divert_always(void *arg)
{
	return true;
}

static bool divert_bio(void *bio)
{
	return tracker_intercept_bio(bio);
}

/**
 * struct hook - An ftrace hook that may divert a function.
 * @symbol: The hooked function.
 * @divert: Given the function's first argument, should the call go to
 *	@target instead? Called in the caller's context; must not sleep.
 * @target: blksnap's replacement, with the same signature.
 * @ops: The ftrace registration.
 * @registered: @ops is registered.
 */
struct hook {
	const char *symbol;
	bool (*divert)(void *arg);
	void *target;
	struct ftrace_ops ops;
	bool registered;
};

static void notrace hook_callback(unsigned long ip, unsigned long parent_ip,
				  struct ftrace_ops *ops,
				  struct ftrace_regs *fregs)
{
	struct hook *hook = container_of(ops, struct hook, ops);
	unsigned long arg;

	if (within_module(parent_ip, THIS_MODULE) ||
	    !compat_ftrace_arg0(fregs, &arg))
		return;
	if (hook->divert((void *)arg))
		compat_ftrace_set_ip(fregs, (unsigned long)hook->target);
}

#define HOOK(_symbol, _divert, _target) {				\
	.symbol = _symbol,						\
	.divert = _divert,						\
	.target = _target,						\
	.ops = {							\
		.func = hook_callback,					\
		.flags = COMPAT_FTRACE_OPS_FL_REGS | FTRACE_OPS_FL_IPMODIFY, \
	},								\
}

static struct hook hooks[] = {
	HOOK("submit_bio_noacct", divert_bio, blksnap_submit_bio_noacct),
	HOOK("del_gendisk", divert_always, blksnap_del_gendisk),
};

static int hook_install(struct hook *hook)
{
	char symbol[KSYM_NAME_LEN];
	int ret;

	/* ftrace_set_filter() wants a writable buffer. */
	strscpy(symbol, hook->symbol, sizeof(symbol));
	ret = ftrace_set_filter(&hook->ops, symbol, strlen(symbol), 0);
	if (ret) {
		pr_err("cannot trace %s: %d\n", hook->symbol, ret);
		return ret;
	}
	ret = register_ftrace_function(&hook->ops);
	if (ret) {
		pr_err("cannot hook %s: %d%s\n", hook->symbol, ret,
		       ret == -EBUSY ?
		       " (another module already modifies it)" : "");
		ftrace_free_filter(&hook->ops);
		return ret;
	}
	hook->registered = true;
	return 0;
}

static void hook_remove(struct hook *hook)
{
	if (!hook->registered)
		return;
	unregister_ftrace_function(&hook->ops);
	ftrace_free_filter(&hook->ops);
	hook->registered = false;
}

void hook_unregister(void)
{
	int i;

	for (i = ARRAY_SIZE(hooks) - 1; i >= 0; i--)
		hook_remove(&hooks[i]);
	/*
	 * No new call enters blksnap code now. Wait for those inside it,
	 * then for any task preempted on its way out of a diverted function.
	 */
	synchronize_srcu(&hook_srcu);
	synchronize_rcu_tasks();
}

int hook_register(void)
{
	int ret;
	int i;

	for (i = 0; i < ARRAY_SIZE(hooks); i++) {
		ret = hook_install(&hooks[i]);
		if (ret) {
			hook_unregister();
			return ret;
		}
	}
	return 0;
}
