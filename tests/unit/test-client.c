/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blksnapctl's pure logic: sizes, manifests, what a backup copies and
 * what a restore applies.
 */
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bsc-checksum.h"
#include "bsc-copy.h"
#include "bsc-manifest.h"
#include "bsc-plan.h"
#include "bsc-util.h"

static void
test_size_parse (void)
{
	static const struct {
		const gchar *text;
		guint64 value;
	} good[] = {
		{ "0", 0 }, { "4096", 4096 }, { "4K", 4096 }, { "4k", 4096 }, { "4KiB", 4096 },
		{ "4KB", 4096 }, { "512M", G_GUINT64_CONSTANT (512) << 20 },
		{ "2G", G_GUINT64_CONSTANT (2) << 30 }, { "1T", G_GUINT64_CONSTANT (1) << 40 },
		{ "8191P", G_GUINT64_CONSTANT (8191) << 50 },
	};
	static const gchar *const bad[] = {
		"", "-1", "M", "1.5G", "4X", "4 K", "4KiBs", "8192P", "99999999999999999999", " 4",
	};

	for (guint i = 0; i < G_N_ELEMENTS (good); i++) {
		g_autoptr(GError) error = NULL;
		guint64 v = 1234;

		g_assert_true (bsc_size_parse (good[i].text, &v, &error));
		g_assert_no_error (error);
		g_assert_cmpuint (v, ==, good[i].value);
	}
	for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
		g_autoptr(GError) error = NULL;
		guint64 v = 1234;

		g_assert_false (bsc_size_parse (bad[i], &v, &error));
		g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
		g_assert_cmpuint (v, ==, 1234);
	}
}

static void
test_size_format (void)
{
	g_autofree gchar *a = bsc_size_format (512);
	g_autofree gchar *b = bsc_size_format (1536);
	g_autofree gchar *c = bsc_size_format (G_GUINT64_CONSTANT (3) << 30);

	g_assert_cmpstr (a, ==, "512 B");
	g_assert_cmpstr (b, ==, "1.5 KiB");
	g_assert_cmpstr (c, ==, "3.0 GiB");
}

#define SUM_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SUM_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static BscDeviceEntry *
entry_new (const gchar *node, gboolean full, guint64 capacity, const gchar *gen, guint8 cn)
{
	BscDeviceEntry *e = bsc_device_entry_new ();

	e->node = g_strdup (node);
	e->name = g_path_get_basename (node);
	e->device = g_strdup ("254:17");
	e->data = g_strconcat (e->name, ".data", NULL);
	e->capacity = capacity;
	e->block_size = 65536;
	e->generation = g_strdup (gen);
	e->changes_number = cn;
	e->full = full;
	e->checksum = BSC_CHECKSUM_SHA256;
	return e;
}

static void
entry_add_run (BscDeviceEntry *e, guint64 off, guint64 len, const gchar *sum)
{
	BscRun run = { off, len, "" };

	g_strlcpy (run.sum, sum, sizeof (run.sum));
	g_array_append_val (e->runs, run);
}

