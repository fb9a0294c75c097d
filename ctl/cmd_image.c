/* cmd_image.c — `bootlinkctl image ...`: add, list, rename, rm, verify, repair.
 *
 * Design: an image row records where its file is (absolute path) and how
 * to recognise it (size, first-MiB hash, inode, filesystem UUID; see
 * ident.h) plus the whole-file checksum. Clients link to the image id, so
 * rename and repair (re-pointing at a moved file) keep every link. Each
 * change runs in one transaction with its event (store_begin/commit).
 * Commands check cheap things (names, the file's head) before the whole-
 * file checksum, which may take minutes on a large image.
 */
#include "args.h"
#include "ctl.h"
#include "ident.h"
#include "out.h"
#include "progress.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* An image as a JSON object under key. */
static void image_json(const char *key, const struct db_image *img)
{
	out_obj(key);
	out_int("id", img->id);
	out_str("name", img->name);
	out_str("path", img->path);
	out_int("size", (int64_t)img->size);
	out_str("fs_uuid", img->fs_uuid);
	out_int("inode", (int64_t)img->inode);
	out_str("head_sum", img->head_sum);
	out_str("full_sum", img->full_sum);
	out_str("description", img->description);
	out_int("created", img->created);
	out_end();
}

/* Copy a string that is known to fit (checked by the caller or smaller). */
static void set_str(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%.*s", (int)(len - 1), src);
}

/* Whole-file checksum with a progress bar labelled with the image name. */
static int checksum(const char *name, const char *path, char sum[IDENT_SUM_LEN])
{
	struct progress p;
	progress_init(&p, name);
	int ret = ident_full_sum(path, sum, progress_cb, &p);
	progress_done(&p);
	return ret;
}

/* Error for a name name_valid() refuses. */
static int bad_name(const char *name)
{
	return out_fail("invalid image name '%s': use 1-63 letters, digits, '.', '_' or '-', "
			"not starting with '.' or '-'", name);
}

/* Error for a taken name, listing the images. */
static int name_taken(struct ctl *c, const char *name)
{
	char names[512];
	store_image_names(c, names, sizeof names);
	return out_fail("image '%s' already exists; images: %s; pick another name", name, names);
}

/* "s" unless n is 1. */
static const char *plural(long long n)
{
	return n == 1 ? "" : "s";
}

/* ---- image add ---- */

/* Check FILE is a readable, non-empty regular file; fill path and identity. */
static int image_file(const char *file, struct db_image *img)
{
	char real[PATH_MAX];
	struct ident id;
	if (!realpath(file, real))
		return out_fail("cannot use '%s': %s; give the path of a raw disk image file",
				file, strerror(errno));
	int ret = ident_of_file(real, &id);
	if (ret == -EISDIR || ret == -EINVAL)
		return out_fail("'%s' is %s; give the path of a raw disk image file", file,
				ret == -EISDIR ? "a directory" : "not a regular file");
	if (ret < 0)
		return out_fail("cannot read '%s': %s; check the file and its permissions", file,
				strerror(-ret));
	if (id.size == 0)
		return out_fail("'%s' is empty; an image file holds a whole disk", file);
	if (strlen(real) >= sizeof img->path)
		return out_fail("path too long (at most %zu bytes): %s", sizeof img->path - 1, real);
	set_str(img->path, sizeof img->path, real);
	ident_to_image(&id, img);
	return CTL_OK;
}

/* Insert img and its event; img->name is set. */
static int image_insert(struct ctl *c, struct db_image *img)
{
	char size[32];
	int ret = store_begin(c);
	if (ret)
		return ret;
	ret = db_image_add(c->db, img);
	if (ret == -EEXIST)
		return store_abort(c, name_taken(c, img->name));
	if (ret < 0)
		return store_abort(c, store_fail(ret, "adding image '%s'", img->name));
	return store_commit(c, NULL, "image", "image add %s (id %lld): %s, %s", img->name,
			    (long long)img->id, img->path, out_size(img->size, size));
}

