/* scsi_pr.h — persistent reservations (SPC-4 §5.14): the state of one
 * logical unit shared by every I_T nexus (session) that reaches it.
 *
 * A logical unit's state is found by its name (scsi_pr_get): every session
 * of the same disk — a client's target reached by iPXE, then by the OS,
 * then by a second initiator of a cluster — sees the same registrations and
 * reservation, whichever worker thread runs it. The state lives in memory
 * only: it survives the loss of every I_T nexus (sessions ending, resets)
 * but not a daemon restart, so REPORT CAPABILITIES says PTPL_C=0 and APTPL
 * is refused. A state nobody references and that holds nothing is freed.
 *
 * The same state holds the SPC-2 reservation (RESERVE(6)/RELEASE(6)): one
 * I_T nexus reserves the whole logical unit until it releases it, goes away,
 * or a LUN or target reset; it cannot coexist with persistent reservations.
 *
 * An I_T nexus is named by its initiator port: for iSCSI the initiator name,
 * ",i,0x" and the ISID in hex (RFC 7143 §4.2.7.2 / SPC-4 TransportID format
 * 01b), which is also what READ FULL STATUS reports.
 */
#ifndef BL_SCSI_PR_H
#define BL_SCSI_PR_H

#include <stdbool.h>
#include <stdint.h>

#define SCSI_PR_PORT_MAX 256   /* initiator port name, NUL included: 223-byte iSCSI name + ",i,0x" + ISID */
#define SCSI_PR_MAX_REG  64    /* registrations per logical unit */

/* PERSISTENT RESERVE OUT TYPE codes */
enum scsi_pr_type {
	PR_WRITE_EXCLUSIVE = 1,
	PR_EXCLUSIVE_ACCESS = 3,
	PR_WRITE_EXCLUSIVE_RO = 5,     /* registrants only */
	PR_EXCLUSIVE_ACCESS_RO = 6,
	PR_WRITE_EXCLUSIVE_AR = 7,     /* all registrants */
	PR_EXCLUSIVE_ACCESS_AR = 8,
};

struct scsi_pr;

/* The state of the logical unit called name (created empty the first time);
 * NULL when out of memory. Each call takes a reference. */
struct scsi_pr *scsi_pr_get(const char *name);
/* Drop a reference (NULL is fine). */
void scsi_pr_put(struct scsi_pr *pr);

/* Access check for a command from initiator port `port`: true when a
 * reservation held by others forbids it. `write` commands conflict under
 * every reservation type, reads only under the Exclusive Access types (and
 * both under an SPC-2 reservation). The common case (no reservation) takes
 * no lock. */
bool scsi_pr_conflict(struct scsi_pr *pr, const char *port, bool write);

/* Result of a PERSISTENT RESERVE command */
enum scsi_pr_result {
	PR_OK = 0,
	PR_CONFLICT,          /* RESERVATION CONFLICT status */
	PR_BAD_TYPE,          /* ILLEGAL REQUEST, INVALID FIELD IN CDB (type or scope) */
	PR_BAD_RELEASE,       /* ILLEGAL REQUEST, INVALID RELEASE OF PERSISTENT RESERVATION */
	PR_BAD_PARAM,         /* ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST */
	PR_NO_RESOURCES,      /* ILLEGAL REQUEST, INSUFFICIENT REGISTRATION RESOURCES */
};

/* PERSISTENT RESERVE OUT service action sa (0-6) from port, with the
 * parameter list's reservation key rk and service action reservation key
 * sark, and the CDB's type (scope already checked). PREEMPT AND ABORT acts
 * as PREEMPT: the preempted nexuses' commands in flight are not aborted
 * (docs/iscsi.md). */
enum scsi_pr_result scsi_pr_out(struct scsi_pr *pr, const char *port, uint8_t sa, uint8_t type,
				uint64_t rk, uint64_t sark);

/* RESERVE(6) and RELEASE(6) from port: PR_OK or PR_CONFLICT (reserved by
 * another nexus, or persistent reservations in use). Releasing what port
 * does not hold is a no-op. */
enum scsi_pr_result scsi_pr_reserve6(struct scsi_pr *pr, const char *port);
enum scsi_pr_result scsi_pr_release6(struct scsi_pr *pr, const char *port);
/* Drop the SPC-2 reservation: whoever holds it (port NULL: a LUN or target
 * reset), or only if port holds it (its I_T nexus is gone). */
void scsi_pr_reset(struct scsi_pr *pr, const char *port);

/* PERSISTENT RESERVE IN service action sa (0-3): writes the whole answer
 * into buf (SCSI_PR_IN_MAX bytes) and returns its length, or -1 for an
 * unsupported service action. proto is the SCSI protocol identifier for
 * TransportIDs (5 = iSCSI). */
int scsi_pr_in(struct scsi_pr *pr, uint8_t sa, uint8_t proto, uint8_t *buf);
/* Longest answer scsi_pr_in gives. */
#define SCSI_PR_IN_MAX (8u + SCSI_PR_MAX_REG * (24u + 4u + SCSI_PR_PORT_MAX))

#endif
