/* scsi.c — command table, command lifecycle, sense data; see scsi.h.
 *
 * Lifecycle of a command: scsi_cmd_start() finds the table row (unknown
 * opcode → INVALID COMMAND OPERATION CODE, unsupported service action →
 * INVALID FIELD IN CDB, missing LUN → LOGICAL UNIT NOT SUPPORTED), runs
 * its check(); a command that takes data-out waits for the transport's
 * scsi_cmd_data() calls and scsi_cmd_data_end(), then exec() runs and
 * finally scsi_complete() calls done() exactly once.
 *
 * Streaming writes keep a count of disk writes in flight; the command
 * completes when the data has ended and the count is zero. The sequential
 * runner (UNMAP descriptors, WRITE SAME chunks) issues one request at a
 * time and loops instead of recursing when requests complete inline.
 */
#include "scsi_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "worker.h"

#define SA_IN16  0x9e   /* SERVICE ACTION IN(16) */
#define MAINT_IN 0xa3   /* MAINTENANCE IN */
#define PR_IN    0x5e   /* PERSISTENT RESERVE IN */
#define PR_OUT   0x5f   /* PERSISTENT RESERVE OUT */

const struct scsi_op scsi_ops[] = {
	{ 0x00, false, 0, 6, 0, "TEST UNIT READY", scsi_chk_none, scsi_exec_good },
	{ 0x03, false, 0, 6, OPF_ANY_LUN, "REQUEST SENSE", scsi_chk_request_sense, scsi_exec_request_sense },
	{ 0x08, false, 0, 6, OPF_PR_READ, "READ(6)", scsi_chk_read, scsi_exec_read },
	{ 0x0a, false, 0, 6, OPF_STREAM | OPF_PR_WRITE, "WRITE(6)", scsi_chk_write, scsi_exec_write },
	{ 0x12, false, 0, 6, OPF_ANY_LUN, "INQUIRY", scsi_chk_inquiry, scsi_exec_inquiry },
	{ 0x15, false, 0, 6, OPF_PR_WRITE, "MODE SELECT(6)", scsi_chk_mode_select, scsi_exec_mode_select },
	{ 0x16, false, 0, 6, 0, "RESERVE(6)", scsi_chk_reserve6, scsi_exec_reserve6 },
	{ 0x17, false, 0, 6, 0, "RELEASE(6)", scsi_chk_reserve6, scsi_exec_reserve6 },
	{ 0x1a, false, 0, 6, OPF_PR_READ, "MODE SENSE(6)", scsi_chk_mode_sense, scsi_exec_mode_sense },
	{ 0x1b, false, 0, 6, OPF_PR_WRITE, "START STOP UNIT", scsi_chk_start_stop, scsi_exec_good },
	{ 0x1e, false, 0, 6, OPF_PR_WRITE, "PREVENT ALLOW MEDIUM REMOVAL", scsi_chk_none, scsi_exec_good },
	{ 0x25, false, 0, 10, 0, "READ CAPACITY(10)", scsi_chk_read_capacity10, scsi_exec_read_capacity10 },
	{ 0x28, false, 0, 10, OPF_PR_READ, "READ(10)", scsi_chk_read, scsi_exec_read },
	{ 0x2a, false, 0, 10, OPF_STREAM | OPF_PR_WRITE, "WRITE(10)", scsi_chk_write, scsi_exec_write },
	{ 0x2e, false, 0, 10, OPF_STREAM | OPF_PR_WRITE, "WRITE AND VERIFY(10)", scsi_chk_write, scsi_exec_write },
	{ 0x2f, false, 0, 10, OPF_PR_READ, "VERIFY(10)", scsi_chk_verify, scsi_exec_verify },
	{ 0x34, false, 0, 10, OPF_PR_READ, "PRE-FETCH(10)", scsi_chk_prefetch, scsi_exec_prefetch },
	{ 0x35, false, 0, 10, OPF_PR_WRITE, "SYNCHRONIZE CACHE(10)", scsi_chk_sync, scsi_exec_sync },
	{ 0x41, false, 0, 10, OPF_PR_WRITE, "WRITE SAME(10)", scsi_chk_write_same, scsi_exec_write_same },
	{ 0x42, false, 0, 10, OPF_PR_WRITE, "UNMAP", scsi_chk_unmap, scsi_exec_unmap },
	{ 0x55, false, 0, 10, OPF_PR_WRITE, "MODE SELECT(10)", scsi_chk_mode_select, scsi_exec_mode_select },
	{ 0x5a, false, 0, 10, OPF_PR_READ, "MODE SENSE(10)", scsi_chk_mode_sense, scsi_exec_mode_sense },
	{ 0x88, false, 0, 16, OPF_PR_READ, "READ(16)", scsi_chk_read, scsi_exec_read },
	{ 0x8a, false, 0, 16, OPF_STREAM | OPF_PR_WRITE, "WRITE(16)", scsi_chk_write, scsi_exec_write },
	{ 0x8e, false, 0, 16, OPF_STREAM | OPF_PR_WRITE, "WRITE AND VERIFY(16)", scsi_chk_write, scsi_exec_write },
	{ 0x8f, false, 0, 16, OPF_PR_READ, "VERIFY(16)", scsi_chk_verify, scsi_exec_verify },
	{ 0x90, false, 0, 16, OPF_PR_READ, "PRE-FETCH(16)", scsi_chk_prefetch, scsi_exec_prefetch },
	{ 0x91, false, 0, 16, OPF_PR_WRITE, "SYNCHRONIZE CACHE(16)", scsi_chk_sync, scsi_exec_sync },
	{ 0x93, false, 0, 16, OPF_PR_WRITE, "WRITE SAME(16)", scsi_chk_write_same, scsi_exec_write_same },
	{ SA_IN16, true, 0x10, 16, 0, "READ CAPACITY(16)", scsi_chk_read_capacity16, scsi_exec_read_capacity16 },
	{ SA_IN16, true, 0x12, 16, OPF_PR_READ, "GET LBA STATUS", scsi_chk_get_lba_status, scsi_exec_get_lba_status },
	{ 0xa0, false, 0, 12, OPF_ANY_LUN, "REPORT LUNS", scsi_chk_report_luns, scsi_exec_report_luns },
	{ PR_IN, true, 0x00, 10, 0, "PERSISTENT RESERVE IN (READ KEYS)", scsi_chk_pr_in, scsi_exec_pr_in },
	{ PR_IN, true, 0x01, 10, 0, "PERSISTENT RESERVE IN (READ RESERVATION)", scsi_chk_pr_in, scsi_exec_pr_in },
	{ PR_IN, true, 0x02, 10, 0, "PERSISTENT RESERVE IN (REPORT CAPABILITIES)", scsi_chk_pr_in, scsi_exec_pr_in },
	{ PR_IN, true, 0x03, 10, 0, "PERSISTENT RESERVE IN (READ FULL STATUS)", scsi_chk_pr_in, scsi_exec_pr_in },
	{ PR_OUT, true, 0x00, 10, 0, "PERSISTENT RESERVE OUT (REGISTER)", scsi_chk_pr_out, scsi_exec_pr_out },
	{ PR_OUT, true, 0x01, 10, 0, "PERSISTENT RESERVE OUT (RESERVE)", scsi_chk_pr_out, scsi_exec_pr_out },
	{ PR_OUT, true, 0x02, 10, 0, "PERSISTENT RESERVE OUT (RELEASE)", scsi_chk_pr_out, scsi_exec_pr_out },
	{ PR_OUT, true, 0x03, 10, 0, "PERSISTENT RESERVE OUT (CLEAR)", scsi_chk_pr_out, scsi_exec_pr_out },
	{ PR_OUT, true, 0x04, 10, 0, "PERSISTENT RESERVE OUT (PREEMPT)", scsi_chk_pr_out, scsi_exec_pr_out },
	{ PR_OUT, true, 0x05, 10, 0, "PERSISTENT RESERVE OUT (PREEMPT AND ABORT)", scsi_chk_pr_out, scsi_exec_pr_out },
	{ PR_OUT, true, 0x06, 10, 0, "PERSISTENT RESERVE OUT (REGISTER AND IGNORE EXISTING KEY)", scsi_chk_pr_out, scsi_exec_pr_out },
	{ MAINT_IN, true, 0x0c, 12, 0, "REPORT SUPPORTED OPERATION CODES", scsi_chk_rsoc, scsi_exec_rsoc },
	{ 0xa8, false, 0, 12, OPF_PR_READ, "READ(12)", scsi_chk_read, scsi_exec_read },
	{ 0xaa, false, 0, 12, OPF_STREAM | OPF_PR_WRITE, "WRITE(12)", scsi_chk_write, scsi_exec_write },
	{ 0xae, false, 0, 12, OPF_STREAM | OPF_PR_WRITE, "WRITE AND VERIFY(12)", scsi_chk_write, scsi_exec_write },
	{ 0xaf, false, 0, 12, OPF_PR_READ, "VERIFY(12)", scsi_chk_verify, scsi_exec_verify },
};
const unsigned scsi_nops = ARRAY_SIZE(scsi_ops);

