/* iscsi_text.c — text pairs and key negotiation; see iscsi_text.h.
 *
 * The table `keys` holds every key of RFC 7143 §13 (plus the RFC 3720
 * markers and the RFC 7144/7145 additions initiators still send): its
 * kind decides how an offer is answered, min/max are the RFC range, ours
 * is the value we bring to the result function, off is where the result
 * is stored. negotiate_one() is a one-level switch on the kind.
 *
 * Stage rules: security keys (AuthMethod, CHAP_*) only in the security
 * stage (elsewhere the login fails, initiator error); login-only keys in a
 * full-feature Text request and SendTargets during login are answered
 * Reject. A key offered twice in one login fails it (§6.2).
 */
#include "iscsi_text.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi_pdu.h"
#include "util.h"

enum key_kind {
	K_DIGEST,          /* list of CRC32C / None: first one we support */
	K_BOOL_AND,        /* Yes/No, result = offer AND ours */
	K_BOOL_OR,         /* Yes/No, result = offer OR ours */
	K_NUM_MIN,         /* number in [min, max], result = min(offer, ours) */
	K_NUM_MAX,         /* number in [min, max], result = max(offer, ours) */
	K_DECL_NUM,        /* declared number in [min, max], no answer */
	K_NAME,            /* declared iSCSI name, stored, no answer */
	K_ALIAS,           /* declared alias, stored (truncated), no answer */
	K_SESSION_TYPE,    /* Discovery / Normal */
	K_AUTH,            /* AuthMethod list */
	K_CHAP_A, K_CHAP_I, K_CHAP_C, K_CHAP_N, K_CHAP_R,
	K_SEND_TARGETS,    /* stored for the caller */
	K_TASK_REPORTING,  /* list: we speak RFC3720 */
	K_IRRELEVANT,      /* answered Irrelevant (marker intervals) */
	K_TARGET_DECL,     /* keys only a target declares: answered Irrelevant */
};

#define KF_SECURITY 1u     /* security stage only */
#define KF_LOGIN    2u     /* login only (initialize-only / leading-only keys) */
#define KF_FFP      4u     /* full feature phase only */

struct key_def {
	const char *name;
	enum key_kind kind;
	uint32_t min, max;     /* RFC range of a numeric value */
	uint32_t ours;         /* our value: number, or 1/0 for Yes/No */
	size_t off;            /* result field in struct iscsi_params */
	size_t size;           /* its size (names) */
	unsigned flags;        /* KF_* */
};

#define P(f) .off = offsetof(struct iscsi_params, f), .size = sizeof(((struct iscsi_params *)0)->f)

