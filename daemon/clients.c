/* clients.c — see clients.h. One mutex guards the registry; it is taken on
 * connect, disconnect and by the main thread's tick, never per request. */
#include "clients.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "conf.h"
#include "db.h"
#include "exports.h"
#include "image.h"
#include "log.h"
#include "overlay.h"
#include "stage.h"
#include "ipaddr.h"
#include "util.h"
#include "vdisk.h"

#define MAX_DIRS 16
#define OV_MIN_FREE (1ull << 20)

struct cdisk {
	struct cdisk *next;
	char mac[18];
	int64_t image_id;          /* version key of the image this boot runs on */
	int64_t epoch;             /* overlay epoch this overlay belongs to */
	int mode;
	struct vdisk *vd;          /* this boot's disk (a reference), NULL between boots */
	unsigned conns;
	uint64_t last_close_ns;
	uint64_t boots;
	bool boot_pending;
	int64_t boot_time;         /* unix time the current boot started (0: none yet) */
	int64_t close_time;        /* unix time its last connection closed */
	char dir[1024];
	struct ipaddr boot_addr;   /* where this boot came from (family 0: none yet) */
	struct ipaddr fetch_addr;  /* where the pending boot's iPXE script was fetched from */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct cdisk *clients;
static char dirs[MAX_DIRS][1024];
static int ndirs;
static uint64_t ram_bytes, gap_ns;
static uint32_t block_bytes = OV_BLOCK_DEFAULT; /* granularity of new overlays */
static bool allow_image_disk;
static bool bind_address;              /* nbd/bind_client_address */
static bool dir_failed[MAX_DIRS];      /* an overlay there hit an I/O error: no new overlays */
static struct stage_floor floor_;

void clients_configure(const struct bl_conf *c)
{
	pthread_mutex_lock(&lock);
	ram_bytes = (uint64_t)c->overlay_ram_mb << 20;
	block_bytes = overlay_bsize_valid((uint64_t)c->overlay_block_kb << 10) ? c->overlay_block_kb << 10
									       : OV_BLOCK_DEFAULT;
	allow_image_disk = c->overlay_allow_image_disk;
	bind_address = c->nbd_bind_client_address;
	floor_ = (struct stage_floor){ .min_bytes = STAGE_FLOOR_DEFAULT_BYTES };
	if (stage_floor_parse(c->overlay_min_free, &floor_) < 0) {
		log_err("overlay/min_free: '%s' is not a size (like 1G) or a percentage (like 5%%); using 1G",
			c->overlay_min_free);
		floor_ = (struct stage_floor){ .min_bytes = STAGE_FLOOR_DEFAULT_BYTES };
	}
	if (floor_.min_bytes < OV_MIN_FREE)
		floor_.min_bytes = OV_MIN_FREE; /* a full disk never takes a new overlay */
	gap_ns = (uint64_t)c->overlay_boot_gap_s * 1000000000ull;
	static char nd[MAX_DIRS][1024];
	memset(nd, 0, sizeof nd);
	int n = split_dirs(c->dir, c->overlay_dirs, nd, MAX_DIRS);
	/* A new list of directories forgets which ones had failed. */
	if (n != ndirs || memcmp(nd, dirs, sizeof nd) != 0) {
		memcpy(dirs, nd, sizeof nd);
		ndirs = n;
		memset(dir_failed, 0, sizeof dir_failed);
		for (int i = 0; i < ndirs; i++) {
			char parent[1024];
			struct stat st;
			snprintf(parent, sizeof parent, "%s", dirs[i]);
			char *slash = strrchr(parent, '/');
			if (slash && slash != parent)
				*slash = 0;
			/* A directory whose parent is gone is a disk that is not
			 * mounted: never create it on whatever disk is there instead. */
			if (stat(dirs[i], &st) < 0 && stat(parent, &st) < 0) {
				log_err("overlay directory %s is missing, and so is %s: is its disk mounted? mount it "
					"(then restart bootlinkd), or remove it from overlay/dirs; no overlay goes there "
					"meanwhile", dirs[i], parent);
				dir_failed[i] = true;
				continue;
			}
			int r = mkdir_p(dirs[i], 0700);
			if (r < 0) {
				log_err("overlay directory %s is not usable: %s (is its disk mounted? fix overlay/dirs)",
					dirs[i], strerror(-r));
				dir_failed[i] = true;
			}
		}
	}
	pthread_mutex_unlock(&lock);
}

/* Overlays each directory holds now (lock held). */
static void count_clients(unsigned *per_dir)
{
	for (int i = 0; i < ndirs; i++) {
		per_dir[i] = 0;
		for (struct cdisk *c = clients; c; c = c->next)
			per_dir[i] += c->vd && strcmp(c->dir, dirs[i]) == 0;
	}
}

/* Where a new overlay for a client of image_path goes (lock held): on a
 * disk apart from the image's, with free space above overlay/min_free,
 * the most free space first, then the fewest clients (common/stage.h).
 * NULL with the reasons in why when no directory may be used. */
static const char *choose_dir(const char *image_path, const char *mac, char *why, size_t len)
{
	const char *dv[MAX_DIRS];
	unsigned per_dir[MAX_DIRS];
	int n = 0;
	for (int i = 0; i < ndirs; i++) {
		if (dir_failed[i])
			continue; /* until the daemon restarts or the setting changes */
		mkdir_p(dirs[i], 0700);
		dv[n++] = dirs[i];
	}
	count_clients(per_dir);
	struct stage_choice ch;
	char reasons[2048] = "";
	int r = n ? stage_choose(dv, n, &image_path, 1, per_dir, &floor_, allow_image_disk, &ch, reasons,
				 sizeof reasons) : -ENOENT;
	if (!n)
		snprintf(reasons, sizeof reasons, "every overlay directory is missing or has failed (see the log)");
	str_rstrip(reasons);
	if (r < 0) {
		snprintf(why, len, "client %s: no overlay directory may be used: %.700s%s", mac, reasons,
			 allow_image_disk ? "" : " (to allow the image's disk anyway: set overlay/allow_image_disk to 1)");
		return NULL;
	}
	if (reasons[0])
		log_info("client %s: overlay placed in %s; passed over: %.900s", mac, ch.dir, reasons);
	return ch.dir;
}

static struct cdisk *find(const char *mac)
{
	for (struct cdisk *c = clients; c; c = c->next)
		if (strcmp(c->mac, mac) == 0)
			return c;
	return NULL;
}

/* A persistent overlay belongs to one image version and one overlay epoch,
 * and has one granularity: the .info file says which ("version=KEY
 * epoch=N block=BYTES"; files from before block= was recorded are 4 KiB).
 * Another version (relink, commit, rollback) or a newer epoch (overlay
 * reset) discards it, and so does an unreadable granularity. Returns the
 * granularity the overlay has: its recorded one if it is kept, else
 * block_bytes (the setting now) for a new one. */
static uint32_t check_owner(const char *dir, const char *stem, const char *mac, int64_t version_key, int64_t epoch)
{
	char p[1200], mp[1200], buf[128], want[128];
	long long key = 0, ep = 0;
	unsigned long long bs = OV_BLOCK_DEFAULT;
	snprintf(p, sizeof p, "%s/%s.info", dir, stem);
	snprintf(mp, sizeof mp, "%s/%s.map", dir, stem);
	bool have_map = access(mp, F_OK) == 0;
	uint32_t bsize = have_map ? OV_BLOCK_DEFAULT : block_bytes; /* a map without .info: from before .info */
	if (read_small_file(p, buf, sizeof buf) >= 0) {
		str_rstrip(buf);
		int n = sscanf(buf, "version=%lld epoch=%lld block=%llu", &key, &ep, &bs);
		if (n < 2 || key != version_key || ep != epoch || !overlay_bsize_valid(bs)) {
			log_warn("client %s: persistent overlay in %s discarded: it was made for %s, the client now needs "
				 "version=%lld epoch=%lld", mac, dir, buf, (long long)version_key, (long long)epoch);
			overlay_remove_files(dir, stem);
			bsize = block_bytes;
		} else if (have_map) {
			bsize = (uint32_t)bs;
		} else {
			bsize = block_bytes; /* .info alone: nothing written yet */
		}
	}
	snprintf(want, sizeof want, "version=%lld epoch=%lld block=%u\n", (long long)version_key, (long long)epoch,
		 bsize);
	write_small_file(p, want);
	return bsize;
}

/* The overlay directory already holding a persistent overlay of stem (lock held). */
static const char *find_existing(const char *stem)
{
	for (int i = 0; i < ndirs; i++) {
		char p[1200];
		snprintf(p, sizeof p, "%s/%s.map", dirs[i], stem);
		if (access(p, F_OK) == 0)
			return dirs[i];
	}
	return NULL;
}

/* Open this boot's disk for c over e's image (lock held). */
static int open_disk(struct cdisk *c, const struct export *e, char *err, size_t errlen)
{
	char stem[13];
	mac_hex(c->mac, stem);
	if (c->mode != DB_MODE_EPHEMERAL) {
		const char *d = find_existing(stem);
		if (d)
			snprintf(c->dir, sizeof c->dir, "%.1000s", d);
	}
	if (!c->dir[0] || c->mode == DB_MODE_EPHEMERAL) {
		const char *d = choose_dir(e->img->path, c->mac, err, errlen);
		if (!d)
			return -ENOSPC;
		snprintf(c->dir, sizeof c->dir, "%.1000s", d);
	}
	uint32_t bsize = block_bytes;
	if (c->mode != DB_MODE_EPHEMERAL)
		bsize = check_owner(c->dir, stem, c->mac, e->img->id, e->epoch);
	struct vdisk *base;
	struct overlay *ov;
	int r = vdisk_open_image(e->img, &base);
	if (r < 0) {
		snprintf(err, errlen, "client %s: out of memory", c->mac);
		return r;
	}
	r = overlay_open(c->mac, c->mode, e->img->size, bsize, c->dir, stem, ram_bytes, &ov, err, errlen);
	if (r == 0) {
		r = vdisk_open_overlay(base, ov, &c->vd);
		if (r < 0)
			overlay_close(ov);
	}
	vdisk_put(base);
	if (r == 0)
		log_info("client %s: boot %llu: %s overlay %s on image '%s' (%s, %u KiB blocks)", c->mac,
			 (unsigned long long)c->boots, db_mode_name(c->mode),
			 c->mode == DB_MODE_EPHEMERAL ? "started empty" : "opened", e->img->name, c->dir, bsize >> 10);
	return r;
}

/* Would a connection now start a new boot of c? (lock held; the same test
 * as clients_acquire's) */
static bool starts_boot(const struct cdisk *c, uint64_t now)
{
	return !c->vd || c->boot_pending || (c->conns == 0 && now - c->last_close_ns > gap_ns);
}

/* The address a connection to c must come from now, or NULL if any may
 * (binding off, or a boot without a fetched script starts). Lock held. */
static const struct ipaddr *required_addr(const struct cdisk *c, uint64_t now)
{
	if (!bind_address)
		return NULL;
	if (c->boot_pending)
		return c->fetch_addr.family ? &c->fetch_addr : NULL;
	if (starts_boot(c, now))
		return NULL;
	return c->boot_addr.family ? &c->boot_addr : NULL;
}

/* 0 if peer may reach c now, else -EACCES with err set. Lock held. */
static int address_ok(const struct cdisk *c, const struct ipaddr *peer, uint64_t now, char *err, size_t errlen)
{
	const struct ipaddr *want = c ? required_addr(c, now) : NULL;
	char w[IPADDR_STR_MAX], p[IPADDR_STR_MAX];
	if (!peer || !want || ipaddr_equal(want, peer))
		return 0;
	ipaddr_format(want, w, sizeof w);
	ipaddr_format(peer, p, sizeof p);
	snprintf(err, errlen, "client %s's disk answers only %s, the address it booted from "
		 "(nbd/bind_client_address); this connection comes from %s", c->mac, w, p);
	return -EACCES;
}

/* A boot starts (lock held, before boot_pending is cleared): it belongs to
 * the address that fetched its script, else to the connecting peer. */
static void bind_boot(struct cdisk *c, const struct ipaddr *peer)
{
	if (c->boot_pending && c->fetch_addr.family)
		c->boot_addr = c->fetch_addr;
	else if (peer)
		c->boot_addr = *peer;
	else
		memset(&c->boot_addr, 0, sizeof c->boot_addr);
	memset(&c->fetch_addr, 0, sizeof c->fetch_addr);
}

int clients_check_address(const struct export *e, const struct ipaddr *peer, char *err, size_t errlen)
{
	pthread_mutex_lock(&lock);
	int r = address_ok(find(e->mac), peer, now_ns(), err, errlen);
	pthread_mutex_unlock(&lock);
	return r;
}

int clients_acquire(const struct export *e, const struct ipaddr *peer, struct vdisk **out, char *err,
		    size_t errlen)
{
	pthread_mutex_lock(&lock);
	struct cdisk *c = find(e->mac);
	if (!c) {
		c = calloc(1, sizeof *c);
		if (!c) {
			pthread_mutex_unlock(&lock);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		snprintf(c->mac, sizeof c->mac, "%s", e->mac);
		c->next = clients;
		clients = c;
	}
	uint64_t now = now_ns();
	/* Checked again under the same lock as the boot decision: two peers
	 * racing for an unbound client cannot both get it. */
	if (address_ok(c, peer, now, err, errlen) < 0) {
		pthread_mutex_unlock(&lock);
		return -EACCES;
	}
	bool new_boot = !c->vd || c->boot_pending || (c->conns == 0 && now - c->last_close_ns > gap_ns);
	/* What changed in the database applies at a boot, never under a running client. */
	bool changed = c->image_id != e->img->id || c->mode != e->mode || c->epoch != e->epoch;
	if (new_boot) {
		if (c->vd && (changed || c->mode == DB_MODE_EPHEMERAL)) {
			vdisk_put(c->vd); /* connections still on it keep it until they close */
			c->vd = NULL;
		}
		c->image_id = e->img->id;
		c->mode = e->mode;
		c->epoch = e->epoch;
		bind_boot(c, peer);
		c->boot_pending = false;
		c->boots++;
		c->boot_time = time(NULL);
	}
	int r = 0;
	if (!c->vd)
		r = open_disk(c, e, err, errlen);
	if (r == 0) {
		c->conns++;
		vdisk_get(c->vd);
		*out = c->vd;
	}
	pthread_mutex_unlock(&lock);
	return r;
}

void clients_release(const char *mac)
{
	pthread_mutex_lock(&lock);
	struct cdisk *c = find(mac);
	if (c && c->conns) {
		c->conns--;
		c->last_close_ns = now_ns();
		c->close_time = time(NULL);
	}
	pthread_mutex_unlock(&lock);
}

void clients_new_boot(const char *mac, const struct ipaddr *from)
{
	pthread_mutex_lock(&lock);
	struct cdisk *c = find(mac);
	if (!c && (c = calloc(1, sizeof *c))) {
		/* Never connected yet: remember where its boot comes from. */
		snprintf(c->mac, sizeof c->mac, "%s", mac);
		c->next = clients;
		clients = c;
	}
	if (c) {
		c->boot_pending = true;
		if (from)
			c->fetch_addr = *from;
		else
			memset(&c->fetch_addr, 0, sizeof c->fetch_addr);
	}
	pthread_mutex_unlock(&lock);
}

int clients_reset(const char *mac)
{
	char stem[13];
	mac_hex(mac, stem);
	pthread_mutex_lock(&lock);
	struct cdisk *c = find(mac);
	int r = -ENOENT;
	if (c) {
		if (c->vd)
			vdisk_put(c->vd);
		c->vd = NULL;
		r = c->dir[0] ? overlay_remove_files(c->dir, stem) : 0;
		c->dir[0] = 0;
		log_info("client %s: overlay reset", mac);
	}
	pthread_mutex_unlock(&lock);
	return r;
}

/* Directory index of dir, or -1 (lock held). */
static int dir_index(const char *dir)
{
	for (int i = 0; i < ndirs; i++)
		if (strcmp(dirs[i], dir) == 0)
			return i;
	return -1;
}

/* An overlay with I/O errors (not a full disk) marks its directory failed:
 * no new overlays go there, and the clients on it are named (lock held). */
static void check_failed_dirs(void)
{
	for (struct cdisk *c = clients; c; c = c->next) {
		struct overlay *ov = c->vd ? vdisk_overlay(c->vd) : NULL;
		int i = c->dir[0] ? dir_index(c->dir) : -1;
		if (!ov || i < 0 || dir_failed[i])
			continue;
		pthread_mutex_lock(&ov->lock);
		int e = ov->last_errno;
		pthread_mutex_unlock(&ov->lock);
		if (!e)
			continue;
		dir_failed[i] = true;
		char names[512] = "";
		for (struct cdisk *o = clients; o; o = o->next)
			if (o->vd && strcmp(o->dir, c->dir) == 0 && strlen(names) + 20 < sizeof names)
				snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? ", " : "",
					 o->mac);
		log_err("overlay directory %s has failed (%s): it gets no new overlays; clients on it: %s "
			"(check the disk, then restart bootlinkd)", c->dir, strerror(e), names);
	}
}

void clients_foreach_dir(void (*cb)(int i, const char *dir, bool failed, unsigned clients, void *arg), void *arg)
{
	unsigned per_dir[MAX_DIRS];
	char copy[MAX_DIRS][1024];
	bool failed[MAX_DIRS];
	pthread_mutex_lock(&lock);
	int n = ndirs;
	count_clients(per_dir);
	memcpy(copy, dirs, sizeof copy);
	memcpy(failed, dir_failed, sizeof failed);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < n; i++)
		cb(i, copy[i], failed[i], per_dir[i], arg); /* outside the lock: cb may stat a slow disk */
}

