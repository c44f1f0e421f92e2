/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * stamp: write self-describing sectors and prove later what a block device
 * (or a snapshot image of it, or a regular file) holds, sector by sector.
 *
 *   stamp fill DEV GEN [--region FIRST:COUNT] [--journal FILE] [--threads N]
 *	Stamp every sector with generation GEN (write sequence 0), in large
 *	O_DIRECT writes. --journal: record that as the expected content.
 *   stamp verify DEV GEN [--region FIRST:COUNT] [--threads N]
 *	Every sector must be a valid stamp of its own LBA and generation GEN.
 *   stamp churn DEV GEN SECONDS [--threads N] [--journal FILE]
 *	       [--region FIRST:COUNT] [--base GEN] [--seed N]
 *	N writers (default 4) for SECONDS: random and sequential writes of
 *	512 B to 1 MiB at any sector, many across 64 KiB/256 KiB/1 MiB/4 MiB
 *	boundaries, O_DIRECT and buffered (+ fdatasync) mixed; every sector
 *	written gets generation GEN and the write's unique sequence number.
 *	--journal: the expected content, updated as writes complete. A
 *	journal that does not exist yet is created; --base GEN then says the
 *	region holds a fill of generation GEN, else only the sectors churn
 *	writes are known.
 *   stamp check DEV --journal FILE [--region FIRST:COUNT] [--threads N]
 *	The device holds exactly what the journal says.
 *   stamp write DEV GEN SECTOR COUNT [--journal FILE] [--buffered]
 *	One write of COUNT stamped sectors at SECTOR.
 *   stamp ranges JOURNAL GEN
 *	Print "FIRST COUNT" for each run of sectors the journal expects with
 *	generation GEN (e.g. what a churn wrote).
 *   stamp pingpong DEV_A DEV_B GEN SECONDS [--ready FILE]
 *	Write sequence 1 to A, then (once it completed) 1 to B, 2 to A, 2 to
 *	B... into a ring of RING_SLOTS sectors on each, for SECONDS or until
 *	SIGTERM/SIGINT (after the pair under way). --ready: created once the
 *	rings are initialised (sequence 0).
 *   stamp last DEV GEN [--live]
 *	Print "last N": the newest sequence the pingpong ring on DEV holds;
 *	fail unless the ring holds exactly sequences N-RING_SLOTS+1..N
 *	(--live: a ring being written, only N counts).
 *
 * Writers own disjoint 6 MiB groups of sectors (group g belongs to thread
 * g % N), so concurrent writes never overlap and the final content is
 * deterministic; groups are 2 MiB aligned, so no page cache folio is
 * shared between writers. A sector (512 bytes):
 *	magic, LBA, generation, writer, sequence, index and count of the
 *	sector in its write, a payload derived from (LBA, generation,
 *	sequence), and a 64-bit hash of all that.
 * The journal: a 64-byte header, then one little-endian u64 per sector:
 * 0 for unknown (not checked), else generation << 48 | sequence.
 *
 * Exit status: 0 fine, 1 mismatch or I/O error, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SECTOR		512
#define STAMP_MAGIC	0x314d545350534b42ULL	/* "BKSPSTM1" */
#define PAYLOAD_WORDS	58
#define IO_SECTORS	8192			/* 4 MiB per fill/verify I/O */
#define MAX_WRITE	2048			/* 1 MiB per churn write */
#define GROUP_SECTORS	12288			/* 6 MiB owned by one writer */
#define RING_SLOTS	1024
#define RING_STRIDE	129			/* sectors between ring slots */
#define MAX_SHOWN	10
#define SEQ_BITS	48
#define SEQ_MASK	((1ULL << SEQ_BITS) - 1)
#define JOURNAL_MAGIC	"BSJRNL1"

struct stamp {
	uint64_t magic;
	uint64_t lba;
	uint32_t gen;
	uint32_t writer;	/* churn thread + 1; 0 for fill and write */
	uint64_t seq;		/* 0 for fill */
	uint32_t index;		/* sector index in its write */
	uint32_t count;		/* sectors in its write */
	uint64_t payload[PAYLOAD_WORDS];
	uint64_t sum;
};
_Static_assert(sizeof(struct stamp) == SECTOR, "a stamp is one sector");

struct journal_hdr {
	char magic[8];
	uint64_t sectors;
	uint64_t next_seq;
	uint64_t reserved[5];
};
_Static_assert(sizeof(struct journal_hdr) == 64, "journal header size");

/* --------------------------------------------------------------- stamps */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

#define P1	0x9e3779b185ebca87ULL
#define P2	0xc2b2ae3d27d4eb4fULL

/* Hash of everything in the stamp but the hash itself. */
static uint64_t stamp_sum(const struct stamp *s)
{
	const uint64_t *w = (const uint64_t *)s;
	uint64_t a[4] = { P1, P2, ~P1, ~P2 };
	uint64_t h;
	int i;

	for (i = 0; i + 4 <= 63; i += 4)
		for (int j = 0; j < 4; j++)
			a[j] = rotl(a[j] + w[i + j] * P2, 31) * P1;
	h = rotl(a[0], 1) + rotl(a[1], 7) + rotl(a[2], 12) + rotl(a[3], 18);
	for (; i < 63; i++)
		h = rotl(h ^ (w[i] * P2), 27) * P1;
	return mix64(h);
}

