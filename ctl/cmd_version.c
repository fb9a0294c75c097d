/* cmd_version.c — `bootlinkctl image versions|commit|rollback|flatten`.
 *
 * Design: version 1 of an image is its file; later versions are database
 * rows, each a delta (a maintenance client's overlay, frozen: .data + .map)
 * or a new base (a flattened .raw), stored in paths/versions as
 * <image>-<id>-v<N>.<ext>. The current version is one column; bootlinkd
 * serves its chain and moves each client to it at the client's next boot,
 * discarding persistent overlays made on another version. So every command
 * that changes the current version first lists the clients whose overlays
 * that would discard (those whose .info names the current version), and
 * refuses without --force.
 *
 * Files first, database last: version files are written under a temporary
 * name, fsync'ed, renamed and the directory fsync'ed; only then does one
 * transaction add the version, make it current and log the event (and, for
 * a commit, bump the maintenance client's overlay epoch so it starts clean).
 * An interrupted command therefore leaves the current version as it was;
 * SIGINT, SIGTERM and SIGHUP during a copy also remove the temporary file.
 */
#include "args.h"
#include "ctl.h"
#include "out.h"
#include "jobs.h"
#include "progress.h"
#include "store.h"
#include "util.h"
#include "vfile.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "s" unless n is 1. */
static const char *plural(long long n)
{
	return n == 1 ? "" : "s";
}

/* Copy a string, truncating to fit. */
static void set_str(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%.*s", (int)(len - 1), src);
}

/* ---- interruption ---- */

/* Progress callback: draw the bar (arg: struct progress); stop on a signal. */
static int job_cb(uint64_t done, uint64_t total, void *arg)
{
	if (arg)
		progress_cb(done, total, arg);
	return progress_stop;
}

/* ---- shared pieces ---- */

/* Regular file at path. */
static bool is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* "ok", or "MISSING" if a file of version v is gone. */
static const char *version_status(const struct db_version *v)
{
	if (v->base_path[0])
		return is_file(v->base_path) ? "ok" : "MISSING";
	return is_file(v->data_path) && is_file(v->map_path) ? "ok" : "MISSING";
}

/* Version number `number` of img resolved into its chain (malloc'ed). */
static int load_chain(struct ctl *c, const struct db_image *img, int number, struct db_chain **out)
{
	struct db_chain *ch = malloc(sizeof *ch);
	if (!ch)
		return out_fail("out of memory");
	int ret = db_version_chain(c->db, img, number, ch);
	if (ret == -E2BIG)
		ret = out_fail("image '%s': version %d stacks more than %d deltas, more than bootlinkd "
			       "can serve; roll back with: bootlinkctl image rollback %s VERSION",
			       img->name, number, DB_CHAIN_MAX, img->name);
	else if (ret == -ENOENT)
		ret = out_fail("image '%s': version %d (or one it builds on) is missing from the "
			       "database; see: bootlinkctl image versions %s", img->name, number, img->name);
	else if (ret < 0)
		ret = store_fail(ret, "reading version %d of image '%s'", number, img->name);
	if (ret) {
		free(ch);
		return ret;
	}
	*out = ch;
	return CTL_OK;
}

/* Refuse a chain whose files are not all there. */
static int chain_present(const struct db_image *img, const struct db_chain *ch)
{
	const char *gone = !is_file(ch->base_path) ? ch->base_path : NULL;
	for (int i = 0; i < ch->ndeltas && !gone; i++)
		if (!is_file(ch->deltas[i].data_path) || !is_file(ch->deltas[i].map_path))
			gone = is_file(ch->deltas[i].data_path) ? ch->deltas[i].map_path
							       : ch->deltas[i].data_path;
	if (gone)
		return out_fail("image '%s': version %d needs %s, which is missing or not a regular "
				"file; restore it, or pick another version (bootlinkctl image versions %s)",
				img->name, ch->number, gone, img->name);
	return CTL_OK;
}

/* The next free version number of img (at least 2). */
static int max_cb(const struct db_version *v, void *arg)
{
	int *m = arg;
	*m = MAX(*m, v->number);
	return 0;
}

/* Set *n to the next version number. */
static int next_number(struct ctl *c, const struct db_image *img, int *n)
{
	int m = 1, ret = db_version_list(c->db, img->id, max_cb, &m);
	if (ret < 0)
		return store_fail(ret, "listing the versions of image '%s'", img->name);
	*n = m + 1;
	return CTL_OK;
}

