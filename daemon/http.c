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

#include "autoadd.h"
#include "bootev.h"
#include "clients.h"
#include "conn.h"
#include "daemon.h"
#include "db.h"
#include "exports.h"
#include "image.h"
#include "ipxe.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define SCRIPT_MAX 4096
#define RETRY_S 10
#define AUTOADD_RETRY_S 3 /* a new PC asks again this soon: the main thread registers it meanwhile */

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

void http_respond_error(struct conn *c, int status, bool head)
{
	respond_error(c, status, head);
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

/* The images client e may boot, default first: its linked image, then its
 * menu's. Returns how many (at most IPXE_MENU_MAX). */
static int boot_options(const struct export *e, const char *opt[IPXE_MENU_MAX])
{
	int n = 0;
	if (e->linked[0])
		opt[n++] = e->linked;
	for (int i = 0; i < e->nmenu && n < IPXE_MENU_MAX; i++)
		opt[n++] = e->menu[i];
	return n;
}

/* Answer a menu of the images client e may boot. */
static void menu_script(struct conn *c, struct ipxe_ctx *x, const struct export *e, bool head)
{
	struct ipxe_menu m = { .timeout_s = (unsigned)MAX(e->menu_timeout, 0) };
	struct export_ref refs[IPXE_MENU_MAX];
	bool held[IPXE_MENU_MAX] = { false };
	char script[SCRIPT_MAX];
	m.n = boot_options(e, m.image);
	for (int i = 0; i < m.n; i++) {
		held[i] = exports_lookup(m.image[i], strlen(m.image[i]), &refs[i]) == 0;
		m.description[i] = held[i] ? refs[i].e.description : "";
	}
	int n = ipxe_menu_script(x, &m, script, sizeof script);
	for (int i = 0; i < m.n; i++)
		if (held[i])
			exports_ref_release(&refs[i]);
	if (n < 0) {
		respond_error(c, 500, head);
		return;
	}
	conn_log(BL_INFO, c, "http: boot script for %s (%s): a menu of %d images (default %s, %d s)", x->mac,
		 x->client_name, m.n, m.image[0], e->menu_timeout);
	respond(c, 200, "text/plain", script, (size_t)n, head);
}

/* An unknown PC: queue its registration (clients/autoadd = 1) and ask it to
 * come back in a few seconds. */
static void autoadd_script(struct conn *c, struct ipxe_ctx *x, bool head)
{
	char script[SCRIPT_MAX];
	int r = autoadd_request(x->mac);
	if (r < 0)
		conn_log(BL_WARN, c, "http: %s: not queued for registration: %d PCs are waiting already", x->mac,
			 AUTOADD_QUEUE_MAX);
	int n = ipxe_autoadd_script(x, AUTOADD_RETRY_S, script, sizeof script);
	if (n < 0) {
		respond_error(c, 500, head);
		return;
	}
	conn_log(BL_INFO, c, "http: boot script for %s: unknown PC, registering it (clients/autoadd = 1)", x->mac);
	respond(c, 200, "text/plain", script, (size_t)n, head);
}

/* GET /ipxe?mac=MAC[&image=NAME]: the PC's script. With several images
 * offered (its linked one and its menu's) and no image= the answer is a
 * menu whose choice comes back as image=NAME; an image= the PC may not
 * boot gets an error screen. The chosen image is recorded
 * (exports_choose), so the PC's disk is over it for this boot. */
static void client_script(struct conn *c, const struct http_req *r, bool head)
{
	char raw[64], mac[MAC_STR_LEN], srv[256], hex[13] = "", tiqn[96], iiqn[96], err[1024] = "", want[64] = "";
	if (http_query_get(r->query, "mac", raw, sizeof raw) < 0 || mac_normalize(raw, mac) < 0) {
		respond_error(c, 400, head);
		return;
	}
	int qr = http_query_get(r->query, "image", want, sizeof want);
	if (qr == -EINVAL || (qr == 0 && !name_valid(want))) {
		respond_error(c, 400, head);
		return;
	}
	mac_hex(mac, hex);
	snprintf(tiqn, sizeof tiqn, "iqn.2026-11.org.bootlink:client.%s", hex);
	snprintf(iiqn, sizeof iiqn, "iqn.2026-11.org.bootlink:initiator.%s", hex);
	server_addr(c, r, srv, sizeof srv);
	char name[32];
	struct export_ref ref, iref;
	snprintf(name, sizeof name, "client/%s", mac);
	bool found = exports_lookup(name, strlen(name), &ref) == 0, ifound = false;
	struct ipxe_ctx x = { .server = srv, .http_port = port_http, .iscsi_port = port_iscsi, .nbd_port = port_nbd,
			      .mac = mac, .client_name = "", .image = "", .mode = "", .target_iqn = tiqn,
			      .initiator_iqn = iiqn, .error = err, .retry_s = RETRY_S };
	if (!found && live_get(&g_live.clients_autoadd)) {
		autoadd_script(c, &x, head);
		return;
	}
	if (!found)
		snprintf(err, sizeof err, "This PC (MAC %s) is not linked to an image. Link it with: "
			 "bootlinkctl client add %s --image NAME", mac, mac);
	const char *opt[IPXE_MENU_MAX];
	int nopt = found ? boot_options(&ref.e, opt) : 0;
	if (found && !want[0] && nopt > 1) {
		x.client_name = ref.e.client_name;
		menu_script(c, &x, &ref.e, head);
		exports_ref_release(&ref);
		return;
	}
	if (found && !want[0] && nopt == 1)
		snprintf(want, sizeof want, "%s", opt[0]);
	if (found && want[0] && !exports_allowed(&ref.e, want)) {
		snprintf(err, sizeof err, "Image %s is not offered to this PC (%s, MAC %s). Offer it with: "
			 "bootlinkctl client set %s --menu %s", want, ref.e.client_name, mac, mac, want);
	} else if (found && want[0]) {
		/* Record the choice, then look the client up again: its disk now
		 * follows the chosen image. */
		if (exports_choose(mac, strcmp(want, ref.e.linked) != 0 ? want : NULL) < 0)
			snprintf(err, sizeof err, "bootlinkd cannot record the choice of image %s now (too many); "
				 "try again later", want);
		exports_ref_release(&ref);
		found = exports_lookup(name, strlen(name), &ref) == 0;
		ifound = found && exports_lookup(want, strlen(want), &iref) == 0;
	}
	if (found && !err[0] && !ref.e.img)
		snprintf(err, sizeof err, "%s", ref.e.error);
	bool linux_boot = ifound && iref.e.boot == DB_BOOT_LINUX;
	if (linux_boot && !err[0] && iref.e.boot_error[0])
		snprintf(err, sizeof err, "%s", iref.e.boot_error);
	if (found) {
		x.client_name = ref.e.client_name;
		x.image = ref.e.img ? ref.e.image_name : "";
		x.mode = db_mode_name(ref.e.mode);
		x.san_drive = (unsigned)ref.e.san_drive;
		x.san_keep = ref.e.san_keep;
	}
	struct ipxe_linux l = { .initrd = linux_boot && iref.e.initrd[0], .image_cmdline = ifound ? iref.e.cmdline : "",
				.client_cmdline = found ? ref.e.cmdline : "" };
	char script[SCRIPT_MAX];
	int n = linux_boot && !err[0] ? ipxe_linux_script(&x, &l, script, sizeof script)
				      : ipxe_client_script(&x, script, sizeof script);
	const char *what = err[0] ? "not bootable" : linux_boot ? "linux" : "sanboot";
	if (!err[0]) {
		char note[BOOTEV_TEXT_MAX];
		snprintf(note, sizeof note, "boot script: %s, image %s", what, x.image[0] ? x.image : "none");
		clients_new_boot(mac, &c->peer_ip);
		bootev_note(mac, note);
	}
	if (found)
		conn_log(BL_INFO, c, "http: boot script for %s (%s): %s, image %s%s%s", mac, ref.e.client_name, what,
			 x.image[0] ? x.image : "none", err[0] ? ": " : "", err);
	else
		conn_log(BL_INFO, c, "http: boot script for %s: %s: unknown PC", mac, what);
	if (ifound)
		exports_ref_release(&iref);
	if (found)
		exports_ref_release(&ref);
	if (n < 0) {
		respond_error(c, 500, head);
		return;
	}
	respond(c, 200, "text/plain", script, (size_t)n, head);
}

/* GET /boot/<image>/vmlinuz|initrd: the image's boot file (http_file.c). */
static void boot_file(struct conn *c, const struct http_req *r, bool head)
{
	char image[64];
	const char *p = r->path + 6, *slash = strchr(p, '/');
	int st = 404;
	if (slash && (size_t)(slash - p) < sizeof image && (strcmp(slash + 1, "vmlinuz") == 0 || strcmp(slash + 1, "initrd") == 0)) {
		memcpy(image, p, (size_t)(slash - p));
		image[slash - p] = 0;
		st = http_file_start(c, image, slash + 1, head);
	}
	if (st)
		respond_error(c, st, head);
}

/* GET /metrics: the Prometheus text exposition (metrics.h). */
static void serve_metrics(struct conn *c, bool head)
{
	char *text = NULL;
	size_t len = 0;
	if (metrics_render(&text, &len) < 0) {
		respond_error(c, 500, head);
		return;
	}
	respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, head);
	free(text);
}

static void route(struct conn *c, const struct http_req *r)
{
	bool head = strcmp(r->method, "HEAD") == 0;
	if (strcmp(r->path, "/ipxe") == 0) {
		client_script(c, r, head);
	} else if (strncmp(r->path, "/boot/", 6) == 0) {
		boot_file(c, r, head);
	} else if (strcmp(r->path, "/metrics") == 0) {
		serve_metrics(c, head);
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
	if (c->close_after_send || c->proto_state) /* answered, or streaming a boot file */
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
	if (c->proto_state)
		return http_file_tick(c, now);
	uint64_t limit = (uint64_t)live_get(&g_live.handshake_timeout_s) * 1000000000ull;
	return now - c->started_ns > limit ? -1 : 0;
}

static void http_drain(struct conn *c)
{
	if (!c->close_after_send && !c->proto_state) /* a boot file being sent may finish */
		conn_close(c, "shutting down");
}

const struct proto http_proto = {
	.name = "http",
	.start = http_start,
	.on_data = http_on_data,
	.tick = http_tick,
	.drain = http_drain,
	.destroy = http_file_destroy,
};
