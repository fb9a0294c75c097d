/* scsi_spc.c — commands that describe the device (SPC-4, SBC-3): INQUIRY
 * and its VPD pages, MODE SENSE / MODE SELECT, READ CAPACITY, GET LBA
 * STATUS, REPORT LUNS, REPORT SUPPORTED OPERATION CODES, REQUEST SENSE,
 * and the no-op commands (TEST UNIT READY, START STOP UNIT, PREVENT ALLOW
 * MEDIUM REMOVAL).
 *
 * Each builds its answer in sc->buf and returns at most the allocation
 * length from the CDB (scsi_data_in). Mode pages: Caching (0x08, WCE
 * changeable), Control (0x0A, SWP changeable), Informational Exceptions
 * Control (0x1C, nothing changeable); saved values are not supported.
 */
#include "scsi_priv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define VENDOR    "BOOTLINK"
#define PRODUCT   "VIRTUAL DISK"
#define REVISION  "0001"

/* Version descriptors (SPC-4 table 29): SAM-5, iSCSI, SPC-4, SBC-3. */
static const uint16_t version_desc[] = { 0x00a0, 0x0960, 0x0460, 0x04c0 };

int scsi_chk_none(struct scsi_cmd *sc)
{
	return 0;
}

void scsi_exec_good(struct scsi_cmd *sc)
{
	scsi_complete(sc);
}

/* ILLEGAL REQUEST / INVALID FIELD IN CDB; returns -1. */
static int invalid_cdb(struct scsi_cmd *sc)
{
	scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
	return -1;
}

/* START STOP UNIT: byte 4 = POWER CONDITION(4-7) NO_FLUSH(2) LOEJ(1) START(0).
 * Our medium is not removable: loading/ejecting is refused. */
int scsi_chk_start_stop(struct scsi_cmd *sc)
{
	uint8_t pc = sc->cdb[4] >> 4;
	if (pc == 0 && (sc->cdb[4] & 0x02))
		return invalid_cdb(sc);
	return 0;
}

/* Space-padded ASCII field. */
static void ascii(uint8_t *dst, const char *s, size_t n)
{
	size_t l = strlen(s);
	memset(dst, ' ', n);
	memcpy(dst, s, MIN(l, n));
}

/* --- INQUIRY --- */

int scsi_chk_inquiry(struct scsi_cmd *sc)
{
	if ((sc->cdb[1] & 0xfe) || (!(sc->cdb[1] & 0x01) && sc->cdb[2]))
		return invalid_cdb(sc);
	sc->dir = SCSI_DIR_IN;
	return scsi_alloc_buf(sc, 1024);
}

/* Standard INQUIRY data (SPC-4 §6.4.2). */
static uint32_t std_inquiry(const struct scsi_cmd *sc, uint8_t *b)
{
	uint32_t len = 58 + 2 * ARRAY_SIZE(version_desc);
	b[0] = sc->lu ? 0x00 : 0x7f;  /* direct access block device / no LU here */
	b[2] = 0x06;                  /* VERSION: SPC-4 */
	b[3] = 0x12;                  /* HISUP, RESPONSE DATA FORMAT 2 */
	b[4] = len - 5;               /* ADDITIONAL LENGTH */
	b[7] = 0x02;                  /* CMDQUE */
	ascii(b + 8, VENDOR, 8);
	ascii(b + 16, PRODUCT, 16);
	ascii(b + 32, REVISION, 4);
	for (unsigned i = 0; i < ARRAY_SIZE(version_desc); i++)
		put_be16(b + 58 + 2 * i, version_desc[i]);
	return len;
}

/* One designation descriptor (SPC-4 §7.8.6.1); returns its length. */
static uint32_t designator(uint8_t *d, uint8_t proto_codeset, uint8_t piv_assoc_type, const void *id, uint32_t len)
{
	uint32_t padded = (len + 3) & ~3u;
	d[0] = proto_codeset;
	d[1] = piv_assoc_type;
	d[3] = (uint8_t)padded;
	memcpy(d + 4, id, len);
	memset(d + 4 + len, 0, padded - len);
	return 4 + padded;
}

