/* cmd_backup.c — `bootlinkctl backup DIR` and `bootlinkctl restore DIR`.
 *
 * Design: a backup is a directory
 *
 *   DIR/bootlink.db       the database, a consistent snapshot (sqlite backup API)
 *   DIR/files/...         every file of every image version: version 1's image
 *                         file and each later version's delta (.data + .map) or
 *                         flattened base (.raw), named <image>-<id>-v<N>.<ext>;
 *                         a Linux image's kernel and initrd, <image>-<id>.vmlinuz/.initrd
 *   DIR/manifest.json     what is in it: images, versions, their files (original
 *                         path, size, sha256) and the clients with their links
 *   DIR/SHA256SUMS        `sha256sum -c` format, every file above but the manifest
 *
 * Online and consistent: the snapshot is taken first and everything else is
 * read from it, never from the live database, so the files copied are
 * exactly the ones the snapshot names. Those never change: a version's files
 * are written under a temporary name, fsync'ed and renamed before the
 * transaction that adds the version commits (cmd_version.c), and nothing
 * rewrites or deletes them later (rollback only moves the current version;
 * `image rm` leaves files alone). Version 1 is the administrator's image
 * file, which bootlinkd only reads; its checksum is compared with the one
 * recorded at `image add`/`verify`, and a difference is reported. Inside
 * the snapshot every path is rewritten to the file's name in the backup
 * ("files/x"), so the backup's database refers to the backup's files.
 *
 * Restore runs onto a stopped appliance: it copies the snapshot beside
 * paths/db, checks its sha256, then copies each file it names into the
 * target directory (--to, default paths/versions) while checking the file's
 * sha256, re-points the rows at the copies (with a fresh identity: inode
 * and filesystem), and only then renames the database into place. A
 * checksum that does not match, a file the snapshot names but SHA256SUMS
 * does not list, or a name outside files/ stops it before paths/db is
 * touched, removing what it copied. Image ids, client links, modes and
 * overlay epochs come back as they were. Client overlays (persistent
 * clients' disks), boot sets and the config tree are not in a backup.
 */
#include "args.h"
#include "bfile.h"
#include "ctl.h"
#include "ident.h"
#include "log.h"
#include "out.h"
#include "progress.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BK_DB "bootlink.db"
#define BK_FILES "files"
#define BK_MANIFEST "manifest.json"
#define BK_SUMS "SHA256SUMS"
#define BK_FORMAT 1
#define BK_REL_MAX 128
#define BK_FILES_MAX 100000     /* lines of SHA256SUMS a restore accepts */

/* One file of an image version. */
struct bk_file {
	int64_t image_id;
	int number;                       /* version; 0 for the image's kernel and initrd */
	const char *role;                 /* "base", "data", "map", "kernel", "initrd" */
	char src[DB_PATH_MAX];            /* backup: original path; restore: path in the backup */
	char rel[BK_REL_MAX];             /* "files/<image>-<id>-v<N>.<ext>" */
	uint64_t size;
	char sum[IDENT_SUM_LEN];
};

struct bk_list {
	struct bk_file *f;
	size_t n, cap;
	uint64_t bytes;                   /* sizes added up, for the progress bar */
};

/* ---- interruption and progress ---- */

/* One bar over every file: bytes of the files before this one plus done. */
struct bk_progress {
	struct progress bar;
	uint64_t before, total;
};

/* ident_progress_fn for bfile_copy_sum(). */
static int bk_progress_cb(uint64_t done, uint64_t total, void *arg)
{
	struct bk_progress *p = arg;
	(void)total;
	progress_cb(p->before + done, p->total, &p->bar);
	return progress_stop;
}

/* ---- file lists ---- */

/* Append a file; NULL when out of memory. */
static struct bk_file *list_add(struct bk_list *l)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct bk_file *f = realloc(l->f, cap * sizeof *f);
		if (!f)
			return NULL;
		l->f = f, l->cap = cap;
	}
	struct bk_file *f = &l->f[l->n++];
	memset(f, 0, sizeof *f);
	return f;
}

/* Size of a regular file, or -errno. */
static int64_t file_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISREG(st.st_mode) ? (int64_t)st.st_size : -EINVAL;
}

/* ---- backup ---- */

