/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blksnap-ioctl: drive /dev/blksnap-control directly, for the VM tests and
 * for debugging the module without the service. Users want blksnapctl.
 *
 *   blksnap-ioctl version
 *   blksnap-ioctl attach|detach|info DEV
 *   blksnap-ioctl list
 *   blksnap-ioctl map DEV          print runs of changed blocks:
 *                                  FIRST COUNT CHANGE_NUMBER
 *   blksnap-ioctl map-snapshot DEV the same for the map frozen at the take
 *   blksnap-ioctl changed DEV SINCE
 *                                  print the byte ranges changed since
 *                                  change number SINCE: OFFSET LENGTH
 *   blksnap-ioctl dirty DEV SECTOR COUNT [SECTOR COUNT]...
 *   blksnap-ioctl badargs DEV      feed the module invalid requests on a
 *                                  tracked DEV and check each is refused
 *                                  with the documented errno and changes
 *                                  nothing
 *
 * Snapshots (ID is a UUID, 8-4-4-4-12 or 32 hex digits):
 *   blksnap-ioctl snapshot-create  print the new snapshot's ID
 *   blksnap-ioctl snapshot-add ID DEV
 *   blksnap-ioctl snapshot-append ID DEV SECTOR COUNT [SECTOR COUNT]...
 *   blksnap-ioctl snapshot-append-file ID FILE
 *                                  append the extents of FILE (fallocate it
 *                                  first) on the device holding its file
 *                                  system
 *   blksnap-ioctl extents FILE     print what snapshot-append-file would
 *                                  append: MAJ:MIN SECTOR COUNT
 *   blksnap-ioctl snapshot-take|snapshot-destroy ID
 *   blksnap-ioctl snapshot-take-timed ID
 *                                  take, and print how long the ioctl took
 *                                  in microseconds (for the benchmark)
 *   blksnap-ioctl take-cycle DEV STORE N
 *                                  N times: create a snapshot of DEV with
 *                                  STORE's first MiB as storage, take it,
 *                                  destroy it; print DEV's change number
 *                                  after each (one process for many takes)
 *   blksnap-ioctl snapshot-list    print the IDs, one a line
 *   blksnap-ioctl snapshot-info ID print "KEY VALUE" lines: state, error,
 *                                  storage_sectors, storage_used,
 *                                  device_count, devices
 *   blksnap-ioctl image-info DEV   print "KEY VALUE" lines: image, name,
 *                                  id, error, chunk_size
 *   blksnap-ioctl wait-event ID TIMEOUT_MS
 *                                  print "low-space requested=N free=N" or
 *                                  "corrupted dev=MAJ:MIN error=N"; exit 3
 *                                  if no event came in time, 4 if there is
 *                                  no such snapshot (any more)
 *   blksnap-ioctl snapshot-badargs DEV
 *                                  the same as badargs for the snapshot
 *                                  ioctls, on a tracked scratch DEV in no
 *                                  snapshot; its last 2 MiB serve as
 *                                  difference storage for one take
 *
 * DEV is a block device node or MAJOR:MINOR.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <linux/blksnap.h>
#include <linux/fiemap.h>
#include <linux/fs.h>

#include "bs-cbt.h"

static int ctl_fd = -1;

static int ctl(unsigned long request, void *arg)
{
	return ioctl(ctl_fd, request, arg) ? -errno : 0;
}

static int parse_dev(const char *arg, struct blksnap_bdev *bdev)
{
	unsigned int major, minor;
	struct stat st;
	char tail;

	if (sscanf(arg, "%u:%u%c", &major, &minor, &tail) == 2) {
		bdev->major = major;
		bdev->minor = minor;
		return 0;
	}
	if (stat(arg, &st)) {
		fprintf(stderr, "%s: %s\n", arg, strerror(errno));
		return -1;
	}
	if (!S_ISBLK(st.st_mode)) {
		fprintf(stderr, "%s: not a block device\n", arg);
		return -1;
	}
	bdev->major = major(st.st_rdev);
	bdev->minor = minor(st.st_rdev);
	return 0;
}

static int report(const char *what, int ret)
{
	if (ret)
		fprintf(stderr, "%s: %s\n", what, strerror(-ret));
	return ret ? 1 : 0;
}

static int cmd_version(void)
{
	struct blksnap_version v;
	int ret = ctl(IOCTL_BLKSNAP_VERSION, &v);

	if (!ret)
		printf("%u.%u.%u.%u\n", v.major, v.minor, v.revision, v.build);
	return report("version", ret);
}

static int cmd_list(void)
{
	struct blksnap_bdev devs[BLKSNAP_MAX_LIST];
	struct blksnap_tracker_list list = {
		.count = BLKSNAP_MAX_LIST,
		.devices = (uintptr_t)devs,
	};
	int ret = ctl(IOCTL_BLKSNAP_TRACKER_LIST, &list);

	for (unsigned int i = 0; !ret && i < list.count; i++)
		printf("%u:%u\n", devs[i].major, devs[i].minor);
	return report("list", ret);
}

static int get_info(const struct blksnap_bdev *bdev,
		    struct blksnap_cbt_info *info)
{
	memset(info, 0, sizeof(*info));
	info->dev = *bdev;
	return ctl(IOCTL_BLKSNAP_CBT_INFO, info);
}

static int cmd_info(const struct blksnap_bdev *bdev)
{
	struct blksnap_cbt_info info;
	int ret = get_info(bdev, &info);

	if (ret)
		return report("info", ret);
	printf("capacity %" PRIu64 "\n", (uint64_t)info.device_capacity);
	printf("block_size %u\n", info.block_size);
	printf("block_count %u\n", info.block_count);
	printf("generation ");
	for (int i = 0; i < BLKSNAP_UUID_SIZE; i++)
		printf("%02x", info.generation_id[i]);
	printf("\nchanges_number %u\n", info.changes_number);
	return 0;
}

static int read_map(const struct blksnap_bdev *bdev, uint32_t flags,
		    uint8_t **map, uint32_t *count)
{
	struct blksnap_cbt_info info;
	struct blksnap_cbt_map req = { .dev = *bdev, .flags = flags };
	int ret = get_info(bdev, &info);

	if (ret)
		return ret;
	*map = malloc(info.block_count);
	if (!*map)
		return -ENOMEM;
	req.length = info.block_count;
	req.buffer = (uintptr_t)*map;
	ret = ctl(IOCTL_BLKSNAP_CBT_MAP, &req);
	if (ret) {
		free(*map);
		return ret;
	}
	*count = info.block_count;
	return 0;
}

static int cmd_map(const struct blksnap_bdev *bdev, uint32_t flags)
{
	uint32_t count, i = 0;
	uint8_t *map;
	int ret = read_map(bdev, flags, &map, &count);

	if (ret)
		return report("map", ret);
	while (i < count) {
		uint32_t first = i;

		while (i < count && map[i] == map[first])
			i++;
		if (map[first])
			printf("%u %u %u\n", first, i - first, map[first]);
	}
	free(map);
	return 0;
}

