/* attach_genl.h — the kernel nbd driver's generic-netlink interface ("nbd").
 *
 * The driver (drivers/block/nbd.c, UAPI <linux/nbd-netlink.h>) takes
 * already-negotiated sockets: NBD_CMD_CONNECT makes /dev/nbdN a block device
 * backed by them, NBD_CMD_DISCONNECT ends it, NBD_CMD_RECONFIGURE replaces
 * connections it has declared dead, NBD_CMD_STATUS lists devices. Needs
 * CAP_SYS_ADMIN. Every call returns 0 or a negative errno (the kernel's own,
 * e.g. -EBUSY for a device in use) with a one-line message in err.
 */
#ifndef BL_ATTACH_GENL_H
#define BL_ATTACH_GENL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct attach_genl;

/* Open a netlink socket and find the "nbd" family. If it is missing and
 * load_module is set, run `modprobe nbd` once and look again. -ENOENT (with
 * the reason in err) when the kernel has no nbd driver. */
int attach_genl_open(struct attach_genl **out, bool load_module, char *err, size_t errlen);
void attach_genl_close(struct attach_genl *g);

/* What NBD_CMD_CONNECT is given. */
struct attach_connect {
	int index;               /* /dev/nbdN, or -1 for any free device */
	const int *fds;          /* negotiated sockets (transmission phase) */
	unsigned nfds;
	uint64_t size;           /* bytes */
	uint64_t block_size;     /* logical block size: 512..4096, a power of two */
	uint64_t server_flags;   /* NBD_FLAG_* transmission flags */
	uint64_t timeout_s;      /* request timeout; 0 = the kernel's default */
	uint64_t dead_timeout_s; /* how long to wait for a reconfigure after connections die; 0 = none */
	const char *backend;     /* NBD_ATTR_BACKEND_IDENTIFIER (sysfs "backend"), or NULL */
};

/* Connect; on success *index is the device the kernel used. The kernel takes
 * its own references to the sockets: the caller may close them afterwards. */
int attach_genl_connect(struct attach_genl *g, const struct attach_connect *c, int *index, char *err, size_t errlen);

/* Disconnect /dev/nbd<index>. */
int attach_genl_disconnect(struct attach_genl *g, int index, char *err, size_t errlen);

/* Give /dev/nbd<index> new sockets for connections that died (and new
 * timeouts when non-zero). backend must be the identifier the device was
 * connected with (sysfs "backend"), or NULL if it has none. The kernel
 * answers success even when it took none of the sockets (no connection was
 * dead, or the backend did not match: see attach_sockets_taken()). */
int attach_genl_reconfigure(struct attach_genl *g, int index, const int *fds, unsigned nfds,
			    uint64_t timeout_s, uint64_t dead_timeout_s, const char *backend,
			    char *err, size_t errlen);

/* How many of fds the kernel took over in a reconfigure: it gives the
 * sockets it uses a send timeout (the request timeout, which must be
 * non-zero), while ours are left with none by the handshake. */
unsigned attach_sockets_taken(const int *fds, unsigned nfds);

/* One device in a status answer. */
struct attach_dev {
	int index;
	bool connected;
};

/* NBD_CMD_STATUS for one device (index >= 0) or all (-1). Fills at most max
 * entries of devs; returns how many the kernel listed, or -errno. */
int attach_genl_status(struct attach_genl *g, int index, struct attach_dev *devs, unsigned max,
		       char *err, size_t errlen);

#endif
