/* iscsi.h — the iSCSI target: connection/session state shared by the
 * login phase (iscsi_login.c), the full feature phase (iscsi_ffp.c), SCSI
 * tasks (iscsi_task.c) and the protocol glue (iscsi.c).
 *
 * One connection per session (MaxConnections=1, ErrorRecoveryLevel=0), so
 * the session state lives in struct iscsi_conn. iscsi_proto plugs into
 * conn.h: the receive side is a one-level switch on an rx-state enum
 * (BHS → whole PDU → dispatch by phase, or skip an oversized data
 * segment); everything the target sends goes out through
 * iscsi_send_pdu() (control PDUs, data copied) or a task's own txmsg
 * (Data-In pointing at the disk's buffers, plus the SCSI Response).
 *
 * Targets (docs/iscsi.md):
 *   iqn.2026-11.org.bootlink:client.<mac, 12 lower-case hex digits> → client/<mac>, LUN 0
 *   iqn.2026-11.org.bootlink:image.<image name>                    → the image, read-only
 */
#ifndef BL_ISCSI_H
#define BL_ISCSI_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "log.h"
#include "exports.h"
#include "iscsi_pdu.h"
#include "iscsi_text.h"
#include "scsi.h"
#include "vdisk.h"

#define ISCSI_IQN_PREFIX       "iqn.2026-11.org.bootlink:"
#define ISCSI_IQN_CLIENT       "client."
#define ISCSI_IQN_IMAGE        "image."
#define ISCSI_TPGT             1                  /* our one target portal group */
#define ISCSI_LOGIN_MAX_DSL    8192u              /* data segment of a login PDU (RFC default MRDSL) */
#define ISCSI_IMMEDIATE_SLACK  16u                /* immediate commands allowed past the CmdSN window */
#define ISCSI_RECENT_ABORTS    16                 /* aborted ITTs whose late Data-Out is dropped silently */
#define ISCSI_SENDTARGETS_MAX  (4u << 20)         /* bytes of one SendTargets answer */
#define ISCSI_SECRET_MAX       255                /* bytes of a configured CHAP user or secret */

extern const struct proto iscsi_proto;

/* Settings from the config tree (iscsi/...), fixed while running. */
struct iscsi_settings {
	char target_address[128];        /* iscsi/target_address: "HOST:PORT" to redirect to, "" = none */
	unsigned nop_interval_s;         /* iscsi/nop_interval_s: idle seconds before a NOP-In ping, 0 = never */
	unsigned nop_timeout_s;          /* iscsi/nop_timeout_s: seconds to wait for the answer */
	char chap_user[ISCSI_SECRET_MAX + 1];          /* iscsi/chap_user: "" = no CHAP */
	char chap_secret[ISCSI_SECRET_MAX + 1];        /* iscsi/chap_secret */
	char chap_mutual_user[ISCSI_SECRET_MAX + 1];   /* iscsi/chap_mutual_user: "" = no mutual CHAP */
	char chap_mutual_secret[ISCSI_SECRET_MAX + 1]; /* iscsi/chap_mutual_secret */
};
/* From the config tree; main thread, before the workers start. */
struct bl_conf;
void iscsi_configure(const struct bl_conf *c);
extern struct iscsi_settings g_iscsi;

enum iscsi_phase {
	ISCSI_PH_LOGIN,      /* login PDUs only */
	ISCSI_PH_FFP,        /* full feature phase */
	ISCSI_PH_LOGOUT,     /* logout received: reading stopped, answer once tasks are done */
	ISCSI_PH_DONE,       /* fatal error, drain or logout answered: close once sent */
};

enum iscsi_rx_state {
	ISCSI_RX_BHS,        /* waiting for a 48-byte BHS */
	ISCSI_RX_PDU,        /* waiting for the rest of the PDU (AHS, digests, data) */
	ISCSI_RX_SKIP,       /* discarding the data segment of a rejected PDU */
};

struct iscsi_login;
struct iscsi_task;

struct iscsi_conn {
	struct conn *c;
	enum iscsi_phase phase;
	enum iscsi_rx_state rx;
	uint64_t pdu_len;             /* ISCSI_RX_PDU: bytes of the current PDU */
	uint64_t skip;                /* ISCSI_RX_SKIP: bytes still to discard */
	struct iscsi_params p;        /* negotiated parameters */
	struct iscsi_login *login;    /* login state, freed on entering FFP */
	/* session */
	uint8_t isid[6];
	uint16_t tsih, cid;
	uint32_t stat_sn;             /* next StatSN */
	uint32_t exp_cmd_sn;          /* next CmdSN expected */
	uint32_t max_cmd_sn;          /* highest MaxCmdSN sent (never decreases) */
	uint32_t next_ttt;            /* target transfer tags */
	bool ipxe;                    /* initiator is iPXE: it never answers NOP-In pings */
	/* target */
	bool has_export;
	struct export_ref exp;
	struct vdisk *vd;
	struct scsi_lu lu;
	char target_name[ISCSI_NAME_MAX + 1];
	char portal[80];              /* "ip:port,tpgt" of the portal the initiator connected to */
	/* tasks */
	struct iscsi_task *tasks;     /* active: not yet answered, not aborted */
	unsigned nactive;             /* tasks on that list (the CmdSN window counts them) */
	unsigned ntasks;              /* all task objects alive */
	uint32_t recent_aborts[ISCSI_RECENT_ABORTS];
	unsigned recent_next;
	/* Text request being assembled / answer being continued */
	struct iscsi_textbuf text_in, text_out;
	size_t text_out_off;
	uint32_t text_ttt;
	/* logout */
	uint32_t logout_itt;
	/* keepalive */
	uint64_t last_rx_ns;
	bool nop_out;                 /* a NOP-In ping awaits its answer */
	uint32_t nop_ttt;
	uint64_t nop_sent_ns;
	/* close watcher: a 1 s io_uring timeout that also runs once the connection closes */
	struct uop watch;
	struct __kernel_timespec watch_ts;
	bool watch_armed;
	char logtag[400];             /* "initiator=IQN target=NAME: " once known */
	struct log_ratelimit err_rl;  /* failed commands: one line per 10 s */
};