static int cmd_changed(const struct blksnap_bdev *bdev, const char *since)
{
	struct blksnap_cbt_info info;
	GArray *ranges;
	uint32_t count;
	uint8_t *map;
	int ret = get_info(bdev, &info);

	if (!ret)
		ret = read_map(bdev, 0, &map, &count);
	if (ret)
		return report("changed", ret);
	ranges = bs_cbt_changed_ranges(map, count, info.block_size,
				       info.device_capacity * 512,
				       (guint8)strtoul(since, NULL, 0));
	for (unsigned int i = 0; i < ranges->len; i++) {
		BsRange *r = &g_array_index(ranges, BsRange, i);

		printf("%" PRIu64 " %" PRIu64 "\n", (uint64_t)r->offset,
		       (uint64_t)r->length);
	}
	g_array_unref(ranges);
	free(map);
	return 0;
}

static int cmd_dirty(const struct blksnap_bdev *bdev, int argc, char **argv)
{
	unsigned int n = argc / 2;
	struct blksnap_sectors *ranges = calloc(n, sizeof(*ranges));
	struct blksnap_cbt_dirty req = {
		.dev = *bdev,
		.count = n,
		.ranges = (uintptr_t)ranges,
	};
	int ret;

	if (!ranges || argc % 2 || !n) {
		fprintf(stderr, "dirty: give SECTOR COUNT pairs\n");
		free(ranges);
		return 2;
	}
	for (unsigned int i = 0; i < n; i++) {
		ranges[i].offset = strtoull(argv[2 * i], NULL, 0);
		ranges[i].count = strtoull(argv[2 * i + 1], NULL, 0);
	}
	ret = ctl(IOCTL_BLKSNAP_CBT_DIRTY, &req);
	free(ranges);
	return report("dirty", ret);
}

/* One bad request: it must fail with @expected. */
static int expect(const char *what, unsigned long request, void *arg,
		  int expected)
{
	int ret = ctl(request, arg);

	if (ret == -expected) {
		printf("ok: %s -> %s\n", what, strerror(expected));
		return 0;
	}
	printf("FAIL: %s -> %s, expected %s\n", what,
	       ret ? strerror(-ret) : "success", strerror(expected));
	return 1;
}

static int badargs_tracker(const struct blksnap_bdev *bdev)
{
	struct blksnap_bdev nodev = { .major = 4095, .minor = 1048575 };
	struct blksnap_bdev huge = { .major = 0xffffffff, .minor = 1 };
	struct blksnap_bdev dup = *bdev;
	struct blksnap_tracker_list list = { .count = 1, .devices = 0 };
	struct blksnap_tracker_list many = { .count = BLKSNAP_MAX_LIST + 1 };
	struct blksnap_tracker_list resv = { .count = 1, .reserved = 1 };
	int failed = 0;

	failed += expect("attach nonexistent device", IOCTL_BLKSNAP_TRACKER_ATTACH,
			 &nodev, ENODEV);
	failed += expect("attach out-of-range major", IOCTL_BLKSNAP_TRACKER_ATTACH,
			 &huge, EINVAL);
	failed += expect("attach twice", IOCTL_BLKSNAP_TRACKER_ATTACH, &dup,
			 EALREADY);
	failed += expect("detach untracked", IOCTL_BLKSNAP_TRACKER_DETACH,
			 &nodev, ENOENT);
	failed += expect("attach null pointer", IOCTL_BLKSNAP_TRACKER_ATTACH,
			 NULL, EFAULT);
	failed += expect("list into null array", IOCTL_BLKSNAP_TRACKER_LIST,
			 &list, EFAULT);
	failed += expect("list absurd count", IOCTL_BLKSNAP_TRACKER_LIST,
			 &many, EINVAL);
	failed += expect("list reserved field", IOCTL_BLKSNAP_TRACKER_LIST,
			 &resv, EINVAL);
	failed += expect("unknown ioctl", _IO(BLKSNAP_IOCTL_MAGIC, 200), NULL,
			 ENOTTY);
	list.count = 0;
	failed += expect("list into too small array", IOCTL_BLKSNAP_TRACKER_LIST,
			 &list, ENOBUFS);
	if (list.count < 1) {
		printf("FAIL: ENOBUFS did not report the count needed\n");
		failed++;
	}
	return failed;
}

static int badargs_cbt(const struct blksnap_bdev *bdev,
		       const struct blksnap_cbt_info *info)
{
	uint8_t byte;
	struct blksnap_cbt_info noinfo = { .dev = { 4095, 1048575 } };
	struct blksnap_cbt_map past = {
		.dev = *bdev, .offset = info->block_count, .length = 1,
		.buffer = (uintptr_t)&byte,
	};
	struct blksnap_cbt_map wrap = {
		.dev = *bdev, .offset = 1, .length = UINT32_MAX,
		.buffer = (uintptr_t)&byte,
	};
	struct blksnap_cbt_map empty = {
		.dev = *bdev, .length = 0, .buffer = (uintptr_t)&byte,
	};
	struct blksnap_cbt_map nullbuf = { .dev = *bdev, .length = 1 };
	struct blksnap_sectors beyond = {
		.offset = info->device_capacity - 1, .count = 2,
	};
	struct blksnap_sectors zero = { .offset = 0, .count = 0 };
	struct blksnap_sectors overflow = { .offset = 8, .count = UINT64_MAX };
	struct blksnap_cbt_dirty d_beyond = {
		.dev = *bdev, .count = 1, .ranges = (uintptr_t)&beyond,
	};
	struct blksnap_cbt_dirty d_zero = {
		.dev = *bdev, .count = 1, .ranges = (uintptr_t)&zero,
	};
	struct blksnap_cbt_dirty d_overflow = {
		.dev = *bdev, .count = 1, .ranges = (uintptr_t)&overflow,
	};
	struct blksnap_cbt_dirty d_none = { .dev = *bdev, .count = 0 };
	struct blksnap_cbt_dirty d_many = {
		.dev = *bdev, .count = BLKSNAP_MAX_DIRTY_RANGES + 1,
		.ranges = (uintptr_t)&zero,
	};
	struct blksnap_cbt_dirty d_null = { .dev = *bdev, .count = 16 };
	int failed = 0;

	failed += expect("info untracked", IOCTL_BLKSNAP_CBT_INFO, &noinfo,
			 ENOENT);
	failed += expect("map past the end", IOCTL_BLKSNAP_CBT_MAP, &past,
			 EINVAL);
	failed += expect("map offset+length wraps", IOCTL_BLKSNAP_CBT_MAP,
			 &wrap, EINVAL);
	failed += expect("map zero length", IOCTL_BLKSNAP_CBT_MAP, &empty,
			 EINVAL);
	failed += expect("map null buffer", IOCTL_BLKSNAP_CBT_MAP, &nullbuf,
			 EFAULT);
	failed += expect("dirty beyond device", IOCTL_BLKSNAP_CBT_DIRTY,
			 &d_beyond, EINVAL);
	failed += expect("dirty empty range", IOCTL_BLKSNAP_CBT_DIRTY,
			 &d_zero, EINVAL);
	failed += expect("dirty range overflows", IOCTL_BLKSNAP_CBT_DIRTY,
			 &d_overflow, EINVAL);
	failed += expect("dirty no ranges", IOCTL_BLKSNAP_CBT_DIRTY, &d_none,
			 EINVAL);
	failed += expect("dirty absurd count", IOCTL_BLKSNAP_CBT_DIRTY,
			 &d_many, EINVAL);
	failed += expect("dirty null ranges", IOCTL_BLKSNAP_CBT_DIRTY,
			 &d_null, EFAULT);
	return failed;
}

