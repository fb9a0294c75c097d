/* iscsi_pdu.h — iSCSI PDU headers (RFC 7143 §11) and digests.
 *
 * Every PDU starts with a 48-byte Basic Header Segment (BHS), optionally
 * followed by Additional Header Segments (AHS), a header digest, a data
 * segment padded to 4 bytes and a data digest:
 *
 *   | BHS 48 | AHS 4*n | HeaderDigest 4? | data DSL | pad 0..3 | DataDigest 4? |
 *
 * iscsi_hdr_parse() turns the BHS of anything an initiator sends into a
 * struct iscsi_hdr (common fields plus the named fields of its opcode);
 * the iscsi_build_*() functions write the BHS of what the target sends
 * from one documented struct per opcode. Digests are CRC32C (Castagnoli),
 * stored least significant byte first. Pure: no I/O, no allocation, no
 * state (tests/unit/test_iscsi_pdu.c).
 */
#ifndef BL_ISCSI_PDU_H
#define BL_ISCSI_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISCSI_BHS_LEN     48
#define ISCSI_DIGEST_LEN  4
#define ISCSI_AHS_MAX     (255u * 4)        /* TotalAHSLength: one byte counting 4-byte words */
#define ISCSI_DSL_MAX     ((1u << 24) - 1)  /* DataSegmentLength: 24 bits */
#define ISCSI_RSVD_TAG    0xffffffffu       /* "no task" / "no transfer" tag */
#define ISCSI_CDB_LEN     16                /* CDB bytes in the BHS (longer ones need an AHS) */

/* Opcodes: byte 0, bits 0-5. Initiator → target below 0x20, target → initiator above. */
enum iscsi_op {
	ISCSI_OP_NOP_OUT    = 0x00,
	ISCSI_OP_SCSI_CMD   = 0x01,
	ISCSI_OP_TMF_REQ    = 0x02,
	ISCSI_OP_LOGIN_REQ  = 0x03,
	ISCSI_OP_TEXT_REQ   = 0x04,
	ISCSI_OP_DATA_OUT   = 0x05,
	ISCSI_OP_LOGOUT_REQ = 0x06,
	ISCSI_OP_SNACK_REQ  = 0x10,
	ISCSI_OP_NOP_IN     = 0x20,
	ISCSI_OP_SCSI_RSP   = 0x21,
	ISCSI_OP_TMF_RSP    = 0x22,
	ISCSI_OP_LOGIN_RSP  = 0x23,
	ISCSI_OP_TEXT_RSP   = 0x24,
	ISCSI_OP_DATA_IN    = 0x25,
	ISCSI_OP_LOGOUT_RSP = 0x26,
	ISCSI_OP_R2T        = 0x31,
	ISCSI_OP_ASYNC      = 0x32,
	ISCSI_OP_REJECT     = 0x3f,
};

/* Byte 0 */
#define ISCSI_OPCODE_MASK    0x3f
#define ISCSI_IMMEDIATE      0x40  /* I: delivered at once, CmdSN not advanced */
/* Byte 1 (flags); F is bit 7 for most opcodes, T (transit) for login */
#define ISCSI_F_FINAL        0x80
#define ISCSI_CMD_F_READ     0x40  /* SCSI Command: data-in expected */
#define ISCSI_CMD_F_WRITE    0x20  /* SCSI Command: data-out expected */
#define ISCSI_CMD_ATTR_MASK  0x07  /* SCSI Command: task attribute */
#define ISCSI_LOGIN_TRANSIT  0x80  /* Login: T, move to NSG */
#define ISCSI_LOGIN_CONTINUE 0x40  /* Login: C, text continues in the next PDU */
#define ISCSI_LOGIN_CSG(f)   (((f) >> 2) & 3)
#define ISCSI_LOGIN_NSG(f)   ((f) & 3)
#define ISCSI_TEXT_CONTINUE  0x40  /* Text: C */
#define ISCSI_DATA_ACK       0x40  /* Data-In: A (only at ERL >= 1) */
#define ISCSI_DATA_OVERFLOW  0x04  /* Data-In / SCSI Response: O, residual overflow */
#define ISCSI_DATA_UNDERFLOW 0x02  /* Data-In / SCSI Response: U, residual underflow */
#define ISCSI_DATA_STATUS    0x01  /* Data-In: S, status in this PDU */
#define ISCSI_FUNC_MASK      0x7f  /* TMF function, Logout reason */

