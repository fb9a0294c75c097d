/* iscsi_pdu.c — BHS parsing and building, CRC32C; see iscsi_pdu.h.
 *
 * Offsets follow RFC 7143 §11; each builder writes every byte of the BHS
 * (reserved bytes as zero), so a reply never leaks stale memory. The
 * CRC32C table (reflected polynomial 0x82F63B78, slicing by 8) is built
 * once with pthread_once; the SSE 4.2 path is picked at first use.
 */
#include "iscsi_pdu.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "util.h"

/* Common BHS offsets */
#define BHS_OPCODE  0   /* I bit, opcode */
#define BHS_FLAGS   1   /* F/T and opcode-specific flags */
#define BHS_B2      2   /* opcode-specific (response, status, version ...) */
#define BHS_B3      3   /* opcode-specific */
#define BHS_AHSLEN  4   /* TotalAHSLength (4-byte words) */
#define BHS_DSL     5   /* DataSegmentLength (24 bits) */
#define BHS_LUN     8   /* LUN / ISID+TSIH (8 bytes) */
#define BHS_ITT     16  /* Initiator Task Tag */
#define BHS_W20     20  /* TTT / EDTL / RefTaskTag / CID / SNACK Tag */
#define BHS_W24     24  /* CmdSN (initiator) / StatSN (target) */
#define BHS_W28     28  /* ExpStatSN (initiator) / ExpCmdSN (target) */
#define BHS_W32     32  /* RefCmdSN, CDB start (initiator) / MaxCmdSN (target) */
#define BHS_W36     36  /* DataSN / R2TSN / ExpDataSN / Status-Class+Detail */
#define BHS_W40     40  /* Buffer Offset / Time2Wait+Time2Retain */
#define BHS_W44     44  /* Residual Count / Desired Data Transfer Length */

static void put_be24(uint8_t *p, uint32_t v)
{
	p[0] = v >> 16;
	p[1] = v >> 8;
	p[2] = v;
}

int iscsi_hdr_parse(const uint8_t *b, struct iscsi_hdr *h)
{
	memset(h, 0, sizeof *h);
	h->op = b[BHS_OPCODE] & ISCSI_OPCODE_MASK;
	h->immediate = b[BHS_OPCODE] & ISCSI_IMMEDIATE;
	h->flags = b[BHS_FLAGS];
	h->ahs_len = (uint32_t)b[BHS_AHSLEN] * 4;
	h->dsl = (uint32_t)b[BHS_DSL] << 16 | (uint32_t)b[BHS_DSL + 1] << 8 | b[BHS_DSL + 2];
	h->lun = get_be64(b + BHS_LUN);
	h->itt = get_be32(b + BHS_ITT);
	h->cmd_sn = get_be32(b + BHS_W24);
	h->exp_stat_sn = get_be32(b + BHS_W28);
	switch (h->op) {
	case ISCSI_OP_SCSI_CMD:
		h->edtl = get_be32(b + BHS_W20);
		h->cdb = b + BHS_W32;
		break;
	case ISCSI_OP_DATA_OUT:
		h->cmd_sn = 0; /* reserved there */
		h->ttt = get_be32(b + BHS_W20);
		h->data_sn = get_be32(b + BHS_W36);
		h->buf_off = get_be32(b + BHS_W40);
		break;
	case ISCSI_OP_NOP_OUT:
	case ISCSI_OP_TEXT_REQ:
		h->ttt = get_be32(b + BHS_W20);
		break;
	case ISCSI_OP_TMF_REQ:
		h->ref_itt = get_be32(b + BHS_W20);
		h->ref_cmd_sn = get_be32(b + BHS_W32);
		h->data_sn = get_be32(b + BHS_W36);
		break;
	case ISCSI_OP_LOGIN_REQ:
		h->ver_max = b[BHS_B2];
		h->ver_min = b[BHS_B3];
		memcpy(h->isid, b + BHS_LUN, 6);
		h->tsih = get_be16(b + BHS_LUN + 6);
		h->lun = 0;
		h->cid = get_be16(b + BHS_W20);
		break;
	case ISCSI_OP_LOGOUT_REQ:
		h->lun = 0;
		h->cid = get_be16(b + BHS_W20);
		break;
	case ISCSI_OP_SNACK_REQ:
		h->cmd_sn = 0;
		h->ttt = get_be32(b + BHS_W20);
		h->buf_off = get_be32(b + BHS_W40);
		break;
	default:
		return -EOPNOTSUPP;
	}
	return 0;
}