struct backup {
	struct ctl *c;
	const char *dir;
	struct db *snap;
	struct bk_list files;
	const struct db_image *img;       /* the image being listed */
	int err;                          /* CTL_ERR after a message */
};

/* Record one file of image img's version number (role, original path). */
static int backup_add(struct backup *b, const struct db_image *img, int number, const char *role,
		      const char *path, const char *ext)
{
	struct bk_file *f = list_add(&b->files);
	if (!f)
		return out_fail("out of memory");
	f->image_id = img->id, f->number = number, f->role = role;
	snprintf(f->src, sizeof f->src, "%s", path);
	if (number)
		snprintf(f->rel, sizeof f->rel, BK_FILES "/%s-%lld-v%d.%s", img->name, (long long)img->id, number, ext);
	else
		snprintf(f->rel, sizeof f->rel, BK_FILES "/%s-%lld.%s", img->name, (long long)img->id, ext);
	int64_t size = file_size(path);
	if (size < 0 && !number)
		return out_fail("image '%s': its %s %s is %s; restore it, or set another with: bootlinkctl image "
				"set %s --%s FILE, then back up again", img->name, role, path,
				size == -EINVAL ? "not a regular file" : "missing or unreadable", img->name, role);
	if (size < 0)
		return out_fail("image '%s': version %d needs %s, which is %s; restore the file or repair the "
				"image (bootlinkctl image repair %s), then back up again", img->name, number,
				path, size == -EINVAL ? "not a regular file" : "missing or unreadable", img->name);
	f->size = (uint64_t)size;
	b->files.bytes += (uint64_t)size;
	return CTL_OK;
}

/* db_version_list callback: the files of one version after the first. */
static int backup_version_cb(const struct db_version *v, void *arg)
{
	struct backup *b = arg;
	if (v->base_path[0])
		return backup_add(b, b->img, v->number, "base", v->base_path, "raw");
	int ret = backup_add(b, b->img, v->number, "data", v->data_path, "data");
	return ret ? ret : backup_add(b, b->img, v->number, "map", v->map_path, "map");
}

/* db_image_list callback: version 1 (the image file), then the others. */
static int backup_image_cb(const struct db_image *img, void *arg)
{
	struct backup *b = arg;
	int ret = backup_add(b, img, 1, "base", img->path, "raw");
	if (!ret && img->kernel[0])
		ret = backup_add(b, img, 0, "kernel", img->kernel, "vmlinuz");
	if (!ret && img->initrd[0])
		ret = backup_add(b, img, 0, "initrd", img->initrd, "initrd");
	if (ret)
		return ret;
	b->img = img;
	ret = db_version_list(b->snap, img->id, backup_version_cb, b);
	if (ret < 0)
		return store_fail(ret, "listing the versions of image '%s'", img->name);
	return ret;
}

/* Copy every listed file into DIR/files with its checksum. */
static int backup_copy(struct backup *b)
{
	struct bk_progress p = { .total = b->files.bytes };
	char dst[PATH_MAX], err[1024];
	progress_init(&p.bar, "backup");
	for (size_t i = 0; i < b->files.n; i++) {
		struct bk_file *f = &b->files.f[i];
		snprintf(dst, sizeof dst, "%s/%s", b->dir, f->rel);
		uint64_t size;
		int ret = bfile_copy_sum(f->src, dst, &size, f->sum, bk_progress_cb, &p, err, sizeof err);
		if (ret == 0 && size != f->size)
			ret = -EIO, snprintf(err, sizeof err, "%.900s changed size while it was copied (%llu -> %llu "
					     "bytes): something is writing to it", f->src,
					     (unsigned long long)f->size, (unsigned long long)size);
		if (ret < 0) {
			progress_done(&p.bar);
			return out_fail("backup: %s", err);
		}
		p.before += size;
	}
	progress_done(&p.bar);
	return CTL_OK;
}

/* The backup name of original path (image id, version): a file listed. */
static const struct bk_file *backup_find(const struct backup *b, int64_t image_id, int number,
					 const char *role)
{
	for (size_t i = 0; i < b->files.n; i++)
		if (b->files.f[i].image_id == image_id && b->files.f[i].number == number &&
		    strcmp(b->files.f[i].role, role) == 0)
			return &b->files.f[i];
	return NULL;
}

