/* scsi_block.c — SBC-3 block commands: READ, WRITE, WRITE AND VERIFY,
 * VERIFY, SYNCHRONIZE CACHE, PRE-FETCH, UNMAP, WRITE SAME.
 *
 * Checks run in this order, each failing with its own sense: CDB fields
 * (protection bits, reserved flags) → LBA range → transfer length cap →
 * write protection. Reads return the vdisk's iovecs untouched (zero
 * copy); writes stream (scsi.c); UNMAP and pattern WRITE SAME go through
 * the sequential runner. VERIFY with BYTCHK reads the range and compares
 * it with the buffered data-out; a difference is MISCOMPARE with the
 * offset of the first differing byte in INFORMATION.
 */
#include "scsi_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* LBA and block count of a READ/WRITE/VERIFY/WRITE SAME/SYNCHRONIZE
 * CACHE/PRE-FETCH CDB, by CDB length. */
static void decode_lba(const uint8_t *cdb, uint8_t cdb_len, uint64_t *lba, uint32_t *n)
{
	switch (cdb_len) {
	case 6:
		*lba = (uint32_t)(cdb[1] & 0x1f) << 16 | (uint32_t)cdb[2] << 8 | cdb[3];
		*n = cdb[4] ? cdb[4] : 256; /* READ/WRITE(6): 0 means 256 blocks */
		break;
	case 10:
		*lba = get_be32(cdb + 2);
		*n = get_be16(cdb + 7);
		break;
	case 12:
		*lba = get_be32(cdb + 2);
		*n = get_be32(cdb + 6);
		break;
	default:
		*lba = get_be64(cdb + 2);
		*n = get_be32(cdb + 10);
		break;
	}
}

/* ILLEGAL REQUEST / INVALID FIELD IN CDB; returns -1. */
static int invalid_cdb(struct scsi_cmd *sc)
{
	scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
	return -1;
}

/* Decode LBA/length, reject protection information (byte 1, bits 5-7),
 * check range and the transfer cap. */
static int check_rw(struct scsi_cmd *sc)
{
	decode_lba(sc->cdb, sc->op->cdb_len, &sc->lba, &sc->nblocks);
	if (sc->op->cdb_len > 6 && (sc->cdb[1] >> 5))
		return invalid_cdb(sc);
	if (scsi_check_range(sc, sc->lba, sc->nblocks) < 0)
		return -1;
	if (sc->nblocks > SCSI_MAX_XFER_BLOCKS)
		return invalid_cdb(sc);
	return 0;
}

int scsi_chk_read(struct scsi_cmd *sc)
{
	if (check_rw(sc) < 0)
		return -1;
	sc->dir = SCSI_DIR_IN;
	return 0;
}

/* The read is in: its iovecs are the data-in. */
static void read_done(struct vd_req *vr, int res)
{
	struct scsi_cmd *sc = vr->owner;
	if (res < 0) {
		errno_to_sense(sc, res, VD_READ);
	} else {
		sc->in_iov = vr->iov;
		sc->in_niov = vr->niov;
		sc->in_len = (uint32_t)vr->len;
	}
	scsi_complete(sc);
}

void scsi_exec_read(struct scsi_cmd *sc)
{
	if (sc->nblocks == 0) {
		scsi_complete(sc);
		return;
	}
	scsi_vd_prep(sc, &sc->vr, VD_READ, sc->lba << SCSI_BLOCK_SHIFT, (uint64_t)sc->nblocks << SCSI_BLOCK_SHIFT,
		     read_done, sc);
	int r = vdisk_submit(&sc->vr);
	if (r < 0) {
		errno_to_sense(sc, r, VD_READ);
		scsi_complete(sc);
	}
}

int scsi_chk_write(struct scsi_cmd *sc)
{
	if (check_rw(sc) < 0 || scsi_check_writable(sc) < 0)
		return -1;
	bool verify = (sc->cdb[0] & 0x0f) == 0x0e; /* WRITE AND VERIFY: written through */
	bool fua = sc->op->cdb_len > 6 && (sc->cdb[1] & 0x08);
	sc->vflags = (fua || verify || !sc->lu->wce) ? VD_F_FUA : 0;
	sc->dir = SCSI_DIR_OUT;
	sc->out_len = sc->nblocks << SCSI_BLOCK_SHIFT;
	return 0;
}

void scsi_exec_write(struct scsi_cmd *sc)
{
	/* Reached only with nothing to write; data goes through scsi_stream_write(). */
	scsi_complete(sc);
}

/* VERIFY: BYTCHK (byte 1, bits 1-2) 0 = check the medium only, 1 = compare
 * data-out with the medium, 3 = compare one block with every block. */
int scsi_chk_verify(struct scsi_cmd *sc)
{
	if (check_rw(sc) < 0)
		return -1;
	sc->mode = (sc->cdb[1] >> 1) & 3;
	if (sc->mode == 2)
		return invalid_cdb(sc);
	if (sc->mode == 0 || sc->nblocks == 0)
		return 0;
	sc->dir = SCSI_DIR_OUT;
	sc->out_len = sc->mode == 1 ? sc->nblocks << SCSI_BLOCK_SHIFT : SCSI_BLOCK_SIZE;
	return scsi_alloc_buf(sc, sc->out_len);
}

