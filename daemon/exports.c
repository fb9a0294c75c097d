/* exports.c — see exports.h.
 *
 * The published table is an immutable, reference-counted array sorted by
 * name. Readers take the mutex only long enough to grab a reference; the
 * lookup itself (binary search) runs outside it. Handshakes are the only
 * readers, so the lock is never on the data path.
 */
#include "exports.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "image.h"
#include "log.h"
#include "util.h"

struct table {
	int refs;
	size_t n, cap;
	struct export *v;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
void (*exports_opened_hook)(struct image *img);
static struct table *current;

static struct table *table_get(void)
{
	pthread_mutex_lock(&lock);
	struct table *t = current;
	if (t)
		t->refs++;
	pthread_mutex_unlock(&lock);
	return t;
}

static void table_put(struct table *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&lock);
	int left = --t->refs;
	pthread_mutex_unlock(&lock);
	if (left)
		return;
	for (size_t i = 0; i < t->n; i++)
		image_put(t->v[i].img);
	free(t->v);
	free(t);
}

static int cmp_export(const void *a, const void *b)
{
	return strcmp(((const struct export *)a)->name, ((const struct export *)b)->name);
}

static struct export *table_push(struct table *t)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		struct export *nv = realloc(t->v, cap * sizeof *nv);
		if (!nv)
			return NULL;
		t->v = nv;
		t->cap = cap;
	}
	struct export *e = &t->v[t->n++];
	memset(e, 0, sizeof *e);
	return e;
}

/* Find the open image for di's current version in the old table to reuse it. */
static struct image *reuse_image(struct table *old, const struct db_image *di)
{
	if (!old)
		return NULL;
	int64_t key = di->id << 24 | ((di->current_version > 0 ? di->current_version : 1) & 0xffffff);
	for (size_t i = 0; i < old->n; i++) {
		struct image *img = old->v[i].img;
		if (img && img->id == key && (img->version > 1 || strcmp(img->path, di->path) == 0)) {
			image_get(img);
			return img;
		}
	}
	return NULL;
}

struct build {
	struct table *t, *old;
	struct db *db;
	int err;
};

/* Cache key of a version: unique per (image, version number). */
static int64_t version_key(int64_t image_id, int number)
{
	return image_id << 24 | (number & 0xffffff);
}

/* Open the current version of di (its base file and committed deltas). */
static int open_current(struct db *db, const struct db_image *di, struct export *e)
{
	struct db_chain *ch = malloc(sizeof *ch);
	if (!ch) {
		snprintf(e->error, sizeof e->error, "image '%s': out of memory", di->name);
		return -ENOMEM;
	}
	int number = di->current_version > 0 ? di->current_version : 1;
	int r = db_version_chain(db, di, number, ch);
	if (r < 0) {
		snprintf(e->error, sizeof e->error, "image '%s': version %d cannot be resolved (%s); "
			 "roll back with: bootlinkctl image rollback %s VERSION", di->name, number, strerror(-r), di->name);
		free(ch);
		return r;
	}
	struct image_layer_spec sp[DB_CHAIN_MAX];
	for (int i = 0; i < ch->ndeltas; i++)
		sp[i] = (struct image_layer_spec){ ch->deltas[i].data_path, ch->deltas[i].map_path,
						   ch->deltas[i].block_size };
	struct db_image base = *di;
	snprintf(base.path, sizeof base.path, "%s", ch->base_path);
	if (strcmp(base.path, di->path) != 0)
		base.size = 0; /* a flattened base: its own size */
	r = image_open(&base, version_key(di->id, number), number, sp, ch->ndeltas, &e->img, e->error,
		       sizeof e->error);
	free(ch);
	return r;
}

