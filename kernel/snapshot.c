// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshots: a set of tracked devices captured at one instant, their
 * shared difference storage, their images and their events.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-snapshot: " fmt
#include <linux/blkdev.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include "compat.h"
#include "diff_area.h"
#include "snapimage.h"
#include "snapshot.h"
#include "tracker.h"

#define SNAPSHOT_MAX_DEVICES 256

static LIST_HEAD(snapshots);
static DEFINE_MUTEX(snapshots_lock);

static void snapshot_release(struct kref *kref)
{
	struct snapshot *snapshot = container_of(kref, struct snapshot, kref);

	event_queue_done(&snapshot->events);
	kfree(snapshot->devices);
	kfree(snapshot);
}

static void snapshot_put(struct snapshot *snapshot)
{
	kref_put(&snapshot->kref, snapshot_release);
}

static struct snapshot *snapshot_get_by_id(const uuid_t *id)
{
	struct snapshot *snapshot;

	mutex_lock(&snapshots_lock);
	list_for_each_entry(snapshot, &snapshots, link) {
		if (uuid_equal(&snapshot->id, id)) {
			kref_get(&snapshot->kref);
			mutex_unlock(&snapshots_lock);
			return snapshot;
		}
	}
	mutex_unlock(&snapshots_lock);
	return NULL;
}

int snapshot_create(uuid_t *id)
{
	struct snapshot *snapshot;

	snapshot = kzalloc(sizeof(*snapshot), GFP_KERNEL);
	if (!snapshot)
		return -ENOMEM;
	snapshot->devices = kcalloc(SNAPSHOT_MAX_DEVICES,
				    sizeof(*snapshot->devices), GFP_KERNEL);
	if (!snapshot->devices) {
		kfree(snapshot);
		return -ENOMEM;
	}
	kref_init(&snapshot->kref);
	mutex_init(&snapshot->lock);
	uuid_gen(&snapshot->id);
	snapshot->state = BLKSNAP_SNAPSHOT_CREATED;
	event_queue_init(&snapshot->events);
	diff_storage_init(&snapshot->storage, &snapshot->events);

	mutex_lock(&snapshots_lock);
	list_add_tail(&snapshot->link, &snapshots);
	mutex_unlock(&snapshots_lock);
	uuid_copy(id, &snapshot->id);
	pr_info("%pUb created\n", id);
	return 0;
}

/**
 * snapshot_set_corrupted() - The snapshot can no longer be trusted.
 * @snapshot: The snapshot.
 * @dev: The device whose image broke.
 * @error: Why: -ENOSPC, -EIO, -ENODEV, -ENOMEM.
 *
 * Images fail all I/O from now on; the originals are not affected. Only
 * the first error is kept and reported. Does not sleep.
 */
void snapshot_set_corrupted(struct snapshot *snapshot, dev_t dev, int error)
{
	if (cmpxchg(&snapshot->error, 0, error) != 0)
		return;
	pr_err("%pUb corrupted by %u:%u: error %d\n", &snapshot->id,
	       MAJOR(dev), MINOR(dev), error);
	event_corrupted(&snapshot->events, dev, error);
}

/* Drop what snapshot_device_prepare() made and the take did not use. */
static void snapshot_device_unprepare(struct snapshot_device *device)
{
	if (device->image)
		snapimage_free(device->image);
	device->image = NULL;
	if (device->area)
		diff_area_free(device->area);
	device->area = NULL;
}

/*
 * What a device needs for the take (its copy-on-write state, its image
 * disk and memory for its frozen CBT), made when it is added: the take
 * itself then only switches and publishes. Made again if a failed take
 * dropped it or the device was resized since.
 */
static int snapshot_device_prepare(struct snapshot *snapshot,
				   struct snapshot_device *device)
{
	struct tracker *tracker = device->tracker;
	struct block_device *bdev = tracker_bdev(tracker);
	struct diff_area *area;
	struct snapimage *image;
	int ret;

