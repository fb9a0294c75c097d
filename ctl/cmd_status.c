/* cmd_status.c — `bootlinkctl status` and `bootlinkctl events`.
 *
 * Design: status is one screen for the person running the room: the
 * database says what exists (images, clients, links, modes), bootlinkd's
 * runtime tree (<paths/run>, refreshed every runtime/interval_ms) says what
 * is happening: each client's state (off: not seen since bootlinkd started;
 * booting: script fetched, or connected within its boot-set learning
 * window; up: connected; gone: its last connection closed), its address
 * (from the connection whose export is client/<mac>), bytes and overlay
 * size; each image's served version, cache hit rate (bytes not read from
 * disk) and boot-set size; each overlay disk's free space and health.
 * Warnings come first and say what to do. --watch redraws every --every
 * seconds (default 2, 1..60) until q or Ctrl-C. JSON keeps the older
 * members (daemon, images with their clients, unlinked, counts) and adds
 * clients, overlay_dirs and warnings.
 */
#include "args.h"
#include "ctl.h"
#include "out.h"
#include "store.h"
#include "util.h"

#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* ---- the runtime tree ---- */

#define WARN_MAX 32
#define WARN_LEN 320
#define FULL_PCT 90            /* an overlay disk fuller than this is a warning */
#define WATCH_MIN_S 1
#define WATCH_MAX_S 60

/* One number from <run>/<rel>; 0 if missing. */
static uint64_t rt_u64(const struct ctl *c, const char *fmt, const char *a, const char *b)
{
	char p[PATH_MAX], rel[512], buf[32];
	snprintf(rel, sizeof rel, fmt, a, b);
	snprintf(p, sizeof p, "%s/%s", c->conf.run_dir, rel);
	return read_small_file(p, buf, sizeof buf) > 0 ? strtoull(buf, NULL, 10) : 0;
}

/* One line of text from <run>/<rel> into buf ("" if missing). */
static void rt_str(const struct ctl *c, const char *rel, char *buf, size_t len)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", c->conf.run_dir, rel);
	if (read_small_file(p, buf, len) < 0)
		buf[0] = 0;
	str_rstrip(buf);
}

/* Live client connections: the client's MAC and the peer's address. */
struct conn_ip {
	char mac[18];
	char ip[64];
};

/* Read <run>/connections/<id>/{export,peer} once: every connection whose
 * export is client/<mac>, with its address without the port. *out is
 * malloc'ed (NULL when there are none); returns how many. */
static size_t load_conn_ips(const struct ctl *c, struct conn_ip **out)
{
	char dir[PATH_MAX], rel[300], v[128];
	size_t n = 0, cap = 0;
	*out = NULL;
	snprintf(dir, sizeof dir, "%s/connections", c->conf.run_dir);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strstr(de->d_name, ".new"))
			continue;
		snprintf(rel, sizeof rel, "connections/%.200s/export", de->d_name);
		rt_str(c, rel, v, sizeof v);
		if (strncmp(v, "client/", 7) != 0 || strlen(v + 7) >= sizeof (*out)->mac)
			continue;
		if (n == cap) {
			struct conn_ip *m = realloc(*out, (cap = cap ? cap * 2 : 64) * sizeof *m);
			if (!m)
				break;
			*out = m;
		}
		struct conn_ip *e = &(*out)[n++];
		snprintf(e->mac, sizeof e->mac, "%s", v + 7);
		snprintf(rel, sizeof rel, "connections/%.200s/peer", de->d_name);
		rt_str(c, rel, v, sizeof v);
		char *colon = strrchr(v, ':');
		if (colon)
			*colon = 0;
		snprintf(e->ip, sizeof e->ip, "%.*s", (int)sizeof e->ip - 1, v[0] == '[' ? v + 1 : v);
		char *br = strchr(e->ip, ']');
		if (br)
			*br = 0;
	}
	closedir(d);
	return n;
}

