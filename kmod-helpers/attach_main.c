/* attach_main.c — bootlink-attach: a bootlinkd export as a local block device
 * through the kernel nbd driver, for maintenance on the appliance.
 *
 *   bootlink-attach [options] EXPORT [/dev/nbdN]          attach, print the device
 *   bootlink-attach --probe [options] EXPORT              negotiate only, print what the server says
 *   bootlink-attach --detach [--force] /dev/nbdN
 *   bootlink-attach --reconfigure [options] EXPORT /dev/nbdN   new connections for a device whose server went away
 *   bootlink-attach --status [/dev/nbdN]
 *
 * The NBD handshake is done here (attach_nbd.c), then the negotiated
 * sockets go to the kernel (attach_genl.c). Exit status: 0 done; 1 failed
 * (one line on stderr, "bootlink-attach: ...", says why and what to do);
 * 2 usage.
 */
#include "attach_genl.h"
#include "attach_nbd.h"
#include "conf.h"
#include "log.h"
#include "nbd_wire.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };
enum mode { M_ATTACH, M_PROBE, M_DETACH, M_RECONFIGURE, M_STATUS };

#define MAX_CONNS 16
#define DEFAULT_PORT "10809"

/* What the options said. */
struct args {
	enum mode mode;
	const char *server;       /* -s HOST[:PORT], or NULL: from the config tree */
	const char *confdir;      /* -c DIR, or NULL: /etc/bootlink if it exists */
	unsigned conns;
	bool read_only, force, no_modprobe;
	uint64_t block_size;      /* 0 = choose */
	uint64_t timeout_s, dead_timeout_s, connect_timeout_s;
	const char *export_name;
	int index;                /* /dev/nbdN, -1 = none given */
	char host[256], port[16];
};

static const char usage_text[] =
	"usage: bootlink-attach [options] EXPORT [/dev/nbdN]           attach; prints the device\n"
	"       bootlink-attach --probe [options] EXPORT               negotiate only; print size, flags, block sizes\n"
	"       bootlink-attach --detach [--force] /dev/nbdN\n"
	"       bootlink-attach --reconfigure [options] EXPORT /dev/nbdN   new connections after a server restart\n"
	"       bootlink-attach --status [/dev/nbdN]\n"
	"\n"
	"  EXPORT is an image name (read-only), client/MAC (that PC's disk) or any name bootlinkd serves.\n"
	"  Without /dev/nbdN the kernel picks a free device.\n"
	"\n"
	"  -s, --server HOST[:PORT]  bootlinkd's NBD address (default: the address the running daemon\n"
	"                            bound, <paths/run>/listen/nbd, else listen/nbd of the config tree,\n"
	"                            0.0.0.0 meaning this machine; without a tree 127.0.0.1:10809)\n"
	"  -c, --config DIR          the config tree (default /etc/bootlink)\n"
	"  -C, --conns N             N connections (1-16); more than one only if the server offers multi-conn\n"
	"  -r, --read-only           a read-only device even for a writable export\n"
	"  -b, --block-size N        logical block size, 512-4096, a power of two (default 512, or the\n"
	"                            server's minimum if larger)\n"
	"  -t, --timeout S           seconds before a request to the server is failed (default 30)\n"
	"  -d, --dead-timeout S      seconds I/O waits for --reconfigure after the connections die\n"
	"                            (default 60; 0: fail I/O at once)\n"
	"      --connect-timeout S   seconds for the TCP connection and handshake (default 10)\n"
	"      --no-modprobe         do not load the nbd module if it is missing\n"
	"  -f, --force               (--detach) detach even if the device is mounted\n";

