/* overlay_io.c — the overlay as a vdisk layer: reads, writes, flush, trim,
 * write-zeroes and extents over a client's overlay and its base image.
 *
 * Reads: a range that the overlay has never touched goes straight to the
 * base (cache, zero copy). Otherwise the reply is assembled in one buffer:
 * RAM blocks copied under the lock, ZERO blocks zeroed, FILE runs read from
 * the data file and base runs read through the cache, asynchronously.
 *
 * Writes: the payload is copied first (the protocol's buffer is reused).
 * Under the lock each block is classified: RAM → copied now; FILE → written
 * at its offset; ABSENT/ZERO covered whole → a RAM slot if the tier has
 * room, else written to the file and marked FILE when the write completes;
 * ABSENT covered partly → "materialized": the base block is read through
 * the cache, merged, then stored like a whole block. A block whose first
 * write is in flight is busy: a later write touching it waits (queued on
 * the overlay, handed back to its own worker) so partial writes to one
 * block never lose each other.
 *
 * Flush (persistent/maintenance): rounds of fdatasync(data) → dirty map
 * pages → fdatasync(map); flushes arriving during a round join the next
 * one. FUA = write then flush. Ephemeral overlays answer flush at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "db.h"
#include "faults.h"
#include "log.h"
#include "overlay.h"
#include "util.h"
#include "vdisk.h"

struct ovd {
	struct overlay *ov;
	struct vdisk *base;
};

static inline struct ovd *OVD(struct vd_req *r) { return r->vd->priv; }

static void log_io_error(struct overlay *ov, const char *what, int res)
{
	uint64_t now = now_ns();
	if (res == -ENOSPC)
		ov->stat_enospc++;
	else
		ov->last_errno = -res; /* the main thread's tick marks the directory failed */
	ov->stat_errors++;
	if (now - ov->last_error_log_ns < 10000000000ull)
		return; /* once per 10 s per client: a client can trigger this at will */
	ov->last_error_log_ns = now;
	log_err("client %s: overlay %s failed on %s: %s%s", ov->name, what, ov->data_path, strerror(-res),
		res == -ENOSPC ? " (overlay disk full: free space there or add a disk to overlay/dirs)" : "");
}

/* ------------------------------------------------------------------ reads */

struct ovread {
	struct vd_req *r;
	uint8_t *buf;
	int pending, err;
	int nsub, nfile;
	struct vd_req *subs;
	struct ovfile {
		struct uop uop;
		struct ovread *o;
		uint64_t off;
		uint32_t len, got;
	} *files;
};

static void read_settle(struct ovread *o)
{
	if (--o->pending)
		return;
	struct vd_req *r = o->r;
	r->iov[0].iov_base = o->buf;
	r->iov[0].iov_len = r->len;
	r->niov = 1;
	int err = o->err;
	free(o->subs);
	free(o->files);
	free(o);
	r->done(r, err);
}

static void read_sub_done(struct vd_req *sub, int res)
{
	struct ovread *o = sub->owner;
	if (res == 0) {
		uint8_t *dst = o->buf + (sub->off - o->r->off);
		for (int i = 0; i < sub->niov; i++) {
			memcpy(dst, sub->iov[i].iov_base, sub->iov[i].iov_len);
			dst += sub->iov[i].iov_len;
		}
	} else {
		o->err = res;
	}
	vd_req_release(sub);
	read_settle(o);
}

static void file_read_submit(struct ovfile *f)
{
	struct ovd *d = OVD(f->o->r);
	struct io_uring_sqe *sqe = worker_sqe(f->o->r->w);
	io_uring_prep_read(sqe, d->ov->data_fd, f->o->buf + (f->off - f->o->r->off) + f->got, f->len - f->got,
			   f->off + f->got);
	io_uring_sqe_set_data64(sqe, ud_make(&f->uop, UD_OP));
}