/* "14:02:11" for today, "2026-11-30" before, "-" for never. */
static const char *short_time(int64_t t, char buf[32])
{
	if (t <= 0)
		return "-";
	time_t now = time(NULL), tt = (time_t)t;
	struct tm a, b;
	localtime_r(&now, &a);
	localtime_r(&tt, &b);
	strftime(buf, 32, a.tm_yday == b.tm_yday && a.tm_year == b.tm_year ? "%H:%M:%S" : "%Y-%m-%d", &b);
	return buf;
}

/* ---- status ---- */

struct status {
	struct ctl *c;
	bool running;
	struct out_table *clients_t, *images_t, *dirs_t;
	int images, clients, unlinked;
	char names[512];         /* the unlinked clients' names */
	size_t used;
	int64_t image_id;        /* image whose clients are being counted */
	int img_clients, img_up;
	char warn[WARN_MAX][WARN_LEN];
	int nwarn;
	uint64_t block_size;
	struct conn_ip *ips;     /* live client connections (load_conn_ips) */
	size_t nips;
};

/* Add a warning line (dropped past WARN_MAX). */
__attribute__((format(printf, 2, 3)))
static void warn(struct status *s, const char *fmt, ...)
{
	if (s->nwarn == WARN_MAX)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->warn[s->nwarn++], WARN_LEN, fmt, ap);
	va_end(ap);
}

/* Append name to s->names ("a, b, ..."). */
static void add_name(struct status *s, const char *name)
{
	size_t room = sizeof s->names - s->used;
	int w = snprintf(s->names + s->used, room, "%s%s", s->used ? ", " : "", name);
	if (w > 0 && (size_t)w < room)
		s->used += (size_t)w;
	else if (room > 4)
		snprintf(s->names + s->used, room, "...");
}

/* What a client is doing: booting / up / gone / off, and since when. */
static const char *client_state(const struct status *s, const struct db_client *cl, int64_t *since)
{
	const struct ctl *c = s->c;
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/clients/%s", c->conf.run_dir, cl->mac);
	*since = cl->last_seen;
	if (!s->running || access(dir, F_OK) < 0)
		return "off";
	uint64_t conns = rt_u64(c, "clients/%s/%s", cl->mac, "connections");
	int64_t boot = (int64_t)rt_u64(c, "clients/%s/%s", cl->mac, "boot_started");
	if (conns) {
		*since = boot;
		/* The boot-set learning window is when a PC reads its boot files. */
		return time(NULL) - boot < (int64_t)c->conf.cache_learn_s ? "booting" : "up";
	}
	if (rt_u64(c, "clients/%s/%s", cl->mac, "boot_pending")) {
		*since = cl->last_seen;
		return "booting";
	}
	int64_t closed = (int64_t)rt_u64(c, "clients/%s/%s", cl->mac, "last_close");
	*since = closed ? closed : cl->last_seen;
	return "gone";
}

