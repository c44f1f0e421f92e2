// SPDX-License-Identifier: GPL-2.0
/*
 * The control device /dev/blksnap-control: ioctl decoding and the checks
 * on everything userspace passes in.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-ctrl: " fmt
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/kdev_t.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <uapi/linux/blksnap.h>
#include "cbt_map.h"
#include "ctrl.h"
#include "snapshot.h"
#include "tracker.h"

static int ctrl_get_dev(const struct blksnap_bdev *bdev, dev_t *dev)
{
	*dev = MKDEV(bdev->major, bdev->minor);
	if (MAJOR(*dev) != bdev->major || MINOR(*dev) != bdev->minor)
		return -EINVAL;
	return 0;
}

static int ctrl_version(void __user *arg)
{
	const struct blksnap_version version = {
		.major = BLKSNAP_VERSION_MAJOR,
		.minor = BLKSNAP_VERSION_MINOR,
	};

	return copy_to_user(arg, &version, sizeof(version)) ? -EFAULT : 0;
}

static int ctrl_tracker_attach_detach(void __user *arg, bool attach)
{
	struct blksnap_bdev bdev;
	dev_t dev;
	int ret;

	if (copy_from_user(&bdev, arg, sizeof(bdev)))
		return -EFAULT;
	ret = ctrl_get_dev(&bdev, &dev);
	if (ret)
		return ret;
	return attach ? tracker_attach(dev) : tracker_detach(dev);
}

/*
 * The list ioctls: userspace passes an array and its capacity and gets
 * the number of items back, with ENOBUFS if the array was too small.
 * Both list structures share one layout.
 */
static int ctrl_list(void __user *arg, size_t item_size,
		     int (*fill)(void *items, unsigned int *count))
{
	struct blksnap_tracker_list list;
	void *items;
	int ret;

	BUILD_BUG_ON(sizeof(struct blksnap_tracker_list) !=
		     sizeof(struct blksnap_snapshot_list));
	if (copy_from_user(&list, arg, sizeof(list)))
		return -EFAULT;
	if (list.reserved || list.count > BLKSNAP_MAX_LIST)
		return -EINVAL;
	items = kcalloc(max(list.count, 1U), item_size, GFP_KERNEL);
	if (!items)
		return -ENOMEM;

	ret = fill(items, &list.count);
	if (ret == -ENOBUFS) {
		if (copy_to_user(arg, &list, sizeof(list)))
			ret = -EFAULT;
	} else if (!ret &&
		   (copy_to_user(u64_to_user_ptr(list.devices), items,
				 list.count * item_size) ||
		    copy_to_user(arg, &list, sizeof(list)))) {
		ret = -EFAULT;
	}
	kfree(items);
	return ret;
}

static int ctrl_fill_trackers(void *items, unsigned int *count)
{
	return tracker_list(items, count);
}

static int ctrl_fill_snapshots(void *items, unsigned int *count)
{
	return snapshot_list(items, count);
}

