/* cmd_client.c — `bootlinkctl client ...`: add, link, set, list, rm.
 *
 * Design: a client is a PC keyed by its MAC (any common spelling accepted,
 * stored canonical), with a unique short name (PC001... by default), the
 * image it boots and its overlay mode. Each change runs in one
 * transaction with an event carrying the client's MAC, so `bootlinkctl
 * events MAC` is the PC's history.
 */
#include "args.h"
#include "ctl.h"
#include "out.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MODES "ephemeral, persistent or maintenance"

/* A client's own fields, inside an open JSON object. */
static void client_fields_json(const struct db_client *cl)
{
	out_int("id", cl->id);
	out_str("mac", cl->mac);
	out_str("name", cl->name);
	out_int("image_id", cl->image_id);
	out_str("image", cl->image_name);
	out_str("mode", db_mode_name(cl->mode));
	out_int("created", cl->created);
	out_int("last_seen", cl->last_seen);
}

/* A client as a JSON object under key. */
static void client_json(const char *key, const struct db_client *cl)
{
	out_obj(key);
	client_fields_json(cl);
	out_end();
}

/* A client as a JSON object under key, with its boot settings (database open). */
static void client_json_c(struct ctl *c, const char *key, const struct db_client *cl)
{
	out_obj(key);
	client_fields_json(cl);
	client_boot_json(c, cl);
	out_end();
}

/* Copy a string that fits (checked by the caller) or truncate. */
static void set_str(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%.*s", (int)(len - 1), src);
}

/* The image name or "none". */
static const char *image_or_none(const struct db_client *cl)
{
	return cl->image_name[0] ? cl->image_name : "none";
}

/* Mode from its name, or an error listing the modes. */
static int parse_mode(const char *s, int *mode)
{
	int m = db_mode_parse(s);
	if (m < 0)
		return out_fail("unknown mode '%s': use " MODES, s);
	*mode = m;
	return CTL_OK;
}

/* Check a client name given with --name. */
static int check_name(const char *name)
{
	if (!name_valid(name))
		return out_fail("invalid client name '%s': use 1-63 letters, digits, '.', '_' or '-', "
				"not starting with '.' or '-'", name);
	return CTL_OK;
}

struct owner {
	const char *name;
	char mac[MAC_STR_LEN];
};

/* db_client_list callback: find the client called o->name. */
static int owner_cb(const struct db_client *cl, void *arg)
{
	struct owner *o = arg;
	if (strcmp(cl->name, o->name) != 0)
		return 0;
	set_str(o->mac, sizeof o->mac, cl->mac);
	return 1;
}

/* Error for a client name that is taken, naming its owner. */
static int name_taken(struct ctl *c, const char *name)
{
	struct owner o = { .name = name };
	if (db_client_list(c->db, owner_cb, &o) == 1)
		return out_fail("client name '%s' is already used by %s; choose another --name",
				name, o.mac);
	return out_fail("client name '%s' is already used; choose another --name", name);
}

/* Canonical MAC, config and database, and the client itself. */
static int open_client(struct ctl *c, const char *arg, struct db_client *cl)
{
	char mac[MAC_STR_LEN];
	int ret = store_mac(arg, mac);
	if (ret || (ret = store_open(c, false)))
		return ret;
	return store_client(c, mac, cl);
}

/* ---- client add ---- */

/* Insert cl (name chosen if empty) with its event. */
static int client_insert(struct ctl *c, struct db_client *cl)
{
	int ret = store_begin(c);
	if (ret)
		return ret;
	if (!cl->name[0] && (ret = db_client_next_name(c->db, cl->name)) < 0)
		return store_abort(c, store_fail(ret, "choosing a client name"));
	ret = db_client_add(c->db, cl);
	if (ret == -EEXIST)
		return store_abort(c, name_taken(c, cl->name));
	if (ret < 0)
		return store_abort(c, store_fail(ret, "adding client %s", cl->mac));
	return store_commit(c, cl->mac, "client", "client add %s: image %s, mode %s", cl->name,
			    cl->image_name, db_mode_name(cl->mode));
}