/* Login stages (CSG/NSG) */
enum iscsi_stage { ISCSI_STAGE_SECURITY = 0, ISCSI_STAGE_OPERATIONAL = 1, ISCSI_STAGE_FFP = 3 };

/* Login Response Status-Class << 8 | Status-Detail (RFC 7143 §11.13.5) */
enum iscsi_login_status {
	ISCSI_LOGIN_OK                = 0x0000,
	ISCSI_LOGIN_MOVED_TEMP        = 0x0101,
	ISCSI_LOGIN_MOVED_PERM        = 0x0102,
	ISCSI_LOGIN_INITIATOR_ERROR   = 0x0200,
	ISCSI_LOGIN_AUTH_FAILED       = 0x0201,
	ISCSI_LOGIN_FORBIDDEN         = 0x0202,
	ISCSI_LOGIN_NOT_FOUND         = 0x0203,
	ISCSI_LOGIN_TARGET_REMOVED    = 0x0204,
	ISCSI_LOGIN_BAD_VERSION       = 0x0205,
	ISCSI_LOGIN_TOO_MANY_CONNS    = 0x0206,
	ISCSI_LOGIN_MISSING_PARAM     = 0x0207,
	ISCSI_LOGIN_NO_SESSION_SPAN   = 0x0208,
	ISCSI_LOGIN_NO_SESSION_TYPE   = 0x0209,
	ISCSI_LOGIN_NO_SUCH_SESSION   = 0x020a,
	ISCSI_LOGIN_INVALID_REQUEST   = 0x020b,
	ISCSI_LOGIN_TARGET_ERROR      = 0x0300,
	ISCSI_LOGIN_UNAVAILABLE       = 0x0301,
	ISCSI_LOGIN_NO_RESOURCES      = 0x0302,
};

/* Reject reasons (§11.17.1) */
enum iscsi_reject_reason {
	ISCSI_REJECT_DIGEST_ERROR   = 0x02,
	ISCSI_REJECT_SNACK          = 0x03,
	ISCSI_REJECT_PROTOCOL_ERROR = 0x04,
	ISCSI_REJECT_NOT_SUPPORTED  = 0x05,
	ISCSI_REJECT_IMM_CMD        = 0x06,
	ISCSI_REJECT_TASK_IN_PROG   = 0x07,
	ISCSI_REJECT_INVALID_ACK    = 0x08,
	ISCSI_REJECT_INVALID_FIELD  = 0x09,
	ISCSI_REJECT_OUT_OF_RES     = 0x0a,
	ISCSI_REJECT_WAIT_LOGOUT    = 0x0c,
};

/* Task management functions (§11.5.1) and responses (§11.6.1) */
enum iscsi_tmf_func {
	ISCSI_TMF_ABORT_TASK = 1, ISCSI_TMF_ABORT_TASK_SET = 2, ISCSI_TMF_CLEAR_ACA = 3,
	ISCSI_TMF_CLEAR_TASK_SET = 4, ISCSI_TMF_LUN_RESET = 5, ISCSI_TMF_TARGET_WARM_RESET = 6,
	ISCSI_TMF_TARGET_COLD_RESET = 7, ISCSI_TMF_TASK_REASSIGN = 8,
};
enum iscsi_tmf_rsp {
	ISCSI_TMF_RSP_COMPLETE = 0, ISCSI_TMF_RSP_NO_TASK = 1, ISCSI_TMF_RSP_NO_LUN = 2,
	ISCSI_TMF_RSP_ALLEGIANT = 3, ISCSI_TMF_RSP_NO_REASSIGN = 4, ISCSI_TMF_RSP_NOT_SUPPORTED = 5,
	ISCSI_TMF_RSP_AUTH_FAILED = 6, ISCSI_TMF_RSP_REJECTED = 255,
};

/* Logout reasons (§11.14.1) and responses (§11.15.1) */
enum { ISCSI_LOGOUT_SESSION = 0, ISCSI_LOGOUT_CONNECTION = 1, ISCSI_LOGOUT_RECOVERY = 2 };
enum { ISCSI_LOGOUT_RSP_OK = 0, ISCSI_LOGOUT_RSP_NO_CID = 1, ISCSI_LOGOUT_RSP_NO_RECOVERY = 2 };

