/* exports.h — the table of names a client may ask for, built from the database.
 *
 * An export name is only ever a key into this table, never a path:
 *   NAME                 an image, read-only
 *   MAC, client/MAC      a client (any MAC spelling mac_normalize accepts),
 *                        resolving to the image it is linked to
 *
 * The main thread rebuilds the table when the database changes
 * (exports_reload) and publishes it; workers look names up without
 * touching the database or the filesystem. Images that are unchanged
 * between tables keep their open file (and counters). A table entry whose
 * image cannot be opened stays in the table with a reason, so a client
 * asking for it gets a clear error instead of "unknown export".
 */
#ifndef BL_EXPORTS_H
#define BL_EXPORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct image;

enum export_kind { EXPORT_IMAGE, EXPORT_CLIENT };

struct export {
	char name[96];            /* canonical: image name, or "client/<mac>" */
	enum export_kind kind;
	char description[256];
	char mac[18];             /* EXPORT_CLIENT */
	int mode;                 /* EXPORT_CLIENT: enum db_overlay_mode */
	int64_t epoch;            /* EXPORT_CLIENT: overlay epoch (db) */
	struct image *img;        /* NULL if unavailable (see error) */
	char error[320];          /* why img is NULL */
};

/* A resolved export for one connection: copies the entry and holds a
 * reference on its image. */
struct export_ref {
	struct export e;
};

/* Rebuild from the database and publish. Returns 0 or -errno (the old
 * table stays). Main thread only. */
int exports_reload(struct db *db);
/* Resolve a client-supplied name (len bytes, not NUL-terminated).
 * Returns 0 (out->e.img may be NULL: check out->e.error), -ENOENT. */
int exports_lookup(const char *name, size_t len, struct export_ref *out);
void exports_ref_release(struct export_ref *ref);
/* Call cb for every export (for NBD_OPT_LIST), in name order. */
void exports_foreach(void (*cb)(const struct export *e, void *arg), void *arg);
/* Call cb for every distinct open image (stats). */
void exports_foreach_image(void (*cb)(struct image *img, void *arg), void *arg);
size_t exports_count(void);
void exports_shutdown(void);
/* Called (main thread) for every image version opened by exports_reload. */
extern void (*exports_opened_hook)(struct image *img);

#endif
