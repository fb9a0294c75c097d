/* attach_genl.c — NBD_CMD_* requests to the kernel nbd driver over generic
 * netlink, with libnl-genl-3.
 *
 * Each request is sent with nl_send_sync(), which waits for the kernel's
 * ACK or error. The kernel's answer (CONNECT's NBD_ATTR_INDEX, STATUS's
 * NBD_ATTR_DEVICE_LIST) arrives before the ACK and is taken by a VALID
 * callback; the raw errno of a failure is taken by an ERR callback, because
 * libnl's own return value maps errnos onto its coarser NLE_* codes.
 */
#include "attach_genl.h"

#include <errno.h>
#include <linux/nbd-netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct attach_genl {
	struct nl_sock *sk;
	int family;
};

/* One request's answer. */
struct reply {
	int kerr;                 /* the kernel's errno (negative), 0 if none */
	int index;                /* CONNECT: NBD_ATTR_INDEX, -1 if absent */
	struct attach_dev *devs;  /* STATUS: where devices go */
	unsigned max, ndevs;
};

/* Format a message into err and return r. */
__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return r;
}

/* Run `modprobe nbd max_part=15` and wait for it; its own messages go to
 * our stderr. Partitions matter here: images are whole disks with a
 * partition table, and the module's default is none (max_part=0).
 * Returns its exit status, or -errno if it could not be run. */
static int run_modprobe(void)
{
	char *argv[] = { "modprobe", "nbd", "max_part=15", NULL };
	pid_t pid;
	int st, r = posix_spawnp(&pid, "modprobe", NULL, NULL, argv, environ);
	if (r != 0)
		return -r;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int attach_genl_open(struct attach_genl **out, bool load_module, char *err, size_t errlen)
{
	struct attach_genl *g = calloc(1, sizeof *g);
	if (!g || !(g->sk = nl_socket_alloc())) {
		free(g);
		return fail(err, errlen, -ENOMEM, "out of memory");
	}
	int r = genl_connect(g->sk);
	if (r < 0) {
		attach_genl_close(g);
		return fail(err, errlen, -EIO, "cannot open a generic netlink socket: %s", nl_geterror(r));
	}
	g->family = genl_ctrl_resolve(g->sk, NBD_GENL_FAMILY_NAME);
	if (g->family < 0 && load_module) {
		int st = run_modprobe();
		g->family = genl_ctrl_resolve(g->sk, NBD_GENL_FAMILY_NAME);
		if (g->family < 0) {
			attach_genl_close(g);
			if (st < 0)
				return fail(err, errlen, -ENOENT, "the nbd kernel module is not loaded and modprobe could not be run (%s); "
					    "load it with 'modprobe nbd' as root", strerror(-st));
			return fail(err, errlen, -ENOENT, "the kernel has no nbd driver: 'modprobe nbd' %s; install the modules "
				    "of the running kernel or boot one with CONFIG_BLK_DEV_NBD",
				    st ? "failed (see above)" : "ran but registered no \"nbd\" netlink family");
		}
	} else if (g->family < 0) {
		attach_genl_close(g);
		return fail(err, errlen, -ENOENT, "the nbd kernel module is not loaded (no \"nbd\" generic netlink family; "
			    "run 'modprobe nbd')");
	}
	*out = g;
	return 0;
}

void attach_genl_close(struct attach_genl *g)
{
	if (!g)
		return;
	nl_socket_free(g->sk);
	free(g);
}

/* NL_CB_ERR: keep the kernel's errno. */
static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct reply *rp = arg;
	rp->kerr = e->error;
	return NL_STOP;
}

/* Take the devices of an NBD_ATTR_DEVICE_LIST. */
static void take_devices(struct nlattr *list, struct reply *rp)
{
	static struct nla_policy dpol[NBD_DEVICE_ATTR_MAX + 1] = {
		[NBD_DEVICE_INDEX] = { .type = NLA_U32 },
		[NBD_DEVICE_CONNECTED] = { .type = NLA_U8 },
	};
	struct nlattr *item;
	int rem;
	nla_for_each_nested(item, list, rem) {
		struct nlattr *d[NBD_DEVICE_ATTR_MAX + 1];
		if (nla_type(item) != NBD_DEVICE_ITEM || nla_parse_nested(d, NBD_DEVICE_ATTR_MAX, item, dpol) < 0 ||
		    !d[NBD_DEVICE_INDEX])
			continue;
		if (rp->ndevs < rp->max) {
			rp->devs[rp->ndevs].index = (int)nla_get_u32(d[NBD_DEVICE_INDEX]);
			rp->devs[rp->ndevs].connected = d[NBD_DEVICE_CONNECTED] && nla_get_u8(d[NBD_DEVICE_CONNECTED]);
		}
		rp->ndevs++;
	}
}

