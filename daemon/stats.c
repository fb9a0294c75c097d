/* stats.c — see stats.h. */
#include "stats.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "bootset.h"
#include "cache.h"
#include "clients.h"
#include "conn.h"
#include "db.h"
#include "exports.h"
#include "image.h"
#include "log.h"
#include "util.h"

struct reg {
	struct conn *c;
	char export[96];
	time_t since;
	bool export_dumped;          /* export written to the tree since it last changed */
	uint64_t dumped[4];          /* counters as last written (requests, read, written, errors) */
	bool fresh_dumped;           /* the entry exists in the tree */
};

/* A connection's entry as copied under the lock, written without it. */
struct reg_snap {
	struct reg r;
	uint64_t id;
	char peer[64];
	const char *proto;
	uint64_t now[4];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct reg *regs;
static size_t nregs, capregs;

void stats_conn_add(struct conn *c)
{
	pthread_mutex_lock(&lock);
	if (nregs == capregs) {
		size_t cap = capregs ? capregs * 2 : 64;
		struct reg *nv = realloc(regs, cap * sizeof *nv);
		if (!nv) {
			pthread_mutex_unlock(&lock);
			return; /* not shown in the runtime tree; serving goes on */
		}
		regs = nv;
		capregs = cap;
	}
	regs[nregs++] = (struct reg){ .c = c, .since = time(NULL) };
	pthread_mutex_unlock(&lock);
}

void stats_conn_remove(struct conn *c)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nregs; i++)
		if (regs[i].c == c) {
			regs[i] = regs[--nregs];
			break;
		}
	pthread_mutex_unlock(&lock);
}

void stats_conn_set_export(struct conn *c, const char *export_name)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nregs; i++)
		if (regs[i].c == c) {
			snprintf(regs[i].export, sizeof regs[i].export, "%s", export_name);
			regs[i].export_dumped = false;
		}
	pthread_mutex_unlock(&lock);
}

/* Open connections speaking proto (its name: "nbd", "iscsi", "http"). */
unsigned stats_conn_count(const char *proto)
{
	unsigned n = 0;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nregs; i++)
		n += strcmp(regs[i].c->proto->name, proto) == 0;
	pthread_mutex_unlock(&lock);
	return n;
}

static void put_file(const char *dir, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put_file(const char *dir, const char *name, const char *fmt, ...)
{
	char path[1200], val[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(val, sizeof val - 1, fmt, ap);
	va_end(ap);
	strcat(val, "\n");
	snprintf(path, sizeof path, "%s/%s", dir, name);
	write_small_file(path, val);
}

/* An entry's files appear all at once: a new entry is built in NAME.new
 * and renamed into place by entry_end(); an existing one is updated file by
 * file (each file replaced atomically). dir receives where to write. */
static bool entry_begin(const char *base, const char *name, char *dir, size_t len)
{
	snprintf(dir, len, "%s/%s", base, name);
	if (mkdir(dir, 0755) < 0 && errno == EEXIST)
		return false;
	rmdir(dir);
	snprintf(dir, len, "%s/%s.new", base, name);
	mkdir(dir, 0755);
	return true;
}

static void entry_end(const char *base, const char *name, bool fresh)
{
	char from[1200], to[1200];
	if (!fresh)
		return;
	snprintf(from, sizeof from, "%s/%s.new", base, name);
	snprintf(to, sizeof to, "%s/%s", base, name);
	rename(from, to);
}

static void rm_tree(const char *path)
{
	DIR *d = opendir(path);
	if (!d) {
		unlink(path);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char p[1200];
		snprintf(p, sizeof p, "%s/%s", path, de->d_name);
		rm_tree(p);
	}
	closedir(d);
	rmdir(path);
}

/* Remove entries of dir whose names are not in keep (n names). */
static void prune(const char *dir, char (*keep)[96], size_t n)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		bool found = false;
		for (size_t i = 0; i < n && !found; i++)
			found = strcmp(keep[i], de->d_name) == 0;
		if (!found) {
			char p[1200];
			snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
			rm_tree(p);
		}
	}
	closedir(d);
}

/* Hardening (docs/hardening.md): the registry lock is held only to copy
 * the entries, never during file I/O — workers take it on every connect and
 * disconnect, and with a thousand connections writing the tree takes long.
 * Files that did not change are not rewritten, and at most
 * STATS_CONN_ENTRIES_MAX connections get an entry (8 files each): five
 * thousand entries on a disk-backed tree took the main thread over 20 s. */
#define STATS_CONN_ENTRIES_MAX 1024 /* connections/<id>/ entries written; totals count them all */

