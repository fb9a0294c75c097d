/* iscsi_task.c — SCSI tasks: SCSI Command, Data-Out and R2T in, Data-In
 * and SCSI Response out (RFC 7143 §11.3-11.8).
 *
 * A task is created for each accepted SCSI Command PDU and lives until
 * its response has been sent. Its SCSI command (scsi.h) runs on the
 * task's struct scsi_cmd; done() may run inside any scsi_* call, so calls
 * are bracketed with in_call and task_progress() — always the last thing
 * done with a task — decides what happens next:
 *
 *   data-out: immediate data and unsolicited Data-Out (up to
 *   FirstBurstLength, until the F bit) go straight to the disk; then R2Ts
 *   solicit the rest in MaxBurstLength pieces, at most MaxOutstandingR2T
 *   at a time. Only min(EDTL, the command's length) bytes are passed on;
 *   the rest is discarded and shows as a residual. A Data-Out out of
 *   sequence (offset, DataSN, TTT, burst) is a protocol error: with
 *   ErrorRecoveryLevel 0 the connection is dropped.
 *
 *   answer: Data-In PDUs of at most the initiator's
 *   MaxRecvDataSegmentLength point straight at the disk's buffers, F set
 *   at every MaxBurstLength sequence end; status goes in the last Data-In
 *   when there is no sense data, in a SCSI Response otherwise. All of it
 *   is one txmsg; the task is freed when it has been sent.
 *
 * Aborted tasks (TMF, connection gone) send nothing; they are freed once
 * the SCSI command has stopped touching the disk, and their TMF is told.
 */
#include "iscsi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootset.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define PDU_HDR      (ISCSI_BHS_LEN + ISCSI_DIGEST_LEN)   /* BHS + header digest */
#define PDU_TRAILER  8                                   /* pad (<= 3) + data digest */
#define RSP_BUF      (PDU_HDR + 2 + SCSI_SENSE_LEN + PDU_TRAILER)

/* One outstanding R2T. */
struct r2t_slot {
	uint32_t ttt;                /* Target Transfer Tag the Data-Out must carry */
	uint32_t off, len;           /* the solicited range */
	uint32_t data_sn;            /* next DataSN of its sequence */
};

struct iscsi_task {
	struct txmsg tx;             /* Data-In PDUs and/or the SCSI Response */
	struct scsi_cmd sc;
	struct iscsi_conn *ic;
	struct iscsi_task *next, *prev; /* ic->tasks while active */
	uint32_t itt, cmd_sn, edtl;
	uint64_t lun;
	bool rbit, wbit;             /* R and W bits of the command */
	bool linked;                 /* on ic->tasks */
	bool in_call;                /* inside a scsi_* call: done() only records */
	bool scsi_done;              /* the SCSI command has its outcome */
	bool takes_data;             /* the SCSI command waits for data-out */
	bool data_done;              /* no more data-out goes to the SCSI command */
	bool aborted;
	uint32_t want;               /* data-out bytes for the SCSI command: min(EDTL, its length) */
	uint32_t next_off;           /* next Buffer Offset expected */
	bool unsol_open;             /* unsolicited Data-Out may still come */
	uint32_t unsol_data_sn;      /* next DataSN of the unsolicited sequence */
	uint32_t r2t_off;            /* next offset to solicit */
	uint32_t r2t_sn;             /* next R2TSN */
	struct r2t_slot r2t[ISCSI_OUR_MAX_R2T]; /* outstanding R2Ts, oldest at r2t_head */
	unsigned r2t_head, r2t_count;
	uint32_t data_in_pdus;       /* Data-In PDUs sent (ExpDataSN) */
	struct iscsi_tmf *tmf;       /* told when an aborted task is gone */
	uint8_t *pdus;               /* Data-In headers and trailers */
	struct iovec *iov;           /* the reply's pieces when Data-In is sent */
	uint8_t rsp[RSP_BUF];        /* the SCSI Response PDU */
	uint64_t start_ns;           /* arrival of the command (latency histogram) */
};

static void task_progress(struct iscsi_task *t);

uint32_t iscsi_task_cmd_sn(const struct iscsi_task *t)
{
	return t->cmd_sn;
}

