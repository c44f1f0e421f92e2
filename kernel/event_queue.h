/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_EVENT_QUEUE_H
#define __BLKSNAP_EVENT_QUEUE_H

#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <uapi/linux/blksnap.h>

/**
 * struct event_queue - Events of one snapshot, oldest first.
 * @list: Pending events.
 * @lock: Protects @list and @closed.
 * @wait: Waiters for a new event.
 * @closed: The snapshot is going away; waiters leave.
 */
struct event_queue {
	struct list_head list;
	spinlock_t lock;
	wait_queue_head_t wait;
	bool closed;
};

void event_queue_init(struct event_queue *queue);
void event_queue_done(struct event_queue *queue);
void event_queue_close(struct event_queue *queue);
void event_low_space(struct event_queue *queue, u64 requested, u64 free);
void event_corrupted(struct event_queue *queue, dev_t dev, int error);
int event_wait(struct event_queue *queue, unsigned long timeout_ms,
	       struct blksnap_snapshot_event *out);

#endif /* __BLKSNAP_EVENT_QUEUE_H */
