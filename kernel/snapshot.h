/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_SNAPSHOT_H
#define __BLKSNAP_SNAPSHOT_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/uuid.h>
#include <uapi/linux/blksnap.h>
#include "diff_storage.h"
#include "event_queue.h"

struct diff_area;
struct snapimage;
struct tracker;

/**
 * struct snapshot_device - One device of a snapshot.
 * @tracker: Its tracker (a reference).
 * @area: Copy-on-write state, made when the device is added.
 * @image: Its image disk, made with @area and published by the take,
 *	when the tracker takes it over (NULL from then on).
 */
struct snapshot_device {
	struct tracker *tracker;
	struct diff_area *area;
	struct snapimage *image;
};

/**
 * struct snapshot - Devices captured at one instant, sharing one storage.
 * @link: In the list of snapshots.
 * @kref: The list holds one reference, each ioctl at work one more.
 * @id: Identity given to userspace.
 * @lock: Serializes adding devices, taking and destroying.
 * @state: &enum blksnap_snapshot_state; changed under @lock, except to
 *	corrupted, which may happen any time (see @error).
 * @error: First error that corrupted the snapshot, 0 while intact.
 * @devices: The devices, in the order they were added.
 * @count: Number of @devices.
 * @storage: Difference storage.
 * @events: Events for userspace.
 */
struct snapshot {
	struct list_head link;
	struct kref kref;
	uuid_t id;
	struct mutex lock;
	int state;
	int error;
	struct snapshot_device *devices;
	unsigned int count;
	struct diff_storage storage;
	struct event_queue events;
};

int snapshot_create(uuid_t *id);
int snapshot_destroy(const uuid_t *id);
int snapshot_add_device(const uuid_t *id, dev_t dev);
int snapshot_append_storage(const uuid_t *id, dev_t dev,
			    struct blksnap_sectors *ranges, unsigned int count);
int snapshot_take(const uuid_t *id);
int snapshot_list(struct blksnap_uuid *ids, unsigned int *count);
int snapshot_info(const uuid_t *id, struct blksnap_snapshot_info *info,
		  dev_t *devs, unsigned int *count);
int snapshot_wait_event(const uuid_t *id, unsigned long timeout_ms,
			struct blksnap_snapshot_event *event);
void snapshot_destroy_all(void);

void snapshot_set_corrupted(struct snapshot *snapshot, dev_t dev, int error);

static inline bool snapshot_is_corrupted(struct snapshot *snapshot)
{
	return READ_ONCE(snapshot->error) != 0;
}

#endif /* __BLKSNAP_SNAPSHOT_H */
