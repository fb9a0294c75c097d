/* iscsi_login.c — the login phase (RFC 7143 §6.3, §11.12, §11.13, §12.1.3).
 *
 * One Login Request at a time, always answered by one Login Response:
 *   1. header checks (version, stage, transit, session identity);
 *   2. text accumulated across C-bit PDUs (each answered with an empty
 *      response) up to ISCSI_TEXT_MAX;
 *   3. negotiation (iscsi_text.c) answers every key;
 *   4. on the first request: InitiatorName and, for a normal session,
 *      TargetName are required; the target is resolved (or the login
 *      redirected when iscsi/target_address names another portal);
 *   5. security stage: AuthMethod, then CHAP_A → our CHAP_I/CHAP_C, then
 *      CHAP_N/CHAP_R checked (and, for mutual CHAP, our CHAP_N/CHAP_R);
 *      no transit until authentication is complete;
 *   6. transit to full feature phase opens the disk, declares our
 *      MaxRecvDataSegmentLength and assigns the TSIH.
 * Every failure is a Login Response with a status class/detail (CHAP:
 * 0x0201), sent before the connection closes, and a log line naming the
 * client and why.
 */
#include "iscsi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "clients.h"
#include "iscsi_chap.h"
#include "log.h"
#include "stats.h"
#include "util.h"

enum chap_state {
	CHAP_OFF,        /* AuthMethod None (or not negotiated yet) */
	CHAP_WAIT_A,     /* AuthMethod=CHAP agreed: waiting for CHAP_A */
	CHAP_WAIT_R,     /* challenge sent: waiting for CHAP_N/CHAP_R */
	CHAP_DONE,       /* the initiator is authenticated */
};

struct iscsi_login {
	struct iscsi_neg neg;
	struct iscsi_textbuf in;       /* request text across C-bit PDUs */
	int stage;                     /* the CSG the next request must carry */
	bool started;                  /* the first request was accepted */
	bool first_done;               /* the first complete request was checked */
	bool tpgt_sent;
	enum chap_state chap;
	uint8_t chap_id;
	uint8_t challenge[CHAP_CHALLENGE_LEN];
	bool chap_mutual;              /* we answered the initiator's challenge */
};

static uint16_t next_tsih = 1;     /* shared by all workers (atomic) */

/* A session handle: any non-zero 16-bit value (unique among live sessions in practice). */
static uint16_t new_tsih(void)
{
	uint16_t t;
	while ((t = __atomic_fetch_add(&next_tsih, 1, __ATOMIC_RELAXED)) == 0)
		;
	return t;
}

void iscsi_login_free(struct iscsi_conn *ic)
{
	if (!ic->login)
		return;
	textbuf_free(&ic->login->in);
	free(ic->login);
	ic->login = NULL;
}

void iscsi_export_iqn(const struct export *e, char *buf, size_t len)
{
	if (e->kind == EXPORT_CLIENT) {
		char mac[13];
		mac_hex(e->mac, mac);
		snprintf(buf, len, ISCSI_IQN_PREFIX ISCSI_IQN_CLIENT "%s", mac);
	} else {
		snprintf(buf, len, ISCSI_IQN_PREFIX ISCSI_IQN_IMAGE "%s", e->name);
	}
}

/* Must initiators authenticate? */
static bool chap_configured(void)
{
	return g_iscsi.chap_user[0] && g_iscsi.chap_secret[0];
}

/* Send a Login Response carrying text (may be empty). */
static void login_respond(struct iscsi_conn *ic, const struct iscsi_hdr *h, uint8_t flags, uint16_t status,
			  const char *text, size_t len)
{
	uint8_t b[ISCSI_BHS_LEN];
	struct iscsi_login_rsp r = {
		.flags = flags, .ver_max = 0, .ver_active = 0, .dsl = (uint32_t)len, .tsih = 0, .itt = h->itt,
		.status = status, .sn = iscsi_sn_next(ic, true),
	};
	memcpy(r.isid, h->isid, sizeof r.isid);
	if ((flags & ISCSI_LOGIN_TRANSIT) && ISCSI_LOGIN_NSG(flags) == ISCSI_STAGE_FFP)
		r.tsih = ic->tsih;
	iscsi_build_login_rsp(b, &r);
	iscsi_send_pdu(ic, b, text, (uint32_t)len);
}

