/* conn.h — one client connection: receive buffer, send queue, lifetime.
 *
 * The protocol (NBD, later iSCSI/HTTP) sees a connection as a byte stream:
 * on_data() is called with everything received so far and consumes whole
 * messages; replies are queued as txmsgs (header + payload iovecs) and sent
 * in order, several per sendmsg. A txmsg's release callback runs once its
 * last byte is sent (or the connection died), which is when a read buffer
 * can be freed.
 *
 * Lifetime: refs counts outstanding SQEs plus in-flight protocol requests.
 * conn_close() shuts the socket down; the object is freed when refs reaches
 * zero, so a late completion never touches freed memory.
 */
#ifndef BL_CONN_H
#define BL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "ipaddr.h"
#include "worker.h"

#define TXMSG_IOV 4
#define CONN_SEND_IOV 256
#define CONN_RX_INIT (16 * 1024)

struct txmsg {
	struct txmsg *next;
	struct iovec *iov;                  /* iov_inline, or an array the owner frees in release */
	int niov;
	struct iovec iov_inline[TXMSG_IOV];
	void (*release)(struct txmsg *m);   /* after sent or dropped; may be NULL (free nothing) */
	uint8_t hdr[40];                    /* room for a reply header the iov may point at */
};

struct proto {
	const char *name;
	/* Connection accepted: set c->proto_state, queue a greeting. 0 or -errno (close). */
	int (*start)(struct conn *c);
	/* Bytes arrived: consume complete messages with conn_rx_consume(), set
	 * c->rx_need to the total bytes wanted from the start of the buffer for
	 * the next message. Return 0, or -1 to close. */
	int (*on_data)(struct conn *c);
	/* Periodic check (1 s): return -1 to close (e.g. handshake timeout). */
	int (*tick)(struct conn *c, uint64_t now);
	/* Stop reading new requests; called when the daemon drains. */
	void (*drain)(struct conn *c);
	/* Free protocol state (no more completions will arrive). */
	void (*destroy)(struct conn *c);
};

struct conn {
	struct conn *next, *prev;   /* worker's list */
	struct worker *w;
	const struct proto *proto;
	void *proto_state;
	int fd;
	uint64_t id;                /* unique per daemon run, for logs and the runtime tree */
	char peer[64];              /* "ip:port" */
	struct ipaddr peer_ip;      /* the peer's IP (client address binding) */
	uint64_t started_ns;

	int refs;
	bool closing;               /* no more receives; freed when refs == 0 */
	bool close_after_send;      /* close once the tx queue empties */
	bool recv_posted, send_posted;
	bool rx_paused;             /* protocol asked to stop reading (in-flight limit, drain) */
	bool tx_deferred;           /* on the worker's tx_dirty list: sent before the next submit */
	struct conn *tx_dirty_next;

	/* TLS (daemon/tls.h): the socket carries ciphertext, rx and txq stay plaintext. */
	struct tls *tls;            /* NULL: plaintext */
	bool tls_pending;           /* STARTTLS answered: TLS starts once that reply is sent */
	bool tls_busy;              /* encrypting the tx queue (a release may queue more) */
	bool tls_bye;               /* close_notify queued */

	uint8_t *rx;
	size_t rx_start, rx_end, rx_cap;
	size_t rx_need;             /* bytes wanted from rx_start before on_data can progress */

	struct txmsg *txq, *txq_tail;
	struct iovec siov[CONN_SEND_IOV];
	struct msghdr smsg;
	size_t tx_queued_bytes;

	/* counters (read by the stats thread, relaxed) */
	uint64_t stat_requests, stat_bytes_read, stat_bytes_written, stat_errors;
} __attribute__((aligned(8)));

/* Accepted fd → new connection on w (starts the protocol, posts a recv). */
void conn_new(struct worker *w, int fd, const struct proto *proto);
/* Completion handlers (worker.c dispatch). */
void conn_on_recv(struct conn *c, int res);
void conn_on_send(struct conn *c, int res);

/* Received, unconsumed bytes. */
static inline const uint8_t *conn_rx_data(const struct conn *c) { return c->rx + c->rx_start; }
static inline size_t conn_rx_len(const struct conn *c) { return c->rx_end - c->rx_start; }
void conn_rx_consume(struct conn *c, size_t n);

/* Queue a message for sending (takes ownership; release runs later). The
 * send is posted when the worker's loop turn ends (conn_flush_sends), so
 * every reply made in one turn leaves in one sendmsg. */
void conn_send(struct conn *c, struct txmsg *m);
/* Post the sends queued during this loop turn (worker.c, before submit). */
void conn_flush_sends(struct worker *w);
/* Copy a small buffer into a new txmsg and queue it. */
int conn_send_copy(struct conn *c, const void *data, size_t len);

/* Stop/resume reading (in-flight limits). resume re-runs on_data on buffered bytes. */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);

void conn_get(struct conn *c);
void conn_put(struct conn *c);
/* Hard close: shut the socket, drop queued sends, free when idle. */
void conn_close(struct conn *c, const char *why);
/* Soft close: after everything queued has been sent. */
void conn_close_after_send(struct conn *c);

/* Start TLS once everything queued so far (the reply to STARTTLS) is
 * sent; reading stops until then. 0, or -ENOTSUP if TLS is not configured. */
int conn_starttls(struct conn *c);
/* The connection is (or is about to be) under TLS. */
static inline bool conn_tls(const struct conn *c) { return c->tls || c->tls_pending; }

/* Logging with the connection named: "[peer #id] ..." */
#define conn_log(level, c, fmt, ...) \
	log_msg(level, "[%s #%llu] " fmt, (c)->peer, (unsigned long long)(c)->id, ##__VA_ARGS__)

#endif