/* <paths/versions>/<image>-<id>-v<N>.<ext> into out[DB_PATH_MAX]; makes the directory. */
static int version_path(struct ctl *c, const struct db_image *img, int n, const char *ext,
			char out[DB_PATH_MAX])
{
	int w = snprintf(out, DB_PATH_MAX, "%s/%s-%lld-v%d.%s", c->conf.versions_dir, img->name,
			 (long long)img->id, n, ext);
	if (w < 0 || w + 5 >= DB_PATH_MAX)
		return out_fail("paths/versions (%s) is too long: a version file's path must stay "
				"under %d bytes", c->conf.versions_dir, DB_PATH_MAX - 5);
	int ret = mkdir_p(c->conf.versions_dir, 0750);
	if (ret < 0)
		return out_fail("cannot create the versions directory %s: %s; create it, or set "
				"paths/versions in the config tree", c->conf.versions_dir, strerror(-ret));
	return CTL_OK;
}

/* JSON "chain": what version n is made of (base file, delta numbers bottom first). */
static void chain_json(struct ctl *c, const struct db_image *img, int n)
{
	struct db_chain *ch = malloc(sizeof *ch);
	if (ch && db_version_chain(c->db, img, n, ch) == 0) {
		out_obj("chain");
		out_int("number", n);
		out_str("base", ch->base_path);
		out_arr("deltas");
		for (int i = 0; i < ch->ndeltas; i++)
			out_int(NULL, ch->deltas[i].number);
		out_end();
		out_end();
	}
	free(ch);
}

/* After a change: suggest flatten when version n stacks too many deltas. */
static void chain_hint(struct ctl *c, const struct db_image *img, int n)
{
	struct db_chain *ch = malloc(sizeof *ch);
	char hint[512];
	if (ch && db_version_chain(c->db, img, n, ch) == 0 &&
	    ch->ndeltas > (int)c->conf.versions_max_chain) {
		snprintf(hint, sizeof hint, "version %d of image '%s' stacks %d deltas (versions/max_chain "
			 "is %u) and every read looks through them; merge them with: bootlinkctl image "
			 "flatten %s", n, img->name, ch->ndeltas, c->conf.versions_max_chain, img->name);
		out_str("hint", hint);
		out_text("hint: %s\n", hint);
	}
	free(ch);
}

/* ---- clients whose overlays a change discards ---- */

struct affected {
	struct ctl *c;
	int64_t key;                 /* .info key of the current version */
	const char *skip;            /* the maintenance client being committed, or NULL */
	int n;
	char text[768];              /* "PC002 (52:54:00:aa:bb:02), ..." */
	size_t used;
};

/* db_client_list_image callback: a client with a live overlay on the current version. */
static int affected_cb(const struct db_client *cl, void *arg)
{
	struct affected *a = arg;
	struct vfile_overlay ov;
	if (cl->mode == DB_MODE_EPHEMERAL || (a->skip && strcmp(cl->mac, a->skip) == 0) ||
	    vfile_find_overlay(&a->c->conf, cl->mac, &ov) <= 0)
		return 0;
	if (ov.has_info && (ov.info_key != a->key || ov.info_epoch != cl->overlay_epoch))
		return 0; /* already stale: bootlinkd discards it at the next boot anyway */
	size_t room = sizeof a->text - a->used;
	int w = snprintf(a->text + a->used, room, "%s%s (%s)", a->n ? ", " : "", cl->name, cl->mac);
	a->used += w > 0 && (size_t)w < room ? (size_t)w : 0;
	a->n++;
	out_obj(NULL);
	out_str("name", cl->name);
	out_str("mac", cl->mac);
	out_str("mode", db_mode_name(cl->mode));
	out_str("dir", ov.dir);
	out_end();
	return 0;
}

/* List (JSON "affected") the clients that would lose their overlays; without
 * force refuse if there are any. again: the command line to repeat. */
static int check_affected(struct ctl *c, const struct db_image *img, const char *skip, bool force,
			  const char *again, struct affected *a)
{
	memset(a, 0, sizeof *a);
	a->c = c;
	a->key = vfile_version_key(img->id, img->current_version);
	a->skip = skip;
	out_arr("affected");
	int ret = db_client_list_image(c->db, img->id, affected_cb, a);
	out_end();
	if (ret < 0)
		return store_fail(ret, "listing the clients of image '%s'", img->name);
	if (a->n && !force)
		return out_fail("image '%s': %d client%s would lose %s overlay%s at %s next boot: %s; "
				"commit or reset %s first, or go ahead with: bootlinkctl %s --force",
				img->name, a->n, plural(a->n), a->n == 1 ? "its" : "their", plural(a->n),
				a->n == 1 ? "its" : "their", a->text, a->n == 1 ? "it" : "them", again);
	return CTL_OK;
}

/* Human line naming the clients whose overlays go (after --force). */
static void affected_text(const struct affected *a)
{
	if (a->n)
		out_text("overlays discarded at each client's next boot (--force): %s\n", a->text);
}

/* ---- image versions ---- */

static const struct out_col version_cols[] = {
	{ NULL, "VERSION", COL_NUM },
	{ NULL, "KIND", 0 },
	{ NULL, "ON DISK", COL_NUM },
	{ NULL, "CREATED", 0 },
	{ NULL, "STATUS", 0 },
	{ NULL, "CURRENT", 0 },
	{ NULL, "NOTE", 0 },
};

