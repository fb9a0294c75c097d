/* nbd_xmit.c — NBD transmission phase (proto.md "Transmission").
 *
 * Requests are parsed as they arrive and started at once; replies go out
 * in completion order (the cookie matches them up), so a slow disk read
 * never holds back a cached or hole read behind it. At most
 * limits/inflight requests run per connection; past that, reading pauses
 * until replies have been sent.
 *
 * Validate, then execute: validate() returns the errno a request earns
 * (bad flags, out of range, too large, unknown command, no meta context)
 * and the executor assumes a valid request.
 *
 * Reply shapes:
 *  - simple replies unless structured replies were negotiated (the Linux
 *    kernel client never negotiates them);
 *  - structured: READ → one OFFSET_DATA chunk (or OFFSET_HOLE for a hole,
 *    unless DF), errors → ERROR chunk, BLOCK_STATUS → one BLOCK_STATUS
 *    chunk; everything else a simple reply (allowed by the spec).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootset.h"
#include "clients.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "nbd.h"
#include "nbd_wire.h"
#include "stats.h"
#include "util.h"

#define NBD_MAX_EXTENTS 256
/* Released requests a connection keeps for reuse: a request costs no
 * malloc/free in the steady state (at most this many are kept). */
#define NBD_SPARE_REQS 64

struct nbd_req {
	struct vd_req vr;
	struct txmsg tx;
	struct nbd_conn *n;
	uint64_t cookie;
	uint16_t type, flags;
	uint32_t err;             /* wire errno of the reply */
	uint64_t start_ns;        /* when execute() started it (latency histogram) */
	uint8_t *extra;           /* block status payload */
	struct iovec *txiov;      /* reply iovecs when more than fit inline */
	struct nbd_req *next_spare;
};

static void nbd_req_release(struct txmsg *m);

uint16_t nbd_tflags(const struct nbd_conn *n, const struct vdisk *vd)
{
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_CACHE;
	if (vd->read_only)
		f |= NBD_FLAG_READ_ONLY;
	else
		f |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
	if (vd->multi_conn)
		f |= NBD_FLAG_CAN_MULTI_CONN;
	if (n->structured)
		f |= NBD_FLAG_SEND_DF;
	return f;
}

int nbd_xmit_begin(struct nbd_conn *n)
{
	char err[320] = "";
	int r;
	if (n->exp.e.kind == EXPORT_CLIENT)
		r = clients_acquire(&n->exp.e, &n->c->peer_ip, &n->vd, err, sizeof err);
	else
		r = vdisk_open_image(n->exp.e.img, &n->vd);
	if (r < 0) {
		snprintf(n->logtag, sizeof n->logtag, "export=%s: ", n->exp.e.name);
		nbd_log(BL_ERR, n, "cannot open the disk: %s", err[0] ? err : strerror(-r));
		n->vd = NULL;
		return -1;
	}
	n->tflags = nbd_tflags(n, n->vd);
	snprintf(n->logtag, sizeof n->logtag, "export=%s: ", n->exp.e.name);
	__atomic_fetch_add(&n->exp.e.img->stat_connections, 1, __ATOMIC_RELAXED);
	stats_conn_set_export(n->c, n->exp.e.name);
	n->phase = NBD_PH_TRANSMISSION;
	n->c->rx_need = NBD_REQUEST_SIZE;
	nbd_log(BL_INFO, n, "transmission started (%s replies%s)", n->structured ? "structured" : "simple",
		n->meta_alloc ? ", base:allocation" : "");
	return 0;
}

