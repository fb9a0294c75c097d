/* iscsi.c — the iSCSI protocol object plugged into conn.h: the receive
 * state machine, sending PDUs, keepalive, drain, teardown.
 *
 * Receive: a one-level switch on ic->rx.
 *   BHS   48 bytes are in: parse, apply the caps (a data segment longer
 *         than we declared is rejected and skipped in FFP, refused with a
 *         login reject during login), compute the PDU's length.
 *   PDU   the whole PDU is in: check the header digest (mismatch: the
 *         stream is lost, close), the data digest (mismatch: Reject, drop
 *         the PDU), dispatch to the login or full-feature phase, consume.
 *   SKIP  discard the data segment of a PDU rejected for its size.
 *
 * Lifetime: tasks and TMFs hold connection references. conn.c does not
 * tell a protocol that its connection closed, so a 1 s io_uring timeout
 * (the "watch") keeps running for every connection; when it finds the
 * connection closing it aborts the tasks still waiting for the initiator
 * (Data-Out that will never come), which lets the references drain.
 */
#include "iscsi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients.h"
#include "conf.h"
#include "daemon.h"
#include "ipxe.h"
#include "log.h"
#include "stats.h"
#include "util.h"

struct iscsi_settings g_iscsi = { .nop_interval_s = 30, .nop_timeout_s = 15 };

void iscsi_configure(const struct bl_conf *c)
{
	struct iscsi_settings *s = &g_iscsi;
	snprintf(s->target_address, sizeof s->target_address, "%s", c->iscsi_target_address);
	s->nop_interval_s = c->iscsi_nop_interval_s;
	s->nop_timeout_s = c->iscsi_nop_timeout_s;
	snprintf(s->chap_user, sizeof s->chap_user, "%s", c->iscsi_chap_user);
	snprintf(s->chap_secret, sizeof s->chap_secret, "%s", c->iscsi_chap_secret);
	snprintf(s->chap_mutual_user, sizeof s->chap_mutual_user, "%s", c->iscsi_chap_mutual_user);
	snprintf(s->chap_mutual_secret, sizeof s->chap_mutual_secret, "%s", c->iscsi_chap_mutual_secret);
	if ((s->chap_user[0] != 0) != (s->chap_secret[0] != 0))
		log_warn("iscsi/chap_user and iscsi/chap_secret must both be set for CHAP; iSCSI logins need no authentication");
	/* The per-client iPXE scripts log in with the same credentials. */
	ipxe_set_chap(s->chap_user, s->chap_secret, s->chap_mutual_user, s->chap_mutual_secret);
}

/* --- sequence numbers and sending --- */

struct iscsi_sn iscsi_sn_next(struct iscsi_conn *ic, bool advance)
{
	unsigned depth = live_get(&g_live.max_inflight);
	uint32_t free_slots = ic->nactive < depth ? depth - ic->nactive : 0;
	uint32_t max = ic->exp_cmd_sn + free_slots - 1;
	if (sn_gt(max, ic->max_cmd_sn))
		ic->max_cmd_sn = max;
	struct iscsi_sn sn = { ic->stat_sn, ic->exp_cmd_sn, ic->max_cmd_sn };
	if (advance)
		ic->stat_sn++;
	return sn;
}

/* A control PDU is one allocation: txmsg and bytes. */
static void release_free(struct txmsg *m)
{
	free(m);
}

int iscsi_send_pdu(struct iscsi_conn *ic, const uint8_t *bhs, const void *data, uint32_t dlen)
{
	bool hd = ic->p.header_digest && ic->phase != ISCSI_PH_LOGIN;
	bool dd = ic->p.data_digest && ic->phase != ISCSI_PH_LOGIN && dlen;
	uint32_t pad = iscsi_pad4(dlen);
	size_t len = ISCSI_BHS_LEN + (hd ? ISCSI_DIGEST_LEN : 0) + dlen + pad + (dd ? ISCSI_DIGEST_LEN : 0);
	struct txmsg *m = malloc(sizeof *m + len);
	if (!m)
		return -ENOMEM;
	uint8_t *p = (uint8_t *)(m + 1), *q = p + ISCSI_BHS_LEN;
	memcpy(p, bhs, ISCSI_BHS_LEN);
	if (hd) {
		iscsi_digest_put(q, crc32c(p, ISCSI_BHS_LEN));
		q += ISCSI_DIGEST_LEN;
	}
	if (dlen) {
		memcpy(q, data, dlen);
		memset(q + dlen, 0, pad);
		if (dd)
			iscsi_digest_put(q + dlen + pad, crc32c(q, dlen + pad));
	}
	m->iov = m->iov_inline;
	m->iov[0] = (struct iovec){ p, len };
	m->niov = 1;
	m->release = release_free;
	conn_send(ic->c, m);
	return 0;
}

