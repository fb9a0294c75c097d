/* http.h — the small HTTP/1.1 endpoint iPXE talks to (listen/http).
 *
 *   GET /ipxe?mac=MAC[&uuid=..&serial=..&ip=..]   that client's iPXE script
 *   GET /boot.ipxe                                 the first script (chains to /ipxe)
 *   GET /metrics                                   Prometheus text metrics (metrics.h)
 *
 * Only GET (and HEAD) of these paths; a request head is capped at
 * HTTP_MAX_HEAD bytes; one request per connection (Connection: close).
 * Nothing a client sends is ever echoed into a script unescaped: the MAC is
 * parsed into its canonical form and other parameters are only logged.
 * Fetching /ipxe marks a new boot of that client (clients_new_boot).
 */
#ifndef BL_HTTP_H
#define BL_HTTP_H

#include <stddef.h>

extern const struct proto http_proto;

#define HTTP_MAX_HEAD 8192u

/* Ports the scripts point clients at (the daemon's bound listeners). */
void http_set_ports(unsigned nbd_port, unsigned iscsi_port, unsigned http_port);

/* A parsed request head (pure; tests/unit/test_http.c). */
struct http_req {
	char method[8];
	char path[256];          /* decoded path, no query */
	char query[1024];        /* raw query string */
	char host[256];          /* Host header without the port */
	int minor;               /* HTTP/1.x */
};
/* Parse a complete head (ending in CRLFCRLF) of len bytes. Returns 0, or an
 * HTTP status to answer with (400, 405, 414, 431, 505). */
int http_parse(const char *buf, size_t len, struct http_req *r);
/* Value of key in a query string, percent-decoded into out. 0 or -ENOENT/-EINVAL. */
int http_query_get(const char *query, const char *key, char *out, size_t len);

/* ---- boot files (daemon/http_file.c) ----
 *   GET|HEAD /boot/<image>/vmlinuz   the kernel of a Linux image
 *   GET|HEAD /boot/<image>/initrd    its initrd
 * <image> is a key into the export table, never a path. */
struct conn;
#include <stdbool.h>
#include <stdint.h>
/* Start answering with the file (which: "vmlinuz" or "initrd"): 0 when the
 * answer is under way (c->proto_state is the stream), else the HTTP status
 * to answer with (404, 500), logged. */
int http_file_start(struct conn *c, const char *image, const char *which, bool head);
/* A stream that made no progress for limits/handshake_timeout_s: -1 (close). */
int http_file_tick(struct conn *c, uint64_t now);
/* Free the stream (the connection's destroy). */
void http_file_destroy(struct conn *c);
/* Answer status with a short text body and close (http.c). */
void http_respond_error(struct conn *c, int status, bool head);

#endif