/* db_client_list callback: one client row (human and JSON). */
static int client_row_cb(const struct db_client *cl, void *arg)
{
	struct status *s = arg;
	const struct ctl *c = s->c;
	char ip[64], sincebuf[32], since_s[24], rd[32], wr[32], ov[32], rdn[24], wrn[24], ovn[24], ver[16];
	int64_t since;
	const char *state = client_state(s, cl, &since);
	bool live = strcmp(state, "off") != 0;
	uint64_t r = live ? rt_u64(c, "clients/%s/%s", cl->mac, "bytes_read") : 0;
	uint64_t w = live ? rt_u64(c, "clients/%s/%s", cl->mac, "bytes_written") : 0;
	uint64_t o = live ? rt_u64(c, "clients/%s/%s", cl->mac, "overlay_ram_bytes") +
			    rt_u64(c, "clients/%s/%s", cl->mac, "overlay_file_bytes") : 0;
	uint64_t enospc = live ? rt_u64(c, "clients/%s/%s", cl->mac, "enospc") : 0;
	uint64_t werr = live ? rt_u64(c, "clients/%s/%s", cl->mac, "write_errors") : 0;
	ip[0] = 0;
	for (size_t i = 0; i < s->nips && !ip[0]; i++)
		if (strcmp(s->ips[i].mac, cl->mac) == 0)
			snprintf(ip, sizeof ip, "%s", s->ips[i].ip);
	ver[0] = 0;
	if (cl->image_name[0]) {
		char rel[200];
		snprintf(rel, sizeof rel, "images/%s/version", cl->image_name);
		rt_str(c, rel, ver, sizeof ver);
	}
	if (!cl->image_name[0])
		warn(s, "client %s (%s) has no image and cannot boot: link it with: bootlinkctl client link %s IMAGE",
		     cl->name, cl->mac, cl->mac);
	if (enospc)
		warn(s, "client %s (%s): %llu writes refused, its overlay disk is full: free space there, or "
		     "discard the overlay with: bootlinkctl overlay reset %s", cl->name, cl->mac,
		     (unsigned long long)enospc, cl->mac);
	else if (werr)
		warn(s, "client %s (%s): %llu overlay write errors: check the overlay disk (dmesg)", cl->name,
		     cl->mac, (unsigned long long)werr);
	snprintf(since_s, sizeof since_s, "%lld", (long long)since);
	snprintf(rdn, sizeof rdn, "%llu", (unsigned long long)r);
	snprintf(wrn, sizeof wrn, "%llu", (unsigned long long)w);
	snprintf(ovn, sizeof ovn, "%llu", (unsigned long long)o);
	char image[DB_NAME_MAX + 20];
	snprintf(image, sizeof image, "%s%s%s", cl->image_name[0] ? cl->image_name : "-", ver[0] ? " v" : "", ver);
	const char *cells[] = { cl->name, cl->mac, ip[0] ? ip : "-", image, cl->image_name, ver[0] ? ver : "0",
				db_mode_name(cl->mode), state, short_time(since, sincebuf), since_s,
				live ? out_size(r, rd) : "-", rdn, live ? out_size(w, wr) : "-", wrn,
				live ? out_size(o, ov) : "-", ovn, ip };
	return out_table_row(s->clients_t, cells);
}

static const struct out_col client_cols[] = {
	{ "name", "NAME", 0 },
	{ "mac", "MAC", 0 },
	{ NULL, "IP", COL_HUMAN },
	{ NULL, "IMAGE", COL_HUMAN },
	{ "image", NULL, COL_JSON },
	{ "version", NULL, COL_NUM | COL_JSON },
	{ "mode", "MODE", 0 },
	{ "state", "STATE", 0 },
	{ NULL, "SINCE", COL_HUMAN },
	{ "since", NULL, COL_NUM | COL_JSON },
	{ NULL, "READ", COL_HUMAN },
	{ "bytes_read", NULL, COL_NUM | COL_JSON },
	{ NULL, "WRITTEN", COL_HUMAN },
	{ "bytes_written", NULL, COL_NUM | COL_JSON },
	{ NULL, "OVERLAY", COL_HUMAN },
	{ "overlay_bytes", NULL, COL_NUM | COL_JSON },
	{ "ip", NULL, COL_JSON },
};

static const struct out_col image_cols[] = {
	{ NULL, "IMAGE", 0 },
	{ NULL, "VERSION", COL_NUM },
	{ NULL, "SIZE", COL_NUM },
	{ NULL, "CLIENTS", COL_NUM },
	{ NULL, "UP", COL_NUM },
	{ NULL, "CACHE HITS", COL_NUM },
	{ NULL, "BOOT SET", COL_NUM },
	{ NULL, "FILE", 0 },
};