/* SCSI Response "Response" byte (§11.4.3) */
enum { ISCSI_RSP_COMPLETED = 0x00, ISCSI_RSP_TARGET_FAILURE = 0x01 };

/* Async message events (§11.9.1) */
enum { ISCSI_ASYNC_LOGOUT_REQUEST = 1 };

/* An initiator's BHS, parsed. Common fields first; the rest is filled
 * only for the opcodes that have it (zero otherwise). */
struct iscsi_hdr {
	uint8_t op;                /* byte 0 bits 0-5: enum iscsi_op */
	bool immediate;            /* byte 0 bit 6: I */
	uint8_t flags;             /* byte 1 as sent (F/T, C, R, W, CSG, NSG, function ...) */
	uint32_t ahs_len;          /* byte 4: TotalAHSLength, converted to bytes */
	uint32_t dsl;              /* bytes 5-7: DataSegmentLength (no padding) */
	uint64_t lun;              /* bytes 8-15: LUN (SCSI Cmd, Data-Out, NOP-Out, TMF, Text, SNACK) */
	uint32_t itt;              /* bytes 16-19: Initiator Task Tag */
	uint32_t ttt;              /* bytes 20-23: Target Transfer Tag (Data-Out, NOP-Out, Text, SNACK) */
	uint32_t edtl;             /* bytes 20-23: Expected Data Transfer Length (SCSI Cmd) */
	uint32_t ref_itt;          /* bytes 20-23: Referenced Task Tag (TMF) */
	uint16_t cid;              /* bytes 20-21: connection id (Login, Logout) */
	uint32_t cmd_sn;           /* bytes 24-27: CmdSN (all but Data-Out and SNACK) */
	uint32_t exp_stat_sn;      /* bytes 28-31: ExpStatSN */
	uint32_t ref_cmd_sn;       /* bytes 32-35: RefCmdSN (TMF) */
	uint32_t data_sn;          /* bytes 36-39: DataSN (Data-Out); ExpDataSN (TMF) */
	uint32_t buf_off;          /* bytes 40-43: Buffer Offset (Data-Out); BegRun (SNACK) */
	const uint8_t *cdb;        /* bytes 32-47: the CDB (SCSI Cmd); points into the parsed BHS */
	uint8_t isid[6];           /* bytes 8-13: ISID (Login) */
	uint16_t tsih;             /* bytes 14-15: TSIH (Login) */
	uint8_t ver_max, ver_min;  /* bytes 2-3: Version-max, Version-min (Login) */
};

/* Parse the BHS at b (ISCSI_BHS_LEN bytes; h->cdb points into it).
 * Returns 0, or -EOPNOTSUPP for an opcode an initiator may not send. */
int iscsi_hdr_parse(const uint8_t *b, struct iscsi_hdr *h);

/* Bytes on the wire of the PDU whose BHS is h, with the negotiated digests. */
uint64_t iscsi_pdu_len(const struct iscsi_hdr *h, bool header_digest, bool data_digest);

static inline uint32_t iscsi_pad4(uint32_t n) { return (4 - (n & 3)) & 3; }

/* The three sequence numbers most target PDUs end with. */
struct iscsi_sn {
	uint32_t stat_sn;          /* StatSN (bytes 24-27) */
	uint32_t exp_cmd_sn;       /* ExpCmdSN (bytes 28-31) */
	uint32_t max_cmd_sn;       /* MaxCmdSN (bytes 32-35) */
};

/* SCSI Response (§11.4) */
struct iscsi_scsi_rsp {
	uint32_t itt;
	uint8_t flags;             /* ISCSI_DATA_OVERFLOW / ISCSI_DATA_UNDERFLOW */
	uint8_t response;          /* ISCSI_RSP_COMPLETED / ISCSI_RSP_TARGET_FAILURE */
	uint8_t status;            /* SCSI status */
	uint32_t dsl;              /* sense: 2-byte length + sense bytes */
	uint32_t exp_data_sn;      /* Data-In PDUs sent for this task */
	uint32_t residual;         /* Residual Count */
	struct iscsi_sn sn;
};

/* SCSI Data-In (§11.7) */
struct iscsi_data_in {
	uint64_t lun;
	uint32_t itt;
	uint8_t flags;             /* F, O, U, S */
	uint8_t status;            /* valid with S */
	uint32_t dsl;
	uint32_t data_sn;
	uint32_t buf_off;          /* Buffer Offset of this PDU's data */
	uint32_t residual;         /* valid with S */
	struct iscsi_sn sn;        /* StatSN valid with S */
};