struct iscsi_task *iscsi_task_find(struct iscsi_conn *ic, uint32_t itt)
{
	for (struct iscsi_task *t = ic->tasks; t; t = t->next)
		if (t->itt == itt)
			return t;
	return NULL;
}

/* Put t on the active list (it counts in the CmdSN window). */
static void task_link(struct iscsi_task *t)
{
	struct iscsi_conn *ic = t->ic;
	t->next = ic->tasks;
	t->prev = NULL;
	if (ic->tasks)
		ic->tasks->prev = t;
	ic->tasks = t;
	t->linked = true;
	ic->nactive++;
}

/* Take t off the active list (answered or aborted). */
static void task_unlink(struct iscsi_task *t)
{
	struct iscsi_conn *ic = t->ic;
	if (!t->linked)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else
		ic->tasks = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->linked = false;
	ic->nactive--;
}

/* Free t and what its answer held; drops its connection reference. */
static void task_free(struct iscsi_task *t)
{
	struct iscsi_conn *ic = t->ic;
	struct conn *c = ic->c;
	task_unlink(t);
	scsi_cmd_release(&t->sc);
	free(t->pdus);
	free(t->iov);
	free(t);
	ic->ntasks--;
	conn_put(c);
}

/* The answer has been sent (or dropped with the connection). */
static void task_release(struct txmsg *m)
{
	task_free((struct iscsi_task *)((uint8_t *)m - __builtin_offsetof(struct iscsi_task, tx)));
}

/* The SCSI command has its outcome; inside a scsi_* call only note it. */
static void task_scsi_done(struct scsi_cmd *sc)
{
	struct iscsi_task *t = sc->owner;
	t->scsi_done = true;
	if (!t->in_call)
		task_progress(t);
}

/* --- answer --- */

/* Residual (SCSI length vs the initiator's EDTL for the command's direction). */
static uint8_t residual(const struct iscsi_task *t, uint32_t *count)
{
	const struct scsi_cmd *sc = &t->sc;
	uint32_t expected, actual;
	if (sc->dir == SCSI_DIR_IN) {
		expected = t->rbit ? t->edtl : 0;
		actual = sc->in_len;
	} else if (sc->dir == SCSI_DIR_OUT) {
		expected = t->wbit ? t->edtl : 0;
		actual = sc->out_len;
	} else {
		expected = t->edtl;
		actual = 0;
	}
	*count = actual > expected ? actual - expected : expected - actual;
	return actual > expected ? ISCSI_DATA_OVERFLOW : actual < expected ? ISCSI_DATA_UNDERFLOW : 0;
}

/* Add n bytes of the data-in (from source iovec *si, offset *so) to iov,
 * folding them into the data digest. Returns iovecs added. */
static int take_data(const struct scsi_cmd *sc, int *si, size_t *so, uint32_t n, struct iovec *iov, uint32_t *crc)
{
	int k = 0;
	while (n) {
		const struct iovec *src = &sc->in_iov[*si];
		size_t l = MIN((size_t)n, src->iov_len - *so);
		iov[k].iov_base = (uint8_t *)src->iov_base + *so;
		iov[k].iov_len = l;
		if (crc)
			*crc = crc32c_update(*crc, iov[k].iov_base, l);
		k++;
		n -= (uint32_t)l;
		*so += l;
		if (*so == src->iov_len) {
			(*si)++;
			*so = 0;
		}
	}
	return k;
}

/* Data-In PDUs for dlen bytes into t->iov (allocated); status in the last
 * one when collapse. Returns the iovec count, or -1. */