struct vlist {
	const struct db_image *img;
	struct out_table *t;
};

/* One version: a table row and a JSON object. */
static int version_row(struct vlist *l, int number, const char *kind, uint64_t bytes,
		       int64_t created, const char *status, const char *note)
{
	char num[16], size[32], when[32];
	bool current = number == l->img->current_version;
	out_int("number", number);
	out_str("kind", kind);
	out_int("bytes", (int64_t)bytes);
	out_int("created", created);
	out_str("status", status);
	out_bool("current", current);
	out_str("note", note);
	snprintf(num, sizeof num, "%d", number);
	const char *cells[] = { num, kind, out_size(bytes, size), out_time(created, when), status,
				current ? "*" : "", note };
	return out_table_row(l->t, cells);
}

/* db_version_list callback: versions 2, 3, ... */
static int vlist_cb(const struct db_version *v, void *arg)
{
	bool flat = v->base_path[0] != 0;
	uint64_t bytes = flat ? vfile_disk_bytes(v->base_path)
			      : vfile_disk_bytes(v->data_path) + vfile_disk_bytes(v->map_path);
	out_obj(NULL);
	if (flat)
		out_str("path", v->base_path);
	else {
		out_str("data_path", v->data_path);
		out_str("map_path", v->map_path);
		out_int("block_size", v->block_size);
	}
	int ret = version_row(arg, v->number, flat ? "flattened" : "delta", bytes, v->created,
			      version_status(v), v->note);
	out_end();
	return ret;
}

/* image versions NAME */
int cmd_image_versions(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	struct db_image img;
	int ret = args_parse(c, argc, argv, NULL, pos);
	if (ret || (ret = store_open(c, false)) || (ret = store_image(c, pos[0], &img)))
		return ret;
	struct vlist l = { &img, out_table_new(version_cols, ARRAY_SIZE(version_cols)) };
	if (!l.t)
		return out_fail("out of memory");
	out_str("image", img.name);
	out_int("current", img.current_version);
	out_arr("versions");
	out_obj(NULL);
	out_str("path", img.path);
	ret = version_row(&l, 1, "file", vfile_disk_bytes(img.path), img.created,
			  is_file(img.path) ? "ok" : "MISSING", "the image file");
	out_end();
	if (ret == 0)
		ret = db_version_list(c->db, img.id, vlist_cb, &l);
	out_end();
	if (ret < 0) {
		out_table_free(l.t);
		return store_fail(ret, "listing the versions of image '%s'", img.name);
	}
	if (out_json())
		out_table_free(l.t);
	else
		out_table_print(l.t, NULL, NULL);
	chain_json(c, &img, img.current_version);
	chain_hint(c, &img, img.current_version);
	return CTL_OK;
}

/* ---- image commit ---- */

struct commit {
	struct db_image img;
	struct db_client mc;             /* the maintenance client */
	struct vfile_overlay ov;         /* its overlay files */
	struct db_chain *ch;             /* the current version's chain */
	int number;                      /* the new version */
	uint64_t changed;                /* blocks the overlay changes */
	char data[DB_PATH_MAX], map[DB_PATH_MAX];
	const char *note;
	struct affected aff;
};

struct maint {
	int n;
	struct db_client cl;
	char text[512];
	size_t used;
};

/* db_client_list_image callback: collect maintenance clients. */
static int maint_cb(const struct db_client *cl, void *arg)
{
	struct maint *m = arg;
	if (cl->mode != DB_MODE_MAINTENANCE)
		return 0;
	size_t room = sizeof m->text - m->used;
	int w = snprintf(m->text + m->used, room, "%s%s (%s)", m->n ? ", " : "", cl->name, cl->mac);
	m->used += w > 0 && (size_t)w < room ? (size_t)w : 0;
	if (m->n++ == 0)
		m->cl = *cl;
	return 0;
}

/* The image's one maintenance client, not connected. */
static int find_maintenance(struct ctl *c, struct commit *k)
{
	struct maint m = { 0 };
	struct ctl_live live;
	int ret = db_client_list_image(c->db, k->img.id, maint_cb, &m);
	if (ret < 0)
		return store_fail(ret, "listing the clients of image '%s'", k->img.name);
	if (m.n == 0)
		return out_fail("image '%s' has no maintenance client, whose overlay a commit takes; "
				"make one of its clients the maintenance PC with: bootlinkctl client set "
				"MAC --mode maintenance", k->img.name);
	if (m.n > 1)
		return out_fail("image '%s' has %d maintenance clients (%s); a commit takes the overlay "
				"of exactly one: switch the others with: bootlinkctl client set MAC --mode "
				"persistent", k->img.name, m.n, m.text);
	k->mc = m.cl;
	ctl_client_live(c, k->mc.mac, &live);
	if (live.running && live.conns)
		return out_fail("maintenance client %s (%s) is connected (%u connection%s); shut it "
				"down first, so that its writes are complete, then run the command again",
				k->mc.name, k->mc.mac, live.conns, plural(live.conns));
	return CTL_OK;
}

