/* clients.h — the disk each client sees, shared by all its connections.
 *
 * A client (keyed by MAC) gets one vdisk per boot: its overlay over its
 * linked image. Every connection of the client during that boot (NBD
 * multi-conn, iPXE then the OS initiator, reconnects) shares it, so they all
 * see each other's writes, and no other export name ever reaches it.
 *
 * A boot starts — and an ephemeral overlay is replaced by a fresh, empty
 * one — when:
 *   1. the client's iPXE script is fetched (clients_new_boot), or
 *   2. a connection arrives while the client has no open connection and its
 *      last one closed more than overlay/boot_gap_s ago (a reconnect within
 *      the gap, e.g. nbd-client -persist or iPXE handing over to the OS, is
 *      the same boot), or
 *   3. the client's image link or overlay mode changed in the database.
 * Persistent and maintenance overlays survive boots; they are discarded only
 * by clients_reset() (bootlinkctl overlay reset) or a relink to another image.
 * Ephemeral overlays of clients gone longer than the gap are freed by
 * clients_tick(), so a PC that was switched off holds no RAM.
 */
#ifndef BL_CLIENTS_H
#define BL_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct export;
struct vdisk;
struct bl_conf;
struct ipaddr;

/* Settings (main thread, at start and on config change). */
void clients_configure(const struct bl_conf *c);
/* The client's vdisk for a new connection from peer (a reference the caller
 * puts). peer NULL: no address binding (iSCSI). err explains a failure in
 * one line; -EACCES: peer is not the address the client is bound to. */
int clients_acquire(const struct export *e, const struct ipaddr *peer, struct vdisk **out, char *err,
		    size_t errlen);
/* Address binding (nbd/bind_client_address; docs/hardening.md). While a boot
 * runs, a client's disk answers only the address the boot came from: the
 * address that fetched its iPXE script, else the first connection of the
 * boot. A connection that would start a new boot binds it. Returns 0 if a
 * connection from peer may open e now (always 0 when binding is off), or
 * -EACCES with err naming the client and both addresses. */
int clients_check_address(const struct export *e, const struct ipaddr *peer, char *err, size_t errlen);
/* A connection of the client closed. */
void clients_release(const char *mac);
/* The client is booting (script fetched by from, may be NULL): its next
 * connection starts afresh, and must come from that address. */
void clients_new_boot(const char *mac, const struct ipaddr *from);
/* Discard a client's overlay now (persistent included); live connections
 * keep the old one until they close. Returns 0 or -errno. */
int clients_reset(const char *mac);
/* Main thread, after the export table changed: close the overlays of
 * disconnected clients whose link, mode, version or epoch changed. */
void clients_refresh(void);
/* Main thread, periodically: free ephemeral overlays of clients gone for good. */
void clients_tick(uint64_t now_ns);
/* For the runtime tree: one call per known client. */
struct client_info {
	char mac[18];
	int mode;
	unsigned conns;
	uint64_t boots, ram_bytes, file_bytes, writes, bytes_written, errors, enospc, flushes;
	uint32_t block_bytes;             /* the overlay's granularity (0: no disk open) */
	uint64_t reads, bytes_read;       /* read requests and bytes (counted as they start) */
	bool boot_pending;                /* script fetched, next connection starts a boot */
	int64_t boot_time, close_time;    /* unix times: current boot started, last connection closed */
	char dir[1024];
};
void clients_foreach(void (*cb)(const struct client_info *ci, void *arg), void *arg);
void clients_shutdown(void);
/* Each overlay directory (overlay/dirs): whether it failed, how many
 * client overlays it holds. */
void clients_foreach_dir(void (*cb)(int i, const char *dir, bool failed, unsigned clients, void *arg), void *arg);

#endif
