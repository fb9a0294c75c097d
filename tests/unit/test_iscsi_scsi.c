/* test_iscsi_scsi.c — the SCSI command set (scsi.c, scsi_block.c,
 * scsi_spc.c): CDB decoding and validation, the data each command
 * returns, sense data, errno_to_sense(), and the streaming write path.
 *
 * The disk is a fake vdisk in memory (this file provides vdisk_submit,
 * vd_req_release and vdisk_extents): requests complete inline, or are
 * queued and completed later when `defer` is set, which exercises the
 * asynchronous paths (done() outside scsi_cmd_*).
 */
#include "unit.h"

#include "scsi.h"
#include "util.h"

#define DISK_BLOCKS 4096u
#define DISK_BYTES  (DISK_BLOCKS * SCSI_BLOCK_SIZE)

static uint8_t disk[DISK_BYTES];
static struct vdisk vd;
static int ops[VD_CACHE + 1];                 /* requests seen per op */
static uint32_t last_flags[VD_CACHE + 1];
static bool defer;                            /* queue completions instead of running them */
static struct vd_req *queued[64];
static int nqueued;
static const uint8_t *vd_zeros_unused;

/* --- the fake vdisk --- */

static void complete(struct vd_req *r)
{
	switch (r->op) {
	case VD_READ:
		r->iov[0].iov_base = disk + r->off;
		r->iov[0].iov_len = r->len;
		r->niov = 1;
		break;
	case VD_TRIM:
	case VD_ZERO:
		memset(disk + r->off, 0, r->len);
		break;
	default:
		break;
	}
	r->done(r, 0);
}

int vdisk_submit(struct vd_req *r)
{
	r->iov = r->iov_inline;
	r->niov = 0;
	if (r->off > r->vd->size || r->len > r->vd->size - r->off)
		return -EINVAL;
	if (r->vd->read_only && (r->op == VD_WRITE || r->op == VD_TRIM || r->op == VD_ZERO))
		return -EPERM;
	ops[r->op]++;
	last_flags[r->op] = r->flags;
	if (r->op == VD_WRITE)
		memcpy(disk + r->off, r->wdata, r->len); /* wdata is only valid now */
	if (defer && nqueued < (int)ARRAY_SIZE(queued))
		queued[nqueued++] = r;
	else
		complete(r);
	return 0;
}

void vd_req_release(struct vd_req *r)
{
	r->niov = 0;
}

int vdisk_extents(struct vdisk *v, uint64_t off, uint64_t len, struct vd_extent *out, int max)
{
	(void)v, (void)off;
	out[0] = (struct vd_extent){ .len = len, .flags = 0 };
	return max >= 1 ? 1 : -EINVAL;
}

static void run_queued(void)
{
	while (nqueued) {
		struct vd_req *r = queued[--nqueued];
		complete(r);
	}
}

/* --- running commands --- */

static struct scsi_lu lu, lu2;
static struct scsi_lu *nexus = &lu;   /* the LU (and so the I_T nexus) run() sends from */
static int dones;

static void on_done(struct scsi_cmd *sc)
{
	(void)sc;
	dones++;
}

/* Run cdb with data-out data (len bytes, delivered in pieces of `piece`). */
static void run_pieces(struct scsi_cmd *sc, bool lun_exists, const uint8_t *cdb, size_t cdb_len, const void *data,
		       uint32_t len, uint32_t piece)
{
	memset(sc, 0, sizeof *sc);
	sc->lu = lun_exists ? nexus : NULL;
	memcpy(sc->cdb, cdb, cdb_len);
	sc->done = on_done;
	sc->out_expected = len;
	dones = 0;
	scsi_cmd_start(sc);
	if (!sc->finished && sc->dir == SCSI_DIR_OUT && sc->out_len) {
		for (uint32_t o = 0; o < len; o += piece)
			scsi_cmd_data(sc, (const uint8_t *)data + o, MIN(piece, len - o));
		scsi_cmd_data_end(sc);
	}
	run_queued();
	CHECK_INT(dones, 1);
}

static void run(struct scsi_cmd *sc, const uint8_t *cdb, size_t cdb_len, const void *data, uint32_t len)
{
	run_pieces(sc, true, cdb, cdb_len, data, len, len ? len : 1);
}

/* The data-in as one buffer (copied to out, at most max bytes). */
static uint32_t data_in(const struct scsi_cmd *sc, uint8_t *out, uint32_t max)
{
	uint32_t n = 0;
	for (int i = 0; i < sc->in_niov; i++) {
		uint32_t k = MIN((uint32_t)sc->in_iov[i].iov_len, max - n);
		memcpy(out + n, sc->in_iov[i].iov_base, k);
		n += k;
	}
	return n;
}

#define CHECK_SENSE(sc, key, asc) do { \
	CHECK_INT((sc)->status, SCSI_CHECK_CONDITION); \
	CHECK_INT((sc)->sense[2] & 0x0f, key); \
	CHECK_INT(((sc)->sense[12] << 8) | (sc)->sense[13], asc); \
} while (0)

#define CHECK_GOOD(sc) do { CHECK_INT((sc)->status, SCSI_GOOD); CHECK_INT((sc)->sense_len, 0); } while (0)

static void setup(bool read_only)
{
	memset(&vd, 0, sizeof vd);
	vd.size = DISK_BYTES + 100; /* a partial last block is not addressable */
	vd.read_only = read_only;
	scsi_lu_fini(&lu);
	scsi_lu_init(&lu, &vd, "client/52:54:00:aa:bb:01", "iqn.2026-11.org.bootlink:client.525400aabb01");
	for (uint32_t i = 0; i < DISK_BYTES; i++)
		disk[i] = (uint8_t)(i / SCSI_BLOCK_SIZE + i);
	memset(ops, 0, sizeof ops);
}

/* --- tests --- */

struct sense_row {
	const char *name;
	uint8_t cdb[16];
	uint8_t len;
	bool lun_exists;
	uint8_t key;
	uint16_t asc;
};