static uint64_t payload_seed(uint64_t lba, uint32_t gen, uint64_t seq)
{
	return mix64(lba ^ mix64(((uint64_t)gen << 48) ^ seq)) | 1;
}

static void make_payload(uint64_t *p, uint64_t lba, uint32_t gen,
			 uint64_t seq)
{
	uint64_t x = payload_seed(lba, gen, seq);

	for (int i = 0; i < PAYLOAD_WORDS; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = x;
	}
}

static void make_stamp(struct stamp *s, uint64_t lba, uint32_t gen,
		       uint32_t writer, uint64_t seq, uint32_t index,
		       uint32_t count)
{
	s->magic = STAMP_MAGIC;
	s->lba = lba;
	s->gen = gen;
	s->writer = writer;
	s->seq = seq;
	s->index = index;
	s->count = count;
	make_payload(s->payload, lba, gen, seq);
	s->sum = stamp_sum(s);
}

static void make_stamps(void *buf, uint64_t lba, uint32_t count,
			uint32_t gen, uint32_t writer, uint64_t seq)
{
	struct stamp *s = buf;

	for (uint32_t i = 0; i < count; i++)
		make_stamp(&s[i], lba + i, gen, writer, seq, i, count);
}

static bool payload_ok(const struct stamp *s)
{
	uint64_t x = payload_seed(s->lba, s->gen, s->seq);

	for (int i = 0; i < PAYLOAD_WORDS; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (s->payload[i] != x)
			return false;
	}
	return true;
}

/* A valid stamp of sector @lba, whatever its generation and sequence. */
static bool stamp_valid(const struct stamp *s, uint64_t lba)
{
	return s->magic == STAMP_MAGIC && s->lba == lba &&
	       s->sum == stamp_sum(s) && payload_ok(s);
}

static bool all_zero(const void *buf, size_t len)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* What sector @lba holds instead of a good stamp, in words. */
static void describe(const struct stamp *s, uint64_t lba, char *out,
		     size_t len)
{
	if (all_zero(s, SECTOR))
		snprintf(out, len, "zeros");
	else if (s->magic != STAMP_MAGIC)
		snprintf(out, len, "not a stamp (magic %016" PRIx64 ")",
			 s->magic);
	else if (s->sum != stamp_sum(s))
		snprintf(out, len, "damaged stamp (bad hash) claiming "
			 "sector %" PRIu64 " gen %u seq %" PRIu64, s->lba,
			 s->gen, s->seq);
	else if (s->lba != lba)
		snprintf(out, len, "stamp of sector %" PRIu64 " (gen %u seq %"
			 PRIu64 ")", s->lba, s->gen, s->seq);
	else if (!payload_ok(s))
		snprintf(out, len, "payload does not match gen %u seq %" PRIu64,
			 s->gen, s->seq);
	else
		snprintf(out, len, "gen %u seq %" PRIu64 " (writer %u, sector "
			 "%u/%u of its write)", s->gen, s->seq, s->writer,
			 s->index + 1, s->count);
}

/* --------------------------------------------------------------- devices */

struct dev {
	const char *path;
	int fd;			/* buffered */
	int dfd;		/* O_DIRECT, or -1 */
	uint64_t sectors;
	unsigned int align;	/* O_DIRECT offset/length/memory alignment */
};

/* O_DIRECT offset alignment of a file: statx says, or guess the block. */
static unsigned int file_dio_align(int fd, const struct stat *st)
{
	struct statx stx;

	if (!statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align &&
	    stx.stx_dio_mem_align <= 4096)
		return stx.stx_dio_offset_align > SECTOR ?
		       stx.stx_dio_offset_align : SECTOR;
	return st->st_blksize > SECTOR ? st->st_blksize : SECTOR;
}

