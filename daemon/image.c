/* image.c — see image.h. */
#include "image.h"
#include "faults.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "overlay.h"
#include "util.h"

/* Build the data-extent map with SEEK_DATA/SEEK_HOLE. Filesystems without
 * support report the whole file as data, which is correct, only slower. */
static int map_extents(struct image *img)
{
	size_t cap = 16, n = 0;
	struct extent *v = malloc(cap * sizeof *v);
	if (!v)
		return -ENOMEM;
	off_t pos = 0;
	while ((uint64_t)pos < img->size) {
		off_t d = lseek(img->fd, pos, SEEK_DATA);
		if (d < 0) {
			if (errno == ENXIO)
				break; /* only a hole remains */
			d = pos;   /* unsupported: treat as data */
		}
		off_t h = lseek(img->fd, d, SEEK_HOLE);
		if (h < 0 || (uint64_t)h > img->size)
			h = img->size;
		if (n == cap) {
			struct extent *nv = realloc(v, (cap *= 2) * sizeof *v);
			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n].off = d;
		v[n].len = h - d;
		n++;
		pos = h;
	}
	img->data = v;
	img->ndata = n;
	return 0;
}

/* Open the committed deltas of a version (read-only maps). */
static int open_deltas(struct image *img, const struct db_image *di, const struct image_layer_spec *sp, int n,
		       char *err, size_t errlen)
{
	img->deltas = calloc(n ? n : 1, sizeof *img->deltas);
	if (!img->deltas)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		struct image_delta *d = &img->deltas[i];
		int r = overlay_open_ro(di->name, img->size, sp[i].block_size ? sp[i].block_size : OV_BLOCK_DEFAULT,
					sp[i].data_path, sp[i].map_path, &d->map, err, errlen);
		if (r < 0)
			return r;
		d->fd = d->map->data_fd;
		img->ndeltas++;
	}
	return 0;
}

int image_open(const struct db_image *di, int64_t version_id, int version,
	       const struct image_layer_spec *deltas, int ndeltas,
	       struct image **out, char *err, size_t errlen)
{
	struct image *img = calloc(1, sizeof *img);
	if (!img)
		return -ENOMEM;
	img->refs = 1;
	img->id = version_id;
	img->image_id = di->id;
	img->version = version;
	snprintf(img->name, sizeof img->name, "%s", di->name);
	snprintf(img->path, sizeof img->path, "%s", di->path);
	img->direct = true;
	img->fd = open(di->path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (img->fd < 0 && errno == EINVAL) {
		/* Filesystem without O_DIRECT (tmpfs on old kernels): buffered. */
		img->direct = false;
		img->fd = open(di->path, O_RDONLY | O_CLOEXEC);
	}
	int r;
	struct stat st;
	if (img->fd < 0 || fstat(img->fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "image '%s': cannot open %s: %s (moved? run: bootlinkctl image repair %s)",
			 di->name, di->path, strerror(-r), di->name);
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, errlen, "image '%s': %s is not a regular file", di->name, di->path);
		goto fail;
	}
	img->size = st.st_size;
	img->ino = st.st_ino;
	img->dev = st.st_dev;
	img->mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + st.st_mtim.tv_nsec;
	if (di->size && di->size != img->size)
		log_warn("image '%s': %s is %llu bytes, the database says %llu (run: bootlinkctl image verify %s)",
			 di->name, di->path, (unsigned long long)img->size, (unsigned long long)di->size,
			 di->name);
	r = map_extents(img);
	if (r < 0) {
		snprintf(err, errlen, "image '%s': out of memory mapping extents", di->name);
		goto fail;
	}
	r = open_deltas(img, di, deltas, ndeltas, err, errlen);
	if (r < 0)
		goto fail;
	*out = img;
	return 0;
fail:
	img->refs = 1;
	image_put(img);
	return r;
}

void image_get(struct image *img)
{
	__atomic_fetch_add(&img->refs, 1, __ATOMIC_RELAXED);
}

