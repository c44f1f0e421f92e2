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
 *   blksnap-ioctl changed DEV SINCE
 *                                  print the byte ranges changed since
 *                                  change number SINCE: OFFSET LENGTH
 *   blksnap-ioctl dirty DEV SECTOR COUNT [SECTOR COUNT]...
 *   blksnap-ioctl badargs DEV      feed the module invalid requests on a
 *                                  tracked DEV and check each is refused
 *                                  with the documented errno and changes
 *                                  nothing
 *
 * DEV is a block device node or MAJOR:MINOR.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/blksnap.h>

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

static int read_map(const struct blksnap_bdev *bdev, uint8_t **map,
		    uint32_t *count)
{
	struct blksnap_cbt_info info;
	struct blksnap_cbt_map req = { .dev = *bdev };
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

static int cmd_map(const struct blksnap_bdev *bdev)
{
	uint32_t count, i = 0;
	uint8_t *map;
	int ret = read_map(bdev, &map, &count);

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
		ret = read_map(bdev, &map, &count);
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
	    report("map", read_map(bdev, &map_before, &count)))
		return 1;

	failed = badargs_tracker(bdev) + badargs_cbt(bdev, &before);

	if (report("info", get_info(bdev, &after)) ||
	    report("map", read_map(bdev, &map_after, &count)))
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

static int usage(void)
{
	fprintf(stderr,
		"usage: blksnap-ioctl version|list\n"
		"       blksnap-ioctl attach|detach|info|map|badargs DEV\n"
		"       blksnap-ioctl changed DEV SINCE\n"
		"       blksnap-ioctl dirty DEV SECTOR COUNT [SECTOR COUNT]...\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct blksnap_bdev bdev;
	const char *cmd;

	if (argc < 2)
		return usage();
	cmd = argv[1];

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
		return cmd_map(&bdev);
	if (!strcmp(cmd, "changed") && argc == 4)
		return cmd_changed(&bdev, argv[3]);
	if (!strcmp(cmd, "dirty"))
		return cmd_dirty(&bdev, argc - 3, argv + 3);
	if (!strcmp(cmd, "badargs"))
		return cmd_badargs(&bdev);
	return usage();
}