void clients_tick(uint64_t now)
{
	pthread_mutex_lock(&lock);
	check_failed_dirs();
	now = MAX(now, now_ns()); /* a release may have stamped last_close after the caller read the clock */
	for (struct cdisk *c = clients; c; c = c->next)
		if (c->vd && c->mode == DB_MODE_EPHEMERAL && c->conns == 0 && now - c->last_close_ns > gap_ns) {
			log_info("client %s: gone for %llu s; its ephemeral overlay is discarded", c->mac,
				 (unsigned long long)((now - c->last_close_ns) / 1000000000ull));
			vdisk_put(c->vd);
			c->vd = NULL;
		}
	pthread_mutex_unlock(&lock);
}

void clients_refresh(void)
{
	pthread_mutex_lock(&lock);
	for (struct cdisk *c = clients; c; c = c->next) {
		if (!c->vd || c->conns)
			continue;
		char name[32];
		struct export_ref ref;
		snprintf(name, sizeof name, "client/%s", c->mac);
		int r = exports_lookup(name, strlen(name), &ref);
		bool stale = r < 0 || !ref.e.img || ref.e.img->id != c->image_id || ref.e.epoch != c->epoch ||
			     ref.e.mode != c->mode;
		if (r == 0)
			exports_ref_release(&ref);
		if (stale) {
			/* Nobody is on it and the next boot will not use it: close it
			 * now, so deleted files give their space back. */
			vdisk_put(c->vd);
			c->vd = NULL;
		}
	}
	pthread_mutex_unlock(&lock);
}