/* The errno a request earns before it runs, or 0. */
static int validate(const struct nbd_conn *n, const struct nbd_request *q)
{
	uint16_t allowed = NBD_CMD_FLAG_FUA;
	switch (q->type) {
	case NBD_CMD_READ:
		if (n->structured)
			allowed |= NBD_CMD_FLAG_DF;
		break;
	case NBD_CMD_WRITE_ZEROES:
		allowed |= NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
		break;
	case NBD_CMD_BLOCK_STATUS:
		allowed |= NBD_CMD_FLAG_REQ_ONE;
		if (!n->meta_alloc)
			return -EINVAL;
		break;
	case NBD_CMD_WRITE: case NBD_CMD_TRIM: case NBD_CMD_CACHE: case NBD_CMD_FLUSH:
		break;
	default:
		return -EINVAL;
	}
	if (q->flags & ~allowed)
		return -EINVAL;
	if (q->type == NBD_CMD_FLUSH)
		return 0;
	if (q->length == 0)
		return -EINVAL;
	if ((q->type == NBD_CMD_READ || q->type == NBD_CMD_WRITE) && q->length > NBD_MAX_REQUEST)
		return -EOVERFLOW;
	if (q->offset > n->vd->size || q->length > n->vd->size - q->offset)
		return q->type == NBD_CMD_WRITE && !n->vd->read_only ? -ENOSPC : -EINVAL;
	if (n->vd->read_only && (q->type == NBD_CMD_WRITE || q->type == NBD_CMD_TRIM ||
				  q->type == NBD_CMD_WRITE_ZEROES))
		return -EPERM;
	return 0;
}

/* A zeroed request: a spare of the connection's, else a new one. */
static struct nbd_req *req_alloc(struct nbd_conn *n)
{
	struct nbd_req *r = n->spare;
	if (!r)
		return calloc(1, sizeof *r);
	n->spare = r->next_spare;
	n->nspare--;
	memset(r, 0, sizeof *r);
	return r;
}

/* Keep a released request for reuse, or free it past NBD_SPARE_REQS. */
static void req_free(struct nbd_conn *n, struct nbd_req *r)
{
	if (n->nspare >= NBD_SPARE_REQS) {
		free(r);
		return;
	}
	r->next_spare = n->spare;
	n->spare = r;
	n->nspare++;
}

void nbd_xmit_free_spares(struct nbd_conn *n)
{
	while (n->spare) {
		struct nbd_req *r = n->spare;
		n->spare = r->next_spare;
		free(r);
	}
	n->nspare = 0;
}

static struct nbd_req *req_new(struct nbd_conn *n, const struct nbd_request *q)
{
	struct nbd_req *r = req_alloc(n);
	if (!r)
		return NULL;
	r->n = n;
	r->cookie = q->cookie;
	r->type = q->type;
	r->flags = q->flags;
	r->tx.release = nbd_req_release;
	r->tx.iov = r->tx.iov_inline;
	r->vr.client_id = n->c->id;
	n->inflight++;
	conn_get(n->c);
	return r;
}

/* Append the read's data pieces after the reply header. */
static void attach_data(struct nbd_req *r)
{
	struct txmsg *m = &r->tx;
	int n = 1 + r->vr.niov;
	if (n > TXMSG_IOV) {
		r->txiov = malloc(n * sizeof *r->txiov);
		if (!r->txiov) {
			/* Cannot describe the reply: the stream would be lost. */
			conn_close(r->n->c, "out of memory building a reply");
			return;
		}
		r->txiov[0] = m->iov[0];
		m->iov = r->txiov;
	}
	memcpy(m->iov + 1, r->vr.iov, r->vr.niov * sizeof *m->iov);
	m->niov = n;
}

/* Build the reply for a finished request and queue it. */
static void reply(struct nbd_req *r, int res)
{
	struct nbd_conn *n = r->n;
	struct txmsg *m = &r->tx;
	r->err = nbd_errno(res);
	m->niov = 1;
	m->iov[0].iov_base = m->hdr;
	if (r->err && n->structured && r->type != NBD_CMD_FLUSH) {
		nbd_build_chunk(m->hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, r->cookie, 6);
		put_be32(m->hdr + 20, r->err);
		put_be16(m->hdr + 24, 0);
		m->iov[0].iov_len = 26;
	} else if (r->err || r->type != NBD_CMD_READ) {
		m->iov[0].iov_len = nbd_build_simple_reply(m->hdr, r->err, r->cookie);
	} else if (!n->structured) {
		m->iov[0].iov_len = nbd_build_simple_reply(m->hdr, 0, r->cookie);
		attach_data(r);
	} else if (r->vr.iov[0].iov_base == vd_zeros && !(r->flags & NBD_CMD_FLAG_DF)) {
		nbd_build_chunk(m->hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_HOLE, r->cookie, 12);
		put_be64(m->hdr + 20, r->vr.off);
		put_be32(m->hdr + 28, (uint32_t)r->vr.len);
		m->iov[0].iov_len = 32;
	} else {
		nbd_build_chunk(m->hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, r->cookie, 8 + r->vr.len);
		put_be64(m->hdr + 20, r->vr.off);
		m->iov[0].iov_len = 28;
		attach_data(r);
	}
	if (r->err) {
		n->c->stat_errors++;
		unsigned held;
		if (r->err != NBD_EINVAL && r->err != NBD_EPERM && log_ratelimit(&n->err_rl, 10000000000ull, &held))
			nbd_log(BL_WARN, n, "request type %u offset %llu length %llu failed: %s%s", r->type,
				(unsigned long long)r->vr.off, (unsigned long long)r->vr.len, strerror(-res),
				held ? " (more failures since the last line were not logged)" : "");
	} else if (r->type == NBD_CMD_READ) {
		n->c->stat_bytes_read += r->vr.len;
		metrics_latency(n->c->w->id, MET_NBD, MET_READ, now_ns() - r->start_ns);
	} else if (r->type == NBD_CMD_WRITE) {
		n->c->stat_bytes_written += r->vr.len;
		metrics_latency(n->c->w->id, MET_NBD, MET_WRITE, now_ns() - r->start_ns);
	}
	n->c->stat_requests++;
	conn_send(n->c, m);
}

