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
	atomic64_sub(cbt_map_memory(cbt), &cbt_memory);
	vfree(cbt->map);
	kfree(cbt);
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
	unsigned int sect_shift = cbt->blk_shift - SECTOR_SHIFT;
	u64 first = sector >> sect_shift;
	u64 last = (sector + count - 1) >> sect_shift;

	if (first >= cbt->blk_count)
		return;
	if (last >= cbt->blk_count)
		last = cbt->blk_count - 1;
	memset(cbt->map + first, READ_ONCE(cbt->changes_number),
	       last - first + 1);
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
