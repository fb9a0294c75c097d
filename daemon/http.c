/* http.c — the HTTP/1.1 endpoint for iPXE; see http.h.
 *
 * A connection reads one request head (at most HTTP_MAX_HEAD bytes, within
 * limits/handshake_timeout_s), answers it, and closes once the answer is
 * sent. Parsing is pure (http_parse) so it can be unit-tested and fuzzed.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "clients.h"
#include "conn.h"
#include "daemon.h"
#include "db.h"
#include "exports.h"
#include "image.h"
#include "ipxe.h"
#include "log.h"
#include "util.h"

#define SCRIPT_MAX 4096
#define RETRY_S 10

static unsigned port_nbd, port_iscsi, port_http;

void http_set_ports(unsigned nbd_port, unsigned iscsi_port, unsigned http_port)
{
	port_nbd = nbd_port;
	port_iscsi = iscsi_port;
	port_http = http_port;
}

/* ---- parsing ---- */

static int hexv(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode [s, s+n) into out; NUL and control bytes are refused. */
static int decode(const char *s, size_t n, char *out, size_t len)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];
		if (ch == '%') {
			if (i + 2 >= n)
				return -EINVAL;
			int h = hexv(s[i + 1]), l = hexv(s[i + 2]);
			if (h < 0 || l < 0)
				return -EINVAL;
			ch = h << 4 | l;
			i += 2;
		} else if (ch == '+') {
			ch = ' ';
		}
		if (ch < 0x20 || ch == 0x7f || k + 1 >= len)
			return -EINVAL;
		out[k++] = (char)ch;
	}
	out[k] = 0;
	return 0;
}

int http_query_get(const char *q, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);
	for (const char *p = q; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t seg = amp ? (size_t)(amp - p) : strlen(p);
		if (seg > kl && strncmp(p, key, kl) == 0 && p[kl] == '=')
			return decode(p + kl + 1, seg - kl - 1, out, len);
		p = amp ? amp + 1 : NULL;
	}
	return -ENOENT;
}

/* One header line "Name: value" (no CRLF). */
static void header(struct http_req *r, const char *l, size_t n)
{
	static const char host[] = "host:";
	if (n <= sizeof host - 1 || strncasecmp(l, host, sizeof host - 1) != 0)
		return;
	const char *v = l + sizeof host - 1;
	while (v < l + n && (*v == ' ' || *v == '\t'))
		v++;
	size_t vl = (size_t)(l + n - v);
	const char *colon = memchr(v, ':', vl);
	if (*v != '[' && colon)
		vl = (size_t)(colon - v);
	if (vl >= sizeof r->host)
		return;
	memcpy(r->host, v, vl);
	r->host[vl] = 0;
	for (char *p = r->host; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".-:[]", *p)) {
			r->host[0] = 0; /* not a host name: ignore it */
			return;
		}
}

int http_parse(const char *buf, size_t len, struct http_req *r)
{
	memset(r, 0, sizeof *r);
	const char *eol = memmem(buf, len, "\r\n", 2);
	if (!eol)
		return 400;
	/* Request line: METHOD SP TARGET SP HTTP/1.x */
	const char *sp1 = memchr(buf, ' ', (size_t)(eol - buf));
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || (size_t)(sp1 - buf) >= sizeof r->method)
		return 400;
	memcpy(r->method, buf, (size_t)(sp1 - buf));
	if ((size_t)(eol - sp2 - 1) != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)sp2[8]))
		return memchr(sp2 + 1, '/', (size_t)(eol - sp2 - 1)) ? 505 : 400;
	r->minor = sp2[8] - '0';
	const char *t = sp1 + 1;
	size_t tl = (size_t)(sp2 - t);
	const char *qm = memchr(t, '?', tl);
	size_t pl = qm ? (size_t)(qm - t) : tl;
	if (pl >= sizeof r->path || (qm && tl - pl - 1 >= sizeof r->query))
		return 414;
	if (t[0] != '/' || decode(t, pl, r->path, sizeof r->path) < 0)
		return 400;
	if (qm) {
		memcpy(r->query, qm + 1, tl - pl - 1);
		r->query[tl - pl - 1] = 0;
	}
	/* Headers: only Host matters. */
	for (const char *l = eol + 2; l < buf + len;) {
		const char *e = memmem(l, (size_t)(buf + len - l), "\r\n", 2);
		if (!e || e == l)
			break;
		header(r, l, (size_t)(e - l));
		l = e + 2;
	}
	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
		return 405;
	return 0;
}

/* ---- answering ---- */

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 505: return "HTTP Version Not Supported";
	}
	return "Internal Server Error";
}

static void respond(struct conn *c, int status, const char *type, const char *body, size_t blen, bool head)
{
	char h[512];
	int n = snprintf(h, sizeof h,
			 "HTTP/1.1 %d %s\r\nServer: bootlinkd\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
			 status, reason(status), type, blen);
	conn_send_copy(c, h, (size_t)n);
	if (!head && blen)
		conn_send_copy(c, body, blen);
	conn_close_after_send(c);
}