/* Why a boot file cannot be served ("" if it can). */
static void check_boot_file(const char *image, const char *what, const char *path, char *err, size_t len)
{
	struct stat st;
	if (stat(path, &st) < 0)
		snprintf(err, len, "image %s: its %s %.400s cannot be read: %s", image, what, path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		snprintf(err, len, "image %s: its %s %.400s is not a regular file", image, what, path);
	else if (access(path, R_OK) < 0)
		snprintf(err, len, "image %s: its %s %.400s cannot be read: %s", image, what, path, strerror(errno));
}

/* The boot settings of image di into its entry; a Linux image's boot files
 * are checked here (main thread), so a script never points at a missing one. */
static void add_boot(const struct db_image *di, struct export *e)
{
	snprintf(e->image_name, sizeof e->image_name, "%s", di->name);
	e->boot = di->boot;
	snprintf(e->cmdline, sizeof e->cmdline, "%s", di->cmdline);
	if (di->boot != DB_BOOT_LINUX)
		return;
	snprintf(e->kernel, sizeof e->kernel, "%s", di->kernel);
	snprintf(e->initrd, sizeof e->initrd, "%s", di->initrd);
	if (!di->kernel[0])
		snprintf(e->boot_error, sizeof e->boot_error, "image %s boots Linux but has no kernel; set one with: "
			 "bootlinkctl image set %s --kernel PATH --initrd PATH", di->name, di->name);
	else
		check_boot_file(di->name, "kernel", di->kernel, e->boot_error, sizeof e->boot_error);
	if (!e->boot_error[0] && di->initrd[0])
		check_boot_file(di->name, "initrd", di->initrd, e->boot_error, sizeof e->boot_error);
	if (e->boot_error[0])
		log_err("%s; its PCs get an error screen until it is fixed", e->boot_error);
}

static int add_image(const struct db_image *di, void *arg)
{
	struct build *b = arg;
	struct export *e = table_push(b->t);
	if (!e)
		return b->err = -ENOMEM;
	e->kind = EXPORT_IMAGE;
	snprintf(e->name, sizeof e->name, "%s", di->name);
	snprintf(e->description, sizeof e->description, "%s", di->description);
	e->img = reuse_image(b->old, di);
	if (!e->img) {
		if (open_current(b->db, di, e) < 0) {
			e->img = NULL;
			log_err("%s", e->error);
		} else if (exports_opened_hook) {
			exports_opened_hook(e->img);
		}
	}
	if (e->img)
		snprintf(e->img->name, sizeof e->img->name, "%s", di->name); /* renames */
	add_boot(di, e);
	return 0;
}

/* Image export entry by image id (in the table being built). */
static const struct export *image_entry(const struct table *t, int64_t id, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].kind == EXPORT_IMAGE && strcmp(t->v[i].name, name) == 0 &&
		    (!t->v[i].img || t->v[i].img->image_id == id))
			return &t->v[i];
	return NULL;
}

static int add_client(const struct db_client *dc, void *arg)
{
	struct build *b = arg;
	struct export *e = table_push(b->t);
	if (!e)
		return b->err = -ENOMEM;
	e->kind = EXPORT_CLIENT;
	snprintf(e->name, sizeof e->name, "client/%s", dc->mac);
	snprintf(e->mac, sizeof e->mac, "%s", dc->mac);
	e->mode = dc->mode;
	e->epoch = dc->overlay_epoch;
	snprintf(e->description, sizeof e->description, "client %s (%s)", dc->name, dc->mac);
	snprintf(e->client_name, sizeof e->client_name, "%s", dc->name);
	snprintf(e->linked, sizeof e->linked, "%s", dc->image_name);
	snprintf(e->image_name, sizeof e->image_name, "%s", dc->image_name);
	snprintf(e->cmdline, sizeof e->cmdline, "%s", dc->cmdline);
	e->menu_timeout = dc->menu_timeout;
	e->san_keep = dc->san_keep;
	e->san_drive = dc->san_drive;
	struct db_menu m;
	if (db_client_menu_get(b->db, dc->id, &m) == 0)
		for (int i = 0; i < m.n && e->nmenu < EXPORT_MENU_MAX; i++)
			if (strcmp(m.name[i], dc->image_name) != 0)
				snprintf(e->menu[e->nmenu++], sizeof e->menu[0], "%s", m.name[i]);
	const struct export *ie = dc->image_id ? image_entry(b->t, dc->image_id, dc->image_name) : NULL;
	if (!ie) {
		snprintf(e->error, sizeof e->error,
			 "client %s (%s) is not linked to an image; link it with: bootlinkctl client link %s IMAGE",
			 dc->name, dc->mac, dc->mac);
	} else if (!ie->img) {
		snprintf(e->error, sizeof e->error, "client %s (%s): %.200s", dc->name, dc->mac, ie->error);
	} else {
		e->img = ie->img;
		image_get(e->img);
	}
	return 0;
}

int exports_reload(struct db *db)
{
	struct table *old = table_get();
	struct build b = { .t = calloc(1, sizeof *b.t), .old = old, .db = db };
	if (!b.t) {
		table_put(old);
		return -ENOMEM;
	}
	b.t->refs = 1;
	/* Images first: clients resolve against them. Pushes may move the
	 * array, so clients look images up by id/name, not by pointer. */
	int r = db_image_list(db, add_image, &b);
	if (r >= 0 && !b.err)
		r = db_client_list(db, add_client, &b);
	if (r < 0 || b.err) {
		log_err("reloading exports from the database failed: %s", strerror(-(r < 0 ? r : b.err)));
		table_put(b.t);
		table_put(old);
		return r < 0 ? r : b.err;
	}
	if (b.t->n)
		qsort(b.t->v, b.t->n, sizeof *b.t->v, cmp_export); /* v is NULL while empty */
	pthread_mutex_lock(&lock);
	current = b.t;
	pthread_mutex_unlock(&lock);
	table_put(old); /* our reference */
	table_put(old); /* the published one */
	log_info("exports: %zu (images and clients) loaded from the database", b.t->n);
	return 0;
}

static void apply_choice(const struct table *t, struct export_ref *out);