static const struct key_def keys[] = {
	{ "HeaderDigest", K_DIGEST, P(header_digest), .flags = KF_LOGIN },
	{ "DataDigest", K_DIGEST, P(data_digest), .flags = KF_LOGIN },
	{ "MaxConnections", K_NUM_MIN, 1, 65535, 1, P(max_connections), .flags = KF_LOGIN },
	{ "SendTargets", K_SEND_TARGETS, .flags = KF_FFP },
	{ "TargetName", K_NAME, P(target_name), .flags = KF_LOGIN },
	{ "InitiatorName", K_NAME, P(initiator_name), .flags = KF_LOGIN },
	{ "TargetAlias", K_TARGET_DECL, .flags = 0 },
	{ "InitiatorAlias", K_ALIAS, P(initiator_alias) },
	{ "TargetAddress", K_TARGET_DECL, .flags = 0 },
	{ "TargetPortalGroupTag", K_TARGET_DECL, .flags = 0 },
	{ "InitialR2T", K_BOOL_OR, .ours = 0, P(initial_r2t), .flags = KF_LOGIN },
	{ "ImmediateData", K_BOOL_AND, .ours = 1, P(immediate_data), .flags = KF_LOGIN },
	{ "MaxRecvDataSegmentLength", K_DECL_NUM, 512, ISCSI_DSL_MAX, 0, P(max_xmit_dsl) },
	{ "MaxBurstLength", K_NUM_MIN, 512, ISCSI_DSL_MAX, ISCSI_OUR_MAX_BURST, P(max_burst), .flags = KF_LOGIN },
	{ "FirstBurstLength", K_NUM_MIN, 512, ISCSI_DSL_MAX, ISCSI_OUR_FIRST_BURST, P(first_burst), .flags = KF_LOGIN },
	{ "DefaultTime2Wait", K_NUM_MAX, 0, 3600, 0, P(time2wait), .flags = KF_LOGIN },
	{ "DefaultTime2Retain", K_NUM_MIN, 0, 3600, 0, P(time2retain), .flags = KF_LOGIN },
	{ "MaxOutstandingR2T", K_NUM_MIN, 1, 65535, ISCSI_OUR_MAX_R2T, P(max_r2t), .flags = KF_LOGIN },
	{ "DataPDUInOrder", K_BOOL_OR, .ours = 1, P(data_pdu_in_order), .flags = KF_LOGIN },
	{ "DataSequenceInOrder", K_BOOL_OR, .ours = 1, P(data_seq_in_order), .flags = KF_LOGIN },
	{ "ErrorRecoveryLevel", K_NUM_MIN, 0, 2, 0, P(erl), .flags = KF_LOGIN },
	{ "SessionType", K_SESSION_TYPE, .flags = KF_LOGIN },
	{ "AuthMethod", K_AUTH, .flags = KF_SECURITY },
	{ "CHAP_A", K_CHAP_A, .flags = KF_SECURITY },
	{ "CHAP_I", K_CHAP_I, .flags = KF_SECURITY },
	{ "CHAP_C", K_CHAP_C, .flags = KF_SECURITY },
	{ "CHAP_N", K_CHAP_N, .flags = KF_SECURITY },
	{ "CHAP_R", K_CHAP_R, .flags = KF_SECURITY },
	{ "OFMarker", K_BOOL_AND, .ours = 0, P(ofmarker), .flags = KF_LOGIN },
	{ "IFMarker", K_BOOL_AND, .ours = 0, P(ifmarker), .flags = KF_LOGIN },
	{ "OFMarkInt", K_IRRELEVANT, .flags = KF_LOGIN },
	{ "IFMarkInt", K_IRRELEVANT, .flags = KF_LOGIN },
	{ "TaskReporting", K_TASK_REPORTING, .flags = KF_LOGIN },
	{ "iSCSIProtocolLevel", K_NUM_MIN, 0, 31, 1, P(protocol_level), .flags = KF_LOGIN },
	{ "RDMAExtensions", K_BOOL_AND, .ours = 0, P(rdma), .flags = KF_LOGIN },
};

_Static_assert(ARRAY_SIZE(keys) <= 64, "iscsi_neg.seen is a 64-bit mask");

void iscsi_params_defaults(struct iscsi_params *p)
{
	memset(p, 0, sizeof *p);
	p->max_connections = 1;
	p->initial_r2t = true;
	p->immediate_data = true;
	p->max_recv_dsl = 8192;
	p->max_xmit_dsl = 8192;
	p->max_burst = 262144;
	p->first_burst = 65536;
	p->time2wait = 2;
	p->time2retain = 20;
	p->max_r2t = 1;
	p->data_pdu_in_order = true;
	p->data_seq_in_order = true;
	p->erl = 0;
	p->protocol_level = 0;
}

/* --- text pairs --- */

int iscsi_text_next(const char *text, size_t len, size_t *pos, struct iscsi_kv *kv)
{
	for (;;) {
		if (*pos >= len)
			return 0;
		const char *s = text + *pos;
		const char *nul = memchr(s, 0, len - *pos);
		if (!nul)
			return -EBADMSG;
		size_t plen = (size_t)(nul - s);
		if (plen == 0) { /* stray NUL between pairs: tolerated */
			(*pos)++;
			continue;
		}
		const char *eq = memchr(s, '=', plen);
		if (!eq || eq == s || (size_t)(eq - s) > ISCSI_KEY_MAX)
			return -EBADMSG;
		kv->key = s;
		kv->klen = (size_t)(eq - s);
		kv->val = eq + 1;
		kv->vlen = plen - kv->klen - 1;
		if (kv->vlen > ISCSI_BIG_VALUE_MAX)
			return -EBADMSG;
		*pos += plen + 1;
		return 1;
	}
}

