/* attach_nbd.c — client side of the NBD fixed-newstyle handshake.
 *
 * The exchange (doc/proto.md of the NBD project):
 *   server: "NBDMAGIC" "IHAVEOPT" u16 handshake flags
 *   client: u32 client flags
 *   client: "IHAVEOPT" u32 option u32 length, data (GO/INFO: u32 name length,
 *           name, u16 count, u16 info requests)
 *   server: replies "magic u32 option u32 type u32 length, data" until ACK
 *           or an error type (whose data is a message for humans)
 * Everything the server sends is length-checked against NBD_MAX_OPTION_LEN
 * and the number of replies is capped, so a broken or hostile peer gets a
 * clear error, never a hang (socket timeouts) or an overflow.
 */
#include "attach_nbd.h"
#include "nbd_wire.h"
#include "util.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_REPLIES 64  /* option replies to one GO/INFO before we call the server broken */

/* Format a message into err and return r (a negative errno). */
__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return r;
}

/* Set the receive and send timeouts of fd (0 = none). */
static void set_timeouts(int fd, unsigned secs)
{
	struct timeval tv = { .tv_sec = secs };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int attach_tcp_connect(const char *host, const char *port, unsigned timeout_s, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	int r = getaddrinfo(host, port, &hints, &res);
	if (r != 0)
		return fail(err, errlen, -EHOSTUNREACH, "cannot resolve %s:%s: %s", host, port, gai_strerror(r));
	int fd = -1, e = EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		set_timeouts(fd, timeout_s); /* Linux applies SO_SNDTIMEO to connect() too */
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno == EINPROGRESS ? ETIMEDOUT : errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return fail(err, errlen, -e, "cannot connect to bootlinkd at %s:%s: %s%s", host, port, strerror(e),
			    e == ECONNREFUSED ? " (is bootlinkd running and listening there? see listen/nbd)" : "");
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	return fd;
}

/* Read exactly len bytes; -errno, -ETIMEDOUT on timeout, -ECONNRESET on EOF. */
static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write exactly len bytes; -errno. */
static int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Send one option with its data. */
static int send_option(int fd, uint32_t opt, const void *data, uint32_t len)
{
	uint8_t h[16];
	put_be64(h, NBD_IHAVEOPT);
	put_be32(h + 8, opt);
	put_be32(h + 12, len);
	int r = write_full(fd, h, sizeof h);
	return r < 0 || !len ? r : write_full(fd, data, len);
}

/* Words for an option error reply type. */
static const char *rep_err_name(uint32_t type)
{
	switch (type) {
	case NBD_REP_ERR_UNSUP: return "unsupported option";
	case NBD_REP_ERR_POLICY: return "refused by policy";
	case NBD_REP_ERR_INVALID: return "invalid request";
	case NBD_REP_ERR_PLATFORM: return "not supported on this platform";
	case NBD_REP_ERR_TLS_REQD: return "TLS required";
	case NBD_REP_ERR_UNKNOWN: return "unknown export";
	case NBD_REP_ERR_SHUTDOWN: return "server shutting down";
	case NBD_REP_ERR_BLOCK_SIZE_REQD: return "block size required";
	case NBD_REP_ERR_TOO_BIG: return "request too big";
	default: return "error";
	}
}

/* The errno we report for an option error reply type. */
static int rep_err_errno(uint32_t type)
{
	switch (type) {
	case NBD_REP_ERR_UNKNOWN: return -ENOENT;
	case NBD_REP_ERR_POLICY: return -EACCES;
	case NBD_REP_ERR_UNSUP: return -ENOTSUP;
	case NBD_REP_ERR_SHUTDOWN: return -ESHUTDOWN;
	default: return -EPROTO;
	}
}

/* Take one NBD_REP_INFO payload into *out (unknown types are ignored, as the
 * spec asks). 0 or -EPROTO with a message. */
static int take_info(const uint8_t *d, uint32_t len, struct attach_export *out, int *have_export,
		     char *err, size_t errlen)
{
	if (len < 2)
		return fail(err, errlen, -EPROTO, "server sent an NBD_REP_INFO of %u bytes", len);
	uint16_t type = get_be16(d);
	switch (type) {
	case NBD_INFO_EXPORT:
		if (len != 12)
			return fail(err, errlen, -EPROTO, "server sent NBD_INFO_EXPORT of %u bytes (expected 12)", len);
		out->size = get_be64(d + 2);
		out->flags = get_be16(d + 10);
		*have_export = 1;
		break;
	case NBD_INFO_BLOCK_SIZE:
		if (len != 14)
			return fail(err, errlen, -EPROTO, "server sent NBD_INFO_BLOCK_SIZE of %u bytes (expected 14)", len);
		out->min_block = get_be32(d + 2);
		out->pref_block = get_be32(d + 6);
		out->max_block = get_be32(d + 10);
		break;
	}
	return 0;
}

int attach_handshake(int fd, const char *name, int go, struct attach_export *out, char *err, size_t errlen)
{
	static uint8_t data[NBD_MAX_OPTION_LEN];
	uint8_t g[18];
	size_t nlen = strlen(name);
	uint32_t opt = go ? NBD_OPT_GO : NBD_OPT_INFO;
	const char *oname = go ? "NBD_OPT_GO" : "NBD_OPT_INFO";
	int r, have_export = 0;

	memset(out, 0, sizeof *out);
	if (nlen > NBD_MAX_STRING)
		return fail(err, errlen, -ENAMETOOLONG, "export name is %zu bytes (at most %u)", nlen, NBD_MAX_STRING);
	if ((r = read_full(fd, g, sizeof g)) < 0)
		return fail(err, errlen, r, "no NBD greeting from the server: %s", strerror(-r));
	if (get_be64(g) != NBD_MAGIC || get_be64(g + 8) != NBD_IHAVEOPT)
		return fail(err, errlen, -EPROTO, "the server is not a newstyle NBD server (greeting %016llx %016llx)",
			    (unsigned long long)get_be64(g), (unsigned long long)get_be64(g + 8));
	uint16_t hflags = get_be16(g + 16);
	if (!(hflags & NBD_FLAG_FIXED_NEWSTYLE))
		return fail(err, errlen, -EPROTO, "the server does not offer fixed newstyle negotiation");
	uint8_t cf[4];
	put_be32(cf, NBD_FLAG_C_FIXED_NEWSTYLE | (hflags & NBD_FLAG_NO_ZEROES ? NBD_FLAG_C_NO_ZEROES : 0));
	if ((r = write_full(fd, cf, sizeof cf)) < 0)
		return fail(err, errlen, r, "sending client flags: %s", strerror(-r));

	/* GO/INFO data: name, then one information request (block sizes). */
	put_be32(data, (uint32_t)nlen);
	memcpy(data + 4, name, nlen);
	put_be16(data + 4 + nlen, 1);
	put_be16(data + 6 + nlen, NBD_INFO_BLOCK_SIZE);
	if ((r = send_option(fd, opt, data, (uint32_t)(8 + nlen))) < 0)
		return fail(err, errlen, r, "sending %s: %s", oname, strerror(-r));

	for (unsigned i = 0; i < MAX_REPLIES; i++) {
		uint8_t h[20];
		if ((r = read_full(fd, h, sizeof h)) < 0)
			return fail(err, errlen, r, "reading the reply to %s: %s", oname, strerror(-r));
		uint32_t ropt = get_be32(h + 8), type = get_be32(h + 12), len = get_be32(h + 16);
		if (get_be64(h) != NBD_REP_MAGIC || ropt != opt)
			return fail(err, errlen, -EPROTO, "bad option reply from the server (magic %016llx, option %u)",
				    (unsigned long long)get_be64(h), ropt);
		if (len > NBD_MAX_OPTION_LEN)
			return fail(err, errlen, -EPROTO, "server sent an option reply of %u bytes (at most %u)",
				    len, NBD_MAX_OPTION_LEN);
		if (len && (r = read_full(fd, data, len)) < 0)
			return fail(err, errlen, r, "reading the reply to %s: %s", oname, strerror(-r));
		if (type & NBD_REP_ERR(0)) {
			int msglen = (int)MIN(len, 400u);
			return fail(err, errlen, rep_err_errno(type), "export '%s': %s%s%.*s", name, rep_err_name(type),
				    msglen ? ": " : "", msglen, (const char *)data);
		}
		if (type == NBD_REP_INFO) {
			if ((r = take_info(data, len, out, &have_export, err, errlen)) < 0)
				return r;
			continue;
		}
		if (type != NBD_REP_ACK)
			continue; /* a reply type we never asked for: ignore, as the spec allows */
		if (!have_export)
			return fail(err, errlen, -EPROTO, "server acknowledged %s without NBD_INFO_EXPORT", oname);
		if (!go) {
			send_option(fd, NBD_OPT_ABORT, NULL, 0); /* polite end; its reply is optional */
			return 0;
		}
		set_timeouts(fd, 0); /* the kernel keeps its own request timeout */
		return 0;
	}
	return fail(err, errlen, -EPROTO, "server sent more than %u replies to %s", MAX_REPLIES, oname);
}

void attach_flags_str(uint16_t flags, char *buf, size_t len)
{
	static const struct { uint16_t bit; const char *name; } names[] = {
		{ NBD_FLAG_READ_ONLY, "read-only" }, { NBD_FLAG_SEND_FLUSH, "flush" }, { NBD_FLAG_SEND_FUA, "fua" },
		{ NBD_FLAG_ROTATIONAL, "rotational" }, { NBD_FLAG_SEND_TRIM, "trim" },
		{ NBD_FLAG_SEND_WRITE_ZEROES, "write-zeroes" }, { NBD_FLAG_SEND_DF, "df" },
		{ NBD_FLAG_CAN_MULTI_CONN, "multi-conn" }, { NBD_FLAG_SEND_CACHE, "cache" },
		{ NBD_FLAG_SEND_FAST_ZERO, "fast-zero" },
	};
	size_t o = 0;
	buf[0] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if ((flags & names[i].bit) && o < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? " " : "", names[i].name);
	if (!o)
		snprintf(buf, len, "none");
}
