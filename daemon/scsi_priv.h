/* scsi_priv.h — what scsi.c, scsi_block.c and scsi_spc.c share; not an
 * interface for the transports (they use scsi.h).
 *
 * Each command is a row of the table in scsi.c: check() decodes and
 * validates the CDB (setting dir, out_len, lba, nblocks; on failure it
 * sets sense and returns -1), exec() runs a valid command once its
 * data-out, if any, has arrived, and ends with scsi_complete().
 */
#ifndef BL_SCSI_PRIV_H
#define BL_SCSI_PRIV_H

#include "scsi.h"

#define OPF_ANY_LUN  1u   /* answered even for a LUN that does not exist */
#define OPF_STREAM   2u   /* data-out goes to the disk as it arrives (block writes) */
#define OPF_PR_READ  4u   /* RESERVATION CONFLICT under an Exclusive Access reservation of others */
#define OPF_PR_WRITE 8u   /* RESERVATION CONFLICT under any reservation of others */

struct scsi_op {
	uint8_t opcode;
	bool has_sa;                          /* opcode has service actions (CDB byte 1, bits 0-4) */
	uint8_t sa;                           /* the service action of this row */
	uint8_t cdb_len;
	unsigned flags;                       /* OPF_* */
	const char *name;
	int (*check)(struct scsi_cmd *sc);    /* decode + validate: 0, or -1 with sense set */
	void (*exec)(struct scsi_cmd *sc);    /* run a validated command */
};

extern const struct scsi_op scsi_ops[];
extern const unsigned scsi_nops;
/* The row for opcode (and service action, for opcodes that have them), or NULL. */
const struct scsi_op *scsi_op_find(uint8_t opcode, uint8_t sa);
bool scsi_opcode_has_sa(uint8_t opcode);

/* Finish: done() runs. */
void scsi_complete(struct scsi_cmd *sc);
/* A zeroed buffer of len bytes in sc->buf (0, or -1 with sense set). */
int scsi_alloc_buf(struct scsi_cmd *sc, uint32_t len);
/* Return buf[0, min(len, alloc_len)) as data-in and complete. */
void scsi_data_in(struct scsi_cmd *sc, uint32_t len, uint32_t alloc_len);
/* Fill a vdisk request of sc. */
void scsi_vd_prep(struct scsi_cmd *sc, struct vd_req *vr, enum vd_op op, uint64_t off, uint64_t len,
		  void (*done)(struct vd_req *vr, int res), void *owner);
/* Run step() n times, one vdisk request at a time; each step submits a
 * request completing with scsi_step_done (returns 0), submits nothing
 * (returns 1) or fails (-errno). Completes sc at the end. */
void scsi_run(struct scsi_cmd *sc, scsi_step_fn step, uint64_t n);
void scsi_step_done(struct vd_req *vr, int res);
/* Write data-out piece [off, off+len) of a streaming write. */
void scsi_stream_write(struct scsi_cmd *sc, uint32_t off, const void *data, uint32_t len);
void scsi_stream_end(struct scsi_cmd *sc);

/* Checks shared by the command families: 0, or -1 with sense set. */
int scsi_check_range(struct scsi_cmd *sc, uint64_t lba, uint64_t nblocks);
int scsi_check_writable(struct scsi_cmd *sc);
bool scsi_lbp_enabled(const struct scsi_lu *lu);   /* thin provisioning (UNMAP) offered */

/* Command families (scsi_block.c) */
int scsi_chk_read(struct scsi_cmd *sc);
void scsi_exec_read(struct scsi_cmd *sc);
int scsi_chk_write(struct scsi_cmd *sc);
void scsi_exec_write(struct scsi_cmd *sc);
int scsi_chk_verify(struct scsi_cmd *sc);
void scsi_exec_verify(struct scsi_cmd *sc);
int scsi_chk_sync(struct scsi_cmd *sc);
void scsi_exec_sync(struct scsi_cmd *sc);
int scsi_chk_prefetch(struct scsi_cmd *sc);
void scsi_exec_prefetch(struct scsi_cmd *sc);
int scsi_chk_unmap(struct scsi_cmd *sc);
void scsi_exec_unmap(struct scsi_cmd *sc);
int scsi_chk_write_same(struct scsi_cmd *sc);
void scsi_exec_write_same(struct scsi_cmd *sc);

/* Command families (scsi_spc.c) */
int scsi_chk_none(struct scsi_cmd *sc);
void scsi_exec_good(struct scsi_cmd *sc);
int scsi_chk_start_stop(struct scsi_cmd *sc);
int scsi_chk_inquiry(struct scsi_cmd *sc);
void scsi_exec_inquiry(struct scsi_cmd *sc);
int scsi_chk_request_sense(struct scsi_cmd *sc);
void scsi_exec_request_sense(struct scsi_cmd *sc);
int scsi_chk_mode_sense(struct scsi_cmd *sc);
void scsi_exec_mode_sense(struct scsi_cmd *sc);
int scsi_chk_mode_select(struct scsi_cmd *sc);
void scsi_exec_mode_select(struct scsi_cmd *sc);
int scsi_chk_read_capacity10(struct scsi_cmd *sc);
void scsi_exec_read_capacity10(struct scsi_cmd *sc);
int scsi_chk_read_capacity16(struct scsi_cmd *sc);
void scsi_exec_read_capacity16(struct scsi_cmd *sc);
int scsi_chk_get_lba_status(struct scsi_cmd *sc);
void scsi_exec_get_lba_status(struct scsi_cmd *sc);
int scsi_chk_report_luns(struct scsi_cmd *sc);
void scsi_exec_report_luns(struct scsi_cmd *sc);
int scsi_chk_rsoc(struct scsi_cmd *sc);
void scsi_exec_rsoc(struct scsi_cmd *sc);

/* Persistent reservations (scsi_pr_cmd.c) */
int scsi_chk_pr_in(struct scsi_cmd *sc);
void scsi_exec_pr_in(struct scsi_cmd *sc);
int scsi_chk_pr_out(struct scsi_cmd *sc);
void scsi_exec_pr_out(struct scsi_cmd *sc);
int scsi_chk_reserve6(struct scsi_cmd *sc);
void scsi_exec_reserve6(struct scsi_cmd *sc);

#endif