static void file_read_done(struct uop *op, int res, uint32_t flags)
{
	struct ovfile *f = (struct ovfile *)op;
	struct vd_req *r = f->o->r;
	struct fault_ctx fc = { FS_OVERLAY_READ, r->vd->img->name, OVD(r)->ov->name, f->off + f->got, f->len - f->got };
	if (fault_inject(op, r->w, &fc, &res, flags))
		return;
	if (res == -EAGAIN || res == -EINTR) {
		file_read_submit(f);
		return;
	}
	if (res > 0) {
		f->got += res;
		if (f->got < f->len) {
			file_read_submit(f);
			return;
		}
	} else if (res < 0) {
		f->o->err = res;
	} else {
		/* End of file: the file is sized to the disk, so only after a
		 * shrink by hand; what is missing reads as zeros. */
		memset(f->o->buf + (f->off - f->o->r->off) + f->got, 0, f->len - f->got);
	}
	read_settle(f->o);
}

/* Classify [r->off, r->off+len) under the lock: fill RAM/ZERO pieces, plan
 * base and file runs. */
static void read_plan(struct ovread *o, struct overlay *ov)
{
	struct vd_req *r = o->r;
	uint64_t end = r->off + r->len, b0 = r->off / ov->bsize, b1 = (end - 1) / ov->bsize;
	for (uint64_t b = b0; b <= b1;) {
		uint8_t *ram;
		enum ov_state st = ov_get(ov, b, &ram);
		uint64_t e = b + 1;
		if (st == OV_ABSENT || st == OV_FILE)
			while (e <= b1 && ov_get(ov, e, NULL) == st)
				e++;
		uint64_t from = MAX(r->off, b * ov->bsize), to = MIN(end, e * ov->bsize);
		uint8_t *dst = o->buf + (from - r->off);
		switch (st) {
		case OV_ZERO:
			memset(dst, 0, to - from);
			break;
		case OV_RAM:
			memcpy(dst, ram + (from - b * ov->bsize), to - from);
			break;
		case OV_ABSENT:
			o->subs[o->nsub++] = (struct vd_req){ .off = from, .len = to - from };
			break;
		case OV_FILE:
			o->files[o->nfile++] = (struct ovfile){ .o = o, .off = from, .len = (uint32_t)(to - from) };
			break;
		}
		b = e;
	}
}

static int ovr_read(struct vd_req *r)
{
	struct ovd *d = OVD(r);
	uint64_t nb = (r->off + r->len - 1) / d->ov->bsize - r->off / d->ov->bsize + 1;
	struct ovread *o = calloc(1, sizeof *o);
	if (!o)
		return -ENOMEM;
	o->r = r;
	pthread_mutex_lock(&d->ov->lock);
	d->ov->stat_reads++;
	d->ov->stat_bytes_read += r->len;
	bool absent = true;
	for (uint64_t b = r->off / d->ov->bsize; b < r->off / d->ov->bsize + nb && absent; b++)
		absent = ov_get(d->ov, b, NULL) == OV_ABSENT;
	if (absent) {
		pthread_mutex_unlock(&d->ov->lock);
		free(o);
		return d->base->ops->read(r); /* same image, same request: zero copy from the cache */
	}
	o->buf = malloc(r->len);
	o->subs = calloc(nb, sizeof *o->subs);
	o->files = calloc(nb, sizeof *o->files);
	if (!o->buf || !o->subs || !o->files) {
		pthread_mutex_unlock(&d->ov->lock);
		free(o->buf);
		free(o->subs);
		free(o->files);
		free(o);
		return -ENOMEM;
	}
	read_plan(o, d->ov);
	pthread_mutex_unlock(&d->ov->lock);
	r->mem = o->buf; /* freed by vd_req_release */
	o->pending = o->nsub + o->nfile + 1;
	for (int i = 0; i < o->nsub; i++) {
		struct vd_req *s = &o->subs[i];
		s->vd = d->base;
		s->w = r->w;
		s->op = VD_READ;
		s->client_id = r->client_id;
		s->learn = r->learn;
		s->seq = r->seq;
		s->done = read_sub_done;
		s->owner = o;
		int e = vdisk_submit(s);
		if (e < 0) {
			o->err = e;
			o->pending--;
		}
	}
	for (int i = 0; i < o->nfile; i++) {
		o->files[i].uop.cb = file_read_done;
		file_read_submit(&o->files[i]);
	}
	read_settle(o);
	return 0;
}

