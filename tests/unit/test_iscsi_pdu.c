/* test_iscsi_pdu.c — BHS parsing and building, PDU lengths, CRC32C.
 *
 * CRC32C vectors are RFC 3720 appendix B.4 (32 bytes of zeros, of ones,
 * incrementing, decrementing, and the example SCSI Read(10) PDU) plus the
 * usual "123456789" check value; the table and the SSE 4.2 paths must
 * agree on every length and alignment.
 */
#include "unit.h"

#include "iscsi_pdu.h"
#include "util.h"

static void test_crc32c_vectors(void)
{
	uint8_t buf[48];
	static const struct { const char *name; uint8_t fill; int step; uint32_t crc; } rows[] = {
		{ "32 x 0x00", 0x00, 0, 0x8a9136aa },
		{ "32 x 0xff", 0xff, 0, 0x62a8ab43 },
		{ "0..31", 0x00, 1, 0x46dd794e },
		{ "31..0", 0x1f, -1, 0x113fdb5c },
	};
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		UNIT_CTX("crc32c %s", rows[i].name);
		for (int k = 0; k < 32; k++)
			buf[k] = (uint8_t)(rows[i].fill + rows[i].step * k);
		CHECK_INT(crc32c(buf, 32), rows[i].crc);
		CHECK_INT(crc32c_final(crc32c_update_sw(CRC32C_INIT, buf, 32)), rows[i].crc);
	}
	UNIT_CTX("crc32c check value");
	CHECK_INT(crc32c("123456789", 9), 0xe3069283);
	static const uint8_t read10[48] = {
		0x01, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x14, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0x14, 0, 0, 0, 0x18,
		0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0,
	};
	UNIT_CTX("crc32c RFC 3720 B.4 Read(10) PDU");
	CHECK_INT(crc32c(read10, sizeof read10), 0xd9963a56);
	/* The digest goes on the wire least significant byte first. */
	iscsi_digest_put(buf, 0xd9963a56);
	CHECK(buf[0] == 0x56 && buf[1] == 0x3a && buf[2] == 0x96 && buf[3] == 0xd9);
	CHECK_INT(iscsi_digest_get(buf), 0xd9963a56);
	UNIT_CTX(NULL);
}

/* Table and instruction paths agree, also when the data is split in pieces. */
static void test_crc32c_paths(void)
{
	uint8_t data[4096 + 16];
	uint32_t seed = 12345;
	for (size_t i = 0; i < sizeof data; i++) {
		seed = seed * 1103515245 + 12345;
		data[i] = (uint8_t)(seed >> 16);
	}
	for (size_t off = 0; off < 9; off++) {
		for (size_t len = 0; len < 300; len += 7) {
			UNIT_CTX("offset %zu length %zu", off, len);
			uint32_t a = crc32c_update(CRC32C_INIT, data + off, len);
			uint32_t b = crc32c_update_sw(CRC32C_INIT, data + off, len);
			CHECK_INT(a, b);
			uint32_t c = crc32c_update(crc32c_update(CRC32C_INIT, data + off, len / 3), data + off + len / 3,
						   len - len / 3);
			CHECK_INT(a, c);
		}
	}
	UNIT_CTX(NULL);
	CHECK_INT(crc32c(data, 4096), crc32c_final(crc32c_update_sw(CRC32C_INIT, data, 4096)));
}

static void bhs_common(uint8_t *b, uint8_t op, uint8_t flags, uint32_t dsl, uint32_t itt)
{
	memset(b, 0, ISCSI_BHS_LEN);
	b[0] = op;
	b[1] = flags;
	b[5] = dsl >> 16;
	b[6] = dsl >> 8;
	b[7] = dsl;
	put_be32(b + 16, itt);
}

