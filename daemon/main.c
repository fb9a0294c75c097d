/* main.c — bootlinkd: start-up, the main thread's loop, shutdown.
 *
 * The main thread owns everything that may block: the config tree (inotify),
 * the database (it rebuilds the export table when another process commits),
 * signals (signalfd) and the runtime tree. Workers (worker.c) own the data
 * path. Start-up order: config → database → exports → listening sockets →
 * (then daemon/user: privdrop.h) → workers → runtime tree "ready". SIGTERM/SIGINT: workers stop accepting and
 * drain (limits/shutdown_timeout_s), then exit 0. SIGHUP: re-read the config
 * tree and the database.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "autoadd.h"
#include "bootev.h"
#include "bootset.h"
#include "cache.h"
#include "clients.h"
#include "conf.h"
#include "daemon.h"
#include "db.h"
#include "exports.h"
#include "faults.h"
#include "log.h"
#include "http.h"
#include "iscsi.h"
#include "nbd.h"
#include "privdrop.h"
#include "stats.h"
#include "tls.h"
#include "util.h"
#include "vdisk.h"
#include "worker.h"

#define MAX_WORKERS 256

struct live_settings g_live;
static struct worker *g_workers; /* for hooks that hand work to a worker */

struct daemon {
	struct bl_conf conf;
	struct db *db;
	int64_t db_version;
	int sigfd, conf_fd, db_watch_fd;
	struct worker *workers;
	unsigned nworkers;
	char nbd_bound[128];
	char iscsi_bound[128];
	char http_bound[128];
};

static void usage(FILE *f)
{
	fprintf(f, "usage: bootlinkd [-c CONFIG_DIR] [--version]\n"
		   "  -c DIR   config tree (default %s); see bootlink-config(5)\n", CONF_DEFAULT_DIR);
}

static void apply_live(const struct bl_conf *c)
{
	__atomic_store_n(&g_live.max_connections, c->max_connections, __ATOMIC_RELAXED);
	__atomic_store_n(&g_live.max_inflight, c->max_inflight, __ATOMIC_RELAXED);
	__atomic_store_n(&g_live.handshake_timeout_s, c->handshake_timeout_s, __ATOMIC_RELAXED);
	__atomic_store_n(&bl_log_level, c->log_level, __ATOMIC_RELAXED);
	__atomic_store_n(&g_live.clients_autoadd, c->clients_autoadd, __ATOMIC_RELAXED);
	__atomic_store_n(&g_live.coalesce_us, c->coalesce_us, __ATOMIC_RELAXED);
}

/* The database's directory holds learned state (boot sets). */
static void configure_bootset(const struct bl_conf *c)
{
	char dir[CONF_PATH_MAX];
	snprintf(dir, sizeof dir, "%s", c->db_path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	bootset_configure(dir, c->cache_learn_s, c->cache_prefetch);
}

static void on_image_opened(struct image *img)
{
	if (g_workers)
		bootset_prefetch(img, &g_workers[0]);
}

/* Live settings that need more than a store. */
static void apply_live_cache(unsigned old_mb, const struct bl_conf *c)
{
	if (old_mb != c->cache_size_mb) {
		cache_resize((uint64_t)c->cache_size_mb << 20);
		log_info("cache resized to %u MiB", c->cache_size_mb);
	}
}

/* Bind one listening socket on addr (port 0 = any; *port_out gets the real one). */
static int listen_on(const struct sockaddr_storage *ss, socklen_t sl, int *fd_out)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)ss, sl) < 0 || listen(fd, 4096) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	*fd_out = fd;
	return 0;
}

/* SO_REUSEPORT would let a second daemon share our port silently and take
 * half the clients. Before binding, check with a plain socket that nobody
 * holds the port. */
static int port_free(const struct sockaddr_storage *ss, socklen_t sl)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1, r = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)ss, sl) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* net/tcp_congestion on a listening socket: the connections it accepts
 * inherit it. An unknown name is said once, and the system's default stays. */
static void set_congestion(int fd, const char *cc, const char *what)
{
	static bool said;
	if (!*cc || setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, strlen(cc)) == 0 || said)
		return;
	int e = errno;
	char avail[256] = "?", sys[32] = "?";
	read_small_file("/proc/sys/net/ipv4/tcp_available_congestion_control", avail, sizeof avail);
	read_small_file("/proc/sys/net/ipv4/tcp_congestion_control", sys, sizeof sys);
	str_rstrip(avail);
	str_rstrip(sys);
	log_warn("net/tcp_congestion: '%s' cannot be used (%s; listen/%s): connections use the system's "
		 "default, %s; this kernel offers: %s", cc, strerror(e), what, sys, avail);
	said = true;
}

