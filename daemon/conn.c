/* conn.c — connection buffers, send queue and lifetime; see conn.h.
 *
 * Invariants:
 *  - at most one recv and one send SQE per connection are outstanding
 *    (recv_posted / send_posted), each holding a reference;
 *  - rx[rx_start, rx_end) is received, unconsumed data; rx_need >= the
 *    bytes on_data() wants before it can make progress;
 *  - a closing connection posts no new recv and frees itself (after the
 *    protocol's destroy) once refs drops to zero.
 *
 * TLS (c->tls, daemon/tls.h): the recv lands in the session's ciphertext
 * input and is decrypted into rx, so the protocol sees plaintext as ever;
 * the send carries the session's ciphertext output, into which the tx
 * queue is encrypted a batch at a time (TLS_TX_BATCH) while no send is in
 * flight. A message is released once encrypted (its bytes are copied). A
 * plaintext connection pays one predicted branch per recv and per send.
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"
#include "tls.h"
#include "util.h"

#define CONN_RX_MAX (NBD_RX_MAX)
/* Largest message a protocol may ask to buffer: a 32 MiB NBD write + header. */
#define NBD_RX_MAX (32u * 1024 * 1024 + 64 * 1024)
/* Plaintext encrypted per send under TLS (then the ciphertext goes out). */
#define TLS_TX_BATCH (256u * 1024)

static uint64_t next_conn_id = 1;

static void post_recv(struct conn *c);
static void post_send(struct conn *c);
static void defer_send(struct conn *c);
static void conn_free(struct conn *c);
static void tls_post_recv(struct conn *c);
static void tls_on_recv(struct conn *c, size_t n);
static void tls_post_send(struct conn *c);
static void tls_start(struct conn *c);

void conn_get(struct conn *c)
{
	c->refs++;
}

void conn_put(struct conn *c)
{
	if (--c->refs == 0 && c->closing)
		conn_free(c);
}

void conn_new(struct worker *w, int fd, const struct proto *proto)
{
	struct conn *c = calloc(1, sizeof *c);
	uint8_t *rx = malloc(CONN_RX_INIT);
	if (!c || !rx) {
		free(c);
		free(rx);
		close(fd);
		log_err("out of memory accepting a connection");
		return;
	}
	c->w = w;
	c->fd = fd;
	c->proto = proto;
	c->rx = rx;
	c->rx_cap = CONN_RX_INIT;
	c->id = __atomic_fetch_add(&next_conn_id, 1, __ATOMIC_RELAXED);
	c->started_ns = now_ns();
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		addr_format((struct sockaddr *)&ss, c->peer, sizeof c->peer);
		ipaddr_from_sockaddr((struct sockaddr *)&ss, &c->peer_ip);
	} else
		strcpy(c->peer, "?");
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	__atomic_fetch_add(&g_total_conns, 1, __ATOMIC_RELAXED);
	stats_conn_add(c);
	c->refs = 1; /* held until conn_close */
	log_debug("[%s #%llu] connected (%s)", c->peer, (unsigned long long)c->id, proto->name);
	if (proto->start(c) < 0) {
		conn_close(c, "protocol start failed");
		return;
	}
	c->rx_need = 1;
	post_recv(c);
}

/* Release every queued message (no send may be in flight: the kernel
 * could still be reading their buffers). Their release callbacks may drop
 * connection references. */
static void tx_drop_all(struct conn *c)
{
	struct txmsg *m = c->txq;
	c->txq = c->txq_tail = NULL;
	c->tx_queued_bytes = 0;
	while (m) {
		struct txmsg *n = m->next;
		if (m->release)
			m->release(m);
		m = n;
	}
}

