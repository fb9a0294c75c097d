/* vfile.c — overlay lookup, sparse copy and chain flattening (see vfile.h).
 *
 * Design: everything works in chunks of CHUNK bytes through one buffer,
 * so memory stays flat whatever the disk size. Holes are found with
 * SEEK_DATA/SEEK_HOLE (a filesystem without them reports everything as
 * data, which is correct, only slower). A flattened chunk is the base's
 * bytes with each delta's blocks laid over it bottom first, so the topmost
 * delta wins; only blocks that are not all zeros are written, so holes in
 * the base and zeroed blocks stay holes. Delta maps are mmap()ed read-only
 * (2 bits per 4 KiB: 64 MiB of address space for a 1 TiB disk).
 */
#include "vfile.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20)
#define CHUNK_BLOCKS (CHUNK / VF_BLOCK)

/* Format a reason into err and return rc. */
__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- overlay files ---- */

/* Split overlay/dirs like bootlinkd does (clients_configure). */
int vfile_overlay_dirs(const struct bl_conf *conf, char (*dirs)[CONF_PATH_MAX], int max)
{
	return split_dirs(conf->dir, conf->overlay_dirs, dirs, max);
}

/* Parse "version=KEY epoch=N [block=BYTES]" from the .info file. */
void vfile_read_info(struct vfile_overlay *ov)
{
	char buf[128];
	long long key, epoch;
	unsigned long long block = VF_BLOCK;
	int n = read_small_file(ov->info, buf, sizeof buf) > 0 ?
		sscanf(buf, "version=%lld epoch=%lld block=%llu", &key, &epoch, &block) : 0;
	ov->has_info = n >= 2 && vfile_block_valid(block);
	ov->info_key = ov->has_info ? key : 0;
	ov->info_epoch = ov->has_info ? epoch : 0;
	ov->info_block = ov->has_info ? (uint32_t)block : VF_BLOCK;
}

/* Fill ov for stem in dir (the .map is known to exist). */
static void overlay_at(const char *dir, const char *stem, struct vfile_overlay *ov)
{
	struct stat st;
	memset(ov, 0, sizeof *ov);
	snprintf(ov->dir, sizeof ov->dir, "%.1000s", dir);
	snprintf(ov->data, sizeof ov->data, "%.1000s/%s.data", dir, stem);
	snprintf(ov->map, sizeof ov->map, "%.1000s/%s.map", dir, stem);
	snprintf(ov->info, sizeof ov->info, "%.1000s/%s.info", dir, stem);
	if (stat(ov->data, &st) == 0)
		ov->data_size = (uint64_t)st.st_size;
	ov->data_bytes = vfile_disk_bytes(ov->data);
	ov->bytes = ov->data_bytes + vfile_disk_bytes(ov->map) + vfile_disk_bytes(ov->info);
	vfile_read_info(ov);
}

/* The first overlay dir holding <stem>.map. */
int vfile_find_overlay(const struct bl_conf *conf, const char *mac, struct vfile_overlay *out)
{
	char dirs[16][CONF_PATH_MAX], stem[16], p[VF_PATH_MAX];
	int n = vfile_overlay_dirs(conf, dirs, 16);
	mac_hex(mac, stem);
	for (int i = 0; i < n; i++) {
		snprintf(p, sizeof p, "%.1000s/%s.map", dirs[i], stem);
		if (access(p, F_OK) == 0) {
			overlay_at(dirs[i], stem, out);
			return 1;
		}
		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
	}
	return 0;
}

/* unlink() the three files; the first real error wins. */
int vfile_remove_overlay(const struct vfile_overlay *ov)
{
	const char *files[] = { ov->data, ov->map, ov->info };
	int ret = 0;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		if (unlink(files[i]) < 0 && errno != ENOENT && !ret)
			ret = -errno;
	return ret;
}

