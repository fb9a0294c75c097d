/* image.c — see image.h. */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
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

int image_open(const struct db_image *di, struct image **out, char *err, size_t errlen)
{
	struct image *img = calloc(1, sizeof *img);
	if (!img)
		return -ENOMEM;
	img->refs = 1;
	img->id = di->id;
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
	*out = img;
	return 0;
fail:
	if (img->fd >= 0)
		close(img->fd);
	free(img);
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
	close(img->fd);
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

bool image_extent_at(const struct image *img, uint64_t off, uint64_t len, uint64_t *len_out)
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

static void submit_read(struct image_read *r)
{
	struct io_uring_sqe *sqe = worker_sqe(r->w);
	io_uring_prep_read(sqe, r->img->fd, (uint8_t *)r->buf + r->got, r->alen - r->got, r->aoff + r->got);
	io_uring_sqe_set_data64(sqe, ud_make(&r->uop, UD_OP));
}

static void on_read(struct uop *op, int res, uint32_t flags)
{
	struct image_read *r = (struct image_read *)op;
	(void)flags;
	if (res == -EAGAIN || res == -EINTR) {
		submit_read(r);
		return;
	}
	if (res < 0) {
		__atomic_fetch_add(&r->img->stat_errors, 1, __ATOMIC_RELAXED);
		r->done(r, res);
		return;
	}
	r->got += res;
	__atomic_fetch_add(&r->img->stat_disk_bytes, (uint64_t)res, __ATOMIC_RELAXED);
	if (r->got >= r->want) {
		r->done(r, 0);
		return;
	}
	if (res == 0) {
		/* End of file before the size we were told: the file shrank. */
		__atomic_fetch_add(&r->img->stat_errors, 1, __ATOMIC_RELAXED);
		r->done(r, -EIO);
		return;
	}
	submit_read(r); /* short read in the middle: continue */
}

int image_read(struct image_read *r, struct worker *w, struct image *img, uint64_t off, uint64_t len)
{
	r->uop.cb = on_read;
	r->img = img;
	r->w = w;
	r->aoff = ALIGN_DOWN(off, IMAGE_ALIGN);
	r->alen = ALIGN_UP(off + len, IMAGE_ALIGN) - r->aoff;
	r->want = MIN(r->alen, img->size - r->aoff);
	r->got = 0;
	if (posix_memalign(&r->buf, IMAGE_ALIGN, r->alen) != 0)
		return -ENOMEM;
	__atomic_fetch_add(&img->stat_disk_reads, 1, __ATOMIC_RELAXED);
	submit_read(r);
	return 0;
}