/* image add NAME FILE [--description TEXT] */
int cmd_image_add(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS], *desc = "";
	const struct args_opt opts[] = { { .name = "description", .value = &desc }, { 0 } };
	struct db_image img = { 0 }, other;
	char size[32];
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	if (!name_valid(pos[0]))
		return bad_name(pos[0]);
	if (strlen(desc) >= sizeof img.description)
		return out_fail("description too long: at most %zu bytes", sizeof img.description - 1);
	set_str(img.name, sizeof img.name, pos[0]);
	set_str(img.description, sizeof img.description, desc);
	if ((ret = image_file(pos[1], &img)) || (ret = store_open(c, true)))
		return ret;
	if (db_image_get(c->db, img.name, &other) == 0)
		return name_taken(c, img.name);
	if ((ret = checksum(img.name, img.path, img.full_sum)) < 0)
		return out_fail("cannot read '%s': %s", img.path, strerror(-ret));
	if ((ret = image_insert(c, &img)))
		return ret;
	out_text("added image '%s' (id %lld): %s, %s, sha256 %s\n", img.name, (long long)img.id,
		 img.path, out_size(img.size, size), img.full_sum);
	image_json("image", &img);
	return CTL_OK;
}

/* ---- image list ---- */

static const struct out_col list_cols[] = {
	{ "name", "NAME", 0 },
	{ "id", "ID", COL_NUM },
	{ NULL, "SIZE", COL_NUM | COL_HUMAN },
	{ "size", NULL, COL_NUM | COL_JSON },
	{ "clients", "CLIENTS", COL_NUM },
	{ "status", "STATUS", 0 },
	{ "path", "PATH", 0 },
	{ "description", "DESCRIPTION", 0 },
	{ "fs_uuid", NULL, COL_JSON },
	{ "inode", NULL, COL_NUM | COL_JSON },
	{ "head_sum", NULL, COL_JSON },
	{ "full_sum", NULL, COL_JSON },
	{ "created", NULL, COL_NUM | COL_JSON },
};

struct list_ctx {
	struct ctl *c;
	struct out_table *t;
};

/* db_image_list callback: one table row per image. */
static int list_cb(const struct db_image *img, void *arg)
{
	struct list_ctx *l = arg;
	char id[24], size_h[32], size[24], clients[16], inode[24], created[24];
	int n = db_image_count_clients(l->c->db, img->id);
	if (n < 0)
		return n;
	snprintf(id, sizeof id, "%lld", (long long)img->id);
	snprintf(size, sizeof size, "%llu", (unsigned long long)img->size);
	snprintf(clients, sizeof clients, "%d", n);
	snprintf(inode, sizeof inode, "%llu", (unsigned long long)img->inode);
	snprintf(created, sizeof created, "%lld", (long long)img->created);
	const char *cells[] = { img->name, id, out_size(img->size, size_h), size, clients,
				store_image_status(img), img->path, img->description, img->fs_uuid,
				inode, img->head_sum, img->full_sum, created };
	return out_table_row(l->t, cells);
}

/* image list */
int cmd_image_list(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	int ret = args_parse(c, argc, argv, NULL, pos);
	if (ret || (ret = store_open(c, true)))
		return ret;
	struct list_ctx l = { c, out_table_new(list_cols, ARRAY_SIZE(list_cols)) };
	if (!l.t)
		return out_fail("out of memory");
	ret = db_image_list(c->db, list_cb, &l);
	if (ret < 0) {
		out_table_free(l.t);
		return store_fail(ret, "listing images");
	}
	out_table_print(l.t, "images", "no images; add one with: bootlinkctl image add NAME FILE");
	return CTL_OK;
}

/* ---- image rename ---- */

/* image rename OLD NEW */
int cmd_image_rename(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	struct db_image img;
	int ret = args_parse(c, argc, argv, NULL, pos);
	if (ret)
		return ret;
	if (!name_valid(pos[1]))
		return bad_name(pos[1]);
	if ((ret = store_open(c, false)) || (ret = store_image(c, pos[0], &img)))
		return ret;
	if (strcmp(img.name, pos[1]) != 0) {
		if ((ret = store_begin(c)))
			return ret;
		set_str(img.name, sizeof img.name, pos[1]);
		ret = db_image_update(c->db, &img);
		if (ret == -EEXIST)
			return store_abort(c, name_taken(c, pos[1]));
		if (ret < 0)
			return store_abort(c, store_fail(ret, "renaming image '%s'", pos[0]));
		if ((ret = store_commit(c, NULL, "image", "image rename %s -> %s (id %lld)", pos[0],
					pos[1], (long long)img.id)))
			return ret;
	}
	int n = db_image_count_clients(c->db, img.id);
	out_text("renamed image '%s' to '%s' (id %lld; %d client%s linked)\n", pos[0], img.name,
		 (long long)img.id, n < 0 ? 0 : n, plural(n));
	out_str("old_name", pos[0]);
	image_json("image", &img);
	return CTL_OK;
}

/* ---- image rm ---- */