/* One SO_REUSEPORT socket per worker, all on the same port. */
static int setup_listeners(struct daemon *d, const char *what, const char *addr, const struct proto *proto,
			   char *bound, size_t boundlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (addr_parse(addr, &ss, &sl) < 0) {
		log_err("listen/%s: '%s' is not a valid address", what, addr);
		return -EINVAL;
	}
	/* sin_port and sin6_port sit at the same offset. */
	int r = ((struct sockaddr_in *)&ss)->sin_port ? port_free(&ss, sl) : 0;
	for (unsigned i = 0; i < d->nworkers && r == 0; i++) {
		int fd = -1;
		r = listen_on(&ss, sl, &fd);
		if (r < 0)
			break;
		set_congestion(fd, d->conf.tcp_congestion, what);
		if (i == 0) {
			/* Port 0: the kernel picked one; the others must share it. */
			socklen_t l = sizeof ss;
			getsockname(fd, (struct sockaddr *)&ss, &l);
			addr_format((struct sockaddr *)&ss, bound, boundlen);
		}
		worker_add_listener(&d->workers[i], fd, proto);
	}
	if (r < 0) {
		if (r == -EADDRINUSE)
			log_err("cannot listen on %s (listen/%s): the port is in use by another program (or another "
				"bootlinkd; see: ss -ltnp 'sport = %u'): stop it, or set another address in listen/%s",
				addr, what, ntohs(((struct sockaddr_in *)&ss)->sin_port), what);
		else
			log_err("cannot listen on %s (listen/%s): %s", addr, what, strerror(-r));
		return r;
	}
	log_info("listening for %s on %s (%u workers)", what, bound, d->nworkers);
	return 0;
}

static int write_run_file(const struct daemon *d, const char *name, const char *val)
{
	char path[CONF_PATH_MAX + 64], line[256];
	snprintf(path, sizeof path, "%s/%s", d->conf.run_dir, name);
	snprintf(line, sizeof line, "%s\n", val);
	return write_small_file(path, line);
}

/* The port of a bound "host:port" (0 if none). */
static unsigned port_of(const char *bound)
{
	const char *c = strrchr(bound, ':');
	return c ? (unsigned)strtoul(c + 1, NULL, 10) : 0;
}

/* Every protocol's listening sockets, and <run>/listen/<protocol> for each. */
static int start_listeners(struct daemon *d)
{
	const struct {
		const char *what, *addr;
		const struct proto *proto;
		char *bound;
	} ls[] = {
		{ "nbd", d->conf.listen_nbd, &nbd_proto, d->nbd_bound },
		{ "iscsi", d->conf.listen_iscsi, &iscsi_proto, d->iscsi_bound },
		{ "http", d->conf.listen_http, &http_proto, d->http_bound },
	};
	char lp[CONF_PATH_MAX + 16], name[32];
	snprintf(lp, sizeof lp, "%s/listen", d->conf.run_dir);
	mkdir_p(lp, 0755);
	for (size_t i = 0; i < ARRAY_SIZE(ls); i++) {
		if (!ls[i].addr[0] || strcmp(ls[i].addr, "off") == 0)
			continue;
		int r = setup_listeners(d, ls[i].what, ls[i].addr, ls[i].proto, ls[i].bound, 128);
		if (r < 0)
			return r;
		snprintf(name, sizeof name, "listen/%s", ls[i].what);
		write_run_file(d, name, ls[i].bound);
	}
	http_set_ports(port_of(d->nbd_bound), port_of(d->iscsi_bound), port_of(d->http_bound));
	return 0;
}

static void reload_db(struct daemon *d, bool force)
{
	int64_t v = db_data_version(d->db);
	if (!force && v == d->db_version)
		return;
	d->db_version = v;
	if (exports_reload(d->db) == 0)
		clients_refresh();
}

static void reload_conf(struct daemon *d)
{
	struct bl_conf fresh;
	char err[512];
	if (conf_load(d->conf.dir, &fresh, err, sizeof err) < 0) {
		log_err("config not reloaded: %s (the running settings stay)", err);
		return;
	}
	unsigned old_mb = d->conf.cache_size_mb;
	if (strcmp(fresh.debug_faults, d->conf.debug_faults) != 0 &&
	    faults_configure(fresh.debug_faults, err, sizeof err) < 0) {
		log_err("config not reloaded: %s (the running settings stay)", err);
		return;
	}
	if (conf_apply_live(&d->conf, &fresh) > 0) {
		apply_live(&d->conf);
		apply_live_cache(old_mb, &d->conf);
		clients_configure(&d->conf);
		configure_bootset(&d->conf);
	}
}