static int cmd_badargs(const struct blksnap_bdev *bdev)
{
	struct blksnap_cbt_info before, after;
	uint8_t *map_before, *map_after;
	uint32_t count;
	int failed;

	if (report("info", get_info(bdev, &before)) ||
	    report("map", read_map(bdev, 0, &map_before, &count)))
		return 1;

	failed = badargs_tracker(bdev) + badargs_cbt(bdev, &before);

	if (report("info", get_info(bdev, &after)) ||
	    report("map", read_map(bdev, 0, &map_after, &count)))
		return 1;
	if (memcmp(&before, &after, sizeof(before)) ||
	    memcmp(map_before, map_after, count)) {
		printf("FAIL: rejected requests changed the CBT state\n");
		failed++;
	}
	free(map_before);
	free(map_after);
	printf("%d bad request(s) not refused as documented\n", failed);
	return failed ? 1 : 0;
}

/* -------------------------------------------------------------- snapshots */

#define UUID_STR_LEN	37

static void format_uuid(const struct blksnap_uuid *id, char *buf)
{
	int pos = 0;

	for (int i = 0; i < BLKSNAP_UUID_SIZE; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			buf[pos++] = '-';
		pos += sprintf(buf + pos, "%02x", id->b[i]);
	}
}

static int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 8-4-4-4-12 or 32 hex digits. */
static int parse_uuid(const char *arg, struct blksnap_uuid *id)
{
	size_t len = strlen(arg);
	int n = 0;

	if (len != 32 && len != 36)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		int v;

		if (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
			if (arg[i] != '-')
				goto bad;
			continue;
		}
		v = hex_digit(arg[i]);
		if (v < 0)
			goto bad;
		if (n % 2)
			id->b[n / 2] |= v;
		else
			id->b[n / 2] = v << 4;
		n++;
	}
	return 0;
bad:
	fprintf(stderr, "%s: not a snapshot ID (UUID)\n", arg);
	return -1;
}

static void print_uuid(const char *key, const struct blksnap_uuid *id)
{
	char buf[UUID_STR_LEN];

	format_uuid(id, buf);
	if (key)
		printf("%s %s\n", key, buf);
	else
		printf("%s\n", buf);
}

static const char *state_name(uint32_t state)
{
	switch (state) {
	case BLKSNAP_SNAPSHOT_CREATED:
		return "created";
	case BLKSNAP_SNAPSHOT_TAKEN:
		return "taken";
	case BLKSNAP_SNAPSHOT_CORRUPTED:
		return "corrupted";
	}
	return "unknown";
}

static int cmd_snapshot_take_timed(struct blksnap_uuid *id)
{
	struct timespec t0, t1;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = ctl(IOCTL_BLKSNAP_SNAPSHOT_TAKE, id);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ret)
		return report("snapshot-take", ret);
	printf("%lld\n", (t1.tv_sec - t0.tv_sec) * 1000000LL +
			  (t1.tv_nsec - t0.tv_nsec) / 1000);
	return 0;
}

static int cmd_snapshot_create(void)
{
	struct blksnap_uuid id;
	int ret = ctl(IOCTL_BLKSNAP_SNAPSHOT_CREATE, &id);

	if (!ret)
		print_uuid(NULL, &id);
	return report("snapshot-create", ret);
}

static int snapshot_add(const struct blksnap_uuid *id,
			const struct blksnap_bdev *bdev)
{
	struct blksnap_snapshot_device req = { .id = *id, .dev = *bdev };

	return ctl(IOCTL_BLKSNAP_SNAPSHOT_ADD_DEVICE, &req);
}

/* The snapshots' IDs, in *ids (to be freed). */
static int get_snapshot_list(struct blksnap_uuid **ids, uint32_t *count)
{
	struct blksnap_snapshot_list list = { .count = BLKSNAP_MAX_LIST };
	int ret;

	*count = 0;
	*ids = calloc(BLKSNAP_MAX_LIST, sizeof(**ids));
	if (!*ids)
		return -ENOMEM;
	list.ids = (uintptr_t)*ids;
	ret = ctl(IOCTL_BLKSNAP_SNAPSHOT_LIST, &list);
	*count = ret ? 0 : list.count;
	return ret;
}

static int cmd_snapshot_list(void)
{
	struct blksnap_uuid *ids;
	uint32_t count;
	int ret = get_snapshot_list(&ids, &count);

	for (uint32_t i = 0; i < count; i++)
		print_uuid(NULL, &ids[i]);
	free(ids);
	return report("snapshot-list", ret);
}

/*
 * State of snapshot @id. With @devs, *devs gets its devices (to be freed,
 * NULL if none): learn the count, then fetch, again if one was added in
 * between.
 */
static int get_snapshot(const struct blksnap_uuid *id,
			struct blksnap_snapshot_info *info,
			struct blksnap_bdev **devs)
{
	struct blksnap_bdev *buf = NULL;
	uint32_t cap;
	int ret;

	memset(info, 0, sizeof(*info));
	info->id = *id;
	ret = ctl(IOCTL_BLKSNAP_SNAPSHOT_INFO, info);
	if (!devs || ret)
		return ret;
	do {
		cap = info->device_count;
		free(buf);
		buf = calloc(cap + 1, sizeof(*buf));
		if (!buf)
			return -ENOMEM;
		memset(info, 0, sizeof(*info));
		info->id = *id;
		info->device_count = cap;
		info->devices = (uintptr_t)buf;
		ret = ctl(IOCTL_BLKSNAP_SNAPSHOT_INFO, info);
	} while (ret == -ENOBUFS);
	if (ret)
		free(buf);
	else
		*devs = buf;
	return ret;
}

static int cmd_snapshot_info(const struct blksnap_uuid *id)
{
	struct blksnap_snapshot_info info;
	struct blksnap_bdev *devs = NULL;
	int ret = get_snapshot(id, &info, &devs);

	if (ret)
		return report("snapshot-info", ret);
	printf("state %s\n", state_name(info.state));
	printf("error %d\n", info.error);
	printf("storage_sectors %" PRIu64 "\n", (uint64_t)info.storage_sectors);
	printf("storage_used %" PRIu64 "\n", (uint64_t)info.storage_used);
	printf("device_count %u\n", info.device_count);
	printf("devices");
	for (uint32_t i = 0; i < info.device_count; i++)
		printf(" %u:%u", devs[i].major, devs[i].minor);
	printf("\n");
	free(devs);
	return 0;
}

