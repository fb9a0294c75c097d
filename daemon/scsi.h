/* scsi.h — a SCSI block device (SPC-4 / SBC-3 subset) on top of a vdisk.
 *
 * Transport independent: iSCSI (and anything later) hands a CDB to
 * scsi_cmd_start(), feeds the data-out bytes the command asks for with
 * scsi_cmd_data() / scsi_cmd_data_end(), and gets done() with a SCSI
 * status, sense data and data-in (an iovec array, often pointing straight
 * at cache blocks) that stays valid until scsi_cmd_release().
 *
 * Validate, then execute: a command table (scsi_ops.c) decodes and checks
 * each CDB before anything runs; unknown opcodes get CHECK CONDITION,
 * ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE. Disk errors (-errno
 * from vdisk) become sense data in one place, errno_to_sense().
 *
 * Block writes stream: each piece of data-out becomes a vdisk write as it
 * arrives, nothing is buffered. Parameter lists (MODE SELECT, UNMAP, the
 * WRITE SAME block, VERIFY data) are buffered, capped by named limits.
 *
 * Logical blocks are 512 bytes (what BIOS int13 and iPXE expect), with
 * 4 KiB physical blocks reported. The logical unit is LUN 0; other LUNs
 * answer INQUIRY (peripheral qualifier 3), REPORT LUNS and REQUEST SENSE
 * and fail everything else with LOGICAL UNIT NOT SUPPORTED.
 */
#ifndef BL_SCSI_H
#define BL_SCSI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "scsi_pr.h"
#include "vdisk.h"

#define SCSI_BLOCK_SIZE       512u
#define SCSI_BLOCK_SHIFT      9
#define SCSI_PBLOCK_EXP       3                 /* 2^3 logical blocks per 4 KiB physical block */
#define SCSI_CDB_MAX          16                /* longest CDB we accept */
#define SCSI_SENSE_LEN        18                /* fixed-format sense data */
#define SCSI_MAX_XFER_BLOCKS  65536u            /* READ/WRITE/VERIFY: 32 MiB (Block Limits VPD), as NBD */
#define SCSI_OPT_XFER_BLOCKS  2048u             /* optimal transfer length: 1 MiB */
#define SCSI_MAX_PARAM_LEN    (64u * 1024)      /* buffered parameter list (MODE SELECT, UNMAP) */
#define SCSI_MAX_UNMAP_DESC   256u              /* UNMAP block descriptors per command */
#define SCSI_MAX_UNMAP_BLOCKS (1u << 20)        /* blocks per UNMAP descriptor: 512 MiB */
#define SCSI_MAX_WS_BLOCKS    (1u << 22)        /* WRITE SAME blocks per command: 2 GiB */
#define SCSI_WS_CHUNK         (1u << 20)        /* bytes per write of a WRITE SAME pattern */
#define SCSI_MAX_LBA_DESC     64u               /* GET LBA STATUS descriptors per answer */

/* SCSI status (SAM-5) */
enum scsi_status {
	SCSI_GOOD = 0x00,
	SCSI_CHECK_CONDITION = 0x02,
	SCSI_CONDITION_MET = 0x04,
	SCSI_BUSY = 0x08,
	SCSI_RESERVATION_CONFLICT = 0x18,
	SCSI_TASK_SET_FULL = 0x28,
	SCSI_TASK_ABORTED = 0x40,
};

/* Sense keys (SPC-4 §4.5.6) */
enum scsi_sense_key {
	SK_NO_SENSE = 0x0, SK_NOT_READY = 0x2, SK_MEDIUM_ERROR = 0x3, SK_HARDWARE_ERROR = 0x4,
	SK_ILLEGAL_REQUEST = 0x5, SK_UNIT_ATTENTION = 0x6, SK_DATA_PROTECT = 0x7,
	SK_ABORTED_COMMAND = 0xb, SK_MISCOMPARE = 0xe,
};

/* Additional sense code << 8 | qualifier (SPC-4 §4.5.6) */
enum scsi_asc {
	ASC_NO_ADDITIONAL_SENSE = 0x0000,
	ASC_WRITE_ERROR = 0x0c00,
	ASC_READ_ERROR = 0x1100,
	ASC_PARAM_LIST_LENGTH_ERROR = 0x1a00,
	ASC_MISCOMPARE_DURING_VERIFY = 0x1d00,
	ASC_INVALID_OPCODE = 0x2000,
	ASC_LBA_OUT_OF_RANGE = 0x2100,
	ASC_INVALID_FIELD_IN_CDB = 0x2400,
	ASC_LUN_NOT_SUPPORTED = 0x2500,
	ASC_INVALID_FIELD_IN_PARAM = 0x2600,
	ASC_INVALID_RELEASE_OF_PR = 0x2604,
	ASC_WRITE_PROTECTED = 0x2700,
	ASC_SPACE_ALLOC_FAILED_WP = 0x2707,
	ASC_SAVING_NOT_SUPPORTED = 0x3900,
	ASC_INTERNAL_TARGET_FAILURE = 0x4400,
	ASC_INSUFFICIENT_RESOURCES = 0x5503,
	ASC_INSUFFICIENT_REG_RESOURCES = 0x5504,
};