/* End the login with status; the connection closes once it is sent. Returns 0. */
static int login_reject(struct iscsi_conn *ic, const struct iscsi_hdr *h, uint16_t status, const char *text,
			size_t len, const char *why)
{
	iscsi_log(BL_INFO, ic, "login refused (status 0x%04x): %s", status, why);
	login_respond(ic, h, (uint8_t)(ISCSI_LOGIN_CSG(h->flags) << 2), status, text, len);
	ic->phase = ISCSI_PH_DONE;
	conn_close_after_send(ic->c);
	return 0;
}

/* Version, stage and identity checks. 0, or a login status (why set). */
static uint16_t check_header(struct iscsi_conn *ic, struct iscsi_login *l, const struct iscsi_hdr *h,
			     char *why, size_t wl)
{
	int csg = ISCSI_LOGIN_CSG(h->flags), nsg = ISCSI_LOGIN_NSG(h->flags);
	bool transit = h->flags & ISCSI_LOGIN_TRANSIT;
	if (h->ver_min > 0)
		return snprintf(why, wl, "iSCSI version %u..%u, we speak 0", h->ver_min, h->ver_max), ISCSI_LOGIN_BAD_VERSION;
	if (!l->started) {
		if (h->tsih)
			return snprintf(why, wl, "TSIH %u: no such session (no connections are added to sessions)", h->tsih),
				ISCSI_LOGIN_NO_SUCH_SESSION;
		if (csg != ISCSI_STAGE_SECURITY && csg != ISCSI_STAGE_OPERATIONAL)
			return snprintf(why, wl, "login starts in stage %d", csg), ISCSI_LOGIN_INITIATOR_ERROR;
	} else if (csg != l->stage || memcmp(h->isid, ic->isid, 6) != 0 || h->tsih) {
		return snprintf(why, wl, "stage %d or session identity differs from the login so far", csg),
			ISCSI_LOGIN_INITIATOR_ERROR;
	}
	if (transit && (h->flags & ISCSI_LOGIN_CONTINUE))
		return snprintf(why, wl, "both T and C set"), ISCSI_LOGIN_INITIATOR_ERROR;
	if (transit && (nsg <= csg || nsg == 2))
		return snprintf(why, wl, "transit from stage %d to %d", csg, nsg), ISCSI_LOGIN_INITIATOR_ERROR;
	return 0;
}

/* The first request fixes the session's identity and sequence numbers. */
static void login_begin(struct iscsi_conn *ic, struct iscsi_login *l, const struct iscsi_hdr *h)
{
	l->started = true;
	l->stage = ISCSI_LOGIN_CSG(h->flags);
	memcpy(ic->isid, h->isid, 6);
	ic->cid = h->cid;
	ic->stat_sn = h->exp_stat_sn;
	ic->exp_cmd_sn = h->cmd_sn;
	ic->max_cmd_sn = h->cmd_sn - 1;
	/* iPXE: ISID type IANA enterprise number 10019 (Fen Systems). */
	ic->ipxe = h->isid[0] == 0x40 && h->isid[1] == 0x00 && h->isid[2] == 0x27 && h->isid[3] == 0x23;
	l->neg.p = &ic->p;
	l->neg.auth_allowed = chap_configured() ? ISCSI_AUTH_CHAP : ISCSI_AUTH_NONE;
}

struct nocase {
	const char *key;
	char found[96];
};

/* exports_foreach callback of lookup_nocase(). */
static void nocase_one(const struct export *e, void *arg)
{
	struct nocase *n = arg;
	if (e->kind == EXPORT_IMAGE && !n->found[0] && strcasecmp(e->name, n->key) == 0)
		snprintf(n->found, sizeof n->found, "%s", e->name);
}

/* iSCSI names are case-insensitive (RFC 3722 folds them to lower case);
 * image names are not: find an image whose name differs only in case. */
static int lookup_nocase(const char *key, enum export_kind kind, struct export_ref *ref)
{
	struct nocase n = { .key = key };
	if (kind != EXPORT_IMAGE)
		return -ENOENT;
	exports_foreach(nocase_one, &n);
	return n.found[0] ? exports_lookup(n.found, strlen(n.found), ref) : -ENOENT;
}