/* Device Identification VPD (0x83). */
static uint32_t vpd_devid(const struct scsi_lu *lu, uint8_t *b)
{
	uint8_t naa[8], port[4] = { 0, 0, lu->tpgt >> 8, lu->tpgt & 0xff };
	char t10[8 + sizeof lu->name], name[sizeof lu->target_name + 16];
	uint32_t n = 4;
	put_be64(naa, lu->naa);
	n += designator(b + n, 0x01, 0x03, naa, 8);                  /* LU: NAA, binary */
	int l = snprintf(t10, sizeof t10, VENDOR "%s", lu->name);
	n += designator(b + n, 0x02, 0x01, t10, (uint32_t)MIN((size_t)l, sizeof t10 - 1)); /* LU: T10 vendor id, ASCII */
	n += designator(b + n, 0x51, 0x94, port, 4);                 /* port: relative target port, iSCSI */
	l = snprintf(name, sizeof name, "%s,t,0x%04x", lu->target_name, lu->tpgt);
	n += designator(b + n, 0x53, 0x98, name, (uint32_t)l + 1);   /* port: SCSI name string, UTF-8 */
	n += designator(b + n, 0x53, 0xa8, lu->target_name, (uint32_t)strlen(lu->target_name) + 1); /* target */
	return n;
}

/* Block Limits VPD (0xB0, SBC-3 §6.5.3). */
static uint32_t vpd_block_limits(const struct scsi_lu *lu, uint8_t *b)
{
	bool lbp = scsi_lbp_enabled(lu);
	b[4] = 0x01;                                     /* WSNZ: WRITE SAME of 0 blocks refused */
	put_be16(b + 6, 1u << SCSI_PBLOCK_EXP);          /* OPTIMAL TRANSFER LENGTH GRANULARITY */
	put_be32(b + 8, SCSI_MAX_XFER_BLOCKS);           /* MAXIMUM TRANSFER LENGTH */
	put_be32(b + 12, SCSI_OPT_XFER_BLOCKS);          /* OPTIMAL TRANSFER LENGTH */
	put_be32(b + 16, (uint32_t)(VD_MAX_PREFETCH >> SCSI_BLOCK_SHIFT)); /* MAXIMUM PREFETCH LENGTH */
	put_be32(b + 20, lbp ? SCSI_MAX_UNMAP_BLOCKS : 0); /* MAXIMUM UNMAP LBA COUNT */
	put_be32(b + 24, lbp ? SCSI_MAX_UNMAP_DESC : 0);   /* MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT */
	put_be32(b + 28, 1u << SCSI_PBLOCK_EXP);         /* OPTIMAL UNMAP GRANULARITY */
	put_be64(b + 36, SCSI_MAX_WS_BLOCKS);            /* MAXIMUM WRITE SAME LENGTH */
	return 64;
}

/* The VPD page requested by cdb[2] into b; 0 if we have no such page. */
static uint32_t vpd_page(const struct scsi_lu *lu, uint8_t page, uint8_t *b)
{
	static const uint8_t pages[] = { 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 };
	uint32_t n;
	b[1] = page;
	switch (page) {
	case 0x00: /* Supported VPD pages */
		memcpy(b + 4, pages, sizeof pages);
		n = 4 + sizeof pages;
		break;
	case 0x80: /* Unit Serial Number */
		n = 4 + (uint32_t)strlen(lu->serial);
		memcpy(b + 4, lu->serial, n - 4);
		break;
	case 0x83:
		n = vpd_devid(lu, b);
		break;
	case 0xb0:
		n = vpd_block_limits(lu, b);
		break;
	case 0xb1: /* Block Device Characteristics: non-rotating medium */
		put_be16(b + 4, 1);
		n = 64;
		break;
	case 0xb2: /* Logical Block Provisioning: LBPU, LBPWS, LBPWS10, thin */
		b[5] = scsi_lbp_enabled(lu) ? 0xe0 : 0;
		b[6] = scsi_lbp_enabled(lu) ? 0x02 : 0;
		n = 8;
		break;
	default:
		return 0;
	}
	put_be16(b + 2, (uint16_t)(n - 4));
	return n;
}