/* ----------------------------------------------------------------- writes */

/* Source of the zeros written into partial blocks: OV_BLOCK_MAX bytes of
 * read-only anonymous memory (the kernel's zero page: no RAM), mapped once
 * by the first vdisk_open_overlay(). */
static const uint8_t *zero_block;
static pthread_once_t zero_once = PTHREAD_ONCE_INIT;

static void zero_map(void)
{
	void *m = mmap(NULL, OV_BLOCK_MAX, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	zero_block = m == MAP_FAILED ? NULL : m;
}

enum { IO_WRITE, IO_MAT, IO_PUNCH };

/* One asynchronous piece of a write, trim or zero. */
struct ovio {
	struct uop uop;
	struct ovwrite *o;
	struct ovio *next;
	int kind;
	uint64_t off;               /* disk offset = data file offset */
	uint32_t len, got;
	const uint8_t *src;
	uint8_t *own;               /* block buffer this piece owns (materialized block) */
	uint64_t blk;               /* IO_MAT */
	uint32_t in_off, in_len;    /* IO_MAT: the payload's part of the block */
	const uint8_t *in_src;
	struct vd_req sub;          /* IO_MAT: read of the base block */
};

struct ovwrite {
	struct cwait wt;            /* first: queued on a busy block, or waiting for a flush */
	struct vd_req *r;
	uint8_t *data;              /* payload copy; NULL for trim/zero */
	bool zero;                  /* trim/zero: whole blocks become ZERO, partial ones get zeros written */
	int pending, err;
	uint64_t *tofile, *busy;    /* blocks that become FILE at the end / busy blocks we own */
	size_t ntofile, nbusy, cap;
	struct ovio *ios, *tail;
};

static int ov_flush(struct vdisk *vd, struct worker *w, struct cwait *wt);

static int own_block(struct ovwrite *o, struct overlay *ov, uint64_t b, bool tofile)
{
	if (o->nbusy == o->cap || o->ntofile == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 8;
		uint64_t *nb = realloc(o->busy, cap * sizeof *nb);
		if (nb)
			o->busy = nb;
		uint64_t *nt = realloc(o->tofile, cap * sizeof *nt);
		if (nt)
			o->tofile = nt;
		if (!nb || !nt)
			return -ENOMEM;
		o->cap = cap;
	}
	if (ov_busy_add(ov, b) < 0)
		return -ENOMEM;
	o->busy[o->nbusy++] = b;
	if (tofile)
		o->tofile[o->ntofile++] = b;
	return 0;
}

static struct ovio *add_io(struct ovwrite *o, int kind, uint64_t off, uint32_t len, const uint8_t *src)
{
	struct ovio *t = o->tail;
	if (kind != IO_MAT && t && t->kind == kind && !t->own && t->off + t->len == off &&
	    (kind == IO_PUNCH || t->src + t->len == src)) {
		t->len += len; /* contiguous on disk and in the payload: one write */
		return t;
	}
	struct ovio *io = calloc(1, sizeof *io);
	if (!io)
		return NULL;
	*io = (struct ovio){ .o = o, .kind = kind, .off = off, .len = len, .src = src };
	if (t)
		t->next = io;
	else
		o->ios = io;
	o->tail = io;
	return io;
}

/* A block covered whole, or a ZERO block covered partly: RAM if there is room, else the file. */
static int plan_new_block(struct ovwrite *o, struct overlay *ov, uint64_t b, uint64_t ps, uint64_t pe,
			  const uint8_t *src)
{
	uint64_t bstart = b * ov->bsize, bend = MIN(bstart + ov->bsize, ov->size);
	bool full = ps == bstart && pe == bend;
	uint8_t *ram = ov_ram_alloc(ov, b);
	if (ram) {
		memset(ram, 0, ov->bsize);
		memcpy(ram + (ps - bstart), src, pe - ps);
		return 0;
	}
	if (own_block(o, ov, b, true) < 0)
		return -ENOMEM;
	if (full)
		return add_io(o, IO_WRITE, bstart, (uint32_t)(bend - bstart), src) ? 0 : -ENOMEM;
	uint8_t *blk = calloc(1, ov->bsize);
	struct ovio *io = blk ? add_io(o, IO_WRITE, bstart, (uint32_t)(bend - bstart), blk) : NULL;
	if (!io) {
		free(blk);
		return -ENOMEM;
	}
	memcpy(blk + (ps - bstart), src, pe - ps);
	io->own = blk;
	return 0;
}

/* Classify every block of the request (ov->lock held). Returns 0 (planned),
 * 1 (queued behind a busy block) or -errno. */
static int write_plan(struct ovwrite *o, struct overlay *ov)
{
	struct vd_req *r = o->r;
	uint64_t end = r->off + r->len, b0 = r->off / ov->bsize, b1 = (end - 1) / ov->bsize;
	for (uint64_t b = b0; b <= b1; b++)
		if (ov_busy(ov, b)) {
			o->wt.next = ov->waiters;
			ov->waiters = &o->wt;
			return 1;
		}
	for (uint64_t b = b0; b <= b1; b++) {
		uint64_t bstart = b * ov->bsize, bend = MIN(bstart + ov->bsize, ov->size);
		uint64_t ps = MAX(r->off, bstart), pe = MIN(end, bend);
		bool full = ps == bstart && pe == bend;
		const uint8_t *src = o->data ? o->data + (ps - r->off) : zero_block;
		uint8_t *ram;
		enum ov_state st = ov_get(ov, b, &ram);
		int e = 0;
		if (o->zero && full) {
			if (st == OV_FILE && (own_block(o, ov, b, false) < 0 || !add_io(o, IO_PUNCH, bstart, (uint32_t)(bend - bstart), NULL)))
				return -ENOMEM;
			e = ov_set(ov, b, OV_ZERO);
		} else if (o->zero && st == OV_ZERO) {
			/* already zero */
		} else if (st == OV_RAM) {
			memcpy(ram + (ps - bstart), src, pe - ps);
		} else if (st == OV_FILE) {
			e = add_io(o, IO_WRITE, ps, (uint32_t)(pe - ps), src) ? 0 : -ENOMEM;
		} else if (full || st == OV_ZERO) {
			e = plan_new_block(o, ov, b, ps, pe, src);
		} else {
			/* ABSENT, covered partly: merge with the base block first. */
			struct ovio *io = own_block(o, ov, b, false) < 0 ? NULL : add_io(o, IO_MAT, bstart, (uint32_t)(bend - bstart), NULL);
			if (!io)
				return -ENOMEM;
			io->blk = b;
			io->in_off = (uint32_t)(ps - bstart);
			io->in_len = (uint32_t)(pe - ps);
			io->in_src = src;
		}
		if (e < 0)
			return e;
	}
	return 0;
}

static void write_finish(struct ovwrite *o, int err)
{
	struct vd_req *r = o->r;
	free(o->data);
	free(o);
	r->done(r, err);
}

static void after_fua_flush(struct cwait *wt, int res)
{
	struct ovwrite *o = (struct ovwrite *)wt;
	write_finish(o, res);
}

static void write_settle(struct ovwrite *o)
{
	if (--o->pending)
		return;
	struct vd_req *r = o->r;
	struct overlay *ov = OVD(r)->ov;
	pthread_mutex_lock(&ov->lock);
	for (size_t i = 0; i < o->ntofile && !o->err; i++)
		ov_set(ov, o->tofile[i], OV_FILE);
	for (size_t i = 0; i < o->nbusy; i++)
		ov_busy_del(ov, o->busy[i]);
	struct cwait *waiters = ov->waiters;
	ov->waiters = NULL;
	if (!o->zero) {
		ov->stat_writes++;
		ov->stat_bytes_written += r->len;
	}
	pthread_mutex_unlock(&ov->lock);
	for (struct ovio *io = o->ios, *n; io; io = n) {
		n = io->next;
		free(io->own);
		free(io);
	}
	free(o->tofile);
	free(o->busy);
	o->ios = o->tail = NULL;
	o->tofile = o->busy = NULL;
	o->ntofile = o->nbusy = o->cap = 0;
	worker_wake_list(waiters, r->w, 0);
	if (!o->err && (r->flags & VD_F_FUA) && ov->mode != DB_MODE_EPHEMERAL) {
		o->wt.fn = after_fua_flush;
		ov_flush(r->vd, r->w, &o->wt);
		return;
	}
	write_finish(o, o->err);
}

static void io_submit(struct ovio *io)
{
	struct ovd *d = OVD(io->o->r);
	struct io_uring_sqe *sqe = worker_sqe(io->o->r->w);
	if (io->kind == IO_PUNCH)
		io_uring_prep_fallocate(sqe, d->ov->data_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, io->off, io->len);
	else
		io_uring_prep_write(sqe, d->ov->data_fd, io->src + io->got, io->len - io->got, io->off + io->got);
	io_uring_sqe_set_data64(sqe, ud_make(&io->uop, UD_OP));
}

static void io_done(struct uop *op, int res, uint32_t flags)
{
	struct ovio *io = (struct ovio *)op;
	struct overlay *ov = OVD(io->o->r)->ov;
	struct fault_ctx fc = { FS_OVERLAY_WRITE, io->o->r->vd->img->name, ov->name, io->off + io->got, io->len - io->got };
	if (io->kind != IO_PUNCH && fault_inject(op, io->o->r->w, &fc, &res, flags))
		return;
	if (res == -EAGAIN || res == -EINTR) {
		io_submit(io);
		return;
	}
	if (io->kind == IO_PUNCH) {
		if (res < 0)
			log_debug("client %s: punching a hole in the overlay failed: %s", ov->name, strerror(-res));
	} else if (res > 0 && (io->got += res) < io->len) {
		io_submit(io);
		return;
	} else if (res <= 0) {
		io->o->err = res < 0 ? res : -EIO;
		pthread_mutex_lock(&ov->lock);
		log_io_error(ov, "write", io->o->err);
		pthread_mutex_unlock(&ov->lock);
	}
	write_settle(io->o);
}

/* The base block of a partial write arrived: merge, then store it. */
static void mat_base_done(struct vd_req *sub, int res)
{
	struct ovio *io = sub->owner;
	struct ovwrite *o = io->o;
	struct overlay *ov = OVD(o->r)->ov;
	if (res < 0 || !(io->own = calloc(1, ov->bsize))) {
		o->err = res < 0 ? res : -ENOMEM;
		vd_req_release(sub);
		write_settle(o);
		return;
	}
	uint8_t *p = io->own;
	for (int i = 0; i < sub->niov; i++) {
		memcpy(p, sub->iov[i].iov_base, sub->iov[i].iov_len);
		p += sub->iov[i].iov_len;
	}
	vd_req_release(sub);
	memcpy(io->own + io->in_off, io->in_src, io->in_len);
	pthread_mutex_lock(&ov->lock);
	uint8_t *ram = ov_ram_alloc(ov, io->blk);
	if (ram)
		memcpy(ram, io->own, ov->bsize);
	else if (o->ntofile < o->cap)
		o->tofile[o->ntofile++] = io->blk; /* own_block reserved the room */
	pthread_mutex_unlock(&ov->lock);
	if (ram) {
		write_settle(o);
		return;
	}
	io->kind = IO_WRITE;
	io->src = io->own;
	io_submit(io);
}

static void io_start(struct ovio *io)
{
	io->uop.cb = io_done;
	if (io->kind != IO_MAT) {
		io_submit(io);
		return;
	}
	struct vd_req *r = io->o->r, *s = &io->sub;
	struct ovd *d = OVD(r);
	*s = (struct vd_req){ .vd = d->base, .w = r->w, .op = VD_READ, .off = io->off, .len = io->len,
			      .client_id = r->client_id, .done = mat_base_done, .owner = io };
	int e = vdisk_submit(s);
	if (e < 0) {
		io->o->err = e;
		write_settle(io->o);
	}
}

static void write_start(struct ovwrite *o)
{
	struct overlay *ov = OVD(o->r)->ov;
	pthread_mutex_lock(&ov->lock);
	int rc = write_plan(o, ov);
	pthread_mutex_unlock(&ov->lock);
	if (rc == 1)
		return; /* retried when the busy block is released */
	o->err = rc < 0 ? rc : 0;
	o->pending = 1;
	for (struct ovio *io = o->ios; io && !o->err; io = io->next)
		o->pending++;
	if (!o->err)
		for (struct ovio *io = o->ios; io; io = io->next)
			io_start(io);
	write_settle(o);
}

static void write_retry(struct cwait *wt, int res)
{
	(void)res;
	write_start((struct ovwrite *)wt);
}

static int write_common(struct vd_req *r, uint8_t *data, bool zero)
{
	struct ovwrite *o = calloc(1, sizeof *o);
	if (!o) {
		free(data);
		return -ENOMEM;
	}
	o->r = r;
	o->data = data;
	o->zero = zero;
	o->wt.w = r->w;
	o->wt.fn = write_retry;
	write_start(o);
	return 0;
}

static int ovr_write(struct vd_req *r)
{
	uint8_t *data = malloc(r->len);
	if (!data)
		return -ENOMEM;
	memcpy(data, r->wdata, r->len); /* the protocol's buffer is reused after submit */
	return write_common(r, data, false);
}

/* Trim and write-zeroes are the same here: whole blocks become ZERO (no
 * space held, a FILE block's space is punched out), the partial blocks at
 * the ends get zeros written, so a trimmed range always reads as zeros.
 * Write-zeroes with NO_HOLE writes zeros into every block instead. */
static int ovr_zero(struct vd_req *r)
{
	/* NO_HOLE: the client wants the space kept: write real zeros. */
	return write_common(r, NULL, !(r->op == VD_ZERO && (r->flags & VD_F_NO_HOLE)));
}

/* ------------------------------------------------------------------ flush */

struct flushround {
	struct uop uop;             /* the fsyncs */
	struct vdisk *vd;           /* held: the round outlives any one request */
	struct overlay *ov;
	struct worker *w;
	int stage, pending, err;
	size_t n;
	size_t *pages;
	uint8_t *buf;
	struct pageio {
		struct uop uop;
		struct flushround *f;
		size_t i;
		uint32_t got;
	} *pio;
};

static void round_go(struct flushround *f);

/* Snapshot the dirty map pages (ov->lock held). */
static struct flushround *round_begin(struct vdisk *vd, struct overlay *ov, struct worker *w)
{
	struct flushround *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->vd = vd;
	vdisk_get(vd);
	f->ov = ov;
	f->w = w;
	for (size_t p = 0; p < ov->map_pages; p++)
		f->n += ov->map_dirty[p];
	f->pages = calloc(f->n ? f->n : 1, sizeof *f->pages);
	f->pio = calloc(f->n ? f->n : 1, sizeof *f->pio);
	f->buf = malloc(f->n ? f->n * OV_MAP_PAGE : 1);
	if (!f->pages || !f->pio || !f->buf) {
		f->err = -ENOMEM;
		f->n = 0;
		return f;
	}
	size_t k = 0;
	for (size_t p = 0; p < ov->map_pages; p++)
		if (ov->map_dirty[p]) {
			ov->map_dirty[p] = 0;
			f->pages[k] = p;
			ov_encode_page(ov, p, f->buf + k * OV_MAP_PAGE);
			k++;
		}
	return f;
}

static void round_finish(struct flushround *f)
{
	struct overlay *ov = f->ov;
	pthread_mutex_lock(&ov->lock);
	if (f->err)
		for (size_t i = 0; i < f->n; i++)
			ov->map_dirty[f->pages[i]] = 1; /* the next round writes them again */
	struct cwait *waiters = ov->flush_wait;
	struct flushround *next = NULL;
	if (ov->flush_next) {
		ov->flush_wait = ov->flush_next;
		ov->flush_next = NULL;
		next = round_begin(f->vd, ov, f->w);
	} else {
		ov->flush_wait = NULL;
		ov->flushing = false;
	}
	ov->stat_flushes++;
	if (f->err)
		log_io_error(ov, "flush", f->err);
	pthread_mutex_unlock(&ov->lock);
	int err = f->err;
	struct worker *w = f->w;
	vdisk_put(f->vd);
	free(f->pages);
	free(f->pio);
	free(f->buf);
	free(f);
	if (next)
		round_go(next);
	worker_wake_list(waiters, w, err);
}

static void fsync_submit(struct flushround *f, int fd)
{
	struct io_uring_sqe *sqe = worker_sqe(f->w);
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, ud_make(&f->uop, UD_OP));
}