/* TargetName → export. 0, or a login status (why set). */
static uint16_t resolve_target(struct iscsi_conn *ic, const char *name, char *why, size_t wl)
{
	size_t pl = strlen(ISCSI_IQN_PREFIX);
	struct export_ref ref;
	const char *rest = name + pl, *key;
	enum export_kind kind;
	if (strncasecmp(name, ISCSI_IQN_PREFIX, pl) != 0)
		return snprintf(why, wl, "no target named '%s'", name), ISCSI_LOGIN_NOT_FOUND;
	if (strncasecmp(rest, ISCSI_IQN_CLIENT, strlen(ISCSI_IQN_CLIENT)) == 0) {
		key = rest + strlen(ISCSI_IQN_CLIENT);
		kind = EXPORT_CLIENT;
		if (strlen(key) != 12 || strspn(key, "0123456789abcdefABCDEF") != 12)
			return snprintf(why, wl, "no target named '%s'", name), ISCSI_LOGIN_NOT_FOUND;
	} else if (strncasecmp(rest, ISCSI_IQN_IMAGE, strlen(ISCSI_IQN_IMAGE)) == 0) {
		key = rest + strlen(ISCSI_IQN_IMAGE);
		kind = EXPORT_IMAGE;
	} else {
		return snprintf(why, wl, "no target named '%s'", name), ISCSI_LOGIN_NOT_FOUND;
	}
	if (exports_lookup(key, strlen(key), &ref) < 0 && lookup_nocase(key, kind, &ref) < 0)
		return snprintf(why, wl, "no target named '%s'", name), ISCSI_LOGIN_NOT_FOUND;
	if (ref.e.kind != kind) {
		exports_ref_release(&ref);
		return snprintf(why, wl, "no target named '%s'", name), ISCSI_LOGIN_NOT_FOUND;
	}
	if (!ref.e.img) {
		snprintf(why, wl, "target '%.200s' is not available: %.300s", name, ref.e.error);
		exports_ref_release(&ref);
		return ISCSI_LOGIN_UNAVAILABLE;
	}
	ic->exp = ref;
	ic->has_export = true;
	iscsi_export_iqn(&ref.e, ic->target_name, sizeof ic->target_name);
	return 0;
}

/* iscsi/target_address, as "host:port,tpgt", if this login must go there. */
static bool redirect_to(const struct iscsi_conn *ic, char *addr, size_t len)
{
	const char *t = g_iscsi.target_address;
	if (!t[0])
		return false;
	snprintf(addr, len, strchr(t, ',') ? "%s" : "%s,%d", t, ISCSI_TPGT);
	size_t n = strcspn(addr, ",");
	return !(strncmp(addr, ic->portal, n) == 0 && ic->portal[n] == ',');
}

/* Checks on the first request once its keys are known. 0, or -1 when the
 * login ended (rejected or redirected). */
static int first_request(struct iscsi_conn *ic, struct iscsi_login *l, const struct iscsi_hdr *h)
{
	char why[640], addr[160];
	struct iscsi_neg *n = &l->neg;
	if (!n->initiator_name_seen)
		return login_reject(ic, h, ISCSI_LOGIN_MISSING_PARAM, NULL, 0, "no InitiatorName"), -1;
	snprintf(ic->logtag, sizeof ic->logtag, "initiator=%s: ", ic->p.initiator_name);
	if (ic->p.discovery)
		return 0;
	if (!n->target_name_seen)
		return login_reject(ic, h, ISCSI_LOGIN_MISSING_PARAM, NULL, 0, "normal session without TargetName"), -1;
	if (redirect_to(ic, addr, sizeof addr)) {
		struct iscsi_textbuf t = { 0 };
		textbuf_add(&t, "TargetAddress", "%s", addr);
		snprintf(why, sizeof why, "redirected to %s (iscsi/target_address)", addr);
		login_reject(ic, h, ISCSI_LOGIN_MOVED_TEMP, t.buf, t.len, why);
		textbuf_free(&t);
		return -1;
	}
	uint16_t st = resolve_target(ic, ic->p.target_name, why, sizeof why);
	if (st)
		return login_reject(ic, h, st, NULL, 0, why), -1;
	snprintf(ic->logtag, sizeof ic->logtag, "initiator=%s target=%s: ", ic->p.initiator_name, ic->exp.e.name);
	return 0;
}

