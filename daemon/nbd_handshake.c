/* nbd_handshake.c — NBD fixed-newstyle negotiation (proto.md "Handshake").
 *
 * Server greeting → client flags → options until EXPORT_NAME or a
 * successful GO (or ABORT). Each option is read whole (capped at
 * NBD_MAX_OPTION_LEN), validated, then answered. Unknown options get
 * NBD_REP_ERR_UNSUP and haggling continues; an option too large to buffer
 * gets NBD_REP_ERR_TOO_BIG and the connection is closed (its data cannot
 * be skipped cheaply and a 4 GiB option is not a client we want).
 *
 * TLS (nbd/tls, proto.md "TLS support"): off is NOTLS (STARTTLS gets
 * ERR_POLICY); on is SELECTIVETLS with no TLS-only export (the client
 * chooses); require is FORCEDTLS: before TLS every option but STARTTLS and
 * ABORT gets ERR_TLS_REQD, and EXPORT_NAME (which cannot fail) closes.
 * After STARTTLS's ACK, conn.c runs the TLS handshake and haggling goes on
 * inside TLS; this file sees plaintext either way.
 *
 * Peer quirks:
 *  - qemu never asks for NBD_INFO_EXPORT, so it is always sent (the spec
 *    requires it anyway).
 *  - nbd-client (the kernel's user) may use EXPORT_NAME, which cannot
 *    fail gracefully: an unknown name there closes the connection.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients.h"
#include "log.h"
#include "nbd.h"
#include "nbd_wire.h"
#include "tls.h"
#include "util.h"

#define OPT_HDR 16
#define OPT_STARTTLS 3   /* handle_option(): STARTTLS answered, start TLS */

