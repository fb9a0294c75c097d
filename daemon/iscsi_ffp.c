/* iscsi_ffp.c — full feature phase: PDU dispatch, the CmdSN window, NOP,
 * task management, logout, Text (SendTargets), SNACK and Reject
 * (RFC 7143 §4.2.2, §11.5, §11.10, §11.14, §11.17-19).
 *
 * CmdSN: a non-immediate request must carry a CmdSN inside
 * [ExpCmdSN, MaxCmdSN]; one outside is ignored silently (§4.2.2.1). The
 * window is limits/inflight commands wide (iscsi_sn_next); immediate
 * requests bypass it. Discovery sessions carry only Text, NOP and Logout.
 *
 * Task management waits for every task it aborts to stop touching the
 * disk before it answers; ABORT TASK for a task we no longer have answers
 * "function complete" if its CmdSN is still inside the window (it never
 * arrived) and "task does not exist" otherwise.
 *
 * Text: requests may span PDUs (C bit, each answered by an empty
 * response with a TTT); answers longer than the initiator's
 * MaxRecvDataSegmentLength are split the same way and continued when the
 * initiator sends an empty request with our TTT.
 */
#include "iscsi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "util.h"

uint32_t iscsi_new_ttt(struct iscsi_conn *ic)
{
	if (ic->next_ttt == ISCSI_RSVD_TAG || ic->next_ttt == 0)
		ic->next_ttt = 1;
	return ic->next_ttt++;
}

/* CmdSN window check for a request; true if it is to be executed. */
static bool cmd_sn_accept(struct iscsi_conn *ic, const struct iscsi_hdr *h)
{
	if (h->immediate)
		return true;
	if (h->cmd_sn == ic->exp_cmd_sn) {
		ic->exp_cmd_sn++;
		return true;
	}
	if (sn_lt(h->cmd_sn, ic->exp_cmd_sn) || sn_gt(h->cmd_sn, ic->max_cmd_sn)) {
		iscsi_log(BL_INFO, ic, "CmdSN %u outside the window [%u, %u]: request (opcode 0x%02x) ignored", h->cmd_sn,
			  ic->exp_cmd_sn, ic->max_cmd_sn, h->op);
		return false;
	}
	/* Inside the window but ahead: on one TCP connection nothing can have
	 * been lost, so the initiator skipped numbers. Go along with it. */
	iscsi_log(BL_WARN, ic, "CmdSN %u skips ahead of ExpCmdSN %u", h->cmd_sn, ic->exp_cmd_sn);
	ic->exp_cmd_sn = h->cmd_sn + 1;
	return true;
}

/* --- NOP --- */

static int nop_out(struct iscsi_conn *ic, const struct iscsi_hdr *h, const uint8_t *bhs, const uint8_t *data)
{
	if (h->ttt != ISCSI_RSVD_TAG && ic->nop_out && h->ttt == ic->nop_ttt)
		ic->nop_out = false; /* our ping answered */
	if (h->itt == ISCSI_RSVD_TAG) {
		if (!h->immediate)
			iscsi_reject(ic, bhs, ISCSI_REJECT_PROTOCOL_ERROR);
		return 0; /* no answer wanted */
	}
	if (!cmd_sn_accept(ic, h))
		return 0;
	uint8_t b[ISCSI_BHS_LEN];
	uint32_t n = MIN(h->dsl, ic->p.max_xmit_dsl);
	struct iscsi_nop_in r = { .lun = h->lun, .itt = h->itt, .ttt = ISCSI_RSVD_TAG, .dsl = n,
				  .sn = iscsi_sn_next(ic, true) };
	iscsi_build_nop_in(b, &r);
	iscsi_send_pdu(ic, b, data, n);
	return 0;
}

void iscsi_ffp_ping(struct iscsi_conn *ic, bool want_answer)
{
	uint8_t b[ISCSI_BHS_LEN];
	uint32_t ttt = want_answer ? iscsi_new_ttt(ic) : ISCSI_RSVD_TAG;
	struct iscsi_nop_in r = { .lun = 0, .itt = ISCSI_RSVD_TAG, .ttt = ttt, .sn = iscsi_sn_next(ic, false) };
	iscsi_build_nop_in(b, &r);
	iscsi_send_pdu(ic, b, NULL, 0);
	ic->nop_out = want_answer;
	ic->nop_ttt = ttt;
	ic->nop_sent_ns = now_ns();
}

/* --- task management --- */