static void respond_error(struct conn *c, int status, bool head)
{
	char body[128];
	int n = snprintf(body, sizeof body, "%d %s\n", status, reason(status));
	conn_log(BL_INFO, c, "http: answered %d %s", status, reason(status));
	respond(c, status, "text/plain", body, (size_t)n, head);
}

/* The address to put in scripts: the Host the client used, else our socket's. */
static void server_addr(struct conn *c, const struct http_req *r, char *out, size_t len)
{
	if (r->host[0]) {
		snprintf(out, len, "%s", r->host);
		return;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char a[80];
	if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
		addr_format((struct sockaddr *)&ss, a, sizeof a);
		char *colon = strrchr(a, ':');
		if (colon)
			*colon = 0;
		snprintf(out, len, "%s", a);
	} else {
		snprintf(out, len, "0.0.0.0");
	}
}

static void client_script(struct conn *c, const struct http_req *r, bool head)
{
	char raw[64], mac[MAC_STR_LEN], srv[256], hex[13] = "", tiqn[96], iiqn[96], err[512] = "";
	if (http_query_get(r->query, "mac", raw, sizeof raw) < 0 || mac_normalize(raw, mac) < 0) {
		respond_error(c, 400, head);
		return;
	}
	for (int i = 0, k = 0; mac[i] && k < 12; i++)
		if (mac[i] != ':')
			hex[k++] = mac[i];
	snprintf(tiqn, sizeof tiqn, "iqn.2026-11.org.bootlink:client.%s", hex);
	snprintf(iiqn, sizeof iiqn, "iqn.2026-11.org.bootlink:initiator.%s", hex);
	server_addr(c, r, srv, sizeof srv);
	char name[32];
	struct export_ref ref;
	snprintf(name, sizeof name, "client/%s", mac);
	bool found = exports_lookup(name, strlen(name), &ref) == 0;
	if (!found)
		snprintf(err, sizeof err, "This PC (MAC %s) is not linked to an image. Link it with: "
			 "bootlinkctl client add %s --image NAME", mac, mac);
	else if (!ref.e.img)
		snprintf(err, sizeof err, "%s", ref.e.error);
	char cname[64] = "";
	if (found)
		sscanf(ref.e.description, "client %63s", cname);
	struct ipxe_ctx x = { .server = srv, .http_port = port_http, .iscsi_port = port_iscsi, .nbd_port = port_nbd,
			      .mac = mac, .client_name = cname, .image = found && ref.e.img ? ref.e.img->name : "",
			      .mode = found ? db_mode_name(ref.e.mode) : "", .target_iqn = tiqn, .initiator_iqn = iiqn,
			      .error = err, .retry_s = RETRY_S };
	char script[SCRIPT_MAX];
	int n = ipxe_client_script(&x, script, sizeof script);
	if (found)
		exports_ref_release(&ref);
	if (n < 0) {
		respond_error(c, 500, head);
		return;
	}
	if (!err[0])
		clients_new_boot(mac);
	conn_log(BL_INFO, c, "http: boot script for %s: %s", mac, err[0] ? "not bootable" : "sanboot");
	respond(c, 200, "text/plain", script, (size_t)n, head);
}

static void route(struct conn *c, const struct http_req *r)
{
	bool head = strcmp(r->method, "HEAD") == 0;
	if (strcmp(r->path, "/ipxe") == 0) {
		client_script(c, r, head);
	} else if (strcmp(r->path, "/boot.ipxe") == 0) {
		char srv[256], script[SCRIPT_MAX];
		server_addr(c, r, srv, sizeof srv);
		int n = ipxe_boot_script(srv, port_http, script, sizeof script);
		if (n < 0)
			respond_error(c, 500, head);
		else
			respond(c, 200, "text/plain", script, (size_t)n, head);
	} else {
		respond_error(c, 404, head);
	}
}

static int http_start(struct conn *c)
{
	c->proto_state = NULL;
	return 0;
}

static int http_on_data(struct conn *c)
{
	if (c->close_after_send)
		return 0;
	const char *buf = (const char *)conn_rx_data(c);
	size_t len = conn_rx_len(c);
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end) {
		if (len >= HTTP_MAX_HEAD) {
			respond_error(c, 431, false);
			return 0;
		}
		c->rx_need = len + 1;
		return 0;
	}
	struct http_req r;
	size_t hl = (size_t)(end - buf) + 4;
	int st = hl > HTTP_MAX_HEAD ? 431 : http_parse(buf, hl, &r);
	conn_rx_consume(c, conn_rx_len(c));
	if (st)
		respond_error(c, st, false);
	else
		route(c, &r);
	return 0;
}

static int http_tick(struct conn *c, uint64_t now)
{
	uint64_t limit = (uint64_t)live_get(&g_live.handshake_timeout_s) * 1000000000ull;
	return now - c->started_ns > limit ? -1 : 0;
}

static void http_drain(struct conn *c)
{
	if (!c->close_after_send)
		conn_close(c, "shutting down");
}

const struct proto http_proto = {
	.name = "http",
	.start = http_start,
	.on_data = http_on_data,
	.tick = http_tick,
	.drain = http_drain,
};