static int build_data_in(struct iscsi_task *t, uint32_t dlen, bool collapse, uint8_t rflags, uint32_t resid)
{
	struct iscsi_conn *ic = t->ic;
	uint32_t seg = ic->p.max_xmit_dsl, burst = ic->p.max_burst;
	uint32_t maxpdu = dlen / seg + dlen / burst + 2;
	bool hd = ic->p.header_digest, dd = ic->p.data_digest;
	t->pdus = malloc((size_t)maxpdu * (PDU_HDR + PDU_TRAILER));
	t->iov = malloc(((size_t)maxpdu * 3 + (size_t)t->sc.in_niov + 2) * sizeof *t->iov);
	if (!t->pdus || !t->iov)
		return -1;
	int n = 0, si = 0;
	size_t so = 0;
	for (uint32_t off = 0, i = 0; off < dlen; i++) {
		uint32_t burst_end = (off / burst + 1) * burst, len = MIN(seg, MIN(dlen, burst_end) - off);
		bool last = off + len == dlen;
		uint8_t *h = t->pdus + (size_t)i * (PDU_HDR + PDU_TRAILER), *tr = h + PDU_HDR;
		struct iscsi_data_in d = {
			.lun = t->lun, .itt = t->itt, .dsl = len, .data_sn = i, .buf_off = off,
			.flags = (last || off + len == burst_end) ? ISCSI_F_FINAL : 0,
		};
		if (last && collapse) {
			d.flags |= ISCSI_DATA_STATUS | rflags;
			d.status = SCSI_GOOD;
			d.residual = resid;
		}
		d.sn = iscsi_sn_next(ic, last && collapse);
		iscsi_build_data_in(h, &d);
		if (hd)
			iscsi_digest_put(h + ISCSI_BHS_LEN, crc32c(h, ISCSI_BHS_LEN));
		t->iov[n++] = (struct iovec){ h, ISCSI_BHS_LEN + (hd ? ISCSI_DIGEST_LEN : 0) };
		uint32_t crc = CRC32C_INIT, pad = iscsi_pad4(len);
		n += take_data(&t->sc, &si, &so, len, t->iov + n, dd ? &crc : NULL);
		memset(tr, 0, PDU_TRAILER);
		if (dd)
			iscsi_digest_put(tr + pad, crc32c_final(crc32c_update(crc, tr, pad)));
		if (pad || dd)
			t->iov[n++] = (struct iovec){ tr, pad + (dd ? ISCSI_DIGEST_LEN : 0) };
		off += len;
		t->data_in_pdus = i + 1;
	}
	return n;
}

/* The SCSI Response PDU (with sense data) into t->rsp; returns its length. */
static uint32_t build_scsi_rsp(struct iscsi_task *t, uint8_t rflags, uint32_t resid)
{
	struct iscsi_conn *ic = t->ic;
	const struct scsi_cmd *sc = &t->sc;
	bool hd = ic->p.header_digest, dd = ic->p.data_digest && sc->sense_len;
	uint32_t dsl = sc->sense_len ? 2u + sc->sense_len : 0, pad = iscsi_pad4(dsl);
	struct iscsi_scsi_rsp r = {
		.itt = t->itt, .flags = rflags, .response = ISCSI_RSP_COMPLETED, .status = sc->status, .dsl = dsl,
		.exp_data_sn = t->data_in_pdus, .residual = resid, .sn = iscsi_sn_next(ic, true),
	};
	uint8_t *p = t->rsp;
	iscsi_build_scsi_rsp(p, &r);
	p += ISCSI_BHS_LEN;
	if (hd) {
		iscsi_digest_put(p, crc32c(t->rsp, ISCSI_BHS_LEN));
		p += ISCSI_DIGEST_LEN;
	}
	if (dsl) {
		put_be16(p, sc->sense_len);
		memcpy(p + 2, sc->sense, sc->sense_len);
		memset(p + dsl, 0, pad);
		if (dd)
			iscsi_digest_put(p + dsl + pad, crc32c(p, dsl + pad));
		p += dsl + pad + (dd ? ISCSI_DIGEST_LEN : 0);
	}
	return (uint32_t)(p - t->rsp);
}