/* Warn when version 1's file no longer has the checksum recorded for it. */
static int backup_check_image_cb(const struct db_image *img, void *arg)
{
	struct backup *b = arg;
	const struct bk_file *f = backup_find(b, img->id, 1, "base");
	if (f && img->full_sum[0] && strcmp(img->full_sum, f->sum) != 0)
		fprintf(stderr, "bootlinkctl: warning: image '%s': %s no longer has the checksum recorded "
			"when it was added (its content changed); backed up as it is now. Check it with: "
			"bootlinkctl image verify %s\n", img->name, img->path, img->name);
	return 0;
}

/* Rewrite every path in the snapshot to its name inside the backup. */
static int backup_relocate(struct backup *b)
{
	int ret = db_begin(b->snap);
	for (size_t i = 0; ret == 0 && i < b->files.n; i++) {
		const struct bk_file *f = &b->files.f[i];
		if (f->number == 0) {
			struct db_image img;
			if ((ret = db_image_get_id(b->snap, f->image_id, &img)) == 0) {
				char *dst = strcmp(f->role, "kernel") == 0 ? img.kernel : img.initrd;
				snprintf(dst, DB_PATH_MAX, "%s", f->rel);
				ret = db_image_set_boot(b->snap, &img);
			}
		} else if (f->number == 1) {
			struct db_image img;
			if ((ret = db_image_get_id(b->snap, f->image_id, &img)) == 0) {
				snprintf(img.path, sizeof img.path, "%s", f->rel);
				ret = db_image_update(b->snap, &img);
			}
		} else if (strcmp(f->role, "map") != 0) {
			struct db_version v;
			if ((ret = db_version_get(b->snap, f->image_id, f->number, &v)) < 0)
				break;
			const struct bk_file *m = backup_find(b, f->image_id, f->number, "map");
			snprintf(v.base_path, sizeof v.base_path, "%s", v.base_path[0] ? f->rel : "");
			snprintf(v.data_path, sizeof v.data_path, "%s", v.base_path[0] ? "" : f->rel);
			snprintf(v.map_path, sizeof v.map_path, "%s", m && !v.base_path[0] ? m->rel : "");
			ret = db_version_set_paths(b->snap, &v);
		}
	}
	ret = ret < 0 ? ret : db_commit(b->snap);
	if (ret < 0) {
		db_rollback(b->snap);
		return store_fail(ret, "rewriting the paths in the backup's database");
	}
	return CTL_OK;
}

struct manifest {
	FILE *m;
	const struct backup *b;
	bool first;
};

/* Manifest: one client and its link. */
static int manifest_client_cb(const struct db_client *cl, void *arg)
{
	struct manifest *mf = arg;
	FILE *m = mf->m;
	fprintf(m, "%s\n    { \"mac\": ", mf->first ? "" : ",");
	mf->first = false;
	out_json_string(m, cl->mac);
	fputs(", \"name\": ", m);
	out_json_string(m, cl->name);
	fputs(", \"image\": ", m);
	out_json_string(m, cl->image_name);
	fputs(", \"mode\": ", m);
	out_json_string(m, db_mode_name(cl->mode));
	fputs(" }", m);
	return 0;
}

/* Manifest: one image with its versions and their files. */
static int manifest_image_cb(const struct db_image *img, void *arg)
{
	struct manifest *mf = arg;
	FILE *m = mf->m;
	fprintf(m, "%s\n    { \"id\": %lld, \"name\": ", mf->first ? "" : ",", (long long)img->id);
	mf->first = false;
	out_json_string(m, img->name);
	fprintf(m, ", \"size\": %llu, \"current_version\": %d, \"description\": ",
		(unsigned long long)img->size, img->current_version);
	out_json_string(m, img->description);
	fputs(",\n      \"files\": [", m);
	bool first = true;
	for (size_t i = 0; i < mf->b->files.n; i++) {
		const struct bk_file *f = &mf->b->files.f[i];
		if (f->image_id != img->id)
			continue;
		if (f->number)
			fprintf(m, "%s\n        { \"version\": %d, \"role\": \"%s\", \"file\": ", first ? "" : ",",
				f->number, f->role);
		else
			fprintf(m, "%s\n        { \"role\": \"%s\", \"file\": ", first ? "" : ",", f->role);
		first = false;
		out_json_string(m, f->rel);
		fputs(", \"original\": ", m);
		out_json_string(m, f->src);
		fprintf(m, ", \"size\": %llu, \"sha256\": \"%s\" }", (unsigned long long)f->size, f->sum);
	}
	fputs(" ] }", m);
	return 0;
}