struct linked {
	struct ctl *c;
	const char *image;
	bool unlink;             /* --force: record an event per client */
	int n;
	char text[768];          /* "PC001 (52:54:00:aa:bb:01), ..." */
	size_t used;
};

/* db_client_list_image callback: collect a linked client. */
static int linked_cb(const struct db_client *cl, void *arg)
{
	struct linked *l = arg;
	size_t room = sizeof l->text - l->used;
	int w = snprintf(l->text + l->used, room, "%s%s (%s)", l->n ? ", " : "", cl->name, cl->mac);
	l->used += w > 0 && (size_t)w < room ? (size_t)w : 0;
	l->n++;
	out_obj(NULL);
	out_str("name", cl->name);
	out_str("mac", cl->mac);
	out_end();
	if (!l->unlink)
		return 0;
	char text[DB_TEXT_MAX];
	snprintf(text, sizeof text, "unlinked from image %s (image removed)", l->image);
	return db_event_add(l->c->db, cl->mac, "link", text);
}

/* Remove img (and with force its links) inside the open transaction. */
static int image_remove(struct ctl *c, const struct db_image *img, bool force, struct linked *l)
{
	out_arr(force ? "unlinked" : "clients");
	int ret = db_client_list_image(c->db, img->id, linked_cb, l);
	out_end();
	if (ret < 0)
		return store_fail(ret, "listing the clients of image '%s'", img->name);
	if (l->n && !force)
		return out_fail("image '%s' is linked to %d client%s: %s; relink %s (bootlinkctl "
				"client link MAC IMAGE) or use --force to unlink and remove",
				img->name, l->n, plural(l->n), l->text, l->n == 1 ? "it" : "them");
	if (l->n && (ret = db_image_unlink_clients(c->db, img->id)) < 0)
		return store_fail(ret, "unlinking the clients of image '%s'", img->name);
	ret = db_image_rm(c->db, img->id);
	if (ret == -ENOTEMPTY)
		return out_fail("image '%s' gained a client meanwhile; run the command again", img->name);
	return ret < 0 ? store_fail(ret, "removing image '%s'", img->name) : CTL_OK;
}

/* image rm NAME [--force] */
int cmd_image_rm(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	bool force = false;
	const struct args_opt opts[] = { { .name = "force", .flag = &force }, { 0 } };
	struct db_image img;
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret || (ret = store_open(c, false)) || (ret = store_image(c, pos[0], &img)) ||
	    (ret = store_begin(c)))
		return ret;
	struct linked l = { .c = c, .image = img.name, .unlink = force };
	if ((ret = image_remove(c, &img, force, &l)))
		return store_abort(c, ret);
	if ((ret = store_commit(c, NULL, "image", "image rm %s (id %lld)%s%s", img.name,
				(long long)img.id, l.n ? "; unlinked " : "", l.n ? l.text : "")))
		return ret;
	out_text("removed image '%s' (id %lld); the file %s was left in place\n", img.name,
		 (long long)img.id, img.path);
	if (l.n)
		out_text("unlinked %d client%s: %s\n", l.n, plural(l.n), l.text);
	image_json("removed", &img);
	return CTL_OK;
}

/* ---- image verify ---- */

/* Store a new checksum (and identity) for img after verify. */
static int record_sum(struct ctl *c, struct db_image *img, const char *sum, const char *why)
{
	struct ident id;
	int ret = ident_of_file(img->path, &id);
	if (ret < 0)
		return out_fail("cannot read '%s': %s", img->path, strerror(-ret));
	ident_to_image(&id, img);
	set_str(img->full_sum, sizeof img->full_sum, sum);
	if ((ret = store_begin(c)))
		return ret;
	if ((ret = db_image_update(c->db, img)) < 0)
		return store_abort(c, store_fail(ret, "updating image '%s'", img->name));
	return store_commit(c, NULL, "image", "image verify %s: %s (sha256 %s)", img->name, why, sum);
}

