/* nbd_wire.h — the NBD protocol on the wire (doc/proto.md of the NBD project).
 *
 * Constants and pure parse/build helpers shared by the handshake
 * (nbd_handshake.c) and transmission (nbd_xmit.c) phases. Nothing here does
 * I/O; every parser validates lengths against the buffer it is given and
 * returns -EINVAL on malformed input, so it can be unit-tested and fuzzed
 * in isolation (tests/unit/test_nbd_parse.c).
 */
#ifndef BL_NBD_WIRE_H
#define BL_NBD_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Handshake magics. */
#define NBD_MAGIC            0x4e42444d41474943ull /* "NBDMAGIC" */
#define NBD_IHAVEOPT         0x49484156454f5054ull /* "IHAVEOPT" */
#define NBD_REP_MAGIC        0x0003e889045565a9ull /* option reply */

/* Handshake flags (server) and client flags. */
#define NBD_FLAG_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_NO_ZEROES        (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)

/* Options. */
enum {
	NBD_OPT_EXPORT_NAME = 1, NBD_OPT_ABORT = 2, NBD_OPT_LIST = 3, NBD_OPT_PEEK_EXPORT = 4,
	NBD_OPT_STARTTLS = 5, NBD_OPT_INFO = 6, NBD_OPT_GO = 7, NBD_OPT_STRUCTURED_REPLY = 8,
	NBD_OPT_LIST_META_CONTEXT = 9, NBD_OPT_SET_META_CONTEXT = 10, NBD_OPT_EXTENDED_HEADERS = 11,
};

/* Option reply types. */
#define NBD_REP_ERR(x) ((1u << 31) | (x))
enum {
	NBD_REP_ACK = 1, NBD_REP_SERVER = 2, NBD_REP_INFO = 3, NBD_REP_META_CONTEXT = 4,
	NBD_REP_ERR_UNSUP = NBD_REP_ERR(1), NBD_REP_ERR_POLICY = NBD_REP_ERR(2),
	NBD_REP_ERR_INVALID = NBD_REP_ERR(3), NBD_REP_ERR_PLATFORM = NBD_REP_ERR(4),
	NBD_REP_ERR_TLS_REQD = NBD_REP_ERR(5), NBD_REP_ERR_UNKNOWN = NBD_REP_ERR(6),
	NBD_REP_ERR_SHUTDOWN = NBD_REP_ERR(7), NBD_REP_ERR_BLOCK_SIZE_REQD = NBD_REP_ERR(8),
	NBD_REP_ERR_TOO_BIG = NBD_REP_ERR(9),
};

/* NBD_REP_INFO payload types. */
enum { NBD_INFO_EXPORT = 0, NBD_INFO_NAME = 1, NBD_INFO_DESCRIPTION = 2, NBD_INFO_BLOCK_SIZE = 3 };

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS         (1u << 0)
#define NBD_FLAG_READ_ONLY         (1u << 1)
#define NBD_FLAG_SEND_FLUSH        (1u << 2)
#define NBD_FLAG_SEND_FUA          (1u << 3)
#define NBD_FLAG_ROTATIONAL        (1u << 4)
#define NBD_FLAG_SEND_TRIM         (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF           (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN    (1u << 8)
#define NBD_FLAG_SEND_CACHE        (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO    (1u << 11)

/* Requests and replies. */
#define NBD_REQUEST_MAGIC     0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu
#define NBD_REQUEST_SIZE      28
#define NBD_SIMPLE_REPLY_SIZE 16
#define NBD_CHUNK_HDR_SIZE    20

enum {
	NBD_CMD_READ = 0, NBD_CMD_WRITE = 1, NBD_CMD_DISC = 2, NBD_CMD_FLUSH = 3, NBD_CMD_TRIM = 4,
	NBD_CMD_CACHE = 5, NBD_CMD_WRITE_ZEROES = 6, NBD_CMD_BLOCK_STATUS = 7,
};
#define NBD_CMD_FLAG_FUA       (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE   (1u << 1)
#define NBD_CMD_FLAG_DF        (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE   (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