/* Offset of the first byte where the medium (iov) differs from the
 * expected data, or -1. */
static int64_t first_difference(const struct scsi_cmd *sc, const struct vd_req *vr)
{
	uint64_t pos = 0;
	for (int i = 0; i < vr->niov; i++) {
		const uint8_t *d = vr->iov[i].iov_base;
		for (size_t k = 0; k < vr->iov[i].iov_len; k++, pos++) {
			uint8_t want = sc->mode == 1 ? sc->buf[pos] : sc->buf[pos % SCSI_BLOCK_SIZE];
			if (pos < sc->received || sc->mode == 3) {
				if (d[k] != want)
					return (int64_t)pos;
			}
		}
	}
	return -1;
}

/* The medium is read: compare it with the data-out. */
static void verify_done(struct vd_req *vr, int res)
{
	struct scsi_cmd *sc = vr->owner;
	if (res < 0) {
		errno_to_sense(sc, res, VD_READ);
	} else {
		int64_t at = first_difference(sc, vr);
		if (at >= 0)
			scsi_sense_info(sc, SK_MISCOMPARE, ASC_MISCOMPARE_DURING_VERIFY, (uint64_t)at);
	}
	vd_req_release(vr);
	scsi_complete(sc);
}

void scsi_exec_verify(struct scsi_cmd *sc)
{
	if (sc->mode == 0 || sc->nblocks == 0 || (sc->mode == 3 && sc->received < SCSI_BLOCK_SIZE)) {
		scsi_complete(sc);
		return;
	}
	scsi_vd_prep(sc, &sc->vr, VD_READ, sc->lba << SCSI_BLOCK_SHIFT, (uint64_t)sc->nblocks << SCSI_BLOCK_SHIFT,
		     verify_done, sc);
	int r = vdisk_submit(&sc->vr);
	if (r < 0) {
		errno_to_sense(sc, r, VD_READ);
		scsi_complete(sc);
	}
}

/* SYNCHRONIZE CACHE and PRE-FETCH: LBA + blocks (0 = to the end). */
static int check_range_to_end(struct scsi_cmd *sc)
{
	decode_lba(sc->cdb, sc->op->cdb_len, &sc->lba, &sc->nblocks);
	if (scsi_check_range(sc, sc->lba, sc->nblocks) < 0)
		return -1;
	return 0;
}

int scsi_chk_sync(struct scsi_cmd *sc)
{
	return check_range_to_end(sc);
}

/* A request that is the whole command finished. */
static void simple_done(struct vd_req *vr, int res)
{
	struct scsi_cmd *sc = vr->owner;
	if (res < 0)
		errno_to_sense(sc, res, vr->op);
	vd_req_release(vr);
	scsi_complete(sc);
}

/* Submit one request covering the whole command, completing with simple_done. */
static void submit_simple(struct scsi_cmd *sc, enum vd_op op, uint64_t off, uint64_t len)
{
	scsi_vd_prep(sc, &sc->vr, op, off, len, simple_done, sc);
	int r = vdisk_submit(&sc->vr);
	if (r < 0) {
		errno_to_sense(sc, r, op);
		scsi_complete(sc);
	}
}

void scsi_exec_sync(struct scsi_cmd *sc)
{
	submit_simple(sc, VD_FLUSH, 0, 0);
}

int scsi_chk_prefetch(struct scsi_cmd *sc)
{
	return check_range_to_end(sc);
}

void scsi_exec_prefetch(struct scsi_cmd *sc)
{
	uint64_t n = sc->nblocks ? sc->nblocks : sc->lu->nblocks - sc->lba;
	if (n == 0) {
		scsi_complete(sc);
		return;
	}
	submit_simple(sc, VD_CACHE, sc->lba << SCSI_BLOCK_SHIFT, n << SCSI_BLOCK_SHIFT);
}

/* UNMAP: parameter list = 8-byte header + 16-byte block descriptors. */
int scsi_chk_unmap(struct scsi_cmd *sc)
{
	uint32_t plen = get_be16(sc->cdb + 7);
	if (sc->cdb[1] & 0x01) /* ANCHOR: not supported */
		return invalid_cdb(sc);
	if (scsi_check_writable(sc) < 0)
		return -1;
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

/* Trim the range of UNMAP descriptor run_pos. */
static int unmap_step(struct scsi_cmd *sc)
{
	const uint8_t *d = sc->buf + 8 + 16 * sc->run_pos;
	uint64_t lba = get_be64(d);
	uint32_t n = get_be32(d + 8);
	if (n == 0)
		return 1;
	scsi_vd_prep(sc, &sc->vr, VD_TRIM, lba << SCSI_BLOCK_SHIFT, (uint64_t)n << SCSI_BLOCK_SHIFT, scsi_step_done, sc);
	return vdisk_submit(&sc->vr);
}

void scsi_exec_unmap(struct scsi_cmd *sc)
{
	if (sc->buf_len == 0) {
		scsi_complete(sc);
		return;
	}
	if (sc->buf_len < 8) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
		scsi_complete(sc);
		return;
	}
	uint32_t ndesc = MIN(get_be16(sc->buf + 2), sc->buf_len - 8) / 16;
	if (ndesc > SCSI_MAX_UNMAP_DESC) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM);
		scsi_complete(sc);
		return;
	}
	for (uint32_t i = 0; i < ndesc; i++) {
		const uint8_t *d = sc->buf + 8 + 16 * i;
		if (scsi_check_range(sc, get_be64(d), get_be32(d + 8)) < 0) {
			scsi_complete(sc);
			return;
		}
		if (get_be32(d + 8) > SCSI_MAX_UNMAP_BLOCKS) {
			scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM);
			scsi_complete(sc);
			return;
		}
	}
	scsi_run(sc, unmap_step, ndesc);
}

