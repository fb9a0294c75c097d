/* storm.c — the boot-storm replayer for bench/storm.sh.
 *
 *   storm mkimage PATH SIZE_MIB [--seed N]
 *   storm trace  (--image PATH | --image-mb N) [trace options] [--client I --dump]
 *   storm run    --host H --port P (--export NAME | --exports FILE) --image PATH
 *                --clients N [--qd 8] [--shared-cow] [--verify-every 16] [--readbacks 8]
 *                [--connect-timeout 5] [--timeout 900] [--label TEXT] [trace options]
 *
 * trace options: --mb R (MiB read per client, default 400), --seed S (1),
 *                --window W (32), --write-pct P (5)
 *
 * The workload is a synthetic, seeded, reproducible Windows-like boot trace
 * (see docs/bench.md, "Boot storm"): about R MiB of reads per client, mostly
 * 4 KiB with some 16-64 KiB and a few 128 KiB-1 MiB requests, in a hot set of
 * "files" scattered over the image, with sequential runs and re-reads; plus
 * ~P % writes (4-64 KiB) into four write zones (pagefile, logs, temp,
 * registry logs) that the reads never touch. Every client reads the same
 * read set, each in its own order (the base sequence shuffled within windows
 * of W requests), and writes its own places.
 *
 * run: one libnbd handle per client, all in this process, driven with the
 * aio API and poll(2) over the handles' fds, at most --qd requests in flight
 * per client. All clients connect at once; one whose TCP connect and NBD
 * handshake take longer than --connect-timeout (a server's listen backlog
 * overflowed: see docs/bench.md) reconnects, as a real client would. A
 * client's time runs from its first connect to its last reply. At
 * the end of its trace each client reads back a few of its own writes (unless
 * --shared-cow: nbdkit's cow filter is one overlay for every connection, so
 * another client may have written there too) and flushes (if the server
 * offers flush). A sample of reads (every --verify-every'th read of the base
 * sequence, the same ones for every client) is hashed on arrival; after the
 * storm the same ranges are read from the image file with O_DIRECT (so this
 * process never warms the page cache for a server) and compared. Reads never
 * touch a written place, so every read must equal the image.
 *
 * Prints one JSON object on stdout. Exit status: 0 = every request succeeded
 * and every check matched, 1 = errors or mismatches (the JSON says which),
 * 2 = usage or set-up error.
 *
 * Build: cc -O2 -Wall -o storm storm.c $(pkg-config --cflags --libs libnbd) -lm
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libnbd.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define BLK 4096u	/* every request is 4 KiB aligned, a multiple of 4 KiB */
#define NZONES 4
#define QD_MAX 256
#define RB_PER_CLIENT 8
#define OP_WRITE 0x80000000u

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("storm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------ PRNG */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct rng {
	uint64_t s;
};

static struct rng rng_for(uint64_t seed, uint64_t stream, uint64_t sub)
{
	return (struct rng){ mix64(seed * 0x9e3779b97f4a7c15ull ^ mix64(stream + 1) ^ mix64(sub + 0x51ed27ull)) };
}

static uint64_t rnd(struct rng *r)
{
	return mix64(r->s += 0x9e3779b97f4a7c15ull);
}

static double rndf(struct rng *r)
{
	return (rnd(r) >> 11) * 0x1p-53;
}

static uint64_t rnd_below(struct rng *r, uint64_t n)
{
	return n ? rnd(r) % n : 0;
}

/* log-uniform in [lo, hi], rounded down to 4 KiB (at least 4 KiB) */
static uint64_t rnd_log(struct rng *r, uint64_t lo, uint64_t hi)
{
	double v = exp(log((double)lo) + rndf(r) * (log((double)hi) - log((double)lo)));
	uint64_t b = (uint64_t)v / BLK * BLK;
	return b < BLK ? BLK : b;
}

/* ------------------------------------------------------------------ hash */

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* A fast 4-lane hash, for comparing a read with the image. */
static uint64_t hash_buf(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t a = 0x243f6a8885a308d3ull, c = 0x13198a2e03707344ull, d = 0xa4093822299f31d0ull,
		 e = 0x082efa98ec4e6c89ull, w[4];
	const uint64_t P = 0x9fb21c651e98df25ull;
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		memcpy(w, b + i, 32);
		a = rotl(a ^ w[0], 29) * P;
		c = rotl(c ^ w[1], 29) * P;
		d = rotl(d ^ w[2], 29) * P;
		e = rotl(e ^ w[3], 29) * P;
	}
	uint64_t h = mix64(a) ^ rotl(mix64(c), 16) ^ rotl(mix64(d), 32) ^ rotl(mix64(e), 48) ^ n;
	for (; i < n; i++)
		h = (h ^ b[i]) * P;
	return mix64(h);
}

/* ------------------------------------------------------------------ trace */

struct op {
	uint64_t off;
	uint32_t len;
	uint32_t id; /* OP_WRITE | write number, or the index in the base read sequence */
};

struct file {
	uint64_t off, len;
};

struct trace {
	uint64_t image;  /* bytes */
	uint64_t seed;
	double read_mb;  /* per client */
	unsigned window; /* shuffle window */
	double write_pct;
	uint64_t zone_off[NZONES], zone_len;
	struct op *reads; /* the base read sequence, the same for every client */
	size_t nreads, reads_cap;
	uint64_t read_bytes;
	size_t nfiles, rereads;
	/* derived statistics */
	uint64_t unique_bytes, unique_64k_bytes;
	size_t n4k, n8_12k, n16_64k, nlarge;
};