	if (device->area && device->area->capacity != bdev_nr_sectors(bdev))
		snapshot_device_unprepare(device);
	ret = tracker_take_prepare(tracker);
	if (ret || device->area)
		return ret;
	area = diff_area_new(bdev, tracker_dev(tracker), &snapshot->storage,
			     snapshot);
	if (IS_ERR(area))
		return PTR_ERR(area);
	image = snapimage_alloc(area, tracker);
	if (IS_ERR(image)) {
		diff_area_free(area);
		return PTR_ERR(image);
	}
	device->area = area;
	device->image = image;
	return 0;
}

int snapshot_add_device(const uuid_t *id, dev_t dev)
{
	struct snapshot *snapshot = snapshot_get_by_id(id);
	struct snapshot_device *device;
	struct tracker *tracker;
	unsigned int i;
	int ret;

	if (!snapshot)
		return -ESRCH;
	tracker = tracker_get_by_dev(dev);
	if (IS_ERR(tracker)) {
		snapshot_put(snapshot);
		return PTR_ERR(tracker);
	}

	mutex_lock(&snapshot->lock);
	ret = -EBUSY;
	if (snapshot->state != BLKSNAP_SNAPSHOT_CREATED)
		goto out;
	ret = -EALREADY;
	for (i = 0; i < snapshot->count; i++)
		if (snapshot->devices[i].tracker == tracker)
			goto out;
	ret = -E2BIG;
	if (snapshot->count == SNAPSHOT_MAX_DEVICES)
		goto out;
	ret = tracker_claim(tracker, snapshot);
	if (ret)
		goto out;
	tracker_drain_unheld(tracker);
	device = &snapshot->devices[snapshot->count];
	device->tracker = tracker;
	ret = snapshot_device_prepare(snapshot, device);
	if (ret) {
		tracker_unclaim(tracker);
		device->tracker = NULL;
		goto out;
	}
	snapshot->count++;
	tracker = NULL;
out:
	mutex_unlock(&snapshot->lock);
	if (tracker)
		tracker_put(tracker);
	snapshot_put(snapshot);
	return ret;
}

int snapshot_append_storage(const uuid_t *id, dev_t dev,
			    struct blksnap_sectors *ranges, unsigned int count)
{
	struct snapshot *snapshot = snapshot_get_by_id(id);
	int ret;

	if (!snapshot)
		return -ESRCH;
	ret = diff_storage_append(&snapshot->storage, dev, ranges, count);
	snapshot_put(snapshot);
	return ret;
}