/* Append @count ranges of @bdev, in as few requests as the limit allows. */
static int append_storage(const struct blksnap_uuid *id,
			  const struct blksnap_bdev *bdev,
			  const struct blksnap_sectors *ranges, size_t count)
{
	while (count) {
		size_t n = count < BLKSNAP_MAX_STORAGE_RANGES ?
			   count : BLKSNAP_MAX_STORAGE_RANGES;
		struct blksnap_snapshot_append_storage req = {
			.id = *id,
			.dev = *bdev,
			.count = n,
			.ranges = (uintptr_t)ranges,
		};
		int ret = ctl(IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE, &req);

		if (ret)
			return ret;
		ranges += n;
		count -= n;
	}
	return 0;
}

static int cmd_snapshot_append(const struct blksnap_uuid *id, int argc,
			       char **argv)
{
	struct blksnap_bdev bdev;
	struct blksnap_sectors *ranges;
	unsigned int n = (argc - 1) / 2;
	int ret;

	if (argc < 3 || argc % 2 == 0) {
		fprintf(stderr, "snapshot-append: give DEV and SECTOR COUNT pairs\n");
		return 2;
	}
	if (parse_dev(argv[0], &bdev))
		return 1;
	ranges = calloc(n, sizeof(*ranges));
	if (!ranges)
		return report("snapshot-append", -ENOMEM);
	for (unsigned int i = 0; i < n; i++) {
		ranges[i].offset = strtoull(argv[1 + 2 * i], NULL, 0);
		ranges[i].count = strtoull(argv[2 + 2 * i], NULL, 0);
	}
	ret = append_storage(id, &bdev, ranges, n);
	free(ranges);
	return report("snapshot-append", ret);
}

/* One snapshot of @dev taken and destroyed. */
static int take_once(const struct blksnap_bdev *dev,
		     const struct blksnap_bdev *store)
{
	struct blksnap_sectors range = { .offset = 0, .count = 2048 };
	struct blksnap_uuid id;
	int ret, ret2;

	ret = ctl(IOCTL_BLKSNAP_SNAPSHOT_CREATE, &id);
	if (ret)
		return report("snapshot-create", ret);
	ret = report("snapshot-add", snapshot_add(&id, dev));
	if (!ret)
		ret = report("snapshot-append", append_storage(&id, store, &range, 1));
	if (!ret)
		ret = report("snapshot-take", ctl(IOCTL_BLKSNAP_SNAPSHOT_TAKE, &id));
	ret2 = report("snapshot-destroy", ctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &id));
	return ret ? ret : ret2;
}

static int cmd_take_cycle(const char *dev_arg, const char *store_arg,
			  const char *count_arg)
{
	struct blksnap_bdev dev, store;
	struct blksnap_cbt_info info;
	long n = strtol(count_arg, NULL, 0);

	if (parse_dev(dev_arg, &dev) || parse_dev(store_arg, &store) || n < 0)
		return 2;
	while (n--) {
		if (take_once(&dev, &store) ||
		    report("info", get_info(&dev, &info)))
			return 1;
		printf("%u\n", info.changes_number);
	}
	return 0;
}

/*
 * Extent flags that make an extent unusable as raw storage: its data is
 * not (only) at fe_physical, is shared with another file, or its place is
 * not decided yet. Unwritten (fallocated) extents are what we want;
 * merged and last say nothing about the data. Any other flag is unknown.
 */
#define FIEMAP_FLAGS_OK		(FIEMAP_EXTENT_LAST | FIEMAP_EXTENT_UNWRITTEN | \
				 FIEMAP_EXTENT_MERGED)
#define FIEMAP_BATCH		512

static int add_extent(const struct fiemap_extent *e, struct blksnap_sectors **ranges,
		      size_t *count, size_t *cap)
{
	uint64_t sector = e->fe_physical / 512, n = e->fe_length / 512;
	struct blksnap_sectors *last = *count ? &(*ranges)[*count - 1] : NULL;

	if (e->fe_flags & ~(uint32_t)FIEMAP_FLAGS_OK) {
		fprintf(stderr, "extent at file offset %llu has flags 0x%x: not "
			"plain blocks on the device\n",
			(unsigned long long)e->fe_logical, e->fe_flags);
		return -EINVAL;
	}
	if (e->fe_physical % 512 || e->fe_length % 512 || !n) {
		fprintf(stderr, "extent at file offset %llu is not whole sectors\n",
			(unsigned long long)e->fe_logical);
		return -EINVAL;
	}
	if (last && last->offset + last->count == sector) {
		last->count += n;
		return 0;
	}
	if (*count == *cap) {
		struct blksnap_sectors *bigger;

		*cap = *cap ? *cap * 2 : 64;
		bigger = realloc(*ranges, *cap * sizeof(**ranges));
		if (!bigger)
			return -ENOMEM;
		*ranges = bigger;
	}
	(*ranges)[(*count)++] = (struct blksnap_sectors){ sector, n };
	return 0;
}

/* The extents of the file @fd as sector ranges of its device, merged. */
static int file_ranges(int fd, struct blksnap_sectors **ranges, size_t *count)
{
	size_t size = sizeof(struct fiemap) +
		      FIEMAP_BATCH * sizeof(struct fiemap_extent);
	struct fiemap *fm = malloc(size);
	uint64_t start = 0;
	size_t cap = 0;
	bool last = false;
	int ret = 0;

	*ranges = NULL;
	*count = 0;
	if (!fm)
		return -ENOMEM;
	while (!last && !ret) {
		memset(fm, 0, size);
		fm->fm_start = start;
		fm->fm_length = FIEMAP_MAX_OFFSET - start;
		fm->fm_flags = FIEMAP_FLAG_SYNC;
		fm->fm_extent_count = FIEMAP_BATCH;
		if (ioctl(fd, FS_IOC_FIEMAP, fm)) {
			ret = -errno;
			break;
		}
		if (!fm->fm_mapped_extents)
			break;
		for (uint32_t i = 0; i < fm->fm_mapped_extents && !ret; i++) {
			struct fiemap_extent *e = &fm->fm_extents[i];

			ret = add_extent(e, ranges, count, &cap);
			start = e->fe_logical + e->fe_length;
			last = e->fe_flags & FIEMAP_EXTENT_LAST;
		}
	}
	free(fm);
	if (ret) {
		free(*ranges);
		*ranges = NULL;
	}
	return ret;
}

/*
 * The extents of the regular file @path as ranges of the block device its
 * file system is on (*bdev); *ranges is to be freed.
 */
static int file_storage(const char *path, struct blksnap_bdev *bdev,
			struct blksnap_sectors **ranges, size_t *count)
{
	char sysfs[64];
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "%s: not a regular file\n", path);
		close(fd);
		return -1;
	}
	/* st_dev of btrfs, tmpfs, NFS... is no block device to write to. */
	bdev->major = major(st.st_dev);
	bdev->minor = minor(st.st_dev);
	snprintf(sysfs, sizeof(sysfs), "/sys/dev/block/%u:%u", bdev->major,
		 bdev->minor);
	if (access(sysfs, F_OK)) {
		fprintf(stderr, "%s: its file system is not on a block device "
			"(%u:%u)\n", path, bdev->major, bdev->minor);
		close(fd);
		return -1;
	}
	ret = file_ranges(fd, ranges, count);
	close(fd);
	if (ret) {
		report("fiemap", ret);
		return -1;
	}
	if (!*count) {
		fprintf(stderr, "%s: no extents (fallocate it first)\n", path);
		free(*ranges);
		return -1;
	}
	return 0;
}

