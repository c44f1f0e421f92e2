/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * blksnap: snapshots and change block tracking for any block device.
 *
 * The module is driven through the misc device /dev/blksnap-control. Every
 * ioctl needs CAP_SYS_ADMIN. All structures use fixed-width types, pointers
 * travel as __u64 and padding is explicit, so the same binary interface
 * serves 32- and 64-bit callers.
 */
#ifndef _UAPI_LINUX_BLKSNAP_H
#define _UAPI_LINUX_BLKSNAP_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define BLKSNAP_CTL_NAME	"blksnap-control"
#define BLKSNAP_IOCTL_MAGIC	0xBE

#define BLKSNAP_VERSION_MAJOR	1
#define BLKSNAP_VERSION_MINOR	0

/**
 * struct blksnap_version - Module version.
 * @major: Incremented on incompatible changes of this interface.
 * @minor: Incremented when ioctls or fields are added compatibly.
 * @revision: Bug-fix level.
 * @build: Build number, 0 for development builds.
 */
struct blksnap_version {
	__u16 major;
	__u16 minor;
	__u16 revision;
	__u16 build;
};

/**
 * struct blksnap_bdev - Identifies a block device by its device number.
 * @major: Major number of the whole disk or partition.
 * @minor: Minor number of the whole disk or partition.
 *
 * Userspace takes both from stat(2) of the device node (st_rdev).
 */
struct blksnap_bdev {
	__u32 major;
	__u32 minor;
};

/**
 * struct blksnap_tracker_list - List the tracked block devices.
 * @count: In: capacity of @devices in elements (at most
 *	BLKSNAP_MAX_LIST). Out: number of tracked devices. When the capacity
 *	is too small, the ioctl fails with ENOBUFS and @count tells how many
 *	elements are needed.
 * @reserved: Must be zero.
 * @devices: Pointer to an array of &struct blksnap_bdev.
 */
struct blksnap_tracker_list {
	__u32 count;
	__u32 reserved;
	__u64 devices;
};

#define BLKSNAP_MAX_LIST	4096

#define BLKSNAP_UUID_SIZE	16

/**
 * struct blksnap_cbt_info - Change block tracking state of a device.
 * @dev: In: the tracked device.
 * @device_capacity: Size of the device in 512-byte sectors.
 * @block_size: Tracking block size in bytes (a power of two).
 * @block_count: Number of tracking blocks, i.e. bytes in the CBT map.
 * @generation_id: UUID of this map's generation. It changes whenever the
 *	map is reset: on attach, when the change number wraps, and when the
 *	device capacity changes. Change numbers from another generation mean
 *	nothing for this map.
 * @changes_number: Change number that writes are being marked with now.
 *	It starts at 1 and advances each time a snapshot of the device is
 *	taken.
 * @reserved: Must be zero.
 *
 * Each byte of the CBT map holds the change number that was current when
 * its block was last written, or 0 for a block not written in this
 * generation.
 */
struct blksnap_cbt_info {
	struct blksnap_bdev dev;
	__u64 device_capacity;
	__u32 block_size;
	__u32 block_count;
	__u8 generation_id[BLKSNAP_UUID_SIZE];
	__u8 changes_number;
	__u8 reserved[7];
};

/**
 * struct blksnap_cbt_map - Read a part of the CBT map.
 * @dev: The tracked device.
 * @offset: First byte (tracking block) of the map to read.
 * @length: Number of bytes to read; @offset + @length must not exceed the
 *	map's block count.
 * @reserved: Must be zero.
 * @buffer: Pointer to a user buffer of @length bytes.
 */
struct blksnap_cbt_map {
	struct blksnap_bdev dev;
	__u32 offset;
	__u32 length;
	__u64 reserved;
	__u64 buffer;
};

/**
 * struct blksnap_sectors - A range of sectors.
 * @offset: First sector (512 bytes).
 * @count: Number of sectors.
 */
struct blksnap_sectors {
	__u64 offset;
	__u64 count;
};

#define BLKSNAP_MAX_DIRTY_RANGES	65536

/**
 * struct blksnap_cbt_dirty - Mark ranges of a device as changed.
 * @dev: The tracked device.
 * @count: Number of ranges (1 to BLKSNAP_MAX_DIRTY_RANGES).
 * @reserved: Must be zero.
 * @ranges: Pointer to an array of &struct blksnap_sectors, each inside
 *	the device.
 *
 * The blocks covering the ranges get the current change number, as if
 * they had been written. Use it for data changed behind the tracker's
 * back, e.g. while the module was not loaded.
 */