/* Ready To Transfer (§11.8) */
struct iscsi_r2t {
	uint64_t lun;
	uint32_t itt, ttt;
	uint32_t r2t_sn;           /* R2TSN, per task */
	uint32_t buf_off;          /* Buffer Offset requested */
	uint32_t len;              /* Desired Data Transfer Length */
	struct iscsi_sn sn;        /* StatSN: the next one, not advanced */
};

/* NOP-In (§11.19) */
struct iscsi_nop_in {
	uint64_t lun;
	uint32_t itt;              /* the NOP-Out's ITT, or ISCSI_RSVD_TAG for a target ping */
	uint32_t ttt;              /* ISCSI_RSVD_TAG, or a tag the initiator must answer with */
	uint32_t dsl;              /* echoed ping data */
	struct iscsi_sn sn;
};

/* Task Management Function Response (§11.6) */
struct iscsi_tmf_rsp_pdu {
	uint32_t itt;
	uint8_t response;          /* enum iscsi_tmf_rsp */
	struct iscsi_sn sn;
};

/* Login Response (§11.13) */
struct iscsi_login_rsp {
	uint8_t flags;             /* T, C, CSG, NSG */
	uint8_t ver_max, ver_active;
	uint32_t dsl;
	uint8_t isid[6];
	uint16_t tsih;
	uint32_t itt;
	uint16_t status;           /* enum iscsi_login_status */
	struct iscsi_sn sn;
};

/* Text Response (§11.11) */
struct iscsi_text_rsp {
	uint8_t flags;             /* F, C */
	uint64_t lun;
	uint32_t itt, ttt;         /* ttt: ISCSI_RSVD_TAG on the final PDU */
	uint32_t dsl;
	struct iscsi_sn sn;
};

/* Logout Response (§11.15) */
struct iscsi_logout_rsp {
	uint32_t itt;
	uint8_t response;
	uint16_t time2wait, time2retain;
	struct iscsi_sn sn;
};

/* Reject (§11.17): the data segment is the rejected BHS. */
struct iscsi_reject {
	uint8_t reason;            /* enum iscsi_reject_reason */
	uint32_t dsl;
	struct iscsi_sn sn;
};

/* Asynchronous Message (§11.9) */
struct iscsi_async {
	uint8_t event;
	uint16_t param1, param2, param3;
	struct iscsi_sn sn;
};

/* Builders: write the ISCSI_BHS_LEN bytes at b. */
void iscsi_build_scsi_rsp(uint8_t *b, const struct iscsi_scsi_rsp *p);
void iscsi_build_data_in(uint8_t *b, const struct iscsi_data_in *p);
void iscsi_build_r2t(uint8_t *b, const struct iscsi_r2t *p);
void iscsi_build_nop_in(uint8_t *b, const struct iscsi_nop_in *p);
void iscsi_build_tmf_rsp(uint8_t *b, const struct iscsi_tmf_rsp_pdu *p);
void iscsi_build_login_rsp(uint8_t *b, const struct iscsi_login_rsp *p);
void iscsi_build_text_rsp(uint8_t *b, const struct iscsi_text_rsp *p);
void iscsi_build_logout_rsp(uint8_t *b, const struct iscsi_logout_rsp *p);
void iscsi_build_reject(uint8_t *b, const struct iscsi_reject *p);
void iscsi_build_async(uint8_t *b, const struct iscsi_async *p);

/* CRC32C: state starts at CRC32C_INIT, each piece is folded in with
 * crc32c_update(), the digest is crc32c_final(state). Uses the SSE 4.2
 * instruction when the CPU has it, a table otherwise. */
#define CRC32C_INIT 0xffffffffu
uint32_t crc32c_update(uint32_t state, const void *buf, size_t len);
static inline uint32_t crc32c_final(uint32_t state) { return ~state; }
uint32_t crc32c(const void *buf, size_t len);
/* The table-driven path alone (for tests comparing the two). */
uint32_t crc32c_update_sw(uint32_t state, const void *buf, size_t len);
/* A digest as it goes on the wire (least significant byte first). */
void iscsi_digest_put(uint8_t *out, uint32_t digest);
uint32_t iscsi_digest_get(const uint8_t *in);

#endif