/* NL_CB_VALID: the kernel's answer to CONNECT or STATUS. */
static int on_valid(struct nl_msg *msg, void *arg)
{
	struct reply *rp = arg;
	struct nlattr *a[NBD_ATTR_MAX + 1];
	if (genlmsg_parse(nlmsg_hdr(msg), 0, a, NBD_ATTR_MAX, NULL) < 0)
		return NL_SKIP;
	if (a[NBD_ATTR_INDEX])
		rp->index = (int)nla_get_u32(a[NBD_ATTR_INDEX]);
	if (a[NBD_ATTR_DEVICE_LIST] && rp->devs)
		take_devices(a[NBD_ATTR_DEVICE_LIST], rp);
	return NL_OK;
}

/* Start a request of cmd. NULL when out of memory. */
static struct nl_msg *request(struct attach_genl *g, uint8_t cmd)
{
	struct nl_msg *m = nlmsg_alloc();
	if (m && !genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, g->family, 0, 0, cmd, NBD_GENL_VERSION)) {
		nlmsg_free(m);
		m = NULL;
	}
	return m;
}

/* Add NBD_ATTR_SOCKETS with one NBD_SOCK_ITEM/NBD_SOCK_FD per fd. */
static int put_sockets(struct nl_msg *m, const int *fds, unsigned n)
{
	struct nlattr *socks = nla_nest_start(m, NBD_ATTR_SOCKETS);
	if (!socks)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		struct nlattr *item = nla_nest_start(m, NBD_SOCK_ITEM);
		if (!item || nla_put_u32(m, NBD_SOCK_FD, (uint32_t)fds[i]) < 0)
			return -1;
		nla_nest_end(m, item);
	}
	nla_nest_end(m, socks);
	return 0;
}

/* Send m (freed here) and wait for the ACK; the answer goes to *rp. Returns
 * 0 or the kernel's (or libnl's) negative errno. */
static int transact(struct attach_genl *g, struct nl_msg *m, struct reply *rp)
{
	rp->kerr = 0;
	rp->index = -1;
	rp->ndevs = 0;
	nl_socket_modify_cb(g->sk, NL_CB_VALID, NL_CB_CUSTOM, on_valid, rp);
	nl_socket_modify_err_cb(g->sk, NL_CB_CUSTOM, on_error, rp);
	int r = nl_send_sync(g->sk, m);
	if (rp->kerr)
		return rp->kerr;
	return r < 0 ? -EIO : 0;
}

/* Words for what the kernel said, for a request on /dev/nbd<index>. */
static int kernel_fail(int r, const char *what, int index, char *err, size_t errlen)
{
	char dev[32] = "a free nbd device";
	if (index >= 0)
		snprintf(dev, sizeof dev, "/dev/nbd%d", index);
	switch (r) {
	case -EPERM:
	case -EACCES:
		return fail(err, errlen, r, "%s %s: permission denied (needs root: CAP_SYS_ADMIN)", what, dev);
	case -EBUSY:
		return fail(err, errlen, r, "%s %s: the device is busy (already connected, or still in use); "
			    "detach it first (bootlink-attach --detach %s) or choose another", what, dev, dev);
	default:
		return fail(err, errlen, r, "%s %s: the kernel said: %s", what, dev, strerror(-r));
	}
}

