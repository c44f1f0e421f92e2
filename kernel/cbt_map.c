// SPDX-License-Identifier: GPL-2.0
/*
 * Change block tracking map: one byte per tracking block.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-cbt: " fmt
#include <linux/blk_types.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/atomic.h>
#include <linux/math64.h>
#include "cbt_map.h"
#include "params.h"

/* Kernel memory held by all CBT maps, reported in sysfs. */
static atomic64_t cbt_memory = ATOMIC64_INIT(0);

/*
 * The smallest block size at or above the minimum that keeps the block
 * count within the maximum, but never above the maximum block size: a
 * small device gets fine-grained tracking, a huge one a bounded map.
 */
static unsigned int cbt_block_shift(sector_t capacity)
{
	u64 bytes = (u64)capacity << SECTOR_SHIFT;
	unsigned int shift = tracking_block_minimum_shift;

	while (shift < tracking_block_maximum_shift &&
	       DIV_ROUND_UP_ULL(bytes, 1ULL << shift) >
			tracking_block_maximum_count)
		shift++;
	return shift;
}

/**
 * cbt_map_create() - Make an empty map with a new generation.
 * @capacity: Device size in sectors.
 *
 * Return: the map or an ERR_PTR: -EINVAL for an empty device, -EFBIG if
 * the map would need more than U32_MAX blocks, -ENOMEM.
 */
struct cbt_map *cbt_map_create(sector_t capacity)
{
	struct cbt_map *cbt;
	unsigned int shift;
	u64 count;

	if (!capacity)
		return ERR_PTR(-EINVAL);
	shift = cbt_block_shift(capacity);
	count = DIV_ROUND_UP_ULL((u64)capacity << SECTOR_SHIFT, 1ULL << shift);
	if (count > U32_MAX)
		return ERR_PTR(-EFBIG);

	cbt = kzalloc(sizeof(*cbt), GFP_KERNEL);
	if (!cbt)
		return ERR_PTR(-ENOMEM);
	cbt->map = vzalloc(count);
	if (!cbt->map) {
		kfree(cbt);
		return ERR_PTR(-ENOMEM);
	}
	cbt->capacity = capacity;
	cbt->blk_shift = shift;
	cbt->blk_count = count;
	cbt->changes_number = 1;
	uuid_gen(&cbt->generation);
	atomic64_add(cbt_map_memory(cbt), &cbt_memory);
	return cbt;
}

void cbt_map_free(struct cbt_map *cbt)
{
	if (!cbt)
		return;
	cbt_map_release_frozen(cbt);
	atomic64_sub(cbt_map_memory(cbt), &cbt_memory);
	vfree(cbt->map);
	kfree(cbt);
}

/* Memory for a frozen copy, allocated before a take freezes devices. */
u8 *cbt_map_alloc_copy(const struct cbt_map *cbt)
{
	u8 *copy = vmalloc(cbt->blk_count);

	if (copy)
		atomic64_add(PAGE_ALIGN(cbt->blk_count), &cbt_memory);
	return copy;
}

/**
 * cbt_map_switch() - Freeze the map for a snapshot and advance the number.
 * @cbt: The map.
 * @frozen: From cbt_map_alloc_copy().
 *
 * Called while no write reaches the device. Writes from now on carry the
 * next change number, so "changed since the snapshot" is exact. After
 * number 255 the map starts a new generation instead.
 */
void cbt_map_switch(struct cbt_map *cbt, u8 *frozen)
{
	if (cbt->changes_number == U8_MAX) {
		memset(cbt->map, 0, cbt->blk_count);
		uuid_gen(&cbt->generation);
		cbt->changes_number = 1;
	}
	memcpy(frozen, cbt->map, cbt->blk_count);
	cbt->frozen = frozen;
	WRITE_ONCE(cbt->changes_number, cbt->changes_number + 1);
}

void cbt_map_free_copy(const struct cbt_map *cbt, u8 *copy)
{
	if (!copy)
		return;
	vfree(copy);
	atomic64_sub(PAGE_ALIGN(cbt->blk_count), &cbt_memory);
}

void cbt_map_release_frozen(struct cbt_map *cbt)
{
	cbt_map_free_copy(cbt, cbt->frozen);
	cbt->frozen = NULL;
}

/* The tracking blocks a sector range touches, clipped to the map. */
static bool cbt_map_blocks(const struct cbt_map *cbt, sector_t sector,
			   sector_t count, u32 *first, u32 *n)
{
	unsigned int sect_shift = cbt->blk_shift - SECTOR_SHIFT;
	u64 start = sector >> sect_shift;
	u64 last = (sector + count - 1) >> sect_shift;

	if (start >= cbt->blk_count)
		return false;
	last = min_t(u64, last, cbt->blk_count - 1);
	*first = start;
	*n = last - start + 1;
	return true;
}

/**
 * cbt_map_mark() - Record a change of a sector range.
 * @cbt: The map.
 * @sector: First sector changed.
 * @count: Number of sectors changed, not 0.
 *
 * Parts of the range beyond the map (a device that grew since the map was
 * made) are ignored: the next reader resets the map anyway.
 * Safe in atomic context.
 */
void cbt_map_mark(struct cbt_map *cbt, sector_t sector, sector_t count)
{
	u32 first, n;

	if (cbt_map_blocks(cbt, sector, count, &first, &n))
		memset(cbt->map + first, READ_ONCE(cbt->changes_number), n);
}

/*
 * A write to a snapshot image changes what the snapshot holds: the frozen
 * copy records it with the snapshot's own number.
 */
void cbt_map_mark_frozen(struct cbt_map *cbt, sector_t sector, sector_t count)
{
	u32 first, n;

	if (cbt->frozen && cbt_map_blocks(cbt, sector, count, &first, &n))
		memset(cbt->frozen + first,
		       READ_ONCE(cbt->changes_number) - 1, n);
}

/* Kernel memory held by one map: its pages and its descriptor. */
size_t cbt_map_memory(const struct cbt_map *cbt)
{
	return sizeof(*cbt) + PAGE_ALIGN(cbt->blk_count);
}

u64 cbt_map_total_memory(void)
{
	return atomic64_read(&cbt_memory);
}
