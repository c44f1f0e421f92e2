// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshot events: raised from the I/O path, read by a waiting ioctl.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-event: " fmt
#include <linux/jiffies.h>
#include <linux/kdev_t.h>
#include <linux/ktime.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include "event_queue.h"

struct event {
	struct list_head link;
	u64 time;
	u32 code;
	union {
		struct blksnap_event_low_space low_space;
		struct blksnap_event_corrupted corrupted;
	};
};

void event_queue_init(struct event_queue *queue)
{
	INIT_LIST_HEAD(&queue->list);
	spin_lock_init(&queue->lock);
	init_waitqueue_head(&queue->wait);
	queue->closed = false;
}

/* Wake the waiters for good: the snapshot is being destroyed. */
void event_queue_close(struct event_queue *queue)
{
	unsigned long flags;

	spin_lock_irqsave(&queue->lock, flags);
	queue->closed = true;
	spin_unlock_irqrestore(&queue->lock, flags);
	wake_up_all(&queue->wait);
}

void event_queue_done(struct event_queue *queue)
{
	struct event *event, *tmp;

	list_for_each_entry_safe(event, tmp, &queue->list, link)
		kfree(event);
	INIT_LIST_HEAD(&queue->list);
}

/*
 * Events come from the I/O path: the allocation may not sleep or recurse
 * into I/O. An event lost to an allocation failure is reported in the log.
 */
static struct event *event_new(u32 code)
{
	struct event *event = kzalloc(sizeof(*event), GFP_NOWAIT | __GFP_NOWARN);

	if (!event) {
		pr_err_ratelimited("event 0x%x lost: out of memory\n", code);
		return NULL;
	}
	event->time = ktime_get_ns();
	event->code = code;
	return event;
}

static void event_push(struct event_queue *queue, struct event *event)
{
	unsigned long flags;

	spin_lock_irqsave(&queue->lock, flags);
	list_add_tail(&event->link, &queue->list);
	spin_unlock_irqrestore(&queue->lock, flags);
	wake_up(&queue->wait);
}

void event_low_space(struct event_queue *queue, u64 requested, u64 free)
{
	struct event *event = event_new(BLKSNAP_EVENT_LOW_FREE_SPACE);

	if (!event)
		return;
	event->low_space.requested_sectors = requested;
	event->low_space.free_sectors = free;
	event_push(queue, event);
}

void event_corrupted(struct event_queue *queue, dev_t dev, int error)
{
	struct event *event = event_new(BLKSNAP_EVENT_CORRUPTED);

	if (!event)
		return;
	event->corrupted.dev.major = MAJOR(dev);
	event->corrupted.dev.minor = MINOR(dev);
	event->corrupted.error = error;
	event_push(queue, event);
}

static struct event *event_pop(struct event_queue *queue)
{
	struct event *event;
	unsigned long flags;

	spin_lock_irqsave(&queue->lock, flags);
	event = list_first_entry_or_null(&queue->list, struct event, link);
	if (event)
		list_del(&event->link);
	spin_unlock_irqrestore(&queue->lock, flags);
	return event;
}

static bool event_ready(struct event_queue *queue)
{
	return !list_empty_careful(&queue->list) || READ_ONCE(queue->closed);
}

/**
 * event_wait() - Take the oldest event, waiting for one if need be.
 * @queue: The snapshot's queue.
 * @timeout_ms: How long to wait; 0 only looks.
 * @out: Filled in with the event.
 *
 * Return: 0, -ETIMEDOUT if none came, -ESRCH if the snapshot went away,
 * -EINTR on a signal.
 */
int event_wait(struct event_queue *queue, unsigned long timeout_ms,
	       struct blksnap_snapshot_event *out)
{
	struct event *event;
	long ret;

	ret = wait_event_interruptible_timeout(queue->wait, event_ready(queue),
					       msecs_to_jiffies(timeout_ms));
	if (ret < 0)
		return -EINTR;
	event = event_pop(queue);
	if (!event)
		return READ_ONCE(queue->closed) ? -ESRCH : -ETIMEDOUT;

	out->code = event->code;
	out->time_label = event->time;
	memset(out->data, 0, sizeof(out->data));
	if (event->code == BLKSNAP_EVENT_LOW_FREE_SPACE)
		out->low_space = event->low_space;
	else
		out->corrupted = event->corrupted;
	kfree(event);
	return 0;
}