void scsi_exec_inquiry(struct scsi_cmd *sc)
{
	uint32_t alloc = get_be16(sc->cdb + 3), n;
	if (!(sc->cdb[1] & 0x01)) {
		n = std_inquiry(sc, sc->buf);
	} else if (!sc->lu) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_LUN_NOT_SUPPORTED);
		scsi_complete(sc);
		return;
	} else if (!(n = vpd_page(sc->lu, sc->cdb[2], sc->buf))) {
		invalid_cdb(sc);
		scsi_complete(sc);
		return;
	}
	scsi_data_in(sc, n, alloc);
}

/* --- REQUEST SENSE --- */

int scsi_chk_request_sense(struct scsi_cmd *sc)
{
	if (sc->cdb[1] & 0xfe)
		return invalid_cdb(sc);
	sc->dir = SCSI_DIR_IN;
	return scsi_alloc_buf(sc, SCSI_SENSE_LEN);
}

/* No sense is ever pending (it goes out with CHECK CONDITION); a missing
 * LUN reports LOGICAL UNIT NOT SUPPORTED. DESC (byte 1 bit 0) selects
 * descriptor format. */
void scsi_exec_request_sense(struct scsi_cmd *sc)
{
	uint8_t key = sc->lu ? SK_NO_SENSE : SK_ILLEGAL_REQUEST;
	uint16_t asc = sc->lu ? ASC_NO_ADDITIONAL_SENSE : ASC_LUN_NOT_SUPPORTED;
	uint32_t n;
	if (sc->cdb[1] & 0x01) {
		sc->buf[0] = 0x72;
		sc->buf[1] = key;
		sc->buf[2] = asc >> 8;
		sc->buf[3] = asc & 0xff;
		n = 8;
	} else {
		sc->buf[0] = 0x70;
		sc->buf[2] = key;
		sc->buf[7] = SCSI_SENSE_LEN - 8;
		sc->buf[12] = asc >> 8;
		sc->buf[13] = asc & 0xff;
		n = SCSI_SENSE_LEN;
	}
	scsi_data_in(sc, n, sc->cdb[4]);
}

/* --- MODE SENSE / MODE SELECT --- */

enum { PC_CURRENT = 0, PC_CHANGEABLE = 1, PC_DEFAULT = 2, PC_SAVED = 3 };
#define PAGE_CACHING 0x08
#define PAGE_CONTROL 0x0a
#define PAGE_IEC     0x1c
#define PAGE_ALL     0x3f

/* Build mode page `page` for page control pc into p; returns its length, 0 if unknown. */
static uint32_t mode_page(const struct scsi_lu *lu, uint8_t page, int pc, uint8_t *p)
{
	switch (page) {
	case PAGE_CACHING: /* WCE (byte 2 bit 2) */
		memset(p, 0, 20);
		p[0] = PAGE_CACHING;
		p[1] = 18;
		p[2] = pc == PC_CHANGEABLE || pc == PC_DEFAULT || lu->wce ? 0x04 : 0;
		return 20;
	case PAGE_CONTROL: /* QUEUE ALGORITHM MODIFIER 1 (byte 3), SWP (byte 4 bit 3) */
		memset(p, 0, 12);
		p[0] = PAGE_CONTROL;
		p[1] = 10;
		if (pc == PC_CHANGEABLE) {
			p[4] = 0x08;
		} else {
			p[3] = 0x10;
			p[4] = pc == PC_CURRENT && lu->swp ? 0x08 : 0;
			put_be16(p + 8, 0xffff); /* BUSY TIMEOUT PERIOD: unlimited */
		}
		return 12;
	case PAGE_IEC: /* DEXCPT (byte 2 bit 3): no informational exceptions */
		memset(p, 0, 12);
		p[0] = PAGE_IEC;
		p[1] = 10;
		p[2] = pc == PC_CHANGEABLE ? 0 : 0x08;
		return 12;
	}
	return 0;
}