int nbd_hs_start(struct nbd_conn *n)
{
	uint8_t g[18];
	put_be64(g, NBD_MAGIC);
	put_be64(g + 8, NBD_IHAVEOPT);
	put_be16(g + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	n->phase = NBD_PH_CLIENT_FLAGS;
	n->c->rx_need = 4;
	return conn_send_copy(n->c, g, sizeof g);
}

/* Queue one option reply with an optional payload (copied). */
static int opt_reply(struct nbd_conn *n, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
	struct txmsg *m = malloc(sizeof *m + 20 + len);
	if (!m)
		return -ENOMEM;
	uint8_t *p = (uint8_t *)(m + 1);
	nbd_build_opt_reply(p, opt, type, len);
	if (len)
		memcpy(p + 20, data, len);
	m->iov = m->iov_inline;
	m->iov[0].iov_base = p;
	m->iov[0].iov_len = 20 + len;
	m->niov = 1;
	m->release = (void (*)(struct txmsg *))free;
	conn_send(n->c, m);
	return 0;
}

/* An error reply whose payload is a human-readable message (logged too). */
static int opt_error(struct nbd_conn *n, uint32_t opt, uint32_t type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int opt_error(struct nbd_conn *n, uint32_t opt, uint32_t type, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (len < 0)
		len = 0;
	if (len >= (int)sizeof msg)
		len = sizeof msg - 1;
	nbd_log(BL_INFO, n, "option %u refused: %s", opt, msg);
	return opt_reply(n, opt, type, msg, (uint32_t)len);
}

/* Resolve name for INFO/GO/meta; on failure reply the error and return -1. */
static int resolve(struct nbd_conn *n, uint32_t opt, const char *name, uint32_t len, struct export_ref *ref)
{
	if (exports_lookup(name, len, ref) < 0)
		return opt_error(n, opt, NBD_REP_ERR_UNKNOWN, "no export named '%.*s' (list them with NBD_OPT_LIST)",
				 (int)MIN(len, 200), name), -1;
	if (!ref->e.img) {
		opt_error(n, opt, NBD_REP_ERR_UNKNOWN, "export '%s' is not available: %s", ref->e.name, ref->e.error);
		exports_ref_release(ref);
		return -1;
	}
	char why[320];
	if (ref->e.kind == EXPORT_CLIENT && clients_check_address(&ref->e, &n->c->peer_ip, why, sizeof why) < 0) {
		opt_error(n, opt, NBD_REP_ERR_POLICY, "export '%s': %s", ref->e.name, why);
		exports_ref_release(ref);
		return -1;
	}
	return 0;
}

static void list_one(const struct export *e, void *arg)
{
	struct nbd_conn *n = arg;
	char why[320];
	if (!e->img)
		return;
	/* A client's disk bound to another address is not this peer's to see. */
	if (e->kind == EXPORT_CLIENT && clients_check_address(e, &n->c->peer_ip, why, sizeof why) < 0)
		return;
	uint8_t buf[4 + sizeof e->name];
	uint32_t nl = strlen(e->name);
	put_be32(buf, nl);
	memcpy(buf + 4, e->name, nl);
	opt_reply(n, NBD_OPT_LIST, NBD_REP_SERVER, buf, 4 + nl);
}

static int opt_list(struct nbd_conn *n, uint32_t len)
{
	if (len != 0)
		return opt_error(n, NBD_OPT_LIST, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
	exports_foreach(list_one, n);
	return opt_reply(n, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

static void send_info(struct nbd_conn *n, uint32_t opt, uint16_t type, const struct export_ref *ref, uint16_t tflags)
{
	uint8_t b[2 + 256 + 12];
	uint32_t l = 2;
	put_be16(b, type);
	switch (type) {
	case NBD_INFO_EXPORT:
		put_be64(b + 2, ref->e.img->size);
		put_be16(b + 10, tflags);
		l = 12;
		break;
	case NBD_INFO_NAME:
		l += snprintf((char *)b + 2, sizeof b - 2, "%s", ref->e.name);
		break;
	case NBD_INFO_DESCRIPTION:
		l += snprintf((char *)b + 2, sizeof b - 2, "%s", ref->e.description);
		break;
	case NBD_INFO_BLOCK_SIZE:
		put_be32(b + 2, 1);               /* minimum: any byte alignment works */
		put_be32(b + 6, NBD_PREF_BLOCK);  /* preferred */
		put_be32(b + 10, NBD_MAX_REQUEST);
		l = 14;
		break;
	default:
		return; /* unknown info requests are ignored, as the spec says */
	}
	opt_reply(n, opt, NBD_REP_INFO, b, l);
}

/* NBD_OPT_INFO and NBD_OPT_GO. Returns 1 when GO succeeded (enter transmission). */
static int opt_info_go(struct nbd_conn *n, uint32_t opt, const uint8_t *d, uint32_t len)
{
	struct nbd_opt_export o;
	int r = nbd_parse_info_opt(d, len, &o);
	if (r == -E2BIG)
		return opt_error(n, opt, NBD_REP_ERR_TOO_BIG, "too many information requests (max %u)", NBD_MAX_INFO_REQS);
	if (r < 0)
		return opt_error(n, opt, NBD_REP_ERR_INVALID, "malformed %s request", opt == NBD_OPT_GO ? "GO" : "INFO");
	struct export_ref ref;
	if (resolve(n, opt, o.name, o.name_len, &ref) < 0)
		return 0;
	struct vdisk probe = { .size = ref.e.img->size, .read_only = ref.e.kind == EXPORT_IMAGE, .multi_conn = true };
	uint16_t tflags = nbd_tflags(n, &probe);
	send_info(n, opt, NBD_INFO_EXPORT, &ref, tflags);
	for (unsigned i = 0; i < o.ninfo; i++)
		if (o.info[i] != NBD_INFO_EXPORT)
			send_info(n, opt, o.info[i], &ref, tflags);
	opt_reply(n, opt, NBD_REP_ACK, NULL, 0);
	if (opt == NBD_OPT_INFO) {
		exports_ref_release(&ref);
		return 0;
	}
	/* A meta context chosen for another export does not carry over. */
	if (n->meta_alloc && strcmp(n->meta_export, ref.e.name) != 0)
		n->meta_alloc = false;
	n->exp = ref;
	n->has_export = true;
	return 1;
}

static int opt_export_name(struct nbd_conn *n, const uint8_t *d, uint32_t len)
{
	struct export_ref ref;
	char why[320] = "";
	int r = exports_lookup((const char *)d, len, &ref);
	if (r == 0 && ref.e.img && ref.e.kind == EXPORT_CLIENT &&
	    clients_check_address(&ref.e, &n->c->peer_ip, why, sizeof why) < 0) {
		exports_ref_release(&ref);
		r = -EACCES;
	}
	if (r < 0 || !ref.e.img) {
		conn_log(BL_INFO, n->c, "NBD_OPT_EXPORT_NAME '%.*s': %s; closing (this option cannot carry an error)",
			 (int)MIN(len, 200), (const char *)d,
			 why[0] ? why : r < 0 ? "no such export" : ref.e.error);
		if (r == 0)
			exports_ref_release(&ref);
		return -1;
	}
	n->exp = ref;
	n->has_export = true;
	n->meta_alloc = false;
	struct vdisk probe = { .size = ref.e.img->size, .read_only = ref.e.kind == EXPORT_IMAGE, .multi_conn = true };
	uint8_t b[10 + 124] = { 0 };
	put_be64(b, ref.e.img->size);
	put_be16(b + 8, nbd_tflags(n, &probe));
	conn_send_copy(n->c, b, n->no_zeroes ? 10 : sizeof b);
	return 1;
}

static int opt_meta(struct nbd_conn *n, uint32_t opt, const uint8_t *d, uint32_t len)
{
	struct nbd_opt_meta m;
	if (opt == NBD_OPT_SET_META_CONTEXT && !n->structured)
		return opt_error(n, opt, NBD_REP_ERR_INVALID, "negotiate structured replies before SET_META_CONTEXT");
	int r = nbd_parse_meta_opt(d, len, &m);
	if (r == -E2BIG)
		return opt_error(n, opt, NBD_REP_ERR_TOO_BIG, "too many queries (max %u)", NBD_MAX_META_QUERIES);
	if (r < 0)
		return opt_error(n, opt, NBD_REP_ERR_INVALID, "malformed meta context request");
	struct export_ref ref;
	if (resolve(n, opt, m.name, m.name_len, &ref) < 0)
		return 0;
	bool alloc = opt == NBD_OPT_LIST_META_CONTEXT && m.nqueries == 0;
	for (uint32_t i = 0; i < m.nqueries; i++) {
		const char *q;
		uint32_t ql;
		nbd_meta_query(&m, i, &q, &ql);
		alloc |= nbd_meta_selects_alloc(q, ql);
	}
	if (alloc) {
		static const char ctx[] = "base:allocation";
		uint8_t b[4 + sizeof ctx];
		put_be32(b, opt == NBD_OPT_SET_META_CONTEXT ? 1 : 0);
		memcpy(b + 4, ctx, sizeof ctx - 1);
		opt_reply(n, opt, NBD_REP_META_CONTEXT, b, 4 + sizeof ctx - 1);
	}
	if (opt == NBD_OPT_SET_META_CONTEXT) {
		n->meta_alloc = alloc;
		snprintf(n->meta_export, sizeof n->meta_export, "%s", ref.e.name);
	}
	exports_ref_release(&ref);
	return opt_reply(n, opt, NBD_REP_ACK, NULL, 0);
}

/* NBD_OPT_STARTTLS: ACK and OPT_STARTTLS when TLS is configured and not running yet. */
static int opt_starttls(struct nbd_conn *n, uint32_t len)
{
	if (tls_mode() == CONF_TLS_OFF)
		return opt_error(n, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY, "TLS is not configured on this server");
	if (conn_tls(n->c))
		return opt_error(n, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, "TLS is already running");
	if (len)
		return opt_error(n, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
	opt_reply(n, NBD_OPT_STARTTLS, NBD_REP_ACK, NULL, 0);
	return OPT_STARTTLS;
}

/* Handle one complete option. Returns 0 (continue), 1 (enter transmission),
 * OPT_STARTTLS (start TLS), -1 (close), -2 (ABORT). */
static int handle_option(struct nbd_conn *n, uint32_t opt, const uint8_t *d, uint32_t len)
{
	if (tls_mode() == CONF_TLS_REQUIRE && !conn_tls(n->c) && opt != NBD_OPT_STARTTLS && opt != NBD_OPT_ABORT) {
		if (opt == NBD_OPT_EXPORT_NAME) {
			conn_log(BL_INFO, n->c, "NBD_OPT_EXPORT_NAME before STARTTLS, and nbd/tls is require; closing "
				 "(this option cannot carry an error)");
			return -1;
		}
		return opt_error(n, opt, NBD_REP_ERR_TLS_REQD, "TLS is required: send NBD_OPT_STARTTLS first");
	}
	switch (opt) {
	case NBD_OPT_EXPORT_NAME:
		return opt_export_name(n, d, len);
	case NBD_OPT_ABORT:
		opt_reply(n, opt, NBD_REP_ACK, NULL, 0);
		return -2;
	case NBD_OPT_LIST:
		return opt_list(n, len);
	case NBD_OPT_STARTTLS:
		return opt_starttls(n, len);
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return opt_info_go(n, opt, d, len);
	case NBD_OPT_STRUCTURED_REPLY:
		if (len)
			return opt_error(n, opt, NBD_REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
		n->structured = true;
		return opt_reply(n, opt, NBD_REP_ACK, NULL, 0);
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		return opt_meta(n, opt, d, len);
	case NBD_OPT_EXTENDED_HEADERS:
		return opt_error(n, opt, NBD_REP_ERR_UNSUP, "extended headers are not supported");
	default:
		return opt_error(n, opt, NBD_REP_ERR_UNSUP, "option %u is not supported", opt);
	}
}

static int client_flags(struct nbd_conn *n)
{
	uint32_t f = get_be32(conn_rx_data(n->c));
	conn_rx_consume(n->c, 4);
	if (f & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
		conn_log(BL_INFO, n->c, "unknown client flags 0x%x (not an NBD client?); closing", f);
		return -1;
	}
	n->no_zeroes = f & NBD_FLAG_C_NO_ZEROES;
	n->phase = NBD_PH_OPTIONS;
	n->c->rx_need = OPT_HDR;
	return 0;
}

int nbd_hs_data(struct nbd_conn *n)
{
	struct conn *c = n->c;
	if (n->phase == NBD_PH_CLIENT_FLAGS) {
		if (conn_rx_len(c) < 4)
			return 0;
		if (client_flags(n) < 0)
			return -1;
	}
	while (n->phase == NBD_PH_OPTIONS && conn_rx_len(c) >= OPT_HDR) {
		const uint8_t *h = conn_rx_data(c);
		uint32_t opt = get_be32(h + 8), len = get_be32(h + 12);
		if (get_be64(h) != NBD_IHAVEOPT) {
			conn_log(BL_INFO, c, "bad option magic; closing");
			return -1;
		}
		if (++n->nopts > NBD_MAX_OPTIONS) {
			opt_error(n, opt, NBD_REP_ERR_POLICY, "too many options (max %u)", NBD_MAX_OPTIONS);
			n->phase = NBD_PH_DONE;
			conn_close_after_send(c);
			return 0;
		}
		if (len > NBD_MAX_OPTION_LEN) {
			if (opt != NBD_OPT_EXPORT_NAME)
				opt_error(n, opt, NBD_REP_ERR_TOO_BIG, "option data of %u bytes exceeds the limit of %u",
					  len, NBD_MAX_OPTION_LEN);
			n->phase = NBD_PH_DONE;
			conn_close_after_send(c);
			return 0;
		}
		if (conn_rx_len(c) < OPT_HDR + len) {
			c->rx_need = OPT_HDR + len;
			return 0;
		}
		int r = handle_option(n, opt, h + OPT_HDR, len);
		conn_rx_consume(c, OPT_HDR + len);
		c->rx_need = OPT_HDR;
		if (r == -2) {
			n->phase = NBD_PH_DONE;
			conn_close_after_send(c);
			return 0;
		}
		if (r < 0)
			return -1;
		if (r == 1)
			return nbd_xmit_begin(n);
		if (r == OPT_STARTTLS)
			return conn_starttls(c) < 0 ? -1 : 0; /* reading resumes under TLS */
	}
	return 0;
}
