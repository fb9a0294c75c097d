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
	mac_hex(mac, hex);
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