static int snapshot_take_prepare(struct snapshot *snapshot)
{
	unsigned int i;
	int ret;

	for (i = 0; i < snapshot->count; i++) {
		ret = snapshot_device_prepare(snapshot, &snapshot->devices[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Tell storage the most the devices may ask of it: one chunk each, at
 * most, of the whole of every device.
 */
static void snapshot_expect_copies(struct snapshot *snapshot)
{
	sector_t grain = 0, sectors = 0, chunk;
	unsigned int i;

	for (i = 0; i < snapshot->count; i++) {
		struct diff_area *area = snapshot->devices[i].area;

		chunk = 1ULL << area->chunk_shift;
		grain = (i && grain != chunk) ? 0 : chunk;
		sectors += round_up(area->capacity, chunk);
	}
	diff_storage_expect(&snapshot->storage, grain, sectors);
}

static int snapshot_freeze(struct snapshot *snapshot, unsigned int *frozen)
{
	int ret;

	for (*frozen = 0; *frozen < snapshot->count; (*frozen)++) {
		ret = compat_bdev_freeze(tracker_bdev(snapshot->devices[*frozen].tracker));
		if (ret) {
			pr_err("%pUb: cannot freeze %u:%u: %d\n", &snapshot->id,
			       MAJOR(tracker_dev(snapshot->devices[*frozen].tracker)),
			       MINOR(tracker_dev(snapshot->devices[*frozen].tracker)),
			       ret);
			return ret;
		}
	}
	return 0;
}

static void snapshot_thaw(struct snapshot *snapshot, unsigned int frozen)
{
	while (frozen--)
		compat_bdev_thaw(tracker_bdev(snapshot->devices[frozen].tracker));
}

/*
 * The instant itself: no write reaches any device from the moment its
 * tracker is held until all are switched, and the writes sent on before
 * have completed, so the images show one cut across the devices.
 */
static void snapshot_switch(struct snapshot *snapshot)
{
	struct snapshot_device *devices = snapshot->devices;
	unsigned int noio, i;

	/* An allocation must not write to a device whose writes are held. */
	noio = memalloc_noio_save();
	for (i = 0; i < snapshot->count; i++)
		tracker_take_hold(devices[i].tracker);
	tracker_wait_submitters();
	for (i = 0; i < snapshot->count; i++)
		tracker_drain_held(devices[i].tracker);
	for (i = 0; i < snapshot->count; i++)
		tracker_take_switch(devices[i].tracker, devices[i].area);
	memalloc_noio_restore(noio);
}

static void snapshot_take_undo(struct snapshot *snapshot)
{
	unsigned int i;

	for (i = 0; i < snapshot->count; i++) {
		tracker_take_abort(snapshot->devices[i].tracker);
		snapshot_device_unprepare(&snapshot->devices[i]);
	}
}

/*
 * Publish the images, once copy-on-write runs and the file systems are
 * thawed: nothing waits for this. A failure leaves a corrupted snapshot.
 */
static void snapshot_make_images(struct snapshot *snapshot)
{
	unsigned int i;

	for (i = 0; i < snapshot->count; i++)
		snapimage_publish_start(snapshot->devices[i].image);
	for (i = 0; i < snapshot->count; i++) {
		struct snapshot_device *device = &snapshot->devices[i];
		int ret = snapimage_publish_wait(device->image);

		if (ret) {
			snapshot_set_corrupted(snapshot,
					       tracker_dev(device->tracker), ret);
			continue;
		}
		tracker_set_image(device->tracker, device->image);
		device->image = NULL;
	}
}

int snapshot_take(const uuid_t *id)
{
	struct snapshot *snapshot = snapshot_get_by_id(id);
	ktime_t start = ktime_get(), frozen_at, switched_at, done_at;
	unsigned int frozen = 0, i;
	int ret;

	if (!snapshot)
		return -ESRCH;
	mutex_lock(&snapshot->lock);
	ret = -EALREADY;
	if (snapshot->state != BLKSNAP_SNAPSHOT_CREATED)
		goto out;
	ret = -ENODEV;
	if (!snapshot->count)
		goto out;
	for (i = 0; i < snapshot->count; i++)
		if (!tracker_present(snapshot->devices[i].tracker))
			goto out;

	ret = snapshot_take_prepare(snapshot);
	if (!ret) {
		snapshot_expect_copies(snapshot);
		ret = snapshot_freeze(snapshot, &frozen);
	}
	frozen_at = ktime_get();
	if (ret) {
		snapshot_thaw(snapshot, frozen);
		snapshot_take_undo(snapshot);
		goto out;
	}
	snapshot_switch(snapshot);
	for (i = 0; i < snapshot->count; i++)
		tracker_take_release(snapshot->devices[i].tracker);
	snapshot_thaw(snapshot, frozen);
	switched_at = ktime_get();
	snapshot->state = BLKSNAP_SNAPSHOT_TAKEN;
	snapshot_make_images(snapshot);
	done_at = ktime_get();
	pr_info("%pUb taken, %u device(s), in %lld us (file systems frozen in %lld, devices switched in %lld, images made in %lld)\n",
		&snapshot->id, snapshot->count,
		ktime_us_delta(done_at, start),
		ktime_us_delta(frozen_at, start),
		ktime_us_delta(switched_at, frozen_at),
		ktime_us_delta(done_at, switched_at));
out:
	mutex_unlock(&snapshot->lock);
	snapshot_put(snapshot);
	return ret;
}

/* Stop everything of a snapshot that is off the list. */
static void snapshot_teardown(struct snapshot *snapshot)
{
	struct snapshot_device *devices = snapshot->devices;
	unsigned int i;

	mutex_lock(&snapshot->lock);
	for (i = 0; i < snapshot->count; i++) {
		struct snapimage *image;

		tracker_release_cow(devices[i].tracker, &image);
		if (image)
			snapimage_destroy(image);
		if (devices[i].area)
			diff_area_stop(devices[i].area);
	}
	/*
	 * No write is diverted to an area from here on, and no image I/O
	 * starts: finish what is under way.
	 */
	tracker_wait_submitters();
	diff_area_drain();
	for (i = 0; i < snapshot->count; i++) {
		snapshot_device_unprepare(&devices[i]);
		tracker_unclaim(devices[i].tracker);
		tracker_put(devices[i].tracker);
	}
	snapshot->count = 0;
	diff_storage_done(&snapshot->storage);
	mutex_unlock(&snapshot->lock);
	event_queue_close(&snapshot->events);
	pr_info("%pUb destroyed\n", &snapshot->id);
}

int snapshot_destroy(const uuid_t *id)
{
	struct snapshot *snapshot = NULL, *s;

	mutex_lock(&snapshots_lock);
	list_for_each_entry(s, &snapshots, link) {
		if (uuid_equal(&s->id, id)) {
			snapshot = s;
			list_del(&snapshot->link);
			break;
		}
	}
	mutex_unlock(&snapshots_lock);
	if (!snapshot)
		return -ESRCH;
	snapshot_teardown(snapshot);
	snapshot_put(snapshot);
	return 0;
}

/* On module unload. */
void snapshot_destroy_all(void)
{
	struct snapshot *snapshot;

	for (;;) {
		mutex_lock(&snapshots_lock);
		snapshot = list_first_entry_or_null(&snapshots, struct snapshot,
						    link);
		if (snapshot)
			list_del(&snapshot->link);
		mutex_unlock(&snapshots_lock);
		if (!snapshot)
			return;
		snapshot_teardown(snapshot);
		snapshot_put(snapshot);
	}
}

/**
 * snapshot_list() - The ids of all snapshots.
 * @ids: Array to fill.
 * @count: In: capacity of @ids. Out: number of snapshots.
 *
 * Return: 0, -ENOBUFS if @ids is too small.
 */
int snapshot_list(struct blksnap_uuid *ids, unsigned int *count)
{
	struct snapshot *snapshot;
	unsigned int n = 0;

	mutex_lock(&snapshots_lock);
	list_for_each_entry(snapshot, &snapshots, link) {
		if (n < *count)
			export_uuid(ids[n].b, &snapshot->id);
		n++;
	}
	mutex_unlock(&snapshots_lock);
	if (n > *count) {
		*count = n;
		return -ENOBUFS;
	}
	*count = n;
	return 0;
}

/**
 * snapshot_info() - State, storage use and devices of a snapshot.
 * @id: The snapshot.
 * @info: Filled in (not its @devices and @device_count).
 * @devs: Array for the devices, may be NULL.
 * @count: In: capacity of @devs. Out: number of devices.
 *
 * Return: 0, -ESRCH, -ENOBUFS if @devs is too small.
 */
int snapshot_info(const uuid_t *id, struct blksnap_snapshot_info *info,
		  dev_t *devs, unsigned int *count)
{
	struct snapshot *snapshot = snapshot_get_by_id(id);
	unsigned int i;
	int ret = 0;

	if (!snapshot)
		return -ESRCH;
	mutex_lock(&snapshot->lock);
	info->error = READ_ONCE(snapshot->error);
	info->state = info->error ? BLKSNAP_SNAPSHOT_CORRUPTED :
				    snapshot->state;
	diff_storage_usage(&snapshot->storage, &info->storage_sectors,
			   &info->storage_used);
	if (devs && snapshot->count > *count)
		ret = -ENOBUFS;
	for (i = 0; devs && !ret && i < snapshot->count; i++)
		devs[i] = tracker_dev(snapshot->devices[i].tracker);
	*count = snapshot->count;
	mutex_unlock(&snapshot->lock);
	snapshot_put(snapshot);
	return ret;
}

int snapshot_wait_event(const uuid_t *id, unsigned long timeout_ms,
			struct blksnap_snapshot_event *event)
{
	struct snapshot *snapshot = snapshot_get_by_id(id);
	int ret;

	if (!snapshot)
		return -ESRCH;
	ret = event_wait(&snapshot->events, timeout_ms, event);
	snapshot_put(snapshot);
	return ret;
}