void iscsi_tmf_task_gone(struct iscsi_tmf *m)
{
	if (--m->pending)
		return;
	struct iscsi_conn *ic = m->ic;
	struct conn *c = ic->c;
	uint8_t b[ISCSI_BHS_LEN];
	struct iscsi_tmf_rsp_pdu r = { .itt = m->itt, .response = m->response, .sn = iscsi_sn_next(ic, true) };
	iscsi_build_tmf_rsp(b, &r);
	iscsi_send_pdu(ic, b, NULL, 0);
	if (m->function == ISCSI_TMF_TARGET_COLD_RESET && m->response == ISCSI_TMF_RSP_COMPLETE) {
		ic->phase = ISCSI_PH_DONE;
		conn_close_after_send(c);
	}
	free(m);
	conn_put(c);
}

/* Carry out function fn; the answer goes out when the aborted tasks are gone. */
static void tmf_run(struct iscsi_conn *ic, struct iscsi_tmf *m, const struct iscsi_hdr *h)
{
	struct iscsi_task *t;
	switch (m->function) {
	case ISCSI_TMF_ABORT_TASK:
		if ((t = iscsi_task_find(ic, h->ref_itt)))
			iscsi_task_abort(t, m);
		else if (sn_lt(h->ref_cmd_sn, ic->exp_cmd_sn) || sn_gt(h->ref_cmd_sn, ic->max_cmd_sn))
			m->response = ISCSI_TMF_RSP_NO_TASK;
		break;
	case ISCSI_TMF_ABORT_TASK_SET:
	case ISCSI_TMF_CLEAR_TASK_SET:
	case ISCSI_TMF_LUN_RESET:
		if (h->lun != 0) {
			m->response = ISCSI_TMF_RSP_NO_LUN;
			break;
		}
		iscsi_task_abort_all(ic, m);
		if (m->function == ISCSI_TMF_LUN_RESET)
			scsi_lu_reset(&ic->lu);
		break;
	case ISCSI_TMF_TARGET_WARM_RESET:
	case ISCSI_TMF_TARGET_COLD_RESET:
		iscsi_task_abort_all(ic, m);
		scsi_lu_reset(&ic->lu);
		break;
	case ISCSI_TMF_CLEAR_ACA:
		m->response = ISCSI_TMF_RSP_NOT_SUPPORTED;
		break;
	case ISCSI_TMF_TASK_REASSIGN:
		m->response = ISCSI_TMF_RSP_NO_REASSIGN; /* ErrorRecoveryLevel 0 */
		break;
	default:
		m->response = ISCSI_TMF_RSP_REJECTED;
		break;
	}
}

/* Task Management Function Request. */
static int tmf_request(struct iscsi_conn *ic, const struct iscsi_hdr *h)
{
	if (!cmd_sn_accept(ic, h))
		return 0;
	struct iscsi_tmf *m = calloc(1, sizeof *m);
	if (!m)
		return -1;
	m->ic = ic;
	m->itt = h->itt;
	m->function = h->flags & ISCSI_FUNC_MASK;
	m->response = ISCSI_TMF_RSP_COMPLETE;
	m->pending = 1; /* held while aborting */
	conn_get(ic->c);
	tmf_run(ic, m, h);
	iscsi_log(BL_INFO, ic, "task management function %u (referenced task 0x%x): response %u", m->function,
		  h->ref_itt, m->response);
	iscsi_tmf_task_gone(m);
	return 0;
}

/* --- logout --- */

static void logout_respond(struct iscsi_conn *ic)
{
	/* The I_T nexus ends now, not when the connection is finally torn down. */
	if (ic->vd)
		scsi_lu_nexus_loss(&ic->lu);
	uint8_t b[ISCSI_BHS_LEN];
	struct iscsi_logout_rsp r = { .itt = ic->logout_itt, .response = ISCSI_LOGOUT_RSP_OK, .time2wait = 0,
				      .time2retain = 0, .sn = iscsi_sn_next(ic, true) };
	iscsi_build_logout_rsp(b, &r);
	iscsi_send_pdu(ic, b, NULL, 0);
	iscsi_log(BL_DEBUG, ic, "logged out");
	ic->phase = ISCSI_PH_DONE;
	conn_close_after_send(ic->c);
}

void iscsi_ffp_task_gone(struct iscsi_conn *ic)
{
	if (ic->nactive)
		return;
	if (ic->phase == ISCSI_PH_LOGOUT)
		logout_respond(ic);
	else if (ic->phase == ISCSI_PH_DONE)
		conn_close_after_send(ic->c);
}