/* The manifest's images and clients (read from the snapshot), as JSON
 * members, into a malloc'ed *body. */
static int manifest_body(struct backup *b, char **body)
{
	size_t len;
	FILE *m = open_memstream(body, &len);
	if (!m)
		return out_fail("out of memory");
	fprintf(m, "  \"schema_version\": %d,\n  \"images\": [", db_schema_version(b->snap));
	struct manifest mf = { .m = m, .b = b, .first = true };
	int ret = db_image_list(b->snap, manifest_image_cb, &mf);
	fputs(" ],\n  \"clients\": [", m);
	mf.first = true;
	if (ret >= 0)
		ret = db_client_list(b->snap, manifest_client_cb, &mf);
	fputs(" ]\n", m);
	if (fclose(m) != 0 || ret < 0) {
		free(*body);
		*body = NULL;
		return ret < 0 ? store_fail(ret, "reading the backup's database") : out_fail("out of memory");
	}
	return CTL_OK;
}

/* Write manifest.json, then SHA256SUMS (last: a backup without it was
 * never finished). */
static int backup_manifest(struct backup *b, const char *body, const char *db_sum, uint64_t db_size)
{
	char *text = NULL, path[PATH_MAX], err[1024];
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	if (!m)
		return out_fail("out of memory");
	fprintf(m, "{\n  \"format\": \"bootlink-backup\",\n  \"format_version\": %d,\n"
		"  \"bootlink_version\": \"%s\",\n  \"created\": %lld,\n"
		"  \"database\": { \"file\": \"" BK_DB "\", \"size\": %llu, \"sha256\": \"%s\" },\n%s}\n",
		BK_FORMAT, BL_VERSION, (long long)time(NULL), (unsigned long long)db_size, db_sum, body);
	fclose(m);
	snprintf(path, sizeof path, "%s/" BK_MANIFEST, b->dir);
	int ret = bfile_write_text(path, text, len, err, sizeof err);
	free(text);
	if (ret < 0)
		return out_fail("backup: %s", err);
	m = open_memstream(&text, &len);
	if (!m)
		return out_fail("out of memory");
	fprintf(m, "%s  " BK_DB "\n", db_sum);
	for (size_t i = 0; i < b->files.n; i++)
		fprintf(m, "%s  %s\n", b->files.f[i].sum, b->files.f[i].rel);
	fclose(m);
	snprintf(path, sizeof path, "%s/" BK_SUMS, b->dir);
	ret = bfile_write_text(path, text, len, err, sizeof err);
	free(text);
	return ret < 0 ? out_fail("backup: %s", err) : CTL_OK;
}

/* An empty (or new) directory for the backup, with files/ in it. */
static int backup_dir(const char *dir)
{
	char sub[PATH_MAX];
	int ret = mkdir_p(dir, 0750);
	if (ret < 0)
		return out_fail("backup: cannot create %s: %s", dir, strerror(-ret));
	snprintf(sub, sizeof sub, "%s/" BK_FILES, dir);
	if (mkdir(sub, 0750) < 0)
		return out_fail(errno == EEXIST ? "backup: %s already holds a backup (%s exists): name a new "
				"or empty directory" : "backup: cannot create %s: %s", dir,
				errno == EEXIST ? sub : strerror(errno));
	snprintf(sub, sizeof sub, "%s/" BK_DB, dir);
	if (access(sub, F_OK) == 0)
		return out_fail("backup: %s already holds a backup (%s exists): name a new or empty directory",
				dir, sub);
	return CTL_OK;
}

/* Every step of a backup after the snapshot, while it is open: list the
 * files, copy them, check version 1's sums, rewrite the snapshot's paths,
 * build the manifest's body. */