/* client add MAC --image NAME [--name N] [--mode M] */
int cmd_client_add(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS], *image = NULL, *name = NULL, *mode = NULL;
	const struct args_opt opts[] = { { .name = "image", .value = &image },
					 { .name = "name", .value = &name },
					 { .name = "mode", .value = &mode }, { 0 } };
	struct db_client cl = { .mode = DB_MODE_EPHEMERAL }, old;
	struct db_image img;
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	if (!image)
		return args_usage(c, "--image NAME is required");
	if ((ret = store_mac(pos[0], cl.mac)) || (mode && (ret = parse_mode(mode, &cl.mode))) ||
	    (name && (ret = check_name(name))) || (ret = store_open(c, false)) ||
	    (ret = store_image(c, image, &img)))
		return ret;
	if (db_client_get(c->db, cl.mac, &old) == 0)
		return out_fail("client %s already exists (%s, image %s); change it with: bootlinkctl "
				"client link %s IMAGE, or bootlinkctl client set %s --mode MODE",
				cl.mac, old.name, image_or_none(&old), cl.mac, cl.mac);
	set_str(cl.name, sizeof cl.name, name ? name : "");
	cl.image_id = img.id;
	set_str(cl.image_name, sizeof cl.image_name, img.name);
	if ((ret = client_insert(c, &cl)))
		return ret;
	out_text("added client %s (%s): image %s, mode %s\n", cl.name, cl.mac, cl.image_name,
		 db_mode_name(cl.mode));
	client_json("client", &cl);
	return CTL_OK;
}

/* ---- client link ---- */

/* client link MAC IMAGE */
int cmd_client_link(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	struct db_client cl;
	struct db_image img;
	char was[DB_NAME_MAX];
	int ret = args_parse(c, argc, argv, NULL, pos);
	if (ret || (ret = open_client(c, pos[0], &cl)) || (ret = store_image(c, pos[1], &img)))
		return ret;
	set_str(was, sizeof was, image_or_none(&cl));
	if (cl.image_id != img.id) {
		cl.image_id = img.id;
		if ((ret = store_begin(c)))
			return ret;
		if ((ret = db_client_update(c->db, &cl)) < 0)
			return store_abort(c, store_fail(ret, "linking client %s", cl.mac));
		if ((ret = store_commit(c, cl.mac, "link", "linked to image %s (was: %s)", img.name, was)))
			return ret;
		out_text("linked client %s (%s) to image %s (was: %s)\n", cl.name, cl.mac, img.name, was);
	} else
		out_text("client %s (%s) is already linked to image %s\n", cl.name, cl.mac, img.name);
	set_str(cl.image_name, sizeof cl.image_name, img.name);
	out_str("previous_image", was);
	client_json("client", &cl);
	return CTL_OK;
}

/* ---- client set ---- */

/* Apply --mode/--name to cl, describing the change in what. */
static int client_change(struct db_client *cl, const char *mode, const char *name,
			 char *what, size_t len)
{
	int m = cl->mode, ret = 0;
	size_t used = 0;
	if ((mode && (ret = parse_mode(mode, &m))) || (name && (ret = check_name(name))))
		return ret;
	what[0] = 0;
	if (m != cl->mode)
		used += (size_t)snprintf(what, len, "mode %s -> %s", db_mode_name(cl->mode),
					 db_mode_name(m));
	if (name && strcmp(name, cl->name) != 0 && used < len)
		snprintf(what + used, len - used, "%sname %s -> %s", used ? ", " : "", cl->name, name);
	cl->mode = m;
	if (name)
		set_str(cl->name, sizeof cl->name, name);
	return CTL_OK;
}

/* client set MAC [--mode M] [--name N] [--menu IMG,..] [--menu-timeout S] [--cmdline TEXT]
 *   [--keep-san 0|1] [--drive 0x80..0xff] */