/* Refuse an overlay made on another version or epoch. */
static int overlay_fresh(const struct commit *k)
{
	int64_t key = vfile_version_key(k->img.id, k->img.current_version);
	const char *who = k->mc.name, *mac = k->mc.mac;
	if (!k->ov.has_info)
		return out_fail("the overlay of %s (%s) in %s has no readable %s, so the version it "
				"was made on is unknown; not committing it. Discard it with: bootlinkctl "
				"overlay reset %s", who, mac, k->ov.dir, k->ov.info, mac);
	if (k->ov.info_key != key)
		return out_fail("stale overlay: the overlay of %s (%s) was made on %s version %lld, "
				"but version %d is current; discard it with: bootlinkctl overlay reset %s, "
				"then boot the client and make the changes again",
				who, mac, (k->ov.info_key >> 24) == k->img.id ? "its image's" : "another image's",
				(long long)(k->ov.info_key & 0xffffff), k->img.current_version, mac);
	if (k->ov.info_epoch != k->mc.overlay_epoch)
		return out_fail("stale overlay: the overlay of %s (%s) was reset (it belongs to epoch "
				"%lld, the client is at %lld) and is discarded at its next boot; nothing "
				"to commit", who, mac, (long long)k->ov.info_epoch,
				(long long)k->mc.overlay_epoch);
	return CTL_OK;
}

/* Find the maintenance overlay and check it can be committed. */
static int find_changes(struct ctl *c, struct commit *k)
{
	uint64_t counts[3];
	struct stat st;
	int ret = vfile_find_overlay(&c->conf, k->mc.mac, &k->ov);
	if (ret < 0)
		return out_fail("cannot search overlay/dirs (%s): %s", c->conf.overlay_dirs, strerror(-ret));
	if (ret == 0)
		return out_fail("nothing to commit: maintenance client %s (%s) has no overlay files in "
				"overlay/dirs (%s); boot it, make the changes, shut it down, then commit",
				k->mc.name, k->mc.mac, c->conf.overlay_dirs);
	if ((ret = overlay_fresh(k)))
		return ret;
	if ((ret = vfile_map_count(k->ov.map, counts)) < 0)
		return out_fail("cannot read %s: %s", k->ov.map, strerror(-ret));
	k->changed = counts[VF_ZERO] + counts[VF_DATA];
	if (!k->changed)
		return out_fail("nothing to commit: the overlay of %s (%s) holds no changes", k->mc.name,
				k->mc.mac);
	if (stat(k->ch->base_path, &st) == 0 && (uint64_t)st.st_size != k->ov.data_size)
		return out_fail("the overlay of %s (%s) is %llu bytes but version %d of image '%s' is "
				"%llu; it was not made for this disk: discard it with: bootlinkctl overlay "
				"reset %s", k->mc.name, k->mc.mac, (unsigned long long)k->ov.data_size,
				k->img.current_version, k->img.name, (unsigned long long)st.st_size,
				k->mc.mac);
	return CTL_OK;
}

/* Copy the overlay's .data and .map to the version's files (tmp + rename). */
static int copy_overlay(struct commit *k)
{
	char tmp_d[VF_PATH_MAX], tmp_m[VF_PATH_MAX], err[2600];
	struct progress p;
	snprintf(tmp_d, sizeof tmp_d, "%s.tmp", k->data);
	snprintf(tmp_m, sizeof tmp_m, "%s.tmp", k->map);
	progress_catch_stop();
	progress_init(&p, k->img.name);
	int ret = vfile_copy_sparse(k->ov.data, tmp_d, job_cb, &p, err, sizeof err);
	progress_done(&p);
	if (ret == 0)
		ret = vfile_copy_sparse(k->ov.map, tmp_m, job_cb, NULL, err, sizeof err);
	if (ret == 0)
		store_give(tmp_d), store_give(tmp_m);
	if (ret == 0 && (rename(tmp_d, k->data) < 0 || rename(tmp_m, k->map) < 0)) {
		ret = -errno;
		snprintf(err, sizeof err, "cannot rename into %s: %s", k->data, strerror(errno));
	}
	if (ret == 0 && (ret = vfile_sync_parent(k->data)) < 0)
		snprintf(err, sizeof err, "cannot sync %s: %s", k->data, strerror(-ret));
	if (ret == 0)
		return CTL_OK;
	unlink(tmp_d), unlink(tmp_m), unlink(k->data), unlink(k->map);
	if (ret == -ECANCELED)
		return out_fail("interrupted: nothing was committed; version %d of image '%s' is still "
				"current", k->img.current_version, k->img.name);
	return out_fail("%s; nothing was committed", err);
}