int attach_genl_connect(struct attach_genl *g, const struct attach_connect *c, int *index, char *err, size_t errlen)
{
	struct reply rp = { 0 };
	for (int with_backend = c->backend != NULL;; with_backend = 0) {
		struct nl_msg *m = request(g, NBD_CMD_CONNECT);
		if (!m)
			return fail(err, errlen, -ENOMEM, "out of memory");
		if ((c->index >= 0 && nla_put_u32(m, NBD_ATTR_INDEX, (uint32_t)c->index) < 0) ||
		    nla_put_u64(m, NBD_ATTR_SIZE_BYTES, c->size) < 0 ||
		    nla_put_u64(m, NBD_ATTR_BLOCK_SIZE_BYTES, c->block_size) < 0 ||
		    nla_put_u64(m, NBD_ATTR_SERVER_FLAGS, c->server_flags) < 0 ||
		    (c->timeout_s && nla_put_u64(m, NBD_ATTR_TIMEOUT, c->timeout_s) < 0) ||
		    (c->dead_timeout_s && nla_put_u64(m, NBD_ATTR_DEAD_CONN_TIMEOUT, c->dead_timeout_s) < 0) ||
		    (with_backend && nla_put_string(m, NBD_ATTR_BACKEND_IDENTIFIER, c->backend) < 0) ||
		    put_sockets(m, c->fds, c->nfds) < 0) {
			nlmsg_free(m);
			return fail(err, errlen, -ENOMEM, "the NBD_CMD_CONNECT message does not fit");
		}
		int r = transact(g, m, &rp);
		/* Kernels before 5.12 have no backend identifier and may reject it. */
		if (r == -EINVAL && with_backend)
			continue;
		if (r < 0)
			return kernel_fail(r, "connect", c->index, err, errlen);
		break;
	}
	if (rp.index < 0 && c->index < 0)
		return fail(err, errlen, -EPROTO, "the kernel connected a device but did not say which");
	*index = rp.index >= 0 ? rp.index : c->index;
	return 0;
}

int attach_genl_disconnect(struct attach_genl *g, int index, char *err, size_t errlen)
{
	struct reply rp = { 0 };
	struct nl_msg *m = request(g, NBD_CMD_DISCONNECT);
	if (!m || nla_put_u32(m, NBD_ATTR_INDEX, (uint32_t)index) < 0) {
		nlmsg_free(m);
		return fail(err, errlen, -ENOMEM, "out of memory");
	}
	int r = transact(g, m, &rp);
	return r < 0 ? kernel_fail(r, "disconnect", index, err, errlen) : 0;
}

int attach_genl_reconfigure(struct attach_genl *g, int index, const int *fds, unsigned nfds,
			    uint64_t timeout_s, uint64_t dead_timeout_s, const char *backend,
			    char *err, size_t errlen)
{
	struct reply rp = { 0 };
	struct nl_msg *m = request(g, NBD_CMD_RECONFIGURE);
	if (!m || nla_put_u32(m, NBD_ATTR_INDEX, (uint32_t)index) < 0 ||
	    (timeout_s && nla_put_u64(m, NBD_ATTR_TIMEOUT, timeout_s) < 0) ||
	    (dead_timeout_s && nla_put_u64(m, NBD_ATTR_DEAD_CONN_TIMEOUT, dead_timeout_s) < 0) ||
	    (backend && nla_put_string(m, NBD_ATTR_BACKEND_IDENTIFIER, backend) < 0) ||
	    put_sockets(m, fds, nfds) < 0) {
		nlmsg_free(m);
		return fail(err, errlen, -ENOMEM, "out of memory");
	}
	int r = transact(g, m, &rp);
	/* Some kernels say ENOSPC when no connection is dead; others (6.1) say nothing. */
	if (r == -ENOSPC)
		return fail(err, errlen, r, "/dev/nbd%d: the kernel took none of the new connections: none of its "
			    "connections is dead (try again once it has noticed the server went away)", index);
	return r < 0 ? kernel_fail(r, "reconfigure", index, err, errlen) : 0;
}

unsigned attach_sockets_taken(const int *fds, unsigned nfds)
{
	unsigned n = 0;
	for (unsigned i = 0; i < nfds; i++) {
		struct timeval tv;
		socklen_t len = sizeof tv;
		if (getsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0 && (tv.tv_sec || tv.tv_usec))
			n++;
	}
	return n;
}

int attach_genl_status(struct attach_genl *g, int index, struct attach_dev *devs, unsigned max,
		       char *err, size_t errlen)
{
	struct reply rp = { .devs = devs, .max = max };
	struct nl_msg *m = request(g, NBD_CMD_STATUS);
	if (!m || (index >= 0 && nla_put_u32(m, NBD_ATTR_INDEX, (uint32_t)index) < 0)) {
		nlmsg_free(m);
		return fail(err, errlen, -ENOMEM, "out of memory");
	}
	int r = transact(g, m, &rp);
	return r < 0 ? kernel_fail(r, "status of", index, err, errlen) : (int)rp.ndevs;
}