/* Log naming the client and, once known, the target. */
#define iscsi_log(level, ic, fmt, ...) conn_log(level, (ic)->c, "%s" fmt, (ic)->logtag, ##__VA_ARGS__)

/* --- iscsi.c: sending and sequence numbers --- */
/* The three sequence numbers for a PDU; advance = this PDU carries status. */
struct iscsi_sn iscsi_sn_next(struct iscsi_conn *ic, bool advance);
/* Send a PDU: bhs (48 bytes) plus a copy of data; digests added as negotiated. 0 or -ENOMEM. */
int iscsi_send_pdu(struct iscsi_conn *ic, const uint8_t *bhs, const void *data, uint32_t dlen);
/* Reject the PDU whose BHS is bhs. */
void iscsi_reject(struct iscsi_conn *ic, const uint8_t *bhs, uint8_t reason);
/* A protocol error the connection cannot recover from (ErrorRecoveryLevel 0):
 * stop reading, abort tasks, close once queued PDUs are sent. */
void iscsi_fail(struct iscsi_conn *ic, const char *why);
/* Serial number arithmetic (RFC 1982) */
static inline bool sn_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline bool sn_gt(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }
/* A fresh Target Transfer Tag (never ISCSI_RSVD_TAG). */
uint32_t iscsi_new_ttt(struct iscsi_conn *ic);
/* Our portal as "ip:port,tpgt". */
void iscsi_portal(const struct iscsi_conn *ic, char *buf, size_t len);

/* --- iscsi_login.c --- */
int iscsi_login_pdu(struct iscsi_conn *ic, const struct iscsi_hdr *h, const uint8_t *data);
void iscsi_login_free(struct iscsi_conn *ic);
/* The IQN of an export. */
void iscsi_export_iqn(const struct export *e, char *buf, size_t len);

/* --- iscsi_ffp.c --- */
int iscsi_ffp_pdu(struct iscsi_conn *ic, const struct iscsi_hdr *h, const uint8_t *bhs, const uint8_t *data);
/* A task left the active list: answer a pending logout once none are left. */
void iscsi_ffp_task_gone(struct iscsi_conn *ic);
/* A target NOP-In: a ping the initiator must answer (a TTT to echo), or,
 * without want_answer, a keepalive it must not answer. */
void iscsi_ffp_ping(struct iscsi_conn *ic, bool want_answer);

/* --- iscsi_task.c --- */
/* A task management request waiting for the tasks it aborted to end. */
struct iscsi_tmf {
	struct iscsi_conn *ic;
	uint32_t itt;                 /* the TMF request's ITT */
	uint8_t function;             /* enum iscsi_tmf_func */
	uint8_t response;             /* enum iscsi_tmf_rsp, sent when pending reaches 0 */
	unsigned pending;             /* aborted tasks still running, +1 while aborting */
};
/* SCSI Command PDU whose CmdSN was accepted. 0 or -1 (close). */
int iscsi_task_new(struct iscsi_conn *ic, const struct iscsi_hdr *h, const uint8_t *bhs, const uint8_t *data);
/* Data-Out PDU. 0 or -1 (close). */
int iscsi_task_data_out(struct iscsi_conn *ic, const struct iscsi_hdr *h, const uint8_t *bhs, const uint8_t *data);
struct iscsi_task *iscsi_task_find(struct iscsi_conn *ic, uint32_t itt);
/* Abort t (no response); tmf, if any, is told when t is gone. */
void iscsi_task_abort(struct iscsi_task *t, struct iscsi_tmf *tmf);
/* Abort every active task (LUN reset, connection gone). */
void iscsi_task_abort_all(struct iscsi_conn *ic, struct iscsi_tmf *tmf);
/* Abort the tasks waiting for Data-Out from the initiator (drain). */
void iscsi_task_abort_waiting(struct iscsi_conn *ic);
uint32_t iscsi_task_cmd_sn(const struct iscsi_task *t);
/* A TMF waiting for aborted tasks: called as each is gone (iscsi_ffp.c). */
void iscsi_tmf_task_gone(struct iscsi_tmf *tmf);

#endif