static void page_submit(struct pageio *p)
{
	struct flushround *f = p->f;
	struct io_uring_sqe *sqe = worker_sqe(f->w);
	io_uring_prep_write(sqe, f->ov->map_fd, f->buf + p->i * OV_MAP_PAGE + p->got, OV_MAP_PAGE - p->got,
			    (uint64_t)f->pages[p->i] * OV_MAP_PAGE + p->got);
	io_uring_sqe_set_data64(sqe, ud_make(&p->uop, UD_OP));
}

static void page_done(struct uop *op, int res, uint32_t flags)
{
	struct pageio *p = (struct pageio *)op;
	struct flushround *f = p->f;
	(void)flags;
	if (res == -EAGAIN || res == -EINTR || (res > 0 && (p->got += res) < OV_MAP_PAGE)) {
		page_submit(p);
		return;
	}
	if (res <= 0)
		f->err = res < 0 ? res : -EIO;
	if (--f->pending == 0) {
		f->stage = 3;
		if (f->err)
			round_finish(f);
		else
			fsync_submit(f, f->ov->map_fd);
	}
}

/* Stage 1: data fsync done → 2: map pages → 3: map fsync done. */
static void round_step(struct uop *op, int res, uint32_t flags)
{
	struct flushround *f = (struct flushround *)op;
	struct fault_ctx fc = { FS_OVERLAY_FLUSH, f->vd->img->name, f->ov->name, 0, f->ov->size };
	if (fault_inject(op, f->w, &fc, &res, flags))
		return;
	if (res < 0)
		f->err = res;
	if (f->err || f->stage == 3) {
		round_finish(f);
		return;
	}
	f->stage = 2;
	f->pending = (int)f->n;
	if (!f->n) {
		f->stage = 3;
		fsync_submit(f, f->ov->map_fd);
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		f->pio[i] = (struct pageio){ .uop.cb = page_done, .f = f, .i = i };
		page_submit(&f->pio[i]);
	}
}