static int backup_run(struct backup *b, char **body)
{
	int ret = db_image_list(b->snap, backup_image_cb, b);
	if (ret < 0)
		return store_fail(ret, "reading the backup's database");
	if (ret || (ret = backup_copy(b)))
		return ret;
	db_image_list(b->snap, backup_check_image_cb, b);
	if ((ret = backup_relocate(b)))
		return ret;
	return manifest_body(b, body);
}

/* backup DIR */
int cmd_backup(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	char snap_path[PATH_MAX], err[1024], db_sum[IDENT_SUM_LEN], *body = NULL;
	int ret = args_parse(c, argc, argv, NULL, pos);
	if (ret || (ret = store_open(c, false)) || (ret = backup_dir(pos[0])))
		return ret;
	struct backup b = { .c = c, .dir = pos[0] };
	progress_catch_stop();
	snprintf(snap_path, sizeof snap_path, "%s/" BK_DB, b.dir);
	if ((ret = db_backup(c->db, snap_path)) < 0)
		return store_fail(ret, "backup: copying the database to %s", snap_path);
	if (db_open(snap_path, false, &b.snap, err, sizeof err) < 0)
		return out_fail("backup: %s", err);
	ret = backup_run(&b, &body);
	db_close(b.snap);   /* checkpoints the snapshot's WAL into the file */
	uint64_t db_size = 0;
	if (ret == CTL_OK && bfile_copy_sum(snap_path, NULL, &db_size, db_sum, NULL, NULL, err, sizeof err) < 0)
		ret = out_fail("backup: %s", err);
	if (ret == CTL_OK)
		ret = backup_manifest(&b, body, db_sum, db_size);
	if (ret == CTL_OK) {
		char size[32];
		int nimages = 0;
		for (size_t i = 0; i < b.files.n; i++)
			nimages += b.files.f[i].number == 1;
		out_str("dir", b.dir);
		out_int("images", nimages);
		out_int("files", (int64_t)b.files.n);
		out_int("bytes", (int64_t)b.files.bytes);
		out_str("database_sha256", db_sum);
		out_text("backed up %d image%s (%zu file%s, %s) and the database to %s\n", nimages,
			 nimages == 1 ? "" : "s", b.files.n, b.files.n == 1 ? "" : "s",
			 out_size(b.files.bytes, size), b.dir);
	} else
		fprintf(stderr, "bootlinkctl: the backup in %s is incomplete: delete it\n", b.dir);
	free(body);
	free(b.files.f);
	return ret;
}

/* ---- restore ---- */

/* A relative name a backup may use: "bootlink.db" or "files/NAME" with
 * NAME free of slashes and not starting with a dot. */
static bool rel_valid(const char *rel)
{
	if (strcmp(rel, BK_DB) == 0)
		return true;
	const char *n = rel + strlen(BK_FILES "/");
	return strncmp(rel, BK_FILES "/", strlen(BK_FILES "/")) == 0 && *n && *n != '.' &&
	       !strchr(n, '/') && strlen(rel) < BK_REL_MAX;
}