/* Commands refused before they run. */
static const struct sense_row refusals[] = {
	{ "unknown opcode", { 0xc0 }, 6, true, SK_ILLEGAL_REQUEST, ASC_INVALID_OPCODE },
	{ "PERSISTENT RESERVE IN, service action 4", { 0x5e, 0x04 }, 10, true, SK_ILLEGAL_REQUEST,
	  ASC_INVALID_FIELD_IN_CDB },
	{ "PERSISTENT RESERVE OUT REGISTER AND MOVE", { 0x5f, 0x07, 0, 0, 0, 0, 0, 0, 24 }, 10, true,
	  SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB },
	{ "PERSISTENT RESERVE OUT, parameter list of 20", { 0x5f, 0x00, 0, 0, 0, 0, 0, 0, 20 }, 10, true,
	  SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR },
	{ "RESERVE(6) third party", { 0x16, 0x10 }, 6, true, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB },
	{ "PERSISTENT RESERVE OUT RESERVE, scope 1", { 0x5f, 0x01, 0x11, 0, 0, 0, 0, 0, 24 }, 10, true,
	  SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB },
	{ "unknown service action", { 0x9e, 0x1f }, 16, true, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB },
	{ "TEST UNIT READY, no such LUN", { 0x00 }, 6, false, SK_ILLEGAL_REQUEST, ASC_LUN_NOT_SUPPORTED },
	{ "NACA in CONTROL", { 0x00, 0, 0, 0, 0, 0x04 }, 6, true, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB },
	{ "INQUIRY page without EVPD", { 0x12, 0, 0x80, 0, 96 }, 6, true, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB },
	{ "INQUIRY unknown VPD page", { 0x12, 1, 0x99, 0, 96 }, 6, true, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB },
	{ "READ(10) past the end", { 0x28, 0, 0, 0, 0x0f, 0xff, 0, 0, 2 }, 10, true, SK_ILLEGAL_REQUEST,
	  ASC_LBA_OUT_OF_RANGE },
	{ "READ(10) LBA = capacity", { 0x28, 0, 0, 0, 0x10, 0x00, 0, 0, 1 }, 10, true, SK_ILLEGAL_REQUEST,
	  ASC_LBA_OUT_OF_RANGE },
	{ "READ(16) LBA 2^64-1", { 0x88, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1 }, 16, true,
	  SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE },
	{ "READ(10) RDPROTECT", { 0x28, 0x20, 0, 0, 0, 0, 0, 0, 1 }, 10, true, SK_ILLEGAL_REQUEST,
	  ASC_INVALID_FIELD_IN_CDB },
	{ "READ(12) past the end and over the transfer cap", { 0xa8, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x01 }, 12, true,
	  SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE },
	{ "READ CAPACITY(10) LBA without PMI", { 0x25, 0, 0, 0, 0, 1 }, 10, true, SK_ILLEGAL_REQUEST,
	  ASC_INVALID_FIELD_IN_CDB },
	{ "MODE SENSE(6) saved values", { 0x1a, 0, 0xc8, 0, 255 }, 6, true, SK_ILLEGAL_REQUEST,
	  ASC_SAVING_NOT_SUPPORTED },
	{ "MODE SENSE(6) unknown page", { 0x1a, 0, 0x01, 0, 255 }, 6, true, SK_ILLEGAL_REQUEST,
	  ASC_INVALID_FIELD_IN_CDB },
	{ "MODE SENSE(10) unknown subpage", { 0x5a, 0, 0x08, 0x01, 0, 0, 0, 0, 255 }, 10, true, SK_ILLEGAL_REQUEST,
	  ASC_INVALID_FIELD_IN_CDB },
	{ "MODE SELECT(6) SP", { 0x15, 0x11, 0, 0, 24 }, 6, true, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB },
	{ "REPORT LUNS allocation < 16", { 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 8 }, 12, true, SK_ILLEGAL_REQUEST,
	  ASC_INVALID_FIELD_IN_CDB },
	{ "REPORT LUNS bad select", { 0xa0, 0, 0x05, 0, 0, 0, 0, 0, 1, 0 }, 12, true, SK_ILLEGAL_REQUEST,
	  ASC_INVALID_FIELD_IN_CDB },
	{ "RSOC option 1 for an opcode with service actions", { 0xa3, 0x0c, 0x01, 0x9e, 0, 0, 0, 0, 1, 0 }, 12, true,
	  SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB },
	{ "RSOC option 2 for an opcode without", { 0xa3, 0x0c, 0x02, 0x28, 0, 0, 0, 0, 1, 0 }, 12, true,
	  SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB },
	{ "START STOP UNIT eject", { 0x1b, 0, 0, 0, 0x02 }, 6, true, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB },
	{ "GET LBA STATUS past the end", { 0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 32 }, 16, true,
	  SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE },
	{ "VERIFY(10) BYTCHK 2", { 0x2f, 0x04, 0, 0, 0, 0, 0, 0, 1 }, 10, true, SK_ILLEGAL_REQUEST,
	  ASC_INVALID_FIELD_IN_CDB },
	{ "SYNCHRONIZE CACHE(10) past the end", { 0x35, 0, 0, 0, 0x10, 0x01 }, 10, true, SK_ILLEGAL_REQUEST,
	  ASC_LBA_OUT_OF_RANGE },
};

static void test_refusals(void)
{
	struct scsi_cmd sc;
	setup(false);
	for (size_t i = 0; i < ARRAY_SIZE(refusals); i++) {
		const struct sense_row *r = &refusals[i];
		UNIT_CTX("%s", r->name);
		run_pieces(&sc, r->lun_exists, r->cdb, r->len, NULL, 0, 1);
		CHECK_SENSE(&sc, r->key, r->asc);
		CHECK_INT(sc.sense[0], 0x70);
		CHECK_INT(sc.sense_len, SCSI_SENSE_LEN);
		scsi_cmd_release(&sc);
	}
	UNIT_CTX(NULL);
}