bool scsi_opcode_has_sa(uint8_t opcode)
{
	return opcode == SA_IN16 || opcode == MAINT_IN || opcode == PR_IN || opcode == PR_OUT;
}

const struct scsi_op *scsi_op_find(uint8_t opcode, uint8_t sa)
{
	for (unsigned i = 0; i < scsi_nops; i++)
		if (scsi_ops[i].opcode == opcode && (!scsi_ops[i].has_sa || scsi_ops[i].sa == sa))
			return &scsi_ops[i];
	return NULL;
}

const char *scsi_cmd_name(const uint8_t *cdb)
{
	const struct scsi_op *op = scsi_op_find(cdb[0], cdb[1] & 0x1f);
	return op ? op->name : "unsupported command";
}

/* --- LU --- */

/* FNV-1a: a stable 64-bit hash of the LU name for serial and NAA. */
static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

/* Mode parameters as after power on. */
static void mode_defaults(struct scsi_lu *lu)
{
	lu->wce = true;
	lu->swp = false;
}

void scsi_lu_init(struct scsi_lu *lu, struct vdisk *vd, const char *lu_name, const char *target_name)
{
	memset(lu, 0, sizeof *lu);
	lu->vd = vd;
	lu->nblocks = vd->size >> SCSI_BLOCK_SHIFT;
	uint64_t h = name_hash(lu_name);
	snprintf(lu->serial, sizeof lu->serial, "%016llx", (unsigned long long)h);
	lu->naa = 3ull << 60 | (h & ((1ull << 60) - 1));
	snprintf(lu->name, sizeof lu->name, "%s", lu_name);
	snprintf(lu->target_name, sizeof lu->target_name, "%s", target_name);
	lu->tpgt = 1;
	lu->pr = scsi_pr_get(lu_name);
	mode_defaults(lu);
}