struct blksnap_cbt_dirty {
	struct blksnap_bdev dev;
	__u32 count;
	__u32 reserved;
	__u64 ranges;
};

/**
 * enum blksnap_ioctl - Control ioctl numbers.
 * @blksnap_ioctl_version: Get the module version.
 * @blksnap_ioctl_tracker_attach: Start tracking a block device.
 * @blksnap_ioctl_tracker_detach: Stop tracking a block device.
 * @blksnap_ioctl_tracker_list: List the tracked block devices.
 * @blksnap_ioctl_cbt_info: Get the CBT state of a tracked device.
 * @blksnap_ioctl_cbt_map: Read the CBT map of a tracked device.
 * @blksnap_ioctl_cbt_dirty: Mark ranges of a tracked device as changed.
 */
enum blksnap_ioctl {
	blksnap_ioctl_version,
	blksnap_ioctl_tracker_attach,
	blksnap_ioctl_tracker_detach,
	blksnap_ioctl_tracker_list,
	blksnap_ioctl_cbt_info,
	blksnap_ioctl_cbt_map,
	blksnap_ioctl_cbt_dirty,
};

/**
 * define IOCTL_BLKSNAP_VERSION - Get the module version.
 *
 * Return: 0, with &struct blksnap_version filled in.
 */
#define IOCTL_BLKSNAP_VERSION \
	_IOR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_version, struct blksnap_version)

/**
 * define IOCTL_BLKSNAP_TRACKER_ATTACH - Start tracking a block device.
 *
 * Takes a &struct blksnap_bdev naming a whole disk or a partition. From
 * now on every write to it is recorded in a new CBT map with a new
 * generation.
 *
 * Return: 0; ENODEV if there is no such block device; EALREADY if it is
 * tracked already; ENOMEM.
 */
#define IOCTL_BLKSNAP_TRACKER_ATTACH \
	_IOW(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_tracker_attach, \
	     struct blksnap_bdev)

/**
 * define IOCTL_BLKSNAP_TRACKER_DETACH - Stop tracking a block device.
 *
 * Takes a &struct blksnap_bdev. The CBT map is dropped.
 *
 * Return: 0; ENOENT if the device is not tracked.
 */
#define IOCTL_BLKSNAP_TRACKER_DETACH \
	_IOW(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_tracker_detach, \
	     struct blksnap_bdev)

/**
 * define IOCTL_BLKSNAP_TRACKER_LIST - List the tracked block devices.
 *
 * Takes a &struct blksnap_tracker_list.
 *
 * Return: 0; ENOBUFS if the array is too small (count then says how many
 * are needed); EINVAL for a count above BLKSNAP_MAX_LIST; EFAULT.
 */
#define IOCTL_BLKSNAP_TRACKER_LIST \
	_IOWR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_tracker_list, \
	      struct blksnap_tracker_list)

/**
 * define IOCTL_BLKSNAP_CBT_INFO - Get the CBT state of a tracked device.
 *
 * Takes a &struct blksnap_cbt_info with @dev set and fills in the rest.
 *
 * Return: 0; ENOENT if the device is not tracked.
 */
#define IOCTL_BLKSNAP_CBT_INFO \
	_IOWR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_cbt_info, \
	      struct blksnap_cbt_info)

/**
 * define IOCTL_BLKSNAP_CBT_MAP - Read the CBT map of a tracked device.
 *
 * Takes a &struct blksnap_cbt_map.
 *
 * Return: 0; ENOENT if the device is not tracked; EINVAL if the range
 * lies outside the map; EFAULT.
 */
#define IOCTL_BLKSNAP_CBT_MAP \
	_IOW(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_cbt_map, struct blksnap_cbt_map)

/**
 * define IOCTL_BLKSNAP_CBT_DIRTY - Mark ranges of a device as changed.
 *
 * Takes a &struct blksnap_cbt_dirty. Either all ranges are marked or,
 * on error, none.
 *
 * Return: 0; ENOENT if the device is not tracked; EINVAL for a bad count
 * or a range outside the device; EFAULT.
 */
#define IOCTL_BLKSNAP_CBT_DIRTY \
	_IOW(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_cbt_dirty, \
	     struct blksnap_cbt_dirty)

#endif /* _UAPI_LINUX_BLKSNAP_H */