static bool in_zone(const struct trace *t, uint64_t off, uint64_t len)
{
	for (int z = 0; z < NZONES; z++)
		if (off < t->zone_off[z] + t->zone_len && t->zone_off[z] < off + len)
			return true;
	return false;
}

/* Read request size: many 4 KiB, some 16-64 KiB, a few 128 KiB-1 MiB
 * (mean about 20 KiB). */
static uint32_t draw_read_size(struct rng *r)
{
	double x = rndf(r);
	if (x < 0.60)
		return 4 * KIB;
	if (x < 0.66)
		return 8 * KIB;
	if (x < 0.70)
		return 12 * KIB;
	if (x < 0.97)
		return (uint32_t)((4 + rnd_below(r, 13)) * 4 * KIB); /* 16..64 KiB */
	x = rndf(r);
	return x < 0.50 ? 128 * KIB : x < 0.80 ? 256 * KIB : x < 0.95 ? 512 * KIB : 1024 * KIB;
}

static uint32_t draw_write_size(struct rng *r)
{
	double x = rndf(r);
	if (x < 0.50)
		return 4 * KIB;
	if (x < 0.60)
		return 8 * KIB;
	return (uint32_t)((4 + rnd_below(r, 13)) * 4 * KIB); /* 16..64 KiB */
}

static void push_read(struct trace *t, uint64_t off, uint32_t len)
{
	if (t->nreads == t->reads_cap) {
		t->reads_cap = t->reads_cap ? t->reads_cap * 2 : 4096;
		t->reads = realloc(t->reads, t->reads_cap * sizeof *t->reads);
		if (!t->reads)
			die("out of memory");
	}
	t->reads[t->nreads] = (struct op){ off, len, (uint32_t)t->nreads };
	t->nreads++;
	t->read_bytes += len;
}

static struct file new_file(struct trace *t, struct rng *r)
{
	double x = rndf(r);
	uint64_t len = x < 0.40 ? rnd_log(r, 16 * KIB, 256 * KIB)
		     : x < 0.82 ? rnd_log(r, 256 * KIB, 2 * MIB)
				: rnd_log(r, 2 * MIB, 16 * MIB);
	uint64_t cap = t->image / 16 / BLK * BLK;
	if (len > cap)
		len = cap;
	for (int tries = 0; tries < 10000; tries++) {
		uint64_t off = rnd_below(r, (t->image - len) / BLK + 1) * BLK;
		if (!in_zone(t, off, len))
			return (struct file){ off, len };
	}
	die("cannot place a file of %" PRIu64 " bytes outside the write zones", len);
}

static void bitmap_set(uint8_t *bm, uint64_t first, uint64_t last)
{
	for (uint64_t i = first; i <= last; i++)
		bm[i >> 3] |= (uint8_t)(1u << (i & 7));
}

static uint64_t bitmap_count(const uint8_t *bm, uint64_t nbits)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < (nbits + 7) / 8; i++)
		n += (uint64_t)__builtin_popcount(bm[i]);
	return n;
}

static void trace_build(struct trace *t)
{
	if (t->image < 64 * MIB)
		die("the image must be at least 64 MiB (it is %" PRIu64 " bytes)", t->image);
	struct rng r = rng_for(t->seed, 0, 0);

	/* Write zones: one in each quarter of the image, 1/32 of it each. */
	t->zone_len = t->image / 32 / MIB * MIB;
	uint64_t q = t->image / NZONES / MIB * MIB;
	for (int z = 0; z < NZONES; z++)
		t->zone_off[z] = z * q + rnd_below(&r, (q - t->zone_len) / MIB + 1) * MIB;

	/* The base read sequence: visits to files, sequential runs inside a file,
	 * random (demand-paging) reads inside it, re-reads of earlier requests. */
	struct file *files = NULL;
	size_t files_cap = 0;
	struct file cur = { 0, 0 };
	uint64_t cursor = 0, visit = 0, budget = 0, target = (uint64_t)(t->read_mb * MIB);
	if (target < 64 * KIB)
		target = 64 * KIB;
	while (t->read_bytes < target) {
		if (t->nreads > 16 && rndf(&r) < 0.06) {
			struct op o = t->reads[rnd_below(&r, t->nreads)];
			push_read(t, o.off, o.len);
			t->rereads++;
			continue;
		}
		if (cur.len == 0 || visit >= budget) {
			if (t->nfiles > 0 && rndf(&r) < 0.20) {
				cur = files[rnd_below(&r, t->nfiles)];
			} else {
				cur = new_file(t, &r);
				if (t->nfiles == files_cap) {
					files_cap = files_cap ? files_cap * 2 : 256;
					files = realloc(files, files_cap * sizeof *files);
					if (!files)
						die("out of memory");
				}
				files[t->nfiles++] = cur;
			}
			cursor = rndf(&r) < 0.5 ? cur.off : cur.off + rnd_below(&r, cur.len / BLK) * BLK;
			/* how much of the file this visit reads: part of it, at most 2 MiB */
			budget = (uint64_t)(cur.len * (0.2 + 0.8 * rndf(&r)));
			if (budget > 2 * MIB)
				budget = 2 * MIB;
			visit = 0;
		}
		uint64_t len = draw_read_size(&r), off;
		if (len > cur.len)
			len = cur.len;
		if (rndf(&r) < 0.40 && cursor + len <= cur.off + cur.len)
			off = cursor; /* a sequential run */
		else
			off = cur.off + rnd_below(&r, (cur.len - len) / BLK + 1) * BLK;
		push_read(t, off, (uint32_t)len);
		cursor = off + len;
		visit += len;
	}
	free(files);

	uint64_t nb = t->image / BLK, nb64 = t->image / (64 * KIB) + 1;
	uint8_t *bm = calloc((nb + 7) / 8, 1), *bm64 = calloc((nb64 + 7) / 8, 1);
	if (!bm || !bm64)
		die("out of memory");
	for (size_t i = 0; i < t->nreads; i++) {
		const struct op *o = &t->reads[i];
		bitmap_set(bm, o->off / BLK, (o->off + o->len - 1) / BLK);
		bitmap_set(bm64, o->off / (64 * KIB), (o->off + o->len - 1) / (64 * KIB));
		if (o->len == 4 * KIB)
			t->n4k++;
		else if (o->len <= 12 * KIB)
			t->n8_12k++;
		else if (o->len <= 64 * KIB)
			t->n16_64k++;
		else
			t->nlarge++;
	}
	t->unique_bytes = bitmap_count(bm, nb) * BLK;
	t->unique_64k_bytes = bitmap_count(bm64, nb64) * 64 * KIB;
	free(bm);
	free(bm64);
}