static const struct out_col dir_cols[] = {
	{ "path", "OVERLAY DISK", 0 },
	{ NULL, "FREE", COL_HUMAN | COL_NUM },
	{ "free_bytes", NULL, COL_NUM | COL_JSON },
	{ "total_bytes", NULL, COL_NUM | COL_JSON },
	{ "used_pct", "USED%", COL_NUM },
	{ "clients", "CLIENTS", COL_NUM },
	{ "health", "HEALTH", 0 },
};

/* db_client_list_image callback: one client of the current image (JSON),
 * counted; the unlinked ones named. */
static int status_client_cb(const struct db_client *cl, void *arg)
{
	struct status *s = arg;
	int64_t since;
	s->clients++;
	s->img_clients++;
	const char *st = client_state(s, cl, &since);
	s->img_up += strcmp(st, "up") == 0 || strcmp(st, "booting") == 0;
	if (!s->image_id)
		add_name(s, cl->name);
	out_obj(NULL);
	out_str("name", cl->name);
	out_str("mac", cl->mac);
	out_str("mode", db_mode_name(cl->mode));
	out_str("state", st);
	out_int("last_seen", cl->last_seen);
	out_end();
	return 0;
}

/* db_image_list callback: an image, its clients, a table row. */
static int status_image_cb(const struct db_image *img, void *arg)
{
	struct status *s = arg;
	const struct ctl *c = s->c;
	const char *st = store_image_status(img);
	char ver[16], size[32], ncl[16], nup[16], hit[16], bset[32];
	s->images++;
	s->image_id = img->id;
	s->img_clients = s->img_up = 0;
	out_obj(NULL);
	out_int("id", img->id);
	out_str("name", img->name);
	out_int("size", (int64_t)img->size);
	out_str("status", st);
	out_str("path", img->path);
	out_int("current_version", img->current_version);
	out_arr("clients");
	int ret = db_client_list_image(s->c->db, img->id, status_client_cb, s);
	out_end();
	uint64_t rd = rt_u64(c, "images/%s/%s", img->name, "bytes_read");
	uint64_t disk = rt_u64(c, "images/%s/%s", img->name, "disk_bytes");
	uint64_t bs = rt_u64(c, "images/%s/%s", img->name, "bootset_blocks") * s->block_size;
	int hitpct = rd ? (int)(100 - MIN(100, disk * 100 / rd)) : -1;
	out_int("clients_up", s->img_up);
	out_int("bytes_read", (int64_t)rd);
	out_int("disk_bytes", (int64_t)disk);
	out_int("cache_hit_pct", hitpct);
	out_int("bootset_bytes", (int64_t)bs);
	out_end();
	if (ret < 0)
		return ret;
	if (strcmp(st, "ok") != 0)
		warn(s, "image '%s': its file %s is %s: %d client%s cannot boot; %s", img->name, img->path,
		     strcmp(st, "MISSING") == 0 ? "missing" : "changed (size differs)", s->img_clients,
		     s->img_clients == 1 ? "" : "s", strcmp(st, "MISSING") == 0 ?
		     "find it with: bootlinkctl image repair NAME [--search DIR]" :
		     "check it with: bootlinkctl image verify NAME");
	snprintf(ver, sizeof ver, "%d", img->current_version);
	snprintf(ncl, sizeof ncl, "%d", s->img_clients);
	snprintf(nup, sizeof nup, "%d", s->img_up);
	snprintf(hit, sizeof hit, hitpct < 0 ? "-" : "%d%%", hitpct);
	const char *cells[] = { img->name, ver, out_size(img->size, size), ncl, nup, hit,
				s->running ? out_size(bs, bset) : "-", st };
	return out_table_row(s->images_t, cells);
}