void scsi_lu_set_port(struct scsi_lu *lu, uint8_t proto, const char *port)
{
	lu->proto = proto;
	snprintf(lu->port, sizeof lu->port, "%s", port);
}

void scsi_lu_nexus_loss(struct scsi_lu *lu)
{
	scsi_pr_reset(lu->pr, lu->port);
}

void scsi_lu_fini(struct scsi_lu *lu)
{
	scsi_lu_nexus_loss(lu);
	scsi_pr_put(lu->pr);
	lu->pr = NULL;
}

void scsi_lu_reset(struct scsi_lu *lu)
{
	mode_defaults(lu);
	scsi_pr_reset(lu->pr, NULL);
}

bool scsi_lu_write_protected(const struct scsi_lu *lu)
{
	return lu->vd->read_only || lu->swp;
}

bool scsi_lbp_enabled(const struct scsi_lu *lu)
{
	return !lu->vd->read_only;
}

/* --- sense --- */

void scsi_sense_info(struct scsi_cmd *sc, enum scsi_sense_key key, enum scsi_asc asc, uint64_t info)
{
	uint8_t *s = sc->sense;
	memset(s, 0, SCSI_SENSE_LEN);
	s[0] = 0x70;                   /* current error, fixed format */
	s[2] = key;
	s[7] = SCSI_SENSE_LEN - 8;     /* additional sense length */
	s[12] = asc >> 8;
	s[13] = asc & 0xff;
	if (info != UINT64_MAX) {
		s[0] |= 0x80;          /* VALID: INFORMATION holds info */
		put_be32(s + 3, (uint32_t)info);
	}
	sc->sense_len = SCSI_SENSE_LEN;
	sc->status = SCSI_CHECK_CONDITION;
}