static int cmd_snapshot_append_file(const struct blksnap_uuid *id,
				    const char *path)
{
	struct blksnap_sectors *ranges;
	struct blksnap_bdev bdev;
	uint64_t sectors = 0;
	size_t count;
	int ret;

	if (file_storage(path, &bdev, &ranges, &count))
		return 1;
	for (size_t i = 0; i < count; i++)
		sectors += ranges[i].count;
	ret = append_storage(id, &bdev, ranges, count);
	if (!ret)
		printf("appended %zu ranges, %" PRIu64 " sectors of %u:%u\n",
		       count, sectors, bdev.major, bdev.minor);
	free(ranges);
	return report("snapshot-append-file", ret);
}

/* What snapshot-append-file would append: "MAJ:MIN SECTOR COUNT" lines. */
static int cmd_extents(const char *path)
{
	struct blksnap_sectors *ranges;
	struct blksnap_bdev bdev;
	size_t count;

	if (file_storage(path, &bdev, &ranges, &count))
		return 1;
	for (size_t i = 0; i < count; i++)
		printf("%u:%u %" PRIu64 " %" PRIu64 "\n", bdev.major,
		       bdev.minor, (uint64_t)ranges[i].offset,
		       (uint64_t)ranges[i].count);
	free(ranges);
	return 0;
}

static int get_image(const struct blksnap_bdev *bdev,
		     struct blksnap_image_info *info)
{
	memset(info, 0, sizeof(*info));
	info->dev = *bdev;
	return ctl(IOCTL_BLKSNAP_IMAGE_INFO, info);
}

static int cmd_image_info(const struct blksnap_bdev *bdev)
{
	struct blksnap_image_info info;
	int ret = get_image(bdev, &info);

	if (ret)
		return report("image-info", ret);
	printf("image %u:%u\n", info.image.major, info.image.minor);
	printf("name %.*s\n", BLKSNAP_IMAGE_NAME_LEN, info.name);
	print_uuid("id", &info.id);
	printf("error %d\n", info.error);
	printf("chunk_size %u\n", info.chunk_size);
	return 0;
}

static int cmd_wait_event(const struct blksnap_uuid *id, const char *timeout)
{
	struct blksnap_snapshot_event ev = {
		.id = *id,
		.timeout_ms = strtoul(timeout, NULL, 0),
	};
	int ret = ctl(IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, &ev);

	if (ret == -ETIMEDOUT)
		return 3;
	if (ret == -ESRCH) {
		fprintf(stderr, "wait-event: no such snapshot\n");
		return 4;
	}
	if (ret)
		return report("wait-event", ret);
	switch (ev.code) {
	case BLKSNAP_EVENT_LOW_FREE_SPACE:
		printf("low-space requested=%" PRIu64 " free=%" PRIu64 "\n",
		       (uint64_t)ev.low_space.requested_sectors,
		       (uint64_t)ev.low_space.free_sectors);
		break;
	case BLKSNAP_EVENT_CORRUPTED:
		printf("corrupted dev=%u:%u error=%d\n",
		       ev.corrupted.dev.major, ev.corrupted.dev.minor,
		       ev.corrupted.error);
		break;
	default:
		printf("unknown code=0x%x\n", ev.code);
		break;
	}
	return 0;
}

/* ------------------------------------------------- snapshot bad arguments */

static int must(bool ok, const char *what)
{
	printf("%s: %s\n", ok ? "ok" : "FAIL", what);
	return ok ? 0 : 1;
}

/* What a refused request must leave as it was. */
struct snap_sum {
	int ret;
	uint32_t state;
	int32_t error;
	uint32_t device_count;
	uint64_t storage_sectors;
};

static void snap_sum(const struct blksnap_uuid *id, struct snap_sum *sum)
{
	struct blksnap_snapshot_info info;

	memset(sum, 0, sizeof(*sum));
	sum->ret = get_snapshot(id, &info, NULL);
	sum->state = info.state;
	sum->error = info.error;
	sum->device_count = info.device_count;
	sum->storage_sectors = info.storage_sectors;
}

/* A bad request about snapshot @id: refused with @expected, @id intact. */
static int expect_snap(const char *what, unsigned long request, void *arg,
		       int expected, const struct blksnap_uuid *id)
{
	struct snap_sum before, after;
	int failed;

	snap_sum(id, &before);
	failed = expect(what, request, arg, expected);
	snap_sum(id, &after);
	if (memcmp(&before, &after, sizeof(before))) {
		printf("FAIL: %s changed the snapshot\n", what);
		failed++;
	}
	return failed;
}

static uint64_t storage_of(const struct blksnap_uuid *id)
{
	struct snap_sum sum;

	snap_sum(id, &sum);
	return sum.storage_sectors;
}

static bool listed(const struct blksnap_uuid *id)
{
	struct blksnap_uuid *ids;
	uint32_t count;
	bool found = false;

	get_snapshot_list(&ids, &count);
	for (uint32_t i = 0; i < count && !found; i++)
		found = !memcmp(&ids[i], id, sizeof(*id));
	free(ids);
	return found;
}

static int badargs_unknown_id(const struct blksnap_uuid *unknown,
			      const struct blksnap_bdev *bdev)
{
	struct blksnap_sectors range = { .offset = 0, .count = 8 };
	struct blksnap_snapshot_device add = { .id = *unknown, .dev = *bdev };
	struct blksnap_snapshot_append_storage app = {
		.id = *unknown, .dev = *bdev, .count = 1,
		.ranges = (uintptr_t)&range,
	};
	struct blksnap_uuid id = *unknown;
	struct blksnap_snapshot_info info = { .id = *unknown };
	struct blksnap_snapshot_event ev = { .id = *unknown };
	int failed = 0;

	failed += expect("add to unknown snapshot",
			 IOCTL_BLKSNAP_SNAPSHOT_ADD_DEVICE, &add, ESRCH);
	failed += expect("append to unknown snapshot",
			 IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE, &app, ESRCH);
	failed += expect("take unknown snapshot", IOCTL_BLKSNAP_SNAPSHOT_TAKE,
			 &id, ESRCH);
	failed += expect("destroy unknown snapshot",
			 IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &id, ESRCH);
	failed += expect("info of unknown snapshot",
			 IOCTL_BLKSNAP_SNAPSHOT_INFO, &info, ESRCH);
	failed += expect("wait for event of unknown snapshot",
			 IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, &ev, ESRCH);
	ev.timeout_ms = 100;
	failed += expect("wait 100 ms for event of unknown snapshot",
			 IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, &ev, ESRCH);
	return failed;
}