/* The overlay disks, from <run>/overlay_dirs/N/. */
static void status_dirs(struct status *s)
{
	char rel[64], path[CONF_PATH_MAX], health[32], fr[32], frn[24], tot[24], pct[8], ncl[16];
	for (int i = 0; s->running && i < 64; i++) {
		snprintf(rel, sizeof rel, "overlay_dirs/%d/path", i);
		rt_str(s->c, rel, path, sizeof path);
		if (!path[0])
			break;
		char num[8];
		snprintf(num, sizeof num, "%d", i);
		uint64_t f = rt_u64(s->c, "overlay_dirs/%s/%s", num, "free_bytes");
		uint64_t t = rt_u64(s->c, "overlay_dirs/%s/%s", num, "total_bytes");
		uint64_t n = rt_u64(s->c, "overlay_dirs/%s/%s", num, "clients");
		snprintf(rel, sizeof rel, "overlay_dirs/%d/state", i);
		rt_str(s->c, rel, health, sizeof health);
		int used = t ? (int)((t - MIN(f, t)) * 100 / t) : 0;
		if (strcmp(health, "failed") == 0 || strcmp(health, "missing") == 0)
			warn(s, "overlay disk %s %s: %llu client%s on it; check the disk (dmesg, mount) and restart "
			     "bootlinkd", path, strcmp(health, "failed") == 0 ? "had I/O errors" : "is missing",
			     (unsigned long long)n, n == 1 ? "" : "s");
		else if (used >= FULL_PCT)
			warn(s, "overlay disk %s %d%% full: %llu client%s; free space, reset overlays (bootlinkctl "
			     "overlay reset MAC) or add a disk to overlay/dirs", path, used, (unsigned long long)n,
			     n == 1 ? "" : "s");
		snprintf(frn, sizeof frn, "%llu", (unsigned long long)f);
		snprintf(tot, sizeof tot, "%llu", (unsigned long long)t);
		snprintf(pct, sizeof pct, "%d", used);
		snprintf(ncl, sizeof ncl, "%llu", (unsigned long long)n);
		const char *cells[] = { path, out_size(f, fr), frn, tot, pct, ncl, health[0] ? health : "?" };
		out_table_row(s->dirs_t, cells);
	}
}

/* One full status: the header, warnings, clients, images, overlay disks. */
static int status_once(struct ctl *c)
{
	char ready[PATH_MAX], pid[32] = "";
	snprintf(ready, sizeof ready, "%s/ready", c->conf.run_dir);
	struct status s = { .c = c, .running = access(ready, F_OK) == 0 };
	if (s.running)
		rt_str(c, "ready", pid, sizeof pid);
	s.block_size = rt_u64(c, "cache/%s%s", "block_size", "");
	s.nips = s.running ? load_conn_ips(c, &s.ips) : 0;
	s.clients_t = out_table_new(client_cols, ARRAY_SIZE(client_cols));
	s.images_t = out_table_new(image_cols, ARRAY_SIZE(image_cols));
	s.dirs_t = out_table_new(dir_cols, ARRAY_SIZE(dir_cols));
	int ret = 0;
	if (!s.clients_t || !s.images_t || !s.dirs_t) {
		ret = out_fail("out of memory");
		goto out;
	}
	if (!s.running)
		warn(&s, "bootlinkd is not running: no PC can boot; start it with: systemctl start bootlinkd");
	out_obj("daemon");
	out_bool("running", s.running);
	out_int("pid", atoll(pid));
	out_str("run_dir", c->conf.run_dir);
	out_end();
	out_arr("images");
	ret = db_image_list(c->db, status_image_cb, &s);
	out_end();
	int linked = s.clients;
	s.image_id = 0;
	out_arr("unlinked");
	if (ret >= 0)
		ret = db_client_list_image(c->db, 0, status_client_cb, &s);
	out_end();
	s.unlinked = s.clients - linked;
	if (ret >= 0)
		ret = db_client_list(c->db, client_row_cb, &s);
	if (ret < 0) {
		ret = store_fail(ret, "reading the database");
		goto out;
	}
	status_dirs(&s);
	out_obj("counts");
	out_int("images", s.images);
	out_int("clients", s.clients);
	out_int("unlinked", s.unlinked);
	out_end();
	out_arr("warnings");
	for (int i = 0; i < s.nwarn; i++)
		out_str(NULL, s.warn[i]);
	out_end();
	out_text("bootlinkd: %s%s%s%s\n%d image%s, %d client%s (%d without an image)\n",
		 s.running ? "running" : "not running", pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "",
		 s.images, s.images == 1 ? "" : "s", s.clients, s.clients == 1 ? "" : "s", s.unlinked);
	if (s.nwarn) {
		out_text("\nWARNINGS\n");
		for (int i = 0; i < s.nwarn; i++)
			out_text("  ! %s\n", s.warn[i]);
	}
	if (s.clients) {
		out_text("\n");
		out_table_print(s.clients_t, "clients", NULL);
		s.clients_t = NULL;
	}
	if (!out_json() && s.images) {
		out_text("\n");
		out_table_print(s.images_t, NULL, NULL);
		s.images_t = NULL;
	}
	if (out_table_rows(s.dirs_t) || out_json()) {
		out_text("\n");
		out_table_print(s.dirs_t, "overlay_dirs", NULL);
		s.dirs_t = NULL;
	}
	if (s.unlinked)
		out_text("\nwithout an image: %s\n", s.names);
out:
	if (s.clients_t)
		out_table_free(s.clients_t);
	if (s.images_t)
		out_table_free(s.images_t);
	if (s.dirs_t)
		out_table_free(s.dirs_t);
	free(s.ips);
	return ret < 0 ? CTL_ERR : ret;
}

