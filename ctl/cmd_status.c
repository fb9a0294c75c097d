/* cmd_status.c — `bootlinkctl status` and `bootlinkctl events`.
 *
 * Design: status is a summary from the database (images, each with its
 * clients, and clients without an image) plus whether bootlinkd is up,
 * read from the daemon's runtime tree: it creates <paths/run>/ready once
 * it serves. Live per-connection state will join it from the same tree.
 * Human output is a table; JSON nests each image's clients as an array.
 */
#include "args.h"
#include "ctl.h"
#include "out.h"
#include "store.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- status ---- */

static const struct out_col status_cols[] = {
	{ NULL, "IMAGE", 0 },
	{ NULL, "ID", COL_NUM },
	{ NULL, "SIZE", COL_NUM },
	{ NULL, "STATUS", 0 },
	{ NULL, "CLIENTS", 0 },
};

struct status {
	struct ctl *c;
	struct out_table *t;
	int images, clients, unlinked;
	char names[512];         /* the current image's client names */
	size_t used;
};

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

/* db_client_list_image callback: one client of the current image. */
static int status_client_cb(const struct db_client *cl, void *arg)
{
	struct status *s = arg;
	s->clients++;
	add_name(s, cl->name);
	out_obj(NULL);
	out_str("name", cl->name);
	out_str("mac", cl->mac);
	out_str("mode", db_mode_name(cl->mode));
	out_int("last_seen", cl->last_seen);
	out_end();
	return 0;
}

/* db_image_list callback: an image, its clients, a table row. */
static int status_image_cb(const struct db_image *img, void *arg)
{
	struct status *s = arg;
	const char *st = store_image_status(img);
	char id[24], size[32];
	s->images++;
	s->used = 0;
	s->names[0] = 0;
	out_obj(NULL);
	out_int("id", img->id);
	out_str("name", img->name);
	out_int("size", (int64_t)img->size);
	out_str("status", st);
	out_str("path", img->path);
	out_arr("clients");
	int ret = db_client_list_image(s->c->db, img->id, status_client_cb, s);
	out_end();
	out_end();
	if (ret < 0)
		return ret;
	snprintf(id, sizeof id, "%lld", (long long)img->id);
	const char *cells[] = { img->name, id, out_size(img->size, size), st,
				s->used ? s->names : "-" };
	return out_table_row(s->t, cells);
}

/* Images with their clients, then the clients without an image. */
static int status_db(struct status *s)
{
	out_arr("images");
	int ret = db_image_list(s->c->db, status_image_cb, s);
	out_end();
	if (ret < 0)
		return ret;
	int linked = s->clients;
	s->used = 0;
	s->names[0] = 0;
	out_arr("unlinked");
	ret = db_client_list_image(s->c->db, 0, status_client_cb, s);
	out_end();
	s->unlinked = s->clients - linked;
	return ret;
}

/* status */
int cmd_status(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	char ready[PATH_MAX];
	int ret = args_parse(c, argc, argv, NULL, pos);
	if (ret || (ret = store_open(c, true)))
		return ret;
	snprintf(ready, sizeof ready, "%s/ready", c->conf.run_dir);
	bool running = access(ready, F_OK) == 0;
	out_obj("daemon");
	out_bool("running", running);
	out_str("run_dir", c->conf.run_dir);
	out_end();
	struct status s = { .c = c, .t = out_table_new(status_cols, ARRAY_SIZE(status_cols)) };
	if (!s.t)
		return out_fail("out of memory");
	if ((ret = status_db(&s)) < 0) {
		out_table_free(s.t);
		return store_fail(ret, "reading the database");
	}
	out_obj("counts");
	out_int("images", s.images);
	out_int("clients", s.clients);
	out_int("unlinked", s.unlinked);
	out_end();
	out_text("bootlinkd: %s\n%d image%s, %d client%s (%d without an image)\n",
		 running ? "running" : "not running", s.images, s.images == 1 ? "" : "s",
		 s.clients, s.clients == 1 ? "" : "s", s.unlinked);
	if (!out_json() && s.images) {
		out_text("\n");
		out_table_print(s.t, NULL, NULL);
	} else
		out_table_free(s.t);
	if (s.unlinked)
		out_text("\nwithout an image: %s\n", s.names);
	return CTL_OK;
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

/* events [MAC] [--limit N] */
int cmd_events(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS], *limit_s = NULL;
	const struct args_opt opts[] = { { .name = "limit", .value = &limit_s }, { 0 } };
	char mac[MAC_STR_LEN];
	uint64_t limit = 50;
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	if (limit_s && parse_u64(limit_s, 0, 1000000, &limit) < 0)
		return out_fail("invalid --limit '%s': use a number 0..1000000 (0 = all)", limit_s);
	if ((pos[0] && (ret = store_mac(pos[0], mac))) || (ret = store_open(c, true)))
		return ret;
	struct out_table *t = out_table_new(event_cols, ARRAY_SIZE(event_cols));
	if (!t)
		return out_fail("out of memory");
	if ((ret = db_event_list(c->db, pos[0] ? mac : NULL, 0, (int)limit, event_cb, t)) < 0) {
		out_table_free(t);
		return store_fail(ret, "listing events");
	}
	out_table_print(t, "events", "no events");
	return CTL_OK;
}