/* One logical unit: the disk plus the SCSI state of one session. */
struct scsi_lu {
	struct vdisk *vd;            /* not owned: the transport holds the reference */
	uint64_t nblocks;            /* capacity in SCSI_BLOCK_SIZE blocks */
	bool wce;                    /* Caching page WCE: write-back; clear = every write is FUA */
	bool swp;                    /* Control page SWP: software write protect */
	char serial[17];             /* Unit Serial Number VPD (hex of a hash of the LU name) */
	uint64_t naa;                /* NAA 3 (locally assigned) designator */
	char name[96];               /* LU name (the export), for the T10 vendor designator */
	char target_name[224];       /* the SCSI target device name, for name-string designators */
	uint16_t tpgt;               /* target portal group tag (relative port / port group) */
	struct scsi_pr *pr;          /* persistent reservations, shared by every session of lu_name */
	char port[SCSI_PR_PORT_MAX]; /* this I_T nexus's initiator port name (scsi_lu_set_port) */
	uint8_t proto;               /* SCSI protocol identifier of the transport (5 = iSCSI) */
	uint64_t next_read;          /* where the last read ended (vd_req.seq) */
};

/* Set up lu for vd; identifiers derive from lu_name so every session sees
 * the same ones, and so does the persistent reservation state. */
void scsi_lu_init(struct scsi_lu *lu, struct vdisk *vd, const char *lu_name, const char *target_name);
/* Name the I_T nexus: the initiator port (iSCSI: "<initiator name>,i,0x<ISID>")
 * and the transport's protocol identifier, for persistent reservations. */
void scsi_lu_set_port(struct scsi_lu *lu, uint8_t proto, const char *port);
/* The I_T nexus is gone (logout, connection loss): an SPC-2 reservation it
 * holds ends. Persistent reservations stay. */
void scsi_lu_nexus_loss(struct scsi_lu *lu);
/* The session is over: nexus loss, and lu's reference on the reservation state dropped. */
void scsi_lu_fini(struct scsi_lu *lu);
/* LUN RESET / TARGET RESET: mode parameters back to their defaults, and the
 * SPC-2 reservation (RESERVE(6)) released, whichever session holds it. */
void scsi_lu_reset(struct scsi_lu *lu);
/* Writes refused (read-only disk or SWP)? */
bool scsi_lu_write_protected(const struct scsi_lu *lu);

#define SCSI_PROTO_ISCSI 5   /* SCSI protocol identifier (SPC-4 table 444) */

enum scsi_dir { SCSI_DIR_NONE, SCSI_DIR_IN, SCSI_DIR_OUT };

struct scsi_cmd;
struct scsi_op;
typedef int (*scsi_step_fn)(struct scsi_cmd *sc);

struct scsi_cmd {
	/* set by the transport before scsi_cmd_start() */
	struct scsi_lu *lu;          /* NULL: the addressed LUN does not exist */
	uint8_t cdb[SCSI_CDB_MAX];
	struct worker *w;            /* the worker vdisk requests run on */
	uint64_t client_id;          /* connection id, for the cache */
	bool learn;                  /* reads belong to a client's boot (vd_req.learn) */
	uint32_t out_expected;       /* data-out bytes the initiator will send (its expected length) */
	void (*done)(struct scsi_cmd *sc); /* once; may run inside scsi_cmd_start/_data/_data_end */
	void *owner;                 /* the transport's task */

	/* decoded by scsi_cmd_start() */
	enum scsi_dir dir;
	uint32_t out_len;            /* data-out bytes the command takes */

	/* result, valid in done() */
	uint8_t status;              /* enum scsi_status */
	uint8_t sense[SCSI_SENSE_LEN];
	uint8_t sense_len;           /* 0: no sense data */
	const struct iovec *in_iov;  /* data-in: in_niov pieces, in_len bytes in all */
	int in_niov;
	uint32_t in_len;

	/* private to scsi*.c */
	const struct scsi_op *op;
	uint64_t lba;                /* first block */
	uint32_t nblocks;            /* blocks addressed */
	uint32_t vflags;             /* VD_F_* for writes */
	uint8_t mode;                /* command-specific sub-mode (BYTCHK, UNMAP bit, PC ...) */
	struct vd_req vr;            /* the command's own disk request */
	uint8_t *buf;                /* data-in we build, or a buffered parameter list */
	uint32_t buf_len;
	struct iovec buf_iov;
	uint32_t received;           /* data-out bytes taken */
	int pending;                 /* streamed writes in flight */
	int err;                     /* first -errno */
	bool data_ended;
	bool finished;
	scsi_step_fn step;           /* sequential runner: one vdisk request per step */
	uint64_t run_pos, run_end;
	bool in_step, step_inline;
};

/* Decode, validate and (unless it takes data-out) run the command. */
void scsi_cmd_start(struct scsi_cmd *sc);
/* The next len bytes of data-out (in order). Bytes past out_len are ignored. */
void scsi_cmd_data(struct scsi_cmd *sc, const void *data, uint32_t len);
/* No more data-out will come (fewer bytes than out_len is allowed: the
 * transport's expected length can be shorter). */
void scsi_cmd_data_end(struct scsi_cmd *sc);
/* Free what the result holds (after done()). */
void scsi_cmd_release(struct scsi_cmd *sc);

/* The one mapping from internal -errno to sense data (also sets CHECK
 * CONDITION). op tells reads from writes for -EIO. */
void errno_to_sense(struct scsi_cmd *sc, int err, enum vd_op op);
/* CHECK CONDITION with fixed-format sense key/asc (and INFORMATION if info_valid). */
void scsi_sense(struct scsi_cmd *sc, enum scsi_sense_key key, enum scsi_asc asc);
void scsi_sense_info(struct scsi_cmd *sc, enum scsi_sense_key key, enum scsi_asc asc, uint64_t info);

/* Name of the command in sc->cdb (for logs), e.g. "READ(10)". */
const char *scsi_cmd_name(const uint8_t *cdb);

#endif
