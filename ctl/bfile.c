/* bfile.c — copy with SHA-256 (see bfile.h).
 *
 * Design: one CHUNK buffer; the source is walked extent by extent with
 * SEEK_DATA/SEEK_HOLE (a filesystem without them reports one data extent,
 * which is still right). Holes are hashed from a zero buffer and never
 * written, so the destination, created at the source's size with
 * ftruncate, keeps them as holes.
 */
#include "bfile.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20)

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

/* pread exactly len bytes at off (a short file is -EIO: it shrank). */
static int read_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n, len -= (size_t)n, off += (uint64_t)n;
	}
	return 0;
}

/* pwrite exactly len bytes at off. */
static int write_full(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n, len -= (size_t)n, off += (uint64_t)n;
	}
	return 0;
}

/* The data extent at or after off: [*s, *e); false past the last one. */
static bool next_data(int fd, uint64_t off, uint64_t size, uint64_t *s, uint64_t *e)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO)
			return false;
		*s = off, *e = size;  /* no SEEK_DATA: treat the rest as data */
		return off < size;
	}
	off_t h = lseek(fd, d, SEEK_HOLE);
	*s = (uint64_t)d;
	*e = h < 0 ? size : MIN((uint64_t)h, size);
	return *s < size;
}

/* Hex digest of ctx. */
static void digest_hex(struct sha256_ctx *ctx, char out[IDENT_SUM_LEN])
{
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_digest(ctx, sizeof d, d);
	for (size_t i = 0; i < sizeof d; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Copy src to dst (see bfile.h). */
int bfile_copy_sum(const char *src, const char *dst, uint64_t *size, char sum[IDENT_SUM_LEN],
		   ident_progress_fn cb, void *arg, char *err, size_t errlen)
{
	static const uint8_t zeros[CHUNK];
	struct sha256_ctx ctx;
	struct stat st;
	int out = -1, ret = 0;
	uint8_t *buf = NULL;
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		ret = fail(err, errlen, -errno, "cannot read %s: %s", src, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = fail(err, errlen, -EINVAL, "%s is not a regular file", src);
		goto out;
	}
	uint64_t total = (uint64_t)st.st_size, off = 0, s, e;
	if (!(buf = malloc(CHUNK))) {
		ret = fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	if (dst) {
		out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		if (out < 0 || ftruncate(out, (off_t)total) < 0) {
			ret = fail(err, errlen, -errno, "cannot create %s: %s", dst, strerror(errno));
			goto out;
		}
	}
	sha256_init(&ctx);
	while (ret == 0 && off < total) {
		if (!next_data(in, off, total, &s, &e))
			s = e = total;
		for (; off < s; off += MIN((uint64_t)CHUNK, s - off))   /* a hole: zeros */
			sha256_update(&ctx, (size_t)MIN((uint64_t)CHUNK, s - off), zeros);
		while (ret == 0 && off < e) {
			size_t len = (size_t)MIN((uint64_t)CHUNK, e - off);
			if ((ret = read_full(in, buf, len, off)) < 0)
				ret = fail(err, errlen, ret, "cannot read %s at byte %llu: %s", src,
					   (unsigned long long)off, ret == -EIO ? "the file shrank or the disk "
					   "failed" : strerror(-ret));
			else if (out >= 0 && (ret = write_full(out, buf, len, off)) < 0)
				ret = fail(err, errlen, ret, "cannot write %s: %s", dst, strerror(-ret));
			else {
				sha256_update(&ctx, len, buf);
				off += len;
			}
			if (ret == 0 && cb && cb(off, total, arg))
				ret = fail(err, errlen, -ECANCELED, "interrupted while copying %s", src);
		}
	}
	if (ret == 0 && out >= 0 && fsync(out) < 0)
		ret = fail(err, errlen, -errno, "cannot write %s: %s", dst, strerror(errno));
	if (ret == 0) {
		digest_hex(&ctx, sum);
		*size = total;
		if (cb)
			cb(total, total, arg);
	}
out:
	if (out >= 0 && close(out) < 0 && ret == 0)
		ret = fail(err, errlen, -errno, "cannot write %s: %s", dst, strerror(errno));
	if (in >= 0)
		close(in);
	free(buf);
	return ret;
}

/* fsync the directory that holds path (bfile.h). */
int bfile_sync_dir(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = 0;
	else if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof dir, ".");
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int ret = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

/* Write text to dst atomically and durably. */
int bfile_write_text(const char *dst, const char *text, size_t len, char *err, size_t errlen)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= (int)sizeof tmp)
		return fail(err, errlen, -ENAMETOOLONG, "path too long: %s", dst);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return fail(err, errlen, -errno, "cannot create %s: %s", tmp, strerror(errno));
	int ret = write_full(fd, (const uint8_t *)text, len, 0);
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, dst) < 0)
		ret = -errno;
	if (ret == 0)
		ret = bfile_sync_dir(dst);
	if (ret < 0) {
		unlink(tmp);
		return fail(err, errlen, ret, "cannot write %s: %s", dst, strerror(-ret));
	}
	return 0;
}