static void test_parse(void)
{
	uint8_t b[ISCSI_BHS_LEN];
	struct iscsi_hdr h;

	UNIT_CTX("SCSI Command");
	bhs_common(b, ISCSI_OP_SCSI_CMD | ISCSI_IMMEDIATE, 0xc1, 0x012345, 0xdeadbeef);
	b[4] = 2; /* 8 bytes of AHS */
	put_be64(b + 8, 0x0001000000000000ull);
	put_be32(b + 20, 4096);
	put_be32(b + 24, 77);
	put_be32(b + 28, 99);
	b[32] = 0x28;
	b[47] = 0x5a;
	CHECK_INT(iscsi_hdr_parse(b, &h), 0);
	CHECK_INT(h.op, ISCSI_OP_SCSI_CMD);
	CHECK(h.immediate);
	CHECK_INT(h.flags, 0xc1);
	CHECK_INT(h.ahs_len, 8);
	CHECK_INT(h.dsl, 0x012345);
	CHECK(h.lun == 0x0001000000000000ull);
	CHECK_INT(h.itt, 0xdeadbeef);
	CHECK_INT(h.edtl, 4096);
	CHECK_INT(h.cmd_sn, 77);
	CHECK_INT(h.exp_stat_sn, 99);
	CHECK(h.cdb == b + 32 && h.cdb[0] == 0x28 && h.cdb[15] == 0x5a);
	CHECK_INT(iscsi_pdu_len(&h, false, false), 48 + 8 + 0x012345 + 3);
	CHECK_INT(iscsi_pdu_len(&h, true, true), 48 + 8 + 4 + 0x012345 + 3 + 4);

	UNIT_CTX("Data-Out");
	bhs_common(b, ISCSI_OP_DATA_OUT, ISCSI_F_FINAL, 512, 7);
	put_be32(b + 20, 0x1234);
	put_be32(b + 24, 0xffffffff); /* reserved: not a CmdSN */
	put_be32(b + 36, 3);
	put_be32(b + 40, 8192);
	CHECK_INT(iscsi_hdr_parse(b, &h), 0);
	CHECK_INT(h.ttt, 0x1234);
	CHECK_INT(h.cmd_sn, 0);
	CHECK_INT(h.data_sn, 3);
	CHECK_INT(h.buf_off, 8192);
	CHECK_INT(iscsi_pdu_len(&h, false, false), 48 + 512);
	CHECK_INT(iscsi_pdu_len(&h, false, true), 48 + 512 + 4);

	UNIT_CTX("Login");
	bhs_common(b, ISCSI_OP_LOGIN_REQ | ISCSI_IMMEDIATE, ISCSI_LOGIN_TRANSIT | 0x01, 100, 1);
	b[2] = 0;
	b[3] = 0;
	memcpy(b + 8, "\x40\x00\x27\x23\x00\x01", 6);
	put_be16(b + 14, 0);
	put_be16(b + 20, 5);
	put_be32(b + 24, 42);
	CHECK_INT(iscsi_hdr_parse(b, &h), 0);
	CHECK_INT(ISCSI_LOGIN_CSG(h.flags), 0);
	CHECK_INT(ISCSI_LOGIN_NSG(h.flags), 1);
	CHECK(h.isid[0] == 0x40 && h.isid[3] == 0x23 && h.isid[5] == 0x01);
	CHECK_INT(h.cid, 5);
	CHECK_INT(h.cmd_sn, 42);
	CHECK(h.lun == 0);

	UNIT_CTX("TMF");
	bhs_common(b, ISCSI_OP_TMF_REQ | ISCSI_IMMEDIATE, ISCSI_F_FINAL | ISCSI_TMF_ABORT_TASK, 0, 9);
	put_be32(b + 20, 0x77);
	put_be32(b + 32, 1000);
	CHECK_INT(iscsi_hdr_parse(b, &h), 0);
	CHECK_INT(h.flags & ISCSI_FUNC_MASK, ISCSI_TMF_ABORT_TASK);
	CHECK_INT(h.ref_itt, 0x77);
	CHECK_INT(h.ref_cmd_sn, 1000);

	UNIT_CTX("target opcodes are refused");
	static const uint8_t bad[] = { ISCSI_OP_NOP_IN, ISCSI_OP_SCSI_RSP, ISCSI_OP_R2T, ISCSI_OP_REJECT, 0x07, 0x1f, 0x3e };
	for (size_t i = 0; i < sizeof bad; i++) {
		bhs_common(b, bad[i], 0, 0, 0);
		CHECK_INT(iscsi_hdr_parse(b, &h), -EOPNOTSUPP);
	}
	UNIT_CTX(NULL);
}