static void conn_free(struct conn *c)
{
	struct worker *w = c->w;
	tx_drop_all(c);
	if (c->proto->destroy)
		c->proto->destroy(c);
	stats_conn_remove(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	__atomic_fetch_sub(&g_total_conns, 1, __ATOMIC_RELAXED);
	close(c->fd);
	tls_free(c->tls);
	free(c->rx);
	free(c);
}

void conn_close(struct conn *c, const char *why)
{
	if (c->closing)
		return;
	c->closing = true;
	log_debug("[%s #%llu] closing: %s", c->peer, (unsigned long long)c->id, why);
	/* Wakes a pending recv (returns 0) and fails a pending send. */
	shutdown(c->fd, SHUT_RDWR);
	conn_get(c);
	if (!c->send_posted)
		tx_drop_all(c);
	conn_put(c);
	conn_put(c); /* the reference held since conn_new */
}

void conn_close_after_send(struct conn *c)
{
	c->close_after_send = true;
	c->rx_paused = true;
	if (c->tls)
		post_send(c); /* the TLS output, close_notify, then the close */
	else if (!c->txq && !c->send_posted)
		conn_close(c, "done");
}

/* Make room in rx: compact, then grow up to what the protocol needs (or
 * give memory back after a large message). 0, or -1 (closed). */
static inline __attribute__((always_inline)) int rx_make_room(struct conn *c)
{
	if (c->rx_start > 0) {
		memmove(c->rx, c->rx + c->rx_start, c->rx_end - c->rx_start);
		c->rx_end -= c->rx_start;
		c->rx_start = 0;
	}
	size_t want = MAX(c->rx_need, c->rx_end + 1);
	if (want > c->rx_cap) {
		if (want > CONN_RX_MAX) {
			conn_close(c, "message too large");
			return -1;
		}
		size_t cap = c->rx_cap;
		while (cap < want)
			cap *= 2;
		uint8_t *nrx = realloc(c->rx, cap);
		if (!nrx) {
			conn_close(c, "out of memory");
			return -1;
		}
		c->rx = nrx;
		c->rx_cap = cap;
	} else if (c->rx_cap > CONN_RX_INIT && want <= CONN_RX_INIT && c->rx_end <= CONN_RX_INIT) {
		/* A large write is done: give the memory back. */
		uint8_t *nrx = realloc(c->rx, CONN_RX_INIT);
		if (nrx) {
			c->rx = nrx;
			c->rx_cap = CONN_RX_INIT;
		}
	}
	return 0;
}

static void post_recv(struct conn *c)
{
	if (c->closing || c->recv_posted || c->rx_paused)
		return;
	if (unlikely(c->tls)) {
		tls_post_recv(c);
		return;
	}
	if (rx_make_room(c) < 0)
		return;
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_recv(sqe, c->fd, c->rx + c->rx_end, c->rx_cap - c->rx_end, 0);
	io_uring_sqe_set_data64(sqe, ud_make(c, UD_RECV));
	c->recv_posted = true;
	conn_get(c);
}

static void run_proto(struct conn *c)
{
	if (c->closing)
		return;
	if (conn_rx_len(c) >= c->rx_need || c->rx_need == 0) {
		if (c->proto->on_data(c) < 0) {
			conn_close(c, "protocol error");
			return;
		}
	}
	post_recv(c);
}

void conn_on_recv(struct conn *c, int res)
{
	c->recv_posted = false;
	if (res > 0 && !c->closing) {
		struct worker *w = c->w;
		unsigned before = w->nreqs;
		if (unlikely(c->tls)) {
			tls_on_recv(c, (size_t)res);
		} else {
			c->rx_end += res;
			run_proto(c);
		}
		if (w->nreqs - before > 1)
			w->pipelined = true;
	} else if (res == -EAGAIN || res == -EINTR) {
		post_recv(c);
	} else if (!c->closing) {
		conn_close(c, res == 0 ? "peer closed" : strerror(-res));
	}
	conn_put(c);
}

void conn_rx_consume(struct conn *c, size_t n)
{
	c->rx_start += n;
	if (c->rx_start == c->rx_end)
		c->rx_start = c->rx_end = 0;
}

void conn_pause(struct conn *c)
{
	c->rx_paused = true;
}

void conn_resume(struct conn *c)
{
	if (!c->rx_paused || c->close_after_send)
		return;
	c->rx_paused = false;
	run_proto(c);
}

void conn_send(struct conn *c, struct txmsg *m)
{
	m->next = NULL;
	if (c->closing) {
		if (m->release)
			m->release(m);
		return;
	}
	for (int i = 0; i < m->niov; i++)
		c->tx_queued_bytes += m->iov[i].iov_len;
	if (c->txq_tail)
		c->txq_tail->next = m;
	else
		c->txq = m;
	c->txq_tail = m;
	defer_send(c);
}

/* Send at the end of the loop turn, with whatever else the turn queues. */
static void defer_send(struct conn *c)
{
	if (c->tx_deferred || c->send_posted || c->closing)
		return;
	c->tx_deferred = true;
	c->tx_dirty_next = c->w->tx_dirty;
	c->w->tx_dirty = c;
	conn_get(c);
}

void conn_flush_sends(struct worker *w)
{
	struct conn *c;
	while ((c = w->tx_dirty)) {
		w->tx_dirty = c->tx_dirty_next;
		c->tx_deferred = false;
		post_send(c);
		conn_put(c);
	}
}

static void release_free(struct txmsg *m)
{
	free(m);
}

int conn_send_copy(struct conn *c, const void *data, size_t len)
{
	struct txmsg *m = malloc(sizeof *m + len);
	if (!m)
		return -ENOMEM;
	memcpy(m + 1, data, len);
	m->iov = m->iov_inline;
	m->iov[0].iov_base = m + 1;
	m->iov[0].iov_len = len;
	m->niov = 1;
	m->release = release_free;
	conn_send(c, m);
	return 0;
}

static void post_send(struct conn *c)
{
	if (c->send_posted || c->closing)
		return;
	if (unlikely(c->tls)) {
		tls_post_send(c);
		return;
	}
	if (!c->txq)
		return;
	int n = 0;
	for (struct txmsg *m = c->txq; m && n < CONN_SEND_IOV; m = m->next)
		for (int i = 0; i < m->niov && n < CONN_SEND_IOV; i++)
			if (m->iov[i].iov_len)
				c->siov[n++] = m->iov[i];
	memset(&c->smsg, 0, sizeof c->smsg);
	c->smsg.msg_iov = c->siov;
	c->smsg.msg_iovlen = n;
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_sendmsg(sqe, c->fd, &c->smsg, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_make(c, UD_SEND));
	c->send_posted = true;
	conn_get(c);
}

/* Drop res sent bytes from the front of the queue, then release the
 * finished messages. Releases run last: a release may queue and send more
 * (a resumed connection answers buffered requests), which must see the
 * queue with every sent byte already accounted for. */
static void tx_advance(struct conn *c, size_t res)
{
	struct txmsg *sent = NULL, **tail = &sent;
	c->tx_queued_bytes -= res;
	while (c->txq) {
		struct txmsg *m = c->txq;
		int i;
		for (i = 0; i < m->niov && res; i++) {
			size_t k = MIN(res, m->iov[i].iov_len);
			m->iov[i].iov_base = (uint8_t *)m->iov[i].iov_base + k;
			m->iov[i].iov_len -= k;
			res -= k;
		}
		bool done = true;
		for (i = 0; i < m->niov; i++)
			if (m->iov[i].iov_len)
				done = false;
		if (!done)
			break;
		c->txq = m->next;
		if (!c->txq)
			c->txq_tail = NULL;
		m->next = NULL;
		*tail = m;
		tail = &m->next;
	}
	while (sent) {
		struct txmsg *m = sent;
		sent = m->next;
		if (m->release)
			m->release(m);
	}
}

void conn_on_send(struct conn *c, int res)
{
	c->send_posted = false;
	if (c->closing) {
		tx_drop_all(c);
	} else if (res > 0) {
		if (unlikely(c->tls)) {
			tls_out_consume(c->tls, (size_t)res);
			post_send(c);
		} else {
			tx_advance(c, (size_t)res);
			if (c->txq)
				defer_send(c);
			else if (c->close_after_send)
				conn_close(c, "done");
			else if (unlikely(c->tls_pending))
				tls_start(c);
		}
	} else if (res == -EAGAIN || res == -EINTR || res == 0) {
		post_send(c);
	} else if (!c->closing) {
		conn_close(c, strerror(-res));
	}
	conn_put(c);
}

/* ---- TLS (daemon/tls.h) ------------------------------------------------ */

/* conn.h */
int conn_starttls(struct conn *c)
{
	if (tls_mode() == CONF_TLS_OFF)
		return -ENOTSUP;
	if (!c->txq && !c->send_posted)
		return -EINVAL; /* the reply to STARTTLS must be queued first */
	c->tls_pending = true;
	c->rx_paused = true;
	return 0;
}

/* The reply to STARTTLS is out: from now on the socket carries TLS. */
static void tls_start(struct conn *c)
{
	c->tls_pending = false;
	c->tls = tls_new();
	if (!c->tls) {
		conn_log(BL_WARN, c, "TLS: cannot create a session (out of memory)");
		conn_close(c, "TLS setup failed");
		return;
	}
	/* Bytes that followed STARTTLS are the start of the TLS stream. */
	if (conn_rx_len(c)) {
		if (tls_in_put(c->tls, conn_rx_data(c), conn_rx_len(c)) < 0) {
			conn_log(BL_INFO, c, "TLS: %zu bytes sent before the TLS handshake; closing", conn_rx_len(c));
			conn_close(c, "TLS input overflow");
			return;
		}
		conn_rx_consume(c, conn_rx_len(c));
	}
	c->rx_paused = false;
	tls_on_recv(c, 0);
}

/* Receive ciphertext into the session's input. */
static void tls_post_recv(struct conn *c)
{
	size_t room;
	unsigned char *p = tls_in_space(c->tls, &room);
	if (room == 0) {
		/* Cannot happen: GnuTLS takes every byte offered (tls.c). */
		conn_log(BL_WARN, c, "TLS: input buffer full; closing");
		conn_close(c, "TLS input overflow");
		return;
	}
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_recv(sqe, c->fd, p, room, 0);
	io_uring_sqe_set_data64(sqe, ud_make(c, UD_RECV));
	c->recv_posted = true;
	conn_get(c);
}

/* n bytes of ciphertext arrived: handshake, or decrypt into rx and let the
 * protocol parse; then receive (and send what TLS produced). */
static void tls_on_recv(struct conn *c, size_t n)
{
	struct tls *t = c->tls;
	tls_in_commit(t, n);
	if (!tls_established(t)) {
		int r = tls_handshake(t);
		if (r < 0) {
			conn_log(BL_WARN, c, "TLS handshake failed: %s; closing", tls_error(t));
			conn_close_after_send(c); /* the alert goes out first */
			return;
		}
		if (r == 0) {
			post_send(c);
			post_recv(c);
			return;
		}
		char d[256];
		tls_describe(t, d, sizeof d);
		conn_log(BL_INFO, c, "TLS established: %s", d);
	}
	for (;;) {
		if (rx_make_room(c) < 0)
			return;
		ssize_t r = tls_read(t, c->rx + c->rx_end, c->rx_cap - c->rx_end);
		if (r == 0)
			break;
		if (r == -2) {
			conn_close(c, "peer ended TLS");
			return;
		}
		if (r < 0) {
			conn_log(BL_INFO, c, "TLS: %s; closing", tls_error(t));
			conn_close(c, "TLS error");
			return;
		}
		c->rx_end += (size_t)r;
	}
	post_send(c); /* anything TLS itself answered (key updates) */
	run_proto(c);
}

/* Encrypt a batch of the tx queue unless ciphertext is still waiting, then
 * send the ciphertext; when closing after the send, end TLS cleanly first. */
static void tls_post_send(struct conn *c)
{
	struct tls *t = c->tls;
	size_t len;
	if (c->tls_busy)
		return; /* a release while encrypting: the batch loop sends */
	tls_out(t, &len);
	if (len == 0 && c->txq && tls_established(t)) {
		size_t n = 0;
		int r = 0;
		c->tls_busy = true;
		tls_cork(t);
		for (struct txmsg *m = c->txq; m && n < TLS_TX_BATCH && r == 0; m = m->next) {
			for (int i = 0; i < m->niov && n < TLS_TX_BATCH && r == 0; i++) {
				size_t k = MIN(m->iov[i].iov_len, TLS_TX_BATCH - n);
				if (k)
					r = tls_write(t, m->iov[i].iov_base, k);
				n += k;
			}
		}
		if (r == 0)
			r = tls_uncork(t);
		if (r == 0)
			tx_advance(c, n); /* releases may queue more: sent next time */
		c->tls_busy = false;
		if (r < 0) {
			conn_log(BL_WARN, c, "TLS: cannot encrypt a reply: %s; closing", tls_error(t));
			conn_close(c, "TLS error");
			return;
		}
		if (c->closing || c->send_posted)
			return;
		tls_out(t, &len);
	}
	if (len == 0 && !c->txq && c->close_after_send) {
		if (!c->tls_bye) {
			c->tls_bye = true;
			tls_bye(t);
			tls_out(t, &len);
		}
		if (len == 0) {
			conn_close(c, "done");
			return;
		}
	}
	if (len == 0)
		return;
	c->siov[0].iov_base = (void *)tls_out(t, &len);
	c->siov[0].iov_len = len;
	memset(&c->smsg, 0, sizeof c->smsg);
	c->smsg.msg_iov = c->siov;
	c->smsg.msg_iovlen = 1;
	struct io_uring_sqe *sqe = worker_sqe(c->w);
	io_uring_prep_sendmsg(sqe, c->fd, &c->smsg, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_make(c, UD_SEND));
	c->send_posted = true;
	conn_get(c);
}
