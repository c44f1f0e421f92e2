/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_TRACKER_H
#define __BLKSNAP_TRACKER_H

#include <linux/types.h>
#include <uapi/linux/blksnap.h>

struct bio;
struct block_device;
struct diff_area;
struct gendisk;
struct snapimage;
struct snapshot;
struct tracker;

/* Trackers and their CBT (ioctl side). */
int tracker_attach(dev_t dev);
int tracker_detach(dev_t dev);
int tracker_list(struct blksnap_bdev *devs, unsigned int *count);
int tracker_cbt_info(dev_t dev, struct blksnap_cbt_info *info);
u8 *tracker_cbt_copy(dev_t dev, u32 offset, u32 length, bool frozen);
int tracker_cbt_mark_dirty(dev_t dev, const struct blksnap_sectors *ranges,
			   unsigned int count);
int tracker_image_info(dev_t dev, struct blksnap_image_info *info);
void tracker_detach_all(void);

/* The I/O path. */
bool tracker_intercept_bio(struct bio *bio);
void tracker_submit_bio(struct bio *bio);
void tracker_disk_removed(struct gendisk *disk);
void tracker_mark_image_write(struct tracker *tracker, sector_t sector,
			      sector_t count);

/* Snapshots (called with the snapshot's lock held). */
struct tracker *tracker_get_by_dev(dev_t dev);
void tracker_put(struct tracker *tracker);
int tracker_claim(struct tracker *tracker, struct snapshot *snapshot);
void tracker_unclaim(struct tracker *tracker);
void tracker_drain_unheld(struct tracker *tracker);
void tracker_drain_held(struct tracker *tracker);
dev_t tracker_dev(struct tracker *tracker);
struct block_device *tracker_bdev(struct tracker *tracker);
bool tracker_present(struct tracker *tracker);
int tracker_take_prepare(struct tracker *tracker);
void tracker_take_hold(struct tracker *tracker);
void tracker_take_switch(struct tracker *tracker, struct diff_area *area);
void tracker_take_release(struct tracker *tracker);
void tracker_set_image(struct tracker *tracker, struct snapimage *image);
void tracker_take_abort(struct tracker *tracker);
void tracker_release_cow(struct tracker *tracker, struct snapimage **image);
void tracker_wait_submitters(void);

#endif /* __BLKSNAP_TRACKER_H */