/* Parse DIR/SHA256SUMS into sums (rel + sum per entry). */
static int restore_sums(const char *dir, struct bk_list *sums)
{
	char path[PATH_MAX], line[512];
	snprintf(path, sizeof path, "%s/" BK_SUMS, dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return out_fail("restore: %s: %s: %s", path, strerror(errno),
				errno == ENOENT ? "not a finished bootlink backup (bootlinkctl backup writes "
				"it last)" : "check the permissions");
	int ret = CTL_OK, lineno = 0;
	while (ret == CTL_OK && fgets(line, sizeof line, f)) {
		lineno++;
		str_rstrip(line);
		size_t n = strspn(line, "0123456789abcdef");
		struct bk_file *e = NULL;
		if (n != 64 || line[64] != ' ' || line[65] != ' ' || !rel_valid(line + 66))
			ret = out_fail("restore: %s line %d is damaged ('%.80s'): this backup cannot be "
				       "trusted", path, lineno, line);
		else if (sums->n >= BK_FILES_MAX || !(e = list_add(sums)))
			ret = out_fail("restore: %s: too many lines", path);
		else {
			memcpy(e->sum, line, 64);
			e->sum[64] = 0;
			snprintf(e->rel, sizeof e->rel, "%.*s", (int)sizeof e->rel - 1, line + 66);
		}
	}
	fclose(f);
	return ret;
}

/* The checksum SHA256SUMS lists for rel, or NULL. */
static const char *sum_of(const struct bk_list *sums, const char *rel)
{
	for (size_t i = 0; i < sums->n; i++)
		if (strcmp(sums->f[i].rel, rel) == 0)
			return sums->f[i].sum;
	return NULL;
}

/* The manifest is there and says it is a bootlink backup of a known format. */
static int restore_manifest_ok(const char *dir)
{
	char path[PATH_MAX], text[4096];
	snprintf(path, sizeof path, "%s/" BK_MANIFEST, dir);
	ssize_t n = read_small_file(path, text, sizeof text);
	if (n < 0)
		return out_fail("restore: %s: %s: is %s a bootlink backup?", path, strerror((int)-n), dir);
	if (!strstr(text, "\"format\": \"bootlink-backup\""))
		return out_fail("restore: %s is not a bootlink backup manifest", path);
	const char *v = strstr(text, "\"format_version\": ");
	if (!v || atoi(v + strlen("\"format_version\": ")) != BK_FORMAT)
		return out_fail("restore: %s has a backup format this bootlinkctl does not know (it reads "
				"format %d): restore with the bootlink version that wrote it", path, BK_FORMAT);
	return CTL_OK;
}

struct restore {
	struct ctl *c;
	const char *dir, *to;
	struct db *db;                    /* the restored database, at its temporary name */
	struct bk_list sums, done;        /* SHA256SUMS; files copied (rel, dst in src) */
	struct bk_progress p;
	bool force;
	int images, versions;             /* restored so far */
};

/* Total bytes the files of the backup hold (for the progress bar). */
static uint64_t restore_total(const struct restore *r)
{
	char path[PATH_MAX];
	uint64_t total = 0;
	for (size_t i = 0; i < r->sums.n; i++) {
		snprintf(path, sizeof path, "%s/%s", r->dir, r->sums.f[i].rel);
		int64_t s = file_size(path);
		total += s > 0 ? (uint64_t)s : 0;
	}
	return total;
}

/* Copy backup file rel into dst, checking its sum; remember dst for cleanup. */
static int restore_file(struct restore *r, const char *rel, const char *dst)
{
	char src[PATH_MAX], err[1024], sum[IDENT_SUM_LEN];
	const char *want = rel_valid(rel) ? sum_of(&r->sums, rel) : NULL;
	if (!want)
		return out_fail("restore: the backup's database names '%.200s', which %s: this backup is "
				"damaged; nothing was restored", rel, rel_valid(rel) ? "SHA256SUMS does not list"
				: "is not a file of the backup");
	snprintf(src, sizeof src, "%s/%s", r->dir, rel);
	if (r->force && strcmp(rel, BK_DB) != 0)
		unlink(dst);
	uint64_t size;
	int ret = bfile_copy_sum(src, dst, &size, sum, bk_progress_cb, &r->p, err, sizeof err);
	struct bk_file *d = ret == -EEXIST ? NULL : list_add(&r->done);
	if (d)
		snprintf(d->src, sizeof d->src, "%s", dst);
	if (ret == 0)
		store_give(dst);
	if (ret == -EEXIST)
		return out_fail("restore: %s already exists: restore into another directory with --to DIR, "
				"or overwrite with --force", dst);
	if (ret < 0)
		return out_fail("restore: %s; nothing was restored", err);
	if (strcmp(sum, want) != 0)
		return out_fail("restore: %s is damaged: its sha256 is %.12s..., the backup recorded "
				"%.12s...; nothing was restored (use another backup)", src, sum, want);
	r->p.before += size;
	return CTL_OK;
}

/* Copy one path the restored database names (a backup name) into the
 * target directory; path gets the new absolute path. */
static int restore_path(struct restore *r, char *path, size_t len)
{
	char dst[PATH_MAX];
	if (!path[0])
		return CTL_OK;
	const char *name = strrchr(path, '/');
	if (snprintf(dst, sizeof dst, "%s/%s", r->to, name ? name + 1 : path) >= (int)sizeof dst ||
	    strlen(dst) >= len)
		return out_fail("restore: path too long in %s", r->to);
	int ret = restore_file(r, path, dst);
	if (ret == CTL_OK)
		snprintf(path, len, "%s", dst);
	return ret;
}

/* db_version_list callback: restore one version's files. */
static int restore_version_cb(const struct db_version *v, void *arg)
{
	struct restore *r = arg;
	struct db_version nv = *v;
	r->versions++;
	int ret = restore_path(r, nv.data_path, sizeof nv.data_path);
	if (!ret)
		ret = restore_path(r, nv.map_path, sizeof nv.map_path);
	if (!ret)
		ret = restore_path(r, nv.base_path, sizeof nv.base_path);
	if (!ret && (ret = db_version_set_paths(r->db, &nv)) < 0)
		ret = store_fail(ret, "restore: updating version %d", v->number);
	return ret;
}

/* db_image_list callback: restore the image file, then its versions. */
static int restore_image_cb(const struct db_image *img, void *arg)
{
	struct restore *r = arg;
	struct db_image ni = *img;
	struct ident id;
	r->images++;
	int ret = restore_path(r, ni.path, sizeof ni.path);
	if (ret)
		return ret;
	if ((ret = ident_of_file(ni.path, &id)) < 0)
		return out_fail("restore: cannot identify %s: %s", ni.path, strerror(-ret));
	ident_to_image(&id, &ni);
	if ((ret = db_image_update(r->db, &ni)) < 0)
		return store_fail(ret, "restore: updating image '%s'", img->name);
	if (ni.kernel[0] || ni.initrd[0]) {
		if ((ret = restore_path(r, ni.kernel, sizeof ni.kernel)) ||
		    (ret = restore_path(r, ni.initrd, sizeof ni.initrd)))
			return ret;
		if ((ret = db_image_set_boot(r->db, &ni)) < 0)
			return store_fail(ret, "restore: updating the boot files of image '%s'", img->name);
	}
	ret = db_version_list(r->db, img->id, restore_version_cb, r);
	return ret < 0 ? store_fail(ret, "restore: listing versions of image '%s'", img->name) : ret;
}

/* Refuse while bootlinkd runs on this config tree (it holds the database). */
static int restore_daemon_stopped(const struct ctl *c)
{
	char ready[PATH_MAX], pid_s[32];
	snprintf(ready, sizeof ready, "%s/ready", c->conf.run_dir);
	if (read_small_file(ready, pid_s, sizeof pid_s) <= 0)
		return CTL_OK;
	long pid = strtol(pid_s, NULL, 10);
	if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
		return out_fail("restore: bootlinkd is running (pid %ld): stop it first (systemctl stop "
				"bootlinkd), then restore", pid);
	return CTL_OK;
}

/* Refuse a database with images or clients unless --force. */
static int restore_db_empty(struct restore *r)
{
	const char *path = r->c->conf.db_path;
	struct db *old;
	char err[1024];
	if (access(path, F_OK) < 0)
		return CTL_OK;
	if (db_open(path, false, &old, err, sizeof err) < 0) {
		if (r->force)
			return CTL_OK;
		return out_fail("restore: %s exists and cannot be opened (%s): move it away, or overwrite "
				"it with --force", path, err);
	}
	int n = db_count_rows(old);
	db_close(old);
	if (n != 0 && !r->force)
		return out_fail("restore: %s already holds %d image%s and client%s: restore onto a fresh "
				"appliance, or overwrite it with --force", path, n, n == 1 ? "" : "s",
				n == 1 ? "" : "s");
	return CTL_OK;
}

/* Undo: remove every file copied so far. */
static void restore_cleanup(struct restore *r)
{
	for (size_t i = 0; i < r->done.n; i++)
		unlink(r->done.f[i].src);
}

/* Put the restored database in place of paths/db (its old WAL removed first). */
static int restore_install(struct restore *r, const char *tmp)
{
	const char *path = r->c->conf.db_path;
	char side[PATH_MAX];
	static const char *const ext[] = { "-wal", "-shm", "-journal" };
	for (size_t i = 0; i < ARRAY_SIZE(ext); i++) {
		snprintf(side, sizeof side, "%s%s", path, ext[i]);
		if (unlink(side) < 0 && errno != ENOENT)
			return out_fail("restore: cannot remove %s: %s", side, strerror(errno));
	}
	if (rename(tmp, path) < 0)
		return out_fail("restore: cannot rename %s to %s: %s", tmp, path, strerror(errno));
	bfile_sync_dir(path);
	return CTL_OK;
}

/* restore DIR [--to DIR] [--force] */
int cmd_restore(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS], *to = NULL;
	bool force = false;
	const struct args_opt opts[] = { { .name = "to", .value = &to }, { .name = "force", .flag = &force },
					 { 0 } };
	char err[1024], tmp[PATH_MAX], todir[PATH_MAX];
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	ret = conf_load(c->conf_dir, &c->conf, err, sizeof err);
	if (ret < 0)
		return out_fail("%s", err);
	store_set_conf(&c->conf);
	struct restore r = { .c = c, .dir = pos[0], .force = force };
	if (to && to[0] != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof cwd))
			return out_fail("restore: cannot find the current directory: %s", strerror(errno));
		if (snprintf(todir, sizeof todir, "%.*s/%s", (int)(sizeof todir / 2), cwd, to) >=
		    (int)sizeof todir)
			return out_fail("restore: --to %s: path too long", to);
	} else
		snprintf(todir, sizeof todir, "%s", to ? to : c->conf.versions_dir);
	r.to = todir;
	if ((ret = restore_manifest_ok(r.dir)) || (ret = restore_sums(r.dir, &r.sums)) ||
	    (ret = restore_daemon_stopped(c)) || (ret = restore_db_empty(&r)))
		goto out;
	if ((ret = mkdir_p(r.to, 0750)) < 0) {
		ret = out_fail("restore: cannot create %s: %s", r.to, strerror(-ret));
		goto out;
	}
	char dbdir[PATH_MAX];
	snprintf(dbdir, sizeof dbdir, "%s", c->conf.db_path);
	char *slash = strrchr(dbdir, '/');
	if (slash && slash != dbdir)
		*slash = 0, mkdir_p(dbdir, 0750);
	progress_catch_stop();
	r.p.total = restore_total(&r);
	progress_init(&r.p.bar, "restore");
	snprintf(tmp, sizeof tmp, "%s.restore", c->conf.db_path);
	unlink(tmp);
	if ((ret = restore_file(&r, BK_DB, tmp)))
		goto fail;
	if (db_open(tmp, false, &r.db, err, sizeof err) < 0) {
		ret = out_fail("restore: %s", err);
		goto fail;
	}
	if ((ret = db_begin(r.db)) < 0) {
		ret = store_fail(ret, "restore: %s", tmp);
		goto fail;
	}
	if ((ret = db_image_list(r.db, restore_image_cb, &r)) != 0) {
		ret = ret < 0 ? store_fail(ret, "restore: reading the backup's database") : ret;
		goto fail;
	}
	char text[DB_TEXT_MAX];
	snprintf(text, sizeof text, "restored from %.200s", r.dir);
	if ((ret = db_event_add(r.db, NULL, "restore", text)) < 0 || (ret = db_commit(r.db)) < 0) {
		ret = store_fail(ret, "restore: %s", tmp);
		goto fail;
	}
	struct db *rdb = r.db;
	r.db = NULL;
	int clients = db_count_rows(rdb) - r.images;
	db_close(rdb);
	progress_done(&r.p.bar);
	if ((ret = restore_install(&r, tmp)))
		goto fail;
	out_str("dir", r.dir);
	out_str("to", r.to);
	out_str("db", c->conf.db_path);
	out_int("images", r.images);
	out_int("versions", r.images + r.versions);
	out_int("clients", clients);
	out_int("files", (int64_t)r.done.n);
	out_int("bytes", (int64_t)r.p.before);
	out_text("restored %d image%s (%d version%s) and %d client%s from %s: files in %s, database %s\n",
		 r.images, r.images == 1 ? "" : "s", r.images + r.versions,
		 r.images + r.versions == 1 ? "" : "s", clients, clients == 1 ? "" : "s", r.dir, r.to,
		 c->conf.db_path);
	goto out;
fail:
	progress_done(&r.p.bar);
	db_close(r.db);
	restore_cleanup(&r);
	unlink(tmp);
out:
	free(r.sums.f);
	free(r.done.f);
	return ret;
}