static void test_build(void)
{
	uint8_t b[ISCSI_BHS_LEN];
	struct iscsi_sn sn = { 10, 20, 30 };

	UNIT_CTX("SCSI Response");
	memset(b, 0xaa, sizeof b);
	struct iscsi_scsi_rsp r = { .itt = 5, .flags = ISCSI_DATA_UNDERFLOW, .response = 0, .status = 2, .dsl = 20,
				    .exp_data_sn = 3, .residual = 512, .sn = sn };
	iscsi_build_scsi_rsp(b, &r);
	CHECK_INT(b[0], 0x21);
	CHECK_INT(b[1], 0x80 | ISCSI_DATA_UNDERFLOW);
	CHECK_INT(b[3], 2);
	CHECK_INT(b[7], 20);
	CHECK_INT(get_be32(b + 8), 0);   /* reserved bytes zeroed */
	CHECK_INT(get_be32(b + 16), 5);
	CHECK_INT(get_be32(b + 24), 10);
	CHECK_INT(get_be32(b + 28), 20);
	CHECK_INT(get_be32(b + 32), 30);
	CHECK_INT(get_be32(b + 36), 3);
	CHECK_INT(get_be32(b + 44), 512);

	UNIT_CTX("Data-In without and with status");
	struct iscsi_data_in d = { .lun = 0, .itt = 5, .flags = 0, .dsl = 8192, .data_sn = 2, .buf_off = 16384,
				   .residual = 99, .status = 0, .sn = sn };
	iscsi_build_data_in(b, &d);
	CHECK_INT(b[0], 0x25);
	CHECK_INT(get_be32(b + 20), ISCSI_RSVD_TAG);
	CHECK_INT(get_be32(b + 24), 0);  /* StatSN only with S */
	CHECK_INT(get_be32(b + 36), 2);
	CHECK_INT(get_be32(b + 40), 16384);
	CHECK_INT(get_be32(b + 44), 0);
	d.flags = ISCSI_F_FINAL | ISCSI_DATA_STATUS | ISCSI_DATA_OVERFLOW;
	iscsi_build_data_in(b, &d);
	CHECK_INT(b[1], 0x80 | 0x04 | 0x01);
	CHECK_INT(get_be32(b + 24), 10);
	CHECK_INT(get_be32(b + 44), 99);

	UNIT_CTX("R2T");
	struct iscsi_r2t t = { .lun = 0, .itt = 5, .ttt = 0x99, .r2t_sn = 1, .buf_off = 65536, .len = 262144, .sn = sn };
	iscsi_build_r2t(b, &t);
	CHECK_INT(b[0], 0x31);
	CHECK_INT(b[1], 0x80);
	CHECK_INT(get_be32(b + 20), 0x99);
	CHECK_INT(get_be32(b + 36), 1);
	CHECK_INT(get_be32(b + 40), 65536);
	CHECK_INT(get_be32(b + 44), 262144);

	UNIT_CTX("Login Response");
	struct iscsi_login_rsp l = { .flags = ISCSI_LOGIN_TRANSIT | (1 << 2) | 3, .dsl = 300, .tsih = 0x1234, .itt = 1,
				     .status = ISCSI_LOGIN_AUTH_FAILED, .sn = sn };
	memcpy(l.isid, "\x40\x00\x27\x23\x00\x01", 6);
	iscsi_build_login_rsp(b, &l);
	CHECK_INT(b[0], 0x23);
	CHECK_INT(b[1], 0x87);
	CHECK(memcmp(b + 8, "\x40\x00\x27\x23\x00\x01", 6) == 0);
	CHECK_INT(get_be16(b + 14), 0x1234);
	CHECK_INT(b[36], 0x02);
	CHECK_INT(b[37], 0x01);
	CHECK_INT((b[5] << 16) | (b[6] << 8) | b[7], 300);

	UNIT_CTX("Reject, NOP-In, Logout, TMF, Text, Async");
	struct iscsi_reject rj = { .reason = ISCSI_REJECT_PROTOCOL_ERROR, .dsl = 48, .sn = sn };
	iscsi_build_reject(b, &rj);
	CHECK(b[0] == 0x3f && b[2] == 0x04 && b[7] == 48 && get_be32(b + 16) == ISCSI_RSVD_TAG);
	struct iscsi_nop_in n = { .lun = 0, .itt = ISCSI_RSVD_TAG, .ttt = 7, .dsl = 0, .sn = sn };
	iscsi_build_nop_in(b, &n);
	CHECK(b[0] == 0x20 && get_be32(b + 16) == ISCSI_RSVD_TAG && get_be32(b + 20) == 7);
	struct iscsi_logout_rsp lo = { .itt = 3, .response = 0, .time2wait = 2, .time2retain = 20, .sn = sn };
	iscsi_build_logout_rsp(b, &lo);
	CHECK(b[0] == 0x26 && get_be16(b + 40) == 2 && get_be16(b + 42) == 20);
	struct iscsi_tmf_rsp_pdu tm = { .itt = 4, .response = ISCSI_TMF_RSP_NO_TASK, .sn = sn };
	iscsi_build_tmf_rsp(b, &tm);
	CHECK(b[0] == 0x22 && b[2] == 1 && get_be32(b + 16) == 4);
	struct iscsi_text_rsp tx = { .flags = ISCSI_TEXT_CONTINUE, .itt = 6, .ttt = 8, .dsl = 4, .sn = sn };
	iscsi_build_text_rsp(b, &tx);
	CHECK(b[0] == 0x24 && b[1] == 0x40 && get_be32(b + 20) == 8);
	struct iscsi_async as = { .event = ISCSI_ASYNC_LOGOUT_REQUEST, .param3 = 10, .sn = sn };
	iscsi_build_async(b, &as);
	CHECK(b[0] == 0x32 && b[36] == 1 && get_be16(b + 42) == 10);
	UNIT_CTX(NULL);
}

int main(void)
{
	test_crc32c_vectors();
	test_crc32c_paths();
	test_parse();
	test_build();
	return unit_done();
}