/* @a holds no device yet, @b neither; @bdev is tracked. */
static int badargs_add(const struct blksnap_uuid *a,
		       const struct blksnap_uuid *b,
		       const struct blksnap_bdev *bdev)
{
	struct blksnap_snapshot_device untracked = {
		.id = *a, .dev = { 4095, 1048575 },
	};
	struct blksnap_snapshot_device again = { .id = *a, .dev = *bdev };
	struct blksnap_snapshot_device other = { .id = *b, .dev = *bdev };
	int failed = 0;

	failed += expect_snap("add untracked device",
			      IOCTL_BLKSNAP_SNAPSHOT_ADD_DEVICE, &untracked,
			      ENOENT, a);
	failed += expect_snap("add with null pointer",
			      IOCTL_BLKSNAP_SNAPSHOT_ADD_DEVICE, NULL, EFAULT, a);
	failed += must(!snapshot_add(a, bdev), "add tracked device");
	failed += expect_snap("add the same device twice",
			      IOCTL_BLKSNAP_SNAPSHOT_ADD_DEVICE, &again,
			      EALREADY, a);
	failed += expect_snap("add a device of another snapshot",
			      IOCTL_BLKSNAP_SNAPSHOT_ADD_DEVICE, &other, EBUSY, b);
	return failed;
}

/* One append request of @n ranges that must be refused with @expected. */
static int bad_append(const char *what, const struct blksnap_uuid *id,
		      const struct blksnap_bdev *bdev,
		      const struct blksnap_sectors *ranges, uint32_t n,
		      int expected)
{
	struct blksnap_snapshot_append_storage req = {
		.id = *id, .dev = *bdev, .count = n,
		.ranges = (uintptr_t)ranges,
	};

	return expect_snap(what, IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE, &req,
			   expected, id);
}

/* Storage: the last MiB of @bdev, [@base, @base + 2048). */
static int badargs_append(const struct blksnap_uuid *a,
			  const struct blksnap_bdev *bdev, uint64_t capacity)
{
	uint64_t base = capacity - 2048;
	struct blksnap_bdev nodev = { 4095, 1048575 };
	struct blksnap_sectors good = { base, 1024 };
	struct blksnap_sectors r[2];
	struct blksnap_snapshot_append_storage resv = {
		.id = *a, .dev = *bdev, .count = 1, .reserved = 1,
		.ranges = (uintptr_t)&good,
	};
	int failed = 0;

	failed += bad_append("append zero ranges", a, bdev, &good, 0, EINVAL);
	failed += bad_append("append too many ranges", a, bdev, &good,
			     BLKSNAP_MAX_STORAGE_RANGES + 1, EINVAL);
	failed += expect_snap("append with reserved field set",
			      IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE, &resv,
			      EINVAL, a);
	r[0] = (struct blksnap_sectors){ base, 0 };
	failed += bad_append("append empty range", a, bdev, r, 1, EINVAL);
	r[0] = (struct blksnap_sectors){ capacity - 1, 2 };
	failed += bad_append("append range across the end", a, bdev, r, 1, EINVAL);
	r[0] = (struct blksnap_sectors){ capacity, 1 };
	failed += bad_append("append range past the end", a, bdev, r, 1, EINVAL);
	r[0] = (struct blksnap_sectors){ 8, UINT64_MAX };
	failed += bad_append("append range that wraps", a, bdev, r, 1, EINVAL);
	r[0] = (struct blksnap_sectors){ base, 64 };
	r[1] = (struct blksnap_sectors){ base + 32, 64 };
	failed += bad_append("append overlapping ranges", a, bdev, r, 2, EINVAL);
	r[0] = (struct blksnap_sectors){ base + 32, 64 };
	r[1] = (struct blksnap_sectors){ base, 64 };
	failed += bad_append("append overlapping ranges, reversed", a, bdev, r,
			     2, EINVAL);
	r[0] = r[1] = (struct blksnap_sectors){ base, 8 };
	failed += bad_append("append the same range twice", a, bdev, r, 2, EINVAL);
	r[0] = good;
	r[1] = (struct blksnap_sectors){ capacity, 8 };
	failed += bad_append("append a good and a bad range", a, bdev, r, 2,
			     EINVAL);
	failed += bad_append("append null ranges", a, bdev, NULL, 4, EFAULT);
	r[0] = (struct blksnap_sectors){ 0, 8 };
	failed += bad_append("append on nonexistent device", a, &nodev, r, 1,
			     ENODEV);
	failed += expect_snap("append with null pointer",
			      IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE, NULL,
			      EFAULT, a);

	failed += must(!append_storage(a, bdev, &good, 1) &&
		       storage_of(a) == good.count, "append a good range");
	r[0] = (struct blksnap_sectors){ base + 512, 1024 };
	failed += bad_append("append range overlapping an earlier one", a,
			     bdev, r, 1, EINVAL);
	r[0] = (struct blksnap_sectors){ base + 1, 1 };
	failed += bad_append("append range inside an earlier one", a, bdev, r,
			     1, EINVAL);
	r[0] = (struct blksnap_sectors){ base + 1024, 1024 };
	failed += must(!append_storage(a, bdev, r, 1) && storage_of(a) == 2048,
		       "append an adjacent range");
	return failed;
}

/* @need: at least how many snapshots exist. */
static int badargs_list(uint32_t need)
{
	struct blksnap_uuid one;
	struct blksnap_snapshot_list resv = {
		.count = 1, .reserved = 1, .ids = (uintptr_t)&one,
	};
	struct blksnap_snapshot_list many = {
		.count = BLKSNAP_MAX_LIST + 1, .ids = (uintptr_t)&one,
	};
	struct blksnap_snapshot_list small = { .count = 1, .ids = (uintptr_t)&one };
	struct blksnap_snapshot_list null = { .count = BLKSNAP_MAX_LIST };
	int failed = 0;

	failed += expect("list with reserved field set",
			 IOCTL_BLKSNAP_SNAPSHOT_LIST, &resv, EINVAL);
	failed += expect("list absurd count", IOCTL_BLKSNAP_SNAPSHOT_LIST,
			 &many, EINVAL);
	failed += expect("list into too small array",
			 IOCTL_BLKSNAP_SNAPSHOT_LIST, &small, ENOBUFS);
	failed += must(small.count >= need, "ENOBUFS reports the count needed");
	failed += expect("list into null array", IOCTL_BLKSNAP_SNAPSHOT_LIST,
			 &null, EFAULT);
	failed += expect("list with null pointer", IOCTL_BLKSNAP_SNAPSHOT_LIST,
			 NULL, EFAULT);
	return failed;
}