/* The image must still be at the version the command started from (in a transaction). */
static int still_current(struct ctl *c, const struct db_image *img)
{
	struct db_image now;
	int ret = db_image_get_id(c->db, img->id, &now);
	if (ret == -ENOENT)
		return out_fail("image '%s' was removed meanwhile", img->name);
	if (ret < 0)
		return store_fail(ret, "reading image '%s'", img->name);
	if (now.current_version != img->current_version)
		return out_fail("image '%s' changed meanwhile (version %d is now current); nothing was "
				"changed: run the command again", img->name, now.current_version);
	return CTL_OK;
}

/* Add version v and make it current, inside the open transaction. */
static int add_current(struct ctl *c, const struct db_image *img, struct db_version *v)
{
	int ret = still_current(c, img);
	if (ret)
		return ret;
	ret = db_version_add(c->db, v);
	if (ret == -EEXIST)
		return out_fail("version %d of image '%s' was added meanwhile; run the command again",
				v->number, img->name);
	if (ret < 0)
		return store_fail(ret, "adding version %d of image '%s'", v->number, img->name);
	if ((ret = db_image_set_current(c->db, img->id, v->number)) < 0)
		return store_fail(ret, "making version %d of image '%s' current", v->number, img->name);
	return CTL_OK;
}

/* One transaction: the version, current, the client's epoch, the events. */
static int record_commit(struct ctl *c, struct commit *k, struct db_version *v)
{
	char text[DB_TEXT_MAX], size[32];
	*v = (struct db_version){ .image_id = k->img.id, .number = k->number };
	set_str(v->data_path, sizeof v->data_path, k->data);
	set_str(v->map_path, sizeof v->map_path, k->map);
	set_str(v->note, sizeof v->note, k->note);
	v->block_size = k->ov.info_block; /* the delta keeps the overlay's granularity */
	int ret = store_begin(c);
	if (ret)
		return ret;
	if ((ret = add_current(c, &k->img, v)))
		return store_abort(c, ret);
	if ((ret = db_client_bump_epoch(c->db, k->mc.mac)) < 0)
		return store_abort(c, store_fail(ret, "resetting the overlay of %s", k->mc.mac));
	snprintf(text, sizeof text, "overlay committed into image %s version %d; starts clean at "
		 "its next boot", k->img.name, k->number);
	if ((ret = db_event_add(c->db, k->mc.mac, "overlay", text)) < 0)
		return store_abort(c, store_fail(ret, "recording the event"));
	return store_commit(c, NULL, "image", "image commit %s: version %d from %s (%s), %s%s%s%s",
			    k->img.name, k->number, k->mc.name, k->mc.mac,
			    out_size(vfile_disk_bytes(k->data), size), k->note[0] ? "; " : "", k->note,
			    k->aff.n ? "; forced" : "");
}

/* Delete the committed overlay unless bootlinkd already started it afresh. */
static void drop_overlay(const struct commit *k)
{
	struct vfile_overlay ov = k->ov;
	vfile_read_info(&ov);
	if (!ov.has_info || ov.info_key != k->ov.info_key || ov.info_epoch != k->ov.info_epoch)
		return;
	int ret = vfile_remove_overlay(&ov);
	if (ret < 0)
		fprintf(stderr, "bootlinkctl: warning: committed, but the overlay files in %s could "
			"not be deleted (%s); bootlinkd discards them at the client's next boot\n",
			ov.dir, strerror(-ret));
}

/* What a commit reports. */
static void commit_report(struct ctl *c, const struct commit *k, const struct db_version *v)
{
	char size[32];
	uint64_t bytes = vfile_disk_bytes(k->data) + vfile_disk_bytes(k->map);
	out_str("image", k->img.name);
	out_int("previous", k->img.current_version);
	out_obj("version");
	out_int("number", v->number);
	out_str("kind", "delta");
	out_str("data_path", v->data_path);
	out_str("map_path", v->map_path);
	out_int("bytes", (int64_t)bytes);
	out_int("blocks", (int64_t)k->changed);
	out_int("block_size", v->block_size);
	out_str("note", v->note);
	out_int("created", v->created);
	out_end();
	out_obj("client");
	out_str("name", k->mc.name);
	out_str("mac", k->mc.mac);
	out_end();
	out_text("image '%s': committed the overlay of %s (%s) as version %d (%s, %llu block%s "
		 "changed); it is now current\nclients move to it at their next boot; %s starts "
		 "with an empty overlay\n", k->img.name, k->mc.name, k->mc.mac, v->number,
		 out_size(bytes, size), (unsigned long long)k->changed, plural((long long)k->changed),
		 k->mc.name);
	affected_text(&k->aff);
	chain_hint(c, &k->img, v->number);
}