#define NBD_REPLY_FLAG_DONE   (1u << 0)
enum {
	NBD_REPLY_TYPE_NONE = 0, NBD_REPLY_TYPE_OFFSET_DATA = 1, NBD_REPLY_TYPE_OFFSET_HOLE = 2,
	NBD_REPLY_TYPE_BLOCK_STATUS = 5,
	NBD_REPLY_TYPE_ERROR = (1 << 15) | 1, NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) | 2,
};

/* base:allocation flags. */
#define NBD_STATE_HOLE 1u
#define NBD_STATE_ZERO 2u

/* Errors on the wire (values fixed by the protocol, not the host's errno). */
enum {
	NBD_EPERM = 1, NBD_EIO = 5, NBD_ENOMEM = 12, NBD_EINVAL = 22, NBD_ENOSPC = 28,
	NBD_EOVERFLOW = 75, NBD_ENOTSUP = 95, NBD_ESHUTDOWN = 108,
};

/* Limits we enforce on what a peer controls. */
#define NBD_MAX_OPTION_LEN   (64u * 1024)        /* option data; more → ERR_TOO_BIG + disconnect */
#define NBD_MAX_OPTIONS      128u                /* options before transmission; more → disconnect */
#define NBD_MAX_STRING       4096u               /* names, queries (proto.md: MUST be <= 4096) */
#define NBD_MAX_INFO_REQS    32u                 /* NBD_INFO_* requests in one INFO/GO */
#define NBD_MAX_META_QUERIES 64u                 /* queries in one LIST/SET_META_CONTEXT */
#define NBD_MAX_REQUEST      (32u * 1024 * 1024) /* READ/WRITE payload; advertised as max block size */
#define NBD_MAX_DISCARD_PAYLOAD (64u * 1024 * 1024) /* oversize WRITE payload we still read and discard */
#define NBD_PREF_BLOCK       4096u

/* Map a negative errno to the protocol's error value. */
uint32_t nbd_errno(int neg_errno);

/* A parsed INFO/GO/EXPORT_NAME-style option: export name and info requests,
 * pointing into the option data (not NUL-terminated). */
struct nbd_opt_export {
	const char *name;
	uint32_t name_len;
	uint16_t ninfo;
	uint16_t info[NBD_MAX_INFO_REQS];
};
/* Parse NBD_OPT_INFO / NBD_OPT_GO data. 0 or -EINVAL (malformed) / -E2BIG (too many requests). */
int nbd_parse_info_opt(const uint8_t *data, uint32_t len, struct nbd_opt_export *out);

/* A parsed LIST/SET_META_CONTEXT request. Queries are validated and
 * iterated with nbd_meta_query(). */
struct nbd_opt_meta {
	const char *name;
	uint32_t name_len;
	uint32_t nqueries;
	const uint8_t *queries;   /* start of the query list */
	uint32_t queries_len;
};
int nbd_parse_meta_opt(const uint8_t *data, uint32_t len, struct nbd_opt_meta *out);
/* The i-th query (0-based) of a validated request. */
void nbd_meta_query(const struct nbd_opt_meta *m, uint32_t i, const char **q, uint32_t *qlen);

/* Which of our contexts a query selects: 1 if it selects base:allocation
 * ("base:allocation" or "base:"), 0 otherwise. */
int nbd_meta_selects_alloc(const char *q, uint32_t qlen);

/* A transmission-phase request header. */
struct nbd_request {
	uint16_t flags, type;
	uint64_t cookie, offset;
	uint32_t length;
};
/* Parse a 28-byte request header: 0 or -EPROTO (bad magic: stream is lost). */
int nbd_parse_request(const uint8_t hdr[NBD_REQUEST_SIZE], struct nbd_request *out);

/* Builders: write the header into out, return its size. */
size_t nbd_build_opt_reply(uint8_t out[20], uint32_t opt, uint32_t type, uint32_t len);
size_t nbd_build_simple_reply(uint8_t out[NBD_SIMPLE_REPLY_SIZE], uint32_t error, uint64_t cookie);
size_t nbd_build_chunk(uint8_t out[NBD_CHUNK_HDR_SIZE], uint16_t flags, uint16_t type,
		       uint64_t cookie, uint32_t len);

#endif