static void
test_manifest_roundtrip (void)
{
	g_autoptr(BscManifest) m = bsc_manifest_new ();
	g_autoptr(BscManifest) back = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *json = NULL;
	g_autofree gchar *json2 = NULL;
	BscDeviceEntry *e, *f;

	m->number = 3;
	m->time_us = G_GINT64_CONSTANT (1700000000123456);
	m->snapshot = g_strdup ("01234567-89ab-cdef-0123-456789abcdef");
	e = entry_new ("/dev/vdb1", FALSE, 1 << 30, "gen-1", 7);
	e->bytes_read = 131072;
	entry_add_run (e, 65536, 65536, SUM_A);
	entry_add_run (e, 1 << 20, 65536, SUM_B);
	g_ptr_array_add (m->devices, e);
	f = entry_new ("/dev/vdc", TRUE, 8192, "gen-2", 1);
	entry_add_run (f, 0, 8192, SUM_B);
	g_ptr_array_add (m->devices, f);

	json = bsc_manifest_to_json (m);
	back = bsc_manifest_from_json (json, -1, &error);
	g_assert_no_error (error);
	g_assert_nonnull (back);
	g_assert_cmpuint (back->number, ==, 3);
	g_assert_cmpint (back->time_us, ==, m->time_us);
	g_assert_cmpstr (back->snapshot, ==, m->snapshot);
	g_assert_cmpuint (back->devices->len, ==, 2);
	e = g_ptr_array_index (back->devices, 0);
	g_assert_cmpstr (e->node, ==, "/dev/vdb1");
	g_assert_cmpstr (e->generation, ==, "gen-1");
	g_assert_cmpuint (e->changes_number, ==, 7);
	g_assert_false (e->full);
	g_assert_cmpuint (e->capacity, ==, 1 << 30);
	g_assert_cmpuint (e->bytes_read, ==, 131072);
	g_assert_cmpuint (e->runs->len, ==, 2);
	g_assert_cmpuint (g_array_index (e->runs, BscRun, 1).offset, ==, 1 << 20);
	g_assert_cmpstr (g_array_index (e->runs, BscRun, 1).sum, ==, SUM_B);
	g_assert_true (((BscDeviceEntry *) g_ptr_array_index (back->devices, 1))->full);
	g_assert_true (bsc_manifest_find_device (back, "/dev/vdc") ==
	               g_ptr_array_index (back->devices, 1));
	g_assert_true (bsc_manifest_find_device (back, "vdb1") ==
	               g_ptr_array_index (back->devices, 0));
	g_assert_null (bsc_manifest_find_device (back, "/dev/vdd"));
	/* and it writes back the same */
	json2 = bsc_manifest_to_json (back);
	g_assert_cmpstr (json, ==, json2);
}

static gchar *
manifest_with_device (const gchar *device_json)
{
	return g_strdup_printf ("{\"format\":1,\"point\":2,\"time\":\"\",\"time-us\":5,"
	                        "\"snapshot\":\"x\",\"devices\":[%s]}", device_json);
}

#define DEV(type, cap, runs) \
	"{\"name\":\"vdb\",\"node\":\"/dev/vdb\",\"device\":\"254:16\",\"capacity\":" cap "," \
	"\"block-size\":65536,\"generation\":\"g\",\"changes-number\":3,\"type\":\"" type "\"," \
	"\"data\":\"vdb.data\",\"bytes-read\":0,\"runs\":[" runs "]}"

static void
test_manifest_invalid (void)
{
	static const gchar *const bad[] = {
		"",
		"[]",
		"{\"format\":3,\"point\":1,\"time-us\":0,\"snapshot\":\"\",\"devices\":[]}",
		"{\"format\":1,\"point\":0,\"time-us\":0,\"snapshot\":\"\",\"devices\":[]}",
		"{\"format\":1,\"point\":1,\"time-us\":0,\"snapshot\":\"\"}",
		"{\"format\":1,\"point\":\"1\",\"time-us\":0,\"snapshot\":\"\",\"devices\":[]}",
	};
	static const gchar *const bad_devices[] = {
		/* overlapping runs */
		DEV ("incremental", "1048576", "[0,8192,\"" SUM_A "\"],[4096,8192,\"" SUM_A "\"]"),
		/* outside the device */
		DEV ("incremental", "1048576", "[1044480,8192,\"" SUM_A "\"]"),
		/* a full backup with a hole, or short */
		DEV ("full", "16384", "[0,4096,\"" SUM_A "\"],[8192,8192,\"" SUM_A "\"]"),
		DEV ("full", "16384", "[0,8192,\"" SUM_A "\"]"),
		/* bad checksum, bad type, zero length */
		DEV ("incremental", "16384", "[0,4096,\"" SUM_A "0\"]"),
		DEV ("incremental", "16384", "[0,4096,\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]"),
		DEV ("differential", "16384", ""),
		DEV ("incremental", "16384", "[0,0,\"" SUM_A "\"]"),
		DEV ("incremental", "16384", "[0,4096]"),
		/* a data file outside the point */
		"{\"name\":\"vdb\",\"node\":\"/dev/vdb\",\"device\":\"254:16\",\"capacity\":4096,"
		"\"block-size\":65536,\"generation\":\"g\",\"changes-number\":3,\"type\":\"incremental\","
		"\"data\":\"../etc/passwd\",\"bytes-read\":0,\"runs\":[]}",
		/* changes number out of range */
		"{\"name\":\"vdb\",\"node\":\"/dev/vdb\",\"device\":\"254:16\",\"capacity\":4096,"
		"\"block-size\":65536,\"generation\":\"g\",\"changes-number\":256,\"type\":\"incremental\","
		"\"data\":\"vdb.data\",\"bytes-read\":0,\"runs\":[]}",
		/* the same device twice */
		DEV ("incremental", "16384", "") "," DEV ("incremental", "16384", ""),
	};
	g_autofree gchar *good = manifest_with_device (
		DEV ("full", "16384", "[0,8192,\"" SUM_A "\"],[8192,8192,\"" SUM_B "\"]"));
	g_autoptr(BscManifest) ok = NULL;
	g_autoptr(GError) error = NULL;

	ok = bsc_manifest_from_json (good, -1, &error);
	g_assert_no_error (error);
	g_assert_nonnull (ok);

	for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
		g_autoptr(GError) e = NULL;
		g_autoptr(BscManifest) m = bsc_manifest_from_json (bad[i], -1, &e);

		g_assert_null (m);
		g_assert_nonnull (e);
		g_assert_true (strstr (e->message, "invalid manifest") != NULL);
	}
	for (guint i = 0; i < G_N_ELEMENTS (bad_devices); i++) {
		g_autofree gchar *json = manifest_with_device (bad_devices[i]);
		g_autoptr(GError) e = NULL;
		g_autoptr(BscManifest) m = bsc_manifest_from_json (json, -1, &e);

		if (m != NULL)
			g_error ("accepted: %s", bad_devices[i]);
		g_assert_error (e, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	}
}