/* Everything after the arguments: checks, copy, transaction, clean-up. */
static int commit(struct ctl *c, struct commit *k, bool force)
{
	char again[128];
	struct db_version v;
	int ret;
	snprintf(again, sizeof again, "image commit %s", k->img.name);
	if ((ret = find_maintenance(c, k)) || (ret = load_chain(c, &k->img, k->img.current_version, &k->ch)))
		return ret;
	if (k->ch->ndeltas >= DB_CHAIN_MAX)
		return out_fail("version %d of image '%s' already stacks %d deltas, the most bootlinkd "
				"can serve; flatten it first: bootlinkctl image flatten %s",
				k->img.current_version, k->img.name, k->ch->ndeltas, k->img.name);
	if ((ret = find_changes(c, k)) || (ret = check_affected(c, &k->img, k->mc.mac, force, again, &k->aff)) ||
	    (ret = next_number(c, &k->img, &k->number)) ||
	    (ret = version_path(c, &k->img, k->number, "data", k->data)) ||
	    (ret = version_path(c, &k->img, k->number, "map", k->map)) || (ret = copy_overlay(k)))
		return ret;
	if ((ret = record_commit(c, k, &v))) {
		unlink(k->data), unlink(k->map);
		return ret;
	}
	drop_overlay(k);
	commit_report(c, k, &v);
	return CTL_OK;
}

/* image commit NAME [--note TEXT] [--force] */
int cmd_image_commit(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS], *note = "";
	bool force = false;
	const struct args_opt opts[] = { { .name = "note", .value = &note },
					 { .name = "force", .flag = &force }, { 0 } };
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	if (strlen(note) >= DB_TEXT_MAX)
		return out_fail("note too long: at most %d bytes", DB_TEXT_MAX - 1);
	struct commit *k = calloc(1, sizeof *k);
	if (!k)
		return out_fail("out of memory");
	k->note = note;
	if (!(ret = store_open(c, false)) && !(ret = store_image(c, pos[0], &k->img)))
		ret = commit(c, k, force);
	free(k->ch);
	free(k);
	return ret;
}

/* ---- image rollback ---- */

/* Make `number` current in one transaction with its event. */
static int record_rollback(struct ctl *c, const struct db_image *img, int number, bool forced)
{
	int ret = store_begin(c);
	if (ret)
		return ret;
	if ((ret = still_current(c, img)))
		return store_abort(c, ret);
	if ((ret = db_image_set_current(c->db, img->id, number)) < 0)
		return store_abort(c, store_fail(ret, "making version %d of image '%s' current", number,
						 img->name));
	return store_commit(c, NULL, "image", "image rollback %s: version %d -> %d%s", img->name,
			    img->current_version, number, forced ? "; forced" : "");
}

/* Check that version `number` exists and can be served. */
static int rollback_target(struct ctl *c, const struct db_image *img, int number)
{
	struct db_version v;
	struct db_chain *ch;
	int ret = number == 1 ? 0 : db_version_get(c->db, img->id, number, &v);
	if (ret == -ENOENT)
		return out_fail("image '%s' has no version %d; see its versions with: bootlinkctl image "
				"versions %s", img->name, number, img->name);
	if (ret < 0)
		return store_fail(ret, "reading version %d of image '%s'", number, img->name);
	if ((ret = load_chain(c, img, number, &ch)))
		return ret;
	ret = chain_present(img, ch);
	free(ch);
	return ret;
}

/* image rollback NAME VERSION [--force] */
int cmd_image_rollback(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	bool force = false;
	const struct args_opt opts[] = { { .name = "force", .flag = &force }, { 0 } };
	struct db_image img;
	struct affected a;
	char again[128];
	uint64_t n;
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	if (parse_u64(pos[1], 1, 0xffffff, &n) < 0)
		return out_fail("invalid VERSION '%s': use a version number (1 = the original file)", pos[1]);
	if ((ret = store_open(c, false)) || (ret = store_image(c, pos[0], &img)))
		return ret;
	out_str("image", img.name);
	out_int("previous", img.current_version);
	if ((int)n == img.current_version) {
		out_int("current", (int)n);
		out_text("image '%s': version %d is already current; nothing changed\n", img.name, (int)n);
		return CTL_OK;
	}
	snprintf(again, sizeof again, "image rollback %s %d", img.name, (int)n);
	if ((ret = rollback_target(c, &img, (int)n)) ||
	    (ret = check_affected(c, &img, NULL, force, again, &a)) ||
	    (ret = record_rollback(c, &img, (int)n, a.n > 0)))
		return ret;
	out_int("current", (int)n);
	out_text("image '%s': version %d is now current (was %d); clients move to it at their next "
		 "boot\n", img.name, (int)n, img.current_version);
	affected_text(&a);
	chain_hint(c, &img, (int)n);
	return CTL_OK;
}