void scsi_sense(struct scsi_cmd *sc, enum scsi_sense_key key, enum scsi_asc asc)
{
	scsi_sense_info(sc, key, asc, UINT64_MAX);
}

void errno_to_sense(struct scsi_cmd *sc, int err, enum vd_op op)
{
	switch (err) {
	case -EPERM:
	case -EROFS:
	case -EACCES:
		scsi_sense(sc, SK_DATA_PROTECT, ASC_WRITE_PROTECTED);
		break;
	case -ENOSPC:
	case -EDQUOT:
		scsi_sense(sc, SK_DATA_PROTECT, ASC_SPACE_ALLOC_FAILED_WP);
		break;
	case -EINVAL:
	case -ERANGE:
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
		break;
	case -EOPNOTSUPP:
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		break;
	case -EILSEQ:
		scsi_sense(sc, SK_MISCOMPARE, ASC_MISCOMPARE_DURING_VERIFY);
		break;
	case -ENOMEM:
	case -EAGAIN:
	case -EBUSY:
		scsi_sense(sc, SK_ABORTED_COMMAND, ASC_INSUFFICIENT_RESOURCES);
		break;
	case -ECANCELED:
		scsi_sense(sc, SK_ABORTED_COMMAND, ASC_NO_ADDITIONAL_SENSE);
		break;
	case -EIO:
	case -ENODATA:
	case -EBADF:
		scsi_sense(sc, SK_MEDIUM_ERROR, op == VD_READ ? ASC_READ_ERROR : ASC_WRITE_ERROR);
		break;
	default:
		scsi_sense(sc, SK_HARDWARE_ERROR, ASC_INTERNAL_TARGET_FAILURE);
		break;
	}
}

/* --- lifecycle --- */

void scsi_complete(struct scsi_cmd *sc)
{
	sc->finished = true;
	sc->done(sc);
}

int scsi_alloc_buf(struct scsi_cmd *sc, uint32_t len)
{
	free(sc->buf);
	sc->buf = calloc(1, len ? len : 1);
	if (!sc->buf) {
		errno_to_sense(sc, -ENOMEM, VD_READ);
		return -1;
	}
	sc->buf_len = len;
	return 0;
}

void scsi_data_in(struct scsi_cmd *sc, uint32_t len, uint32_t alloc_len)
{
	sc->buf_iov.iov_base = sc->buf;
	sc->buf_iov.iov_len = MIN(len, alloc_len);
	sc->in_iov = &sc->buf_iov;
	sc->in_niov = 1;
	sc->in_len = (uint32_t)sc->buf_iov.iov_len;
	scsi_complete(sc);
}