void iscsi_reject(struct iscsi_conn *ic, const uint8_t *bhs, uint8_t reason)
{
	uint8_t b[ISCSI_BHS_LEN];
	struct iscsi_reject r = { .reason = reason, .dsl = ISCSI_BHS_LEN, .sn = iscsi_sn_next(ic, true) };
	iscsi_build_reject(b, &r);
	iscsi_log(BL_INFO, ic, "rejected a PDU (opcode 0x%02x, reason 0x%02x)", bhs[0] & ISCSI_OPCODE_MASK, reason);
	iscsi_send_pdu(ic, b, bhs, ISCSI_BHS_LEN);
}

void iscsi_fail(struct iscsi_conn *ic, const char *why)
{
	iscsi_log(BL_WARN, ic, "%s; closing the connection", why);
	ic->phase = ISCSI_PH_DONE;
	conn_pause(ic->c);
	iscsi_task_abort_all(ic, NULL);
	conn_close_after_send(ic->c);
}

void iscsi_portal(const struct iscsi_conn *ic, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char a[64] = "0.0.0.0:3260";
	if (getsockname(ic->c->fd, (struct sockaddr *)&ss, &sl) == 0)
		addr_format((struct sockaddr *)&ss, a, sizeof a);
	snprintf(buf, len, "%s,%d", a, ISCSI_TPGT);
}

/* --- receive --- */

/* Largest data segment the current phase accepts. */
static uint32_t max_dsl(const struct iscsi_conn *ic)
{
	return ic->phase == ISCSI_PH_LOGIN ? ISCSI_LOGIN_MAX_DSL : ic->p.max_recv_dsl;
}

/* Digests apply from the first PDU after the final login response. */
static bool digests_on(const struct iscsi_conn *ic)
{
	return ic->phase != ISCSI_PH_LOGIN;
}

/* A BHS is buffered: validate lengths, choose the next state. */
static int rx_bhs(struct iscsi_conn *ic)
{
	struct conn *c = ic->c;
	struct iscsi_hdr h;
	int known = iscsi_hdr_parse(conn_rx_data(c), &h);
	bool on = digests_on(ic);
	uint64_t len = iscsi_pdu_len(&h, on && ic->p.header_digest, on && ic->p.data_digest);
	if (ic->phase == ISCSI_PH_LOGIN && (known < 0 || h.op != ISCSI_OP_LOGIN_REQ)) {
		iscsi_log(BL_INFO, ic, "opcode 0x%02x during login; closing", h.op);
		return -1;
	}
	if (h.dsl > max_dsl(ic) || known < 0) {
		if (ic->phase == ISCSI_PH_LOGIN)
			return iscsi_login_pdu(ic, &h, NULL); /* answers with a login reject */
		iscsi_reject(ic, conn_rx_data(c), known < 0 ? ISCSI_REJECT_NOT_SUPPORTED : ISCSI_REJECT_PROTOCOL_ERROR);
		if (known == 0)
			iscsi_log(BL_WARN, ic, "data segment of %u bytes exceeds MaxRecvDataSegmentLength %u",
				  h.dsl, max_dsl(ic));
		ic->skip = len;
		ic->rx = ISCSI_RX_SKIP;
		return 0;
	}
	ic->pdu_len = len;
	ic->rx = ISCSI_RX_PDU;
	c->rx_need = len;
	return 0;
}