uint64_t iscsi_pdu_len(const struct iscsi_hdr *h, bool header_digest, bool data_digest)
{
	uint64_t n = ISCSI_BHS_LEN + (uint64_t)h->ahs_len;
	if (header_digest)
		n += ISCSI_DIGEST_LEN;
	if (h->dsl) {
		n += h->dsl + iscsi_pad4(h->dsl);
		if (data_digest)
			n += ISCSI_DIGEST_LEN;
	}
	return n;
}

/* Zero the BHS and fill what every target PDU has. */
static void bhs_start(uint8_t *b, uint8_t op, uint8_t flags, uint32_t dsl, uint32_t itt)
{
	memset(b, 0, ISCSI_BHS_LEN);
	b[BHS_OPCODE] = op;
	b[BHS_FLAGS] = flags;
	put_be24(b + BHS_DSL, dsl);
	put_be32(b + BHS_ITT, itt);
}

/* StatSN, ExpCmdSN, MaxCmdSN at bytes 24-35. */
static void bhs_sn(uint8_t *b, const struct iscsi_sn *sn)
{
	put_be32(b + BHS_W24, sn->stat_sn);
	put_be32(b + BHS_W28, sn->exp_cmd_sn);
	put_be32(b + BHS_W32, sn->max_cmd_sn);
}

void iscsi_build_scsi_rsp(uint8_t *b, const struct iscsi_scsi_rsp *p)
{
	bhs_start(b, ISCSI_OP_SCSI_RSP, ISCSI_F_FINAL | (p->flags & (ISCSI_DATA_OVERFLOW | ISCSI_DATA_UNDERFLOW)),
		  p->dsl, p->itt);
	b[BHS_B2] = p->response;
	b[BHS_B3] = p->status;
	bhs_sn(b, &p->sn);
	put_be32(b + BHS_W36, p->exp_data_sn);
	put_be32(b + BHS_W44, p->residual);
}

void iscsi_build_data_in(uint8_t *b, const struct iscsi_data_in *p)
{
	bhs_start(b, ISCSI_OP_DATA_IN, p->flags, p->dsl, p->itt);
	put_be64(b + BHS_LUN, p->lun);
	put_be32(b + BHS_W20, ISCSI_RSVD_TAG); /* TTT: no A bit at ERL 0 */
	put_be32(b + BHS_W28, p->sn.exp_cmd_sn);
	put_be32(b + BHS_W32, p->sn.max_cmd_sn);
	put_be32(b + BHS_W36, p->data_sn);
	put_be32(b + BHS_W40, p->buf_off);
	if (p->flags & ISCSI_DATA_STATUS) {
		b[BHS_B3] = p->status;
		put_be32(b + BHS_W24, p->sn.stat_sn);
		put_be32(b + BHS_W44, p->residual);
	}
}

void iscsi_build_r2t(uint8_t *b, const struct iscsi_r2t *p)
{
	bhs_start(b, ISCSI_OP_R2T, ISCSI_F_FINAL, 0, p->itt);
	put_be64(b + BHS_LUN, p->lun);
	put_be32(b + BHS_W20, p->ttt);
	bhs_sn(b, &p->sn);
	put_be32(b + BHS_W36, p->r2t_sn);
	put_be32(b + BHS_W40, p->buf_off);
	put_be32(b + BHS_W44, p->len);
}

void iscsi_build_nop_in(uint8_t *b, const struct iscsi_nop_in *p)
{
	bhs_start(b, ISCSI_OP_NOP_IN, ISCSI_F_FINAL, p->dsl, p->itt);
	put_be64(b + BHS_LUN, p->lun);
	put_be32(b + BHS_W20, p->ttt);
	bhs_sn(b, &p->sn);
}

void iscsi_build_tmf_rsp(uint8_t *b, const struct iscsi_tmf_rsp_pdu *p)
{
	bhs_start(b, ISCSI_OP_TMF_RSP, ISCSI_F_FINAL, 0, p->itt);
	b[BHS_B2] = p->response;
	bhs_sn(b, &p->sn);
}