int scsi_chk_mode_sense(struct scsi_cmd *sc)
{
	uint8_t page = sc->cdb[2] & 0x3f, pc = sc->cdb[2] >> 6, sub = sc->cdb[3];
	if (pc == PC_SAVED) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_SAVING_NOT_SUPPORTED);
		return -1;
	}
	if (page != PAGE_CACHING && page != PAGE_CONTROL && page != PAGE_IEC && page != PAGE_ALL)
		return invalid_cdb(sc);
	if (sub != 0 && !(page == PAGE_ALL && sub == 0xff))
		return invalid_cdb(sc);
	sc->dir = SCSI_DIR_IN;
	return scsi_alloc_buf(sc, 256);
}

void scsi_exec_mode_sense(struct scsi_cmd *sc)
{
	static const uint8_t all[] = { PAGE_CACHING, PAGE_CONTROL, PAGE_IEC };
	bool ten = sc->cdb[0] == 0x5a, dbd = sc->cdb[1] & 0x08, llba = ten && (sc->cdb[1] & 0x10);
	uint8_t page = sc->cdb[2] & 0x3f, pc = sc->cdb[2] >> 6, *b = sc->buf;
	uint32_t hdr = ten ? 8 : 4, bdl = dbd ? 0 : llba ? 16 : 8, n = hdr + bdl;
	uint64_t blocks = sc->lu->nblocks;
	uint8_t dsp = (scsi_lu_write_protected(sc->lu) ? 0x80 : 0) | 0x10; /* WP, DPOFUA */
	if (bdl == 8) {
		put_be32(b + hdr, blocks > 0xffffffffull ? 0xffffffffu : (uint32_t)blocks);
		put_be32(b + hdr + 4, SCSI_BLOCK_SIZE);
	} else if (bdl == 16) {
		put_be64(b + hdr, blocks);
		put_be32(b + hdr + 12, SCSI_BLOCK_SIZE);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(all); i++)
		if (page == PAGE_ALL || page == all[i])
			n += mode_page(sc->lu, all[i], pc, b + n);
	if (ten) {
		put_be16(b, (uint16_t)(n - 2));
		b[3] = dsp;
		b[4] = llba && bdl ? 0x01 : 0; /* LONGLBA */
		put_be16(b + 6, (uint16_t)bdl);
	} else {
		b[0] = (uint8_t)(n - 1);
		b[2] = dsp;
		b[3] = (uint8_t)bdl;
	}
	scsi_data_in(sc, n, ten ? get_be16(sc->cdb + 7) : sc->cdb[4]);
}

int scsi_chk_mode_select(struct scsi_cmd *sc)
{
	bool ten = sc->cdb[0] == 0x55;
	uint32_t plen = ten ? get_be16(sc->cdb + 7) : sc->cdb[4];
	if (sc->cdb[1] & 0x01) /* SP: saving is not supported */
		return invalid_cdb(sc);
	if (plen == 0)
		return 0;
	if (plen > SCSI_MAX_PARAM_LEN) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
		return -1;
	}
	sc->dir = SCSI_DIR_OUT;
	sc->out_len = plen;
	return scsi_alloc_buf(sc, plen);
}

/* Check one page of a MODE SELECT list against the changeable mask and
 * apply it. 0, or -1 with sense set. */
static int select_page(struct scsi_cmd *sc, const uint8_t *p, uint32_t len)
{
	uint8_t cur[32], chg[32];
	uint32_t n = mode_page(sc->lu, p[0] & 0x3f, PC_CURRENT, cur);
	if ((p[0] & 0x40) || n == 0 || len != n || p[1] != cur[1]) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM);
		return -1;
	}
	mode_page(sc->lu, p[0] & 0x3f, PC_CHANGEABLE, chg);
	for (uint32_t i = 2; i < n; i++) {
		if ((p[i] ^ cur[i]) & ~chg[i]) {
			scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM);
			return -1;
		}
	}
	if ((p[0] & 0x3f) == PAGE_CACHING)
		sc->lu->wce = p[2] & 0x04;
	else if ((p[0] & 0x3f) == PAGE_CONTROL)
		sc->lu->swp = p[4] & 0x08;
	return 0;
}