/* The whole PDU is buffered: digests, dispatch, consume. */
static int rx_pdu(struct iscsi_conn *ic)
{
	struct conn *c = ic->c;
	const uint8_t *p = conn_rx_data(c);
	struct iscsi_hdr h;
	iscsi_hdr_parse(p, &h);
	bool on = digests_on(ic), hd = on && ic->p.header_digest, dd = on && ic->p.data_digest && h.dsl;
	uint32_t hlen = ISCSI_BHS_LEN + h.ahs_len;
	const uint8_t *data = p + hlen + (hd ? ISCSI_DIGEST_LEN : 0);
	if (hd && iscsi_digest_get(p + hlen) != crc32c(p, hlen)) {
		iscsi_log(BL_WARN, ic, "header digest mismatch: the stream cannot be trusted; closing");
		return -1;
	}
	int r = 0;
	if (dd && iscsi_digest_get(data + h.dsl + iscsi_pad4(h.dsl)) != crc32c(data, h.dsl + iscsi_pad4(h.dsl))) {
		iscsi_reject(ic, p, ISCSI_REJECT_DIGEST_ERROR);
	} else {
		ic->last_rx_ns = now_ns();
		if (ic->phase == ISCSI_PH_LOGIN)
			r = iscsi_login_pdu(ic, &h, data);
		else if (ic->phase == ISCSI_PH_FFP)
			r = iscsi_ffp_pdu(ic, &h, p, data);
	}
	conn_rx_consume(c, ic->pdu_len);
	ic->rx = ISCSI_RX_BHS;
	c->rx_need = ISCSI_BHS_LEN;
	return r;
}

/* Discard what is buffered of a skipped data segment. */
static void rx_skip(struct iscsi_conn *ic)
{
	struct conn *c = ic->c;
	size_t k = MIN(ic->skip, conn_rx_len(c));
	conn_rx_consume(c, k);
	ic->skip -= k;
	if (ic->skip == 0) {
		ic->rx = ISCSI_RX_BHS;
		c->rx_need = ISCSI_BHS_LEN;
	} else {
		c->rx_need = 1;
	}
}

/* Bytes arrived: run the receive state machine until it needs more. */
static int iscsi_on_data(struct conn *c)
{
	struct iscsi_conn *ic = c->proto_state;
	while (!c->closing && !c->rx_paused) {
		if (ic->phase == ISCSI_PH_DONE || ic->phase == ISCSI_PH_LOGOUT) {
			conn_rx_consume(c, conn_rx_len(c));
			return 0;
		}
		size_t have = conn_rx_len(c);
		int r = 0;
		switch (ic->rx) {
		case ISCSI_RX_BHS:
			if (have < ISCSI_BHS_LEN) {
				c->rx_need = ISCSI_BHS_LEN;
				return 0;
			}
			r = rx_bhs(ic);
			break;
		case ISCSI_RX_PDU:
			if (have < ic->pdu_len) {
				c->rx_need = ic->pdu_len;
				return 0;
			}
			r = rx_pdu(ic);
			break;
		case ISCSI_RX_SKIP:
			if (have == 0) {
				c->rx_need = 1;
				return 0;
			}
			rx_skip(ic);
			break;
		}
		if (r < 0)
			return -1;
	}
	return 0;
}

/* --- the watch: notices a closed connection --- */

static void watch_arm(struct iscsi_conn *ic);

/* Every second: re-arm, or, once the connection closes, abort its tasks. */
static void watch_fired(struct uop *op, int res, uint32_t flags)
{
	struct iscsi_conn *ic = (struct iscsi_conn *)((uint8_t *)op - __builtin_offsetof(struct iscsi_conn, watch));
	struct conn *c = ic->c;
	ic->watch_armed = false;
	if (c->closing)
		iscsi_task_abort_all(ic, NULL);
	else
		watch_arm(ic);
	conn_put(c);
}

/* One 1 s io_uring timeout, holding a connection reference. */
static void watch_arm(struct iscsi_conn *ic)
{
	ic->watch.cb = watch_fired;
	ic->watch_ts.tv_sec = 1;
	ic->watch_ts.tv_nsec = 0;
	struct io_uring_sqe *sqe = worker_sqe(ic->c->w);
	io_uring_prep_timeout(sqe, &ic->watch_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(&ic->watch, UD_OP));
	ic->watch_armed = true;
	conn_get(ic->c);
}

/* --- proto --- */