static void test_inquiry(void)
{
	struct scsi_cmd sc;
	uint8_t b[1024];
	setup(false);
	static const uint8_t std[] = { 0x12, 0, 0, 0, 255 };
	run(&sc, std, sizeof std, NULL, 0);
	CHECK_GOOD(&sc);
	CHECK_INT(data_in(&sc, b, sizeof b), 66);
	CHECK(b[0] == 0x00 && b[2] == 0x06 && b[3] == 0x12 && b[4] == 61 && (b[7] & 0x02));
	CHECK(memcmp(b + 8, "BOOTLINK", 8) == 0 && memcmp(b + 16, "VIRTUAL DISK    ", 16) == 0);
	CHECK_INT(get_be16(b + 58), 0x00a0);
	scsi_cmd_release(&sc);

	UNIT_CTX("allocation length truncates");
	static const uint8_t short_alloc[] = { 0x12, 0, 0, 0, 5 };
	run(&sc, short_alloc, sizeof short_alloc, NULL, 0);
	CHECK_INT(sc.in_len, 5);
	scsi_cmd_release(&sc);

	UNIT_CTX("no such LUN: peripheral qualifier 3");
	run_pieces(&sc, false, std, sizeof std, NULL, 0, 1);
	CHECK_GOOD(&sc);
	data_in(&sc, b, sizeof b);
	CHECK_INT(b[0], 0x7f);
	scsi_cmd_release(&sc);

	static const struct { uint8_t page; uint32_t len; } vpd[] = {
		{ 0x00, 10 }, { 0x80, 20 }, { 0xb0, 64 }, { 0xb1, 64 }, { 0xb2, 8 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(vpd); i++) {
		UNIT_CTX("VPD 0x%02x", vpd[i].page);
		uint8_t cdb[6] = { 0x12, 1, vpd[i].page, 0x01, 0 };
		run(&sc, cdb, sizeof cdb, NULL, 0);
		CHECK_GOOD(&sc);
		CHECK_INT(data_in(&sc, b, sizeof b), vpd[i].len);
		CHECK_INT(b[1], vpd[i].page);
		CHECK_INT(get_be16(b + 2), vpd[i].len - 4);
		if (vpd[i].page == 0xb0) {
			CHECK_INT(get_be32(b + 8), SCSI_MAX_XFER_BLOCKS);
			CHECK_INT(b[4] & 1, 1); /* WSNZ */
		}
		if (vpd[i].page == 0x00)
			CHECK(b[4] == 0x00 && b[5] == 0x80 && b[6] == 0x83 && b[9] == 0xb2);
		scsi_cmd_release(&sc);
	}
	UNIT_CTX("VPD 0x83: NAA first, target name last");
	static const uint8_t devid[] = { 0x12, 1, 0x83, 0x01, 0 };
	run(&sc, devid, sizeof devid, NULL, 0);
	uint32_t n = data_in(&sc, b, sizeof b);
	CHECK(n > 60 && get_be16(b + 2) == n - 4);
	CHECK(b[4] == 0x01 && b[5] == 0x03 && b[7] == 8 && (b[8] >> 4) == 3);
	CHECK(memmem(b, n, "iqn.2026-11.org.bootlink:client.525400aabb01,t,0x0001", 52) != NULL);
	scsi_cmd_release(&sc);
	UNIT_CTX(NULL);
}

static void test_capacity(void)
{
	struct scsi_cmd sc;
	uint8_t b[64];
	setup(false);
	static const uint8_t rc10[10] = { 0x25 };
	run(&sc, rc10, sizeof rc10, NULL, 0);
	CHECK_GOOD(&sc);
	data_in(&sc, b, sizeof b);
	CHECK_INT(get_be32(b), DISK_BLOCKS - 1);
	CHECK_INT(get_be32(b + 4), 512);
	scsi_cmd_release(&sc);
	static const uint8_t rc16[16] = { 0x9e, 0x10, [13] = 32 };
	run(&sc, rc16, sizeof rc16, NULL, 0);
	CHECK_INT(data_in(&sc, b, sizeof b), 32);
	CHECK(get_be64(b) == DISK_BLOCKS - 1);
	CHECK_INT(b[13], SCSI_PBLOCK_EXP);
	CHECK_INT(b[14] & 0x80, 0x80); /* LBPME: writable disk */
	scsi_cmd_release(&sc);

	UNIT_CTX("more than 2^32 blocks");
	vd.size = (1ull << 33) * 512;
	scsi_lu_init(&lu, &vd, "big", "iqn.x");
	run(&sc, rc10, sizeof rc10, NULL, 0);
	data_in(&sc, b, sizeof b);
	CHECK_INT(get_be32(b), 0xffffffff);
	scsi_cmd_release(&sc);
	run(&sc, rc16, sizeof rc16, NULL, 0);
	data_in(&sc, b, sizeof b);
	CHECK(get_be64(b) == (1ull << 33) - 1);
	scsi_cmd_release(&sc);

	UNIT_CTX("read-only: no thin provisioning");
	setup(true);
	run(&sc, rc16, sizeof rc16, NULL, 0);
	data_in(&sc, b, sizeof b);
	CHECK_INT(b[14] & 0x80, 0);
	scsi_cmd_release(&sc);
	UNIT_CTX(NULL);
}

static void test_read(void)
{
	struct scsi_cmd sc;
	static uint8_t b[256 * 512];
	setup(false);
	UNIT_CTX("READ(6) of 0 blocks means 256");
	static const uint8_t r6[6] = { 0x08, 0, 0, 1, 0 };
	run(&sc, r6, sizeof r6, NULL, 0);
	CHECK_GOOD(&sc);
	CHECK_INT(sc.in_len, 256 * 512);
	CHECK_INT(data_in(&sc, b, sizeof b), 256 * 512);
	CHECK(memcmp(b, disk + 512, 256 * 512) == 0);
	scsi_cmd_release(&sc);
	UNIT_CTX("READ(10) of 0 blocks");
	static const uint8_t r10[10] = { 0x28, 0, 0, 0, 0, 5, 0, 0, 0 };
	run(&sc, r10, sizeof r10, NULL, 0);
	CHECK_GOOD(&sc);
	CHECK_INT(sc.in_len, 0);
	CHECK_INT(ops[VD_READ], 1);
	scsi_cmd_release(&sc);
	UNIT_CTX("READ(16) of the last block, asynchronously");
	defer = true;
	static const uint8_t r16[16] = { 0x88, 0, 0, 0, 0, 0, 0, 0, 0x0f, 0xff, 0, 0, 0, 1 };
	run(&sc, r16, sizeof r16, NULL, 0);
	defer = false;
	CHECK_GOOD(&sc);
	CHECK_INT(data_in(&sc, b, sizeof b), 512);
	CHECK(memcmp(b, disk + (DISK_BLOCKS - 1) * 512, 512) == 0);
	scsi_cmd_release(&sc);
	UNIT_CTX(NULL);
}

static void test_write(void)
{
	struct scsi_cmd sc;
	static uint8_t data[64 * 512];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 7);
	setup(true);
	UNIT_CTX("WRITE(10) on a read-only disk");
	static const uint8_t w10[10] = { 0x2a, 0x08, 0, 0, 0, 8, 0, 0, 4 };
	run(&sc, w10, sizeof w10, data, 4 * 512);
	CHECK_SENSE(&sc, SK_DATA_PROTECT, ASC_WRITE_PROTECTED);
	CHECK_INT(sc.dir, SCSI_DIR_NONE); /* refused before any data-out */
	scsi_cmd_release(&sc);

	setup(false);
	UNIT_CTX("WRITE(10) FUA in odd pieces, completions deferred");
	defer = true;
	run_pieces(&sc, true, w10, sizeof w10, data, 4 * 512, 300);
	defer = false;
	CHECK_GOOD(&sc);
	CHECK_INT(ops[VD_WRITE], 7);
	CHECK_INT(last_flags[VD_WRITE] & VD_F_FUA, VD_F_FUA);
	CHECK(memcmp(disk + 8 * 512, data, 4 * 512) == 0);
	scsi_cmd_release(&sc);

	UNIT_CTX("data ends early (expected length shorter than the CDB's)");
	memset(ops, 0, sizeof ops);
	static const uint8_t w16[16] = { 0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 2 };
	uint8_t before = disk[100 * 512 + 700];
	run_pieces(&sc, true, w16, sizeof w16, data, 600, 600);
	CHECK_GOOD(&sc);
	CHECK(memcmp(disk + 100 * 512, data, 600) == 0 && disk[100 * 512 + 700] == before);
	CHECK_INT(last_flags[VD_WRITE] & VD_F_FUA, 0);
	scsi_cmd_release(&sc);

	UNIT_CTX("WRITE AND VERIFY(12) is written through");
	static const uint8_t wv12[12] = { 0xae, 0x02, 0, 0, 0, 20, 0, 0, 0, 1 };
	run(&sc, wv12, sizeof wv12, data, 512);
	CHECK_GOOD(&sc);
	CHECK_INT(last_flags[VD_WRITE] & VD_F_FUA, VD_F_FUA);
	scsi_cmd_release(&sc);
	UNIT_CTX(NULL);
}