static int ctrl_cbt_info(void __user *arg)
{
	struct blksnap_cbt_info info;
	dev_t dev;
	int ret;

	if (copy_from_user(&info, arg, sizeof(info)))
		return -EFAULT;
	ret = ctrl_get_dev(&info.dev, &dev);
	if (ret)
		return ret;
	memset(info.reserved, 0, sizeof(info.reserved));
	ret = tracker_cbt_info(dev, &info);
	if (ret)
		return ret;
	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

static int ctrl_cbt_map(void __user *arg)
{
	struct blksnap_cbt_map req;
	dev_t dev;
	u8 *buf;
	int ret;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	ret = ctrl_get_dev(&req.dev, &dev);
	if (ret)
		return ret;
	if (req.reserved || !req.length ||
	    (req.flags & ~BLKSNAP_CBT_MAP_SNAPSHOT))
		return -EINVAL;

	buf = tracker_cbt_copy(dev, req.offset, req.length,
			       req.flags & BLKSNAP_CBT_MAP_SNAPSHOT);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	if (copy_to_user(u64_to_user_ptr(req.buffer), buf, req.length))
		ret = -EFAULT;
	kvfree(buf);
	return ret;
}

static int ctrl_cbt_dirty(void __user *arg)
{
	struct blksnap_cbt_dirty req;
	struct blksnap_sectors *ranges;
	dev_t dev;
	int ret;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	ret = ctrl_get_dev(&req.dev, &dev);
	if (ret)
		return ret;
	if (req.reserved || !req.count ||
	    req.count > BLKSNAP_MAX_DIRTY_RANGES)
		return -EINVAL;

	ranges = memdup_user(u64_to_user_ptr(req.ranges),
			     array_size(req.count, sizeof(*ranges)));
	if (IS_ERR(ranges))
		return PTR_ERR(ranges);
	ret = tracker_cbt_mark_dirty(dev, ranges, req.count);
	kfree(ranges);
	return ret;
}

static int ctrl_snapshot_create(void __user *arg)
{
	struct blksnap_uuid out;
	uuid_t id;
	int ret;

	ret = snapshot_create(&id);
	if (ret)
		return ret;
	export_uuid(out.b, &id);
	if (copy_to_user(arg, &out, sizeof(out))) {
		snapshot_destroy(&id);
		return -EFAULT;
	}
	return 0;
}

/* Take, destroy: ioctls whose argument is only a snapshot id. */
static int ctrl_snapshot_by_id(void __user *arg, int (*op)(const uuid_t *id))
{
	struct blksnap_uuid in;
	uuid_t id;

	if (copy_from_user(&in, arg, sizeof(in)))
		return -EFAULT;
	import_uuid(&id, in.b);
	return op(&id);
}

static int ctrl_snapshot_add_device(void __user *arg)
{
	struct blksnap_snapshot_device req;
	uuid_t id;
	dev_t dev;
	int ret;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	ret = ctrl_get_dev(&req.dev, &dev);
	if (ret)
		return ret;
	import_uuid(&id, req.id.b);
	return snapshot_add_device(&id, dev);
}

static int ctrl_snapshot_append_storage(void __user *arg)
{
	struct blksnap_snapshot_append_storage req;
	struct blksnap_sectors *ranges;
	uuid_t id;
	dev_t dev;
	int ret;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	ret = ctrl_get_dev(&req.dev, &dev);
	if (ret)
		return ret;
	if (req.reserved || !req.count ||
	    req.count > BLKSNAP_MAX_STORAGE_RANGES)
		return -EINVAL;
	ranges = vmemdup_user(u64_to_user_ptr(req.ranges),
			      array_size(req.count, sizeof(*ranges)));
	if (IS_ERR(ranges))
		return PTR_ERR(ranges);
	import_uuid(&id, req.id.b);
	ret = snapshot_append_storage(&id, dev, ranges, req.count);
	kvfree(ranges);
	return ret;
}

static int ctrl_snapshot_info(void __user *arg)
{
	struct blksnap_snapshot_info info;
	struct blksnap_bdev *out = NULL;
	dev_t *devs = NULL;
	unsigned int i, count;
	uuid_t id;
	int ret;

	if (copy_from_user(&info, arg, sizeof(info)))
		return -EFAULT;
	if (info.reserved || info.device_count > BLKSNAP_MAX_LIST)
		return -EINVAL;
	count = info.device_count;
	if (info.devices) {
		devs = kcalloc(max(count, 1U), sizeof(*devs), GFP_KERNEL);
		out = kcalloc(max(count, 1U), sizeof(*out), GFP_KERNEL);
		ret = -ENOMEM;
		if (!devs || !out)
			goto out;
	}
	import_uuid(&id, info.id.b);
	ret = snapshot_info(&id, &info, devs, &count);
	if (ret && ret != -ENOBUFS)
		goto out;
	info.device_count = count;
	for (i = 0; !ret && devs && i < count; i++) {
		out[i].major = MAJOR(devs[i]);
		out[i].minor = MINOR(devs[i]);
	}
	if ((!ret && devs &&
	     copy_to_user(u64_to_user_ptr(info.devices), out,
			  count * sizeof(*out))) ||
	    copy_to_user(arg, &info, sizeof(info)))
		ret = -EFAULT;
out:
	kfree(out);
	kfree(devs);
	return ret;
}

static int ctrl_image_info(void __user *arg)
{
	struct blksnap_image_info info;
	dev_t dev;
	int ret;

	if (copy_from_user(&info, arg, sizeof(info)))
		return -EFAULT;
	ret = ctrl_get_dev(&info.dev, &dev);
	if (ret)
		return ret;
	memset((u8 *)&info + sizeof(info.dev), 0,
	       sizeof(info) - sizeof(info.dev));
	ret = tracker_image_info(dev, &info);
	if (ret)
		return ret;
	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

static int ctrl_snapshot_wait_event(void __user *arg)
{
	struct blksnap_snapshot_event event;
	uuid_t id;
	int ret;

	if (copy_from_user(&event, arg, sizeof(event)))
		return -EFAULT;
	import_uuid(&id, event.id.b);
	ret = snapshot_wait_event(&id, event.timeout_ms, &event);
	if (ret)
		return ret;
	return copy_to_user(arg, &event, sizeof(event)) ? -EFAULT : 0;
}

static long ctrl_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *argp = (void __user *)arg;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;

	switch (cmd) {
	case IOCTL_BLKSNAP_VERSION:
		return ctrl_version(argp);
	case IOCTL_BLKSNAP_TRACKER_ATTACH:
		return ctrl_tracker_attach_detach(argp, true);
	case IOCTL_BLKSNAP_TRACKER_DETACH:
		return ctrl_tracker_attach_detach(argp, false);
	case IOCTL_BLKSNAP_TRACKER_LIST:
		return ctrl_list(argp, sizeof(struct blksnap_bdev),
				 ctrl_fill_trackers);
	case IOCTL_BLKSNAP_CBT_INFO:
		return ctrl_cbt_info(argp);
	case IOCTL_BLKSNAP_CBT_MAP:
		return ctrl_cbt_map(argp);
	case IOCTL_BLKSNAP_CBT_DIRTY:
		return ctrl_cbt_dirty(argp);
	case IOCTL_BLKSNAP_SNAPSHOT_CREATE:
		return ctrl_snapshot_create(argp);
	case IOCTL_BLKSNAP_SNAPSHOT_ADD_DEVICE:
		return ctrl_snapshot_add_device(argp);
	case IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE:
		return ctrl_snapshot_append_storage(argp);
	case IOCTL_BLKSNAP_SNAPSHOT_TAKE:
		return ctrl_snapshot_by_id(argp, snapshot_take);
	case IOCTL_BLKSNAP_SNAPSHOT_DESTROY:
		return ctrl_snapshot_by_id(argp, snapshot_destroy);
	case IOCTL_BLKSNAP_SNAPSHOT_LIST:
		return ctrl_list(argp, sizeof(struct blksnap_uuid),
				 ctrl_fill_snapshots);
	case IOCTL_BLKSNAP_SNAPSHOT_INFO:
		return ctrl_snapshot_info(argp);
	case IOCTL_BLKSNAP_IMAGE_INFO:
		return ctrl_image_info(argp);
	case IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT:
		return ctrl_snapshot_wait_event(argp);
	default:
		return -ENOTTY;
	}
}

static ssize_t cbt_memory_bytes_show(struct device *dev,
				     struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", cbt_map_total_memory());
}
static DEVICE_ATTR_RO(cbt_memory_bytes);

static struct attribute *ctrl_attrs[] = {
	&dev_attr_cbt_memory_bytes.attr,
	NULL,
};
ATTRIBUTE_GROUPS(ctrl);

static const struct file_operations ctrl_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = ctrl_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice ctrl_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = BLKSNAP_CTL_NAME,
	.fops = &ctrl_fops,
	.groups = ctrl_groups,
};

int ctrl_init(void)
{
	return misc_register(&ctrl_misc);
}

void ctrl_done(void)
{
	misc_deregister(&ctrl_misc);
}