/* Print a one-line error, prefixed with the program name. */
__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
	va_list ap;
	fputs("bootlink-attach: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* "/dev/nbd3", "nbd3" or "3" → 3; -1 if it is none of those. */
static int parse_device(const char *s)
{
	uint64_t v;
	if (strncmp(s, "/dev/", 5) == 0)
		s += 5;
	if (strncmp(s, "nbd", 3) == 0)
		s += 3;
	return parse_u64(s, 0, 1u << 20, &v) < 0 ? -1 : (int)v;
}

/* Split "HOST:PORT", "[V6]:PORT", "HOST" or "PORT" into a->host/a->port; a
 * wildcard host (a listen address) means this machine. 0 or -EINVAL. */
static int split_addr(const char *s, struct args *a)
{
	const char *colon = strrchr(s, ':');
	uint64_t v;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		snprintf(a->host, sizeof a->host, "%.*s", (int)(end - s - 1), s + 1);
		snprintf(a->port, sizeof a->port, "%s", end[1] ? end + 2 : DEFAULT_PORT);
	} else if (colon && strchr(s, ':') == colon) {
		snprintf(a->host, sizeof a->host, "%.*s", (int)(colon - s), s);
		snprintf(a->port, sizeof a->port, "%s", colon + 1);
	} else if (!colon && parse_u64(s, 1, 65535, &v) == 0) {
		snprintf(a->host, sizeof a->host, "%s", "");
		snprintf(a->port, sizeof a->port, "%s", s);
	} else if (!colon) {
		snprintf(a->host, sizeof a->host, "%s", s);
		snprintf(a->port, sizeof a->port, "%s", DEFAULT_PORT);
	} else {
		return -EINVAL;
	}
	if (parse_u64(a->port, 1, 65535, &v) < 0)
		return -EINVAL;
	if (!a->host[0] || strcmp(a->host, "0.0.0.0") == 0 || strcmp(a->host, "*") == 0)
		snprintf(a->host, sizeof a->host, "%s", "127.0.0.1");
	else if (strcmp(a->host, "::") == 0)
		snprintf(a->host, sizeof a->host, "%s", "::1");
	return 0;
}

/* The server's address: -s, else listen/nbd of the config tree, else the
 * default. 0, or an exit status after saying why. */
static int find_server(struct args *a)
{
	if (a->server) {
		if (split_addr(a->server, a) < 0) {
			say("--server '%s': expected HOST[:PORT] or [IPV6]:PORT", a->server);
			return EXIT_USAGE;
		}
		return 0;
	}
	struct bl_conf c;
	char err[512];
	struct stat st;
	const char *dir = a->confdir ? a->confdir : CONF_DEFAULT_DIR;
	if (!a->confdir && stat(dir, &st) < 0) {
		snprintf(a->host, sizeof a->host, "%s", "127.0.0.1");
		snprintf(a->port, sizeof a->port, "%s", DEFAULT_PORT);
		return 0;
	}
	if (conf_load(dir, &c, err, sizeof err) < 0) {
		say("%s (or give the server with --server HOST:PORT)", err);
		return EXIT_FAIL;
	}
	/* A running bootlinkd writes the address it bound (the real port when
	 * listen/nbd asks for port 0) to <paths/run>/listen/nbd. */
	char path[CONF_PATH_MAX + 32], live[128];
	snprintf(path, sizeof path, "%s/listen/nbd", c.run_dir);
	FILE *f = fopen(path, "r");
	if (f) {
		bool got = fgets(live, sizeof live, f) != NULL;
		fclose(f);
		live[strcspn(live, " \t\r\n")] = 0;
		if (got && split_addr(live, a) == 0)
			return 0;
	}
	if (!c.listen_nbd[0] || strcmp(c.listen_nbd, "off") == 0) {
		say("%s/listen/nbd is off: bootlinkd serves no NBD there; give the server with --server HOST:PORT", c.dir);
		return EXIT_FAIL;
	}
	if (split_addr(c.listen_nbd, a) < 0 || strcmp(a->port, "0") == 0) {
		say("%s/listen/nbd is '%s': give the server with --server HOST:PORT", c.dir, c.listen_nbd);
		return EXIT_FAIL;
	}
	return 0;
}

/* Parse a number option into *out, or say why not. */
static int num_opt(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (parse_u64(s, min, max, out) == 0)
		return 0;
	say("%s '%s': expected a number %llu-%llu", name, s, (unsigned long long)min, (unsigned long long)max);
	return EXIT_USAGE;
}

