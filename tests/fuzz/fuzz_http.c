/* fuzz_http.c — libFuzzer harness for the HTTP request-head parser, query
 * decoding and iPXE escaping (daemon/http_parse.c, daemon/ipxe.c): whatever
 * a PC's iPXE (or anyone on the LAN) sends to listen/http. Asserts that
 * parsed fields are NUL-terminated within their buffers and that escaped
 * text holds no character iPXE would interpret. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http.h"
#include "ipxe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_req r;
	char v[256], esc[256];
	if (size > HTTP_MAX_HEAD)
		return 0;
	if (http_parse((const char *)data, size, &r) == 0) {
		assert(memchr(r.path, 0, sizeof r.path) && memchr(r.query, 0, sizeof r.query));
		assert(memchr(r.host, 0, sizeof r.host) && r.path[0] == '/');
		if (http_query_get(r.query, "mac", v, sizeof v) == 0)
			assert(strlen(v) < sizeof v);
	}
	char s[512];
	size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
	memcpy(s, data, n);
	s[n] = 0;
	ipxe_escape(s, esc, sizeof esc);
	for (const char *p = esc; *p; p++)
		assert(*p != '$' && *p != '|' && *p != '&' && *p != '#' && *p != '\n' && *p != '{');
	return 0;
}