static void dump_conns(const char *run)
{
	static const char *const counter_names[4] = { "requests", "bytes_read", "bytes_written", "errors" };
	char base[1100], dir[1200];
	snprintf(base, sizeof base, "%s/connections", run);
	mkdir_p(base, 0755);
	pthread_mutex_lock(&lock);
	size_t total = nregs, n = MIN(nregs, (size_t)STATS_CONN_ENTRIES_MAX);
	struct reg_snap *snap = malloc((n ? n : 1) * sizeof *snap);
	char (*keep)[96] = calloc(n ? n : 1, sizeof *keep);
	for (size_t i = 0; i < n && snap && keep; i++) {
		struct conn *c = regs[i].c;
		snap[i].r = regs[i];
		snap[i].id = c->id;
		snprintf(snap[i].peer, sizeof snap[i].peer, "%s", c->peer);
		snap[i].proto = c->proto->name;
		snap[i].now[0] = __atomic_load_n(&c->stat_requests, __ATOMIC_RELAXED);
		snap[i].now[1] = __atomic_load_n(&c->stat_bytes_read, __ATOMIC_RELAXED);
		snap[i].now[2] = __atomic_load_n(&c->stat_bytes_written, __ATOMIC_RELAXED);
		snap[i].now[3] = __atomic_load_n(&c->stat_errors, __ATOMIC_RELAXED);
		regs[i].export_dumped = true;
		regs[i].fresh_dumped = true;
		memcpy(regs[i].dumped, snap[i].now, sizeof regs[i].dumped);
	}
	pthread_mutex_unlock(&lock);
	if (!snap || !keep) {
		free(snap);
		free(keep);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct reg_snap *e = &snap[i];
		snprintf(keep[i], sizeof keep[i], "%" PRIu64, e->id);
		bool fresh = entry_begin(base, keep[i], dir, sizeof dir);
		bool all = fresh || !e->r.fresh_dumped;
		if (all) {
			put_file(dir, "peer", "%s", e->peer);
			put_file(dir, "protocol", "%s", e->proto);
			put_file(dir, "since", "%lld", (long long)e->r.since);
		}
		if (all || !e->r.export_dumped)
			put_file(dir, "export", "%s", e->r.export);
		for (int k = 0; k < 4; k++)
			if (all || e->now[k] != e->r.dumped[k])
				put_file(dir, counter_names[k], "%" PRIu64, e->now[k]);
		entry_end(base, keep[i], fresh);
	}
	prune(base, keep, n);
	free(keep);
	free(snap);
	snprintf(dir, sizeof dir, "%s/totals", run);
	mkdir_p(dir, 0755);
	put_file(dir, "connections", "%zu", total);
	put_file(dir, "connections_listed", "%zu", n);
	put_file(dir, "exports", "%zu", exports_count());
	put_file(dir, "batched_waits", "%" PRIu64, __atomic_load_n(&g_batched_waits, __ATOMIC_RELAXED));
}

struct img_dump {
	const char *base;
	char (*keep)[96];
	size_t n, cap;
};

static void dump_image(struct image *img, void *arg)
{
	struct img_dump *d = arg;
	char dir[1200];
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		char (*nk)[96] = realloc(d->keep, cap * sizeof *nk);
		if (!nk)
			return;
		d->keep = nk;
		d->cap = cap;
	}
	snprintf(d->keep[d->n++], 96, "%s", img->name);
	bool fresh = entry_begin(d->base, img->name, dir, sizeof dir);
	put_file(dir, "id", "%lld", (long long)img->id);
	put_file(dir, "path", "%s", img->path);
	put_file(dir, "size", "%" PRIu64, img->size);
	put_file(dir, "connections", "%u", __atomic_load_n(&img->stat_connections, __ATOMIC_RELAXED));
	put_file(dir, "requests", "%" PRIu64, __atomic_load_n(&img->stat_requests, __ATOMIC_RELAXED));
	put_file(dir, "bytes_read", "%" PRIu64, __atomic_load_n(&img->stat_bytes_read, __ATOMIC_RELAXED));
	put_file(dir, "disk_reads", "%" PRIu64, __atomic_load_n(&img->stat_disk_reads, __ATOMIC_RELAXED));
	put_file(dir, "disk_bytes", "%" PRIu64, __atomic_load_n(&img->stat_disk_bytes, __ATOMIC_RELAXED));
	put_file(dir, "errors", "%" PRIu64, __atomic_load_n(&img->stat_errors, __ATOMIC_RELAXED));
	put_file(dir, "version", "%d", img->version);
	put_file(dir, "bootset_blocks", "%" PRIu64, bootset_count(img));
	entry_end(d->base, img->name, fresh);
}