static int dev_open(struct dev *d, const char *path, bool write)
{
	int flags = (write ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	struct stat st;
	uint64_t bytes;
	int lbs = SECTOR;

	d->path = path;
	d->fd = open(path, flags);
	if (d->fd < 0 || fstat(d->fd, &st)) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(d->fd, BLKGETSIZE64, &bytes) ||
		    ioctl(d->fd, BLKSSZGET, &lbs)) {
			fprintf(stderr, "%s: %s\n", path, strerror(errno));
			return -1;
		}
		d->align = lbs;
	} else if (S_ISREG(st.st_mode)) {
		bytes = st.st_size;
		d->align = file_dio_align(d->fd, &st);
	} else {
		fprintf(stderr, "%s: neither a block device nor a file\n", path);
		return -1;
	}
	d->sectors = bytes / SECTOR;
	if (bytes % SECTOR)
		fprintf(stderr, "%s: ignoring the last %" PRIu64 " bytes\n",
			path, bytes % SECTOR);
	d->dfd = open(path, flags | O_DIRECT);
	if (d->dfd < 0 && errno != EINVAL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void dev_close(struct dev *d)
{
	if (d->dfd >= 0)
		close(d->dfd);
	close(d->fd);
}

static bool direct_ok(const struct dev *d, uint64_t lba, uint32_t count)
{
	uint64_t a = d->align / SECTOR;

	return d->dfd >= 0 && lba % a == 0 && count % a == 0;
}

/* Whole-buffer pwrite/pread at sector @lba; -errno on failure. */
static int dev_io(const struct dev *d, bool write, bool direct, void *buf,
		  uint64_t lba, uint32_t count)
{
	size_t len = (size_t)count * SECTOR, done = 0;
	int fd = direct ? d->dfd : d->fd;

	while (done < len) {
		ssize_t n = write ?
			pwrite(fd, (char *)buf + done, len - done,
			       lba * SECTOR + done) :
			pread(fd, (char *)buf + done, len - done,
			      lba * SECTOR + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;	/* past the end */
		done += n;
	}
	return 0;
}

static void *alloc_io(size_t len)
{
	void *p;

	if (posix_memalign(&p, 4096, len)) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	return p;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --------------------------------------------------------------- journal */

struct journal {
	struct journal_hdr *hdr;
	uint64_t *e;
	size_t len;
};

static int journal_map(struct journal *j, const char *path, uint64_t sectors,
		       bool create)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
	struct stat st;
	bool fresh;

	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	fresh = st.st_size == 0;
	if (fresh && !create) {
		fprintf(stderr, "%s: empty, not a journal\n", path);
		close(fd);
		return -1;
	}
	j->len = sizeof(struct journal_hdr) + sectors * sizeof(uint64_t);
	if (fresh && ftruncate(fd, j->len)) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!fresh && (uint64_t)st.st_size != j->len) {
		fprintf(stderr, "%s: journal of another size than the device "
			"(%" PRIu64 " sectors)\n", path, sectors);
		close(fd);
		return -1;
	}
	j->hdr = mmap(NULL, j->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (j->hdr == MAP_FAILED) {
		fprintf(stderr, "%s: mmap: %s\n", path, strerror(errno));
		return -1;
	}
	j->e = (uint64_t *)(j->hdr + 1);
	if (fresh) {
		memcpy(j->hdr->magic, JOURNAL_MAGIC, 8);
		j->hdr->sectors = sectors;
		j->hdr->next_seq = 1;
	} else if (memcmp(j->hdr->magic, JOURNAL_MAGIC, 8) ||
		   j->hdr->sectors != sectors) {
		fprintf(stderr, "%s: not a stamp journal for this device\n",
			path);
		munmap(j->hdr, j->len);
		return -1;
	}
	return 0;
}

static void journal_unmap(struct journal *j)
{
	if (!j->hdr)
		return;
	msync(j->hdr, j->len, MS_SYNC);
	munmap(j->hdr, j->len);
	j->hdr = NULL;
}

static uint64_t entry(uint32_t gen, uint64_t seq)
{
	return (uint64_t)gen << SEQ_BITS | seq;
}

static void journal_set(struct journal *j, uint64_t lba, uint32_t count,
			uint32_t gen, uint64_t seq)
{
	for (uint32_t i = 0; i < count; i++)
		j->e[lba + i] = entry(gen, seq);
}

/* --------------------------------------------------------------- options */

struct opts {
	const char *pos[6];
	int npos;
	const char *journal;
	const char *ready;
	unsigned int threads;
	bool have_region;
	uint64_t first, count;
	long base;		/* -1: none */
	uint64_t seed;
	bool buffered;
	bool live;
};

static int usage(void)
{
	fprintf(stderr,
		"usage: stamp fill DEV GEN [--region FIRST:COUNT] [--journal FILE]\n"
		"       stamp verify DEV GEN [--region FIRST:COUNT]\n"
		"       stamp churn DEV GEN SECONDS [--threads N] [--journal FILE]\n"
		"                   [--region FIRST:COUNT] [--base GEN] [--seed N]\n"
		"       stamp check DEV --journal FILE [--region FIRST:COUNT]\n"
		"       stamp write DEV GEN SECTOR COUNT [--journal FILE] [--buffered]\n"
		"       stamp ranges JOURNAL GEN\n"
		"       stamp pingpong DEV_A DEV_B GEN SECONDS [--ready FILE]\n"
		"       stamp last DEV GEN [--live]\n"
		"(--threads N works for fill, verify, check too)\n");
	return 2;
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && end != s && !*end;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->base = -1;
	o->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t v;

		if (!strcmp(a, "--buffered") || !strcmp(a, "--live")) {
			o->buffered |= !strcmp(a, "--buffered");
			o->live |= !strcmp(a, "--live");
			continue;
		}
		if (strncmp(a, "--", 2)) {
			if (o->npos == 6)
				return -1;
			o->pos[o->npos++] = a;
			continue;
		}
		if (!val)
			return -1;
		i++;
		if (!strcmp(a, "--journal")) {
			o->journal = val;
		} else if (!strcmp(a, "--ready")) {
			o->ready = val;
		} else if (!strcmp(a, "--threads") && parse_u64(val, &v) &&
			   v >= 1 && v <= 64) {
			o->threads = v;
		} else if (!strcmp(a, "--base") && parse_u64(val, &v) &&
			   v >= 1 && v < 65536) {
			o->base = v;
		} else if (!strcmp(a, "--seed") && parse_u64(val, &v)) {
			o->seed = v;
		} else if (!strcmp(a, "--region") &&
			   sscanf(val, "%" SCNu64 ":%" SCNu64, &o->first,
				  &o->count) == 2 && o->count) {
			o->have_region = true;
		} else {
			fprintf(stderr, "bad option %s %s\n", a, val);
			return -1;
		}
	}
	return 0;
}

static bool parse_gen(const char *s, uint32_t *gen)
{
	uint64_t v;

	if (parse_u64(s, &v) && v >= 1 && v < 65536) {
		*gen = v;
		return true;
	}
	fprintf(stderr, "%s: a generation is 1 to 65535\n", s);
	return false;
}

/* The region of @d that @o names (default: all of it). */
static int region(const struct opts *o, const struct dev *d,
		  uint64_t *first, uint64_t *count)
{
	*first = o->have_region ? o->first : 0;
	*count = o->have_region ? o->count : d->sectors;
	if (*first > d->sectors || *count > d->sectors - *first || !*count) {
		fprintf(stderr, "%s: region %" PRIu64 ":%" PRIu64 " is not "
			"inside its %" PRIu64 " sectors\n", d->path, *first,
			*count, d->sectors);
		return -1;
	}
	return 0;
}

/* ------------------------------------------- fill, verify, check: sweeps */

/*
 * A sweep runs over a region in IO_SECTORS pieces, handed out to threads
 * in order. Mismatches are counted; the MAX_SHOWN lowest are kept.
 */
struct sweep {
	struct dev *dev;
	uint64_t first, count;
	uint32_t gen;
	const uint64_t *expect;		/* check: the journal's entries */
	bool write;
	atomic_uint_fast64_t next;	/* next piece */
	pthread_mutex_t lock;
	uint64_t bad, io_errors;
	uint64_t shown_lba[MAX_SHOWN];
	char shown[MAX_SHOWN][160];
	int nshown;
};

static void sweep_note(struct sweep *sw, uint64_t lba, uint64_t n,
		       const char *what)
{
	int i;

	pthread_mutex_lock(&sw->lock);
	sw->bad += n;
	for (i = sw->nshown; i > 0 && sw->shown_lba[i - 1] > lba; i--)
		;
	if (i < MAX_SHOWN) {
		int last = sw->nshown < MAX_SHOWN ? sw->nshown : MAX_SHOWN - 1;

		memmove(&sw->shown_lba[i + 1], &sw->shown_lba[i],
			(last - i) * sizeof(sw->shown_lba[0]));
		memmove(&sw->shown[i + 1], &sw->shown[i],
			(last - i) * sizeof(sw->shown[0]));
		sw->shown_lba[i] = lba;
		snprintf(sw->shown[i], sizeof(sw->shown[i]), "%s", what);
		if (sw->nshown < MAX_SHOWN)
			sw->nshown++;
	}
	pthread_mutex_unlock(&sw->lock);
}

/* Sector @lba against what the sweep expects; 0 if fine. */
static int sweep_sector(struct sweep *sw, const struct stamp *s, uint64_t lba)
{
	char what[160], got[120];
	uint32_t gen = sw->gen;
	uint64_t seq = 0;
	bool any_seq = true;

	if (sw->expect) {
		uint64_t e = sw->expect[lba];

		if (!e)
			return 0;
		gen = e >> SEQ_BITS;
		seq = e & SEQ_MASK;
		any_seq = false;
	}
	if (s->magic == STAMP_MAGIC && s->lba == lba && s->gen == gen &&
	    (any_seq || s->seq == seq) && s->sum == stamp_sum(s) &&
	    payload_ok(s))
		return 0;
	describe(s, lba, got, sizeof(got));
	if (any_seq)
		snprintf(what, sizeof(what), "%s, expected gen %u", got, gen);
	else
		snprintf(what, sizeof(what), "%s, expected gen %u seq %" PRIu64,
			 got, gen, seq);
	sweep_note(sw, lba, 1, what);
	return 1;
}

static void *sweep_thread(void *arg)
{
	struct sweep *sw = arg;
	void *buf = alloc_io((size_t)IO_SECTORS * SECTOR);
	uint64_t end = sw->first + sw->count;

	for (;;) {
		uint64_t piece = atomic_fetch_add(&sw->next, 1);
		uint64_t lba = sw->first + piece * IO_SECTORS;
		uint32_t n;
		bool direct;
		int ret;

		if (lba >= end)
			break;
		n = end - lba < IO_SECTORS ? end - lba : IO_SECTORS;
		if (sw->expect && all_zero(&sw->expect[lba], n * sizeof(uint64_t)))
			continue;	/* nothing known here: not even read */
		direct = direct_ok(sw->dev, lba, n);
		if (sw->write)
			make_stamps(buf, lba, n, sw->gen, 0, 0);
		ret = dev_io(sw->dev, sw->write, direct, buf, lba, n);
		if (ret) {
			char what[160];

			snprintf(what, sizeof(what), "%s error on sectors %"
				 PRIu64 "..%" PRIu64 ": %s",
				 sw->write ? "write" : "read", lba,
				 lba + n - 1, strerror(-ret));
			sweep_note(sw, lba, n, what);
			pthread_mutex_lock(&sw->lock);
			sw->io_errors++;
			pthread_mutex_unlock(&sw->lock);
			continue;
		}
		if (sw->write)
			continue;
		for (uint32_t i = 0; i < n; i++)
			sweep_sector(sw, (struct stamp *)buf + i, lba + i);
	}
	free(buf);
	return NULL;
}

static int run_sweep(struct sweep *sw, unsigned int threads, const char *verb)
{
	pthread_t tid[64];
	double t0 = now();

	pthread_mutex_init(&sw->lock, NULL);
	atomic_init(&sw->next, 0);
	if (!threads)
		threads = 4;
	for (unsigned int i = 0; i < threads; i++)
		if (pthread_create(&tid[i], NULL, sweep_thread, sw)) {
			fprintf(stderr, "pthread_create failed\n");
			exit(1);
		}
	for (unsigned int i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	if (sw->write && !sw->bad && fsync(sw->dev->fd)) {
		fprintf(stderr, "%s: fsync: %s\n", sw->dev->path, strerror(errno));
		return 1;
	}
	for (int i = 0; i < sw->nshown; i++)
		printf("sector %" PRIu64 ": %s\n", sw->shown_lba[i], sw->shown[i]);
	printf("%s %s: %" PRIu64 " sectors from %" PRIu64 ", %" PRIu64
	       " bad (%" PRIu64 " I/O errors), %.1f s\n", verb, sw->dev->path,
	       sw->count, sw->first, sw->bad, sw->io_errors, now() - t0);
	return sw->bad ? 1 : 0;
}

static int cmd_fill(const struct opts *o)
{
	struct sweep sw = { 0 };
	struct journal j = { 0 };
	struct dev d;
	int ret;

	if (o->npos != 3 || !parse_gen(o->pos[2], &sw.gen))
		return usage();
	if (dev_open(&d, o->pos[1], true) ||
	    region(o, &d, &sw.first, &sw.count))
		return 1;
	if (o->journal && journal_map(&j, o->journal, d.sectors, true))
		return 1;
	sw.dev = &d;
	sw.write = true;
	ret = run_sweep(&sw, o->threads, "fill");
	if (j.hdr && !ret)
		journal_set(&j, sw.first, sw.count, sw.gen, 0);
	journal_unmap(&j);
	dev_close(&d);
	return ret;
}

static int cmd_verify(const struct opts *o)
{
	struct sweep sw = { 0 };
	struct dev d;
	int ret;

	if (o->npos != 3 || !parse_gen(o->pos[2], &sw.gen))
		return usage();
	if (dev_open(&d, o->pos[1], false) ||
	    region(o, &d, &sw.first, &sw.count))
		return 1;
	sw.dev = &d;
	ret = run_sweep(&sw, o->threads, "verify");
	dev_close(&d);
	return ret;
}

static int cmd_check(const struct opts *o)
{
	struct sweep sw = { 0 };
	struct journal j = { 0 };
	uint64_t known = 0;
	struct dev d;
	int ret;

	if (o->npos != 2 || !o->journal)
		return usage();
	if (dev_open(&d, o->pos[1], false) ||
	    region(o, &d, &sw.first, &sw.count) ||
	    journal_map(&j, o->journal, d.sectors, false))
		return 1;
	for (uint64_t i = sw.first; i < sw.first + sw.count; i++)
		known += j.e[i] != 0;
	if (!known) {
		fprintf(stderr, "%s: the journal knows no sector of the region\n",
			o->journal);
		return 1;
	}
	sw.dev = &d;
	sw.expect = j.e;
	ret = run_sweep(&sw, o->threads, "check");
	printf("(%" PRIu64 " sectors known to the journal)\n", known);
	journal_unmap(&j);
	dev_close(&d);
	return ret;
}

/* ----------------------------------------------------------------- churn */

struct churn {
	struct dev *dev;
	struct journal *j;
	uint64_t first, count;
	uint32_t gen;
	unsigned int threads;
	uint64_t groups;
	double deadline;
	atomic_uint_fast64_t next_seq;
	atomic_bool stop;
	uint64_t seed;
};

struct writer {
	struct churn *c;
	unsigned int id;
	pthread_t tid;
	uint64_t rng;
	uint64_t cursor;	/* sequential stream: next sector, 0: none */
	uint64_t writes, sectors, direct, buffered, syncs, across_1m, unaligned;
	int error;
};

static uint64_t rnd(struct writer *w)
{
	w->rng += 0x9e3779b97f4a7c15ULL;
	return mix64(w->rng);
}

static uint64_t below(struct writer *w, uint64_t n)
{
	return n ? rnd(w) % n : 0;
}

/* Write length in sectors: mostly small, some medium, a few up to 1 MiB. */
static uint32_t pick_length(struct writer *w)
{
	uint64_t r = below(w, 100);

	if (r < 45)
		return 1 + below(w, 16);
	if (r < 80)
		return 1 + below(w, 256);
	return 1 + below(w, MAX_WRITE);
}

/* Sectors [*start, *end) of group @g. */
static void group_span(const struct churn *c, uint64_t g, uint64_t *start,
		       uint64_t *end)
{
	*start = c->first + g * GROUP_SECTORS;
	*end = *start + GROUP_SECTORS;
	if (*end > c->first + c->count)
		*end = c->first + c->count;
}

/* A random group of writer @w. */
static uint64_t pick_group(struct writer *w)
{
	const struct churn *c = w->c;
	uint64_t mine = (c->groups - w->id + c->threads - 1) / c->threads;

	return w->id + below(w, mine) * c->threads;
}

/*
 * Where and how long the next write of @w is: inside one of its groups,
 * continuing its sequential stream, across a power-of-two boundary, or
 * anywhere.
 */
static void pick_write(struct writer *w, uint64_t *lba, uint32_t *n)
{
	static const uint32_t bounds[] = { 128, 512, 2048, 8192 };
	const struct churn *c = w->c;
	uint64_t r = below(w, 100), g, start, end;

	*n = pick_length(w);
	if (r < 30 && w->cursor) {
		*lba = w->cursor;
		g = (*lba - c->first) / GROUP_SECTORS;
		group_span(c, g, &start, &end);
	} else {
		g = pick_group(w);
		group_span(c, g, &start, &end);
		*lba = start + below(w, end - start);
		if (r >= 30 && r < 60) {
			/* Straddle a boundary inside the group, if any. */
			uint64_t b = bounds[below(w, 4)];
			uint64_t first_b = (start / b + 1) * b;

			if (first_b < end) {
				uint64_t at = first_b +
					below(w, (end - 1 - first_b) / b + 1) * b;

				uint64_t back;

				if (*n < 2)
					*n = 2 + below(w, 64);
				back = 1 + below(w, *n - 1);
				*lba = at - start > back ? at - back : start;
			}
		}
	}
	if (*n > end - *lba)
		*n = end - *lba;
	w->cursor = *lba + *n < end ? *lba + *n : 0;
}

static bool crosses(uint64_t lba, uint32_t n, uint64_t b)
{
	return lba / b != (lba + n - 1) / b;
}

static int churn_write(struct writer *w, void *buf)
{
	struct churn *c = w->c;
	uint64_t lba, seq;
	uint32_t n;
	bool direct;
	int ret;

	pick_write(w, &lba, &n);
	seq = atomic_fetch_add(&c->next_seq, 1);
	if (seq > SEQ_MASK)
		return -EOVERFLOW;
	direct = direct_ok(c->dev, lba, n) && below(w, 100) < 60;
	make_stamps(buf, lba, n, c->gen, w->id + 1, seq);
	ret = dev_io(c->dev, true, direct, buf, lba, n);
	if (ret) {
		fprintf(stderr, "%s: %s write of sectors %" PRIu64 "..%" PRIu64
			": %s\n", c->dev->path, direct ? "direct" : "buffered",
			lba, lba + n - 1, strerror(-ret));
		return ret;
	}
	if (!direct && below(w, 100) < 70) {
		if (fdatasync(c->dev->fd)) {
			ret = -errno;
			fprintf(stderr, "%s: fdatasync: %s\n", c->dev->path,
				strerror(errno));
			return ret;
		}
		w->syncs++;
	}
	if (c->j)
		journal_set(c->j, lba, n, c->gen, seq);
	w->writes++;
	w->sectors += n;
	if (direct)
		w->direct++;
	else
		w->buffered++;
	w->across_1m += crosses(lba, n, 2048);
	w->unaligned += lba % 8 || n % 8;
	return 0;
}

static void *churn_thread(void *arg)
{
	struct writer *w = arg;
	struct churn *c = w->c;
	void *buf = alloc_io((size_t)MAX_WRITE * SECTOR);

	while (!atomic_load(&c->stop) && !w->error) {
		w->error = churn_write(w, buf);
		if (now() >= c->deadline)
			break;
	}
	if (w->error)
		atomic_store(&c->stop, true);
	if (fdatasync(c->dev->fd) && !w->error) {
		fprintf(stderr, "%s: fdatasync: %s\n", c->dev->path,
			strerror(errno));
		w->error = -errno;
	}
	free(buf);
	return NULL;
}

static int churn_journal(const struct opts *o, struct churn *c,
			 struct journal *j)
{
	bool existed = access(o->journal, F_OK) == 0;

	if (journal_map(j, o->journal, c->dev->sectors, true))
		return -1;
	if (!existed && o->base > 0)
		journal_set(j, c->first, c->count, o->base, 0);
	c->j = j;
	atomic_init(&c->next_seq, j->hdr->next_seq);
	return 0;
}

static int cmd_churn(const struct opts *o)
{
	struct writer w[64] = { 0 };
	struct journal j = { 0 };
	struct churn c = { 0 };
	uint64_t writes = 0, sectors = 0, direct = 0, buffered = 0;
	uint64_t syncs = 0, across = 0, unaligned = 0, seconds;
	double t0;
	struct dev d;
	int ret = 0;

	if (o->npos != 4 || !parse_gen(o->pos[2], &c.gen) ||
	    !parse_u64(o->pos[3], &seconds))
		return usage();
	if (dev_open(&d, o->pos[1], true) ||
	    region(o, &d, &c.first, &c.count))
		return 1;
	if (c.first % 4096) {
		fprintf(stderr, "churn: the region must start 2 MiB aligned\n");
		return 2;
	}
	c.dev = &d;
	atomic_init(&c.next_seq, 1);
	if (o->journal && churn_journal(o, &c, &j))
		return 1;
	c.groups = (c.count + GROUP_SECTORS - 1) / GROUP_SECTORS;
	c.threads = o->threads ? o->threads : 4;
	if (c.threads > c.groups)
		c.threads = c.groups;
	atomic_init(&c.stop, false);
	t0 = now();
	c.deadline = t0 + seconds;
	for (unsigned int i = 0; i < c.threads; i++) {
		w[i].c = &c;
		w[i].id = i;
		w[i].rng = mix64(o->seed + i);
		if (pthread_create(&w[i].tid, NULL, churn_thread, &w[i])) {
			fprintf(stderr, "pthread_create failed\n");
			exit(1);
		}
	}
	for (unsigned int i = 0; i < c.threads; i++) {
		pthread_join(w[i].tid, NULL);
		writes += w[i].writes;
		sectors += w[i].sectors;
		direct += w[i].direct;
		buffered += w[i].buffered;
		syncs += w[i].syncs;
		across += w[i].across_1m;
		unaligned += w[i].unaligned;
		if (w[i].error)
			ret = 1;
	}
	if (j.hdr)
		j.hdr->next_seq = atomic_load(&c.next_seq);
	journal_unmap(&j);
	printf("churn %s: %" PRIu64 " writes (%" PRIu64 " direct, %" PRIu64
	       " buffered, %" PRIu64 " fdatasync), %" PRIu64 " MiB, %" PRIu64
	       " not 4 KiB aligned, %" PRIu64 " across a 1 MiB boundary, %u "
	       "threads, %.1f s%s\n", d.path, writes, direct, buffered, syncs,
	       sectors / 2048, unaligned, across, c.threads, now() - t0,
	       ret ? ", FAILED" : "");
	dev_close(&d);
	return ret;
}

/* ----------------------------------------------------------------- write */

static int cmd_write(const struct opts *o)
{
	struct journal j = { 0 };
	uint64_t lba, count, seq;
	uint32_t gen;
	struct dev d;
	bool direct;
	void *buf;
	int ret;

	if (o->npos != 5 || !parse_gen(o->pos[2], &gen) ||
	    !parse_u64(o->pos[3], &lba) || !parse_u64(o->pos[4], &count) ||
	    !count || count > 65536)
		return usage();
	if (dev_open(&d, o->pos[1], true))
		return 1;
	if (lba > d.sectors || count > d.sectors - lba) {
		fprintf(stderr, "%s: sectors %" PRIu64 "+%" PRIu64
			" are past the end\n", d.path, lba, count);
		return 1;
	}
	if (o->journal && journal_map(&j, o->journal, d.sectors, true))
		return 1;
	seq = j.hdr ? j.hdr->next_seq++ : (uint64_t)time(NULL) << 8;
	direct = !o->buffered && direct_ok(&d, lba, count);
	buf = alloc_io(count * SECTOR);
	make_stamps(buf, lba, count, gen, 0, seq);
	ret = dev_io(&d, true, direct, buf, lba, count);
	if (!ret && !direct && fdatasync(d.fd))
		ret = -errno;
	if (ret)
		fprintf(stderr, "%s: write of sectors %" PRIu64 "..%" PRIu64
			": %s\n", d.path, lba, lba + count - 1, strerror(-ret));
	else if (j.hdr)
		journal_set(&j, lba, count, gen, seq);
	journal_unmap(&j);
	free(buf);
	dev_close(&d);
	return ret ? 1 : 0;
}

static int cmd_ranges(const struct opts *o)
{
	struct journal j = { 0 };
	struct stat st;
	uint64_t sectors, run = 0;
	uint32_t gen;

	if (o->npos != 3 || !parse_gen(o->pos[2], &gen))
		return usage();
	if (stat(o->pos[1], &st) || st.st_size < (off_t)sizeof(struct journal_hdr)) {
		fprintf(stderr, "%s: not a journal\n", o->pos[1]);
		return 1;
	}
	sectors = (st.st_size - sizeof(struct journal_hdr)) / sizeof(uint64_t);
	if (journal_map(&j, o->pos[1], sectors, false))
		return 1;
	for (uint64_t i = 0; i <= sectors; i++) {
		if (i < sectors && j.e[i] >> SEQ_BITS == gen) {
			run++;
			continue;
		}
		if (run)
			printf("%" PRIu64 " %" PRIu64 "\n", i - run, run);
		run = 0;
	}
	munmap(j.hdr, j.len);
	return 0;
}

/* -------------------------------------------------------------- pingpong */

static volatile sig_atomic_t pingpong_stop;

static void pingpong_on_signal(int sig)
{
	(void)sig;
	pingpong_stop = 1;
}

/*
 * A test stops the writer when it has what it needs, rather than guessing
 * how long a loaded host takes; the pair under way is finished first.
 */
static void pingpong_catch_signals(void)
{
	struct sigaction sa = { .sa_handler = pingpong_on_signal,
				.sa_flags = SA_RESTART };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

static uint64_t ring_lba(uint64_t slot)
{
	return slot * RING_STRIDE;
}

static int ring_write(struct dev *d, void *buf, uint32_t gen, uint64_t seq)
{
	uint64_t lba = ring_lba(seq % RING_SLOTS);
	int ret;

	make_stamp(buf, lba, gen, 0, seq, 0, 1);
	ret = dev_io(d, true, d->dfd >= 0, buf, lba, 1);
	if (!ret && d->dfd < 0 && fdatasync(d->fd))
		ret = -errno;
	if (ret)
		fprintf(stderr, "%s: write of sequence %" PRIu64 ": %s\n",
			d->path, seq, strerror(-ret));
	return ret;
}

static int ring_open(struct dev *d, const char *path, bool write)
{
	if (dev_open(d, path, write))
		return -1;
	if (d->sectors < ring_lba(RING_SLOTS)) {
		fprintf(stderr, "%s: too small for the ring (%" PRIu64
			" sectors needed)\n", path, ring_lba(RING_SLOTS));
		return -1;
	}
	/* Ring writes are single sectors: buffered + fdatasync if need be. */
	if (d->align > SECTOR && d->dfd >= 0) {
		close(d->dfd);
		d->dfd = -1;
	}
	return 0;
}

static int cmd_pingpong(const struct opts *o)
{
	struct dev a, b;
	uint64_t seconds, seq;
	double deadline;
	uint32_t gen;
	void *buf;
	int fd;

	if (o->npos != 5 || !parse_gen(o->pos[3], &gen) ||
	    !parse_u64(o->pos[4], &seconds))
		return usage();
	if (ring_open(&a, o->pos[1], true) || ring_open(&b, o->pos[2], true))
		return 1;
	pingpong_catch_signals();
	buf = alloc_io(4096);
	for (uint64_t slot = 0; slot < RING_SLOTS; slot++) {
		make_stamp(buf, ring_lba(slot), gen, 0, 0, 0, 1);
		if (dev_io(&a, true, false, buf, ring_lba(slot), 1) ||
		    dev_io(&b, true, false, buf, ring_lba(slot), 1)) {
			fprintf(stderr, "pingpong: ring initialisation failed\n");
			return 1;
		}
	}
	if (fsync(a.fd) || fsync(b.fd)) {
		fprintf(stderr, "pingpong: fsync: %s\n", strerror(errno));
		return 1;
	}
	if (o->ready) {
		fd = open(o->ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
	}
	deadline = now() + seconds;
	for (seq = 1; now() < deadline && !pingpong_stop; seq++)
		if (ring_write(&a, buf, gen, seq) || ring_write(&b, buf, gen, seq))
			return 1;
	printf("pingpong: last %" PRIu64 "\n", seq - 1);
	free(buf);
	dev_close(&a);
	dev_close(&b);
	return 0;
}

/* Sequence slot @slot holds when the newest of the ring is @last. */
static uint64_t ring_expect(uint64_t slot, uint64_t last)
{
	if (last < slot)
		return 0;
	return last - (last - slot) % RING_SLOTS;
}

static int cmd_last(const struct opts *o)
{
	struct stamp *ring;
	uint64_t last = 0, bad = 0;
	char what[160];
	uint32_t gen;
	struct dev d;

	if (o->npos != 3 || !parse_gen(o->pos[2], &gen))
		return usage();
	if (ring_open(&d, o->pos[1], false))
		return 1;
	ring = alloc_io(RING_SLOTS * SECTOR);
	for (uint64_t slot = 0; slot < RING_SLOTS; slot++) {
		struct stamp *s = &ring[slot];
		int ret = dev_io(&d, false, d.dfd >= 0, s, ring_lba(slot), 1);

		if (ret) {
			fprintf(stderr, "%s: read of slot %" PRIu64 ": %s\n",
				d.path, slot, strerror(-ret));
			return 1;
		}
		if (!stamp_valid(s, ring_lba(slot)) || s->gen != gen) {
			describe(s, ring_lba(slot), what, sizeof(what));
			fprintf(stderr, "%s: ring slot %" PRIu64 " holds %s\n",
				d.path, slot, what);
			return 1;
		}
		if (s->seq > last)
			last = s->seq;
	}
	for (uint64_t slot = 0; slot < RING_SLOTS && !o->live; slot++) {
		uint64_t want = ring_expect(slot, last);

		if (ring[slot].seq != want && bad++ < MAX_SHOWN)
			fprintf(stderr, "%s: ring slot %" PRIu64 " holds sequence %"
				PRIu64 ", expected %" PRIu64 " (newest %" PRIu64
				")\n", d.path, slot, ring[slot].seq, want, last);
	}
	printf("last %" PRIu64 "\n", last);
	free(ring);
	dev_close(&d);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	const char *cmd;

	if (argc < 2 || parse_opts(argc - 1, argv + 1, &o))
		return usage();
	cmd = o.pos[0];
	if (!cmd)
		return usage();
	if (!strcmp(cmd, "fill"))
		return cmd_fill(&o);
	if (!strcmp(cmd, "verify"))
		return cmd_verify(&o);
	if (!strcmp(cmd, "check"))
		return cmd_check(&o);
	if (!strcmp(cmd, "churn"))
		return cmd_churn(&o);
	if (!strcmp(cmd, "write"))
		return cmd_write(&o);
	if (!strcmp(cmd, "ranges"))
		return cmd_ranges(&o);
	if (!strcmp(cmd, "pingpong"))
		return cmd_pingpong(&o);
	if (!strcmp(cmd, "last"))
		return cmd_last(&o);
	return usage();
}