static void round_go(struct flushround *f)
{
	if (f->err) {
		round_finish(f);
		return;
	}
	f->stage = 1;
	f->uop.cb = round_step;
	fsync_submit(f, f->ov->data_fd);
}

/* Make every write completed so far durable, then run wt on its worker. */
static int ov_flush(struct vdisk *vd, struct worker *w, struct cwait *wt)
{
	struct overlay *ov = ((struct ovd *)vd->priv)->ov;
	if (ov->mode == DB_MODE_EPHEMERAL) {
		wt->fn(wt, 0); /* thrown away at the next boot: never pays for fsync */
		return 0;
	}
	pthread_mutex_lock(&ov->lock);
	if (ov->flushing) {
		/* A round is running; it may have snapshotted before our writes: join the next. */
		wt->next = ov->flush_next;
		ov->flush_next = wt;
		pthread_mutex_unlock(&ov->lock);
		return 0;
	}
	ov->flushing = true;
	wt->next = NULL;
	ov->flush_wait = wt;
	struct flushround *f = round_begin(vd, ov, w);
	pthread_mutex_unlock(&ov->lock);
	if (!f) {
		pthread_mutex_lock(&ov->lock);
		ov->flushing = false;
		ov->flush_wait = NULL;
		pthread_mutex_unlock(&ov->lock);
		return -ENOMEM;
	}
	round_go(f);
	return 0;
}

