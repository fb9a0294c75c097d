/* image.h — a golden image file, read with O_DIRECT through io_uring.
 *
 * An image is opened once (by the main thread, when the export table is
 * built) and shared, reference-counted, by every connection of every
 * worker. Images are immutable while served, so the map of data extents
 * (from SEEK_DATA/SEEK_HOLE at open) stays true: holes are answered with
 * zeros without touching the disk, and block status needs no syscall.
 *
 * Reads are asynchronous on the calling worker's ring. O_DIRECT needs
 * aligned offsets, lengths and buffers: image_read() widens the request to
 * IMAGE_ALIGN boundaries and reads into an aligned buffer; the caller finds
 * its bytes at buf + (off - aligned_off). A read that reaches the end of a
 * file whose size is not a multiple of IMAGE_ALIGN comes back short, as
 * O_DIRECT does, and that is handled here.
 */
#ifndef BL_IMAGE_H
#define BL_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

#define IMAGE_ALIGN 4096u

struct db_image;

struct extent {
	uint64_t off, len;
};

struct overlay;

/* A committed version's changes: an overlay data file and its block map,
 * frozen (read-only). */
struct image_delta {
	int fd;
	struct overlay *map;
};

/* Where a version's delta files are (from the database). */
struct image_layer_spec {
	const char *data_path, *map_path;
	uint32_t block_size;      /* the delta's granularity in bytes (0 = OV_BLOCK_DEFAULT) */
};

struct image {
	int refs;                 /* atomic */
	int64_t id;               /* the version's id: the cache's key */
	int64_t image_id;         /* images.id */
	int version;              /* version number (1 = as added) */
	struct image_delta *deltas; /* versions after the base, bottom to top */
	int ndeltas;
	char name[64];
	char path[1024];
	int fd;
	bool direct;              /* opened with O_DIRECT */
	uint64_t size;
	uint64_t ino, dev, mtime_ns; /* to notice the file being replaced */
	struct extent *data;      /* sorted data extents; everything else is a hole */
	size_t ndata;
	/* boot set (bootset.c): one bit per cache block */
	uint8_t *bootset;
	size_t bootset_len;
	uint32_t bootset_bs;
	bool bootset_dirty;
	/* counters (relaxed atomics) */
	uint64_t stat_requests, stat_bytes_read, stat_disk_reads, stat_disk_bytes, stat_errors;
	unsigned stat_connections;
	uint64_t err_log_ns;      /* last read error logged (atomic; one line per 10 s) */
};

/* Open version `version` (id version_id) of the image described by di: its
 * base file plus ndeltas committed deltas, bottom to top. On failure err
 * says why in one line ("image 'win10': cannot open /srv/win10.img: No such
 * file or directory"). */
int image_open(const struct db_image *di, int64_t version_id, int version,
	       const struct image_layer_spec *deltas, int ndeltas,
	       struct image **out, char *err, size_t errlen);
void image_get(struct image *img);
void image_put(struct image *img);

/* True if [off, off+len) is entirely a hole (reads as zeros). */
bool image_is_hole(const struct image *img, uint64_t off, uint64_t len);
/* Status of the range starting at off: sets *len_out to the length (<= len)
 * of the run of the same kind and returns true if that run is a hole. */
bool image_extent_at(const struct image *img, uint64_t off, uint64_t len, uint64_t *len_out);

/* One asynchronous aligned read: the base file (O_DIRECT), then the
 * blocks the version's deltas changed, read over it. */
struct image_read {
	struct uop uop;
	struct image *img;
	struct worker *w;
	void *buf;                /* IMAGE_ALIGN-aligned, alen bytes */
	uint64_t aoff;            /* aligned start */
	size_t alen;              /* aligned length */
	size_t want;              /* bytes that exist in the file from aoff (<= alen) */
	size_t got;
	int pending, err;         /* delta phase */
	struct image_dread *dreads;
	void (*done)(struct image_read *r, int res); /* res 0 or -errno */
};

/* Allocate r->buf (the owner frees it) and read [off, off+len) on w's ring.
 * Returns 0 (done will be called) or -errno (it will not). */
int image_read(struct image_read *r, struct worker *w, struct image *img, uint64_t off, uint64_t len);
/* Read the aligned range [aoff, aoff+alen) into buf (IMAGE_ALIGN-aligned,
 * e.g. a cache block). Returns 0 (done will be called) or -errno. */
int image_read_into(struct image_read *r, struct worker *w, struct image *img, uint64_t aoff,
		    size_t alen, void *buf);

#endif