/* Logout Request: close session/connection, or refuse recovery. */
static int logout_request(struct iscsi_conn *ic, const struct iscsi_hdr *h, const uint8_t *bhs)
{
	uint8_t reason = h->flags & ISCSI_FUNC_MASK, resp = ISCSI_LOGOUT_RSP_OK;
	if (!cmd_sn_accept(ic, h))
		return 0;
	if (reason > ISCSI_LOGOUT_RECOVERY) {
		iscsi_reject(ic, bhs, ISCSI_REJECT_PROTOCOL_ERROR);
		return 0;
	}
	if (reason == ISCSI_LOGOUT_RECOVERY)
		resp = ISCSI_LOGOUT_RSP_NO_RECOVERY;
	else if (reason == ISCSI_LOGOUT_CONNECTION && h->cid != ic->cid)
		resp = ISCSI_LOGOUT_RSP_NO_CID;
	if (resp != ISCSI_LOGOUT_RSP_OK) {
		uint8_t b[ISCSI_BHS_LEN];
		struct iscsi_logout_rsp r = { .itt = h->itt, .response = resp, .sn = iscsi_sn_next(ic, true) };
		iscsi_build_logout_rsp(b, &r);
		iscsi_send_pdu(ic, b, NULL, 0);
		return 0;
	}
	/* Answer once the running commands have answered. */
	ic->logout_itt = h->itt;
	ic->phase = ISCSI_PH_LOGOUT;
	conn_pause(ic->c);
	iscsi_task_abort_waiting(ic);
	return 0;
}

/* --- text: SendTargets --- */

struct st_ctx {
	struct iscsi_conn *ic;
	struct iscsi_textbuf *out;
	const char *want;            /* "All" or one IQN */
	char addr[160];
};

/* One export as SendTargets lines, if it is wanted and available. */
static void st_one(const struct export *e, void *arg)
{
	struct st_ctx *x = arg;
	char iqn[ISCSI_NAME_MAX + 1];
	if (!e->img)
		return;
	iscsi_export_iqn(e, iqn, sizeof iqn);
	if (strcmp(x->want, "All") != 0 && strcasecmp(x->want, iqn) != 0)
		return;
	textbuf_add(x->out, "TargetName", "%s", iqn);
	textbuf_add(x->out, "TargetAddress", "%s", x->addr);
}

/* SendTargets=All / =IQN / = (empty: this session's target). */
static void send_targets(struct iscsi_conn *ic, const char *val, struct iscsi_textbuf *out)
{
	struct st_ctx x = { .ic = ic, .out = out, .want = val };
	const char *t = g_iscsi.target_address;
	if (t[0])
		snprintf(x.addr, sizeof x.addr, strchr(t, ',') ? "%s" : "%s,%d", t, ISCSI_TPGT);
	else
		snprintf(x.addr, sizeof x.addr, "%s", ic->portal);
	if (!val[0]) {
		if (ic->p.discovery)
			return;
		x.want = ic->target_name;
	}
	out->limit = ISCSI_SENDTARGETS_MAX;
	exports_foreach(st_one, &x);
}

/* Send the next piece of ic->text_out (C and a TTT when more follows). */
static void text_send_piece(struct iscsi_conn *ic, const struct iscsi_hdr *h)
{
	uint8_t b[ISCSI_BHS_LEN];
	size_t left = ic->text_out.len - ic->text_out_off;
	uint32_t n = (uint32_t)MIN(left, ic->p.max_xmit_dsl);
	bool more = n < left;
	ic->text_ttt = more ? iscsi_new_ttt(ic) : ISCSI_RSVD_TAG;
	struct iscsi_text_rsp r = { .flags = more ? ISCSI_TEXT_CONTINUE : ISCSI_F_FINAL, .lun = h->lun, .itt = h->itt,
				    .ttt = ic->text_ttt, .dsl = n, .sn = iscsi_sn_next(ic, true) };
	iscsi_build_text_rsp(b, &r);
	iscsi_send_pdu(ic, b, ic->text_out.buf ? ic->text_out.buf + ic->text_out_off : NULL, n);
	ic->text_out_off += n;
	if (!more) {
		textbuf_free(&ic->text_out);
		ic->text_out_off = 0;
	}
}

/* An empty answer asking for the rest of a request sent with C. */
static void text_continue(struct iscsi_conn *ic, const struct iscsi_hdr *h)
{
	uint8_t b[ISCSI_BHS_LEN];
	ic->text_ttt = iscsi_new_ttt(ic);
	struct iscsi_text_rsp r = { .flags = 0, .lun = h->lun, .itt = h->itt, .ttt = ic->text_ttt, .dsl = 0,
				    .sn = iscsi_sn_next(ic, true) };
	iscsi_build_text_rsp(b, &r);
	iscsi_send_pdu(ic, b, NULL, 0);
}