/* WRITE SAME(10/16): byte 1 = WRPROTECT(5-7) ANCHOR(4) UNMAP(3) NDOB(0, 16 only). */
#define WS_UNMAP 0x08
#define WS_NDOB  0x01

int scsi_chk_write_same(struct scsi_cmd *sc)
{
	decode_lba(sc->cdb, sc->op->cdb_len, &sc->lba, &sc->nblocks);
	uint8_t f = sc->cdb[1];
	if ((f >> 5) || (f & 0x10) || (sc->op->cdb_len == 10 && (f & WS_NDOB)))
		return invalid_cdb(sc);
	if (scsi_check_range(sc, sc->lba, sc->nblocks) < 0)
		return -1;
	if (sc->nblocks == 0 || sc->nblocks > SCSI_MAX_WS_BLOCKS) /* WSNZ is set in Block Limits */
		return invalid_cdb(sc);
	if (scsi_check_writable(sc) < 0)
		return -1;
	sc->mode = f & (WS_UNMAP | WS_NDOB);
	if (f & WS_NDOB)
		return 0;
	if (sc->out_expected != SCSI_BLOCK_SIZE) /* the data-out is exactly one block */
		return invalid_cdb(sc);
	sc->dir = SCSI_DIR_OUT;
	sc->out_len = SCSI_BLOCK_SIZE;
	return scsi_alloc_buf(sc, SCSI_BLOCK_SIZE);
}

/* Is the block all zeros (a WRITE SAME that can be a write-zeroes)? */
static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* One chunk of a pattern WRITE SAME (sc->buf holds the pattern, repeated). */
static int ws_step(struct scsi_cmd *sc)
{
	uint64_t total = (uint64_t)sc->nblocks << SCSI_BLOCK_SHIFT;
	uint64_t off = sc->run_pos * SCSI_WS_CHUNK;
	scsi_vd_prep(sc, &sc->vr, VD_WRITE, (sc->lba << SCSI_BLOCK_SHIFT) + off, MIN(SCSI_WS_CHUNK, total - off),
		     scsi_step_done, sc);
	sc->vr.wdata = sc->buf;
	sc->vr.flags = sc->lu->wce ? 0 : VD_F_FUA;
	return vdisk_submit(&sc->vr);
}

/* WRITE SAME of zeros: one write-zeroes, deallocating if UNMAP is set. */
static int ws_zero_step(struct scsi_cmd *sc)
{
	scsi_vd_prep(sc, &sc->vr, VD_ZERO, sc->lba << SCSI_BLOCK_SHIFT, (uint64_t)sc->nblocks << SCSI_BLOCK_SHIFT,
		     scsi_step_done, sc);
	sc->vr.flags = (sc->mode & WS_UNMAP) ? 0 : VD_F_NO_HOLE;
	return vdisk_submit(&sc->vr);
}

void scsi_exec_write_same(struct scsi_cmd *sc)
{
	if ((sc->mode & WS_NDOB) || sc->received < SCSI_BLOCK_SIZE || all_zero(sc->buf, SCSI_BLOCK_SIZE)) {
		if (!(sc->mode & WS_NDOB) && sc->received < SCSI_BLOCK_SIZE) {
			scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
			scsi_complete(sc);
			return;
		}
		scsi_run(sc, ws_zero_step, 1);
		return;
	}
	uint64_t total = (uint64_t)sc->nblocks << SCSI_BLOCK_SHIFT;
	uint32_t chunk = (uint32_t)MIN(total, SCSI_WS_CHUNK);
	uint8_t *pat = malloc(chunk);
	if (!pat) {
		errno_to_sense(sc, -ENOMEM, VD_WRITE);
		scsi_complete(sc);
		return;
	}
	for (uint32_t o = 0; o < chunk; o += SCSI_BLOCK_SIZE)
		memcpy(pat + o, sc->buf, SCSI_BLOCK_SIZE);
	free(sc->buf);
	sc->buf = pat;
	scsi_run(sc, ws_step, (total + SCSI_WS_CHUNK - 1) / SCSI_WS_CHUNK);
}