/* Parse the command line into a. 0, or an exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
	enum { O_PROBE = 256, O_DETACH, O_RECONF, O_STATUS, O_CTIMEOUT, O_NOMOD };
	static const struct option longopts[] = {
		{ "probe", no_argument, NULL, O_PROBE }, { "detach", no_argument, NULL, O_DETACH },
		{ "reconfigure", no_argument, NULL, O_RECONF }, { "status", no_argument, NULL, O_STATUS },
		{ "server", required_argument, NULL, 's' }, { "config", required_argument, NULL, 'c' },
		{ "conns", required_argument, NULL, 'C' }, { "read-only", no_argument, NULL, 'r' },
		{ "block-size", required_argument, NULL, 'b' }, { "timeout", required_argument, NULL, 't' },
		{ "dead-timeout", required_argument, NULL, 'd' }, { "connect-timeout", required_argument, NULL, O_CTIMEOUT },
		{ "no-modprobe", no_argument, NULL, O_NOMOD }, { "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c, rc, modes = 0;
	*a = (struct args){ .conns = 1, .timeout_s = 30, .dead_timeout_s = 60, .connect_timeout_s = 10, .index = -1 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:c:C:rb:t:d:fh", longopts, NULL)) != -1) {
		rc = 0;
		switch (c) {
		case O_PROBE: a->mode = M_PROBE; modes++; break;
		case O_DETACH: a->mode = M_DETACH; modes++; break;
		case O_RECONF: a->mode = M_RECONFIGURE; modes++; break;
		case O_STATUS: a->mode = M_STATUS; modes++; break;
		case 's': a->server = optarg; break;
		case 'c': a->confdir = optarg; break;
		case 'C': rc = num_opt("--conns", optarg, 1, MAX_CONNS, &v); a->conns = (unsigned)v; break;
		case 'r': a->read_only = true; break;
		case 'b':
			rc = num_opt("--block-size", optarg, 512, 4096, &a->block_size);
			if (!rc && (a->block_size & (a->block_size - 1))) {
				say("--block-size %s: must be a power of two (512, 1024, 2048 or 4096)", optarg);
				rc = EXIT_USAGE;
			}
			break;
		case 't': rc = num_opt("--timeout", optarg, 1, 86400, &a->timeout_s); break;
		case 'd': rc = num_opt("--dead-timeout", optarg, 0, 86400, &a->dead_timeout_s); break;
		case O_CTIMEOUT: rc = num_opt("--connect-timeout", optarg, 1, 3600, &a->connect_timeout_s); break;
		case O_NOMOD: a->no_modprobe = true; break;
		case 'f': a->force = true; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		case 'V': printf("bootlink-attach %s\n", BL_VERSION); exit(0);
		case ':':
			say("%s needs a value (bootlink-attach --help)", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			say("unknown option '%s' (bootlink-attach --help)", argv[optind - 1]);
			return EXIT_USAGE;
		}
		if (rc)
			return rc;
	}
	if (modes > 1) {
		say("give at most one of --probe, --detach, --reconfigure, --status");
		return EXIT_USAGE;
	}
	char **ops = argv + optind;
	int nops = argc - optind;
	const char *dev = NULL;
	switch (a->mode) {
	case M_ATTACH:
	case M_PROBE:
	case M_RECONFIGURE:
		if (nops < 1 || nops > (a->mode == M_PROBE ? 1 : 2) || (a->mode == M_RECONFIGURE && nops != 2)) {
			say("%s (bootlink-attach --help)", a->mode == M_PROBE ? "--probe takes one EXPORT" :
			    a->mode == M_RECONFIGURE ? "--reconfigure takes EXPORT /dev/nbdN" :
			    "give the EXPORT to attach, and optionally /dev/nbdN");
			return EXIT_USAGE;
		}
		a->export_name = ops[0];
		if (!a->export_name[0]) {
			say("the export name is empty");
			return EXIT_USAGE;
		}
		dev = nops == 2 ? ops[1] : NULL;
		break;
	case M_DETACH:
		if (nops != 1) {
			say("--detach takes one device, e.g. /dev/nbd0");
			return EXIT_USAGE;
		}
		dev = ops[0];
		break;
	case M_STATUS:
		if (nops > 1) {
			say("--status takes at most one device");
			return EXIT_USAGE;
		}
		dev = nops ? ops[0] : NULL;
		break;
	}
	if (dev && (a->index = parse_device(dev)) < 0) {
		say("'%s' is not an nbd device (expected /dev/nbdN)", dev);
		return EXIT_USAGE;
	}
	return 0;
}

/* Size of /dev/nbd<index> in bytes from sysfs, or -1. */
static long long sys_size(int index)
{
	char path[64];
	unsigned long long sectors;
	snprintf(path, sizeof path, "/sys/block/nbd%d/size", index);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int n = fscanf(f, "%llu", &sectors);
	fclose(f);
	return n == 1 ? (long long)(sectors * 512) : -1;
}