/* image verify NAME [--update] */
int cmd_image_verify(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	bool update = false;
	const struct args_opt opts[] = { { .name = "update", .flag = &update }, { 0 } };
	struct db_image img;
	char sum[IDENT_SUM_LEN];
	struct stat st;
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret || (ret = store_open(c, false)) || (ret = store_image(c, pos[0], &img)))
		return ret;
	out_str("image", img.name);
	out_str("path", img.path);
	out_str("expected", img.full_sum);
	if (stat(img.path, &st) < 0 || !S_ISREG(st.st_mode)) {
		out_str("result", "missing");
		return out_fail("image '%s': file %s is missing; if it was moved, run: bootlinkctl "
				"image repair %s --search DIR", img.name, img.path, img.name);
	}
	if ((ret = checksum(img.name, img.path, sum)) < 0) {
		out_str("result", "unreadable");
		return out_fail("image '%s': cannot read %s: %s", img.name, img.path, strerror(-ret));
	}
	out_str("actual", sum);
	bool same = strcmp(sum, img.full_sum) == 0;
	if (!same && (update || !img.full_sum[0])) {
		const char *why = img.full_sum[0] ? "new checksum accepted" : "checksum recorded";
		if ((ret = record_sum(c, &img, sum, why)))
			return ret;
		out_str("result", "updated");
		out_text("image '%s': %s (sha256 %s)\n", img.name, why, sum);
		return CTL_OK;
	}
	if (!same) {
		out_str("result", "mismatch");
		return out_fail("image '%s': checksum mismatch: %s changed since it was added "
				"(sha256 was %.12s..., now %.12s...); restore it from a copy, or accept "
				"the change with: bootlinkctl image verify %s --update",
				img.name, img.path, img.full_sum, sum, img.name);
	}
	out_str("result", "ok");
	out_text("image '%s': ok (%s, sha256 %s)\n", img.name, img.path, sum);
	return CTL_OK;
}

/* ---- image repair ---- */

/* Why the stored path no longer holds the image, or NULL if it does. */
static const char *path_problem(const struct db_image *img, struct ident *id)
{
	int ret = ident_of_file(img->path, id);
	if (ret == -ENOENT || ret == -ENOTDIR)
		return "is missing";
	if (ret == -EISDIR || ret == -EINVAL)
		return "is not a regular file";
	if (ret < 0)
		return "cannot be read";
	if (id->size != img->size)
		return "has a different size";
	if (strcmp(id->head_sum, img->head_sum) != 0)
		return "has different contents";
	return NULL;
}

/* The path is fine: refresh inode/UUID if they changed, and say so. */
static int repair_in_place(struct ctl *c, struct db_image *img, const struct ident *id)
{
	int ret;
	if (id->inode != img->inode || strcmp(id->fs_uuid, img->fs_uuid) != 0) {
		ident_to_image(id, img);
		if ((ret = store_begin(c)))
			return ret;
		if ((ret = db_image_update(c->db, img)) < 0)
			return store_abort(c, store_fail(ret, "updating image '%s'", img->name));
		if ((ret = store_commit(c, NULL, "image", "image repair %s: identity of %s refreshed",
					img->name, img->path)))
			return ret;
	}
	out_str("result", "ok");
	out_str("path", img->path);
	out_text("image '%s': %s is fine; nothing to repair\n", img->name, img->path);
	return CTL_OK;
}

/* Up to three parent directories of path, nearest first, never "/". */
static size_t parent_dirs(const char *path, char dirs[3][DB_PATH_MAX])
{
	char buf[DB_PATH_MAX];
	size_t n = 0;
	set_str(buf, sizeof buf, path);
	while (n < 3) {
		char *slash = strrchr(buf, '/');
		if (!slash || slash == buf)
			break;
		*slash = 0;
		set_str(dirs[n++], DB_PATH_MAX, buf);
	}
	return n;
}

/* Append to buf[len] at *used, truncating. */
__attribute__((format(printf, 4, 5)))
static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
	va_list ap;
	if (*used >= len)
		return;
	va_start(ap, fmt);
	int w = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	*used = w < 0 ? len : MIN(len, *used + (size_t)w);
}

/* Nothing found: say where we looked and what to do. */
static int not_found(const struct db_image *img, const char *problem, const char *const *dirs)
{
	char where[1024] = "", mnt[PATH_MAX];
	size_t used = 0;
	for (size_t i = 0; dirs[i]; i++)
		append(where, sizeof where, &used, "%s%s", i ? ", " : "", dirs[i]);
	if (img->fs_uuid[0] && ident_uuid_mountpoint(img->fs_uuid, mnt, sizeof mnt) == 0)
		append(where, sizeof where, &used, "%s%s (filesystem %s)", used ? ", " : "", mnt,
		       img->fs_uuid);
	out_str("result", "not_found");
	return out_fail("image '%s': %s %s, and no file of %llu bytes with the same first MiB was "
			"found under %s (depth %d); find the file and run: bootlinkctl image repair %s "
			"--search DIR", img->name, img->path, problem, (unsigned long long)img->size,
			where[0] ? where : "no directory", IDENT_FIND_DEPTH, img->name);
}