/* @a has one device. */
static int badargs_info(const struct blksnap_uuid *a)
{
	struct blksnap_bdev dev;
	struct blksnap_snapshot_info resv = { .id = *a, .reserved = 1 };
	struct blksnap_snapshot_info small = {
		.id = *a, .device_count = 0, .devices = (uintptr_t)&dev,
	};
	struct blksnap_snapshot_info bad = {
		.id = *a, .device_count = 4, .devices = 8,
	};
	int failed = 0;

	failed += expect("info with reserved field set",
			 IOCTL_BLKSNAP_SNAPSHOT_INFO, &resv, EINVAL);
	failed += expect("info into too small device array",
			 IOCTL_BLKSNAP_SNAPSHOT_INFO, &small, ENOBUFS);
	failed += must(small.device_count == 1,
		       "ENOBUFS reports the device count");
	failed += expect("info into bad device array",
			 IOCTL_BLKSNAP_SNAPSHOT_INFO, &bad, EFAULT);
	failed += expect("info with null pointer", IOCTL_BLKSNAP_SNAPSHOT_INFO,
			 NULL, EFAULT);
	return failed;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/* @b: a snapshot that has nothing to report. */
static int badargs_event(const struct blksnap_uuid *b)
{
	struct blksnap_snapshot_event ev = { .id = *b };
	uint64_t t0, waited;
	int failed = 0;

	failed += expect("poll for event when there is none",
			 IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, &ev, ETIMEDOUT);
	ev.timeout_ms = 300;
	t0 = now_ms();
	failed += expect("wait 300 ms for event when there is none",
			 IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, &ev, ETIMEDOUT);
	waited = now_ms() - t0;
	failed += must(waited >= 250 && waited < 5000,
		       "the wait lasted about the timeout");
	failed += expect("wait for event with null pointer",
			 IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, NULL, EFAULT);
	return failed;
}

/* @bdev: tracked, in no snapshot yet. */
static int badargs_image_none(const struct blksnap_bdev *bdev)
{
	struct blksnap_image_info nodev = { .dev = { 4095, 1048575 } };
	struct blksnap_image_info free_dev = { .dev = *bdev };
	int failed = 0;

	failed += expect("image info of a nonexistent device",
			 IOCTL_BLKSNAP_IMAGE_INFO, &nodev, ENOENT);
	failed += expect("image info of a device in no snapshot",
			 IOCTL_BLKSNAP_IMAGE_INFO, &free_dev, ENOENT);
	failed += expect("image info with null pointer",
			 IOCTL_BLKSNAP_IMAGE_INFO, NULL, EFAULT);
	return failed;
}

/* @bdev: in snapshot @a, not taken yet. */
static int badargs_image(const struct blksnap_uuid *a,
			 const struct blksnap_bdev *bdev)
{
	struct blksnap_image_info info;
	int failed = 0;

	failed += must(!get_image(bdev, &info) && !info.image.major &&
		       !info.image.minor && !info.name[0] &&
		       !memcmp(&info.id, a, sizeof(*a)) && !info.error,
		       "image info before the take: 0:0, no name, the snapshot's id");
	return failed;
}

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* @a: one device @bdev, storage; @b: no device. */
static int badargs_take(const struct blksnap_uuid *a,
			const struct blksnap_uuid *b,
			const struct blksnap_bdev *bdev,
			const struct blksnap_cbt_info *cbt_before)
{
	struct blksnap_uuid id = *a, empty = *b;
	struct blksnap_sectors more = {
		cbt_before->device_capacity - 4096, 2048,
	};
	struct blksnap_sectors on_image = { 0, 8 };
	struct blksnap_image_info image;
	struct blksnap_cbt_info cbt;
	struct snap_sum sum;
	int failed = 0;

	failed += expect_snap("take snapshot without devices",
			      IOCTL_BLKSNAP_SNAPSHOT_TAKE, &empty, ENODEV, b);
	failed += expect("take with null pointer", IOCTL_BLKSNAP_SNAPSHOT_TAKE,
			 NULL, EFAULT);
	failed += must(!ctl(IOCTL_BLKSNAP_SNAPSHOT_TAKE, &id), "take");
	snap_sum(a, &sum);
	failed += must(sum.state == BLKSNAP_SNAPSHOT_TAKEN && !sum.error,
		       "state taken, no error");
	failed += expect_snap("take twice", IOCTL_BLKSNAP_SNAPSHOT_TAKE, &id,
			      EALREADY, a);
	failed += must(!get_info(bdev, &cbt) &&
		       cbt.changes_number == cbt_before->changes_number + 1 &&
		       !memcmp(cbt.generation_id, cbt_before->generation_id,
			       BLKSNAP_UUID_SIZE),
		       "one take advanced the change number by one");
	failed += must(!get_image(bdev, &image) &&
		       (image.image.major || image.image.minor) &&
		       !strncmp(image.name, "blksnap-image_", 14) &&
		       !memcmp(&image.id, a, sizeof(*a)) && !image.error &&
		       is_pow2(image.chunk_size) && image.chunk_size >= 512,
		       "image info after the take");
	failed += must(!append_storage(a, bdev, &more, 1) &&
		       storage_of(a) == 2048 + more.count,
		       "append after the take");
	failed += bad_append("append on the snapshot's own image", a,
			     &image.image, &on_image, 1, EINVAL);
	return failed;
}

static int badargs_destroyed(const struct blksnap_uuid *a,
			     const struct blksnap_bdev *bdev)
{
	struct blksnap_uuid id = *a;
	struct blksnap_snapshot_info info = { .id = *a };
	struct blksnap_snapshot_event ev = { .id = *a };
	struct blksnap_image_info image = { .dev = *bdev };
	int failed = 0;

	failed += expect("destroy twice", IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &id,
			 ESRCH);
	failed += expect("info of destroyed snapshot",
			 IOCTL_BLKSNAP_SNAPSHOT_INFO, &info, ESRCH);
	failed += expect("wait for event of destroyed snapshot",
			 IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, &ev, ESRCH);
	failed += expect("take destroyed snapshot", IOCTL_BLKSNAP_SNAPSHOT_TAKE,
			 &id, ESRCH);
	failed += expect("image info of device of destroyed snapshot",
			 IOCTL_BLKSNAP_IMAGE_INFO, &image, ENOENT);
	return failed;
}

/* Two lists of snapshot IDs hold the same IDs. */
static bool same_ids(const struct blksnap_uuid *x, uint32_t nx,
		     const struct blksnap_uuid *y, uint32_t ny)
{
	if (nx != ny)
		return false;
	for (uint32_t i = 0; i < nx; i++) {
		bool found = false;

		for (uint32_t j = 0; j < ny && !found; j++)
			found = !memcmp(&x[i], &y[j], sizeof(x[i]));
		if (!found)
			return false;
	}
	return true;
}

/* The CBT state of @bdev equals @info and @map. */
static bool cbt_unchanged(const struct blksnap_bdev *bdev,
			  const struct blksnap_cbt_info *info,
			  const uint8_t *map)
{
	struct blksnap_cbt_info now;
	uint8_t *now_map;
	uint32_t count;
	bool same;

	if (get_info(bdev, &now) || read_map(bdev, 0, &now_map, &count))
		return false;
	same = !memcmp(info, &now, sizeof(now)) &&
	       !memcmp(map, now_map, count);
	free(now_map);
	return same;
}

static int cmd_snapshot_badargs(const struct blksnap_bdev *bdev)
{
	struct blksnap_uuid *ids_before, *ids_after, a, b, unknown;
	struct blksnap_cbt_info cbt;
	uint32_t n_before, n_after, count;
	uint8_t *map;
	int failed = 0;

	if (report("info", get_info(bdev, &cbt)) ||
	    report("map", read_map(bdev, 0, &map, &count)) ||
	    report("snapshot-list", get_snapshot_list(&ids_before, &n_before)))
		return 1;
	do {
		if (getrandom(&unknown, sizeof(unknown), 0) != sizeof(unknown))
			return report("getrandom", -errno);
	} while (listed(&unknown));

	failed += badargs_unknown_id(&unknown, bdev);
	failed += expect("create with null pointer",
			 IOCTL_BLKSNAP_SNAPSHOT_CREATE, NULL, EFAULT);
	get_snapshot_list(&ids_after, &n_after);
	failed += must(same_ids(ids_before, n_before, ids_after, n_after),
		       "a failed create leaves no snapshot behind");
	free(ids_after);

	if (report("snapshot-create", ctl(IOCTL_BLKSNAP_SNAPSHOT_CREATE, &a)) ||
	    report("snapshot-create", ctl(IOCTL_BLKSNAP_SNAPSHOT_CREATE, &b)))
		return 1;
	failed += must(memcmp(&a, &b, sizeof(a)) && listed(&a) && listed(&b),
		       "two new snapshots, listed, different ids");
	failed += badargs_event(&b);
	failed += badargs_image_none(bdev);
	failed += badargs_add(&a, &b, bdev);
	failed += badargs_image(&a, bdev);
	failed += badargs_append(&a, bdev, cbt.device_capacity);
	failed += badargs_list(n_before + 2);
	failed += badargs_info(&a);
	failed += must(cbt_unchanged(bdev, &cbt, map),
		       "refused requests left the CBT state as it was");

	failed += badargs_take(&a, &b, bdev, &cbt);
	failed += must(!ctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &a) &&
		       !ctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &b),
		       "destroy both snapshots");
	failed += badargs_destroyed(&a, bdev);
	cbt.changes_number++;
	failed += must(cbt_unchanged(bdev, &cbt, map),
		       "the device is still tracked, its CBT map as it was");
	get_snapshot_list(&ids_after, &n_after);
	failed += must(same_ids(ids_before, n_before, ids_after, n_after),
		       "the list of snapshots is as it was");

	free(ids_before);
	free(ids_after);
	free(map);
	printf("%d snapshot check(s) failed\n", failed);
	return failed ? 1 : 0;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: blksnap-ioctl version|list\n"
		"       blksnap-ioctl attach|detach|info|map|map-snapshot|badargs DEV\n"
		"       blksnap-ioctl changed DEV SINCE\n"
		"       blksnap-ioctl dirty DEV SECTOR COUNT [SECTOR COUNT]...\n"
		"       blksnap-ioctl snapshot-create|snapshot-list\n"
		"       blksnap-ioctl take-cycle DEV STORE N\n"
		"       blksnap-ioctl snapshot-add ID DEV\n"
		"       blksnap-ioctl snapshot-append ID DEV SECTOR COUNT [SECTOR COUNT]...\n"
		"       blksnap-ioctl snapshot-append-file ID FILE\n"
		"       blksnap-ioctl extents FILE\n"
		"       blksnap-ioctl snapshot-take|snapshot-destroy|snapshot-info ID\n"
		"       blksnap-ioctl image-info|snapshot-badargs DEV\n"
		"       blksnap-ioctl wait-event ID TIMEOUT_MS\n");
	return 2;
}