void scsi_vd_prep(struct scsi_cmd *sc, struct vd_req *vr, enum vd_op op, uint64_t off, uint64_t len,
		  void (*done)(struct vd_req *vr, int res), void *owner)
{
	memset(vr, 0, sizeof *vr);
	vr->vd = sc->lu->vd;
	vr->w = sc->w;
	vr->op = op;
	vr->flags = 0;
	vr->off = off;
	vr->len = len;
	vr->wdata = NULL;
	vr->done = done;
	vr->owner = owner;
	vr->client_id = sc->client_id;
	vr->learn = sc->learn && op == VD_READ;
	if (op == VD_READ && sc->lu)
		vd_req_track_seq(vr, &sc->lu->next_read, off, len);
	vr->iov = vr->iov_inline;
	vr->blks = vr->blk_inline;
}

/* Reset everything scsi_cmd_start() and the result use. */
static void cmd_reset(struct scsi_cmd *sc)
{
	sc->dir = SCSI_DIR_NONE;
	sc->out_len = 0;
	sc->status = SCSI_GOOD;
	sc->sense_len = 0;
	sc->in_iov = NULL;
	sc->in_niov = 0;
	sc->in_len = 0;
	sc->op = NULL;
	sc->lba = 0;
	sc->nblocks = 0;
	sc->vflags = 0;
	sc->mode = 0;
	memset(&sc->vr, 0, sizeof sc->vr);
	sc->vr.iov = sc->vr.iov_inline;
	sc->vr.blks = sc->vr.blk_inline;
	sc->buf = NULL;
	sc->buf_len = 0;
	sc->received = 0;
	sc->pending = 0;
	sc->err = 0;
	sc->data_ended = false;
	sc->finished = false;
	sc->in_step = sc->step_inline = false;
}

/* The table row for the CDB, or NULL with sense set. */
static const struct scsi_op *lookup(struct scsi_cmd *sc)
{
	const struct scsi_op *op = scsi_op_find(sc->cdb[0], sc->cdb[1] & 0x1f);
	if (op)
		return op;
	if (scsi_opcode_has_sa(sc->cdb[0]))
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
	else
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_OPCODE);
	return NULL;
}

void scsi_cmd_start(struct scsi_cmd *sc)
{
	if (sc->w)
		worker_note_request(sc->w);
	cmd_reset(sc);
	const struct scsi_op *op = lookup(sc);
	if (!op) {
		scsi_complete(sc);
		return;
	}
	sc->op = op;
	if (!sc->lu && !(op->flags & OPF_ANY_LUN)) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_LUN_NOT_SUPPORTED);
		scsi_complete(sc);
		return;
	}
	/* Persistent reservations of other I_T nexuses (SPC-4 §5.14.1). */
	if (sc->lu && (op->flags & (OPF_PR_READ | OPF_PR_WRITE)) &&
	    scsi_pr_conflict(sc->lu->pr, sc->lu->port, op->flags & OPF_PR_WRITE)) {
		sc->status = SCSI_RESERVATION_CONFLICT;
		scsi_complete(sc);
		return;
	}
	/* CONTROL byte: NACA (bit 2) needs ACA, which we do not offer. */
	if ((sc->cdb[op->cdb_len - 1] & 0x04) || op->check(sc) < 0) {
		if (sc->status == SCSI_GOOD)
			scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
		scsi_complete(sc);
		return;
	}
	if (sc->dir == SCSI_DIR_OUT && sc->out_len > 0)
		return; /* the transport feeds the data-out */
	op->exec(sc);
}

void scsi_cmd_data(struct scsi_cmd *sc, const void *data, uint32_t len)
{
	if (sc->finished || sc->data_ended || sc->received >= sc->out_len)
		return;
	uint32_t take = MIN(len, sc->out_len - sc->received);
	if (sc->op->flags & OPF_STREAM)
		scsi_stream_write(sc, sc->received, data, take);
	else
		memcpy(sc->buf + sc->received, data, take);
	sc->received += take;
}