/* Queue the task's answer; the task is freed once it is sent. */
static void task_respond(struct iscsi_task *t)
{
	struct iscsi_conn *ic = t->ic;
	struct conn *c = ic->c;
	const struct scsi_cmd *sc = &t->sc;
	uint32_t resid, dlen = sc->dir == SCSI_DIR_IN && t->rbit ? MIN(sc->in_len, t->edtl) : 0;
	uint8_t rflags = residual(t, &resid);
	bool collapse = dlen && sc->status == SCSI_GOOD && !sc->sense_len;
	int n = 0;
	task_unlink(t);
	t->tx.release = task_release;
	t->tx.iov = t->tx.iov_inline;
	if (dlen && (n = build_data_in(t, dlen, collapse, rflags, resid)) < 0) {
		iscsi_log(BL_ERR, ic, "out of memory answering %s; closing", scsi_cmd_name(sc->cdb));
		conn_close(c, "out of memory");
		task_free(t);
		return;
	}
	if (dlen)
		t->tx.iov = t->iov;
	if (!collapse)
		t->tx.iov[n++] = (struct iovec){ t->rsp, build_scsi_rsp(t, rflags, resid) };
	t->tx.niov = n;
	c->stat_bytes_read += dlen;
	if (sc->status == SCSI_GOOD && (dlen || (sc->dir == SCSI_DIR_OUT && sc->out_len)))
		metrics_latency(c->w->id, MET_ISCSI, dlen ? MET_READ : MET_WRITE, now_ns() - t->start_ns);
	if (sc->status != SCSI_GOOD) {
		c->stat_errors++;
		log_debug("[%s #%llu] %s%s -> status 0x%02x sense %02x/%02x%02x (cdb %02x %02x %02x%02x%02x%02x%02x%02x%02x%02x "
			  "%02x%02x%02x%02x)", c->peer, (unsigned long long)c->id, ic->logtag, scsi_cmd_name(sc->cdb),
			  sc->status, sc->sense[2] & 0x0f, sc->sense[12], sc->sense[13], sc->cdb[0], sc->cdb[1],
			  sc->cdb[2], sc->cdb[3], sc->cdb[4], sc->cdb[5], sc->cdb[6], sc->cdb[7], sc->cdb[8], sc->cdb[9],
			  sc->cdb[10], sc->cdb[11], sc->cdb[12], sc->cdb[13]);
		unsigned held;
		if (sc->sense_len && (sc->sense[2] & 0x0f) != SK_ILLEGAL_REQUEST && (sc->sense[2] & 0x0f) != SK_DATA_PROTECT &&
		    log_ratelimit(&ic->err_rl, 10000000000ull, &held))
			iscsi_log(BL_WARN, ic, "%s failed: sense key 0x%x asc 0x%02x%02x%s", scsi_cmd_name(sc->cdb),
				  sc->sense[2] & 0x0f, sc->sense[12], sc->sense[13],
				  held ? " (more failures since the last line were not logged)" : "");
	}
	conn_get(c);
	conn_send(c, &t->tx);
	iscsi_ffp_task_gone(ic);
	conn_put(c);
}

/* --- data-out --- */

/* Solicit what is missing, within MaxOutstandingR2T. */
static void send_r2ts(struct iscsi_task *t)
{
	struct iscsi_conn *ic = t->ic;
	t->r2t_off = MAX(t->r2t_off, t->next_off);
	while (t->r2t_count < MIN(ic->p.max_r2t, ISCSI_OUR_MAX_R2T) && t->r2t_off < t->want) {
		struct r2t_slot *s = &t->r2t[(t->r2t_head + t->r2t_count) % ISCSI_OUR_MAX_R2T];
		uint8_t b[ISCSI_BHS_LEN];
		s->ttt = iscsi_new_ttt(ic);
		s->off = t->r2t_off;
		s->len = MIN(ic->p.max_burst, t->want - t->r2t_off);
		s->data_sn = 0;
		struct iscsi_r2t r = { .lun = t->lun, .itt = t->itt, .ttt = s->ttt, .r2t_sn = t->r2t_sn++,
				       .buf_off = s->off, .len = s->len, .sn = iscsi_sn_next(ic, false) };
		iscsi_build_r2t(b, &r);
		iscsi_send_pdu(ic, b, NULL, 0);
		t->r2t_count++;
		t->r2t_off += s->len;
	}
}

/* An aborted task: end the SCSI command, then free (no answer). */
static void abort_progress(struct iscsi_task *t)
{
	if (!t->scsi_done) {
		if (!t->takes_data || t->data_done)
			return; /* the disk is still busy: done() comes back here */
		t->data_done = true;
		t->in_call = true;
		scsi_cmd_data_end(&t->sc);
		t->in_call = false;
		if (!t->scsi_done)
			return;
	}
	struct iscsi_tmf *tmf = t->tmf;
	task_free(t);
	if (tmf)
		iscsi_tmf_task_gone(tmf);
}