void iscsi_build_login_rsp(uint8_t *b, const struct iscsi_login_rsp *p)
{
	bhs_start(b, ISCSI_OP_LOGIN_RSP, p->flags, p->dsl, p->itt);
	b[BHS_B2] = p->ver_max;
	b[BHS_B3] = p->ver_active;
	memcpy(b + BHS_LUN, p->isid, 6);
	put_be16(b + BHS_LUN + 6, p->tsih);
	bhs_sn(b, &p->sn);
	b[BHS_W36] = p->status >> 8;     /* Status-Class */
	b[BHS_W36 + 1] = p->status & 0xff; /* Status-Detail */
}

void iscsi_build_text_rsp(uint8_t *b, const struct iscsi_text_rsp *p)
{
	bhs_start(b, ISCSI_OP_TEXT_RSP, p->flags, p->dsl, p->itt);
	put_be64(b + BHS_LUN, p->lun);
	put_be32(b + BHS_W20, p->ttt);
	bhs_sn(b, &p->sn);
}

void iscsi_build_logout_rsp(uint8_t *b, const struct iscsi_logout_rsp *p)
{
	bhs_start(b, ISCSI_OP_LOGOUT_RSP, ISCSI_F_FINAL, 0, p->itt);
	b[BHS_B2] = p->response;
	bhs_sn(b, &p->sn);
	put_be16(b + BHS_W40, p->time2wait);
	put_be16(b + BHS_W40 + 2, p->time2retain);
}

void iscsi_build_reject(uint8_t *b, const struct iscsi_reject *p)
{
	bhs_start(b, ISCSI_OP_REJECT, ISCSI_F_FINAL, p->dsl, ISCSI_RSVD_TAG);
	b[BHS_B2] = p->reason;
	bhs_sn(b, &p->sn);
}

void iscsi_build_async(uint8_t *b, const struct iscsi_async *p)
{
	bhs_start(b, ISCSI_OP_ASYNC, ISCSI_F_FINAL, 0, ISCSI_RSVD_TAG);
	bhs_sn(b, &p->sn);
	b[BHS_W36] = p->event;
	put_be16(b + BHS_W36 + 2, p->param1);
	put_be16(b + BHS_W40, p->param2);
	put_be16(b + BHS_W40 + 2, p->param3);
}

/* --- CRC32C --- */

#define CRC32C_POLY 0x82f63b78u   /* Castagnoli, bit-reflected */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

/* Build the slicing-by-8 tables and pick the implementation. */
static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t crc32c_update_sw(uint32_t state, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	pthread_once(&crc_once, crc_init);
	while (len && ((uintptr_t)p & 7)) {
		state = (state >> 8) ^ crc_table[0][(state ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint32_t lo = state ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
		state = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
			crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
			crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
		p += 8;
		len -= 8;
	}
	while (len--)
		state = (state >> 8) ^ crc_table[0][(state ^ *p++) & 0xff];
	return state;
}

#if defined(__x86_64__)
/* The SSE 4.2 crc32 instruction computes exactly this CRC. */
__attribute__((target("sse4.2")))
static uint32_t crc32c_update_hw(uint32_t state, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t s = state;
	while (len && ((uintptr_t)p & 7)) {
		s = __builtin_ia32_crc32qi((uint32_t)s, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		s = __builtin_ia32_crc32di(s, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		s = __builtin_ia32_crc32qi((uint32_t)s, *p++);
	return (uint32_t)s;
}
#endif

uint32_t crc32c_update(uint32_t state, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
#if defined(__x86_64__)
	if (crc_hw)
		return crc32c_update_hw(state, buf, len);
#endif
	return crc32c_update_sw(state, buf, len);
}

uint32_t crc32c(const void *buf, size_t len)
{
	return crc32c_final(crc32c_update(CRC32C_INIT, buf, len));
}

void iscsi_digest_put(uint8_t *out, uint32_t digest)
{
	out[0] = digest;
	out[1] = digest >> 8;
	out[2] = digest >> 16;
	out[3] = digest >> 24;
}

uint32_t iscsi_digest_get(const uint8_t *in)
{
	return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
}
