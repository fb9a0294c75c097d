/* nbd_wire.c — pure NBD parsers and builders; see nbd_wire.h. */
#include "nbd_wire.h"

#include <errno.h>
#include <string.h>

#include "util.h"

uint32_t nbd_errno(int e)
{
	switch (-e) {
	case 0: return 0;
	case EPERM: case EROFS: return NBD_EPERM;
	case ENOMEM: return NBD_ENOMEM;
	case EINVAL: case ERANGE: return NBD_EINVAL;
	case ENOSPC: case EDQUOT: case EFBIG: return NBD_ENOSPC;
	case EOVERFLOW: return NBD_EOVERFLOW;
	case ENOTSUP: return NBD_ENOTSUP;
	case ESHUTDOWN: return NBD_ESHUTDOWN;
	default: return NBD_EIO;
	}
}

int nbd_parse_info_opt(const uint8_t *d, uint32_t len, struct nbd_opt_export *o)
{
	if (len < 4)
		return -EINVAL;
	uint32_t nl = get_be32(d);
	if (nl > NBD_MAX_STRING || (uint64_t)nl + 6 > len)
		return -EINVAL;
	o->name = (const char *)d + 4;
	o->name_len = nl;
	uint16_t n = get_be16(d + 4 + nl);
	if ((uint64_t)4 + nl + 2 + 2ull * n != len)
		return -EINVAL;
	if (n > NBD_MAX_INFO_REQS)
		return -E2BIG;
	o->ninfo = n;
	for (uint16_t i = 0; i < n; i++)
		o->info[i] = get_be16(d + 4 + nl + 2 + 2 * i);
	return memchr(o->name, 0, nl) ? -EINVAL : 0;
}

int nbd_parse_meta_opt(const uint8_t *d, uint32_t len, struct nbd_opt_meta *m)
{
	if (len < 8)
		return -EINVAL;
	uint32_t nl = get_be32(d);
	if (nl > NBD_MAX_STRING || (uint64_t)nl + 8 > len)
		return -EINVAL;
	m->name = (const char *)d + 4;
	m->name_len = nl;
	m->nqueries = get_be32(d + 4 + nl);
	m->queries = d + 8 + nl;
	m->queries_len = len - 8 - nl;
	if (m->nqueries > NBD_MAX_META_QUERIES)
		return -E2BIG;
	/* Walk the queries once so nbd_meta_query() can trust the layout. */
	uint32_t pos = 0;
	for (uint32_t i = 0; i < m->nqueries; i++) {
		if (m->queries_len - pos < 4)
			return -EINVAL;
		uint32_t ql = get_be32(m->queries + pos);
		if (ql > NBD_MAX_STRING || ql > m->queries_len - pos - 4)
			return -EINVAL;
		pos += 4 + ql;
	}
	return pos == m->queries_len ? 0 : -EINVAL;
}

void nbd_meta_query(const struct nbd_opt_meta *m, uint32_t i, const char **q, uint32_t *qlen)
{
	uint32_t pos = 0;
	for (;;) {
		uint32_t ql = get_be32(m->queries + pos);
		if (i-- == 0) {
			*q = (const char *)m->queries + pos + 4;
			*qlen = ql;
			return;
		}
		pos += 4 + ql;
	}
}

int nbd_meta_selects_alloc(const char *q, uint32_t qlen)
{
	static const char full[] = "base:allocation", ns[] = "base:";
	return (qlen == sizeof full - 1 && memcmp(q, full, qlen) == 0) ||
	       (qlen == sizeof ns - 1 && memcmp(q, ns, qlen) == 0);
}

int nbd_parse_request(const uint8_t h[NBD_REQUEST_SIZE], struct nbd_request *r)
{
	if (get_be32(h) != NBD_REQUEST_MAGIC)
		return -EPROTO;
	r->flags = get_be16(h + 4);
	r->type = get_be16(h + 6);
	r->cookie = get_be64(h + 8);
	r->offset = get_be64(h + 16);
	r->length = get_be32(h + 24);
	return 0;
}

size_t nbd_build_opt_reply(uint8_t o[20], uint32_t opt, uint32_t type, uint32_t len)
{
	put_be64(o, NBD_REP_MAGIC);
	put_be32(o + 8, opt);
	put_be32(o + 12, type);
	put_be32(o + 16, len);
	return 20;
}

size_t nbd_build_simple_reply(uint8_t o[NBD_SIMPLE_REPLY_SIZE], uint32_t error, uint64_t cookie)
{
	put_be32(o, NBD_SIMPLE_REPLY_MAGIC);
	put_be32(o + 4, error);
	put_be64(o + 8, cookie);
	return NBD_SIMPLE_REPLY_SIZE;
}

size_t nbd_build_chunk(uint8_t o[NBD_CHUNK_HDR_SIZE], uint16_t flags, uint16_t type,
		       uint64_t cookie, uint32_t len)
{
	put_be32(o, NBD_STRUCTURED_REPLY_MAGIC);
	put_be16(o + 4, flags);
	put_be16(o + 6, type);
	put_be64(o + 8, cookie);
	put_be32(o + 16, len);
	return NBD_CHUNK_HDR_SIZE;
}