/* Watch the database's directory: any write to the db or its WAL wakes us. */
static int watch_db(const char *db_path)
{
	char dir[CONF_PATH_MAX];
	snprintf(dir, sizeof dir, "%s", db_path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd >= 0 && inotify_add_watch(fd, dir[0] ? dir : "/", IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void drain_fd(int fd)
{
	char buf[4096];
	while (read(fd, buf, sizeof buf) > 0)
		;
}

/* After a crowd of connections left, hand the freed memory back to the
 * system: glibc keeps free chunks in each worker's arena otherwise, and an
 * appliance's RSS should return to its baseline after a boot storm. */
static void trim_after_crowd(void)
{
	static unsigned high;
	unsigned n = __atomic_load_n(&g_total_conns, __ATOMIC_RELAXED);
	if (n > high)
		high = n;
	if (high >= n + 64 || (n == 0 && high > 0)) {
		malloc_trim(0);
		high = n;
	}
}

/* Returns when SIGTERM/SIGINT arrives. */
static void main_loop(struct daemon *d)
{
	uint64_t next_dump = 0, next_save = 0;
	for (;;) {
		struct pollfd p[5] = { { d->sigfd, POLLIN, 0 }, { d->conf_fd, POLLIN, 0 }, { d->db_watch_fd, POLLIN, 0 },
				       { autoadd_fd(), POLLIN, 0 }, { bootev_fd(), POLLIN, 0 } };
		unsigned interval = d->conf.stats_interval_ms;
		int r = poll(p, 5, (int)interval);
		if (r < 0 && errno != EINTR)
			log_err("poll: %s", strerror(errno));
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(d->sigfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGHUP) {
					log_info("SIGHUP: re-reading the config tree and the database");
					reload_conf(d);
					reload_db(d, true);
				} else {
					log_info("%s: shutting down", strsignal(si.ssi_signo));
					return;
				}
			}
		}
		if (p[1].revents & POLLIN && conf_watch_drain(d->conf_fd, d->conf.dir) > 0)
			reload_conf(d);
		if (p[2].revents & POLLIN) {
			drain_fd(d->db_watch_fd);
			reload_db(d, false);
		}
		/* Unknown PCs queued by the HTTP endpoint: register them, then
		 * publish them at once (their next script fetch boots them). */
		if (p[3].revents & POLLIN && autoadd_run(d->db, &d->conf) > 0)
			reload_db(d, true);
		/* Boot scripts served: an event and last_seen per PC. */
		if (p[4].revents & POLLIN)
			bootev_run(d->db);
		uint64_t now = now_ns();
		if (now >= next_dump) {
			reload_db(d, false); /* covers missed inotify events */
			clients_tick(now);
			if (now >= next_save) {
				bootset_save_all();
				next_save = now + 10000000000ull;
			}
			stats_dump(d->conf.run_dir);
			trim_after_crowd();
			next_dump = now + (uint64_t)interval * 1000000ull;
		}
	}
}

/* Every connection is a file descriptor: lift the soft limit to the hard
 * one, and say so when even that cannot hold limits/max_connections. */
static void raise_nofile(const struct bl_conf *c)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)c->max_connections + 256)
		log_warn("open files are limited to %llu, fewer than limits/max_connections (%u) + 256: "
			 "raise LimitNOFILE (systemd) or ulimit -n", (unsigned long long)rl.rlim_cur,
			 c->max_connections);
}