static void
test_manifest_chain_dir (void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir = g_dir_make_tmp ("bsc-chain-XXXXXX", &error);
	g_autoptr(GPtrArray) chain = NULL;
	const guint numbers[] = { 2, 1, 10 };

	g_assert_no_error (error);
	chain = bsc_chain_load (dir, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (chain->len, ==, 0);
	g_clear_pointer (&chain, g_ptr_array_unref);

	for (guint i = 0; i < G_N_ELEMENTS (numbers); i++) {
		g_autoptr(BscManifest) m = bsc_manifest_new ();
		g_autofree gchar *name = bsc_point_dir_name (numbers[i]);
		g_autofree gchar *sub = g_build_filename (dir, name, NULL);
		g_autofree gchar *path = g_build_filename (sub, BSC_MANIFEST_FILE, NULL);

		m->number = numbers[i];
		m->snapshot = g_strdup ("s");
		g_assert_cmpint (g_mkdir (sub, 0700), ==, 0);
		g_assert_true (bsc_manifest_save (m, path, &error));
		g_assert_no_error (error);
	}
	/* a partial point is ignored */
	{
		g_autofree gchar *p = g_build_filename (dir, "0011.partial", NULL);
		g_assert_cmpint (g_mkdir (p, 0700), ==, 0);
	}
	chain = bsc_chain_load (dir, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (chain->len, ==, 3);
	g_assert_cmpuint (((BscManifest *) g_ptr_array_index (chain, 0))->number, ==, 1);
	g_assert_cmpuint (((BscManifest *) g_ptr_array_index (chain, 2))->number, ==, 10);
	g_clear_pointer (&chain, g_ptr_array_unref);

	/* a point whose manifest says another number is refused */
	{
		g_autofree gchar *src = g_build_filename (dir, "0010", BSC_MANIFEST_FILE, NULL);
		g_autofree gchar *sub = g_build_filename (dir, "0012", NULL);
		g_autofree gchar *dst = g_build_filename (sub, BSC_MANIFEST_FILE, NULL);
		g_autofree gchar *text = NULL;

		g_assert_true (g_file_get_contents (src, &text, NULL, NULL));
		g_assert_cmpint (g_mkdir (sub, 0700), ==, 0);
		g_assert_true (g_file_set_contents (dst, text, -1, NULL));
	}
	chain = bsc_chain_load (dir, &error);
	g_assert_null (chain);
	g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_clear_error (&error);

	{
		g_autofree gchar *cmd = g_strdup_printf ("rm -rf '%s'", dir);
		g_assert_cmpint (system (cmd), ==, 0);
	}
}

static void
test_plan_runs (void)
{
	g_autoptr(GArray) ranges = g_array_new (FALSE, FALSE, sizeof (BsRange));
	g_autoptr(GArray) runs = NULL;
	BsRange r1 = { 0, 10 << 20 }, r2 = { 64 << 20, 65536 }, r3 = { 100 << 20, 4 << 20 };
	guint64 total = 0;

	g_array_append_val (ranges, r1);
	g_array_append_val (ranges, r2);
	g_array_append_val (ranges, r3);
	runs = bsc_plan_runs (ranges, 4 << 20);
	/* 10M -> 4+4+2, 64K -> 1, 4M -> 1 */
	g_assert_cmpuint (runs->len, ==, 5);
	g_assert_cmpuint (g_array_index (runs, BscRun, 1).offset, ==, 4 << 20);
	g_assert_cmpuint (g_array_index (runs, BscRun, 2).length, ==, 2 << 20);
	g_assert_cmpuint (g_array_index (runs, BscRun, 3).offset, ==, 64 << 20);
	g_assert_cmpuint (g_array_index (runs, BscRun, 3).length, ==, 65536);
	g_assert_cmpuint (g_array_index (runs, BscRun, 4).length, ==, 4 << 20);
	for (guint i = 0; i < runs->len; i++) {
		const BscRun *run = &g_array_index (runs, BscRun, i);

		g_assert_cmpuint (run->length, <=, 4 << 20);
		g_assert_cmpstr (run->sum, ==, "");
		total += run->length;
	}
	g_assert_cmpuint (total, ==, bs_ranges_total (ranges));
	g_clear_pointer (&runs, g_array_unref);

	g_array_set_size (ranges, 0);
	runs = bsc_plan_runs (ranges, 4096);
	g_assert_cmpuint (runs->len, ==, 0);
}

/* CBT map -> ranges -> runs: only the changed blocks are copied */
static void
test_plan_from_cbt_map (void)
{
	/* block size 64K, device of 10 blocks minus 512 bytes */
	const guint8 map[10] = { 0, 3, 3, 2, 5, 0, 0, 4, 1, 4 };
	const guint64 cap = 10 * 65536 - 512;
	g_autoptr(GArray) ranges = bs_cbt_changed_ranges (map, 10, 65536, cap, 3);
	g_autoptr(GArray) runs = bsc_plan_runs (ranges, 65536);

	/* blocks above 3: 4, 7, 9 (the last one partial) */
	g_assert_cmpuint (runs->len, ==, 3);
	g_assert_cmpuint (g_array_index (runs, BscRun, 0).offset, ==, 4 * 65536);
	g_assert_cmpuint (g_array_index (runs, BscRun, 1).offset, ==, 7 * 65536);
	g_assert_cmpuint (g_array_index (runs, BscRun, 2).offset, ==, 9 * 65536);
	g_assert_cmpuint (g_array_index (runs, BscRun, 2).length, ==, 65536 - 512);
}

/* known answers: FIPS 180-2 for SHA-256, the xxHash sanity vector for XXH3-128 */
static void
test_checksum_vectors (void)
{
	gchar out[BSC_CHECKSUM_HEX_MAX + 1];
	BscChecksum type = BSC_CHECKSUM_SHA256;
	g_autoptr(GError) error = NULL;

	bsc_checksum_hex (BSC_CHECKSUM_SHA256, (const guint8 *) "abc", 3, out);
	g_assert_cmpstr (out, ==, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	bsc_checksum_hex (BSC_CHECKSUM_XXH3_128, (const guint8 *) "", 0, out);
	g_assert_cmpstr (out, ==, "99aa06d3014798d86001c324468d497f");
	g_assert_true (bsc_checksum_is_hex (BSC_CHECKSUM_XXH3_128, out));
	g_assert_false (bsc_checksum_is_hex (BSC_CHECKSUM_SHA256, out));
	g_assert_false (bsc_checksum_is_hex (BSC_CHECKSUM_XXH3_128, "99AA06D3014798D86001C324468D497F"));

	g_assert_true (bsc_checksum_from_name ("xxh3-128", &type, &error));
	g_assert_no_error (error);
	g_assert_cmpint (type, ==, BSC_CHECKSUM_XXH3_128);
	g_assert_cmpstr (bsc_checksum_name (type), ==, "xxh3-128");
	g_assert_true (bsc_checksum_from_name ("sha256", &type, &error));
	g_assert_cmpint (type, ==, BSC_CHECKSUM_SHA256);
	g_assert_false (bsc_checksum_from_name ("md5", &type, &error));
	g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
	g_assert_cmpint (type, ==, BSC_CHECKSUM_SHA256);
	g_assert_cmpint (BSC_CHECKSUM_DEFAULT, ==, BSC_CHECKSUM_XXH3_128);
}

#define DEV2(checksum, runs) \
	"{\"name\":\"vdb\",\"node\":\"/dev/vdb\",\"device\":\"254:16\",\"capacity\":16384," \
	"\"block-size\":65536,\"generation\":\"g\",\"changes-number\":3,\"type\":\"incremental\"," \
	"\"data\":\"vdb.data\",\"bytes-read\":0,\"checksum\":\"" checksum "\",\"runs\":[" runs "]}"

/* a manifest of format 1 (no "checksum") is sha256; format 2 names it */
static void
test_manifest_checksum (void)
{
	static const gchar *const bad[] = {
		/* format 2 without a checksum, with an unknown one, a sum of another length */
		"{\"format\":2,\"point\":1,\"time-us\":0,\"snapshot\":\"\",\"devices\":["
		DEV ("incremental", "16384", "[0,4096,\"99aa06d3014798d86001c324468d497f\"]") "]}",
		"{\"format\":2,\"point\":1,\"time-us\":0,\"snapshot\":\"\",\"devices\":["
		DEV2 ("md5", "") "]}",
		"{\"format\":2,\"point\":1,\"time-us\":0,\"snapshot\":\"\",\"devices\":["
		DEV2 ("xxh3-128", "[0,4096,\"" SUM_A "\"]") "]}",
	};
	g_autofree gchar *old = manifest_with_device (
		DEV ("incremental", "16384", "[0,4096,\"" SUM_A "\"]"));
	g_autoptr(BscManifest) m = NULL;
	g_autoptr(BscManifest) back = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *json = NULL;
	BscDeviceEntry *e;

	m = bsc_manifest_from_json (old, -1, &error);
	g_assert_no_error (error);
	e = g_ptr_array_index (m->devices, 0);
	g_assert_cmpint (e->checksum, ==, BSC_CHECKSUM_SHA256);
	g_assert_cmpstr (g_array_index (e->runs, BscRun, 0).sum, ==, SUM_A);
	/* written again, it is format 2 and still sha256 */
	json = bsc_manifest_to_json (m);
	g_assert_nonnull (strstr (json, "\"format\" : 2"));
	g_assert_nonnull (strstr (json, "\"checksum\" : \"sha256\""));
	back = bsc_manifest_from_json (json, -1, &error);
	g_assert_no_error (error);
	g_assert_cmpint (((BscDeviceEntry *) g_ptr_array_index (back->devices, 0))->checksum, ==,
	                 BSC_CHECKSUM_SHA256);
	g_clear_pointer (&json, g_free);
	g_clear_pointer (&back, bsc_manifest_free);

	/* xxh3-128: 32 hex digits */
	e->checksum = BSC_CHECKSUM_XXH3_128;
	json = bsc_manifest_to_json (m);
	back = bsc_manifest_from_json (json, -1, &error);
	g_assert_null (back);   /* the sha256 sum is too long for xxh3-128 */
	g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_clear_error (&error);
	g_clear_pointer (&json, g_free);
	g_strlcpy (g_array_index (e->runs, BscRun, 0).sum, "99aa06d3014798d86001c324468d497f",
	           sizeof (g_array_index (e->runs, BscRun, 0).sum));
	json = bsc_manifest_to_json (m);
	back = bsc_manifest_from_json (json, -1, &error);
	g_assert_no_error (error);
	e = g_ptr_array_index (back->devices, 0);
	g_assert_cmpint (e->checksum, ==, BSC_CHECKSUM_XXH3_128);
	g_assert_cmpstr (g_array_index (e->runs, BscRun, 0).sum, ==,
	                 "99aa06d3014798d86001c324468d497f");

	for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
		g_autoptr(GError) err = NULL;
		g_autoptr(BscManifest) no = bsc_manifest_from_json (bad[i], -1, &err);

		if (no != NULL)
			g_error ("accepted: %s", bad[i]);
		g_assert_error (err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	}
}

static gchar *
tmp_file_with (const gchar *dir, const gchar *name, const guint8 *data, gsize len)
{
	g_autoptr(GError) error = NULL;
	gchar *path = g_build_filename (dir, name, NULL);

	g_assert_true (g_file_set_contents (path, (const gchar *) data, len, &error));
	g_assert_no_error (error);
	return path;
}

static gchar *
file_slice (const gchar *path, guint64 offset, gsize len)
{
	g_autofree gchar *all = NULL;
	gsize size;

	g_assert_true (g_file_get_contents (path, &all, &size, NULL));
	g_assert_cmpuint (offset + len, <=, size);
	return g_memdup2 (all + offset, len);
}

/*
 * The copy pipeline on real files: a backup copies exactly the runs, in
 * place, with the checksum of each; a verified copy of it passes; one
 * flipped byte in the middle fails with the offset of its run and
 * nothing after it; a short source fails. Many small runs keep several
 * workers busy at once; the device size is not a multiple of 4 KiB, so
 * the last run cannot go through O_DIRECT.
 */
static void
copy_roundtrip (BscChecksum type)
{
	const gsize size = (3 << 20) + 512;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir = g_dir_make_tmp ("bsc-copy-XXXXXX", &error);
	g_autofree guint8 *data = g_malloc (size);
	g_autofree gchar *src = NULL, *dst = NULL, *again = NULL;
	g_autoptr(GArray) ranges = g_array_new (FALSE, FALSE, sizeof (BsRange));
	g_autoptr(GArray) runs = NULL;
	BsRange r1 = { 0, 1 << 20 }, r2 = { 2 << 20, (1 << 20) + 512 };
	const guint64 bad_at = (2 << 20) + (128 << 10) + 77;
	guint64 copied = 0;
	guint8 flipped;
	gint in_fd, out_fd;

	g_assert_no_error (error);
	for (gsize i = 0; i < size; i += 4)
		*(guint32 *) (data + i) = g_random_int ();
	src = tmp_file_with (dir, "src", data, size);
	dst = g_build_filename (dir, "dst", NULL);
	again = g_build_filename (dir, "again", NULL);
	g_array_append_val (ranges, r1);
	g_array_append_val (ranges, r2);
	runs = bsc_plan_runs (ranges, 64 << 10);

	in_fd = open (src, O_RDONLY | O_CLOEXEC);
	out_fd = open (dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	g_assert_cmpint (ftruncate (out_fd, size), ==, 0);
	g_assert_true (bsc_copy_runs (in_fd, out_fd, runs, type, BSC_COPY_BACKUP, NULL, NULL,
	                              &copied, &error));
	g_assert_no_error (error);
	close (in_fd);
	close (out_fd);
	g_assert_cmpuint (copied, ==, bs_ranges_total (ranges));
	for (guint i = 0; i < runs->len; i++) {
		const BscRun *run = &g_array_index (runs, BscRun, i);
		g_autofree gchar *slice = file_slice (dst, run->offset, run->length);
		gchar sum[BSC_CHECKSUM_HEX_MAX + 1];

		g_assert_cmpmem (slice, run->length, data + run->offset, run->length);
		bsc_checksum_hex (type, data + run->offset, run->length, sum);
		g_assert_cmpstr (run->sum, ==, sum);
	}
	{
		/* what was not copied stays a hole of zeros */
		g_autofree gchar *gap = file_slice (dst, 1 << 20, 1 << 20);
		g_autofree gchar *zero = g_malloc0 (1 << 20);

		g_assert_cmpmem (gap, 1 << 20, zero, 1 << 20);
	}

	/* verified: dst -> again */
	in_fd = open (dst, O_RDONLY | O_CLOEXEC);
	out_fd = open (again, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	g_assert_true (bsc_copy_runs (in_fd, out_fd, runs, type, BSC_COPY_VERIFY, NULL, NULL,
	                              &copied, &error));
	g_assert_no_error (error);
	close (in_fd);
	close (out_fd);
	{
		g_autofree gchar *a = file_slice (again, 2 << 20, (1 << 20) + 512);

		g_assert_cmpmem (a, (1 << 20) + 512, data + (2 << 20), (1 << 20) + 512);
	}

	/* one byte flipped in the run at 2M + 128K (inverted: a fixed value
	 * would be no change one time in 256) */
	flipped = data[bad_at] ^ 0xff;
	out_fd = open (dst, O_WRONLY | O_CLOEXEC);
	g_assert_cmpint (pwrite (out_fd, &flipped, 1, bad_at), ==, 1);
	close (out_fd);
	g_unlink (again);
	in_fd = open (dst, O_RDONLY | O_CLOEXEC);
	out_fd = open (again, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	g_assert_false (bsc_copy_runs (in_fd, out_fd, runs, type, BSC_COPY_VERIFY, NULL, NULL,
	                               &copied, &error));
	g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_assert_nonnull (strstr (error->message, "offset 2228224 "));
	g_assert_nonnull (strstr (error->message, bsc_checksum_name (type)));
	g_clear_error (&error);
	close (in_fd);
	close (out_fd);
	/* the runs before it were written, not the bad one */
	g_assert_cmpuint (copied, ==, (1 << 20) + (128 << 10));

	/* a source shorter than its runs */
	g_assert_cmpint (truncate (src, (2 << 20) + 4096), ==, 0);
	in_fd = open (src, O_RDONLY | O_CLOEXEC);
	out_fd = open (again, O_WRONLY | O_CLOEXEC);
	g_assert_false (bsc_copy_runs (in_fd, out_fd, runs, type, BSC_COPY_BACKUP, NULL, NULL,
	                               NULL, &error));
	g_assert_nonnull (strstr (error->message, "unexpected end of file"));
	close (in_fd);
	close (out_fd);

	{
		g_autofree gchar *cmd = g_strdup_printf ("rm -rf '%s'", dir);
		g_assert_cmpint (system (cmd), ==, 0);
	}
}

static void
test_copy_xxh3 (void)
{
	copy_roundtrip (BSC_CHECKSUM_XXH3_128);
}

static void
test_copy_sha256 (void)
{
	copy_roundtrip (BSC_CHECKSUM_SHA256);
}

static GPtrArray *
chain_new (void)
{
	return g_ptr_array_new_with_free_func ((GDestroyNotify) bsc_manifest_free);
}

static BscManifest *
chain_add (GPtrArray *chain, guint number)
{
	BscManifest *m = bsc_manifest_new ();

	m->number = number;
	g_ptr_array_add (chain, m);
	return m;
}

static void
test_plan_restore (void)
{
	g_autoptr(GPtrArray) chain = chain_new ();
	g_autoptr(GArray) steps = NULL;
	g_autoptr(GError) error = NULL;
	const BscManifest *base;
	const BscDeviceEntry *entry;
	BscManifest *m;

	g_assert_false (bsc_plan_base (chain, "/dev/vdb", &base, &entry));
	steps = bsc_plan_restore (chain, 0, NULL, &error);
	g_assert_null (steps);
	g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
	g_clear_error (&error);

	/* 1 full(vdb, vdc), 2 incr(vdb), 3 incr(vdb, vdc: full after a reset), 4 full(vdb)
	 * new generation, 5 incr(vdb) */
	m = chain_add (chain, 1);
	g_ptr_array_add (m->devices, entry_new ("/dev/vdb", TRUE, 4096, "g1", 1));
	g_ptr_array_add (m->devices, entry_new ("/dev/vdc", TRUE, 4096, "h1", 1));
	m = chain_add (chain, 2);
	g_ptr_array_add (m->devices, entry_new ("/dev/vdb", FALSE, 4096, "g1", 2));
	m = chain_add (chain, 3);
	g_ptr_array_add (m->devices, entry_new ("/dev/vdb", FALSE, 4096, "g1", 3));
	g_ptr_array_add (m->devices, entry_new ("/dev/vdc", TRUE, 4096, "h2", 1));
	m = chain_add (chain, 4);
	g_ptr_array_add (m->devices, entry_new ("/dev/vdb", TRUE, 4096, "g2", 1));
	m = chain_add (chain, 5);
	g_ptr_array_add (m->devices, entry_new ("/dev/vdb", FALSE, 4096, "g2", 2));

	g_assert_true (bsc_plan_base (chain, "/dev/vdc", &base, &entry));
	g_assert_cmpuint (base->number, ==, 3);
	g_assert_cmpstr (entry->generation, ==, "h2");

	/* vdb at 3: 1 + 2 + 3 */
	steps = bsc_plan_restore (chain, 3, "/dev/vdb", &error);
	g_assert_no_error (error);
	g_assert_cmpuint (steps->len, ==, 3);
	g_assert_cmpuint (g_array_index (steps, BscRestoreStep, 0).point->number, ==, 1);
	g_assert_true (g_array_index (steps, BscRestoreStep, 0).entry->full);
	g_assert_cmpuint (g_array_index (steps, BscRestoreStep, 2).point->number, ==, 3);
	g_clear_pointer (&steps, g_array_unref);

	/* vdb, the last point: 4 + 5 */
	steps = bsc_plan_restore (chain, 0, "/dev/vdb", &error);
	g_assert_no_error (error);
	g_assert_cmpuint (steps->len, ==, 2);
	g_assert_cmpuint (g_array_index (steps, BscRestoreStep, 0).point->number, ==, 4);
	g_clear_pointer (&steps, g_array_unref);

	/* vdc at 3: its own full backup only */
	steps = bsc_plan_restore (chain, 3, "/dev/vdc", &error);
	g_assert_no_error (error);
	g_assert_cmpuint (steps->len, ==, 1);
	g_clear_pointer (&steps, g_array_unref);

	/* point 1 holds two devices: which one must be said */
	steps = bsc_plan_restore (chain, 1, NULL, &error);
	g_assert_null (steps);
	g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
	g_clear_error (&error);
	/* point 2 holds one: no need */
	steps = bsc_plan_restore (chain, 2, NULL, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (steps->len, ==, 2);
	g_clear_pointer (&steps, g_array_unref);

	/* unknown point, device not in the point */
	steps = bsc_plan_restore (chain, 9, "/dev/vdb", &error);
	g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
	g_clear_error (&error);
	steps = bsc_plan_restore (chain, 5, "/dev/vdc", &error);
	g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
	g_clear_error (&error);

	/* a gap breaks the chain: vdb missing from point 2 */
	g_ptr_array_remove_index (((BscManifest *) g_ptr_array_index (chain, 1))->devices, 0);
	steps = bsc_plan_restore (chain, 3, "/dev/vdb", &error);
	g_assert_null (steps);
	g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_clear_error (&error);

	/* an incremental of another generation than its full backup */
	m = g_ptr_array_index (chain, 4);
	g_free (((BscDeviceEntry *) g_ptr_array_index (m->devices, 0))->generation);
	((BscDeviceEntry *) g_ptr_array_index (m->devices, 0))->generation = g_strdup ("g3");
	steps = bsc_plan_restore (chain, 5, "/dev/vdb", &error);
	g_assert_null (steps);
	g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/client/size/parse", test_size_parse);
	g_test_add_func ("/client/size/format", test_size_format);
	g_test_add_func ("/client/manifest/roundtrip", test_manifest_roundtrip);
	g_test_add_func ("/client/manifest/invalid", test_manifest_invalid);
	g_test_add_func ("/client/manifest/chain-dir", test_manifest_chain_dir);
	g_test_add_func ("/client/manifest/checksum", test_manifest_checksum);
	g_test_add_func ("/client/checksum/vectors", test_checksum_vectors);
	g_test_add_func ("/client/copy/xxh3-128", test_copy_xxh3);
	g_test_add_func ("/client/copy/sha256", test_copy_sha256);
	g_test_add_func ("/client/plan/runs", test_plan_runs);
	g_test_add_func ("/client/plan/from-cbt-map", test_plan_from_cbt_map);
	g_test_add_func ("/client/plan/restore", test_plan_restore);
	return g_test_run ();
}