/* Where /dev/nbd<index> (or a partition of it) is mounted, into buf; false if nowhere. */
static bool mounted_at(int index, char *buf, size_t len)
{
	char dev[32], line[4096], src[1024], dir[1024];
	int n = snprintf(dev, sizeof dev, "/dev/nbd%d", index);
	FILE *f = fopen("/proc/mounts", "r");
	bool found = false;
	if (!f)
		return false;
	while (!found && fgets(line, sizeof line, f))
		if (sscanf(line, "%1023s %1023s", src, dir) == 2 && strncmp(src, dev, (size_t)n) == 0 &&
		    (src[n] == 0 || src[n] == 'p')) {
			snprintf(buf, len, "%s", dir);
			found = true;
		}
	fclose(f);
	return found;
}

/* Whether /dev/nbd<index> is connected: 1, 0, or -ENODEV (no such device)
 * / another -errno after saying why. */
static int device_connected(struct attach_genl *g, int index)
{
	struct attach_dev d;
	char err[512];
	int n = attach_genl_status(g, index, &d, 1, err, sizeof err);
	if (n < 0) {
		say("%s", err);
		return n;
	}
	if (n == 0)
		return -ENODEV;
	return d.connected;
}

/* Open a.conns connections to the export and negotiate each (GO unless
 * probing); the first one's answer goes to *exp. Returns how many are open
 * in fds, or -1 after saying why (closing what was opened). */
static int open_conns(struct args *a, bool go, int *fds, struct attach_export *exp)
{
	char err[512];
	unsigned n = 0, want = a->conns;
	while (n < want) {
		struct attach_export e;
		int fd = attach_tcp_connect(a->host, a->port, (unsigned)a->connect_timeout_s, err, sizeof err);
		int r = fd < 0 ? fd : attach_handshake(fd, a->export_name, go, &e, err, sizeof err);
		if (r < 0) {
			say("%s%s", err, r == -ENOENT ? " (see `bootlinkctl image list` and `bootlinkctl client list`)" : "");
			goto fail;
		}
		fds[n++] = fd;
		if (n == 1) {
			*exp = e;
			if (want > 1 && !(e.flags & NBD_FLAG_CAN_MULTI_CONN)) {
				say("warning: the server does not offer multi-conn for '%s'; using 1 connection", a->export_name);
				want = 1;
			}
		} else if (e.size != exp->size || e.flags != exp->flags) {
			say("connection %u to '%s' saw size %llu flags 0x%x, the first saw %llu 0x%x: the export changed",
			    n, a->export_name, (unsigned long long)e.size, e.flags, (unsigned long long)exp->size, exp->flags);
			goto fail;
		}
	}
	return (int)n;
fail:
	while (n)
		close(fds[--n]);
	return -1;
}

/* --probe: negotiate and print what the server says. */
static int cmd_probe(struct args *a)
{
	int fd;
	struct attach_export e;
	char flags[256];
	a->conns = 1; /* one description is enough (and fd holds one) */
	if (open_conns(a, false, &fd, &e) < 0)
		return EXIT_FAIL;
	close(fd);
	attach_flags_str(e.flags, flags, sizeof flags);
	printf("export: %s\nserver: %s:%s\nsize: %llu\nflags: 0x%04x %s\n", a->export_name, a->host, a->port,
	       (unsigned long long)e.size, e.flags, flags);
	if (e.pref_block)
		printf("block sizes: minimum %u, preferred %u, maximum %u\n", e.min_block, e.pref_block, e.max_block);
	return 0;
}

/* The logical block size for the device: the option, else 512 or the
 * server's minimum. 0 after saying why when nothing fits. */