/* ---- --watch ---- */

static volatile sig_atomic_t watch_stop;

/* SIGINT/SIGTERM: leave the watch loop. */
static void on_stop(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/* Wait up to secs for 'q' on stdin or a signal; true to stop. */
static bool watch_wait(unsigned secs, bool *stdin_open)
{
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
	uint64_t end = now_ns() + (uint64_t)secs * 1000000000ull;
	while (!watch_stop) {
		uint64_t now = now_ns();
		if (now >= end)
			return false;
		int ms = (int)MIN((end - now) / 1000000 + 1, 200);
		if (!*stdin_open) {
			poll(NULL, 0, ms);
			continue;
		}
		if (poll(&p, 1, ms) > 0) {
			char ch;
			ssize_t n = read(STDIN_FILENO, &ch, 1);
			if (n <= 0)
				*stdin_open = false;   /* end of input: keep refreshing until a signal */
			else if (ch == 'q' || ch == 'Q' || ch == 3 /* ^C in raw mode */)
				return true;
		}
	}
	return true;
}

/* Redraw every secs seconds until q or Ctrl-C. */
static int status_watch(struct ctl *c, unsigned secs)
{
	struct termios saved, raw;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0, stdin_open = true;
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (tty) {
		raw = saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	int ret = CTL_OK;
	bool clear = isatty(STDOUT_FILENO);
	do {
		char when[32];
		if (clear)
			fputs("\033[H\033[2J", stdout);
		ret = status_once(c);
		printf("\n%s, every %u s; q or Ctrl-C quits\n", out_time(time(NULL), when), secs);
		fflush(stdout);
	} while (ret == CTL_OK && !watch_wait(secs, &stdin_open));
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	return ret;
}

/* status [--watch [SECONDS]] */
int cmd_status(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS], *every = NULL;
	bool watch = false;
	const struct args_opt opts[] = { { .name = "watch", .flag = &watch }, { .name = "every", .value = &every },
					 { 0 } };
	uint64_t secs = 2;
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	if (every && parse_u64(every, WATCH_MIN_S, WATCH_MAX_S, &secs) < 0)
		return args_usage(c, "--every '%s': use %d..%d seconds", every, WATCH_MIN_S, WATCH_MAX_S);
	if (watch && out_json())
		return args_usage(c, "--watch is for people; scripts run status --json as often as they like");
	if ((ret = store_open(c, true)))
		return ret;
	return watch ? status_watch(c, (unsigned)secs) : status_once(c);
}

/* ---- events ---- */

static const struct out_col event_cols[] = {
	{ NULL, "TIME", COL_HUMAN },
	{ "time", NULL, COL_NUM | COL_JSON },
	{ "mac", "MAC", 0 },
	{ "kind", "KIND", 0 },
	{ "text", "TEXT", 0 },
	{ "id", NULL, COL_NUM | COL_JSON },
};

/* db_event_list callback: one row per event. */
static int event_cb(const struct db_event *e, void *arg)
{
	char when[32], time[24], id[24];
	snprintf(time, sizeof time, "%lld", (long long)e->time);
	snprintf(id, sizeof id, "%lld", (long long)e->id);
	const char *cells[] = { out_time(e->time, when), time, e->mac[0] ? e->mac : "-", e->kind,
				e->text, id };
	return out_table_row(arg, cells);
}

/* --since: "2d", "3h", "90m", "45s" ago; "YYYY-MM-DD" or "YYYY-MM-DD HH:MM[:SS]"
 * local time; "@UNIXTIME". -1 if none of those. */
static int64_t parse_since(const char *s)
{
	char unit = 0, rest;
	unsigned long long n;
	struct tm tm;
	if (s[0] == '@')
		return sscanf(s + 1, "%llu%c", &n, &rest) == 1 ? (int64_t)n : -1;
	if (sscanf(s, "%llu%c%c", &n, &unit, &rest) == 2 && strchr("dhms", unit) && n < 100000000ull)
		return (int64_t)time(NULL) - (int64_t)n * (unit == 'd' ? 86400 : unit == 'h' ? 3600 : unit == 'm' ? 60 : 1);
	memset(&tm, 0, sizeof tm);
	const char *end = strptime(s, "%Y-%m-%d", &tm);
	if (end && *end == ' ' && !(end = strptime(end + 1, "%H:%M:%S", &tm)))
		end = strptime(strchr(s, ' ') + 1, "%H:%M", &tm);
	if (!end || *end)
		return -1;
	tm.tm_isdst = -1;
	return (int64_t)mktime(&tm);
}

/* events [MAC] [--client MAC] [--since WHEN] [--limit N] */
int cmd_events(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS], *limit_s = NULL, *since_s = NULL, *client = NULL;
	const struct args_opt opts[] = { { .name = "limit", .value = &limit_s }, { .name = "since", .value = &since_s },
					 { .name = "client", .value = &client }, { 0 } };
	char mac[MAC_STR_LEN];
	uint64_t limit = 50;
	int64_t since = 0;
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	if (limit_s && parse_u64(limit_s, 0, 1000000, &limit) < 0)
		return out_fail("invalid --limit '%s': use a number 0..1000000 (0 = all)", limit_s);
	if (since_s && (since = parse_since(since_s)) < 0)
		return out_fail("invalid --since '%s': use 2d, 3h, 90m (ago), 2026-12-01, '2026-12-01 14:30' or "
				"@UNIXTIME", since_s);
	if (client && pos[0] && strcmp(client, pos[0]) != 0)
		return args_usage(c, "give the client once: MAC or --client MAC");
	if (client)
		pos[0] = client;
	if ((pos[0] && (ret = store_mac(pos[0], mac))) || (ret = store_open(c, true)))
		return ret;
	struct out_table *t = out_table_new(event_cols, ARRAY_SIZE(event_cols));
	if (!t)
		return out_fail("out of memory");
	if ((ret = db_event_list(c->db, pos[0] ? mac : NULL, since, (int)limit, event_cb, t)) < 0) {
		out_table_free(t);
		return store_fail(ret, "listing events");
	}
	out_table_print(t, "events", "no events");
	return CTL_OK;
}