static bool names_snapshot(const char *cmd)
{
	return (!strncmp(cmd, "snapshot-", 9) &&
		strcmp(cmd, "snapshot-badargs")) || !strcmp(cmd, "wait-event");
}

/* The commands that name a snapshot: CMD ID [ARG...]. */
static int snapshot_cmd(const char *cmd, int argc, char **argv)
{
	struct blksnap_uuid id;
	struct blksnap_bdev bdev;

	if (argc < 1)
		return usage();
	if (parse_uuid(argv[0], &id))
		return 1;
	if (!strcmp(cmd, "snapshot-add") && argc == 2) {
		if (parse_dev(argv[1], &bdev))
			return 1;
		return report("snapshot-add", snapshot_add(&id, &bdev));
	}
	if (!strcmp(cmd, "snapshot-append"))
		return cmd_snapshot_append(&id, argc - 1, argv + 1);
	if (!strcmp(cmd, "snapshot-append-file") && argc == 2)
		return cmd_snapshot_append_file(&id, argv[1]);
	if (!strcmp(cmd, "snapshot-take") && argc == 1)
		return report("snapshot-take",
			      ctl(IOCTL_BLKSNAP_SNAPSHOT_TAKE, &id));
	if (!strcmp(cmd, "snapshot-take-timed") && argc == 1)
		return cmd_snapshot_take_timed(&id);
	if (!strcmp(cmd, "snapshot-destroy") && argc == 1)
		return report("snapshot-destroy",
			      ctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &id));
	if (!strcmp(cmd, "snapshot-info") && argc == 1)
		return cmd_snapshot_info(&id);
	if (!strcmp(cmd, "wait-event") && argc == 2)
		return cmd_wait_event(&id, argv[1]);
	return usage();
}

int main(int argc, char **argv)
{
	struct blksnap_bdev bdev;
	const char *cmd;

	if (argc < 2)
		return usage();
	cmd = argv[1];
	if (!strcmp(cmd, "extents") && argc == 3)
		return cmd_extents(argv[2]);

	ctl_fd = open("/dev/" BLKSNAP_CTL_NAME, O_RDWR | O_CLOEXEC);
	if (ctl_fd < 0) {
		fprintf(stderr, "/dev/%s: %s\n", BLKSNAP_CTL_NAME,
			strerror(errno));
		return 1;
	}

	if (!strcmp(cmd, "version"))
		return cmd_version();
	if (!strcmp(cmd, "list"))
		return cmd_list();
	if (!strcmp(cmd, "snapshot-create"))
		return cmd_snapshot_create();
	if (!strcmp(cmd, "snapshot-list"))
		return cmd_snapshot_list();
	if (!strcmp(cmd, "take-cycle") && argc == 5)
		return cmd_take_cycle(argv[2], argv[3], argv[4]);
	if (names_snapshot(cmd))
		return snapshot_cmd(cmd, argc - 2, argv + 2);
	if (argc < 3)
		return usage();
	if (parse_dev(argv[2], &bdev))
		return 1;
	if (!strcmp(cmd, "attach"))
		return report("attach", ctl(IOCTL_BLKSNAP_TRACKER_ATTACH, &bdev));
	if (!strcmp(cmd, "detach"))
		return report("detach", ctl(IOCTL_BLKSNAP_TRACKER_DETACH, &bdev));
	if (!strcmp(cmd, "info"))
		return cmd_info(&bdev);
	if (!strcmp(cmd, "map"))
		return cmd_map(&bdev, 0);
	if (!strcmp(cmd, "map-snapshot"))
		return cmd_map(&bdev, BLKSNAP_CBT_MAP_SNAPSHOT);
	if (!strcmp(cmd, "changed") && argc == 4)
		return cmd_changed(&bdev, argv[3]);
	if (!strcmp(cmd, "dirty"))
		return cmd_dirty(&bdev, argc - 3, argv + 3);
	if (!strcmp(cmd, "badargs"))
		return cmd_badargs(&bdev);
	if (!strcmp(cmd, "image-info"))
		return cmd_image_info(&bdev);
	if (!strcmp(cmd, "snapshot-badargs"))
		return cmd_snapshot_badargs(&bdev);
	return usage();
}