void textbuf_add(struct iscsi_textbuf *t, const char *key, const char *fmt, ...)
{
	char val[ISCSI_BIG_VALUE_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	int vl = vsnprintf(val, sizeof val, fmt, ap);
	va_end(ap);
	size_t kl = strlen(key);
	if (vl < 0 || (size_t)vl >= sizeof val || t->overflow) {
		t->overflow = true;
		return;
	}
	size_t need = t->len + kl + 1 + (size_t)vl + 1;
	if (need > (t->limit ? t->limit : ISCSI_TEXT_MAX)) {
		t->overflow = true;
		return;
	}
	if (need > t->cap) {
		size_t cap = MAX(need, t->cap ? t->cap * 2 : 512);
		char *nb = realloc(t->buf, cap);
		if (!nb) {
			t->overflow = true;
			return;
		}
		t->buf = nb;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, key, kl);
	t->buf[t->len + kl] = '=';
	memcpy(t->buf + t->len + kl + 1, val, (size_t)vl + 1);
	t->len = need;
}

void textbuf_free(struct iscsi_textbuf *t)
{
	free(t->buf);
	memset(t, 0, sizeof *t);
}

/* --- values --- */

int iscsi_number(const char *s, size_t len, uint32_t *out)
{
	uint64_t v = 0;
	if (len == 0)
		return -EINVAL;
	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		if (len > 2 + 8)
			return -EINVAL;
		for (size_t i = 2; i < len; i++) {
			int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
				: s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 10 : -1;
			if (d < 0)
				return -EINVAL;
			v = v << 4 | (uint64_t)d;
		}
	} else {
		if (len > 10)
			return -EINVAL;
		for (size_t i = 0; i < len; i++) {
			if (s[i] < '0' || s[i] > '9')
				return -EINVAL;
			v = v * 10 + (uint64_t)(s[i] - '0');
		}
	}
	if (v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* Value of a hex digit, or -1. */
static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Value of a base64 digit, or -1. */
static int b64_digit(char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
		: c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Hex digits (odd count: the first is a lone low nibble). */
static int hex_decode(const char *s, size_t len, uint8_t *out, size_t max)
{
	size_t n = (len + 1) / 2, o = 0, i = 0;
	if (len == 0)
		return -EINVAL;
	if (n > max)
		return -EMSGSIZE;
	if (len & 1) {
		int d = hex_digit(s[i++]);
		if (d < 0)
			return -EINVAL;
		out[o++] = (uint8_t)d;
	}
	for (; i < len; i += 2) {
		int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[o++] = (uint8_t)(hi << 4 | lo);
	}
	return (int)o;
}

/* Base64 with '=' padding to a multiple of 4 characters. */
static int b64_decode(const char *s, size_t len, uint8_t *out, size_t max)
{
	size_t o = 0;
	if (len == 0 || len % 4)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		int d[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			if (s[i + k] == '=' && i + 4 == len && k >= 2) {
				d[k] = 0;
				pad++;
			} else if (pad || (d[k] = b64_digit(s[i + k])) < 0) {
				return -EINVAL;
			}
		}
		uint32_t v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 | (uint32_t)d[2] << 6 | (uint32_t)d[3];
		if (o + 3 - (size_t)pad > max)
			return -EMSGSIZE;
		out[o++] = v >> 16;
		if (pad < 2)
			out[o++] = (v >> 8) & 0xff;
		if (pad < 1)
			out[o++] = v & 0xff;
	}
	return (int)o;
}

int iscsi_binary_decode(const char *s, size_t len, uint8_t *out, size_t max)
{
	if (len < 3 || s[0] != '0')
		return -EINVAL;
	if (s[1] == 'x' || s[1] == 'X')
		return hex_decode(s + 2, len - 2, out, max);
	if (s[1] == 'b' || s[1] == 'B')
		return b64_decode(s + 2, len - 2, out, max);
	return -EINVAL;
}

void iscsi_hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	*out++ = '0';
	*out++ = 'x';
	for (size_t i = 0; i < n; i++) {
		*out++ = hx[in[i] >> 4];
		*out++ = hx[in[i] & 15];
	}
	*out = 0;
}

/* --- negotiation --- */

static bool val_is(const struct iscsi_kv *kv, const char *s)
{
	return kv->vlen == strlen(s) && memcmp(kv->val, s, kv->vlen) == 0;
}

/* Next comma-separated item of a list value; false at the end. */
static bool list_next(const struct iscsi_kv *kv, size_t *pos, const char **item, size_t *ilen)
{
	if (*pos > kv->vlen || (*pos == kv->vlen && kv->vlen))
		return false;
	const char *s = kv->val + *pos;
	const char *comma = memchr(s, ',', kv->vlen - *pos);
	*item = s;
	*ilen = comma ? (size_t)(comma - s) : kv->vlen - *pos;
	*pos += *ilen + 1;
	return true;
}

/* Is the list item exactly s? */
static bool item_is(const char *item, size_t ilen, const char *s)
{
	return ilen == strlen(s) && memcmp(item, s, ilen) == 0;
}

/* "Yes" → 1, "No" → 0, anything else → -1. */
static int parse_bool(const struct iscsi_kv *kv)
{
	return val_is(kv, "Yes") ? 1 : val_is(kv, "No") ? 0 : -1;
}

/* Store a Yes/No result in its field. */
static void set_bool(struct iscsi_params *p, const struct key_def *k, bool v)
{
	*(bool *)((char *)p + k->off) = v;
}

/* Store a numeric result in its field. */
static void set_u32(struct iscsi_params *p, const struct key_def *k, uint32_t v)
{
	*(uint32_t *)((char *)p + k->off) = v;
}

/* Copy a value into a name field; false if it does not fit or is empty. */
static bool set_name(struct iscsi_params *p, const struct key_def *k, const struct iscsi_kv *kv, bool truncate)
{
	char *dst = (char *)p + k->off;
	size_t n = kv->vlen;
	if (n == 0 || (n >= k->size && !truncate))
		return false;
	n = MIN(n, k->size - 1);
	memcpy(dst, kv->val, n);
	dst[n] = 0;
	return true;
}

static int fail(struct iscsi_neg *n, uint16_t status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The negotiation fails with a login status; returns -1. */
static int fail(struct iscsi_neg *n, uint16_t status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(n->why, sizeof n->why, fmt, ap);
	va_end(ap);
	n->fail = status;
	return -1;
}

/* Append "key=v" to the answer. */
static void answer(struct iscsi_textbuf *out, const struct key_def *k, const char *v)
{
	textbuf_add(out, k->name, "%s", v);
}

/* List keys: the first offered item we support, else Reject. */
static void negotiate_list(struct iscsi_neg *n, const struct key_def *k, const struct iscsi_kv *kv,
			   struct iscsi_textbuf *out)
{
	const char *item;
	size_t ilen, pos = 0;
	while (list_next(kv, &pos, &item, &ilen)) {
		switch (k->kind) {
		case K_DIGEST:
			if (item_is(item, ilen, "CRC32C") || item_is(item, ilen, "None")) {
				set_bool(n->p, k, item_is(item, ilen, "CRC32C"));
				answer(out, k, item_is(item, ilen, "CRC32C") ? "CRC32C" : "None");
				return;
			}
			break;
		case K_AUTH:
			if ((item_is(item, ilen, "CHAP") && (n->auth_allowed & ISCSI_AUTH_CHAP)) ||
			    (item_is(item, ilen, "None") && (n->auth_allowed & ISCSI_AUTH_NONE))) {
				n->auth_chosen = item_is(item, ilen, "CHAP") ? ISCSI_AUTH_CHAP : ISCSI_AUTH_NONE;
				answer(out, k, n->auth_chosen == ISCSI_AUTH_CHAP ? "CHAP" : "None");
				return;
			}
			break;
		case K_CHAP_A:
			if (item_is(item, ilen, "5")) {
				n->chap_a_ok = true;
				answer(out, k, "5");
				return;
			}
			break;
		case K_TASK_REPORTING:
			if (item_is(item, ilen, "RFC3720")) {
				answer(out, k, "RFC3720");
				return;
			}
			break;
		default:
			break;
		}
	}
	answer(out, k, "Reject");
}

/* Numeric keys: range check, then the result function. */
static void negotiate_num(struct iscsi_neg *n, const struct key_def *k, const struct iscsi_kv *kv,
			  struct iscsi_textbuf *out)
{
	uint32_t v;
	if (iscsi_number(kv->val, kv->vlen, &v) < 0 || v < k->min || v > k->max) {
		answer(out, k, "Reject");
		return;
	}
	if (k->kind == K_DECL_NUM) {
		set_u32(n->p, k, v);
		n->max_xmit_declared = true;
		return;
	}
	uint32_t r = k->kind == K_NUM_MIN ? MIN(v, k->ours) : MAX(v, k->ours);
	set_u32(n->p, k, r);
	textbuf_add(out, k->name, "%u", r);
}

/* CHAP keys the initiator sends: stored for the login code. */
static int negotiate_chap(struct iscsi_neg *n, const struct key_def *k, const struct iscsi_kv *kv)
{
	uint32_t v;
	int len;
	switch (k->kind) {
	case K_CHAP_I:
		if (iscsi_number(kv->val, kv->vlen, &v) < 0 || v > 255)
			return fail(n, ISCSI_LOGIN_AUTH_FAILED, "CHAP_I '%.*s' is not 0..255", (int)MIN(kv->vlen, 32), kv->val);
		n->chap_i = (int)v;
		n->chap_i_seen = true;
		return 0;
	case K_CHAP_N:
		if (kv->vlen == 0 || kv->vlen > ISCSI_VALUE_MAX)
			return fail(n, ISCSI_LOGIN_AUTH_FAILED, "CHAP_N is empty or too long");
		memcpy(n->chap_n, kv->val, kv->vlen);
		n->chap_n[kv->vlen] = 0;
		n->chap_n_seen = true;
		return 0;
	case K_CHAP_C:
	case K_CHAP_R:
		len = iscsi_binary_decode(kv->val, kv->vlen, k->kind == K_CHAP_C ? n->chap_c : n->chap_r, ISCSI_CHAP_BIN_MAX);
		if (len <= 0)
			return fail(n, ISCSI_LOGIN_AUTH_FAILED, "%s is not a valid binary value", k->name);
		if (k->kind == K_CHAP_C) {
			n->chap_c_len = (size_t)len;
			n->chap_c_seen = true;
		} else {
			n->chap_r_len = (size_t)len;
			n->chap_r_seen = true;
		}
		return 0;
	default:
		return 0;
	}
}

/* Declarations the initiator makes: names and the session type. */
static int negotiate_decl(struct iscsi_neg *n, const struct key_def *k, const struct iscsi_kv *kv)
{
	switch (k->kind) {
	case K_NAME:
		if (!set_name(n->p, k, kv, false))
			return fail(n, ISCSI_LOGIN_INITIATOR_ERROR, "%s is empty or longer than %d bytes", k->name,
				    ISCSI_NAME_MAX);
		if (k->off == offsetof(struct iscsi_params, target_name))
			n->target_name_seen = true;
		else
			n->initiator_name_seen = true;
		return 0;
	case K_ALIAS:
		set_name(n->p, k, kv, true);
		return 0;
	case K_SESSION_TYPE:
		if (!val_is(kv, "Discovery") && !val_is(kv, "Normal"))
			return fail(n, ISCSI_LOGIN_NO_SESSION_TYPE, "SessionType '%.*s' is not Discovery or Normal",
				    (int)MIN(kv->vlen, 32), kv->val);
		n->p->discovery = val_is(kv, "Discovery");
		n->session_type_seen = true;
		return 0;
	default:
		return 0;
	}
}

/* Answer one known key. 0, or -1 (the negotiation fails). */
static int negotiate_one(struct iscsi_neg *n, const struct key_def *k, const struct iscsi_kv *kv,
			 struct iscsi_textbuf *out)
{
	int b;
	switch (k->kind) {
	case K_DIGEST:
	case K_AUTH:
	case K_CHAP_A:
	case K_TASK_REPORTING:
		if (k->kind == K_AUTH)
			n->auth_offered = true;
		if (k->kind == K_CHAP_A)
			n->chap_a_seen = true;
		negotiate_list(n, k, kv, out);
		return 0;
	case K_BOOL_AND:
	case K_BOOL_OR:
		b = parse_bool(kv);
		if (b < 0) {
			answer(out, k, "Reject");
			return 0;
		}
		b = k->kind == K_BOOL_AND ? (b && k->ours) : (b || k->ours);
		set_bool(n->p, k, b);
		answer(out, k, b ? "Yes" : "No");
		return 0;
	case K_NUM_MIN:
	case K_NUM_MAX:
	case K_DECL_NUM:
		negotiate_num(n, k, kv, out);
		return 0;
	case K_NAME:
	case K_ALIAS:
	case K_SESSION_TYPE:
		return negotiate_decl(n, k, kv);
	case K_CHAP_I:
	case K_CHAP_C:
	case K_CHAP_N:
	case K_CHAP_R:
		return negotiate_chap(n, k, kv);
	case K_SEND_TARGETS:
		if (kv->vlen > ISCSI_VALUE_MAX) {
			answer(out, k, "Reject");
			return 0;
		}
		memcpy(n->send_targets_val, kv->val, kv->vlen);
		n->send_targets_val[kv->vlen] = 0;
		n->send_targets = true;
		return 0;
	case K_IRRELEVANT:
	case K_TARGET_DECL:
		answer(out, k, "Irrelevant");
		return 0;
	}
	return 0;
}

/* The table row of a key, or NULL. */
static const struct key_def *key_find(const struct iscsi_kv *kv)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (strlen(keys[i].name) == kv->klen && memcmp(keys[i].name, kv->key, kv->klen) == 0)
			return &keys[i];
	return NULL;
}

/* Stage rules for a known key: 0 = negotiate, 1 = answered Reject, -1 = fail. */
static int stage_check(struct iscsi_neg *n, const struct key_def *k, struct iscsi_textbuf *out)
{
	if ((k->flags & KF_SECURITY) && n->stage != ISCSI_NEG_SECURITY) {
		if (n->stage == ISCSI_NEG_FFP) {
			answer(out, k, "Reject");
			return 1;
		}
		return fail(n, ISCSI_LOGIN_INITIATOR_ERROR, "security key %s outside the security stage", k->name);
	}
	if (((k->flags & KF_LOGIN) && n->stage == ISCSI_NEG_FFP) ||
	    ((k->flags & KF_FFP) && n->stage != ISCSI_NEG_FFP)) {
		answer(out, k, "Reject");
		return 1;
	}
	return 0;
}

/* Reset what one call reports (seen keys accumulate). */
static void clear_results(struct iscsi_neg *n)
{
	n->auth_offered = n->session_type_seen = n->target_name_seen = n->initiator_name_seen = false;
	n->chap_a_seen = n->chap_n_seen = n->chap_r_seen = n->chap_i_seen = n->chap_c_seen = false;
	n->send_targets = n->max_xmit_declared = false;
	n->fail = 0;
	n->why[0] = 0;
}

int iscsi_negotiate(struct iscsi_neg *n, const char *text, size_t len, struct iscsi_textbuf *out)
{
	struct iscsi_kv kv;
	size_t pos = 0;
	int r;
	clear_results(n);
	if (len && text[len - 1] != 0)
		return fail(n, ISCSI_LOGIN_INITIATOR_ERROR, "text does not end with a NUL");
	while ((r = iscsi_text_next(text, len, &pos, &kv)) > 0) {
		const struct key_def *k = key_find(&kv);
		if (!k) { /* unknown, including X- and X# extension keys */
			char name[ISCSI_KEY_MAX + 1];
			memcpy(name, kv.key, kv.klen);
			name[kv.klen] = 0;
			textbuf_add(out, name, "NotUnderstood");
			continue;
		}
		uint64_t bit = 1ull << (k - keys);
		if (n->seen & bit)
			return fail(n, ISCSI_LOGIN_INITIATOR_ERROR, "key %s offered twice", k->name);
		n->seen |= bit;
		int s = stage_check(n, k, out);
		if (s < 0)
			return -1;
		if (s == 0 && negotiate_one(n, k, &kv, out) < 0)
			return -1;
	}
	if (r < 0)
		return fail(n, ISCSI_LOGIN_INITIATOR_ERROR, "malformed key=value text");
	if (n->p->first_burst > n->p->max_burst)
		n->p->first_burst = n->p->max_burst;
	return 0;
}
