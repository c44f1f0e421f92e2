/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_CBT_MAP_H
#define __BLKSNAP_CBT_MAP_H

#include <linux/types.h>
#include <linux/uuid.h>

/**
 * struct cbt_map - Change block tracking map of one device.
 * @capacity: Device size in sectors that the map was made for.
 * @blk_shift: log2 of the tracking block size in bytes.
 * @blk_count: Number of tracking blocks (bytes in @map).
 * @generation: Identity of this map; a reset makes a new map.
 * @changes_number: Number that writes are marked with now (1..255).
 * @map: One byte per tracking block: the change number of its last write,
 *	0 if not written in this generation.
 * @frozen: Copy of @map made when a snapshot was taken, or NULL. While
 *	it exists, readers of the map get it: it matches the snapshot.
 *
 * The I/O path marks the map under rcu_read_lock() with plain byte stores:
 * concurrent writers store the same value, so no lock is needed. A reset
 * replaces the whole map (new generation) instead of clearing it in place;
 * the old one is freed after synchronize_rcu().
 */
struct cbt_map {
	sector_t capacity;
	unsigned int blk_shift;
	u32 blk_count;
	uuid_t generation;
	u8 changes_number;
	u8 *map;
	u8 *frozen;
};

struct cbt_map *cbt_map_create(sector_t capacity);
void cbt_map_free(struct cbt_map *cbt);
void cbt_map_mark(struct cbt_map *cbt, sector_t sector, sector_t count);
size_t cbt_map_memory(const struct cbt_map *cbt);
u8 *cbt_map_alloc_copy(const struct cbt_map *cbt);
void cbt_map_free_copy(const struct cbt_map *cbt, u8 *copy);
void cbt_map_switch(struct cbt_map *cbt, u8 *frozen);
void cbt_map_release_frozen(struct cbt_map *cbt);
void cbt_map_mark_frozen(struct cbt_map *cbt, sector_t sector, sector_t count);
u64 cbt_map_total_memory(void);

#endif /* __BLKSNAP_CBT_MAP_H */