static int start(struct daemon *d)
{
	char err[512];
	int r_cache;
	raise_nofile(&d->conf);
	if (vdisk_global_init() < 0)
		return -ENOMEM;
	r_cache = cache_init((uint64_t)d->conf.cache_size_mb << 20, d->conf.cache_block_kb << 10);
	if (r_cache < 0) {
		log_err("cache/block_kb: %u is not a power of two between 4 and 1024", d->conf.cache_block_kb);
		return r_cache;
	}
	int r = db_open(d->conf.db_path, true, &d->db, err, sizeof err);
	if (r < 0) {
		log_err("%s", err);
		return r;
	}
	d->db_version = db_data_version(d->db);
	if ((r = autoadd_init()) < 0) {
		log_err("cannot create the autoadd eventfd: %s", strerror(-r));
		return r;
	}
	if ((r = bootev_init()) < 0) {
		log_err("cannot create the boot events eventfd: %s", strerror(-r));
		return r;
	}
	clients_configure(&d->conf);
	configure_bootset(&d->conf);
	r = mkdir_p(d->conf.run_dir, 0755);
	if (r < 0) {
		log_err("cannot create the runtime directory %s (paths/run): %s", d->conf.run_dir, strerror(-r));
		return r;
	}
	stats_clear(d->conf.run_dir);
	unsigned n = d->conf.workers ? d->conf.workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	d->nworkers = MIN(MAX(n, 1u), MAX_WORKERS);
	d->workers = calloc(d->nworkers, sizeof *d->workers);
	if (!d->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < d->nworkers; i++) {
		r = worker_init(&d->workers[i], (int)i);
		if (r < 0) {
			log_err("cannot set up io_uring for worker %u: %s", i, strerror(-r));
			return r;
		}
	}
	/* Images opened from here on read their boot sets ahead on worker 0
	 * (queued in its mailbox until it runs). */
	g_workers = d->workers;
	exports_opened_hook = on_image_opened;
	if (exports_reload(d->db) < 0)
		return -EIO;
	iscsi_configure(&d->conf);
	/* TLS credentials are read while still root (the key files may be root's only). */
	if ((r = tls_global_init(&d->conf, err, sizeof err)) < 0) {
		log_err("%s", err);
		return r;
	}
	r = start_listeners(d);
	if (r < 0)
		return r;
	if ((r = priv_drop(&d->conf)) < 0)
		return r;
	for (unsigned i = 0; i < d->nworkers; i++) {
		r = worker_start(&d->workers[i]);
		if (r < 0) {
			log_err("cannot start worker %u (io_uring): %s", i, strerror(-r));
			return r;
		}
	}
	d->conf_fd = conf_watch_open(d->conf.dir);
	if (d->conf_fd < 0)
		log_warn("config tree %s is not watched (%s): send SIGHUP after changes", d->conf.dir, strerror(-d->conf_fd));
	d->db_watch_fd = watch_db(d->conf.db_path);
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	write_run_file(d, "pid", pid);
	stats_dump(d->conf.run_dir);
	write_run_file(d, "ready", pid);
	log_info("ready: %zu exports, config %s, database %s", exports_count(), d->conf.dir, d->conf.db_path);
	return 0;
}

static void stop(struct daemon *d)
{
	uint64_t deadline = now_ns() + (uint64_t)d->conf.shutdown_timeout_s * 1000000000ull;
	char p[CONF_PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/ready", d->conf.run_dir);
	unlink(p);
	for (unsigned i = 0; i < d->nworkers; i++)
		worker_request_stop(&d->workers[i], deadline);
	for (unsigned i = 0; i < d->nworkers; i++) {
		worker_join(&d->workers[i]);
		worker_destroy(&d->workers[i]);
	}
	free(d->workers);
	bootset_save_all();
	exports_opened_hook = NULL;
	stats_clear(d->conf.run_dir);
	clients_shutdown();
	exports_shutdown();
	autoadd_shutdown();
	bootev_shutdown();
	tls_global_free();
	db_close(d->db);
	faults_shutdown();
	log_info("stopped");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "config", 1, 0, 'c' }, { "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { 0 } };
	const char *dir = CONF_DEFAULT_DIR;
	int o;
	bl_log_ident = "bootlinkd";
	while ((o = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (o) {
		case 'c': dir = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': puts("bootlinkd " BL_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	static struct daemon d = { .sigfd = -1, .conf_fd = -1, .db_watch_fd = -1 };
	char err[512];
	int cr = conf_load(dir, &d.conf, err, sizeof err);
	if (cr < 0) {
		log_err("%s%s", err, cr == -EINVAL ? "; fix that file, or remove it to use the default "
			"(see man 5 bootlink-config)" : "");
		return 1;
	}
	apply_live(&d.conf);
	if (faults_configure(d.conf.debug_faults, err, sizeof err) < 0) {
		log_err("%s", err);
		return 1;
	}
	/* Signals go to the main thread's signalfd; workers inherit the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	d.sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (start(&d) < 0) {
		log_err("start-up failed; nothing is being served");
		stats_clear(d.conf.run_dir);
		return 1;
	}
	main_loop(&d);
	stop(&d);
	return 0;
}
