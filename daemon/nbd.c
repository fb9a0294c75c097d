/* nbd.c — the NBD protocol object plugged into conn.h: phase dispatch,
 * handshake timeout, draining on shutdown, teardown. */
#include <stdlib.h>

#include "clients.h"
#include "daemon.h"
#include "log.h"
#include "nbd.h"

static int nbd_start(struct conn *c)
{
	struct nbd_conn *n = calloc(1, sizeof *n);
	if (!n)
		return -1;
	n->c = c;
	c->proto_state = n;
	return nbd_hs_start(n);
}

static int nbd_on_data(struct conn *c)
{
	struct nbd_conn *n = c->proto_state;
	switch (n->phase) {
	case NBD_PH_CLIENT_FLAGS:
	case NBD_PH_OPTIONS:
		return nbd_hs_data(n) < 0 ? -1 : (n->phase == NBD_PH_TRANSMISSION ? nbd_xmit_data(n) : 0);
	case NBD_PH_TRANSMISSION:
		return nbd_xmit_data(n);
	case NBD_PH_DONE:
		/* Whatever follows DISC/ABORT is ignored. */
		conn_rx_consume(c, conn_rx_len(c));
		return 0;
	}
	return -1;
}

static int nbd_tick(struct conn *c, uint64_t now)
{
	struct nbd_conn *n = c->proto_state;
	uint64_t limit = (uint64_t)live_get(&g_live.handshake_timeout_s) * 1000000000ull;
	if (n->phase < NBD_PH_TRANSMISSION && now - c->started_ns > limit) {
		conn_log(BL_INFO, c, "handshake not finished within limits/handshake_timeout_s (%u s); closing",
			 live_get(&g_live.handshake_timeout_s));
		return -1;
	}
	return 0;
}

static void nbd_drain(struct conn *c)
{
	struct nbd_conn *n = c->proto_state;
	if (n->phase != NBD_PH_TRANSMISSION) {
		if (n->phase != NBD_PH_DONE)
			conn_close(c, "shutting down");
		return;
	}
	/* Finish what is in flight, read nothing more. */
	n->phase = NBD_PH_DONE;
	conn_pause(c);
	if (n->inflight == 0)
		conn_close_after_send(c);
}

static void nbd_destroy(struct conn *c)
{
	struct nbd_conn *n = c->proto_state;
	if (!n)
		return;
	if (n->vd) {
		__atomic_fetch_sub(&n->exp.e.img->stat_connections, 1, __ATOMIC_RELAXED);
		nbd_log(BL_INFO, n, "disconnected: %llu requests, %llu bytes read",
			(unsigned long long)c->stat_requests, (unsigned long long)c->stat_bytes_read);
		vdisk_put(n->vd);
		if (n->exp.e.kind == EXPORT_CLIENT)
			clients_release(n->exp.e.mac);
	}
	if (n->has_export)
		exports_ref_release(&n->exp);
	nbd_xmit_free_spares(n);
	free(n);
	c->proto_state = NULL;
}

const struct proto nbd_proto = {
	.name = "nbd",
	.start = nbd_start,
	.on_data = nbd_on_data,
	.tick = nbd_tick,
	.drain = nbd_drain,
	.destroy = nbd_destroy,
};
