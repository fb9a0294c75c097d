/* fuzz_nbd_wire.c — libFuzzer harness for the NBD option and request parsers
 * (daemon/nbd_wire.c): every byte string a peer can send as INFO/GO data,
 * meta-context data, or a request header. The first byte picks the parser.
 * Asserts the invariants callers rely on (names and queries inside the
 * buffer, counts within their caps). */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "nbd_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *d = data + 1;
	uint32_t len = (uint32_t)(size - 1);
	switch (data[0] % 3) {
	case 0: {
		struct nbd_opt_export o;
		if (nbd_parse_info_opt(d, len, &o) == 0) {
			assert((const uint8_t *)o.name >= d && (const uint8_t *)o.name + o.name_len <= d + len);
			assert(o.ninfo <= NBD_MAX_INFO_REQS);
		}
		break;
	}
	case 1: {
		struct nbd_opt_meta m;
		if (nbd_parse_meta_opt(d, len, &m) == 0) {
			assert(m.nqueries <= NBD_MAX_META_QUERIES);
			for (uint32_t i = 0; i < m.nqueries; i++) {
				const char *q;
				uint32_t ql;
				nbd_meta_query(&m, i, &q, &ql);
				assert((const uint8_t *)q >= d && (const uint8_t *)q + ql <= d + len);
				(void)nbd_meta_selects_alloc(q, ql);
			}
		}
		break;
	}
	default:
		if (len >= NBD_REQUEST_SIZE) {
			struct nbd_request r;
			(void)nbd_parse_request(d, &r);
		}
		break;
	}
	return 0;
}