struct pick {
	const struct db_image *img;
	char found[DB_PATH_MAX];       /* the file whose checksum matches */
	char sum[IDENT_SUM_LEN];
	char other[DB_PATH_MAX];       /* first candidate whose checksum differs */
	char other_sum[IDENT_SUM_LEN];
};

/* ident_find_each callback: stop at the first candidate with the recorded
 * checksum (or any, if none was recorded); remember the first other. */
static int pick_cb(const char *path, void *arg)
{
	struct pick *p = arg;
	char sum[IDENT_SUM_LEN];
	if (strlen(path) >= sizeof p->found || checksum(p->img->name, path, sum) < 0)
		return 0;
	if (!p->img->full_sum[0] || strcmp(sum, p->img->full_sum) == 0) {
		set_str(p->found, sizeof p->found, path);
		set_str(p->sum, sizeof p->sum, sum);
		return 1;
	}
	if (!p->other[0]) {
		set_str(p->other, sizeof p->other, path);
		set_str(p->other_sum, sizeof p->other_sum, sum);
	}
	return 0;
}

/* Point img at path (whose checksum is sum) and record the event. */
static int repoint(struct ctl *c, struct db_image *img, const char *path, const char *sum, bool same)
{
	char old[DB_PATH_MAX];
	struct ident id;
	int ret = ident_of_file(path, &id);
	if (ret < 0)
		return out_fail("image '%s': cannot read %s: %s", img->name, path, strerror(-ret));
	set_str(old, sizeof old, img->path);
	set_str(img->path, sizeof img->path, path);
	ident_to_image(&id, img);
	set_str(img->full_sum, sizeof img->full_sum, sum);
	if ((ret = store_begin(c)))
		return ret;
	if ((ret = db_image_update(c->db, img)) < 0)
		return store_abort(c, store_fail(ret, "updating image '%s'", img->name));
	if ((ret = store_commit(c, NULL, "image", "image repair %s: %s -> %s%s", img->name, old,
				path, same ? "" : " (checksum changed, forced)")))
		return ret;
	int n = db_image_count_clients(c->db, img->id);
	out_str("path", path);
	out_str("result", "repaired");
	out_text("image '%s': re-pointed %s -> %s (%s; %d client%s still linked)\n", img->name, old,
		 path, same ? "checksum verified" : "new checksum accepted", n < 0 ? 0 : n, plural(n));
	return CTL_OK;
}

/* Act on what the search found: the image, only a look-alike, or nothing. */
static int repair_found(struct ctl *c, struct db_image *img, const struct pick *p, bool force,
			const char *problem, const char *const *dirs)
{
	if (p->found[0])
		return repoint(c, img, p->found, p->sum, true);
	if (!p->other[0])
		return not_found(img, problem, dirs);
	if (force)
		return repoint(c, img, p->other, p->other_sum, false);
	out_str("path", p->other);
	out_str("result", "mismatch");
	return out_fail("image '%s': %s %s; %s has the same size and first MiB but a different "
			"checksum, so it was not taken. If it is the right file, accept it with: "
			"bootlinkctl image repair %s --search DIR --force", img->name, img->path,
			problem, p->other, img->name);
}

/* image repair NAME [--search DIR]... [--force] */
int cmd_image_repair(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS], *dirs[ARGS_MAX_LIST + 4];
	struct args_list search = { .n = 0 };
	bool force = false;
	const struct args_opt opts[] = { { .name = "search", .list = &search },
					 { .name = "force", .flag = &force }, { 0 } };
	struct db_image img;
	struct ident id;
	char parents[3][DB_PATH_MAX];
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret || (ret = store_open(c, false)) || (ret = store_image(c, pos[0], &img)))
		return ret;
	out_str("image", img.name);
	out_str("old_path", img.path);
	const char *problem = path_problem(&img, &id);
	if (!problem)
		return repair_in_place(c, &img, &id);
	size_t n = 0, np = parent_dirs(img.path, parents);
	for (size_t i = 0; i < search.n; i++)
		dirs[n++] = search.v[i];
	for (size_t i = 0; i < np; i++)
		dirs[n++] = parents[i];
	dirs[n] = NULL;
	struct pick *p = calloc(1, sizeof *p);
	if (!p)
		return out_fail("out of memory");
	p->img = &img;
	ret = ident_find_each(&img, dirs, pick_cb, p);
	if (ret < 0 && ret != -ENOENT)
		ret = out_fail("image '%s': searching failed: %s", img.name, strerror(-ret));
	else
		ret = repair_found(c, &img, p, force, problem, dirs);
	free(p);
	return ret;
}