/* Negotiate the assembled request and answer it. */
static void text_answer(struct iscsi_conn *ic, const struct iscsi_hdr *h, const uint8_t *bhs)
{
	struct iscsi_neg n = { .p = &ic->p, .stage = ISCSI_NEG_FFP };
	int r = iscsi_negotiate(&n, ic->text_in.buf ? ic->text_in.buf : "", ic->text_in.len, &ic->text_out);
	textbuf_free(&ic->text_in);
	if (r < 0) {
		iscsi_log(BL_INFO, ic, "text request: %s", n.why);
		textbuf_free(&ic->text_out);
		iscsi_reject(ic, bhs, ISCSI_REJECT_PROTOCOL_ERROR);
		return;
	}
	if (n.send_targets)
		send_targets(ic, n.send_targets_val, &ic->text_out);
	if (ic->text_out.overflow)
		iscsi_log(BL_WARN, ic, "text answer truncated at %zu bytes", ic->text_out.len);
	ic->text_out_off = 0;
	text_send_piece(ic, h);
}

/* Text Request: a new exchange, more of the request (C), or a request
 * for the rest of our answer (our TTT). */
static int text_request(struct iscsi_conn *ic, const struct iscsi_hdr *h, const uint8_t *bhs, const uint8_t *data)
{
	if (!cmd_sn_accept(ic, h))
		return 0;
	if (h->ttt == ISCSI_RSVD_TAG) { /* a new exchange */
		textbuf_free(&ic->text_in);
		textbuf_free(&ic->text_out);
		ic->text_out_off = 0;
	} else if (h->ttt != ic->text_ttt) {
		iscsi_reject(ic, bhs, ISCSI_REJECT_INVALID_FIELD);
		return 0;
	}
	if (ic->text_in.len + h->dsl > ISCSI_TEXT_MAX) {
		textbuf_free(&ic->text_in);
		iscsi_reject(ic, bhs, ISCSI_REJECT_PROTOCOL_ERROR);
		return 0;
	}
	if (h->dsl) {
		char *nb = realloc(ic->text_in.buf, ic->text_in.len + h->dsl);
		if (!nb)
			return -1;
		memcpy(nb + ic->text_in.len, data, h->dsl);
		ic->text_in.buf = nb;
		ic->text_in.len += h->dsl;
		ic->text_in.cap = ic->text_in.len;
	}
	if (h->flags & ISCSI_TEXT_CONTINUE) { /* more of the request follows */
		text_continue(ic, h);
		return 0;
	}
	if (ic->text_out.len && !ic->text_in.len)
		text_send_piece(ic, h); /* the initiator asks for the rest of our answer */
	else
		text_answer(ic, h, bhs);
	return 0;
}

/* --- dispatch --- */

int iscsi_ffp_pdu(struct iscsi_conn *ic, const struct iscsi_hdr *h, const uint8_t *bhs, const uint8_t *data)
{
	if (ic->p.discovery && h->op != ISCSI_OP_NOP_OUT && h->op != ISCSI_OP_TEXT_REQ && h->op != ISCSI_OP_LOGOUT_REQ) {
		iscsi_reject(ic, bhs, ISCSI_REJECT_PROTOCOL_ERROR);
		return 0;
	}
	switch (h->op) {
	case ISCSI_OP_SCSI_CMD:
		if (!cmd_sn_accept(ic, h))
			return 0;
		return iscsi_task_new(ic, h, bhs, data);
	case ISCSI_OP_DATA_OUT:
		return iscsi_task_data_out(ic, h, bhs, data);
	case ISCSI_OP_NOP_OUT:
		return nop_out(ic, h, bhs, data);
	case ISCSI_OP_TMF_REQ:
		return tmf_request(ic, h);
	case ISCSI_OP_TEXT_REQ:
		return text_request(ic, h, bhs, data);
	case ISCSI_OP_LOGOUT_REQ:
		return logout_request(ic, h, bhs);
	case ISCSI_OP_SNACK_REQ: /* ErrorRecoveryLevel 0: no SNACK */
		iscsi_reject(ic, bhs, ISCSI_REJECT_PROTOCOL_ERROR);
		return 0;
	case ISCSI_OP_LOGIN_REQ:
		iscsi_reject(ic, bhs, ISCSI_REJECT_PROTOCOL_ERROR);
		iscsi_fail(ic, "Login Request in full feature phase");
		return 0;
	default:
		iscsi_reject(ic, bhs, ISCSI_REJECT_NOT_SUPPORTED);
		return 0;
	}
}