/* ---- image flatten ----
 *
 * A background job (jobs.h): the command checks, reserves the next
 * version number and the output path in a jobs row (at most one flatten
 * per image runs: the row is unique while running), starts a detached
 * process and returns, or with --wait follows it with a progress bar.
 * The process writes <path>.tmp, fsyncs it, renames it to <path>, fsyncs
 * the directory, then in one transaction adds the version, makes it
 * current, finishes the job and logs the event. Killed at any point
 * before that transaction, it leaves the current version as it was; the
 * next `bootlinkctl jobs` (or flatten) marks the job failed and removes
 * the files it left.
 */

/* What the job process needs; filled by the command before the fork. */
struct flatjob {
	struct db_image img;
	struct db_chain *ch;
	struct db_version v;           /* number and base_path reserved */
	bool forced;
};

/* In the job: the version, current, the job done and the event, in one transaction. */
static int record_flatten(struct ctl *c, const struct flatjob *f, struct db_version *v, int64_t job)
{
	char size[32];
	int deltas = f->ch->ndeltas;
	int ret = store_begin(c);
	if (ret)
		return ret;
	if ((ret = add_current(c, &f->img, v)))
		return store_abort(c, ret);
	if ((ret = db_job_finish(c->db, job, true, NULL)) < 0)
		return store_abort(c, store_fail(ret, "finishing job %lld", (long long)job));
	return store_commit(c, NULL, "image", "image flatten %s: version %d (%d delta%s) -> version "
			    "%d, %s%s (job %lld)", f->img.name, f->img.current_version, deltas, plural(deltas),
			    v->number, out_size(vfile_disk_bytes(v->base_path), size),
			    f->forced ? "; forced" : "", (long long)job);
}

/* The job process: write the file, then record it (see above). */
static int flatten_job(struct ctl *jc, int64_t job, void *arg)
{
	struct flatjob *f = arg;
	char tmp[VF_PATH_MAX], err[2600] = "";
	const char *kbps = getenv("BOOTLINK_TEST_JOB_KBPS");
	struct job_run run = { .c = jc, .id = job, .kbps = kbps ? strtoull(kbps, NULL, 10) : 0,
			       .stop = &progress_stop };
	struct db_version v = f->v;
	uint64_t size = 0;
	progress_catch_stop();
	snprintf(tmp, sizeof tmp, "%s.tmp", v.base_path);
	int ret = vfile_flatten(f->ch, tmp, &size, jobs_progress_cb, &run, err, sizeof err);
	if (ret == 0)
		store_give(tmp);
	if (ret == 0 && rename(tmp, v.base_path) < 0) {
		ret = -errno;
		snprintf(err, sizeof err, "cannot rename %s to %s: %s", tmp, v.base_path, strerror(errno));
	}
	if (ret == 0 && (ret = vfile_sync_parent(v.base_path)) < 0)
		snprintf(err, sizeof err, "cannot sync %s: %s", v.base_path, strerror(-ret));
	if (ret == -ECANCELED)
		snprintf(err, sizeof err, "stopped by a signal; nothing changed");
	if (ret == 0 && record_flatten(jc, f, &v, job) != CTL_OK) {
		ret = -EIO;
		snprintf(err, sizeof err, "%s", out_last_error());
	}
	if (ret == 0)
		return CTL_OK;
	unlink(tmp);
	unlink(v.base_path);
	db_job_finish(jc->db, job, false, err);
	return CTL_ERR;
}

/* What a finished flatten reports. */
static void flatten_report(const struct flatjob *f, const struct db_job *j, const struct affected *a)
{
	char h[32], d[32];
	struct stat st;
	uint64_t bytes = vfile_disk_bytes(j->path);
	uint64_t size = stat(j->path, &st) == 0 ? (uint64_t)st.st_size : 0;
	out_str("result", "flattened");
	out_obj("version");
	out_int("number", j->version);
	out_str("kind", "flattened");
	out_str("path", j->path);
	out_int("size", (int64_t)size);
	out_int("bytes", (int64_t)bytes);
	out_str("note", f->v.note);
	out_end();
	out_text("image '%s': version %d (%d delta%s) flattened into version %d: %s (%s, %s on "
		 "disk); it is now current\n", f->img.name, f->img.current_version, f->ch->ndeltas,
		 plural(f->ch->ndeltas), j->version, j->path, out_size(size, h), out_size(bytes, d));
	affected_text(a);
}

/* Refuse a second flatten of the image while one runs. */
static int refuse_running(struct ctl *c, const struct db_image *img)
{
	struct db_job j;
	char prog[96];
	int r = jobs_running(c, img->id, "flatten", &j);
	if (r < 0)
		return store_fail(r, "listing jobs");
	if (r == 0)
		return CTL_OK;
	out_obj("job");
	jobs_json(&j);
	out_end();
	return out_fail("image '%s': a flatten is already running as job %lld (pid %lld, %s); wait for it "
			"(bootlinkctl jobs) and run the command again if it fails", img->name, (long long)j.id,
			(long long)j.pid, jobs_progress_str(&j, prog));
}