static uint64_t pick_block_size(const struct args *a, const struct attach_export *e)
{
	uint64_t bs = a->block_size ? a->block_size : 512;
	while (!a->block_size && bs < e->min_block && bs < 4096)
		bs <<= 1;
	if (bs < e->min_block) {
		say("the server needs blocks of at least %u bytes; the kernel allows at most 4096", e->min_block);
		return 0;
	}
	if (e->size % bs)
		say("warning: '%s' is %llu bytes, not a multiple of the %llu-byte block size: the last %llu bytes "
		    "are not reachable", a->export_name, (unsigned long long)e->size, (unsigned long long)bs,
		    (unsigned long long)(e->size % bs));
	return bs;
}

/* Attach: negotiate, connect the device, print it. */
static int cmd_attach(struct args *a, struct attach_genl *g)
{
	int fds[MAX_CONNS], n, index, r;
	struct attach_export e;
	char err[512], backend[512], flags[256];
	if (a->index >= 0 && (r = device_connected(g, a->index)) != 0 && r != -ENODEV) {
		if (r > 0)
			say("/dev/nbd%d is busy: it is already connected (bootlink-attach --status /dev/nbd%d; "
			    "--detach it first, or leave out the device to take a free one)", a->index, a->index);
		return EXIT_FAIL;
	}
	if ((n = open_conns(a, true, fds, &e)) < 0)
		return EXIT_FAIL;
	uint64_t bs = pick_block_size(a, &e);
	snprintf(backend, sizeof backend, "bootlink:%s:%s/%s", a->host, a->port, a->export_name);
	struct attach_connect c = {
		.index = a->index, .fds = fds, .nfds = (unsigned)n, .size = e.size, .block_size = bs,
		.server_flags = e.flags | (a->read_only ? NBD_FLAG_READ_ONLY : 0),
		.timeout_s = a->timeout_s, .dead_timeout_s = a->dead_timeout_s, .backend = backend,
	};
	r = bs ? attach_genl_connect(g, &c, &index, err, sizeof err) : -EINVAL;
	for (int i = 0; i < n; i++)
		close(fds[i]);
	if (r < 0) {
		if (bs)
			say("%s", err);
		return EXIT_FAIL;
	}
	/* The kernel reads the partition table at the device's first open:
	 * open it once so /dev/nbdNp1... are there when we return. */
	char path[32];
	snprintf(path, sizeof path, "/dev/nbd%d", index);
	int dfd = open(path, O_RDONLY | O_CLOEXEC);
	if (dfd >= 0)
		close(dfd);
	attach_flags_str((uint16_t)c.server_flags, flags, sizeof flags);
	say("/dev/nbd%d: '%s' from %s:%s, %llu bytes, %s, %d connection%s, block size %llu", index, a->export_name,
	    a->host, a->port, (unsigned long long)e.size, flags, n, n == 1 ? "" : "s", (unsigned long long)bs);
	printf("/dev/nbd%d\n", index);
	return 0;
}

/* The backend identifier /dev/nbd<index> was connected with (sysfs), into
 * buf; false if it has none (or the kernel does not show it). */
static bool sys_backend(int index, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/sys/block/nbd%d/backend", index);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool got = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return got && buf[0];
}

/* --reconfigure: new connections to the same export for a connected device
 * whose connections died (a bootlinkd restart). */
static int cmd_reconfigure(struct args *a, struct attach_genl *g)
{
	int fds[MAX_CONNS], n, r;
	struct attach_export e;
	char err[512], backend[512];
	if ((r = device_connected(g, a->index)) <= 0) {
		if (r == 0 || r == -ENODEV)
			say("/dev/nbd%d is not connected: attach it instead (bootlink-attach %s /dev/nbd%d)", a->index,
			    a->export_name, a->index);
		return EXIT_FAIL;
	}
	/* The kernel wants the same backend identifier as at connect; ours name the export. */
	bool has_backend = sys_backend(a->index, backend, sizeof backend);
	const char *slash = has_backend && strncmp(backend, "bootlink:", 9) == 0 ? strchr(backend, '/') : NULL;
	if (slash && strcmp(slash + 1, a->export_name) != 0) {
		say("/dev/nbd%d is attached to '%s', not '%s'", a->index, slash + 1, a->export_name);
		return EXIT_FAIL;
	}
	if ((n = open_conns(a, true, fds, &e)) < 0)
		return EXIT_FAIL;
	long long have = sys_size(a->index);
	unsigned taken = 0;
	if (have >= 0 && (unsigned long long)have != e.size / 512 * 512) {
		say("'%s' is %llu bytes but /dev/nbd%d is %lld bytes: is it the export the device was attached to?",
		    a->export_name, (unsigned long long)e.size, a->index, have);
		r = -EINVAL;
	} else {
		r = attach_genl_reconfigure(g, a->index, fds, (unsigned)n, a->timeout_s, a->dead_timeout_s,
					    has_backend ? backend : NULL, err, sizeof err);
		if (r < 0)
			say("%s", err);
		/* Success is also the kernel's answer when it took no socket: look. */
		else if ((taken = attach_sockets_taken(fds, (unsigned)n)) == 0) {
			say("/dev/nbd%d: the kernel took none of the new connections: none of its connections is dead "
			    "(try again once it has noticed the server went away; dmesg says more)", a->index);
			r = -ENOSPC;
		}
	}
	for (int i = 0; i < n; i++)
		close(fds[i]);
	if (r < 0)
		return EXIT_FAIL;
	say("/dev/nbd%d: %u new connection%s to '%s' at %s:%s", a->index, taken, taken == 1 ? "" : "s",
	    a->export_name, a->host, a->port);
	return 0;
}

