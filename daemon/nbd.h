/* nbd.h — NBD server connection state, shared by the handshake
 * (nbd_handshake.c) and transmission (nbd_xmit.c) phases.
 *
 * The protocol object nbd_proto plugs into conn.h: on_data() dispatches on
 * the phase. Option haggling and requests are validated before they are
 * executed; every error a client can cause gets the protocol's error reply
 * and a log line naming the client, and the connection goes on wherever
 * the spec allows.
 */
#ifndef BL_NBD_H
#define BL_NBD_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "log.h"
#include "exports.h"
#include "vdisk.h"

extern const struct proto nbd_proto;

enum nbd_phase {
	NBD_PH_CLIENT_FLAGS,   /* waiting for the client's 32-bit flags */
	NBD_PH_OPTIONS,        /* option haggling */
	NBD_PH_TRANSMISSION,
	NBD_PH_DONE,           /* DISC, ABORT or fatal: reading stopped, close when replies are out */
};

struct nbd_conn {
	struct conn *c;
	enum nbd_phase phase;
	bool no_zeroes;              /* client asked for NBD_FLAG_C_NO_ZEROES */
	bool structured;             /* NBD_OPT_STRUCTURED_REPLY negotiated */
	bool meta_alloc;             /* base:allocation selected */
	char meta_export[128];       /* export the meta context was set for */
	unsigned nopts;
	uint64_t skip;               /* payload bytes still to discard (oversized write) */
	uint64_t next_read;          /* where the last read ended (vd_req.seq) */
	bool has_export;
	struct export_ref exp;
	struct vdisk *vd;
	uint16_t tflags;
	unsigned inflight;
	bool paused_full;            /* reading stopped by limits/inflight */
	struct nbd_req *spare;       /* released requests kept for reuse (no malloc per request) */
	unsigned nspare;
	char logtag[120];            /* "export=NAME: " once an export is chosen */
	struct log_ratelimit err_rl; /* failed requests: one line per 10 s */
};

/* Handshake: the server greeting, and one step of option parsing. */
int nbd_hs_start(struct nbd_conn *n);
int nbd_hs_data(struct nbd_conn *n);
/* Transmission: parse and start requests; 0 or -1 (close). */
int nbd_xmit_data(struct nbd_conn *n);
/* Enter transmission for the resolved export n->exp (opens the vdisk). */
int nbd_xmit_begin(struct nbd_conn *n);
/* Free the requests kept for reuse (the connection is going away). */
void nbd_xmit_free_spares(struct nbd_conn *n);
/* Transmission flags for an export given what was negotiated. */
uint16_t nbd_tflags(const struct nbd_conn *n, const struct vdisk *vd);

/* Log naming the client and, once chosen, the export: "[ip:port #7] export=win10: ..." */
#define nbd_log(level, n, fmt, ...) conn_log(level, (n)->c, "%s" fmt, (n)->logtag, ##__VA_ARGS__)

#endif