void clients_foreach(void (*cb)(const struct client_info *ci, void *arg), void *arg)
{
	pthread_mutex_lock(&lock);
	for (struct cdisk *c = clients; c; c = c->next) {
		struct client_info ci = { .mode = c->mode, .conns = c->conns, .boots = c->boots,
					  .boot_pending = c->boot_pending, .boot_time = c->boot_time,
					  .close_time = c->close_time };
		snprintf(ci.mac, sizeof ci.mac, "%s", c->mac);
		snprintf(ci.dir, sizeof ci.dir, "%s", c->dir);
		struct overlay *ov = c->vd ? vdisk_overlay(c->vd) : NULL;
		if (ov) {
			pthread_mutex_lock(&ov->lock);
			ci.ram_bytes = ov_ram_bytes(ov);
			ci.block_bytes = ov->bsize;
			ci.file_bytes = ov_file_bytes(ov);
			ci.writes = ov->stat_writes;
			ci.bytes_written = ov->stat_bytes_written;
			ci.errors = ov->stat_errors;
			ci.enospc = ov->stat_enospc;
			ci.flushes = ov->stat_flushes;
			ci.reads = ov->stat_reads;
			ci.bytes_read = ov->stat_bytes_read;
			pthread_mutex_unlock(&ov->lock);
		}
		cb(&ci, arg);
	}
	pthread_mutex_unlock(&lock);
}

void clients_shutdown(void)
{
	pthread_mutex_lock(&lock);
	while (clients) {
		struct cdisk *c = clients;
		clients = c->next;
		if (c->vd)
			vdisk_put(c->vd);
		free(c);
	}
	pthread_mutex_unlock(&lock);
}