int cmd_client_set(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS], *name = NULL, *mode = NULL;
	struct client_boot_opts b = { 0 };
	const struct args_opt opts[] = { { .name = "name", .value = &name },
					 { .name = "mode", .value = &mode },
					 { .name = "menu", .value = &b.menu },
					 { .name = "menu-timeout", .value = &b.timeout },
					 { .name = "cmdline", .value = &b.cmdline },
					 { .name = "keep-san", .value = &b.keep_san },
					 { .name = "drive", .value = &b.drive }, { 0 } };
	struct db_client cl;
	struct db_menu m;
	char what[512];
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	if (!mode && !name && !b.menu && !b.timeout && !b.cmdline && !b.keep_san && !b.drive)
		return args_usage(c, "nothing to change: give --mode, --name, --menu, --menu-timeout, --cmdline, "
				  "--keep-san and/or --drive");
	if ((ret = open_client(c, pos[0], &cl)) || (ret = client_change(&cl, mode, name, what, sizeof what)) ||
	    (ret = client_boot_prepare(c, &cl, &b, &m, what, sizeof what)))
		return ret;
	if (what[0]) {
		if ((ret = store_begin(c)))
			return ret;
		ret = db_client_update(c->db, &cl);
		if (ret == -EEXIST)
			return store_abort(c, name_taken(c, cl.name));
		if (ret < 0)
			return store_abort(c, store_fail(ret, "updating client %s", cl.mac));
		if ((ret = client_boot_store(c, &cl, &m)))
			return store_abort(c, ret);
		if ((ret = store_commit(c, cl.mac, "client", "client set: %s", what)))
			return ret;
		out_text("client %s (%s): %s\n", cl.name, cl.mac, what);
	} else
		out_text("client %s (%s): nothing changed\n", cl.name, cl.mac);
	client_json_c(c, "client", &cl);
	return CTL_OK;
}

/* ---- client list ---- */

static const struct out_col list_cols[] = {
	{ "name", "NAME", 0 },
	{ "mac", "MAC", 0 },
	{ NULL, "IMAGE", COL_HUMAN },
	{ "image", NULL, COL_JSON },
	{ "image_id", NULL, COL_NUM | COL_JSON },
	{ "mode", "MODE", 0 },
	{ NULL, "LAST SEEN", COL_HUMAN },
	{ "last_seen", NULL, COL_NUM | COL_JSON },
	{ "created", NULL, COL_NUM | COL_JSON },
	{ "id", NULL, COL_NUM | COL_JSON },
	{ "keep_san", NULL, COL_NUM | COL_JSON },
	{ "san_drive", NULL, COL_NUM | COL_JSON },
};

/* db_client_list callback: one row per client. */
static int list_cb(const struct db_client *cl, void *arg)
{
	char image_id[24], seen[32], last_seen[24], created[24], id[24], keep[4], drive[8];
	snprintf(image_id, sizeof image_id, "%lld", (long long)cl->image_id);
	snprintf(last_seen, sizeof last_seen, "%lld", (long long)cl->last_seen);
	snprintf(created, sizeof created, "%lld", (long long)cl->created);
	snprintf(id, sizeof id, "%lld", (long long)cl->id);
	snprintf(keep, sizeof keep, "%d", cl->san_keep);
	snprintf(drive, sizeof drive, "%d", cl->san_drive & 0xffff);
	const char *cells[] = { cl->name, cl->mac, cl->image_name[0] ? cl->image_name : "-",
				cl->image_name, image_id, db_mode_name(cl->mode),
				out_time(cl->last_seen, seen), last_seen, created, id, keep, drive };
	return out_table_row(arg, cells);
}

/* client list */
int cmd_client_list(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	int ret = args_parse(c, argc, argv, NULL, pos);
	if (ret || (ret = store_open(c, true)))
		return ret;
	struct out_table *t = out_table_new(list_cols, ARRAY_SIZE(list_cols));
	if (!t)
		return out_fail("out of memory");
	if ((ret = db_client_list(c->db, list_cb, t)) < 0) {
		out_table_free(t);
		return store_fail(ret, "listing clients");
	}
	out_table_print(t, "clients", "no clients; add one with: bootlinkctl client add MAC --image NAME");
	return CTL_OK;
}

/* ---- client rm ---- */

/* client rm MAC */
int cmd_client_rm(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	struct db_client cl;
	int ret = args_parse(c, argc, argv, NULL, pos);
	if (ret || (ret = open_client(c, pos[0], &cl)) || (ret = store_begin(c)))
		return ret;
	if ((ret = db_client_rm(c->db, cl.mac)) < 0)
		return store_abort(c, store_fail(ret, "removing client %s", cl.mac));
	if ((ret = store_commit(c, cl.mac, "client", "client rm %s (image %s)", cl.name,
				image_or_none(&cl))))
		return ret;
	out_text("removed client %s (%s)\n", cl.name, cl.mac);
	client_json("removed", &cl);
	return CTL_OK;
}