void scsi_exec_mode_select(struct scsi_cmd *sc)
{
	bool ten = sc->cdb[0] == 0x55;
	uint32_t hdr = ten ? 8 : 4, len = sc->buf_len, pos;
	if (len == 0) {
		scsi_complete(sc);
		return;
	}
	if (len < hdr) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
		scsi_complete(sc);
		return;
	}
	uint32_t bdl = ten ? get_be16(sc->buf + 6) : sc->buf[3];
	pos = hdr + bdl;
	if (pos > len) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
		scsi_complete(sc);
		return;
	}
	while (pos + 2 <= len) {
		uint32_t plen = 2 + sc->buf[pos + 1];
		if (pos + plen > len) {
			scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
			break;
		}
		if (select_page(sc, sc->buf + pos, plen) < 0)
			break;
		pos += plen;
	}
	scsi_complete(sc);
}

/* --- capacity and provisioning --- */

int scsi_chk_read_capacity10(struct scsi_cmd *sc)
{
	if (!(sc->cdb[8] & 0x01) && get_be32(sc->cdb + 2)) /* LBA without PMI */
		return invalid_cdb(sc);
	sc->dir = SCSI_DIR_IN;
	return scsi_alloc_buf(sc, 8);
}

void scsi_exec_read_capacity10(struct scsi_cmd *sc)
{
	uint64_t last = sc->lu->nblocks ? sc->lu->nblocks - 1 : 0;
	put_be32(sc->buf, last > 0xffffffffull ? 0xffffffffu : (uint32_t)last);
	put_be32(sc->buf + 4, SCSI_BLOCK_SIZE);
	scsi_data_in(sc, 8, 8);
}

int scsi_chk_read_capacity16(struct scsi_cmd *sc)
{
	sc->dir = SCSI_DIR_IN;
	return scsi_alloc_buf(sc, 32);
}

void scsi_exec_read_capacity16(struct scsi_cmd *sc)
{
	uint8_t *b = sc->buf;
	put_be64(b, sc->lu->nblocks ? sc->lu->nblocks - 1 : 0);
	put_be32(b + 8, SCSI_BLOCK_SIZE);
	b[13] = SCSI_PBLOCK_EXP;                        /* LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT */
	b[14] = scsi_lbp_enabled(sc->lu) ? 0x80 : 0;    /* LBPME */
	scsi_data_in(sc, 32, get_be32(sc->cdb + 10));
}

int scsi_chk_get_lba_status(struct scsi_cmd *sc)
{
	sc->lba = get_be64(sc->cdb + 2);
	if (sc->lba >= sc->lu->nblocks) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
		return -1;
	}
	sc->dir = SCSI_DIR_IN;
	return scsi_alloc_buf(sc, 8 + 16 * SCSI_MAX_LBA_DESC);
}

/* LBA status descriptors from the disk's extents: mapped (0) or deallocated (1). */
void scsi_exec_get_lba_status(struct scsi_cmd *sc)
{
	struct vd_extent ext[SCSI_MAX_LBA_DESC];
	uint32_t alloc = get_be32(sc->cdb + 10);
	uint64_t lba = sc->lba, left = sc->lu->nblocks - lba;
	int cnt = vdisk_extents(sc->lu->vd, lba << SCSI_BLOCK_SHIFT, left << SCSI_BLOCK_SHIFT, ext, SCSI_MAX_LBA_DESC);
	if (cnt < 0) {
		errno_to_sense(sc, cnt, VD_READ);
		scsi_complete(sc);
		return;
	}
	uint32_t n = 0;
	for (int i = 0; i < cnt && left; i++) {
		uint64_t blocks = MIN(MAX(ext[i].len >> SCSI_BLOCK_SHIFT, 1), left);
		uint8_t *d = sc->buf + 8 + 16 * n++;
		put_be64(d, lba);
		put_be32(d + 8, (uint32_t)MIN(blocks, 0xffffffffull));
		d[12] = ext[i].flags & VD_EXT_HOLE ? 1 : 0;
		lba += blocks;
		left -= blocks;
	}
	put_be32(sc->buf, 4 + 16 * n); /* PARAMETER DATA LENGTH */
	scsi_data_in(sc, 8 + 16 * n, alloc);
}