struct ovflush {
	struct cwait wt;
	struct vd_req *r;
};

static void flush_done(struct cwait *wt, int res)
{
	struct ovflush *fl = (struct ovflush *)wt;
	struct vd_req *r = fl->r;
	free(fl);
	r->done(r, res);
}

static int ovr_flush(struct vd_req *r)
{
	struct ovflush *fl = calloc(1, sizeof *fl);
	if (!fl)
		return -ENOMEM;
	fl->r = r;
	fl->wt.w = r->w;
	fl->wt.fn = flush_done;
	int e = ov_flush(r->vd, r->w, &fl->wt);
	if (e < 0)
		free(fl);
	return e;
}

/* ---------------------------------------------------------------- extents */

static void ext_push(struct vd_extent *out, int *n, uint64_t len, uint32_t flags)
{
	if (*n > 0 && out[*n - 1].flags == flags)
		out[*n - 1].len += len;
	else
		out[(*n)++] = (struct vd_extent){ .len = len, .flags = flags };
}

static int ovr_extents(struct vdisk *vd, uint64_t off, uint64_t len, struct vd_extent *out, int max)
{
	struct ovd *d = vd->priv;
	struct overlay *ov = d->ov;
	int n = 0;
	pthread_mutex_lock(&ov->lock);
	while (len && n < max) {
		uint64_t b = off / ov->bsize, e = b + 1;
		enum ov_state st = ov_get(ov, b, NULL);
		while (e * ov->bsize < off + len && ov_get(ov, e, NULL) == st)
			e++;
		uint64_t run = MIN(off + len, e * ov->bsize) - off;
		if (st == OV_ABSENT) {
			struct vd_extent tmp[64];
			int k = d->base->ops->extents(d->base, off, run, tmp, MIN(max - n + 1, 64));
			uint64_t covered = 0;
			for (int i = 0; i < k && n < max; i++) {
				ext_push(out, &n, tmp[i].len, tmp[i].flags);
				covered += tmp[i].len;
			}
			if (k <= 0 || covered == 0)
				break;
			run = MIN(run, covered);
		} else {
			ext_push(out, &n, run, st == OV_ZERO ? VD_EXT_HOLE | VD_EXT_ZERO : 0);
		}
		off += run;
		len -= run;
	}
	pthread_mutex_unlock(&ov->lock);
	return n ? n : -EIO;
}