/* CHAP_A answered: our identifier and challenge. */
static void chap_challenge(struct iscsi_login *l, struct iscsi_textbuf *out)
{
	char hex[2 * CHAP_CHALLENGE_LEN + 3];
	uint8_t id;
	if (getrandom(l->challenge, sizeof l->challenge, 0) != sizeof l->challenge ||
	    getrandom(&id, 1, 0) != 1) {
		for (size_t i = 0; i < sizeof l->challenge; i++) /* never expected; still unpredictable enough */
			l->challenge[i] = (uint8_t)(now_ns() >> (i % 8));
		id = (uint8_t)now_ns();
	}
	l->chap_id = id;
	iscsi_hex_encode(l->challenge, sizeof l->challenge, hex);
	textbuf_add(out, "CHAP_I", "%u", id);
	textbuf_add(out, "CHAP_C", "%s", hex);
	l->chap = CHAP_WAIT_R;
}

/* CHAP_N/CHAP_R checked; mutual CHAP answered. 0 or a status (why set). */
static uint16_t chap_response(struct iscsi_login *l, struct iscsi_textbuf *out, char *why, size_t wl)
{
	struct iscsi_neg *n = &l->neg;
	if (l->chap != CHAP_WAIT_R || !n->chap_n_seen || !n->chap_r_seen)
		return snprintf(why, wl, "CHAP_N/CHAP_R out of sequence"), ISCSI_LOGIN_AUTH_FAILED;
	if (strcmp(n->chap_n, g_iscsi.chap_user) != 0 ||
	    !chap_md5_verify(l->chap_id, g_iscsi.chap_secret, strlen(g_iscsi.chap_secret), l->challenge,
			     sizeof l->challenge, n->chap_r, n->chap_r_len))
		return snprintf(why, wl, "CHAP authentication failed for user '%s'", n->chap_n), ISCSI_LOGIN_AUTH_FAILED;
	l->chap = CHAP_DONE;
	if (!n->chap_i_seen && !n->chap_c_seen)
		return 0;
	if (!n->chap_i_seen || !n->chap_c_seen)
		return snprintf(why, wl, "mutual CHAP needs both CHAP_I and CHAP_C"), ISCSI_LOGIN_AUTH_FAILED;
	if (!g_iscsi.chap_mutual_user[0] || !g_iscsi.chap_mutual_secret[0])
		return snprintf(why, wl, "initiator asks for mutual CHAP; iscsi/chap_mutual_user and "
			       "iscsi/chap_mutual_secret are not set"), ISCSI_LOGIN_AUTH_FAILED;
	if (n->chap_c_len == sizeof l->challenge && memcmp(n->chap_c, l->challenge, sizeof l->challenge) == 0)
		return snprintf(why, wl, "initiator reflected our CHAP challenge"), ISCSI_LOGIN_AUTH_FAILED;
	uint8_t r[CHAP_MD5_LEN];
	char hex[2 * CHAP_MD5_LEN + 3];
	chap_md5_response((uint8_t)n->chap_i, g_iscsi.chap_mutual_secret, strlen(g_iscsi.chap_mutual_secret),
			  n->chap_c, n->chap_c_len, r);
	iscsi_hex_encode(r, sizeof r, hex);
	textbuf_add(out, "CHAP_N", "%s", g_iscsi.chap_mutual_user);
	textbuf_add(out, "CHAP_R", "%s", hex);
	l->chap_mutual = true;
	return 0;
}

/* Security-stage keys after negotiation. 0 or a status (why set). */
static uint16_t security_step(struct iscsi_login *l, struct iscsi_textbuf *out, char *why, size_t wl)
{
	struct iscsi_neg *n = &l->neg;
	if (n->auth_offered) {
		if (!n->auth_chosen)
			return snprintf(why, wl, "no acceptable AuthMethod offered (we need %s)",
					chap_configured() ? "CHAP" : "None"), ISCSI_LOGIN_AUTH_FAILED;
		l->chap = n->auth_chosen == ISCSI_AUTH_CHAP ? CHAP_WAIT_A : CHAP_OFF;
	}
	if (n->chap_a_seen) {
		if (l->chap != CHAP_WAIT_A || !n->chap_a_ok)
			return snprintf(why, wl, n->chap_a_ok ? "CHAP_A out of sequence" : "CHAP_A without MD5 (5)"),
				ISCSI_LOGIN_AUTH_FAILED;
		chap_challenge(l, out);
	}
	if (n->chap_n_seen || n->chap_r_seen || n->chap_i_seen || n->chap_c_seen)
		return chap_response(l, out, why, wl);
	return 0;
}