static void on_vd_done(struct vd_req *vr, int res)
{
	reply(vr->owner, res);
}

static void block_status(struct nbd_req *r)
{
	struct vd_extent ext[NBD_MAX_EXTENTS];
	int max = (r->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : NBD_MAX_EXTENTS;
	int cnt = vdisk_extents(r->n->vd, r->vr.off, r->vr.len, ext, max);
	if (cnt < 0 || !(r->extra = malloc(4 + 8 * (size_t)cnt))) {
		reply(r, cnt < 0 ? cnt : -ENOMEM);
		return;
	}
	put_be32(r->extra, 1); /* context id of base:allocation */
	for (int i = 0; i < cnt; i++) {
		uint32_t st = (ext[i].flags & VD_EXT_HOLE ? NBD_STATE_HOLE : 0) |
			      (ext[i].flags & VD_EXT_ZERO ? NBD_STATE_ZERO : 0);
		put_be32(r->extra + 4 + 8 * i, (uint32_t)ext[i].len);
		put_be32(r->extra + 8 + 8 * i, st);
	}
	struct txmsg *m = &r->tx;
	uint32_t plen = 4 + 8 * (uint32_t)cnt;
	nbd_build_chunk(m->hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, r->cookie, plen);
	m->iov[0] = (struct iovec){ m->hdr, NBD_CHUNK_HDR_SIZE };
	m->iov[1] = (struct iovec){ r->extra, plen };
	m->niov = 2;
	r->n->c->stat_requests++;
	conn_send(r->n->c, m);
}

static const enum vd_op vd_op_of[] = {
	[NBD_CMD_READ] = VD_READ, [NBD_CMD_WRITE] = VD_WRITE, [NBD_CMD_FLUSH] = VD_FLUSH,
	[NBD_CMD_TRIM] = VD_TRIM, [NBD_CMD_CACHE] = VD_CACHE, [NBD_CMD_WRITE_ZEROES] = VD_ZERO,
};

/* Start one validated request (payload, for WRITE, at data). */
static void execute(struct nbd_req *r, const struct nbd_request *q, const uint8_t *data)
{
	r->vr.off = q->offset;
	r->vr.len = q->type == NBD_CMD_FLUSH ? 0 : q->length;
	r->start_ns = now_ns();
	if (q->type == NBD_CMD_BLOCK_STATUS) {
		block_status(r);
		return;
	}
	struct vd_req *vr = &r->vr;
	vr->vd = r->n->vd;
	vr->w = r->n->c->w;
	vr->op = vd_op_of[q->type];
	vr->flags = (q->flags & NBD_CMD_FLAG_FUA ? VD_F_FUA : 0) |
		    (q->flags & NBD_CMD_FLAG_NO_HOLE ? VD_F_NO_HOLE : 0) |
		    (q->flags & NBD_CMD_FLAG_FAST_ZERO ? VD_F_FAST_ZERO : 0);
	vr->wdata = data;
	vr->learn = vr->op == VD_READ && now_ns() - r->n->c->started_ns < bootset_window_ns();
	if (vr->op == VD_READ)
		vd_req_track_seq(vr, &r->n->next_read, q->offset, q->length);
	vr->done = on_vd_done;
	vr->owner = r;
	worker_note_request(vr->w);
	int res = vdisk_submit(vr);
	if (res < 0)
		reply(r, res);
}

static void nbd_req_release(struct txmsg *m)
{
	struct nbd_req *r = (struct nbd_req *)((uint8_t *)m - __builtin_offsetof(struct nbd_req, tx));
	struct nbd_conn *n = r->n;
	struct conn *c = n->c;
	vd_req_release(&r->vr);
	free(r->extra);
	free(r->txiov);
	req_free(n, r);
	n->inflight--;
	if (n->phase == NBD_PH_DONE && n->inflight == 0)
		conn_close_after_send(c);
	else if (n->paused_full && n->inflight < live_get(&g_live.max_inflight)) {
		n->paused_full = false;
		conn_resume(c);
	}
	conn_put(c);
}

/* Discard payload bytes of an oversized write. */
static void skip_payload(struct nbd_conn *n)
{
	size_t k = MIN(n->skip, conn_rx_len(n->c));
	conn_rx_consume(n->c, k);
	n->skip -= k;
	n->c->rx_need = n->skip ? 1 : NBD_REQUEST_SIZE;
}

/* One request whose header (and payload, for a WRITE) is buffered. Returns
 * 0 (continue), 1 (need more bytes), -1 (close). */
static int one_request(struct nbd_conn *n)
{
	struct conn *c = n->c;
	struct nbd_request q;
	if (nbd_parse_request(conn_rx_data(c), &q) < 0) {
		nbd_log(BL_INFO, n, "bad request magic: the stream is lost; closing");
		return -1;
	}
	if (q.type == NBD_CMD_DISC) {
		nbd_log(BL_DEBUG, n, "client disconnects");
		conn_rx_consume(c, NBD_REQUEST_SIZE);
		n->phase = NBD_PH_DONE;
		conn_pause(c);
		if (n->inflight == 0)
			conn_close_after_send(c);
		return 0;
	}
	uint64_t payload = q.type == NBD_CMD_WRITE ? q.length : 0;
	if (payload > NBD_MAX_REQUEST) {
		if (payload > NBD_MAX_DISCARD_PAYLOAD) {
			nbd_log(BL_WARN, n, "write of %llu bytes exceeds every limit; closing", (unsigned long long)payload);
			return -1;
		}
		conn_rx_consume(c, NBD_REQUEST_SIZE);
		n->skip = payload;
		struct nbd_req *r = req_new(n, &q);
		if (!r)
			return -1;
		r->vr.off = q.offset;
		r->vr.len = q.length;
		reply(r, -EOVERFLOW);
		skip_payload(n);
		return 0;
	}
	if (conn_rx_len(c) < NBD_REQUEST_SIZE + payload) {
		c->rx_need = NBD_REQUEST_SIZE + payload;
		return 1;
	}
	struct nbd_req *r = req_new(n, &q);
	if (!r)
		return -1;
	int v = validate(n, &q);
	if (v < 0) {
		r->vr.off = q.offset;
		r->vr.len = q.length;
		reply(r, v);
	} else {
		execute(r, &q, conn_rx_data(c) + NBD_REQUEST_SIZE);
	}
	/* A WRITE's payload was consumed by execute(): vdisk copies what it keeps. */
	conn_rx_consume(c, NBD_REQUEST_SIZE + payload);
	c->rx_need = NBD_REQUEST_SIZE;
	return 0;
}

int nbd_xmit_data(struct nbd_conn *n)
{
	struct conn *c = n->c;
	while (n->phase == NBD_PH_TRANSMISSION && !c->closing) {
		if (n->skip) {
			skip_payload(n);
			if (n->skip)
				return 0;
			continue;
		}
		if (n->inflight >= live_get(&g_live.max_inflight)) {
			n->paused_full = true;
			conn_pause(c);
			return 0;
		}
		if (conn_rx_len(c) < NBD_REQUEST_SIZE) {
			c->rx_need = NBD_REQUEST_SIZE;
			return 0;
		}
		int r = one_request(n);
		if (r < 0)
			return -1;
		if (r > 0)
			return 0;
	}
	return 0;
}