/* --- REPORT LUNS --- */

int scsi_chk_report_luns(struct scsi_cmd *sc)
{
	uint8_t sel = sc->cdb[2];
	if (get_be32(sc->cdb + 6) < 16 || (sel > 0x02 && (sel < 0x10 || sel > 0x12)))
		return invalid_cdb(sc);
	sc->dir = SCSI_DIR_IN;
	return scsi_alloc_buf(sc, 16);
}

/* One LUN: 0 (select reports 0x10-0x12 ask for administrative LUs: none). */
void scsi_exec_report_luns(struct scsi_cmd *sc)
{
	bool none = sc->cdb[2] >= 0x10 && sc->cdb[2] != 0x12;
	put_be32(sc->buf, none ? 0 : 8); /* LUN LIST LENGTH */
	scsi_data_in(sc, none ? 8 : 16, get_be32(sc->cdb + 6));
}

/* --- REPORT SUPPORTED OPERATION CODES --- */

#define RSOC_RCTD 0x80

int scsi_chk_rsoc(struct scsi_cmd *sc)
{
	uint8_t opt = sc->cdb[2] & 0x07, opcode = sc->cdb[3];
	if (opt > 3 || (opt == 1 && scsi_opcode_has_sa(opcode)) || (opt == 2 && !scsi_opcode_has_sa(opcode)))
		return invalid_cdb(sc);
	sc->dir = SCSI_DIR_IN;
	return scsi_alloc_buf(sc, 4 + scsi_nops * 20 + 64);
}

/* Command timeouts descriptor (SPC-4 §6.35.4): none advertised. */
static uint32_t timeouts(uint8_t *d)
{
	put_be16(d, 0x000a);
	return 12;
}

/* CDB usage data: the opcode, then every bit we may look at. */
static void usage_data(const struct scsi_op *op, uint8_t *u)
{
	u[0] = op->opcode;
	memset(u + 1, 0xff, op->cdb_len - 2);
	if (op->has_sa)
		u[1] = op->sa;
	u[op->cdb_len - 1] = 0;
}

void scsi_exec_rsoc(struct scsi_cmd *sc)
{
	uint8_t opt = sc->cdb[2] & 0x07, *b = sc->buf;
	bool rctd = sc->cdb[2] & RSOC_RCTD;
	uint32_t n;
	if (opt == 0) {
		n = 4;
		for (unsigned i = 0; i < scsi_nops; i++) {
			const struct scsi_op *op = &scsi_ops[i];
			b[n] = op->opcode;
			put_be16(b + n + 2, op->sa);
			b[n + 5] = (rctd ? 0x02 : 0) | (op->has_sa ? 0x01 : 0); /* CTDP, SERVACTV */
			put_be16(b + n + 6, op->cdb_len);
			n += 8;
			if (rctd)
				n += timeouts(b + n);
		}
		put_be32(b, n - 4);
	} else {
		const struct scsi_op *op = scsi_op_find(sc->cdb[3], (uint8_t)get_be16(sc->cdb + 4));
		if (op && op->has_sa && get_be16(sc->cdb + 4) != op->sa)
			op = NULL;
		b[1] = (rctd ? 0x80 : 0) | (op ? 0x03 : 0x01); /* CTDP, SUPPORT: supported / not supported */
		n = 4;
		if (op) {
			put_be16(b + 2, op->cdb_len);
			usage_data(op, b + 4);
			n += op->cdb_len;
			if (rctd)
				n += timeouts(b + n);
		}
	}
	scsi_data_in(sc, n, get_be32(sc->cdb + 6));
}