/* Everything needed for full feature phase: the disk for a normal session,
 * opened the way NBD opens it (a client's overlay, or the image read-only). */
static uint16_t session_open(struct iscsi_conn *ic, char *why, size_t wl)
{
	if (ic->p.discovery)
		return 0;
	char err[320] = "";
	int r;
	if (ic->exp.e.kind == EXPORT_CLIENT)
		r = clients_acquire(&ic->exp.e, NULL, &ic->vd, err, sizeof err);
	else
		r = vdisk_open_image(ic->exp.e.img, &ic->vd);
	if (r < 0) {
		ic->vd = NULL;
		snprintf(why, wl, "cannot open the disk: %s", err[0] ? err : strerror(-r));
		return ISCSI_LOGIN_NO_RESOURCES;
	}
	scsi_lu_init(&ic->lu, ic->vd, ic->exp.e.name, ic->target_name);
	/* The I_T nexus for persistent reservations: the iSCSI initiator port name (RFC 7143 §4.2.7.2). */
	char port[SCSI_PR_PORT_MAX];
	snprintf(port, sizeof port, "%s,i,0x%02x%02x%02x%02x%02x%02x", ic->p.initiator_name, ic->isid[0],
		 ic->isid[1], ic->isid[2], ic->isid[3], ic->isid[4], ic->isid[5]);
	scsi_lu_set_port(&ic->lu, SCSI_PROTO_ISCSI, port);
	__atomic_fetch_add(&ic->exp.e.img->stat_connections, 1, __ATOMIC_RELAXED);
	stats_conn_set_export(ic->c, ic->exp.e.name);
	return 0;
}

/* The final response is queued: switch to full feature phase. */
static void enter_ffp(struct iscsi_conn *ic)
{
	/* How the initiator authenticated, for the log (one line tells a CHAP setup works). */
	const struct iscsi_login *l = ic->login;
	const char *auth = !l || l->chap != CHAP_DONE ? "None" : l->chap_mutual ? "CHAP+mutual" : "CHAP";
	ic->phase = ISCSI_PH_FFP;
	iscsi_log(BL_INFO, ic, "%s session started (auth=%s HeaderDigest=%s DataDigest=%s MaxRecvDataSegmentLength=%u/%u "
		  "MaxBurstLength=%u FirstBurstLength=%u InitialR2T=%s ImmediateData=%s%s)",
		  ic->p.discovery ? "discovery" : "normal", auth, ic->p.header_digest ? "CRC32C" : "None",
		  ic->p.data_digest ? "CRC32C" : "None", ic->p.max_recv_dsl, ic->p.max_xmit_dsl, ic->p.max_burst,
		  ic->p.first_burst, ic->p.initial_r2t ? "Yes" : "No", ic->p.immediate_data ? "Yes" : "No",
		  ic->ipxe ? ", iPXE" : "");
	iscsi_login_free(ic);
}

/* Can the login leave the security stage? 0 = yes, 1 = not yet, or a status. */
static int transit_ok(struct iscsi_login *l, char *why, size_t wl)
{
	if (l->stage != ISCSI_STAGE_SECURITY || l->chap == CHAP_DONE)
		return 0;
	if (!chap_configured() && l->chap == CHAP_OFF)
		return 0;
	if (l->chap == CHAP_OFF)
		return snprintf(why, wl, "CHAP is required (iscsi/chap_user) but was not negotiated"),
			ISCSI_LOGIN_AUTH_FAILED;
	return 1;
}

