/* test_nbd_parse.c — table-driven tests of the pure NBD parsers (nbd_wire.c). */
#include <errno.h>
#include <string.h>

#include "nbd_wire.h"
#include "unit.h"
#include "util.h"

/* Build INFO/GO option data: name + n info requests. */
static uint32_t info_opt(uint8_t *b, const char *name, uint16_t n, const uint16_t *reqs)
{
	uint32_t nl = strlen(name);
	put_be32(b, nl);
	memcpy(b + 4, name, nl);
	put_be16(b + 4 + nl, n);
	for (uint16_t i = 0; i < n; i++)
		put_be16(b + 6 + nl + 2 * i, reqs[i]);
	return 6 + nl + 2 * n;
}

static void test_info(void)
{
	uint8_t b[8192];
	struct nbd_opt_export o;
	uint16_t reqs[40] = { NBD_INFO_NAME, NBD_INFO_BLOCK_SIZE };
	uint32_t len = info_opt(b, "win10", 2, reqs);
	CHECK_INT(nbd_parse_info_opt(b, len, &o), 0);
	CHECK_INT(o.name_len, 5);
	CHECK(memcmp(o.name, "win10", 5) == 0);
	CHECK_INT(o.ninfo, 2);
	CHECK_INT(o.info[1], NBD_INFO_BLOCK_SIZE);

	struct { const char *what; uint32_t len; int expect; } rows[] = {
		{ "empty", 0, -EINVAL },
		{ "short name length", 3, -EINVAL },
		{ "truncated", len - 1, -EINVAL },
		{ "trailing garbage", len + 1, -EINVAL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		UNIT_CTX("%s", rows[i].what);
		CHECK_INT(nbd_parse_info_opt(b, rows[i].len, &o), rows[i].expect);
	}
	UNIT_CTX(NULL);
	/* Name length beyond the data, and beyond NBD_MAX_STRING. */
	put_be32(b, 0xffffffffu);
	CHECK_INT(nbd_parse_info_opt(b, len, &o), -EINVAL);
	put_be32(b, NBD_MAX_STRING + 1);
	CHECK_INT(nbd_parse_info_opt(b, 8000, &o), -EINVAL);
	/* Too many info requests. */
	len = info_opt(b, "x", NBD_MAX_INFO_REQS + 1, reqs);
	CHECK_INT(nbd_parse_info_opt(b, len, &o), -E2BIG);
	/* NUL inside the name. */
	len = info_opt(b, "a", 0, reqs);
	b[4] = 0;
	CHECK_INT(nbd_parse_info_opt(b, len, &o), -EINVAL);
}

static uint32_t meta_opt(uint8_t *b, const char *name, const char **q, uint32_t nq)
{
	uint32_t nl = strlen(name), p;
	put_be32(b, nl);
	memcpy(b + 4, name, nl);
	put_be32(b + 4 + nl, nq);
	p = 8 + nl;
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t ql = strlen(q[i]);
		put_be32(b + p, ql);
		memcpy(b + p + 4, q[i], ql);
		p += 4 + ql;
	}
	return p;
}

static void test_meta(void)
{
	uint8_t b[4096];
	struct nbd_opt_meta m;
	const char *q[] = { "qemu:dirty-bitmap:x", "base:allocation", "base:" };
	uint32_t len = meta_opt(b, "img", q, 3);
	CHECK_INT(nbd_parse_meta_opt(b, len, &m), 0);
	CHECK_INT(m.nqueries, 3);
	const char *s;
	uint32_t sl;
	int sel[3];
	for (uint32_t i = 0; i < 3; i++) {
		nbd_meta_query(&m, i, &s, &sl);
		CHECK_INT(sl, strlen(q[i]));
		sel[i] = nbd_meta_selects_alloc(s, sl);
	}
	CHECK(!sel[0] && sel[1] && sel[2]);
	CHECK(!nbd_meta_selects_alloc("base:allocationX", 16));
	CHECK(!nbd_meta_selects_alloc("base", 4));
	CHECK_INT(nbd_parse_meta_opt(b, len - 1, &m), -EINVAL);
	CHECK_INT(nbd_parse_meta_opt(b, len + 3, &m), -EINVAL);
	/* A query count that the data cannot hold. */
	put_be32(b + 4 + 3, 1000);
	CHECK_INT(nbd_parse_meta_opt(b, len, &m), -E2BIG);
	put_be32(b + 4 + 3, 50);
	CHECK_INT(nbd_parse_meta_opt(b, len, &m), -EINVAL);
	/* Zero queries. */
	len = meta_opt(b, "img", q, 0);
	CHECK_INT(nbd_parse_meta_opt(b, len, &m), 0);
	CHECK_INT(m.nqueries, 0);
}

static void test_request(void)
{
	uint8_t h[NBD_REQUEST_SIZE];
	struct nbd_request q;
	put_be32(h, NBD_REQUEST_MAGIC);
	put_be16(h + 4, NBD_CMD_FLAG_FUA);
	put_be16(h + 6, NBD_CMD_WRITE);
	put_be64(h + 8, 0x1122334455667788ull);
	put_be64(h + 16, 1ull << 63);
	put_be32(h + 24, 4096);
	CHECK_INT(nbd_parse_request(h, &q), 0);
	CHECK_INT(q.type, NBD_CMD_WRITE);
	CHECK_INT(q.flags, NBD_CMD_FLAG_FUA);
	CHECK(q.cookie == 0x1122334455667788ull);
	CHECK(q.offset == 1ull << 63);
	CHECK_INT(q.length, 4096);
	h[0] ^= 1;
	CHECK_INT(nbd_parse_request(h, &q), -EPROTO);
}

static void test_errno_and_builders(void)
{
	struct { int in; uint32_t out; } rows[] = {
		{ 0, 0 }, { -EPERM, NBD_EPERM }, { -EROFS, NBD_EPERM }, { -EIO, NBD_EIO },
		{ -ENOMEM, NBD_ENOMEM }, { -EINVAL, NBD_EINVAL }, { -ENOSPC, NBD_ENOSPC },
		{ -EDQUOT, NBD_ENOSPC }, { -EOVERFLOW, NBD_EOVERFLOW }, { -ENOTSUP, NBD_ENOTSUP },
		{ -ESHUTDOWN, NBD_ESHUTDOWN }, { -ENOENT, NBD_EIO }, { -EBADF, NBD_EIO },
	};
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		UNIT_CTX("errno %d", -rows[i].in);
		CHECK_INT(nbd_errno(rows[i].in), rows[i].out);
	}
	UNIT_CTX(NULL);
	uint8_t b[32];
	CHECK_INT(nbd_build_opt_reply(b, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, 7), 20);
	CHECK(get_be64(b) == NBD_REP_MAGIC);
	CHECK_INT(get_be32(b + 12), NBD_REP_ERR_UNKNOWN);
	CHECK_INT(nbd_build_simple_reply(b, NBD_EINVAL, 42), 16);
	CHECK_INT(get_be32(b), NBD_SIMPLE_REPLY_MAGIC);
	CHECK_INT(get_be32(b + 4), NBD_EINVAL);
	CHECK(get_be64(b + 8) == 42);
	CHECK_INT(nbd_build_chunk(b, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, 9, 100), 20);
	CHECK_INT(get_be16(b + 4), NBD_REPLY_FLAG_DONE);
	CHECK_INT(get_be32(b + 16), 100);
}

int main(void)
{
	test_info();
	test_meta();
	test_request();
	test_errno_and_builders();
	return unit_done();
}