/* st_blocks in bytes. */
uint64_t vfile_disk_bytes(const char *path)
{
	struct stat st;
	return path[0] && stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* Tally the 2-bit codes of a map (code 3 reads as data, as in bootlinkd). */
int vfile_map_count(const char *map, uint64_t counts[3])
{
	static const uint8_t as[4] = { VF_ABSENT, VF_ZERO, VF_DATA, VF_DATA };
	uint8_t buf[65536];
	ssize_t n;
	int fd = open(map, O_RDONLY | O_CLOEXEC);
	counts[0] = counts[1] = counts[2] = 0;
	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		for (ssize_t i = 0; i < n; i++)
			for (int k = 0; k < 4; k++)
				counts[as[(buf[i] >> (2 * k)) & 3]]++;
	int e = n < 0 ? -errno : 0;
	close(fd);
	return e;
}

/* ---- plain I/O helpers ---- */

/* Read len bytes at off; past the end of the file reads zeros. */
static int read_at(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			memset(buf, 0, len);
			return 0;
		}
		buf += n, off += (uint64_t)n, len -= (size_t)n;
	}
	return 0;
}

/* Write len bytes at off. */
static int write_at(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n, off += (uint64_t)n, len -= (size_t)n;
	}
	return 0;
}

/* The next data extent at or after off: [*start, *end), false if none. */
static bool next_extent(int fd, uint64_t off, uint64_t size, uint64_t *start, uint64_t *end)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);
	if (d < 0 && errno == ENXIO)
		return false;
	if (d < 0)
		d = (off_t)off; /* no SEEK_DATA here: all data */
	off_t h = lseek(fd, d, SEEK_HOLE);
	*start = (uint64_t)d;
	*end = h < 0 || (uint64_t)h > size ? size : (uint64_t)h;
	return *start < size;
}

/* Sum of the data extents of fd (for the progress total). */
static uint64_t data_bytes(int fd, uint64_t size)
{
	uint64_t off = 0, s, e, total = 0;
	while (off < size && next_extent(fd, off, size, &s, &e)) {
		total += e - s;
		off = e;
	}
	return total;
}

/* Create dst for writing (truncated to size). */
static int create_dst(const char *dst, uint64_t size, char *err, size_t errlen)
{
	int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(err, errlen, -errno, "cannot create %s: %s", dst, strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		close(fd);
		return fail(err, errlen, -e, "cannot size %s: %s", dst, strerror(e));
	}
	return fd;
}

/* fsync and close fd (written as dst); -errno on failure. */
static int finish_dst(int fd, const char *dst, char *err, size_t errlen)
{
	int ret = fsync(fd) < 0 ? -errno : 0;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (ret)
		return fail(err, errlen, ret, "cannot write %s: %s", dst, strerror(-ret));
	return 0;
}

/* ---- sparse copy ---- */

struct copy {
	const char *src, *dst;
	int in, out;
	uint8_t *buf;
	uint64_t done, total;
	ident_progress_fn cb;
	void *arg;
};

/* Copy one extent [s, e) through the buffer. */
static int copy_extent(struct copy *k, uint64_t s, uint64_t e, char *err, size_t errlen)
{
	for (uint64_t off = s; off < e;) {
		size_t len = (size_t)MIN((uint64_t)CHUNK, e - off);
		int ret = read_at(k->in, k->buf, len, off);
		if (ret < 0)
			return fail(err, errlen, ret, "cannot read %s: %s", k->src, strerror(-ret));
		if ((ret = write_at(k->out, k->buf, len, off)) < 0)
			return fail(err, errlen, ret, "cannot write %s: %s", k->dst, strerror(-ret));
		off += len;
		k->done += len;
		if (k->cb && k->cb(k->done, k->total, k->arg))
			return fail(err, errlen, -ECANCELED, "interrupted while copying %s", k->src);
	}
	return 0;
}

/* Copy src's data extents into a new dst of the same size. */
int vfile_copy_sparse(const char *src, const char *dst, ident_progress_fn cb, void *arg,
		      char *err, size_t errlen)
{
	struct copy k = { .src = src, .dst = dst, .cb = cb, .arg = arg };
	struct stat st;
	uint64_t off = 0, s, e;
	k.in = open(src, O_RDONLY | O_CLOEXEC);
	if (k.in < 0 || fstat(k.in, &st) < 0) {
		int er = errno;
		if (k.in >= 0)
			close(k.in);
		return fail(err, errlen, -er, "cannot read %s: %s", src, strerror(er));
	}
	uint64_t size = (uint64_t)st.st_size;
	k.total = data_bytes(k.in, size);
	k.buf = malloc(CHUNK);
	k.out = k.buf ? create_dst(dst, size, err, errlen) : fail(err, errlen, -ENOMEM, "out of memory");
	int ret = k.out < 0 ? k.out : 0;
	while (ret == 0 && off < size && next_extent(k.in, off, size, &s, &e)) {
		ret = copy_extent(&k, s, e, err, errlen);
		off = e;
	}
	if (cb && ret == 0)
		cb(k.done, k.total, arg);
	if (k.out >= 0 && ret == 0)
		ret = finish_dst(k.out, dst, err, errlen);
	else if (k.out >= 0)
		close(k.out);
	free(k.buf);
	close(k.in);
	return ret;
}