/* Negotiate the complete request text and answer it. */
static int login_step(struct iscsi_conn *ic, struct iscsi_login *l, const struct iscsi_hdr *h)
{
	struct iscsi_textbuf out = { 0 };
	char why[640] = "";
	l->neg.stage = l->stage == ISCSI_STAGE_SECURITY ? ISCSI_NEG_SECURITY : ISCSI_NEG_OPERATIONAL;
	if (iscsi_negotiate(&l->neg, l->in.buf ? l->in.buf : "", l->in.len, &out) < 0) {
		textbuf_free(&out);
		return login_reject(ic, h, l->neg.fail, NULL, 0, l->neg.why);
	}
	textbuf_free(&l->in);
	if (!l->first_done) {
		l->first_done = true;
		if (first_request(ic, l, h) < 0)
			return textbuf_free(&out), 0;
	}
	uint16_t st = l->stage == ISCSI_STAGE_SECURITY ? security_step(l, &out, why, sizeof why) : 0;
	bool transit = h->flags & ISCSI_LOGIN_TRANSIT;
	int ok = st ? 0 : transit ? transit_ok(l, why, sizeof why) : 0;
	if (ok > 1)
		st = (uint16_t)ok;
	if (st) {
		textbuf_free(&out);
		return login_reject(ic, h, st, NULL, 0, why);
	}
	transit = transit && ok == 0;
	int nsg = transit ? ISCSI_LOGIN_NSG(h->flags) : 0;
	if (!ic->p.discovery && !l->tpgt_sent) {
		textbuf_add(&out, "TargetPortalGroupTag", "%d", ISCSI_TPGT);
		l->tpgt_sent = true;
	}
	if (nsg == ISCSI_STAGE_FFP) {
		if ((st = session_open(ic, why, sizeof why)) != 0) {
			textbuf_free(&out);
			return login_reject(ic, h, st, NULL, 0, why);
		}
		ic->p.max_recv_dsl = ISCSI_OUR_MAX_RECV_DSL;
		textbuf_add(&out, "MaxRecvDataSegmentLength", "%u", ic->p.max_recv_dsl);
		ic->tsih = new_tsih();
	}
	if (out.overflow) {
		textbuf_free(&out);
		return login_reject(ic, h, ISCSI_LOGIN_TARGET_ERROR, NULL, 0, "login response too large");
	}
	uint8_t flags = (uint8_t)((transit ? ISCSI_LOGIN_TRANSIT : 0) | l->stage << 2 | nsg);
	login_respond(ic, h, flags, ISCSI_LOGIN_OK, out.buf, out.len);
	textbuf_free(&out);
	if (transit)
		l->stage = nsg;
	if (nsg == ISCSI_STAGE_FFP)
		enter_ffp(ic);
	return 0;
}

int iscsi_login_pdu(struct iscsi_conn *ic, const struct iscsi_hdr *h, const uint8_t *data)
{
	char why[200];
	if (!ic->login && !(ic->login = calloc(1, sizeof *ic->login)))
		return -1;
	struct iscsi_login *l = ic->login;
	if (!data) {
		snprintf(why, sizeof why, "login data segment of %u bytes exceeds %u", h->dsl, ISCSI_LOGIN_MAX_DSL);
		return login_reject(ic, h, ISCSI_LOGIN_INITIATOR_ERROR, NULL, 0, why);
	}
	uint16_t st = check_header(ic, l, h, why, sizeof why);
	if (st)
		return login_reject(ic, h, st, NULL, 0, why);
	if (!l->started && chap_configured() && ISCSI_LOGIN_CSG(h->flags) != ISCSI_STAGE_SECURITY)
		return login_reject(ic, h, ISCSI_LOGIN_AUTH_FAILED, NULL, 0,
				    "login skips the security stage but CHAP is required (iscsi/chap_user)");
	if (!l->started)
		login_begin(ic, l, h);
	if (l->in.len + h->dsl > ISCSI_TEXT_MAX)
		return login_reject(ic, h, ISCSI_LOGIN_INITIATOR_ERROR, NULL, 0, "login text exceeds 64 KiB");
	if (h->dsl) {
		char *nb = realloc(l->in.buf, l->in.len + h->dsl);
		if (!nb)
			return login_reject(ic, h, ISCSI_LOGIN_NO_RESOURCES, NULL, 0, "out of memory");
		memcpy(nb + l->in.len, data, h->dsl);
		l->in.buf = nb;
		l->in.len += h->dsl;
		l->in.cap = l->in.len;
	}
	if (h->flags & ISCSI_LOGIN_CONTINUE) {
		login_respond(ic, h, (uint8_t)(l->stage << 2), ISCSI_LOGIN_OK, NULL, 0);
		return 0;
	}
	return login_step(ic, l, h);
}