void scsi_cmd_data_end(struct scsi_cmd *sc)
{
	if (sc->finished || sc->data_ended)
		return;
	sc->data_ended = true;
	if (sc->op->flags & OPF_STREAM) {
		scsi_stream_end(sc);
		return;
	}
	sc->buf_len = sc->received;
	sc->op->exec(sc);
}

void scsi_cmd_release(struct scsi_cmd *sc)
{
	vd_req_release(&sc->vr);
	free(sc->buf);
	sc->buf = NULL;
	sc->in_iov = NULL;
}

/* --- streaming writes --- */

struct wpiece {
	struct vd_req vr;
	struct scsi_cmd *sc;
};

/* All data and all its writes are in: the command's outcome. */
static void stream_finish(struct scsi_cmd *sc)
{
	if (sc->err)
		errno_to_sense(sc, sc->err, VD_WRITE);
	scsi_complete(sc);
}

/* One streamed write finished; the last one after the data ends completes. */
static void piece_done(struct vd_req *vr, int res)
{
	struct wpiece *p = vr->owner;
	struct scsi_cmd *sc = p->sc;
	vd_req_release(vr);
	free(p);
	if (res < 0 && !sc->err)
		sc->err = res;
	if (--sc->pending == 0 && sc->data_ended)
		stream_finish(sc);
}

void scsi_stream_write(struct scsi_cmd *sc, uint32_t off, const void *data, uint32_t len)
{
	if (sc->err || len == 0)
		return;
	struct wpiece *p = malloc(sizeof *p);
	if (!p) {
		sc->err = -ENOMEM;
		return;
	}
	p->sc = sc;
	scsi_vd_prep(sc, &p->vr, VD_WRITE, (sc->lba << SCSI_BLOCK_SHIFT) + off, len, piece_done, p);
	p->vr.wdata = data;
	p->vr.flags = sc->vflags;
	sc->pending++;
	int r = vdisk_submit(&p->vr);
	if (r < 0) {
		sc->pending--;
		sc->err = r;
		free(p);
	}
}

void scsi_stream_end(struct scsi_cmd *sc)
{
	if (sc->pending == 0)
		stream_finish(sc);
}

/* --- sequential runner --- */

static void run_loop(struct scsi_cmd *sc)
{
	while (!sc->err && sc->run_pos < sc->run_end) {
		sc->in_step = true;
		sc->step_inline = false;
		int r = sc->step(sc);
		sc->in_step = false;
		if (r < 0) {
			sc->err = r;
		} else if (r > 0) {
			sc->run_pos++;
		} else if (!sc->step_inline) {
			return; /* scsi_step_done resumes */
		}
	}
	if (sc->err)
		errno_to_sense(sc, sc->err, sc->vr.op);
	scsi_complete(sc);
}

void scsi_step_done(struct vd_req *vr, int res)
{
	struct scsi_cmd *sc = vr->owner;
	vd_req_release(vr);
	if (res < 0 && !sc->err)
		sc->err = res;
	sc->run_pos++;
	if (sc->in_step) {
		sc->step_inline = true;
		return;
	}
	run_loop(sc);
}

void scsi_run(struct scsi_cmd *sc, scsi_step_fn step, uint64_t n)
{
	sc->step = step;
	sc->run_pos = 0;
	sc->run_end = n;
	run_loop(sc);
}

/* --- shared checks --- */

int scsi_check_range(struct scsi_cmd *sc, uint64_t lba, uint64_t nblocks)
{
	if (lba > sc->lu->nblocks || nblocks > sc->lu->nblocks - lba) {
		scsi_sense(sc, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
		return -1;
	}
	return 0;
}

int scsi_check_writable(struct scsi_cmd *sc)
{
	if (scsi_lu_write_protected(sc->lu)) {
		errno_to_sense(sc, -EROFS, VD_WRITE);
		return -1;
	}
	return 0;
}
