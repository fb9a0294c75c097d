/* http_parse.c — the HTTP request-head parser and query decoding (pure;
 * unit-tested and fuzzed); see http.h. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "http.h"


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

