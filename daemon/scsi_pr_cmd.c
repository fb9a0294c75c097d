/* scsi_pr_cmd.c — PERSISTENT RESERVE IN / OUT (SPC-4 §6.15, §6.16) and
 * RESERVE(6) / RELEASE(6) (SPC-2 §7.21, §7.17): CDB and parameter list
 * decoding around the per-logical-unit state of scsi_pr.c.
 *
 * PERSISTENT RESERVE OUT takes the basic 24-byte parameter list only:
 * SPEC_I_PT, ALL_TG_PT and APTPL are refused (REPORT CAPABILITIES says so),
 * and REGISTER AND MOVE is not offered (INVALID FIELD IN CDB, from the
 * command table).
 */
#include "scsi_priv.h"

#include <errno.h>

#include "util.h"

#define PR_OUT_PARAM_LEN 24u
#define PR_SCOPE_LU      0

#define SA_RESERVE       1
#define SA_RELEASE       2
#define SA_PREEMPT       4
#define SA_PREEMPT_ABORT 5

/* PERSISTENT RESERVE IN: byte 1 = SERVICE ACTION, bytes 7-8 = ALLOCATION LENGTH. */
int scsi_chk_pr_in(struct scsi_cmd *sc)
{
	sc->dir = SCSI_DIR_IN;
	return 0;
}

void scsi_exec_pr_in(struct scsi_cmd *sc)
{
	uint32_t alloc = get_be16(sc->cdb + 7);
	if (scsi_alloc_buf(sc, SCSI_PR_IN_MAX) < 0) {
		scsi_complete(sc);
		return;
	}
	int len = scsi_pr_in(sc->lu->pr, sc->cdb[1] & 0x1f, sc->lu->proto, sc->buf);
	if (len < 0) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		scsi_complete(sc);
		return;
	}
	scsi_data_in(sc, (uint32_t)len, alloc);
}

/* PERSISTENT RESERVE OUT: byte 1 = SERVICE ACTION, byte 2 = SCOPE(4-7)
 * TYPE(0-3), bytes 5-8 = PARAMETER LIST LENGTH (24). */
int scsi_chk_pr_out(struct scsi_cmd *sc)
{
	uint8_t sa = sc->cdb[1] & 0x1f;
	uint32_t plen = get_be32(sc->cdb + 5);
	bool scoped = sa == SA_RESERVE || sa == SA_RELEASE || sa == SA_PREEMPT || sa == SA_PREEMPT_ABORT;
	if (scoped && (sc->cdb[2] >> 4) != PR_SCOPE_LU) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		return -1;
	}
	if (plen != PR_OUT_PARAM_LEN) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
		return -1;
	}
	sc->dir = SCSI_DIR_OUT;
	sc->out_len = plen;
	return scsi_alloc_buf(sc, plen);
}

void scsi_exec_pr_out(struct scsi_cmd *sc)
{
	const uint8_t *p = sc->buf;
	if (sc->buf_len < PR_OUT_PARAM_LEN) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
		scsi_complete(sc);
		return;
	}
	/* byte 20: SPEC_I_PT(3) ALL_TG_PT(2) APTPL(0): none offered */
	if (p[20] & 0x0d) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM);
		scsi_complete(sc);
		return;
	}
	switch (scsi_pr_out(sc->lu->pr, sc->lu->port, sc->cdb[1] & 0x1f, sc->cdb[2] & 0x0f, get_be64(p),
			    get_be64(p + 8))) {
	case PR_OK:
		break;
	case PR_CONFLICT:
		sc->status = SCSI_RESERVATION_CONFLICT;
		break;
	case PR_BAD_TYPE:
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		break;
	case PR_BAD_RELEASE:
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_RELEASE_OF_PR);
		break;
	case PR_BAD_PARAM:
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM);
		break;
	case PR_NO_RESOURCES:
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INSUFFICIENT_REG_RESOURCES);
		break;
	}
	scsi_complete(sc);
}

/* RESERVE(6) / RELEASE(6): byte 1 bits 0-4 (3RDPTY, extents: obsolete) must be 0. */
int scsi_chk_reserve6(struct scsi_cmd *sc)
{
	if (sc->cdb[1] & 0x1f || get_be16(sc->cdb + 3)) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		return -1;
	}
	return 0;
}

void scsi_exec_reserve6(struct scsi_cmd *sc)
{
	enum scsi_pr_result r = sc->cdb[0] == 0x16 ? scsi_pr_reserve6(sc->lu->pr, sc->lu->port)
						   : scsi_pr_release6(sc->lu->pr, sc->lu->port);
	if (r == PR_CONFLICT)
		sc->status = SCSI_RESERVATION_CONFLICT;
	else if (r != PR_OK)
		errno_to_sense(sc, -ENOMEM, VD_READ);
	scsi_complete(sc);
}