static int iscsi_start(struct conn *c)
{
	struct iscsi_conn *ic = calloc(1, sizeof *ic);
	if (!ic)
		return -1;
	ic->c = c;
	c->proto_state = ic;
	iscsi_params_defaults(&ic->p);
	ic->rx = ISCSI_RX_BHS;
	ic->next_ttt = 1;
	ic->text_ttt = ISCSI_RSVD_TAG;
	for (unsigned i = 0; i < ISCSI_RECENT_ABORTS; i++)
		ic->recent_aborts[i] = ISCSI_RSVD_TAG;
	ic->last_rx_ns = now_ns();
	iscsi_portal(ic, ic->portal, sizeof ic->portal);
	c->rx_need = ISCSI_BHS_LEN;
	watch_arm(ic);
	return 0;
}

/* Login timeout, and the NOP-In keepalive in full feature phase. */
static int iscsi_tick(struct conn *c, uint64_t now)
{
	struct iscsi_conn *ic = c->proto_state;
	uint64_t limit = (uint64_t)live_get(&g_live.handshake_timeout_s) * 1000000000ull;
	if (ic->phase == ISCSI_PH_LOGIN && now - c->started_ns > limit) {
		iscsi_log(BL_INFO, ic, "login not finished within limits/handshake_timeout_s (%u s); closing",
			  live_get(&g_live.handshake_timeout_s));
		return -1;
	}
	if (ic->phase != ISCSI_PH_FFP || !g_iscsi.nop_interval_s)
		return 0;
	uint64_t interval = (uint64_t)g_iscsi.nop_interval_s * 1000000000ull;
	uint64_t timeout = (uint64_t)g_iscsi.nop_timeout_s * 1000000000ull;
	if (ic->ipxe) {
		/* iPXE never answers a ping; a NOP-In asking for nothing still
		 * makes TCP notice a client that has gone (RST or retransmission
		 * timeout) instead of keeping its connection forever. */
		if (now - ic->last_rx_ns > interval && now - ic->nop_sent_ns > interval)
			iscsi_ffp_ping(ic, false);
		return 0;
	}
	if (ic->nop_out) {
		if (now - ic->nop_sent_ns > timeout && now - ic->last_rx_ns > timeout) {
			iscsi_log(BL_INFO, ic, "no answer to a NOP-In ping within iscsi/nop_timeout_s (%u s); closing",
				  g_iscsi.nop_timeout_s);
			iscsi_task_abort_all(ic, NULL);
			return -1;
		}
	} else if (now - ic->last_rx_ns > interval) {
		iscsi_ffp_ping(ic, true);
	}
	return 0;
}

/* Shutdown: close a login; in full feature phase stop reading, answer what
 * runs, drop what waits for Data-Out, close when nothing is active. */
static void iscsi_drain(struct conn *c)
{
	struct iscsi_conn *ic = c->proto_state;
	if (ic->phase == ISCSI_PH_LOGIN) {
		conn_close(c, "shutting down");
		return;
	}
	if (ic->phase == ISCSI_PH_DONE)
		return;
	/* Answer what is running; what waits for Data-Out cannot finish. */
	ic->phase = ISCSI_PH_DONE;
	conn_pause(c);
	iscsi_task_abort_waiting(ic); /* closes once nothing is active */
}

/* The connection is gone and nothing refers to it: free the session. */
static void iscsi_destroy(struct conn *c)
{
	struct iscsi_conn *ic = c->proto_state;
	if (!ic)
		return;
	iscsi_login_free(ic);
	if (ic->vd) {
		__atomic_fetch_sub(&ic->exp.e.img->stat_connections, 1, __ATOMIC_RELAXED);
		iscsi_log(BL_INFO, ic, "session closed: %llu commands, %llu bytes read, %llu bytes written",
			  (unsigned long long)c->stat_requests, (unsigned long long)c->stat_bytes_read,
			  (unsigned long long)c->stat_bytes_written);
		scsi_lu_fini(&ic->lu);
		vdisk_put(ic->vd);
		if (ic->exp.e.kind == EXPORT_CLIENT)
			clients_release(ic->exp.e.mac);
	}
	if (ic->has_export)
		exports_ref_release(&ic->exp);
	textbuf_free(&ic->text_in);
	textbuf_free(&ic->text_out);
	free(ic);
	c->proto_state = NULL;
}

const struct proto iscsi_proto = {
	.name = "iscsi",
	.start = iscsi_start,
	.on_data = iscsi_on_data,
	.tick = iscsi_tick,
	.drain = iscsi_drain,
	.destroy = iscsi_destroy,
};
