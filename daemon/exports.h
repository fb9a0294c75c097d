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
 *
 * Boot menus: a client may be offered other images than its linked one
 * (db client_menu). exports_choose() records the image a PC picked in its
 * iPXE menu; from then on (until its next choice) looking up client/MAC
 * gives the client's disk over that image instead of the linked one, so
 * NBD, iSCSI and the overlays (clients.c) all follow the choice.
 */
#ifndef BL_EXPORTS_H
#define BL_EXPORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct image;

enum export_kind { EXPORT_IMAGE, EXPORT_CLIENT };

#define EXPORT_MENU_MAX 8

struct export {
	char name[96];            /* canonical: image name, or "client/<mac>" */
	enum export_kind kind;
	char description[256];
	char mac[18];             /* EXPORT_CLIENT */
	int mode;                 /* EXPORT_CLIENT: enum db_overlay_mode */
	int64_t epoch;            /* EXPORT_CLIENT: overlay epoch (db) */
	struct image *img;        /* NULL if unavailable (see error) */
	char error[320];          /* why img is NULL */
	/* Booting (the iPXE scripts of daemon/http.c) */
	char image_name[64];      /* EXPORT_IMAGE: its name; EXPORT_CLIENT: the image its disk is over
	                             (linked or chosen), "" if none */
	int boot;                 /* EXPORT_IMAGE: enum db_boot */
	char kernel[1024];        /* EXPORT_IMAGE, linux: kernel file ("" = none) */
	char initrd[1024];        /* EXPORT_IMAGE, linux: initrd file ("" = none) */
	char cmdline[256];        /* EXPORT_IMAGE: the image's kernel options; EXPORT_CLIENT: the client's */
	char boot_error[768];     /* EXPORT_IMAGE, linux: why its boot files cannot be served, "" if they can */
	char client_name[64];     /* EXPORT_CLIENT: "PC001" */
	char linked[64];          /* EXPORT_CLIENT: the linked image's name, "" if none */
	int menu_timeout;         /* EXPORT_CLIENT: seconds (0 = wait for a choice) */
	bool san_keep;            /* EXPORT_CLIENT: sanboot --keep */
	int san_drive;            /* EXPORT_CLIENT: sanboot --drive (BIOS drive number) */
	int nmenu;                /* EXPORT_CLIENT: images offered besides the linked one */
	char menu[EXPORT_MENU_MAX][64];
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
/* The client (canonical MAC) chose image in its boot menu: its disk is over
 * that image from its next boot on. NULL or "" = back to the linked image.
 * The caller checks the image is one the client may choose (exports_allowed).
 * Thread-safe. 0, or -ENOSPC when too many choices are recorded. */
int exports_choose(const char *mac, const char *image);
/* Whether client export e may boot image (its linked image or one of its menu's). */
bool exports_allowed(const struct export *e, const char *image);

/* Called (main thread) for every image version opened by exports_reload. */
extern void (*exports_opened_hook)(struct image *img);

#endif
