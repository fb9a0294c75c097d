/* vdisk.c — request validation and the read-only image layer; see vdisk.h. */
#include "vdisk.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "bootset.h"
#include "util.h"

const uint8_t *vd_zeros;

int vdisk_global_init(void)
{
	/* Private anonymous read-only mapping: every page is the kernel's zero page. */
	void *p = mmap(NULL, VD_ZEROS_LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	vd_zeros = p;
	return 0;
}

void vdisk_get(struct vdisk *vd)
{
	__atomic_fetch_add(&vd->refs, 1, __ATOMIC_RELAXED);
}

void vdisk_put(struct vdisk *vd)
{
	if (vd && __atomic_sub_fetch(&vd->refs, 1, __ATOMIC_ACQ_REL) == 0)
		vd->ops->destroy(vd);
}

int vdisk_submit(struct vd_req *r)
{
	struct vdisk *vd = r->vd;
	r->mem = NULL;
	r->ext = NULL;
	r->ext_release = NULL;
	r->niov = 0;
	r->nblk = 0;
	r->iov = r->iov_inline;
	r->blks = r->blk_inline;
	if (r->off > vd->size || r->len > vd->size - r->off)
		return -EINVAL;
	if (vd->read_only && (r->op == VD_WRITE || r->op == VD_TRIM || r->op == VD_ZERO))
		return -EPERM;
	__atomic_fetch_add(&vd->img->stat_requests, 1, __ATOMIC_RELAXED);
	switch (r->op) {
	case VD_READ:  return vd->ops->read(r);
	case VD_WRITE: return vd->ops->write(r);
	case VD_FLUSH: return vd->ops->flush(r);
	case VD_TRIM:  return vd->ops->trim(r);
	case VD_ZERO:  return vd->ops->zero(r);
	case VD_CACHE: return vd->ops->cache(r);
	}
	return -EINVAL;
}

int vdisk_extents(struct vdisk *vd, uint64_t off, uint64_t len, struct vd_extent *out, int max)
{
	if (off > vd->size || len > vd->size - off || len == 0 || max < 1)
		return -EINVAL;
	return vd->ops->extents(vd, off, len, out, max);
}

static void unpin_all(struct vd_req *r)
{
	for (int i = 0; i < r->nblk; i++)
		if (r->blks[i].b)
			cache_unpin(r->blks[i].b);
	r->nblk = 0;
}

void vd_req_release(struct vd_req *r)
{
	if (r->ext_release)
		r->ext_release(r);
	r->ext_release = NULL;
	unpin_all(r);
	free(r->mem);
	r->mem = NULL;
	if (r->iov != r->iov_inline)
		free(r->iov);
	if (r->blks != r->blk_inline)
		free(r->blks);
	r->iov = r->iov_inline;
	r->blks = r->blk_inline;
}

/* --- read-only image layer --- */

static void img_read_done(struct image_read *rd, int res)
{
	struct vd_req *r = (struct vd_req *)((uint8_t *)rd - __builtin_offsetof(struct vd_req, rd));
	r->mem = rd->buf;
	if (res == 0) {
		r->iov[0].iov_base = (uint8_t *)rd->buf + (r->off - rd->aoff);
		r->iov[0].iov_len = r->len;
		r->niov = 1;
		__atomic_fetch_add(&r->vd->img->stat_bytes_read, r->len, __ATOMIC_RELAXED);
	}
	r->done(r, res);
}

/* Read without the cache: one aligned O_DIRECT read into a private buffer. */
static int direct_read(struct vd_req *r)
{
	r->rd.done = img_read_done;
	return image_read(&r->rd, r->w, r->vd->img, r->off, r->len);
}

/* Every block has the bytes: point the result at them. */
static void cached_complete(struct vd_req *r)
{
	for (int i = 0; i < r->nblk; i++) {
		struct vd_blk *vb = &r->blks[i];
		r->iov[i].iov_base = cache_data(vb->b) + vb->lo;
		r->iov[i].iov_len = vb->hi - vb->lo;
	}
	r->niov = r->nblk;
	__atomic_fetch_add(&r->vd->img->stat_bytes_read, r->len, __ATOMIC_RELAXED);
	r->done(r, 0);
}

/* One of the request's blocks is ready (or failed); the last one completes it. */
static void blk_settled(struct vd_req *r)
{
	if (--r->pending)
		return;
	if (r->err) {
		unpin_all(r);
		r->done(r, r->err);
	} else if (r->uncached) {
		unpin_all(r);
		int e = direct_read(r);
		if (e < 0)
			r->done(r, e);
	} else {
		cached_complete(r);
	}
}

/* Act on the cache's answer for one block of a request: true if the
 * block is settled (its bytes are there, or the request reads around the
 * cache); false if blk_ready() will run for it. */
static bool blk_answer(struct vd_blk *vb, enum cache_get_result res)
{
	switch (res) {
	case CACHE_LOAD:
		cache_load(vb->b, vb->r->w, &vb->wt);
		return false;
	case CACHE_WAIT:
		return false;
	case CACHE_FULL:
		vb->r->uncached = true;
		return true;
	case CACHE_HIT:
		break;
	}
	return true;
}

/* A load the block waited on is done: its bytes may still miss a part. */
static void blk_ready(struct cwait *wt, int res)
{
	struct vd_blk *vb = (struct vd_blk *)wt;
	struct vd_req *r = vb->r;
	if (res < 0)
		r->err = res;
	else if (!r->err && !blk_answer(vb, cache_recheck(vb->b, r->vd->img, vb->lo, vb->hi, r->seq, &vb->wt)))
		return;
	blk_settled(r);
}

static int cached_read(struct vd_req *r)
{
	uint32_t bs = cache_block_size();
	uint64_t b0 = r->off / bs, b1 = (r->off + r->len - 1) / bs;
	int n = (int)(b1 - b0 + 1);
	if (n > 2) {
		r->blks = malloc(n * sizeof *r->blks);
		r->iov = malloc(n * sizeof *r->iov);
		if (!r->blks || !r->iov)
			return -ENOMEM; /* vd_req_release frees what was allocated */
	}
	if (r->learn)
		bootset_mark(r->vd->img, b0, b1);
	r->err = 0;
	r->uncached = false;
	r->pending = n + 1; /* +1: nothing completes before the loop is done */
	r->nblk = n;
	uint64_t end = r->off + r->len;
	for (int i = 0; i < n; i++) {
		struct vd_blk *vb = &r->blks[i];
		uint64_t bstart = (b0 + i) * bs;
		vb->r = r;
		vb->b = NULL;
		vb->lo = (uint32_t)(MAX(r->off, bstart) - bstart);
		vb->hi = (uint32_t)(MIN(end, bstart + bs) - bstart);
		vb->wt.w = r->w;
		vb->wt.fn = blk_ready;
		/* vb->b stays NULL (nothing to unpin) when the cache is full. */
		if (blk_answer(vb, cache_get(r->vd->img, b0 + i, vb->lo, vb->hi, r->seq, r->client_id, &vb->wt, &vb->b)))
			r->pending--;
	}
	blk_settled(r);
	return 0;
}

static int img_read(struct vd_req *r)
{
	struct image *img = r->vd->img;
	if (r->len == 0 || image_is_hole(img, r->off, r->len)) {
		r->iov[0].iov_base = (void *)vd_zeros;
		r->iov[0].iov_len = r->len;
		r->niov = 1;
		__atomic_fetch_add(&img->stat_bytes_read, r->len, __ATOMIC_RELAXED);
		r->done(r, 0);
		return 0;
	}
	return cache_enabled() ? cached_read(r) : direct_read(r);
}

/* NBD_CMD_CACHE / prefetch: load the range into the cache, answer at once. */
static int img_cache(struct vd_req *r)
{
	if (cache_enabled()) {
		/* Bounded: a client may not flush the cache with one request. */
		uint32_t bs = cache_block_size();
		uint64_t last = (r->off + MIN(r->len, VD_MAX_PREFETCH) - 1) / bs;
		for (uint64_t b = r->off / bs; b <= last; b++)
			cache_prefetch(r->vd->img, b, r->w);
	}
	r->done(r, 0);
	return 0;
}

static int img_noop(struct vd_req *r)
{
	r->done(r, 0);
	return 0;
}

static int img_refuse(struct vd_req *r)
{
	return -EPERM;
}

static int img_extents(struct vdisk *vd, uint64_t off, uint64_t len, struct vd_extent *out, int max)
{
	int n = 0;
	while (len && n < max) {
		uint64_t l;
		bool hole = image_extent_at(vd->img, off, len, &l);
		uint32_t f = hole ? VD_EXT_HOLE | VD_EXT_ZERO : 0;
		if (n > 0 && out[n - 1].flags == f)
			out[n - 1].len += l;
		else
			out[n++] = (struct vd_extent){ .len = l, .flags = f };
		off += l;
		len -= l;
	}
	return n;
}

static void img_destroy(struct vdisk *vd)
{
	image_put(vd->img);
	free(vd);
}

static const struct vdisk_ops image_ops = {
	.read = img_read,
	.write = img_refuse,
	.flush = img_noop,
	.trim = img_refuse,
	.zero = img_refuse,
	.cache = img_cache,
	.extents = img_extents,
	.destroy = img_destroy,
};

int vdisk_open_image(struct image *img, struct vdisk **out)
{
	struct vdisk *vd = calloc(1, sizeof *vd);
	if (!vd)
		return -ENOMEM;
	vd->ops = &image_ops;
	vd->refs = 1;
	vd->size = img->size;
	vd->read_only = true;
	vd->multi_conn = true;
	image_get(img);
	vd->img = img;
	*out = vd;
	return 0;
}
