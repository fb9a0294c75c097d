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
		if (e->img)
			image_get(e->img);
		r = 0;
	}
	table_put(t);
	return r;
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
	pthread_mutex_lock(&lock);
	struct table *t = current;
	current = NULL;
	pthread_mutex_unlock(&lock);
	table_put(t);
}
