/* http_file.c — streaming an image's boot files (kernel, initrd) to iPXE;
 * see http.h (http_file_start).
 *
 * The path a client asks for is only a key: /boot/<image>/vmlinuz or
 * /boot/<image>/initrd names an image in the export table, whose entry
 * holds the file's path (from the database, checked at reload). The file
 * is opened with IORING_OP_OPENAT and read with IORING_OP_READ on the
 * connection's worker, so a slow disk never blocks the worker.
 *
 * Memory per connection is bounded: HTTP_FILE_CHUNKS buffers of
 * HTTP_FILE_CHUNK bytes. At most one read is in flight (reads of one file
 * complete in order then, so the body goes out in file order); a read
 * fills one buffer while the other one is being sent. A buffer is reused
 * once the socket has taken all of it (its txmsg's release). Content-Length
 * is the size at open; a file that shrinks under us ends the connection
 * early (the client sees a short body and fails, never wrong data).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "daemon.h"
#include "db.h"
#include "exports.h"
#include "http.h"
#include "log.h"
#include "util.h"

#define HTTP_FILE_CHUNK (128u * 1024)
#define HTTP_FILE_CHUNKS 2

struct hfile;

/* One buffer: read into, then sent from. */
struct hchunk {
	struct txmsg m;
	struct uop op;            /* its read */
	struct hfile *f;
	uint8_t *buf;
	size_t len;               /* bytes read into it */
	bool busy;                /* being read or sent */
};

struct hfile {
	struct conn *c;
	struct uop open_op;
	int fd;
	bool head, reading;
	uint64_t size, off;       /* file size at open; next offset to read */
	uint64_t t0, last_ns;     /* start; last progress (read or send) */
	char image[64], what[16], path[1024];
	struct hchunk ch[HTTP_FILE_CHUNKS];
};

static void pump(struct hfile *f);

/* A chunk's bytes have been sent (or dropped with the connection). */
static void chunk_release(struct txmsg *m)
{
	struct hchunk *k = (struct hchunk *)((char *)m - offsetof(struct hchunk, m));
	struct hfile *f = k->f;
	k->busy = false;
	f->last_ns = now_ns();
	if (!f->c->closing)
		pump(f);
}

/* A read completed: queue what it brought, then read on. */
static void read_done(struct uop *op, int res, uint32_t flags)
{
	struct hchunk *k = (struct hchunk *)((char *)op - offsetof(struct hchunk, op));
	struct hfile *f = k->f;
	struct conn *c = f->c;
	f->reading = false;
	if (c->closing) {
		k->busy = false;
	} else if (res <= 0) {
		k->busy = false;
		conn_log(BL_ERR, c, "http: image %s: reading its %s %s at %llu: %s", f->image, f->what, f->path,
			 (unsigned long long)f->off, res == 0 ? "the file is shorter than when it was opened" : strerror(-res));
		conn_close(c, "boot file read failed");
	} else {
		k->len = (size_t)res;
		f->off += (uint64_t)res;
		f->last_ns = now_ns();
		k->m.iov = k->m.iov_inline;
		k->m.iov[0] = (struct iovec){ k->buf, k->len };
		k->m.niov = 1;
		k->m.release = chunk_release;
		bool last = f->off >= f->size;
		conn_send(c, &k->m);
		if (last) {
			conn_log(BL_INFO, c, "http: image %s: %s sent (%llu bytes in %.1f s)", f->image, f->what,
				 (unsigned long long)f->size, (double)(now_ns() - f->t0) / 1e9);
			conn_close_after_send(c);
		} else {
			pump(f);
		}
	}
	conn_put(c);
}

/* Start the next read if no read is in flight and a buffer is free. */
static void pump(struct hfile *f)
{
	struct conn *c = f->c;
	if (f->reading || f->off >= f->size || c->closing)
		return;
	struct hchunk *k = NULL;
	for (int i = 0; i < HTTP_FILE_CHUNKS && !k; i++)
		if (!f->ch[i].busy)
			k = &f->ch[i];
	if (!k)
		return;
	if (!k->buf && !(k->buf = malloc(HTTP_FILE_CHUNK))) {
		conn_log(BL_ERR, c, "http: image %s: out of memory sending its %s", f->image, f->what);
		conn_close(c, "out of memory");
		return;
	}
	k->busy = true;
	f->reading = true;
	size_t n = (size_t)MIN((uint64_t)HTTP_FILE_CHUNK, f->size - f->off);
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_read(sqe, f->fd, k->buf, (unsigned)n, f->off);
	io_uring_sqe_set_data64(sqe, ud_make(&k->op, UD_OP));
	conn_get(c);
}