/* Decide what t does next: solicit data, end the data-out, answer, or
 * (aborted) go away. Always the last thing done with t. */
static void task_progress(struct iscsi_task *t)
{
	for (;;) {
		if (t->aborted) {
			abort_progress(t);
			return;
		}
		if (t->scsi_done) {
			if (!t->unsol_open && t->r2t_count == 0)
				task_respond(t);
			return;
		}
		if (t->unsol_open || t->data_done)
			return;
		if (!t->takes_data) {
			t->data_done = true;
			return;
		}
		if (t->next_off < t->want || t->r2t_count) {
			send_r2ts(t);
			return;
		}
		t->data_done = true;
		t->in_call = true;
		scsi_cmd_data_end(&t->sc);
		t->in_call = false;
	}
}

/* Checks on a SCSI Command before a task exists. 0, or a Reject reason. */
static uint8_t check_command(struct iscsi_conn *ic, const struct iscsi_hdr *h)
{
	bool w = h->flags & ISCSI_CMD_F_WRITE;
	if (iscsi_task_find(ic, h->itt))
		return ISCSI_REJECT_TASK_IN_PROG;
	if (ic->nactive >= live_get(&g_live.max_inflight) + ISCSI_IMMEDIATE_SLACK)
		return ISCSI_REJECT_IMM_CMD;
	if (h->dsl && (!w || !ic->p.immediate_data || h->dsl > ic->p.first_burst || h->dsl > h->edtl))
		return ISCSI_REJECT_PROTOCOL_ERROR;
	return 0;
}

int iscsi_task_new(struct iscsi_conn *ic, const struct iscsi_hdr *h, const uint8_t *bhs, const uint8_t *data)
{
	uint8_t why = check_command(ic, h);
	if (why) {
		iscsi_reject(ic, bhs, why);
		return 0;
	}
	struct iscsi_task *t = calloc(1, sizeof *t);
	if (!t)
		return -1;
	t->ic = ic;
	t->start_ns = now_ns();
	t->itt = h->itt;
	t->cmd_sn = h->cmd_sn;
	t->edtl = h->edtl;
	t->lun = h->lun;
	t->rbit = h->flags & ISCSI_CMD_F_READ;
	t->wbit = h->flags & ISCSI_CMD_F_WRITE;
	t->unsol_open = t->wbit && !(h->flags & ISCSI_F_FINAL) && !ic->p.initial_r2t;
	t->next_off = h->dsl;
	task_link(t);
	ic->ntasks++;
	conn_get(ic->c);
	ic->c->stat_requests++;
	struct scsi_cmd *sc = &t->sc;
	sc->lu = h->lun == 0 ? &ic->lu : NULL;
	memcpy(sc->cdb, h->cdb, SCSI_CDB_MAX);
	sc->w = ic->c->w;
	sc->client_id = ic->c->id;
	sc->learn = now_ns() - ic->c->started_ns < bootset_window_ns();
	sc->out_expected = t->wbit ? t->edtl : 0;
	sc->done = task_scsi_done;
	sc->owner = t;
	t->in_call = true;
	scsi_cmd_start(sc);
	if (!t->scsi_done) {
		t->takes_data = sc->dir == SCSI_DIR_OUT && sc->out_len > 0;
		t->want = t->takes_data && t->wbit ? MIN(h->edtl, sc->out_len) : 0;
		if (h->dsl && t->want) {
			scsi_cmd_data(sc, data, MIN(h->dsl, t->want));
			ic->c->stat_bytes_written += MIN(h->dsl, t->want);
		}
	}
	t->in_call = false;
	task_progress(t);
	return 0;
}

/* Data-Out of an aborted task, or an unknown ITT? */
static bool recently_aborted(const struct iscsi_conn *ic, uint32_t itt)
{
	for (unsigned i = 0; i < ISCSI_RECENT_ABORTS && itt != ISCSI_RSVD_TAG; i++)
		if (ic->recent_aborts[i] == itt)
			return true;
	return false;
}

