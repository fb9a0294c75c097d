/* vdisk.h — the disk a client sees, and the only thing protocols talk to.
 *
 * A vdisk is a stack of layers behind one small vtable of block operations
 * (read, write, flush, trim, write-zeroes, cache, extents), like nbdkit's
 * plugin/filter stack. Today the only layer is a read-only image
 * (vdisk_open_image); the shared cache and per-client overlays plug in
 * below this interface without the NBD or iSCSI code changing.
 *
 * A request is submitted with vdisk_submit(); its done() callback runs on
 * the same worker thread, possibly before vdisk_submit() returns (a read of
 * a hole needs no I/O). For reads, r->iov/r->niov describe the data on
 * completion; it stays valid until vd_req_release(r).
 */
#ifndef BL_VDISK_H
#define BL_VDISK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "cache.h"
#include "image.h"

enum vd_op { VD_READ, VD_WRITE, VD_FLUSH, VD_TRIM, VD_ZERO, VD_CACHE };

#define VD_F_FUA       1u  /* write-through */
#define VD_F_NO_HOLE   2u  /* zero: allocate, don't punch */
#define VD_F_FAST_ZERO 4u  /* zero: fail with -ENOTSUP rather than write slowly */

#define VD_MAX_PREFETCH (64ull << 20) /* bytes one VD_CACHE request may load */

#define VD_EXT_HOLE 1u
#define VD_EXT_ZERO 2u

struct vd_extent {
	uint64_t len;
	uint32_t flags;   /* VD_EXT_* */
};

struct vdisk;
struct vd_req;

/* One cache block a read waits on / holds pinned. */
struct vd_blk {
	struct cwait wt;
	struct cblock *b;
	struct vd_req *r;
	uint32_t lo, hi;                 /* the bytes of the block the request reads */
};

struct vd_req {
	struct vdisk *vd;
	struct worker *w;
	enum vd_op op;
	uint32_t flags;
	uint64_t off, len;
	const void *wdata;               /* VD_WRITE: len bytes, valid only during vdisk_submit():
	                                    a layer that needs them later copies them */
	void (*done)(struct vd_req *r, int res); /* res 0 or -errno */
	void *owner;                     /* the protocol's request */
	uint64_t client_id;              /* connection id: the cache tells clients apart */
	bool learn;                      /* part of a client's boot: record it (bootset.h) */
	bool seq;                        /* a read that starts where the connection's last one
					  * ended: the cache fills the rest of a block ahead
					  * (set with vd_req_track_seq) */
	/* read result: niov pieces, valid until vd_req_release() */
	struct iovec *iov;
	int niov;
	/* private to the layers */
	struct iovec iov_inline[2];
	struct vd_blk *blks, blk_inline[2];
	int nblk, pending, err;
	bool uncached;                   /* cache full: fell back to a direct read */
	void *mem;                       /* freed by vd_req_release */
	void *ext;                       /* a layer's per-request state ... */
	void (*ext_release)(struct vd_req *r); /* ... released by vd_req_release */
	struct image_read rd;
};

struct vdisk_ops {
	int (*read)(struct vd_req *r);   /* 0: done() will run; -errno: failed, done() will not run */
	int (*write)(struct vd_req *r);
	int (*flush)(struct vd_req *r);
	int (*trim)(struct vd_req *r);
	int (*zero)(struct vd_req *r);
	int (*cache)(struct vd_req *r);
	/* Fill up to max extents describing [off, off+len); returns count (>= 1) or -errno. */
	int (*extents)(struct vdisk *vd, uint64_t off, uint64_t len, struct vd_extent *out, int max);
	void (*destroy)(struct vdisk *vd);
};

struct vdisk {
	const struct vdisk_ops *ops;
	int refs;                        /* atomic */
	uint64_t size;
	bool read_only;
	bool multi_conn;                 /* flush on one connection covers all (NBD CAN_MULTI_CONN) */
	struct image *img;               /* the base image (for counters and names) */
	void *priv;
};

/* Set r->seq for a read at [off, off + len) and move the connection's
 * *next_read (where its last read ended) past it. */
static inline void vd_req_track_seq(struct vd_req *r, uint64_t *next_read, uint64_t off, uint64_t len)
{
	r->seq = off == *next_read;
	*next_read = off + len;
}

/* A read-only vdisk over img (takes a reference on img). */
int vdisk_open_image(struct image *img, struct vdisk **out);
/* A writable vdisk: ov over base (takes over ov and a reference on base). */
struct overlay;
int vdisk_open_overlay(struct vdisk *base, struct overlay *ov, struct vdisk **out);
/* The overlay under a vdisk, or NULL (image exports). */
struct overlay *vdisk_overlay(const struct vdisk *vd);
void vdisk_get(struct vdisk *vd);
void vdisk_put(struct vdisk *vd);

/* Validate (range, read-only) and start r. Returns 0 if done() will run,
 * or -errno if the request was refused at once (done() will not run):
 * -EINVAL out of range, -EPERM write to a read-only disk, -ENOMEM. */
int vdisk_submit(struct vd_req *r);
int vdisk_extents(struct vdisk *vd, uint64_t off, uint64_t len, struct vd_extent *out, int max);
/* Free what a completed read holds. */
void vd_req_release(struct vd_req *r);

/* Zero-filled, read-only memory of VD_ZEROS_LEN bytes for hole reads. */
#define VD_ZEROS_LEN (32u * 1024 * 1024 + 2 * IMAGE_ALIGN)
extern const uint8_t *vd_zeros;
int vdisk_global_init(void);

#endif