/* The jobs row, in a transaction with the event. */
static int add_job(struct ctl *c, const struct flatjob *f, struct db_job *j)
{
	struct stat st;
	*j = (struct db_job){ .image_id = f->img.id, .version = f->v.number };
	set_str(j->kind, sizeof j->kind, "flatten");
	set_str(j->image, sizeof j->image, f->img.name);
	set_str(j->path, sizeof j->path, f->v.base_path);
	j->total_bytes = stat(f->ch->base_path, &st) == 0 ? (uint64_t)st.st_size : 0;
	int ret = store_begin(c);
	if (ret)
		return ret;
	ret = db_job_add(c->db, j);
	if (ret == -EEXIST) {
		store_abort(c, CTL_ERR);
		return refuse_running(c, &f->img);
	}
	if (ret < 0)
		return store_abort(c, store_fail(ret, "adding a job"));
	return store_commit(c, NULL, "image", "image flatten %s: job %lld started (version %d, %d delta%s -> "
			    "version %d)", f->img.name, (long long)j->id, f->img.current_version, f->ch->ndeltas,
			    plural(f->ch->ndeltas), f->v.number);
}

/* --wait: follow the job to its end and report it. */
static int flatten_wait(struct ctl *c, const struct flatjob *f, int64_t id, const struct affected *a)
{
	struct db_job j;
	progress_catch_stop();
	int ret = jobs_wait(c, id, f->img.name, &progress_stop, &j);
	if (ret)
		return ret;
	out_obj("job");
	jobs_json(&j);
	out_end();
	if (strcmp(j.state, "done") == 0) {
		flatten_report(f, &j, a);
		return CTL_OK;
	}
	if (strcmp(j.state, "running") == 0) {
		out_str("result", "started");
		out_text("stopped waiting; job %lld goes on in the background (bootlinkctl jobs)\n", (long long)id);
		return CTL_OK;
	}
	return out_fail("image '%s': flatten job %lld failed: %s; version %d is still current", f->img.name,
			(long long)id, j.error, f->img.current_version);
}

/* Checks, the job row, the process; then report or follow it. */
static int flatten(struct ctl *c, struct flatjob *f, const char *note, bool force, bool wait)
{
	char again[128];
	struct affected a;
	struct db_job j;
	int ret;
	snprintf(again, sizeof again, "image flatten %s", f->img.name);
	f->v = (struct db_version){ .image_id = f->img.id };
	if ((ret = jobs_reap(c)) || (ret = refuse_running(c, &f->img)) || (ret = chain_present(&f->img, f->ch)) ||
	    (ret = check_affected(c, &f->img, NULL, force, again, &a)) || (ret = next_number(c, &f->img, &f->v.number)) ||
	    (ret = version_path(c, &f->img, f->v.number, "raw", f->v.base_path)))
		return ret;
	f->forced = a.n > 0;
	if (note[0])
		set_str(f->v.note, sizeof f->v.note, note);
	else
		snprintf(f->v.note, sizeof f->v.note, "flattened version %d", f->img.current_version);
	if ((ret = add_job(c, f, &j)) || (ret = jobs_spawn(c, &j, flatten_job, f)))
		return ret;
	if (wait)
		return flatten_wait(c, f, j.id, &a);
	out_str("result", "started");
	out_obj("job");
	jobs_json(&j);
	out_end();
	out_text("image '%s': flattening version %d (%d delta%s) into version %d in the background: job "
		 "%lld (pid %lld)\nfollow it with: bootlinkctl jobs\n", f->img.name, f->img.current_version,
		 f->ch->ndeltas, plural(f->ch->ndeltas), f->v.number, (long long)j.id, (long long)j.pid);
	affected_text(&a);
	return CTL_OK;
}

/* image flatten NAME [--note TEXT] [--force] [--wait] */
int cmd_image_flatten(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS], *note = "";
	bool force = false, wait = false;
	const struct args_opt opts[] = { { .name = "note", .value = &note }, { .name = "force", .flag = &force },
					 { .name = "wait", .flag = &wait }, { 0 } };
	struct flatjob f = { 0 };
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	if (strlen(note) >= DB_TEXT_MAX)
		return out_fail("note too long: at most %d bytes", DB_TEXT_MAX - 1);
	if ((ret = store_open(c, false)) || (ret = store_image(c, pos[0], &f.img)) ||
	    (ret = load_chain(c, &f.img, f.img.current_version, &f.ch)))
		return ret;
	out_str("image", f.img.name);
	out_int("previous", f.img.current_version);
	if (f.ch->ndeltas == 0) {
		out_str("result", "unchanged");
		out_text("image '%s': version %d is already one file (%s); nothing to flatten\n",
			 f.img.name, f.img.current_version, f.ch->base_path);
	} else
		ret = flatten(c, &f, note, force, wait);
	free(f.ch);
	return ret;
}
