/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Backup points and their manifests.
 *
 * A backup chain is a directory; each point is a subdirectory named by
 * its number ("0001", "0002", ...) holding manifest.json and one data
 * file per device. A device's data file has the size of the device: a
 * full backup fills it, an incremental one only holds the changed runs at
 * their offsets (a sparse file). The manifest lists every run copied with
 * its checksum and names the algorithm, so a restore verifies what it
 * reads. A point is written as NNNN.partial and renamed when complete: a
 * directory without the suffix is always whole.
 *
 * Format 2 names the checksum of each device ("checksum"); format 1 had
 * none and always used sha256. Both are read; format 2 is written.
 */
#pragma once

#include <json-glib/json-glib.h>

#include "bsc-checksum.h"

G_BEGIN_DECLS

#define BSC_MANIFEST_FORMAT 2
#define BSC_MANIFEST_FILE "manifest.json"

/**
 * BscRun:
 * @offset: first byte on the device (and in the data file)
 * @length: bytes
 * @sum: lower-case hex checksum of the bytes (the device entry's algorithm)
 */
typedef struct {
	guint64 offset;
	guint64 length;
	gchar   sum[BSC_CHECKSUM_HEX_MAX + 1];
} BscRun;

/**
 * BscDeviceEntry:
 * One device of a point.
 */
typedef struct {
	gchar   *name;           /* file-name-safe, unique in the point: "vdb1" */
	gchar   *node;           /* "/dev/vdb1" as given */
	gchar   *device;         /* "MAJ:MIN" at the backup */
	guint64  capacity;       /* bytes */
	guint32  block_size;     /* CBT tracking block size */
	gchar   *generation;     /* CBT generation UUID */
	guint8   changes_number; /* the snapshot's point in that generation */
	gboolean full;           /* runs cover the whole device */
	gchar   *data;           /* data file, relative to the point directory */
	guint64  bytes_read;     /* read from the image for this point */
	BscChecksum checksum;    /* of the runs */
	GArray  *runs;           /* BscRun, ascending, disjoint */
} BscDeviceEntry;

/**
 * BscManifest:
 * One backup point.
 */
typedef struct {
	guint      number;
	gint64     time_us;      /* wall clock of the take, µs since the epoch */
	gchar     *snapshot;     /* the snapshot's UUID */
	GPtrArray *devices;      /* BscDeviceEntry */
} BscManifest;

BscDeviceEntry *bsc_device_entry_new  (void);
void            bsc_device_entry_free (BscDeviceEntry *entry);
BscManifest    *bsc_manifest_new      (void);
void            bsc_manifest_free     (BscManifest *manifest);

void            bsc_json_member_int    (JsonBuilder *b, const gchar *name, gint64 value);
void            bsc_json_member_string (JsonBuilder *b, const gchar *name, const gchar *value);
void            bsc_device_entry_add_members (const BscDeviceEntry *entry, JsonBuilder *b);
gchar          *bsc_manifest_to_json   (const BscManifest *manifest);
BscManifest    *bsc_manifest_from_json (const gchar *json, gssize length, GError **error);
gboolean        bsc_manifest_save      (const BscManifest *manifest, const gchar *path,
                                        GError **error);
BscManifest    *bsc_manifest_load      (const gchar *path, GError **error);

BscDeviceEntry *bsc_manifest_find_device (const BscManifest *manifest, const gchar *node);
gchar          *bsc_point_dir_name       (guint number);

GPtrArray      *bsc_chain_load           (const gchar *dir, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BscDeviceEntry, bsc_device_entry_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BscManifest, bsc_manifest_free)

G_END_DECLS