/* Sequence checks of one Data-Out; returns the R2T it answers (NULL for
 * unsolicited data) through *slot. 0, or -1 after failing the connection. */
static int check_data_out(struct iscsi_task *t, const struct iscsi_hdr *h, struct r2t_slot **slot)
{
	struct iscsi_conn *ic = t->ic;
	char why[160];
	*slot = NULL;
	if (h->ttt == ISCSI_RSVD_TAG) {
		if (!t->unsol_open || h->data_sn != t->unsol_data_sn || (uint64_t)h->buf_off + h->dsl > ic->p.first_burst)
			snprintf(why, sizeof why, "unsolicited Data-Out (DataSN %u, offset %u) out of sequence", h->data_sn,
				 h->buf_off);
		else
			goto offset;
	} else {
		struct r2t_slot *s = &t->r2t[t->r2t_head];
		if (!t->r2t_count || h->ttt != s->ttt || h->data_sn != s->data_sn || h->buf_off < s->off ||
		    (uint64_t)h->buf_off + h->dsl > (uint64_t)s->off + s->len)
			snprintf(why, sizeof why, "Data-Out (TTT 0x%x, DataSN %u, offset %u) does not match the R2T",
				 h->ttt, h->data_sn, h->buf_off);
		else {
			*slot = s;
			goto offset;
		}
	}
	iscsi_fail(ic, why);
	return -1;
offset:
	if (h->buf_off != t->next_off) {
		snprintf(why, sizeof why, "Data-Out at offset %u, expected %u", h->buf_off, t->next_off);
		iscsi_fail(ic, why);
		return -1;
	}
	return 0;
}

int iscsi_task_data_out(struct iscsi_conn *ic, const struct iscsi_hdr *h, const uint8_t *bhs, const uint8_t *data)
{
	struct iscsi_task *t = iscsi_task_find(ic, h->itt);
	struct r2t_slot *s;
	if (!t) {
		if (!recently_aborted(ic, h->itt))
			iscsi_reject(ic, bhs, ISCSI_REJECT_INVALID_FIELD);
		return 0;
	}
	if (check_data_out(t, h, &s) < 0)
		return 0;
	if (t->next_off < t->want && !t->data_done && !t->scsi_done) {
		uint32_t n = MIN(h->dsl, t->want - t->next_off);
		t->in_call = true;
		scsi_cmd_data(&t->sc, data, n);
		t->in_call = false;
		ic->c->stat_bytes_written += n;
	}
	t->next_off += h->dsl;
	if (s)
		s->data_sn++;
	else
		t->unsol_data_sn++;
	if (h->flags & ISCSI_F_FINAL) {
		if (!s) {
			t->unsol_open = false;
		} else if (t->next_off != s->off + s->len) {
			iscsi_fail(ic, "Data-Out sequence ended before the R2T's length");
			return 0;
		} else {
			t->r2t_head = (t->r2t_head + 1) % ISCSI_OUR_MAX_R2T;
			t->r2t_count--;
		}
	}
	task_progress(t);
	return 0;
}

/* --- aborts --- */

void iscsi_task_abort(struct iscsi_task *t, struct iscsi_tmf *tmf)
{
	struct iscsi_conn *ic = t->ic;
	if (t->aborted)
		return;
	t->aborted = true;
	task_unlink(t);
	ic->recent_aborts[ic->recent_next++ % ISCSI_RECENT_ABORTS] = t->itt;
	t->tmf = tmf;
	if (tmf)
		tmf->pending++;
	task_progress(t);
}

void iscsi_task_abort_all(struct iscsi_conn *ic, struct iscsi_tmf *tmf)
{
	while (ic->tasks)
		iscsi_task_abort(ic->tasks, tmf);
	iscsi_ffp_task_gone(ic);
}

void iscsi_task_abort_waiting(struct iscsi_conn *ic)
{
	for (struct iscsi_task *t = ic->tasks, *n; t; t = n) {
		n = t->next;
		if (t->unsol_open || t->r2t_count || (t->takes_data && !t->data_done))
			iscsi_task_abort(t, NULL);
	}
	iscsi_ffp_task_gone(ic);
}