/* Canonical table key for a client-supplied name. */
static int canonical_name(const char *name, size_t len, char *out, size_t outlen)
{
	char tmp[128], mac[MAC_STR_LEN];
	if (len == 0 || len >= sizeof tmp || len >= outlen || memchr(name, 0, len))
		return -ENOENT;
	memcpy(tmp, name, len);
	tmp[len] = 0;
	const char *m = strncmp(tmp, "client/", 7) == 0 ? tmp + 7 : tmp;
	if (mac_normalize(m, mac) == 0)
		snprintf(out, outlen, "client/%s", mac);
	else if (m != tmp)
		return -ENOENT;
	else
		memcpy(out, tmp, len + 1); /* len < outlen checked above */
	return 0;
}

int exports_lookup(const char *name, size_t len, struct export_ref *out)
{
	char key[96];
	if (canonical_name(name, len, key, sizeof key) < 0)
		return -ENOENT;
	struct table *t = table_get();
	if (!t)
		return -ENOENT;
	struct export probe;
	snprintf(probe.name, sizeof probe.name, "%s", key);
	const struct export *e = t->n ? bsearch(&probe, t->v, t->n, sizeof *t->v, cmp_export) : NULL;
	int r = -ENOENT;
	if (e) {
		out->e = *e;
		if (e->kind == EXPORT_CLIENT)
			apply_choice(t, out);
		if (out->e.img)
			image_get(out->e.img);
		r = 0;
	}
	table_put(t);
	return r;
}

/* ---- boot menu choices ---- */

#define CHOICES_MAX 4096

struct choice {
	char mac[18];
	char image[64];
};
static pthread_mutex_t choice_lock = PTHREAD_MUTEX_INITIALIZER;
static struct choice *choices;
static size_t nchoices;

int exports_choose(const char *mac, const char *image)
{
	int r = 0;
	pthread_mutex_lock(&choice_lock);
	size_t i;
	for (i = 0; i < nchoices && strcmp(choices[i].mac, mac) != 0; i++)
		;
	if (!image || !image[0]) {
		if (i < nchoices)
			choices[i] = choices[--nchoices];
	} else if (i == nchoices && nchoices >= CHOICES_MAX) {
		r = -ENOSPC;
	} else {
		if (i == nchoices) {
			struct choice *nc = realloc(choices, (nchoices + 1) * sizeof *nc);
			if (!nc) {
				pthread_mutex_unlock(&choice_lock);
				return -ENOMEM;
			}
			choices = nc;
			nchoices++;
		}
		snprintf(choices[i].mac, sizeof choices[i].mac, "%s", mac);
		snprintf(choices[i].image, sizeof choices[i].image, "%s", image);
	}
	pthread_mutex_unlock(&choice_lock);
	return r;
}

bool exports_allowed(const struct export *e, const char *image)
{
	if (e->kind != EXPORT_CLIENT || !image[0])
		return false;
	if (strcmp(e->linked, image) == 0)
		return true;
	for (int i = 0; i < e->nmenu; i++)
		if (strcmp(e->menu[i], image) == 0)
			return true;
	return false;
}

/* A client entry copied into out: if the client chose another image it may
 * boot, its disk is over that image (no reference taken yet). */
static void apply_choice(const struct table *t, struct export_ref *out)
{
	char image[64] = "";
	pthread_mutex_lock(&choice_lock);
	for (size_t i = 0; i < nchoices; i++)
		if (strcmp(choices[i].mac, out->e.mac) == 0)
			snprintf(image, sizeof image, "%s", choices[i].image);
	pthread_mutex_unlock(&choice_lock);
	if (!image[0] || strcmp(image, out->e.linked) == 0 || !exports_allowed(&out->e, image))
		return;
	struct export probe;
	snprintf(probe.name, sizeof probe.name, "%s", image);
	const struct export *ie = bsearch(&probe, t->v, t->n, sizeof *t->v, cmp_export);
	if (!ie || ie->kind != EXPORT_IMAGE)
		return;
	snprintf(out->e.image_name, sizeof out->e.image_name, "%s", image);
	out->e.img = ie->img;
	out->e.error[0] = 0;
	if (!ie->img)
		snprintf(out->e.error, sizeof out->e.error, "client %.20s (%s), chosen image: %.200s", out->e.client_name,
			 out->e.mac, ie->error);
}

void exports_ref_release(struct export_ref *ref)
{
	image_put(ref->e.img);
	ref->e.img = NULL;
}

void exports_foreach(void (*cb)(const struct export *e, void *arg), void *arg)
{
	struct table *t = table_get();
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		cb(&t->v[i], arg);
	table_put(t);
}

void exports_foreach_image(void (*cb)(struct image *img, void *arg), void *arg)
{
	struct table *t = table_get();
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].kind == EXPORT_IMAGE && t->v[i].img)
			cb(t->v[i].img, arg);
	table_put(t);
}

size_t exports_count(void)
{
	struct table *t = table_get();
	size_t n = t ? t->n : 0;
	table_put(t);
	return n;
}

void exports_shutdown(void)
{
	pthread_mutex_lock(&choice_lock);
	free(choices);
	choices = NULL;
	nchoices = 0;
	pthread_mutex_unlock(&choice_lock);
	pthread_mutex_lock(&lock);
	struct table *t = current;
	current = NULL;
	pthread_mutex_unlock(&lock);
	table_put(t);
}