/* --detach: disconnect and wait (10 s at most) until the kernel says so. */
static int cmd_detach(struct args *a, struct attach_genl *g)
{
	char err[512], where[1024];
	int r = device_connected(g, a->index);
	if (r == -ENODEV || r == 0) {
		say("/dev/nbd%d is not connected: nothing to detach", a->index);
		return EXIT_FAIL;
	}
	if (r < 0)
		return EXIT_FAIL;
	if (!a->force && mounted_at(a->index, where, sizeof where)) {
		say("/dev/nbd%d is mounted on %s: unmount it first (or --force, and the filesystem sees I/O errors)",
		    a->index, where);
		return EXIT_FAIL;
	}
	if (attach_genl_disconnect(g, a->index, err, sizeof err) < 0) {
		say("%s", err);
		return EXIT_FAIL;
	}
	for (int i = 0; i < 100 && (r = device_connected(g, a->index)) > 0; i++)
		nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
	if (r > 0) {
		say("/dev/nbd%d still shows as connected 10 s after the disconnect (is something holding it open?)", a->index);
		return EXIT_FAIL;
	}
	say("/dev/nbd%d detached", a->index);
	return 0;
}

/* --status: one line per device: "/dev/nbdN connected|disconnected [SIZE]". */
static int cmd_status(struct args *a, struct attach_genl *g)
{
	struct attach_dev devs[256];
	char err[512];
	int n = attach_genl_status(g, a->index, devs, ARRAY_SIZE(devs), err, sizeof err);
	if (n < 0) {
		say("%s", err);
		return EXIT_FAIL;
	}
	if (n == 0 && a->index >= 0) {
		say("/dev/nbd%d: no such nbd device", a->index);
		return EXIT_FAIL;
	}
	for (int i = 0; i < n && i < (int)ARRAY_SIZE(devs); i++) {
		printf("/dev/nbd%d %s", devs[i].index, devs[i].connected ? "connected" : "disconnected");
		if (devs[i].connected)
			printf(" %lld", sys_size(devs[i].index));
		putchar('\n');
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct args a;
	struct attach_genl *g = NULL;
	char err[512];
	int rc;
	bl_log_ident = "bootlink-attach";
	if ((rc = parse_args(argc, argv, &a)) != 0)
		return rc;
	if (a.mode == M_ATTACH || a.mode == M_PROBE || a.mode == M_RECONFIGURE)
		if ((rc = find_server(&a)) != 0)
			return rc;
	if (a.mode == M_PROBE)
		return cmd_probe(&a);
	/* Only attaching loads the module: a device to detach or reconfigure needs it loaded already. */
	if (attach_genl_open(&g, a.mode == M_ATTACH && !a.no_modprobe, err, sizeof err) < 0) {
		say("%s", err);
		return EXIT_FAIL;
	}
	switch (a.mode) {
	case M_ATTACH: rc = cmd_attach(&a, g); break;
	case M_RECONFIGURE: rc = cmd_reconfigure(&a, g); break;
	case M_DETACH: rc = cmd_detach(&a, g); break;
	default: rc = cmd_status(&a, g); break;
	}
	attach_genl_close(g);
	return rc;
}