/* ------------------------------------------------------------------ glue */

static int ovr_cache(struct vd_req *r)
{
	return OVD(r)->base->ops->cache(r);
}

static void ovr_destroy(struct vdisk *vd)
{
	struct ovd *d = vd->priv;
	/* The last user is gone: what a persistent client wrote without a
	 * flush is kept too (a flush round cannot be running: it holds a ref). */
	overlay_sync_now(d->ov);
	overlay_close(d->ov);
	vdisk_put(d->base);
	image_put(vd->img);
	free(d);
	free(vd);
}

static const struct vdisk_ops overlay_ops = {
	.read = ovr_read,
	.write = ovr_write,
	.flush = ovr_flush,
	.trim = ovr_zero,
	.zero = ovr_zero,
	.cache = ovr_cache,
	.extents = ovr_extents,
	.destroy = ovr_destroy,
};

int vdisk_open_overlay(struct vdisk *base, struct overlay *ov, struct vdisk **out)
{
	pthread_once(&zero_once, zero_map);
	if (!zero_block)
		return -ENOMEM;
	struct vdisk *vd = calloc(1, sizeof *vd);
	struct ovd *d = calloc(1, sizeof *d);
	if (!vd || !d) {
		free(vd);
		free(d);
		return -ENOMEM;
	}
	d->ov = ov;
	d->base = base;
	vdisk_get(base);
	vd->ops = &overlay_ops;
	vd->refs = 1;
	vd->size = base->size;
	vd->read_only = false;
	vd->multi_conn = true; /* one overlay per client: every connection sees every write, flush covers all */
	vd->img = base->img;
	image_get(vd->img);
	vd->priv = d;
	*out = vd;
	return 0;
}

struct overlay *vdisk_overlay(const struct vdisk *vd)
{
	return vd->ops == &overlay_ops ? ((struct ovd *)vd->priv)->ov : NULL;
}
