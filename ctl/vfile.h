/* vfile.h — the files behind image versions and client overlays.
 *
 * bootlinkctl's file work for `image commit/flatten` and `overlay ...`:
 * finding a client's overlay files in overlay/dirs, reading their .info
 * and .map, copying a sparse file (data extents only), and merging a
 * version's chain (base file + deltas) into one flat file. No database
 * access here; the commands decide what to do with the results.
 *
 * File formats are bootlinkd's (daemon/overlay.h): per client
 * <dir>/<mac without colons>.data (sparse, disk-sized, block data at its
 * disk offset), .map (2 bits per block of the overlay's granularity: block
 * b in byte b/4 at bits 2*(b%4); 0 absent, 1 zero, 2 data) and .info
 * ("version=KEY epoch=N block=BYTES", KEY = image id << 24 | version
 * number; without block= the granularity is 4 KiB). A committed delta keeps
 * its granularity in the database (versions.block_size).
 *
 * Functions return 0 (or a count) or -errno; the ones doing long I/O also
 * write a one-line reason naming the file to err. Their progress callback
 * (may be NULL) runs after each chunk; a non-zero return stops the work
 * with -ECANCELED, leaving the destination incomplete for the caller to
 * remove.
 */
#ifndef CTL_VFILE_H
#define CTL_VFILE_H

#include "conf.h"
#include "db.h"
#include "ident.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VF_BLOCK 4096u                 /* smallest (and default) overlay granularity */
#define VF_BLOCK_MAX (1u << 20)        /* largest */
#define VF_PATH_MAX (CONF_PATH_MAX + 32)

/* Map states (the .map file's 2-bit codes). */
enum { VF_ABSENT = 0, VF_ZERO = 1, VF_DATA = 2 };

/* True if bytes is an overlay granularity bootlinkd uses. */
static inline bool vfile_block_valid(uint64_t bytes)
{
	return bytes >= VF_BLOCK && bytes <= VF_BLOCK_MAX && (bytes & (bytes - 1)) == 0;
}

/* Key bootlinkd writes in .info for an image version. */
static inline int64_t vfile_version_key(int64_t image_id, int number)
{
	return image_id << 24 | (number & 0xffffff);
}

/* One client's overlay files. */
struct vfile_overlay {
	char dir[CONF_PATH_MAX];
	char data[VF_PATH_MAX], map[VF_PATH_MAX], info[VF_PATH_MAX];
	bool has_info;                   /* .info was readable and well-formed */
	int64_t info_key, info_epoch;    /* what .info says */
	uint32_t info_block;             /* its granularity in bytes (4096 if .info does not say) */
	uint64_t data_size;              /* apparent size of .data (the disk size) */
	uint64_t data_bytes;             /* allocated bytes of .data */
	uint64_t bytes;                  /* allocated bytes of .data + .map + .info */
};

/* The directories of overlay/dirs (relative ones under conf->dir); at
 * most max. Returns how many. */
int vfile_overlay_dirs(const struct bl_conf *conf, char (*dirs)[CONF_PATH_MAX], int max);
/* Look for mac's overlay (a .map, as bootlinkd does) in overlay/dirs:
 * 1 found (*out filled), 0 none, -errno. */
int vfile_find_overlay(const struct bl_conf *conf, const char *mac, struct vfile_overlay *out);
/* Re-read ov->info into ov->has_info/info_key/info_epoch. */
void vfile_read_info(struct vfile_overlay *ov);
/* Delete the overlay's .data, .map and .info (missing ones are fine). */
int vfile_remove_overlay(const struct vfile_overlay *ov);

/* Allocated bytes of a file (st_blocks * 512); 0 if it cannot be read. */
uint64_t vfile_disk_bytes(const char *path);
/* Count the blocks of each state in a map file: counts[VF_ABSENT..VF_DATA]
 * over the blocks the file covers. */
int vfile_map_count(const char *map, uint64_t counts[3]);

/* Copy src to dst (created or truncated, mode 0600) with the same size,
 * writing only src's data extents (SEEK_DATA/SEEK_HOLE), then fsync dst. */
int vfile_copy_sparse(const char *src, const char *dst, ident_progress_fn cb, void *arg,
		      char *err, size_t errlen);

/* Write what the chain reads as (deltas over the base, topmost wins) to
 * dst, the base's size; blocks that read as zeros stay holes. fsync dst.
 * *size gets the size written. */
int vfile_flatten(const struct db_chain *ch, const char *dst, uint64_t *size, ident_progress_fn cb,
		  void *arg, char *err, size_t errlen);

/* fsync the directory holding path (after creating or renaming in it). */
int vfile_sync_parent(const char *path);

#endif