static void test_verify(void)
{
	struct scsi_cmd sc;
	uint8_t buf[2 * 512];
	setup(false);
	memcpy(buf, disk + 10 * 512, sizeof buf);
	static const uint8_t v10[10] = { 0x2f, 0x02, 0, 0, 0, 10, 0, 0, 2 };
	UNIT_CTX("VERIFY(10) BYTCHK 1, same data");
	run(&sc, v10, sizeof v10, buf, sizeof buf);
	CHECK_GOOD(&sc);
	scsi_cmd_release(&sc);
	UNIT_CTX("VERIFY(10) BYTCHK 1, one byte differs");
	buf[700] ^= 0x40;
	run(&sc, v10, sizeof v10, buf, sizeof buf);
	CHECK_SENSE(&sc, SK_MISCOMPARE, ASC_MISCOMPARE_DURING_VERIFY);
	CHECK_INT(sc.sense[0], 0xf0);           /* VALID: INFORMATION holds the offset */
	CHECK_INT(get_be32(sc.sense + 3), 700);
	scsi_cmd_release(&sc);
	UNIT_CTX("VERIFY(16) without BYTCHK takes no data");
	static const uint8_t v16[16] = { 0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 2 };
	run(&sc, v16, sizeof v16, NULL, 0);
	CHECK_GOOD(&sc);
	CHECK_INT(sc.dir, SCSI_DIR_NONE);
	scsi_cmd_release(&sc);
	UNIT_CTX(NULL);
}