void image_put(struct image *img)
{
	if (!img || __atomic_sub_fetch(&img->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (img->fd >= 0)
		close(img->fd);
	for (int i = 0; i < img->ndeltas; i++)
		overlay_close(img->deltas[i].map);
	free(img->deltas);
	free(img->bootset);
	free(img->data);
	free(img);
}

/* Index of the first data extent ending after off. */
static size_t first_extent_after(const struct image *img, uint64_t off)
{
	size_t lo = 0, hi = img->ndata;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (img->data[mid].off + img->data[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The topmost delta state of the OV_BLOCK_MIN block at byte offset off
 * (OV_ABSENT if no delta has it). Each delta has its own granularity, a
 * multiple of OV_BLOCK_MIN, so a 4 KiB block lies in one block of each. */
static enum ov_state delta_state(const struct image *img, uint64_t off, int *which)
{
	for (int i = img->ndeltas; i-- > 0;) {
		const struct overlay *m = img->deltas[i].map;
		enum ov_state st = ov_get(m, off / m->bsize, NULL);
		if (st != OV_ABSENT) {
			*which = i;
			return st;
		}
	}
	return OV_ABSENT;
}

static bool base_extent_at(const struct image *img, uint64_t off, uint64_t len, uint64_t *len_out);

bool image_extent_at(const struct image *img, uint64_t off, uint64_t len, uint64_t *len_out)
{
	if (!img->ndeltas)
		return base_extent_at(img, off, len, len_out);
	/* Walk 4 KiB blocks: a delta's block decides; else the base does. */
	int which;
	uint64_t b = off / OV_BLOCK_MIN;
	enum ov_state st = delta_state(img, off, &which);
	bool hole;
	uint64_t run;
	if (st == OV_ABSENT)
		hole = base_extent_at(img, off, MIN(len, (b + 1) * OV_BLOCK_MIN - off), &run);
	else {
		hole = st == OV_ZERO;
		run = MIN(len, (b + 1) * OV_BLOCK_MIN - off);
	}
	while (run < len) {
		uint64_t o = off + run, l;
		enum ov_state s2 = delta_state(img, o, &which);
		bool h2 = s2 == OV_ABSENT ? base_extent_at(img, o, MIN(len - run, OV_BLOCK_MIN), &l) : s2 == OV_ZERO;
		if (s2 != OV_ABSENT)
			l = MIN(len - run, OV_BLOCK_MIN);
		if (h2 != hole)
			break;
		run += l;
	}
	*len_out = run;
	return hole;
}

static bool base_extent_at(const struct image *img, uint64_t off, uint64_t len, uint64_t *len_out)
{
	size_t i = first_extent_after(img, off);
	if (i < img->ndata && img->data[i].off <= off) {
		uint64_t end = img->data[i].off + img->data[i].len;
		*len_out = MIN(len, end - off);
		return false;
	}
	uint64_t next = i < img->ndata ? img->data[i].off : img->size;
	if (next < off)
		next = off;
	*len_out = MIN(len, MAX(next - off, 1));
	return true;
}

bool image_is_hole(const struct image *img, uint64_t off, uint64_t len)
{
	uint64_t n;
	return image_extent_at(img, off, len, &n) && n == len;
}

struct image_dread {
	struct uop uop;
	struct image_read *r;
	int fd;
	uint64_t off;            /* disk offset */
	uint32_t len, got;
};

static void submit_read(struct image_read *r)
{
	struct io_uring_sqe *sqe = worker_sqe(r->w);
	io_uring_prep_read(sqe, r->img->fd, (uint8_t *)r->buf + r->got, r->alen - r->got, r->aoff + r->got);
	io_uring_sqe_set_data64(sqe, ud_make(&r->uop, UD_OP));
}

static void read_finish(struct image_read *r, int res)
{
	free(r->dreads);
	r->dreads = NULL;
	if (res < 0) {
		struct image *img = r->img;
		uint64_t now = now_ns(), last = __atomic_load_n(&img->err_log_ns, __ATOMIC_RELAXED);
		__atomic_fetch_add(&img->stat_errors, 1, __ATOMIC_RELAXED);
		/* One line per image per 10 s: every client of a bad disk hits it. */
		if (now - last >= 10000000000ull &&
		    __atomic_compare_exchange_n(&img->err_log_ns, &last, now, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			log_err("image '%s' version %d: read of %zu bytes at %llu failed: %s (%llu errors so far)",
				img->name, img->version, r->alen, (unsigned long long)r->aoff, strerror(-res),
				(unsigned long long)__atomic_load_n(&img->stat_errors, __ATOMIC_RELAXED));
	}
	r->done(r, res);
}

static void dread_submit(struct image_dread *d)
{
	struct image_read *r = d->r;
	struct io_uring_sqe *sqe = worker_sqe(r->w);
	io_uring_prep_read(sqe, d->fd, (uint8_t *)r->buf + (d->off - r->aoff) + d->got, d->len - d->got, d->off + d->got);
	io_uring_sqe_set_data64(sqe, ud_make(&d->uop, UD_OP));
}

static void dread_done(struct uop *op, int res, uint32_t flags)
{
	struct image_dread *d = (struct image_dread *)op;
	struct image_read *r = d->r;
	struct fault_ctx fc = { FS_IMAGE_READ, r->img->name, NULL, d->off + d->got, d->len - d->got };
	if (fault_inject(op, r->w, &fc, &res, flags))
		return;
	if (res == -EAGAIN || res == -EINTR || (res > 0 && (d->got += res) < d->len)) {
		dread_submit(d);
		return;
	}
	if (res < 0)
		r->err = res;
	else if (res == 0 && d->got < d->len) /* end of a delta file: the rest is zeros */
		memset((uint8_t *)r->buf + (d->off - r->aoff) + d->got, 0, d->len - d->got);
	if (--r->pending == 0)
		read_finish(r, r->err);
}

/* The base is in r->buf: lay the deltas' blocks over it. */
static void apply_deltas(struct image_read *r)
{
	struct image *img = r->img;
	uint64_t end = r->aoff + r->want;
	size_t n = 0, cap = (r->want + OV_BLOCK_MIN - 1) / OV_BLOCK_MIN;
	r->dreads = calloc(cap ? cap : 1, sizeof *r->dreads);
	if (!r->dreads) {
		read_finish(r, -ENOMEM);
		return;
	}
	for (uint64_t o = r->aoff; o < end; o += OV_BLOCK_MIN) {
		int which;
		uint32_t l = (uint32_t)MIN(OV_BLOCK_MIN, end - o);
		enum ov_state st = delta_state(img, o, &which);
		if (st == OV_ZERO) {
			memset((uint8_t *)r->buf + (o - r->aoff), 0, l);
		} else if (st == OV_FILE) {
			struct image_dread *p = n ? &r->dreads[n - 1] : NULL;
			if (p && p->fd == img->deltas[which].fd && p->off + p->len == o)
				p->len += l;
			else
				r->dreads[n++] = (struct image_dread){ .uop.cb = dread_done, .r = r,
					.fd = img->deltas[which].fd, .off = o, .len = l };
		}
	}
	if (!n) {
		read_finish(r, 0);
		return;
	}
	r->pending = (int)n;
	r->err = 0;
	for (size_t i = 0; i < n; i++)
		dread_submit(&r->dreads[i]);
}

static void on_read(struct uop *op, int res, uint32_t flags)
{
	struct image_read *r = (struct image_read *)op;
	struct fault_ctx fc = { FS_IMAGE_READ, r->img->name, NULL, r->aoff + r->got, r->alen - r->got };
	if (fault_inject(op, r->w, &fc, &res, flags))
		return;
	if (res == -EAGAIN || res == -EINTR) {
		submit_read(r);
		return;
	}
	if (res < 0) {
		read_finish(r, res);
		return;
	}
	r->got += res;
	__atomic_fetch_add(&r->img->stat_disk_bytes, (uint64_t)res, __ATOMIC_RELAXED);
	if (r->got >= r->want) {
		if (r->img->ndeltas)
			apply_deltas(r);
		else
			read_finish(r, 0);
		return;
	}
	if (res == 0) {
		/* End of file before the size we were told: the file shrank. */
		read_finish(r, -EIO);
		return;
	}
	submit_read(r); /* short read in the middle: continue */
}

int image_read_into(struct image_read *r, struct worker *w, struct image *img, uint64_t aoff,
		    size_t alen, void *buf)
{
	r->uop.cb = on_read;
	r->img = img;
	r->w = w;
	r->buf = buf;
	r->aoff = aoff;
	r->alen = alen;
	r->want = aoff < img->size ? MIN(alen, img->size - aoff) : 0;
	r->got = 0;
	r->dreads = NULL;
	__atomic_fetch_add(&img->stat_disk_reads, 1, __ATOMIC_RELAXED);
	if (r->want == 0) {
		r->done(r, 0);
		return 0;
	}
	submit_read(r);
	return 0;
}

int image_read(struct image_read *r, struct worker *w, struct image *img, uint64_t off, uint64_t len)
{
	uint64_t aoff = ALIGN_DOWN(off, IMAGE_ALIGN);
	size_t alen = ALIGN_UP(off + len, IMAGE_ALIGN) - aoff;
	void *buf;
	if (posix_memalign(&buf, IMAGE_ALIGN, alen) != 0)
		return -ENOMEM;
	return image_read_into(r, w, img, aoff, alen, buf);
}
