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
#define BLKSNAP_VERSION_MINOR	1

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
 * define BLKSNAP_CBT_MAP_SNAPSHOT - Read the map as frozen at the take.
 *
 * While the device is in a taken snapshot, the module keeps a copy of the
 * map made at the instant of the take: with this flag, %IOCTL_BLKSNAP_CBT_MAP
 * reads that copy, which matches the snapshot image exactly (writes to the
 * image are recorded in it too). Without a taken snapshot the flag makes
 * the ioctl fail with ENODATA.
 */
#define BLKSNAP_CBT_MAP_SNAPSHOT	(1U << 0)

/**
 * struct blksnap_cbt_map - Read a part of the CBT map.
 * @dev: The tracked device.
 * @offset: First byte (tracking block) of the map to read.
 * @length: Number of bytes to read; @offset + @length must not exceed the
 *	map's block count.
 * @flags: 0 for the live map, or %BLKSNAP_CBT_MAP_SNAPSHOT.
 * @reserved: Must be zero.
 * @buffer: Pointer to a user buffer of @length bytes.
 */
struct blksnap_cbt_map {
	struct blksnap_bdev dev;
	__u32 offset;
	__u32 length;
	__u32 flags;
	__u32 reserved;
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
 * struct blksnap_uuid - A snapshot identifier.
 * @b: UUID bytes (RFC 4122 binary form).
 */
struct blksnap_uuid {
	__u8 b[BLKSNAP_UUID_SIZE];
};

/**
 * struct blksnap_snapshot_device - A device of a snapshot.
 * @id: The snapshot.
 * @dev: A tracked block device.
 */
struct blksnap_snapshot_device {
	struct blksnap_uuid id;
	struct blksnap_bdev dev;
};

#define BLKSNAP_MAX_STORAGE_RANGES	65536

/**
 * struct blksnap_snapshot_append_storage - Add difference storage.
 * @id: The snapshot.
 * @dev: Block device the ranges are on.
 * @count: Number of ranges (1 to BLKSNAP_MAX_STORAGE_RANGES).
 * @reserved: Must be zero.
 * @ranges: Pointer to an array of &struct blksnap_sectors, each inside
 *	@dev, not empty, not overlapping each other or ranges given before.
 *
 * The module writes copies of original data there, so the ranges must not
 * hold anything of value: typically the extents of a file that
 * fallocate(2) reserved. A range on a device of the snapshot itself is
 * fine; the module's own writes to it are not copied again.
 */
struct blksnap_snapshot_append_storage {
	struct blksnap_uuid id;
	struct blksnap_bdev dev;
	__u32 count;
	__u32 reserved;
	__u64 ranges;
};

/**
 * struct blksnap_snapshot_list - List the snapshots.
 * @count: In: capacity of @ids in elements (at most BLKSNAP_MAX_LIST).
 *	Out: number of snapshots; ENOBUFS if the capacity was too small.
 * @reserved: Must be zero.
 * @ids: Pointer to an array of &struct blksnap_uuid.
 */
struct blksnap_snapshot_list {
	__u32 count;
	__u32 reserved;
	__u64 ids;
};

/**
 * enum blksnap_snapshot_state - Life of a snapshot.
 * @BLKSNAP_SNAPSHOT_CREATED: Devices and storage may be added.
 * @BLKSNAP_SNAPSHOT_TAKEN: Images exist and hold the devices' state at
 *	the moment of the take.
 * @BLKSNAP_SNAPSHOT_CORRUPTED: Storage overflowed or failed, or a device
 *	went away: images fail every I/O. The original devices are intact.
 */
enum blksnap_snapshot_state {
	BLKSNAP_SNAPSHOT_CREATED,
	BLKSNAP_SNAPSHOT_TAKEN,
	BLKSNAP_SNAPSHOT_CORRUPTED,
};

/**
 * struct blksnap_snapshot_info - State of a snapshot.
 * @id: In: the snapshot.
 * @state: A value of &enum blksnap_snapshot_state.
 * @error: Negative errno that corrupted the snapshot, else 0.
 * @storage_sectors: Difference storage appended, in sectors.
 * @storage_used: Difference storage in use (including the unusable tails
 *	of ranges), in sectors.
 * @device_count: In: capacity of @devices. Out: number of devices.
 * @reserved: Must be zero.
 * @devices: Pointer to an array of &struct blksnap_bdev, or 0 to learn
 *	only the count.
 */
struct blksnap_snapshot_info {
	struct blksnap_uuid id;
	__u32 state;
	__s32 error;
	__u64 storage_sectors;
	__u64 storage_used;
	__u32 device_count;
	__u32 reserved;
	__u64 devices;
};

#define BLKSNAP_IMAGE_NAME_LEN	32

/**
 * struct blksnap_image_info - The snapshot image of a device.
 * @dev: In: a device of a snapshot.
 * @image: Device number of its image (0:0 before the take).
 * @id: The snapshot the device belongs to.
 * @error: Negative errno if the image is corrupted, else 0.
 * @chunk_size: Copy-on-write unit in bytes; 0 before the take.
 * @name: Name of the image disk, e.g. "blksnap-image_8:16", NUL
 *	terminated; empty before the take.
 */
struct blksnap_image_info {
	struct blksnap_bdev dev;
	struct blksnap_bdev image;
	struct blksnap_uuid id;
	__s32 error;
	__u32 chunk_size;
	char name[BLKSNAP_IMAGE_NAME_LEN];
};

/**
 * enum blksnap_event_code - What a snapshot event reports.
 * @BLKSNAP_EVENT_LOW_FREE_SPACE: Free difference storage fell below the
 *	threshold (module parameter diff_storage_minimum); append more.
 *	Sent once per crossing: appending re-arms it. Storage smaller than
 *	the threshold raises it at the first copy. Not sent while storage
 *	has room for a copy of every chunk of the snapshot's devices not
 *	copied yet: it can then not overflow.
 * @BLKSNAP_EVENT_CORRUPTED: The snapshot is corrupted (see
 *	&struct blksnap_event_corrupted).
 */
enum blksnap_event_code {
	BLKSNAP_EVENT_LOW_FREE_SPACE = 0x41,
	BLKSNAP_EVENT_CORRUPTED = 0x42,
};

/**
 * struct blksnap_event_low_space - Payload of a low free space event.
 * @requested_sectors: How much storage the module asks for.
 * @free_sectors: Storage left when the event was raised.
 */
struct blksnap_event_low_space {
	__u64 requested_sectors;
	__u64 free_sectors;
};

/**
 * struct blksnap_event_corrupted - Payload of a corruption event.
 * @dev: The original device whose image broke first.
 * @error: Negative errno: -ENOSPC for an overflow, -EIO for a failed
 *	storage write, -ENODEV for a device that went away.
 * @reserved: Zero.
 */
struct blksnap_event_corrupted {
	struct blksnap_bdev dev;
	__s32 error;
	__u32 reserved;
};

/**
 * struct blksnap_snapshot_event - Wait for an event of a snapshot.
 * @id: In: the snapshot.
 * @timeout_ms: In: how long to wait; 0 only polls.
 * @code: Out: a value of &enum blksnap_event_code.
 * @time_label: Out: ktime (ns) when the event was raised.
 * @low_space: Payload for BLKSNAP_EVENT_LOW_FREE_SPACE.
 * @corrupted: Payload for BLKSNAP_EVENT_CORRUPTED.
 * @data: Room for future payloads.
 */
struct blksnap_snapshot_event {
	struct blksnap_uuid id;
	__u32 timeout_ms;
	__u32 code;
	__u64 time_label;
	union {
		struct blksnap_event_low_space low_space;
		struct blksnap_event_corrupted corrupted;
		__u8 data[96];
	};
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
 * @blksnap_ioctl_snapshot_create: Create an empty snapshot.
 * @blksnap_ioctl_snapshot_add_device: Add a tracked device to a snapshot.
 * @blksnap_ioctl_snapshot_append_storage: Add difference storage.
 * @blksnap_ioctl_snapshot_take: Take the snapshot.
 * @blksnap_ioctl_snapshot_destroy: Destroy a snapshot.
 * @blksnap_ioctl_snapshot_list: List the snapshots.
 * @blksnap_ioctl_snapshot_info: State of a snapshot.
 * @blksnap_ioctl_image_info: Snapshot image of a device.
 * @blksnap_ioctl_snapshot_wait_event: Wait for an event of a snapshot.
 */
enum blksnap_ioctl {
	blksnap_ioctl_version,
	blksnap_ioctl_tracker_attach,
	blksnap_ioctl_tracker_detach,
	blksnap_ioctl_tracker_list,
	blksnap_ioctl_cbt_info,
	blksnap_ioctl_cbt_map,
	blksnap_ioctl_cbt_dirty,
	blksnap_ioctl_snapshot_create,
	blksnap_ioctl_snapshot_add_device,
	blksnap_ioctl_snapshot_append_storage,
	blksnap_ioctl_snapshot_take,
	blksnap_ioctl_snapshot_destroy,
	blksnap_ioctl_snapshot_list,
	blksnap_ioctl_snapshot_info,
	blksnap_ioctl_image_info,
	blksnap_ioctl_snapshot_wait_event,
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
 * Return: 0; ENOENT if the device is not tracked; EBUSY while it belongs
 * to a snapshot.
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
 * lies outside the map or for unknown flags; ENODATA for
 * %BLKSNAP_CBT_MAP_SNAPSHOT without a taken snapshot; EFAULT.
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

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_CREATE - Create an empty snapshot.
 *
 * Fills in a &struct blksnap_uuid with the new snapshot's id.
 *
 * Return: 0; ENOMEM.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_CREATE \
	_IOR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_create, \
	     struct blksnap_uuid)

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_ADD_DEVICE - Add a device to a snapshot.
 *
 * Takes a &struct blksnap_snapshot_device. The device must be tracked and
 * belong to no other snapshot; the snapshot must not be taken yet. A whole
 * disk and one of its partitions cannot be in snapshots at the same time
 * (partitions of one disk can). At most 256 devices per snapshot. What
 * the take needs for the device is allocated here, and writes in flight
 * to it are waited for, so that the take itself holds writes only briefly.
 *
 * Return: 0; ESRCH for an unknown snapshot; ENOENT if the device is not
 * tracked; ENODEV if it is gone; EALREADY if it is in this snapshot; EBUSY
 * if it (or its disk or partition) belongs to a snapshot, or this snapshot
 * is taken already; E2BIG if the snapshot is full; EINVAL for a bad device
 * number; ENOMEM.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_ADD_DEVICE \
	_IOW(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_add_device, \
	     struct blksnap_snapshot_device)

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE - Add difference storage.
 *
 * Takes a &struct blksnap_snapshot_append_storage; allowed before and
 * after the take. All ranges are checked before any is added.
 *
 * Ranges overlap when they cover the same sectors of one disk, whether
 * given on the disk or on one of its partitions. A snapshot image cannot
 * be storage.
 *
 * Return: 0; ESRCH for an unknown snapshot; ENODEV if the device does not
 * exist; EINVAL for a bad count, an empty range, a range beyond the end
 * of the device, overlapping ranges or an image as storage; E2BIG beyond
 * 16 * BLKSNAP_MAX_STORAGE_RANGES ranges in all; EFAULT; ENOMEM.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE \
	_IOW(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_append_storage, \
	     struct blksnap_snapshot_append_storage)

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_TAKE - Take the snapshot.
 *
 * Takes a &struct blksnap_uuid. Freezes the file systems of all devices,
 * holds new writes, waits for writes in flight, advances each device's
 * change number, starts copy-on-write, releases the writes and thaws: the
 * images show one instant across all devices. Up to that point, a failure
 * changes nothing. The image disks, allocated when the devices were
 * added, are registered after the thaw, side by side; if one cannot be
 * registered, the take still returns 0 and the snapshot is corrupted (the
 * event says why). Storage may be appended before or after the take; a
 * copy that finds none corrupts the snapshot with ENOSPC.
 *
 * Return: 0; ESRCH for an unknown snapshot; ENODEV if it has no devices
 * or one is gone; EALREADY if taken already; the error of a failed
 * freeze; ENOMEM.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_TAKE \
	_IOW(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_take, \
	     struct blksnap_uuid)

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_DESTROY - Destroy a snapshot.
 *
 * Takes a &struct blksnap_uuid. Removes the images (open ones start
 * failing I/O), stops copy-on-write and releases the storage. Tracking
 * goes on.
 *
 * Return: 0; ESRCH for an unknown snapshot.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_DESTROY \
	_IOW(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_destroy, \
	     struct blksnap_uuid)

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_LIST - List the snapshots.
 *
 * Takes a &struct blksnap_snapshot_list.
 *
 * Return: 0; ENOBUFS if the array is too small; EINVAL; EFAULT.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_LIST \
	_IOWR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_list, \
	      struct blksnap_snapshot_list)

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_INFO - State of a snapshot.
 *
 * Takes a &struct blksnap_snapshot_info.
 *
 * Return: 0; ESRCH for an unknown snapshot; ENOBUFS if @devices is too
 * small (@device_count tells how many); EINVAL for a reserved field not
 * zero or @device_count above BLKSNAP_MAX_LIST; EFAULT.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_INFO \
	_IOWR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_info, \
	      struct blksnap_snapshot_info)

/**
 * define IOCTL_BLKSNAP_IMAGE_INFO - Snapshot image of a device.
 *
 * Takes a &struct blksnap_image_info with @dev set.
 *
 * Return: 0; ENOENT if the device is in no snapshot; EINVAL for a bad
 * device number.
 */
#define IOCTL_BLKSNAP_IMAGE_INFO \
	_IOWR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_image_info, \
	      struct blksnap_image_info)

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT - Wait for a snapshot event.
 *
 * Takes a &struct blksnap_snapshot_event. Returns the oldest event not
 * yet returned, waiting up to @timeout_ms for one.
 *
 * Each event is returned once, to one waiter.
 *
 * Return: 0; ETIMEDOUT if no event came in time; ESRCH for an unknown (or
 * destroyed while waiting) snapshot; EINTR if a signal came.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT \
	_IOWR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_wait_event, \
	      struct blksnap_snapshot_event)

#endif /* _UAPI_LINUX_BLKSNAP_H */