/* ---- flatten ---- */

/* A delta: its data file and its map, mapped read-only. */
struct vdelta {
	int fd;
	const uint8_t *map;
	size_t map_len;
	uint32_t bsize;            /* the delta's granularity */
};

/* 2-bit state of the delta's block holding byte off (past the map's end: absent). */
static int delta_state(const struct vdelta *d, uint64_t off)
{
	uint64_t b = off / d->bsize;
	if (b / 4 >= d->map_len)
		return VF_ABSENT;
	int code = (d->map[b / 4] >> (2 * (b % 4))) & 3;
	return code == 1 ? VF_ZERO : code ? VF_DATA : VF_ABSENT;
}

/* Open one delta of the chain. */
static int delta_open(const struct db_version *v, struct vdelta *d, char *err, size_t errlen)
{
	struct stat st;
	d->bsize = v->block_size ? v->block_size : VF_BLOCK;
	if (!vfile_block_valid(d->bsize))
		return fail(err, errlen, -EINVAL, "version %d (%s) has an invalid granularity of %u bytes",
			    v->number, v->map_path, d->bsize);
	d->fd = open(v->data_path, O_RDONLY | O_CLOEXEC);
	if (d->fd < 0)
		return fail(err, errlen, -errno, "cannot read %s (version %d): %s", v->data_path,
			    v->number, strerror(errno));
	int mfd = open(v->map_path, O_RDONLY | O_CLOEXEC);
	if (mfd < 0 || fstat(mfd, &st) < 0) {
		int e = errno;
		if (mfd >= 0)
			close(mfd);
		return fail(err, errlen, -e, "cannot read %s (version %d): %s", v->map_path, v->number,
			    strerror(e));
	}
	d->map_len = (size_t)st.st_size;
	d->map = d->map_len ? mmap(NULL, d->map_len, PROT_READ, MAP_PRIVATE, mfd, 0) : NULL;
	int e = errno;
	close(mfd);
	if (d->map == MAP_FAILED) {
		d->map = NULL;
		d->map_len = 0;
		return fail(err, errlen, -e, "cannot map %s: %s", v->map_path, strerror(e));
	}
	return 0;
}

/* Close the deltas opened so far. */
static void deltas_close(struct vdelta *d, int n)
{
	for (int i = 0; i < n; i++) {
		if (d[i].map)
			munmap((void *)d[i].map, d[i].map_len);
		if (d[i].fd >= 0)
			close(d[i].fd);
	}
}

/* The base's bytes of [off, off+len) into buf (holes without reading). */
static int base_chunk(int fd, uint8_t *buf, size_t len, uint64_t off, uint64_t size)
{
	uint64_t s, e;
	if (!next_extent(fd, off, size, &s, &e) || s >= off + len) {
		memset(buf, 0, len);
		return 0;
	}
	return read_at(fd, buf, len, off);
}

/* Lay delta d's blocks of the chunk at off (nb 4 KiB units, len bytes)
 * over buf. Whatever the delta's granularity, a 4 KiB unit lies in one of
 * its blocks. */
static int delta_chunk(const struct vdelta *d, uint8_t *buf, size_t len, uint64_t off, size_t nb)
{
	for (size_t i = 0; i < nb;) {
		int st = delta_state(d, off + i * VF_BLOCK);
		size_t j = i + 1;
		while (j < nb && delta_state(d, off + j * VF_BLOCK) == st)
			j++;
		size_t from = i * VF_BLOCK, to = MIN(j * VF_BLOCK, len);
		if (st == VF_ZERO)
			memset(buf + from, 0, to - from);
		else if (st == VF_DATA) {
			int ret = read_at(d->fd, buf + from, to - from, off + from);
			if (ret < 0)
				return ret;
		}
		i = j;
	}
	return 0;
}