static size_t trace_nwrites(const struct trace *t)
{
	if (t->write_pct <= 0)
		return 0;
	return (size_t)llround((double)t->nreads * t->write_pct / (100.0 - t->write_pct));
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

/* Client ci's op list: the base reads shuffled within windows (a per-client
 * phase, so window edges differ too), its own writes inserted at random
 * places. Sets *nops; the caller frees the array. */
static struct op *client_ops(const struct trace *t, unsigned ci, size_t *nops)
{
	struct rng r = rng_for(t->seed, 1, ci);
	size_t nr = t->nreads, nw = trace_nwrites(t), W = t->window ? t->window : 1;
	struct op *rd = malloc(nr * sizeof *rd);
	struct op *ops = malloc((nr + nw) * sizeof *ops);
	size_t *at = malloc((nw + 1) * sizeof *at);
	if (!rd || !ops || !at)
		die("out of memory");
	memcpy(rd, t->reads, nr * sizeof *rd);
	size_t start = 0, end = W > 1 ? rnd_below(&r, W) : 0;
	while (start < nr) {
		if (end <= start)
			end = start + W;
		if (end > nr)
			end = nr;
		for (size_t i = end - 1; i > start; i--) {
			size_t j = start + rnd_below(&r, i - start + 1);
			struct op tmp = rd[i];
			rd[i] = rd[j];
			rd[j] = tmp;
		}
		start = end;
		end = start + W;
	}
	struct rng rw = rng_for(t->seed, 2, ci);
	for (size_t k = 0; k < nw; k++)
		at[k] = rnd_below(&rw, nr + 1);
	qsort(at, nw, sizeof *at, cmp_size);
	size_t n = 0, k = 0;
	for (size_t i = 0; i <= nr; i++) {
		while (k < nw && at[k] == i) {
			uint32_t len = draw_write_size(&rw);
			unsigned z = (unsigned)rnd_below(&rw, NZONES);
			uint64_t off = t->zone_off[z] + rnd_below(&rw, (t->zone_len - len) / BLK + 1) * BLK;
			ops[n++] = (struct op){ off, len, OP_WRITE | (uint32_t)k };
			k++;
		}
		if (i < nr)
			ops[n++] = rd[i];
	}
	free(rd);
	free(at);
	*nops = n;
	return ops;
}

/* ------------------------------------------------------------------ write data */

static uint8_t *pattern; /* 1 MiB of seeded random bytes */
static uint64_t data_seed;

static void pattern_init(uint64_t seed)
{
	data_seed = seed;
	pattern = malloc(MIB);
	if (!pattern)
		die("out of memory");
	struct rng r = rng_for(seed, 3, 0);
	for (size_t i = 0; i < MIB; i += 8) {
		uint64_t v = rnd(&r);
		memcpy(pattern + i, &v, 8);
	}
}

/* Client ci's data for the 4 KiB block at off: a tag naming (client, offset)
 * in the first 8 bytes, then 4 KiB of the shared pattern. */
static uint64_t block_tag(unsigned ci, uint64_t off)
{
	return mix64(data_seed ^ mix64(ci + 1) ^ (off * 0x2545f4914f6cdd1dull));
}

static void fill_write(uint8_t *buf, uint32_t len, unsigned ci, uint64_t off)
{
	for (uint32_t i = 0; i < len; i += BLK) {
		uint64_t o = off + i, tag = block_tag(ci, o);
		memcpy(buf + i, pattern + ((o / BLK) & 255) * BLK, BLK);
		memcpy(buf + i, &tag, 8);
	}
}

static bool check_write(const uint8_t *buf, uint32_t len, unsigned ci, uint64_t off)
{
	for (uint32_t i = 0; i < len; i += BLK) {
		uint64_t o = off + i, tag = block_tag(ci, o);
		if (memcmp(buf + i, &tag, 8) != 0 ||
		    memcmp(buf + i + 8, pattern + ((o / BLK) & 255) * BLK + 8, BLK - 8) != 0)
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------ clients */

enum { K_READ, K_WRITE, K_RB, K_FLUSH };
enum { S_CONNECTING, S_TRACE, S_READBACK, S_FLUSH, S_DONE, S_FAILED };

struct client;

struct slot {
	struct client *c;
	struct slot *next_free;
	uint8_t *buf;
	size_t cap;
	int kind;
	uint64_t off;
	uint32_t len, id;
};

struct client {
	unsigned idx;
	const char *export;
	struct nbd_handle *h;
	int state;
	struct op *ops;
	size_t nops, next;
	struct op *rb;
	int nrb, rbnext;
	bool can_flush, flush_sent;
	int inflight;
	struct slot *slots, *free;
	double t0, t_try, t_ready, t_last, t_end; /* t0: first connect attempt, t_try: this one */
	double t_wait; /* how long this attempt may take */
	unsigned attempts;
	uint64_t reads, writes, bytes_read, bytes_written, flushes, errors, rb_ok, rb_bad;
	uint64_t *vh;   /* hash of sampled read k */
	uint8_t *vgot;  /* 1 = vh[k] is set */
	char err[240];
};

static unsigned verify_every = 16;
static double connect_timeout = 5; /* seconds for TCP connect + NBD handshake, then retry */
static unsigned connect_tries = 10;
static const char *host, *port;
static unsigned long reconnects;

/* Start (or restart) a client's connection: TCP connect and handshake,
 * driven by the event loop. */
static bool client_connect(struct client *c)
{
	if (c->h)
		nbd_close(c->h);
	c->h = nbd_create();
	if (!c->h) {
		fprintf(stderr, "storm: nbd_create: %s\n", nbd_get_error());
		exit(2);
	}
	nbd_set_pread_initialize(c->h, false);
	c->t_try = now_s();
	c->attempts++;
	/* each retry waits a little longer, with jitter, so clients that
	 * failed together do not all come back at the same moment */
	struct rng r = rng_for(c->idx, 5, c->attempts);
	c->t_wait = connect_timeout * (c->attempts > 1 ? 1 + rndf(&r) : 1);
	return nbd_set_export_name(c->h, c->export) != -1 && nbd_aio_connect_tcp(c->h, host, port) != -1;
}
static unsigned readbacks = RB_PER_CLIENT; /* per client; 0 = every write that overlaps no other */

static void client_fail(struct client *c, const char *what)
{
	if (!c->err[0]) {
		const char *e = nbd_get_error();
		snprintf(c->err, sizeof c->err, "%s%s%s", what, e ? ": " : "", e ? e : "");
	}
	c->errors++;
	c->state = S_FAILED;
}

static int on_done(void *ud, int *error)
{
	struct slot *s = ud;
	struct client *c = s->c;
	c->t_last = now_s();
	if (*error) {
		c->errors++;
		if (!c->err[0])
			snprintf(c->err, sizeof c->err, "%s at %" PRIu64 "+%u: %s",
				 s->kind == K_WRITE ? "write" : s->kind == K_FLUSH ? "flush" : "read", s->off, s->len,
				 strerror(*error));
	} else {
		switch (s->kind) {
		case K_READ:
			c->reads++;
			c->bytes_read += s->len;
			if (verify_every && s->id % verify_every == 0) {
				c->vh[s->id / verify_every] = hash_buf(s->buf, s->len);
				c->vgot[s->id / verify_every] = 1;
			}
			break;
		case K_WRITE:
			c->writes++;
			c->bytes_written += s->len;
			break;
		case K_RB:
			c->reads++;
			c->bytes_read += s->len;
			if (check_write(s->buf, s->len, c->idx, s->off)) {
				c->rb_ok++;
			} else if (c->rb_bad++ < 2) {
				fprintf(stderr, "storm: client %u: read-back of its write at %" PRIu64 "+%u differs\n",
					c->idx, s->off, s->len);
			}
			break;
		case K_FLUSH:
			c->flushes++;
			break;
		}
	}
	s->next_free = c->free;
	c->free = s;
	c->inflight--;
	return 1;
}

static bool issue(struct client *c, int kind, uint64_t off, uint32_t len, uint32_t id)
{
	struct slot *s = c->free;
	if (kind != K_FLUSH && s->cap < len) {
		free(s->buf);
		s->cap = len < 64 * KIB ? 64 * KIB : len;
		s->buf = malloc(s->cap);
		if (!s->buf)
			die("out of memory");
	}
	s->kind = kind;
	s->off = off;
	s->len = len;
	s->id = id;
	nbd_completion_callback cb = { .callback = on_done, .user_data = s };
	int64_t ck;
	switch (kind) {
	case K_WRITE:
		fill_write(s->buf, len, c->idx, off);
		ck = nbd_aio_pwrite(c->h, s->buf, len, off, cb, 0);
		break;
	case K_FLUSH:
		ck = nbd_aio_flush(c->h, cb, 0);
		break;
	default:
		ck = nbd_aio_pread(c->h, s->buf, len, off, cb, 0);
		break;
	}
	if (ck == -1) {
		client_fail(c, kind == K_WRITE ? "pwrite not issued" : kind == K_FLUSH ? "flush not issued"
											: "pread not issued");
		return false;
	}
	c->free = s->next_free;
	c->inflight++;
	return true;
}

/* Advance one client: state changes, and top its queue up to qd. */
static void step(struct client *c, int qd, bool readback)
{
	if (c->state == S_DONE || c->state == S_FAILED)
		return;
	if (nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h)) {
		client_fail(c, "connection lost");
		return;
	}
	if (c->state == S_CONNECTING) {
		if (!nbd_aio_is_ready(c->h)) {
			/* A server whose listen backlog overflows (SYN cookies) can leave
			 * a connection the client thinks is open and the server never
			 * saw; NBD servers speak first, so nothing would ever happen.
			 * A real client times out and retries; so do we. */
			if (now_s() - c->t_try > c->t_wait) {
				if (c->attempts >= connect_tries) {
					snprintf(c->err, sizeof c->err, "no NBD handshake after %u attempts (%.0f s each or more)",
						 c->attempts, connect_timeout);
					c->errors++;
					c->state = S_FAILED;
					return;
				}
				reconnects++;
				if (!client_connect(c))
					client_fail(c, "connect");
			}
			return;
		}
		c->t_ready = c->t_last = now_s();
		c->can_flush = nbd_can_flush(c->h) == 1;
		c->state = S_TRACE;
	}
	if (c->state == S_TRACE) {
		while (c->inflight < qd && c->next < c->nops) {
			const struct op *o = &c->ops[c->next];
			if (!issue(c, (o->id & OP_WRITE) ? K_WRITE : K_READ, o->off, o->len, o->id))
				return;
			c->next++;
		}
		if (c->next < c->nops || c->inflight)
			return;
		c->state = readback && c->nrb ? S_READBACK : S_FLUSH;
	}
	if (c->state == S_READBACK) {
		while (c->inflight < qd && c->rbnext < c->nrb) {
			const struct op *o = &c->rb[c->rbnext];
			if (!issue(c, K_RB, o->off, o->len, 0))
				return;
			c->rbnext++;
		}
		if (c->rbnext < c->nrb || c->inflight)
			return;
		c->state = S_FLUSH;
	}
	if (c->state == S_FLUSH) {
		if (c->can_flush && !c->flush_sent) {
			c->flush_sent = true;
			if (!issue(c, K_FLUSH, 0, 0, 0))
				return;
		}
		if (c->inflight)
			return;
		c->t_end = c->t_last;
		c->state = S_DONE;
		nbd_aio_disconnect(c->h, 0);
		nbd_close(c->h);
		c->h = NULL;
	}
}

static int cmp_op_off(const void *a, const void *b)
{
	const struct op *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Up to `readbacks` (0: all) of the client's writes that overlap none of
 * its other writes (two overlapping writes in flight at once leave either
 * one's data), spread over its trace. */
static void pick_readbacks(struct client *c)
{
	size_t nw = 0;
	for (size_t i = 0; i < c->nops; i++)
		nw += (c->ops[i].id & OP_WRITE) != 0;
	if (!nw)
		return;
	struct op *w = malloc(nw * sizeof *w);
	uint8_t *solo = calloc(nw, 1);
	if (!w || !solo)
		die("out of memory");
	size_t k = 0;
	for (size_t i = 0; i < c->nops; i++)
		if (c->ops[i].id & OP_WRITE)
			w[k++] = c->ops[i];
	qsort(w, nw, sizeof *w, cmp_op_off);
	uint64_t reach = 0; /* the furthest end of the writes before i */
	for (size_t i = 0; i < nw; i++) {
		bool ok = i == 0 || w[i].off >= reach;
		if (i + 1 < nw && w[i + 1].off < w[i].off + w[i].len)
			ok = false;
		solo[i] = ok;
		if (w[i].off + w[i].len > reach)
			reach = w[i].off + w[i].len;
	}
	size_t nsolo = 0;
	for (size_t i = 0; i < nw; i++)
		nsolo += solo[i];
	size_t want = readbacks && readbacks < nsolo ? readbacks : nsolo, seen = 0;
	c->rb = malloc((want + 1) * sizeof *c->rb);
	if (!c->rb)
		die("out of memory");
	for (size_t i = 0; i < nw && c->nrb < (int)want; i++) {
		if (!solo[i])
			continue;
		if (seen++ % (nsolo / want) == 0)
			c->rb[c->nrb++] = w[i];
	}
	free(w);
	free(solo);
}

/* ------------------------------------------------------------------ output */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* nearest-rank percentile of a sorted array */
static double pct(const double *v, size_t n, double p)
{
	if (!n)
		return NAN;
	size_t k = (size_t)ceil(p / 100.0 * n);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static void json_num(FILE *f, const char *key, double v, bool comma)
{
	if (isnan(v))
		fprintf(f, "\"%s\": null%s", key, comma ? ", " : "");
	else
		fprintf(f, "\"%s\": %.4f%s", key, v, comma ? ", " : "");
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void trace_json(FILE *f, const struct trace *t)
{
	size_t nw = trace_nwrites(t);
	fprintf(f,
		"{\"image_bytes\": %" PRIu64 ", \"seed\": %" PRIu64 ", \"window\": %u, \"write_pct\": %.1f, "
		"\"reads_per_client\": %zu, \"read_bytes_per_client\": %" PRIu64 ", \"mean_read_kib\": %.1f, "
		"\"reads_4k\": %zu, \"reads_8_12k\": %zu, \"reads_16_64k\": %zu, \"reads_128k_1m\": %zu, "
		"\"rereads\": %zu, \"files\": %zu, \"unique_read_bytes\": %" PRIu64
		", \"unique_64k_blocks_bytes\": %" PRIu64 ", \"writes_per_client\": %zu, \"write_zone_bytes\": %" PRIu64
		"}",
		t->image, t->seed, t->window, t->write_pct, t->nreads, t->read_bytes,
		t->nreads ? (double)t->read_bytes / t->nreads / KIB : 0.0, t->n4k, t->n8_12k, t->n16_64k, t->nlarge,
		t->rereads, t->nfiles, t->unique_bytes, t->unique_64k_bytes, nw, t->zone_len * NZONES);
}

/* ------------------------------------------------------------------ commands */

static uint64_t parse_u64(const char *opt, const char *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-')
		die("%s: '%s' is not a whole number", opt, v);
	return x;
}

static double parse_double(const char *opt, const char *v)
{
	char *end;
	double x = strtod(v, &end);
	if (end == v || *end || !(x >= 0))
		die("%s: '%s' is not a non-negative number", opt, v);
	return x;
}

static int cmd_mkimage(int argc, char **argv)
{
	if (argc < 3)
		die("usage: storm mkimage PATH SIZE_MIB [--seed N]");
	const char *path = argv[1];
	uint64_t mib = parse_u64("SIZE_MIB", argv[2]), seed = 1;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = parse_u64("--seed", argv[++i]);
		else
			die("mkimage: unknown argument '%s'", argv[i]);
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	size_t chunk = 4 * MIB;
	uint64_t *buf = malloc(chunk);
	if (!buf)
		die("out of memory");
	struct rng r = rng_for(seed, 4, 0);
	for (uint64_t done = 0; done < mib * MIB; done += chunk) {
		for (size_t i = 0; i < chunk / 8; i++)
			buf[i] = rnd(&r);
		size_t n = chunk;
		if (done + n > mib * MIB)
			n = mib * MIB - done;
		for (size_t w = 0; w < n;) {
			ssize_t k = write(fd, (char *)buf + w, n - w);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				die("%s: write: %s", path, k < 0 ? strerror(errno) : "short write");
			w += (size_t)k;
		}
	}
	if (fsync(fd) < 0 || close(fd) < 0)
		die("%s: %s", path, strerror(errno));
	free(buf);
	return 0;
}

struct opts {
	const char *host, *port, *export, *exports_file, *image, *label;
	uint64_t image_mb;
	unsigned clients, qd;
	bool shared_cow, dump;
	long dump_client;
	double timeout;
};

static uint64_t file_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		die("%s: %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

static void parse_opts(int argc, char **argv, struct opts *o, struct trace *t)
{
	*o = (struct opts){ .host = "127.0.0.1", .clients = 1, .qd = 8, .timeout = 900, .dump_client = -1,
			    .label = "" };
	*t = (struct trace){ .seed = 1, .read_mb = 400, .window = 32, .write_pct = 5 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && (v ? (i++, 1) : (die("%s needs a value", name), 0)))
		if (ARG("--host"))
			o->host = v;
		else if (ARG("--port"))
			o->port = v;
		else if (ARG("--export"))
			o->export = v;
		else if (ARG("--exports"))
			o->exports_file = v;
		else if (ARG("--image"))
			o->image = v;
		else if (ARG("--image-mb"))
			o->image_mb = parse_u64(a, v);
		else if (ARG("--clients"))
			o->clients = (unsigned)parse_u64(a, v);
		else if (ARG("--qd"))
			o->qd = (unsigned)parse_u64(a, v);
		else if (ARG("--mb"))
			t->read_mb = parse_double(a, v);
		else if (ARG("--seed"))
			t->seed = parse_u64(a, v);
		else if (ARG("--window"))
			t->window = (unsigned)parse_u64(a, v);
		else if (ARG("--write-pct"))
			t->write_pct = parse_double(a, v);
		else if (ARG("--verify-every"))
			verify_every = (unsigned)parse_u64(a, v);
		else if (ARG("--readbacks"))
			readbacks = (unsigned)parse_u64(a, v);
		else if (ARG("--connect-timeout"))
			connect_timeout = parse_double(a, v);
		else if (ARG("--timeout"))
			o->timeout = parse_double(a, v);
		else if (ARG("--label"))
			o->label = v;
		else if (ARG("--client"))
			o->dump_client = (long)parse_u64(a, v);
		else if (!strcmp(a, "--shared-cow"))
			o->shared_cow = true;
		else if (!strcmp(a, "--dump"))
			o->dump = true;
		else
			die("unknown argument '%s'", a);
#undef ARG
	}
	if (o->image)
		t->image = file_size(o->image);
	else if (o->image_mb)
		t->image = o->image_mb * MIB;
	else
		die("--image PATH (or, for trace, --image-mb N) is required");
	t->image = t->image / BLK * BLK;
	if (t->write_pct >= 50)
		die("--write-pct must be below 50");
	if (o->qd < 1 || o->qd > QD_MAX)
		die("--qd must be 1..%d", QD_MAX);
	if (o->clients < 1 || o->clients > 4096)
		die("--clients must be 1..4096");
}

static int cmd_trace(int argc, char **argv)
{
	struct opts o;
	struct trace t;
	parse_opts(argc, argv, &o, &t);
	trace_build(&t);
	if (o.dump) {
		size_t n;
		struct op *ops = client_ops(&t, o.dump_client < 0 ? 0 : (unsigned)o.dump_client, &n);
		for (size_t i = 0; i < n; i++)
			printf("%c %" PRIu64 " %u\n", (ops[i].id & OP_WRITE) ? 'W' : 'R', ops[i].off, ops[i].len);
		free(ops);
		return 0;
	}
	trace_json(stdout, &t);
	putchar('\n');
	return 0;
}

static char **read_exports(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	char **v = NULL, line[1024];
	size_t cap = 0;
	*n = 0;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!line[0])
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			v = realloc(v, cap * sizeof *v);
			if (!v)
				die("out of memory");
		}
		v[(*n)++] = strdup(line);
	}
	fclose(f);
	if (!*n)
		die("%s: no export names", path);
	return v;
}

/* Expected hash of every sampled read, from the image file read with
 * O_DIRECT (no page cache filled for the servers). */
static uint64_t *expected_hashes(const char *image, const struct trace *t, size_t nsamples, const char **how)
{
	uint64_t *exp = calloc(nsamples, sizeof *exp);
	int fd = open(image, O_RDONLY | O_DIRECT);
	*how = "O_DIRECT";
	if (fd < 0) {
		fd = open(image, O_RDONLY);
		*how = "buffered (O_DIRECT refused)";
	}
	if (fd < 0 || !exp)
		die("%s: %s", image, strerror(errno));
	void *buf;
	if (posix_memalign(&buf, 4096, 1 * MIB))
		die("out of memory");
	for (size_t k = 0; k < nsamples; k++) {
		const struct op *o = &t->reads[k * verify_every];
		ssize_t got = 0;
		while ((size_t)got < o->len) {
			ssize_t r = pread(fd, (char *)buf + got, o->len - got, (off_t)(o->off + got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				die("%s: read at %" PRIu64 ": %s", image, o->off + got, r < 0 ? strerror(errno) : "end of file");
			got += r;
		}
		exp[k] = hash_buf(buf, o->len);
	}
	free(buf);
	close(fd);
	return exp;
}

static int cmd_run(int argc, char **argv)
{
	struct opts o;
	struct trace t;
	parse_opts(argc, argv, &o, &t);
	if (!o.port || (!o.export && !o.exports_file))
		die("run needs --port and --export NAME or --exports FILE");
	char **names = NULL;
	size_t nnames = 0;
	if (o.exports_file)
		names = read_exports(o.exports_file, &nnames);
	double tb = now_s();
	trace_build(&t);
	pattern_init(t.seed);
	size_t nsamples = verify_every ? (t.nreads + verify_every - 1) / verify_every : 0;

	unsigned N = o.clients;
	struct client *cl = calloc(N, sizeof *cl);
	struct pollfd *pfd = calloc(N, sizeof *pfd);
	struct client **pmap = calloc(N, sizeof *pmap);
	if (!cl || !pfd || !pmap)
		die("out of memory");
	for (unsigned i = 0; i < N; i++) {
		struct client *c = &cl[i];
		c->idx = i;
		c->export = names ? names[i % nnames] : o.export;
		c->ops = client_ops(&t, i, &c->nops);
		if (!o.shared_cow)
			pick_readbacks(c);
		c->slots = calloc(o.qd, sizeof *c->slots);
		c->vh = calloc(nsamples + 1, sizeof *c->vh);
		c->vgot = calloc(nsamples + 1, 1);
		if (!c->slots || !c->vh || !c->vgot)
			die("out of memory");
		for (unsigned k = 0; k < o.qd; k++) {
			c->slots[k].c = c;
			c->slots[k].next_free = c->free;
			c->free = &c->slots[k];
		}
	}
	fprintf(stderr, "storm: %s%s%u clients x %zu reads (%.1f MiB) + %zu writes, qd %u; trace built in %.2f s\n",
		o.label, o.label[0] ? ": " : "", N, t.nreads, t.read_bytes / (double)MIB, trace_nwrites(&t), o.qd,
		now_s() - tb);

	/* All clients connect at once: a boot storm. */
	host = o.host;
	port = o.port;
	double t_start = now_s();
	for (unsigned i = 0; i < N; i++) {
		struct client *c = &cl[i];
		c->t0 = now_s();
		if (!client_connect(c))
			client_fail(c, "connect");
	}
	double deadline = t_start + o.timeout;
	bool timed_out = false;
	for (;;) {
		unsigned n = 0;
		for (unsigned i = 0; i < N; i++) {
			struct client *c = &cl[i];
			step(c, (int)o.qd, !o.shared_cow);
			if (c->state == S_DONE || c->state == S_FAILED)
				continue;
			int fd = nbd_aio_get_fd(c->h);
			unsigned dir = nbd_aio_get_direction(c->h);
			if (fd < 0) {
				client_fail(c, "no socket");
				continue;
			}
			pfd[n] = (struct pollfd){ .fd = fd,
						  .events = (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
								    ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0)) };
			pmap[n++] = c;
		}
		if (!n)
			break;
		if (now_s() > deadline) {
			timed_out = true;
			for (unsigned i = 0; i < n; i++) {
				snprintf(pmap[i]->err, sizeof pmap[i]->err, "timed out after %.0f s", o.timeout);
				pmap[i]->errors++;
				pmap[i]->state = S_FAILED;
			}
			break;
		}
		int r = poll(pfd, n, 200);
		if (r < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		for (unsigned i = 0; r > 0 && i < n; i++) {
			struct client *c = pmap[i];
			short re = pfd[i].revents;
			if (!re || c->state == S_FAILED)
				continue;
			if ((re & (POLLIN | POLLERR | POLLHUP)) && nbd_aio_notify_read(c->h) == -1) {
				client_fail(c, "receive");
				continue;
			}
			if ((re & POLLOUT) && (nbd_aio_get_direction(c->h) & LIBNBD_AIO_DIRECTION_WRITE) &&
			    nbd_aio_notify_write(c->h) == -1) {
				client_fail(c, "send");
				continue;
			}
			step(c, (int)o.qd, !o.shared_cow);
		}
	}
	double t_stop = now_s();

	/* Verification of the sampled reads against the image file. */
	uint64_t verified = 0, mismatches = 0;
	const char *how = "off";
	if (nsamples) {
		uint64_t *exp = expected_hashes(o.image, &t, nsamples, &how);
		for (unsigned i = 0; i < N; i++)
			for (size_t k = 0; k < nsamples; k++) {
				if (!cl[i].vgot[k])
					continue;
				verified++;
				if (cl[i].vh[k] != exp[k]) {
					if (mismatches < 10)
						fprintf(stderr, "storm: client %u (%s): read at %" PRIu64 "+%u differs from the image\n",
							i, cl[i].export, t.reads[k * verify_every].off,
							t.reads[k * verify_every].len);
					mismatches++;
				}
			}
		free(exp);
	}

	/* Figures. */
	double *ct = calloc(N, sizeof *ct), *cc = calloc(N, sizeof *cc), last = t_start;
	size_t nok = 0;
	uint64_t reads = 0, writes = 0, br = 0, bw = 0, flushes = 0, errors = 0, rb_ok = 0, rb_bad = 0, missing = 0;
	unsigned failed = 0;
	for (unsigned i = 0; i < N; i++) {
		struct client *c = &cl[i];
		reads += c->reads;
		writes += c->writes;
		br += c->bytes_read;
		bw += c->bytes_written;
		flushes += c->flushes;
		errors += c->errors;
		rb_ok += c->rb_ok;
		rb_bad += c->rb_bad;
		if (c->state == S_DONE) {
			ct[nok] = c->t_end - c->t0;
			cc[nok++] = c->t_ready - c->t0;
			if (c->t_end > last)
				last = c->t_end;
		} else {
			failed++;
			missing += c->nops - (c->next > (size_t)c->inflight ? c->next - c->inflight : 0);
			if (failed <= 5)
				fprintf(stderr, "storm: client %u (%s) failed: %s\n", i, c->export, c->err);
			if (c->h)
				nbd_close(c->h);
		}
	}
	qsort(ct, nok, sizeof *ct, cmp_double);
	qsort(cc, nok, sizeof *cc, cmp_double);
	double mean = 0;
	for (size_t i = 0; i < nok; i++)
		mean += ct[i] / nok;

	FILE *f = stdout;
	fprintf(f, "{\"label\": ");
	json_str(f, o.label);
	fprintf(f, ", \"clients\": %u, \"qd\": %u, \"ok_clients\": %zu, \"failed_clients\": %u, ", N, o.qd, nok, failed);
	json_num(f, "total_s", nok ? last - t_start : NAN, true);
	json_num(f, "wall_s", t_stop - t_start, true);
	fprintf(f, "\"client_s\": {");
	json_num(f, "min", nok ? ct[0] : NAN, true);
	json_num(f, "p50", pct(ct, nok, 50), true);
	json_num(f, "p90", pct(ct, nok, 90), true);
	json_num(f, "p99", pct(ct, nok, 99), true);
	json_num(f, "max", nok ? ct[nok - 1] : NAN, true);
	json_num(f, "mean", nok ? mean : NAN, false);
	fprintf(f, "}, \"connect_s\": {");
	json_num(f, "p50", pct(cc, nok, 50), true);
	json_num(f, "max", nok ? cc[nok - 1] : NAN, false);
	fprintf(f,
		"}, \"reads\": %" PRIu64 ", \"writes\": %" PRIu64 ", \"flushes\": %" PRIu64 ", \"bytes_read\": %" PRIu64
		", \"bytes_written\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"reconnects\": %lu, \"ops_missing\": %" PRIu64
		", \"timed_out\": %s, \"verify\": {\"every\": %u, \"image_read\": \"%s\", \"reads_checked\": %" PRIu64
		", \"mismatches\": %" PRIu64 ", \"readbacks\": %s, \"readback_ok\": %" PRIu64
		", \"readback_mismatches\": %" PRIu64 "}, \"trace\": ",
		reads, writes, flushes, br, bw, errors, reconnects, missing, timed_out ? "true" : "false", verify_every, how, verified,
		mismatches, o.shared_cow ? "\"skipped (--shared-cow)\"" : "\"own writes\"", rb_ok, rb_bad);
	trace_json(f, &t);
	fprintf(f, "}\n");
	fflush(f);

	for (unsigned i = 0; i < N; i++) {
		free(cl[i].ops);
		for (unsigned k = 0; k < o.qd; k++)
			free(cl[i].slots[k].buf);
		free(cl[i].slots);
		free(cl[i].vh);
		free(cl[i].vgot);
		free(cl[i].rb);
	}
	free(cl);
	free(pfd);
	free(pmap);
	free(ct);
	free(cc);
	return errors || mismatches || rb_bad || failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fprintf(stderr, "usage: storm mkimage PATH SIZE_MIB [--seed N]\n"
				"       storm trace (--image PATH | --image-mb N) [--mb R] [--seed S] [--window W]\n"
				"             [--write-pct P] [--client I --dump]\n"
				"       storm run --port P (--export NAME | --exports FILE) --image PATH --clients N\n"
				"             [--host H] [--qd 8] [--shared-cow] [--verify-every 16] [--readbacks 8]\n"
				"             [--connect-timeout 5] [--timeout 900]"
				"\n"
				"             [--label TEXT] [--mb R] [--seed S] [--window W] [--write-pct P]\n");
		return 2;
	}
	if (!strcmp(argv[1], "mkimage"))
		return cmd_mkimage(argc - 1, argv + 1);
	if (!strcmp(argv[1], "trace"))
		return cmd_trace(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	die("unknown command '%s' (mkimage, trace, run)", argv[1]);
}