static void dump_cache(const char *run)
{
	char dir[1100];
	struct cache_stats cs;
	cache_get_stats(&cs);
	snprintf(dir, sizeof dir, "%s/cache", run);
	mkdir_p(dir, 0755);
	put_file(dir, "capacity_bytes", "%" PRIu64, cs.capacity_bytes);
	put_file(dir, "used_bytes", "%" PRIu64, cs.used_bytes);
	put_file(dir, "block_size", "%" PRIu64, cs.block_size);
	put_file(dir, "hits", "%" PRIu64, cs.hits);
	put_file(dir, "misses", "%" PRIu64, cs.misses);
	put_file(dir, "waits", "%" PRIu64, cs.waits);
	put_file(dir, "disk_reads", "%" PRIu64, cs.disk_reads);
	put_file(dir, "disk_bytes", "%" PRIu64, cs.disk_bytes);
	put_file(dir, "evictions", "%" PRIu64, cs.evictions);
	put_file(dir, "promotions", "%" PRIu64, cs.promotions);
	put_file(dir, "errors", "%" PRIu64, cs.errors);
	put_file(dir, "blocks", "%" PRIu64, cs.blocks);
	put_file(dir, "probation_blocks", "%" PRIu64, cs.a1_blocks);
	put_file(dir, "protected_blocks", "%" PRIu64, cs.am_blocks);
}

struct cl_dump {
	const char *base;
	char (*keep)[96];
	size_t n, cap;
};

static void dump_client(const struct client_info *ci, void *arg)
{
	struct cl_dump *d = arg;
	char dir[1200];
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		char (*nk)[96] = realloc(d->keep, cap * sizeof *nk);
		if (!nk)
			return;
		d->keep = nk;
		d->cap = cap;
	}
	snprintf(d->keep[d->n++], 96, "%s", ci->mac);
	bool fresh = entry_begin(d->base, ci->mac, dir, sizeof dir);
	put_file(dir, "mode", "%s", db_mode_name(ci->mode));
	put_file(dir, "connections", "%u", ci->conns);
	put_file(dir, "boots", "%" PRIu64, ci->boots);
	put_file(dir, "overlay_dir", "%s", ci->dir);
	put_file(dir, "overlay_ram_bytes", "%" PRIu64, ci->ram_bytes);
	put_file(dir, "overlay_file_bytes", "%" PRIu64, ci->file_bytes);
	put_file(dir, "overlay_block_bytes", "%u", ci->block_bytes);
	put_file(dir, "writes", "%" PRIu64, ci->writes);
	put_file(dir, "bytes_written", "%" PRIu64, ci->bytes_written);
	put_file(dir, "write_errors", "%" PRIu64, ci->errors);
	put_file(dir, "enospc", "%" PRIu64, ci->enospc);
	put_file(dir, "flushes", "%" PRIu64, ci->flushes);
	put_file(dir, "reads", "%" PRIu64, ci->reads);
	put_file(dir, "bytes_read", "%" PRIu64, ci->bytes_read);
	put_file(dir, "boot_pending", "%d", ci->boot_pending);
	put_file(dir, "boot_started", "%lld", (long long)ci->boot_time);
	put_file(dir, "last_close", "%lld", (long long)ci->close_time);
	entry_end(d->base, ci->mac, fresh);
}

static void dump_dir(int i, const char *path, bool failed, unsigned nclients, void *arg)
{
	char dir[1200], name[16];
	struct statvfs st;
	const char *base = arg;
	snprintf(name, sizeof name, "%d", i);
	bool fresh = entry_begin(base, name, dir, sizeof dir);
	bool ok = statvfs(path, &st) == 0;
	uint64_t fr = ok ? (uint64_t)st.f_bavail * st.f_frsize : 0, tot = ok ? (uint64_t)st.f_blocks * st.f_frsize : 0;
	put_file(dir, "path", "%s", path);
	put_file(dir, "state", "%s", failed ? "failed" : !ok ? "missing" : tot && fr * 100 / tot < 5 ? "nearly-full" : "ok");
	put_file(dir, "clients", "%u", nclients);
	put_file(dir, "free_bytes", "%" PRIu64, fr);
	put_file(dir, "total_bytes", "%" PRIu64, tot);
	entry_end(base, name, fresh);
}

static void dump_dirs(const char *run)
{
	char base[1100];
	snprintf(base, sizeof base, "%s/overlay_dirs", run);
	mkdir_p(base, 0755);
	clients_foreach_dir(dump_dir, base);
}

static void dump_clients(const char *run)
{
	char base[1100];
	snprintf(base, sizeof base, "%s/clients", run);
	mkdir_p(base, 0755);
	struct cl_dump d = { .base = base };
	clients_foreach(dump_client, &d);
	prune(base, d.keep, d.n);
	free(d.keep);
}

void stats_dump(const char *run)
{
	char base[1100];
	dump_conns(run);
	dump_cache(run);
	dump_clients(run);
	dump_dirs(run);
	snprintf(base, sizeof base, "%s/images", run);
	mkdir_p(base, 0755);
	struct img_dump d = { .base = base };
	exports_foreach_image(dump_image, &d);
	prune(base, d.keep, d.n);
	free(d.keep);
}

void stats_clear(const char *run)
{
	static const char *const sub[] = { "connections", "images", "clients", "overlay_dirs", "totals", "cache", "listen", "ready", "pid" };
	char p[1200];
	for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
		snprintf(p, sizeof p, "%s/%s", run, sub[i]);
		rm_tree(p);
	}
}