/* A block of n bytes that is all zeros. */
static bool all_zero(const uint8_t *p, size_t n)
{
	return p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

/* Write the blocks of buf that are not all zeros (runs in one pwrite). */
static int write_nonzero(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len;) {
		size_t n = MIN((size_t)VF_BLOCK, len - i);
		if (all_zero(buf + i, n)) {
			i += n;
			continue;
		}
		size_t j = i + n;
		while (j < len && !all_zero(buf + j, MIN((size_t)VF_BLOCK, len - j)))
			j += MIN((size_t)VF_BLOCK, len - j);
		int ret = write_at(fd, buf + i, j - i, off + i);
		if (ret < 0)
			return ret;
		i = j;
	}
	return 0;
}

struct flat {
	int base, out;
	struct vdelta d[DB_CHAIN_MAX];
	int nd;
	uint8_t *buf;
	uint64_t size;
};

/* Merge every chunk into f->out. */
static int flatten_loop(struct flat *f, const struct db_chain *ch, const char *dst,
			ident_progress_fn cb, void *arg, char *err, size_t errlen)
{
	for (uint64_t off = 0; off < f->size; off += CHUNK) {
		size_t len = (size_t)MIN((uint64_t)CHUNK, f->size - off);
		size_t nb = (len + VF_BLOCK - 1) / VF_BLOCK;
		int ret = base_chunk(f->base, f->buf, len, off, f->size);
		if (ret < 0)
			return fail(err, errlen, ret, "cannot read %s: %s", ch->base_path, strerror(-ret));
		for (int i = 0; i < f->nd; i++)
			if ((ret = delta_chunk(&f->d[i], f->buf, len, off, nb)) < 0)
				return fail(err, errlen, ret, "cannot read %s: %s", ch->deltas[i].data_path,
					    strerror(-ret));
		if ((ret = write_nonzero(f->out, f->buf, len, off)) < 0)
			return fail(err, errlen, ret, "cannot write %s: %s", dst, strerror(-ret));
		if (cb && cb(off + len, f->size, arg))
			return fail(err, errlen, -ECANCELED, "interrupted while writing %s", dst);
	}
	return 0;
}

/* Open the base, the deltas and dst. */
static int flatten_open(struct flat *f, const struct db_chain *ch, const char *dst, char *err,
			size_t errlen)
{
	struct stat st;
	f->base = open(ch->base_path, O_RDONLY | O_CLOEXEC);
	if (f->base < 0 || fstat(f->base, &st) < 0)
		return fail(err, errlen, -errno, "cannot read %s: %s", ch->base_path, strerror(errno));
	f->size = (uint64_t)st.st_size;
	for (; f->nd < ch->ndeltas; f->nd++) {
		f->d[f->nd].fd = -1;
		int ret = delta_open(&ch->deltas[f->nd], &f->d[f->nd], err, errlen);
		if (ret < 0) {
			f->nd++;
			return ret;
		}
	}
	if (!(f->buf = malloc(CHUNK)))
		return fail(err, errlen, -ENOMEM, "out of memory");
	f->out = create_dst(dst, f->size, err, errlen);
	return f->out < 0 ? f->out : 0;
}

/* Flatten the chain into dst. */
int vfile_flatten(const struct db_chain *ch, const char *dst, uint64_t *size, ident_progress_fn cb,
		  void *arg, char *err, size_t errlen)
{
	struct flat *f = calloc(1, sizeof *f);
	if (!f)
		return fail(err, errlen, -ENOMEM, "out of memory");
	f->base = f->out = -1;
	int ret = flatten_open(f, ch, dst, err, errlen);
	if (ret == 0)
		ret = flatten_loop(f, ch, dst, cb, arg, err, errlen);
	if (f->out >= 0 && ret == 0)
		ret = finish_dst(f->out, dst, err, errlen);
	else if (f->out >= 0)
		close(f->out);
	*size = f->size;
	deltas_close(f->d, f->nd);
	if (f->base >= 0)
		close(f->base);
	free(f->buf);
	free(f);
	return ret;
}

/* fsync the parent directory of path. */
int vfile_sync_parent(const char *path)
{
	char dir[VF_PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int ret = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return ret;
}