/* The file is open (or not): answer the head, then stream. */
static void open_done(struct uop *op, int res, uint32_t flags)
{
	struct hfile *f = (struct hfile *)((char *)op - offsetof(struct hfile, open_op));
	struct conn *c = f->c;
	struct stat st;
	if (c->closing) {
		if (res >= 0)
			close(res);
	} else if (res < 0) {
		conn_log(BL_ERR, c, "http: image %s: its %s %s cannot be opened: %s", f->image, f->what, f->path,
			 strerror(-res));
		http_respond_error(c, 404, f->head);
	} else {
		f->fd = res;
		/* fstat of an open file reads no disk: its inode is in memory. */
		if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			conn_log(BL_ERR, c, "http: image %s: its %s %s is not a regular file", f->image, f->what, f->path);
			http_respond_error(c, 404, f->head);
		} else {
			char h[512];
			f->size = (uint64_t)st.st_size;
			int n = snprintf(h, sizeof h,
					 "HTTP/1.1 200 OK\r\nServer: bootlinkd\r\nContent-Type: application/octet-stream\r\n"
					 "Content-Length: %llu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
					 (unsigned long long)f->size);
			conn_send_copy(c, h, (size_t)n);
			f->last_ns = now_ns();
			if (f->head || f->size == 0)
				conn_close_after_send(c);
			else
				pump(f);
		}
	}
	conn_put(c);
}

int http_file_start(struct conn *c, const char *image, const char *which, bool head)
{
	char name[64];
	struct export_ref ref;
	snprintf(name, sizeof name, "%s", image);
	if (!name_valid(name) || exports_lookup(name, strlen(name), &ref) < 0) {
		conn_log(BL_INFO, c, "http: /boot/%.64s/%s: no such image", image, which);
		return 404;
	}
	const char *path = strcmp(which, "vmlinuz") == 0 ? ref.e.kernel : ref.e.initrd;
	int st = 0;
	if (ref.e.kind != EXPORT_IMAGE || ref.e.boot != DB_BOOT_LINUX || !path[0]) {
		conn_log(BL_INFO, c, "http: /boot/%s/%s: the image has no such boot file", image, which);
		st = 404;
	}
	struct hfile *f = st ? NULL : calloc(1, sizeof *f);
	if (!st && !f)
		st = 500;
	if (f) {
		f->c = c;
		f->fd = -1;
		f->head = head;
		f->t0 = f->last_ns = now_ns();
		snprintf(f->image, sizeof f->image, "%s", ref.e.image_name);
		snprintf(f->what, sizeof f->what, "%s", strcmp(which, "vmlinuz") == 0 ? "kernel" : "initrd");
		snprintf(f->path, sizeof f->path, "%s", path);
		for (int i = 0; i < HTTP_FILE_CHUNKS; i++)
			f->ch[i].f = f;
		f->open_op.cb = open_done;
		for (int i = 0; i < HTTP_FILE_CHUNKS; i++)
			f->ch[i].op.cb = read_done;
		c->proto_state = f;
		conn_pause(c); /* one request per connection: read nothing more */
		struct io_uring_sqe *sqe = worker_sqe(c->w);
		io_uring_prep_openat(sqe, AT_FDCWD, f->path, O_RDONLY | O_CLOEXEC, 0);
		io_uring_sqe_set_data64(sqe, ud_make(&f->open_op, UD_OP));
		conn_get(c);
	}
	exports_ref_release(&ref);
	return st;
}

int http_file_tick(struct conn *c, uint64_t now)
{
	struct hfile *f = c->proto_state;
	uint64_t limit = (uint64_t)live_get(&g_live.handshake_timeout_s) * 1000000000ull;
	if (now > f->last_ns && now - f->last_ns > limit) {
		conn_log(BL_WARN, c, "http: image %s: sending its %s stalled for %u s at byte %llu of %llu; closed", f->image,
			 f->what, live_get(&g_live.handshake_timeout_s), (unsigned long long)f->off,
			 (unsigned long long)f->size);
		return -1;
	}
	return 0;
}

void http_file_destroy(struct conn *c)
{
	struct hfile *f = c->proto_state;
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	for (int i = 0; i < HTTP_FILE_CHUNKS; i++)
		free(f->ch[i].buf);
	free(f);
	c->proto_state = NULL;
}