static void test_mode(void)
{
	struct scsi_cmd sc;
	uint8_t b[256];
	setup(false);
	UNIT_CTX("MODE SENSE(6) all pages");
	static const uint8_t ms6[6] = { 0x1a, 0, 0x3f, 0, 255 };
	run(&sc, ms6, sizeof ms6, NULL, 0);
	CHECK_GOOD(&sc);
	uint32_t n = data_in(&sc, b, sizeof b);
	CHECK_INT(n, 4 + 8 + 20 + 12 + 12);
	CHECK_INT(b[0], n - 1);
	CHECK_INT(b[2] & 0x80, 0);     /* not write protected */
	CHECK_INT(b[3], 8);            /* block descriptor */
	CHECK_INT(get_be32(b + 4), DISK_BLOCKS);
	CHECK(b[12] == 0x08 && (b[14] & 0x04)); /* caching, WCE */
	CHECK(b[32] == 0x0a && b[44] == 0x1c);
	scsi_cmd_release(&sc);

	UNIT_CTX("MODE SENSE(10) LLBAA, changeable values");
	static const uint8_t ms10[10] = { 0x5a, 0x10, 0x48, 0, 0, 0, 0, 0, 255 };
	run(&sc, ms10, sizeof ms10, NULL, 0);
	n = data_in(&sc, b, sizeof b);
	CHECK_INT(n, 8 + 16 + 20);
	CHECK_INT(get_be16(b), n - 2);
	CHECK(b[4] & 0x01 && get_be16(b + 6) == 16 && get_be64(b + 8) == DISK_BLOCKS);
	CHECK(b[24] == 0x08 && b[26] == 0x04);
	scsi_cmd_release(&sc);

	UNIT_CTX("MODE SELECT(6): WCE off, then SWP on refuses writes");
	uint8_t sel[4 + 20] = { 0, 0, 0, 0, 0x08, 18, 0x00 };
	static const uint8_t sel6[6] = { 0x15, 0x10, 0, 0, sizeof sel };
	run(&sc, sel6, sizeof sel6, sel, sizeof sel);
	CHECK_GOOD(&sc);
	CHECK(!lu.wce);
	scsi_cmd_release(&sc);
	uint8_t ctl[4 + 12] = { 0, 0, 0, 0, 0x0a, 10, 0, 0x10, 0x08, 0, 0, 0, 0xff, 0xff };
	static const uint8_t sel6c[6] = { 0x15, 0x10, 0, 0, sizeof ctl };
	run(&sc, sel6c, sizeof sel6c, ctl, sizeof ctl);
	CHECK_GOOD(&sc);
	CHECK(lu.swp);
	scsi_cmd_release(&sc);
	static const uint8_t w10[10] = { 0x2a, 0, 0, 0, 0, 8, 0, 0, 1 };
	run(&sc, w10, sizeof w10, disk, 512);
	CHECK_SENSE(&sc, SK_DATA_PROTECT, ASC_WRITE_PROTECTED);
	scsi_cmd_release(&sc);
	run(&sc, ms6, sizeof ms6, NULL, 0);
	data_in(&sc, b, sizeof b);
	CHECK_INT(b[2] & 0x80, 0x80);  /* WP reported */
	scsi_cmd_release(&sc);
	scsi_lu_reset(&lu);
	CHECK(lu.wce && !lu.swp);

	UNIT_CTX("MODE SELECT(6): a bit that cannot change");
	uint8_t bad[4 + 12] = { 0, 0, 0, 0, 0x1c, 10, 0x08, 0x06 };
	static const uint8_t sel6b[6] = { 0x15, 0x10, 0, 0, sizeof bad };
	run(&sc, sel6b, sizeof sel6b, bad, sizeof bad);
	CHECK_SENSE(&sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM);
	scsi_cmd_release(&sc);
	UNIT_CTX("MODE SELECT(6): page longer than the list");
	uint8_t cut[4 + 6] = { 0, 0, 0, 0, 0x08, 18 };
	static const uint8_t sel6t[6] = { 0x15, 0x10, 0, 0, sizeof cut };
	run(&sc, sel6t, sizeof sel6t, cut, sizeof cut);
	CHECK_SENSE(&sc, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
	scsi_cmd_release(&sc);
	UNIT_CTX(NULL);
}

static void test_misc(void)
{
	struct scsi_cmd sc;
	uint8_t b[2048];
	setup(false);
	UNIT_CTX("REQUEST SENSE, fixed and descriptor");
	static const uint8_t rs[6] = { 0x03, 0, 0, 0, 252 };
	run(&sc, rs, sizeof rs, NULL, 0);
	CHECK_GOOD(&sc);
	CHECK_INT(data_in(&sc, b, sizeof b), 18);
	CHECK(b[0] == 0x70 && b[2] == 0 && b[12] == 0);
	scsi_cmd_release(&sc);
	static const uint8_t rsd[6] = { 0x03, 1, 0, 0, 252 };
	run_pieces(&sc, false, rsd, sizeof rsd, NULL, 0, 1);
	CHECK_GOOD(&sc);
	CHECK_INT(data_in(&sc, b, sizeof b), 8);
	CHECK(b[0] == 0x72 && b[1] == SK_ILLEGAL_REQUEST && b[2] == 0x25);
	scsi_cmd_release(&sc);

	UNIT_CTX("REPORT LUNS");
	static const uint8_t rl[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	run_pieces(&sc, false, rl, sizeof rl, NULL, 0, 1);
	CHECK_GOOD(&sc);
	CHECK_INT(data_in(&sc, b, sizeof b), 16);
	CHECK_INT(get_be32(b), 8);
	CHECK(get_be64(b + 8) == 0);
	scsi_cmd_release(&sc);

	UNIT_CTX("REPORT SUPPORTED OPERATION CODES");
	static const uint8_t all[12] = { 0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 0x08, 0 };
	run(&sc, all, sizeof all, NULL, 0);
	CHECK_GOOD(&sc);
	uint32_t n = data_in(&sc, b, sizeof b);
	CHECK(n > 4 && (n - 4) % 20 == 0 && get_be32(b) == n - 4);
	scsi_cmd_release(&sc);
	static const uint8_t one[12] = { 0xa3, 0x0c, 0x01, 0x28, 0, 0, 0, 0, 1, 0 };
	run(&sc, one, sizeof one, NULL, 0);
	n = data_in(&sc, b, sizeof b);
	CHECK(n == 14 && (b[1] & 7) == 3 && get_be16(b + 2) == 10 && b[4] == 0x28);
	scsi_cmd_release(&sc);
	static const uint8_t sa[12] = { 0xa3, 0x0c, 0x02, 0x9e, 0, 0x10, 0, 0, 1, 0 };
	run(&sc, sa, sizeof sa, NULL, 0);
	n = data_in(&sc, b, sizeof b);
	CHECK(n == 20 && (b[1] & 7) == 3 && b[4] == 0x9e && b[5] == 0x10);
	scsi_cmd_release(&sc);
	static const uint8_t none[12] = { 0xa3, 0x0c, 0x01, 0xc7, 0, 0, 0, 0, 1, 0 };
	run(&sc, none, sizeof none, NULL, 0);
	n = data_in(&sc, b, sizeof b);
	CHECK(n == 4 && (b[1] & 7) == 1);
	scsi_cmd_release(&sc);

	UNIT_CTX("GET LBA STATUS");
	static const uint8_t gls[16] = { 0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 255 };
	run(&sc, gls, sizeof gls, NULL, 0);
	CHECK_GOOD(&sc);
	n = data_in(&sc, b, sizeof b);
	CHECK(n == 24 && get_be32(b) == 20 && get_be64(b + 8) == 16 && get_be32(b + 16) == DISK_BLOCKS - 16);
	scsi_cmd_release(&sc);

	UNIT_CTX("SYNCHRONIZE CACHE, PRE-FETCH, START STOP UNIT, PREVENT ALLOW");
	static const uint8_t sync16[16] = { 0x91 };
	static const uint8_t pf10[10] = { 0x34, 0, 0, 0, 0, 0, 0, 0, 8 };
	static const uint8_t ssu[6] = { 0x1b, 0, 0, 0, 0x01 };
	static const uint8_t pa[6] = { 0x1e, 0, 0, 0, 1 };
	memset(ops, 0, sizeof ops);
	run(&sc, sync16, sizeof sync16, NULL, 0);
	CHECK_GOOD(&sc);
	run(&sc, pf10, sizeof pf10, NULL, 0);
	CHECK_GOOD(&sc);
	run(&sc, ssu, sizeof ssu, NULL, 0);
	CHECK_GOOD(&sc);
	run(&sc, pa, sizeof pa, NULL, 0);
	CHECK_GOOD(&sc);
	CHECK(ops[VD_FLUSH] == 1 && ops[VD_CACHE] == 1);
	UNIT_CTX(NULL);
}

static void test_unmap_write_same(void)
{
	struct scsi_cmd sc;
	uint8_t p[8 + 32] = { 0 };
	setup(false);
	UNIT_CTX("UNMAP two ranges");
	put_be16(p, 6 + 32);
	put_be16(p + 2, 32);
	put_be64(p + 8, 0);
	put_be32(p + 16, 8);
	put_be64(p + 24, 100);
	put_be32(p + 32, 0); /* empty range: skipped */
	static const uint8_t um[10] = { 0x42, 0, 0, 0, 0, 0, 0, 0, sizeof p };
	memset(ops, 0, sizeof ops);
	run(&sc, um, sizeof um, p, sizeof p);
	CHECK_GOOD(&sc);
	CHECK_INT(ops[VD_TRIM], 1);
	CHECK(disk[0] == 0 && disk[8 * 512 - 1] == 0);
	scsi_cmd_release(&sc);
	UNIT_CTX("UNMAP past the end");
	put_be64(p + 24, DISK_BLOCKS - 1);
	put_be32(p + 32, 2);
	run(&sc, um, sizeof um, p, sizeof p);
	CHECK_SENSE(&sc, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
	scsi_cmd_release(&sc);
	UNIT_CTX("UNMAP parameter list too short");
	static const uint8_t um4[10] = { 0x42, 0, 0, 0, 0, 0, 0, 0, 4 };
	run(&sc, um4, sizeof um4, p, 4);
	CHECK_SENSE(&sc, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
	scsi_cmd_release(&sc);

	UNIT_CTX("WRITE SAME(16) pattern over 3000 blocks (2 chunks)");
	uint8_t blk[512];
	memset(blk, 0x5a, sizeof blk);
	static const uint8_t ws16[16] = { 0x93, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0x0b, 0xb8 };
	memset(ops, 0, sizeof ops);
	defer = true;
	run(&sc, ws16, sizeof ws16, blk, sizeof blk);
	defer = false;
	CHECK_GOOD(&sc);
	CHECK_INT(ops[VD_WRITE], 2);
	CHECK(disk[10 * 512] == 0x5a && disk[3010 * 512 - 1] == 0x5a && disk[3010 * 512] != 0x5a);
	scsi_cmd_release(&sc);
	UNIT_CTX("WRITE SAME(10) zeros with UNMAP");
	memset(blk, 0, sizeof blk);
	static const uint8_t ws10[10] = { 0x41, 0x08, 0, 0, 0, 10, 0, 0, 100 };
	run(&sc, ws10, sizeof ws10, blk, sizeof blk);
	CHECK_GOOD(&sc);
	CHECK_INT(ops[VD_ZERO], 1);
	CHECK_INT(last_flags[VD_ZERO] & VD_F_NO_HOLE, 0);
	scsi_cmd_release(&sc);
	UNIT_CTX("WRITE SAME(10) of 0 blocks, or with more than a block of data");
	static const uint8_t ws0[10] = { 0x41, 0, 0, 0, 0, 10, 0, 0, 0 };
	run(&sc, ws0, sizeof ws0, blk, sizeof blk);
	CHECK_SENSE(&sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
	scsi_cmd_release(&sc);
	static uint8_t two[1024];
	run(&sc, ws10, sizeof ws10, two, sizeof two);
	CHECK_SENSE(&sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
	scsi_cmd_release(&sc);
	UNIT_CTX(NULL);
}

static void test_errno_to_sense(void)
{
	static const struct { int err; enum vd_op op; uint8_t key; uint16_t asc; } rows[] = {
		{ -EPERM, VD_WRITE, SK_DATA_PROTECT, ASC_WRITE_PROTECTED },
		{ -EROFS, VD_TRIM, SK_DATA_PROTECT, ASC_WRITE_PROTECTED },
		{ -ENOSPC, VD_WRITE, SK_DATA_PROTECT, ASC_SPACE_ALLOC_FAILED_WP },
		{ -EINVAL, VD_READ, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE },
		{ -EIO, VD_READ, SK_MEDIUM_ERROR, ASC_READ_ERROR },
		{ -EIO, VD_WRITE, SK_MEDIUM_ERROR, ASC_WRITE_ERROR },
		{ -ENOMEM, VD_READ, SK_ABORTED_COMMAND, ASC_INSUFFICIENT_RESOURCES },
		{ -EILSEQ, VD_READ, SK_MISCOMPARE, ASC_MISCOMPARE_DURING_VERIFY },
		{ -EOPNOTSUPP, VD_ZERO, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB },
		{ -E2BIG, VD_READ, SK_HARDWARE_ERROR, ASC_INTERNAL_TARGET_FAILURE },
	};
	struct scsi_cmd sc;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		UNIT_CTX("errno %d op %d", rows[i].err, rows[i].op);
		memset(&sc, 0, sizeof sc);
		errno_to_sense(&sc, rows[i].err, rows[i].op);
		CHECK_SENSE(&sc, rows[i].key, rows[i].asc);
		CHECK_INT(sc.sense[7], 10);
	}
	UNIT_CTX(NULL);
}

/* --- persistent reservations --- */

#define K1 0x1111111111111111ull
#define K2 0x2222222222222222ull

/* PERSISTENT RESERVE OUT sa/type from lu l with keys rk, sark and byte 20 =
 * flags; returns the status (sense checked by the caller via *sc). */
static uint8_t pr_out(struct scsi_cmd *sc, struct scsi_lu *l, uint8_t sa, uint8_t type, uint64_t rk,
		      uint64_t sark, uint8_t flags)
{
	uint8_t cdb[10] = { 0x5f, sa, type, 0, 0, 0, 0, 0, 24 }, p[24] = { 0 };
	put_be64(p, rk);
	put_be64(p + 8, sark);
	p[20] = flags;
	nexus = l;
	run(sc, cdb, sizeof cdb, p, sizeof p);
	nexus = &lu;
	scsi_cmd_release(sc);
	return sc->status;
}

/* PERSISTENT RESERVE IN sa from lu l into out (alloc bytes); returns the data-in length. */
static uint32_t pr_in(struct scsi_lu *l, uint8_t sa, uint8_t *out, uint16_t alloc)
{
	struct scsi_cmd sc;
	uint8_t cdb[10] = { 0x5e, sa, 0, 0, 0, 0, 0, (uint8_t)(alloc >> 8), (uint8_t)alloc };
	nexus = l;
	run(&sc, cdb, sizeof cdb, NULL, 0);
	nexus = &lu;
	CHECK_GOOD(&sc);
	uint32_t n = data_in(&sc, out, alloc);
	scsi_cmd_release(&sc);
	return n;
}

/* One READ(10) or WRITE(10) of block 1 from lu l; returns the status. */
static uint8_t pr_io(struct scsi_lu *l, bool write)
{
	struct scsi_cmd sc;
	uint8_t cdb[10] = { write ? 0x2a : 0x28, 0, 0, 0, 0, 1, 0, 0, 1 }, blk[SCSI_BLOCK_SIZE] = { 0 };
	nexus = l;
	run(&sc, cdb, sizeof cdb, write ? blk : NULL, write ? sizeof blk : 0);
	nexus = &lu;
	scsi_cmd_release(&sc);
	return sc.status;
}

/* RESERVE(6) / RELEASE(6) from lu l; returns the status. */
static uint8_t reserve6(struct scsi_lu *l, bool release)
{
	struct scsi_cmd sc;
	uint8_t cdb[6] = { release ? 0x17 : 0x16 };
	nexus = l;
	run(&sc, cdb, sizeof cdb, NULL, 0);
	nexus = &lu;
	scsi_cmd_release(&sc);
	return sc.status;
}

static void test_reserve6(void)
{
	struct scsi_cmd sc;
	setup(false);
	scsi_lu_fini(&lu2);
	scsi_lu_init(&lu2, &vd, "client/52:54:00:aa:bb:01", "iqn.2026-11.org.bootlink:client.525400aabb01");
	scsi_lu_set_port(&lu, SCSI_PROTO_ISCSI, "iqn.1993-08.org.debian:a,i,0x400000000001");
	scsi_lu_set_port(&lu2, SCSI_PROTO_ISCSI, "iqn.1993-08.org.debian:b,i,0x400000000002");
	UNIT_CTX("reserve6");
	CHECK_INT(reserve6(&lu, false), SCSI_GOOD);
	CHECK_INT(reserve6(&lu, false), SCSI_GOOD);                 /* again: still ours */
	CHECK_INT(reserve6(&lu2, false), SCSI_RESERVATION_CONFLICT);
	CHECK_INT(pr_io(&lu2, false), SCSI_RESERVATION_CONFLICT);
	CHECK_INT(pr_io(&lu, true), SCSI_GOOD);
	uint8_t msense[6] = { 0x1a, 0, 0x3f, 0, 255 }, inq[6] = { 0x12, 0, 0, 0, 96 };
	nexus = &lu2;
	run(&sc, msense, sizeof msense, NULL, 0);
	CHECK_INT(sc.status, SCSI_RESERVATION_CONFLICT);
	scsi_cmd_release(&sc);
	run(&sc, inq, sizeof inq, NULL, 0);
	CHECK_GOOD(&sc);
	scsi_cmd_release(&sc);
	nexus = &lu;
	CHECK_INT(pr_out(&sc, &lu2, 6, 0, 0, K2, 0), SCSI_RESERVATION_CONFLICT); /* no PR under an SPC-2 reservation */
	CHECK_INT(reserve6(&lu2, true), SCSI_GOOD);                 /* not the holder: no-op */
	CHECK_INT(pr_io(&lu2, false), SCSI_RESERVATION_CONFLICT);
	CHECK_INT(reserve6(&lu, true), SCSI_GOOD);
	CHECK_INT(pr_io(&lu2, false), SCSI_GOOD);

	UNIT_CTX("reserve6: released by a LUN reset and by the holder's nexus loss");
	CHECK_INT(reserve6(&lu2, false), SCSI_GOOD);
	scsi_lu_reset(&lu);                                          /* from another session */
	CHECK_INT(reserve6(&lu, false), SCSI_GOOD);
	scsi_lu_fini(&lu);
	CHECK_INT(reserve6(&lu2, false), SCSI_GOOD);
	scsi_lu_init(&lu, &vd, "client/52:54:00:aa:bb:01", "iqn.2026-11.org.bootlink:client.525400aabb01");
	scsi_lu_set_port(&lu, SCSI_PROTO_ISCSI, "iqn.1993-08.org.debian:a,i,0x400000000001");
	CHECK_INT(reserve6(&lu, false), SCSI_RESERVATION_CONFLICT); /* a new session does not reset it */
	CHECK_INT(reserve6(&lu2, true), SCSI_GOOD);

	UNIT_CTX("reserve6: not with persistent reservations");
	CHECK_INT(pr_out(&sc, &lu2, 6, 0, 0, K2, 0), SCSI_GOOD);
	CHECK_INT(reserve6(&lu, false), SCSI_RESERVATION_CONFLICT);
	CHECK_INT(pr_out(&sc, &lu2, 0, 0, K2, 0, 0), SCSI_GOOD);
	CHECK_INT(reserve6(&lu, false), SCSI_GOOD);
	CHECK_INT(reserve6(&lu, true), SCSI_GOOD);
	scsi_lu_fini(&lu2);
	UNIT_CTX(NULL);
}

static void test_persistent_reservations(void)
{
	struct scsi_cmd sc;
	uint8_t b[4096];
	setup(false);
	scsi_lu_fini(&lu2);
	scsi_lu_init(&lu2, &vd, "client/52:54:00:aa:bb:01", "iqn.2026-11.org.bootlink:client.525400aabb01");
	scsi_lu_set_port(&lu, SCSI_PROTO_ISCSI, "iqn.1993-08.org.debian:a,i,0x400000000001");
	scsi_lu_set_port(&lu2, SCSI_PROTO_ISCSI, "iqn.1993-08.org.debian:b,i,0x400000000002");
	CHECK(lu.pr == lu2.pr); /* one state per logical unit, shared by its sessions */

	UNIT_CTX("empty");
	CHECK_INT(pr_in(&lu, 0, b, sizeof b), 8);
	CHECK_INT(get_be32(b + 4), 0);
	uint32_t gen = get_be32(b);
	CHECK_INT(pr_in(&lu, 1, b, sizeof b), 8);
	CHECK_INT(pr_in(&lu, 2, b, sizeof b), 8);
	CHECK_INT(get_be16(b), 8);
	CHECK_INT(b[3] & 0x80, 0x80);            /* TMV */
	CHECK_INT(b[4], 0xea);                   /* WR_EX_AR EX_AC_RO WR_EX_RO EX_AC WR_EX */
	CHECK_INT(b[5], 0x01);                   /* EX_AC_AR */
	CHECK_INT(b[2] & 0x01, 0);               /* PTPL_C: not persistent across power loss */

	UNIT_CTX("register");
	CHECK_INT(pr_out(&sc, &lu, 0, 0, 0, K1, 0), SCSI_GOOD);
	CHECK_INT(pr_out(&sc, &lu, 0, 0, 0, K2, 0), SCSI_RESERVATION_CONFLICT); /* registered: rk must match */
	CHECK_INT(pr_out(&sc, &lu2, 6, 0, 0xdead, K2, 0), SCSI_GOOD);           /* REGISTER AND IGNORE */
	CHECK_INT(pr_in(&lu2, 0, b, sizeof b), 24);
	CHECK_INT(get_be32(b), gen + 2);
	CHECK_INT(get_be32(b + 4), 16);
	CHECK(get_be64(b + 8) == K1 && get_be64(b + 16) == K2);
	CHECK_INT(pr_in(&lu2, 0, b, 8), 8);      /* cut to the allocation length, ADDITIONAL LENGTH kept */
	CHECK_INT(get_be32(b + 4), 16);
	CHECK_INT(pr_out(&sc, &lu, 1, 1, K1, 0, 0x01), SCSI_CHECK_CONDITION);   /* APTPL */
	CHECK_SENSE(&sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM);
	CHECK_INT(pr_out(&sc, &lu, 1, 2, K1, 0, 0), SCSI_CHECK_CONDITION);      /* type 2 */
	CHECK_SENSE(&sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);

	UNIT_CTX("write exclusive");
	CHECK_INT(pr_out(&sc, &lu, 1, PR_WRITE_EXCLUSIVE, K2, 0, 0), SCSI_RESERVATION_CONFLICT); /* wrong key */
	CHECK_INT(pr_out(&sc, &lu, 1, PR_WRITE_EXCLUSIVE, K1, 0, 0), SCSI_GOOD);
	CHECK_INT(pr_out(&sc, &lu, 1, PR_WRITE_EXCLUSIVE, K1, 0, 0), SCSI_GOOD);  /* again: no change */
	CHECK_INT(pr_out(&sc, &lu2, 1, PR_WRITE_EXCLUSIVE, K2, 0, 0), SCSI_RESERVATION_CONFLICT);
	CHECK_INT(pr_in(&lu2, 1, b, sizeof b), 24);
	CHECK_INT(get_be32(b + 4), 16);
	CHECK(get_be64(b + 8) == K1);
	CHECK_INT(b[21], PR_WRITE_EXCLUSIVE);
	CHECK_INT(pr_io(&lu, true), SCSI_GOOD);
	CHECK_INT(pr_io(&lu2, false), SCSI_GOOD);
	CHECK_INT(pr_io(&lu2, true), SCSI_RESERVATION_CONFLICT);
	CHECK_INT(pr_out(&sc, &lu, 2, PR_EXCLUSIVE_ACCESS, K1, 0, 0), SCSI_CHECK_CONDITION); /* wrong type */
	CHECK_SENSE(&sc, SK_ILLEGAL_REQUEST, ASC_INVALID_RELEASE_OF_PR);
	CHECK_INT(pr_out(&sc, &lu2, 2, PR_WRITE_EXCLUSIVE, K2, 0, 0), SCSI_GOOD); /* not the holder: no-op */
	CHECK_INT(pr_io(&lu2, true), SCSI_RESERVATION_CONFLICT);
	CHECK_INT(pr_out(&sc, &lu, 2, PR_WRITE_EXCLUSIVE, K1, 0, 0), SCSI_GOOD);
	CHECK_INT(pr_io(&lu2, true), SCSI_GOOD);

	UNIT_CTX("exclusive access");
	CHECK_INT(pr_out(&sc, &lu, 1, PR_EXCLUSIVE_ACCESS, K1, 0, 0), SCSI_GOOD);
	CHECK_INT(pr_io(&lu2, false), SCSI_RESERVATION_CONFLICT);
	CHECK_INT(pr_io(&lu, false), SCSI_GOOD);
	uint8_t tur[6] = { 0 }, inq[6] = { 0x12, 0, 0, 0, 96 };
	nexus = &lu2;
	run(&sc, tur, sizeof tur, NULL, 0);  /* TEST UNIT READY and INQUIRY stay allowed */
	CHECK_GOOD(&sc);
	run(&sc, inq, sizeof inq, NULL, 0);
	CHECK_GOOD(&sc);
	scsi_cmd_release(&sc);
	nexus = &lu;

	UNIT_CTX("preempt");
	CHECK_INT(pr_in(&lu, 0, b, sizeof b), 24);
	gen = get_be32(b);
	CHECK_INT(pr_out(&sc, &lu2, 4, PR_WRITE_EXCLUSIVE, K2, 0x99, 0), SCSI_RESERVATION_CONFLICT); /* no such key */
	CHECK_INT(pr_out(&sc, &lu2, 4, PR_WRITE_EXCLUSIVE, K2, K1, 0), SCSI_GOOD);
	CHECK_INT(pr_in(&lu, 0, b, sizeof b), 16);
	CHECK_INT(get_be32(b), gen + 1);
	CHECK(get_be64(b + 8) == K2);
	CHECK_INT(pr_in(&lu, 1, b, sizeof b), 24);
	CHECK(get_be64(b + 8) == K2);
	CHECK_INT(b[21], PR_WRITE_EXCLUSIVE);
	CHECK_INT(pr_io(&lu, true), SCSI_RESERVATION_CONFLICT);
	CHECK_INT(pr_io(&lu, false), SCSI_GOOD);
	CHECK_INT(pr_out(&sc, &lu, 0, 0, K1, 0, 0), SCSI_RESERVATION_CONFLICT); /* lu's registration is gone */

	UNIT_CTX("read full status");
	uint32_t n = pr_in(&lu, 3, b, sizeof b);
	CHECK_INT(n, 8 + 24 + 4 + 44);
	CHECK_INT(get_be32(b + 4), n - 8);
	CHECK(get_be64(b + 8) == K2);
	CHECK_INT(b[8 + 12], 0x01);              /* R_HOLDER */
	CHECK_INT(b[8 + 13], PR_WRITE_EXCLUSIVE);
	CHECK_INT(get_be32(b + 8 + 20), 48);     /* TransportID length */
	CHECK_INT(b[32], 0x45);                  /* format 01b, iSCSI */
	CHECK_INT(get_be16(b + 34), 44);
	CHECK_STR((const char *)b + 36, "iqn.1993-08.org.debian:b,i,0x400000000002");

	UNIT_CTX("clear");
	CHECK_INT(pr_out(&sc, &lu2, 3, 0, K1, 0, 0), SCSI_RESERVATION_CONFLICT); /* wrong key */
	CHECK_INT(pr_out(&sc, &lu2, 3, 0, K2, 0, 0), SCSI_GOOD);
	CHECK_INT(pr_in(&lu, 0, b, sizeof b), 8);
	CHECK_INT(pr_in(&lu, 1, b, sizeof b), 8);
	CHECK_INT(pr_io(&lu, true), SCSI_GOOD);

	UNIT_CTX("all registrants");
	CHECK_INT(pr_out(&sc, &lu, 6, 0, 0, K1, 0), SCSI_GOOD);
	CHECK_INT(pr_out(&sc, &lu2, 6, 0, 0, K2, 0), SCSI_GOOD);
	CHECK_INT(pr_out(&sc, &lu, 1, PR_EXCLUSIVE_ACCESS_AR, K1, 0, 0), SCSI_GOOD);
	CHECK_INT(pr_in(&lu, 1, b, sizeof b), 24);
	CHECK(get_be64(b + 8) == 0);             /* every registrant holds it: key 0 */
	CHECK_INT(b[21], PR_EXCLUSIVE_ACCESS_AR);
	CHECK_INT(pr_io(&lu2, true), SCSI_GOOD);
	CHECK_INT(pr_out(&sc, &lu, 0, 0, K1, 0, 0), SCSI_GOOD);                /* unregister the reserver */
	CHECK_INT(pr_in(&lu, 1, b, sizeof b), 24);                             /* still reserved */
	CHECK_INT(pr_io(&lu, false), SCSI_RESERVATION_CONFLICT);               /* lu is no registrant now */
	CHECK_INT(pr_out(&sc, &lu2, 0, 0, K2, 0, 0), SCSI_GOOD);               /* the last registrant */
	CHECK_INT(pr_in(&lu, 1, b, sizeof b), 8);                              /* released */

	UNIT_CTX("registrants only: the holder leaving releases");
	CHECK_INT(pr_out(&sc, &lu, 6, 0, 0, K1, 0), SCSI_GOOD);
	CHECK_INT(pr_out(&sc, &lu2, 6, 0, 0, K2, 0), SCSI_GOOD);
	CHECK_INT(pr_out(&sc, &lu, 1, PR_WRITE_EXCLUSIVE_RO, K1, 0, 0), SCSI_GOOD);
	CHECK_INT(pr_io(&lu2, true), SCSI_GOOD);  /* a registrant */
	CHECK_INT(pr_out(&sc, &lu, 0, 0, K1, 0, 0), SCSI_GOOD);
	CHECK_INT(pr_in(&lu, 1, b, sizeof b), 8);

	UNIT_CTX("state outlives the sessions");
	scsi_lu_fini(&lu);
	scsi_lu_fini(&lu2);
	scsi_lu_init(&lu, &vd, "client/52:54:00:aa:bb:01", "iqn.2026-11.org.bootlink:client.525400aabb01");
	scsi_lu_set_port(&lu, SCSI_PROTO_ISCSI, "iqn.1993-08.org.debian:a,i,0x400000000001");
	CHECK_INT(pr_in(&lu, 0, b, sizeof b), 16);
	CHECK(get_be64(b + 8) == K2);
	scsi_lu_init(&lu2, &vd, "image/other", "iqn.x");  /* another LU: its own state */
	scsi_lu_set_port(&lu2, SCSI_PROTO_ISCSI, "iqn.1993-08.org.debian:a,i,0x400000000001");
	CHECK(lu.pr != lu2.pr);
	CHECK_INT(pr_in(&lu2, 0, b, sizeof b), 8);
	scsi_lu_fini(&lu2);
	UNIT_CTX(NULL);
}

int main(void)
{
	(void)vd_zeros_unused;
	test_refusals();
	test_inquiry();
	test_capacity();
	test_read();
	test_write();
	test_verify();
	test_mode();
	test_misc();
	test_unmap_write_same();
	test_errno_to_sense();
	test_reserve6();
	test_persistent_reservations();
	scsi_lu_fini(&lu);
	return unit_done();
}
