/* attach_nbd.h — the client side of the NBD handshake, for bootlink-attach.
 *
 * bootlink-attach negotiates each connection itself (fixed newstyle,
 * NBD_OPT_GO or NBD_OPT_INFO with the export name) and then hands the
 * connected socket to the kernel's nbd driver, which only speaks the
 * transmission phase with simple replies. So the handshake here never asks
 * for structured replies or meta contexts. Constants come from the
 * daemon's daemon/nbd_wire.h: one definition of the protocol for both ends.
 *
 * Every function returns 0 or -errno; on failure a one-line message that
 * names the server and the export is left in the caller's buffer.
 */
#ifndef BL_ATTACH_NBD_H
#define BL_ATTACH_NBD_H

#include <stddef.h>
#include <stdint.h>

/* What the server said about an export. */
struct attach_export {
	uint64_t size;          /* bytes */
	uint16_t flags;         /* transmission flags (NBD_FLAG_*) */
	uint32_t min_block;     /* NBD_INFO_BLOCK_SIZE, or 0 if the server sent none */
	uint32_t pref_block;
	uint32_t max_block;
};

/* Connect a blocking TCP socket to host:port (numeric or a name). Handshake
 * reads and writes time out after timeout_s seconds. Returns the fd, or
 * -errno with a message in err. */
int attach_tcp_connect(const char *host, const char *port, unsigned timeout_s, char *err, size_t errlen);

/* Run the fixed-newstyle handshake on fd for export name. With go != 0 the
 * export is opened with NBD_OPT_GO and fd is left in the transmission phase
 * (ready for the kernel, socket timeouts cleared); with go == 0 it is only
 * described (NBD_OPT_INFO) and the negotiation is ended with NBD_OPT_ABORT.
 * Fills *out. Errors: -ENOENT unknown export (the server's message in err),
 * -EACCES refused by policy, -EPROTO a peer that does not speak NBD as
 * expected, -ENOTSUP a server without NBD_OPT_GO/INFO, other -errno for I/O. */
int attach_handshake(int fd, const char *name, int go, struct attach_export *out, char *err, size_t errlen);

/* Describe the transmission flags in words ("read-only flush trim ..."). */
void attach_flags_str(uint16_t flags, char *buf, size_t len);

#endif
