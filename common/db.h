/* db.h — the appliance's sqlite3 database: images, clients, events.
 *
 * WAL mode, a versioned schema (table `meta`, key 'schema_version') with
 * ordered migrations applied in one transaction at open. Clients link to
 * images by image id, never by path or name: renaming an image or moving
 * its file (then `image repair`) never breaks a link.
 *
 * All functions return 0 (or a count) on success and -errno on failure:
 * -ENOENT (no such row), -EEXIST (unique name/MAC taken), -EBUSY (database
 * locked past the busy timeout), -EIO (sqlite error, logged with its text).
 * Also: -ENOTEMPTY from db_image_rm() while clients still link to the image,
 * -ENOENT from db_client_add/update() when image_id names no image,
 * -EINVAL for a mode outside enum db_overlay_mode.
 * Thread-compatible, not thread-safe: one struct db per thread.
 *
 * List callbacks may call any db function on the same handle (each call
 * prepares its own statement).
 */
#ifndef BL_DB_H
#define BL_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DB_NAME_MAX 64
#define DB_PATH_MAX 1024
#define DB_TEXT_MAX 256

struct db;

struct db_image {
	int64_t id;                       /* stable, never reused */
	char name[DB_NAME_MAX];           /* unique, name_valid() */
	char path[DB_PATH_MAX];           /* absolute path of the raw image file */
	uint64_t size;                    /* bytes */
	char fs_uuid[64];                 /* UUID of the filesystem holding it (libblkid), "" if unknown */
	uint64_t inode;                   /* inode at add/repair time */
	char head_sum[65];                /* sha256 hex of the first MiB (identity) */
	char full_sum[65];                /* sha256 hex of the whole file ("" until verified/added) */
	char description[DB_TEXT_MAX];
	int64_t created;                  /* unix time */
	int current_version;              /* what clients get at their next boot (1 = the file as added) */
	int boot;                         /* enum db_boot: how its clients boot */
	char kernel[DB_PATH_MAX];         /* DB_BOOT_LINUX: absolute path of the kernel, served over HTTP */
	char initrd[DB_PATH_MAX];         /* DB_BOOT_LINUX: absolute path of the initrd, "" = none */
	char cmdline[DB_TEXT_MAX];        /* DB_BOOT_LINUX: extra kernel command line (cmdline_valid()) */
};

/* How an image's clients boot: iPXE sanboot of their iSCSI disk, or a Linux
 * kernel + initrd fetched over HTTP with the root on NBD. */
enum db_boot { DB_BOOT_SANBOOT = 0, DB_BOOT_LINUX = 1 };

enum db_overlay_mode { DB_MODE_EPHEMERAL = 0, DB_MODE_PERSISTENT = 1, DB_MODE_MAINTENANCE = 2 };

struct db_client {
	int64_t id;
	char mac[18];                     /* canonical "aa:bb:cc:dd:ee:ff" */
	char name[DB_NAME_MAX];           /* "PC001" */
	int64_t image_id;                 /* linked image, 0 = none */
	char image_name[DB_NAME_MAX];     /* filled by reads (join), "" if none */
	int mode;                         /* enum db_overlay_mode */
	int64_t created, last_seen;       /* unix time, last_seen 0 = never */
	int64_t overlay_epoch;            /* bumped by overlay reset / commit: the daemon discards
	                                     the overlay at the client's next boot when it changes */
	int menu_timeout;                 /* seconds the boot menu waits before the default (0 = forever) */
	char cmdline[DB_TEXT_MAX];        /* extra kernel command line for Linux images (cmdline_valid()) */
	bool san_keep;                    /* sanboot --keep: the SAN disk stays hooked if the boot returns */
	int san_drive;                    /* sanboot --drive: BIOS drive number, DB_SAN_DRIVE_MIN..MAX */
};

/* The BIOS drive numbers a client's iSCSI disk may take (hard disks:
 * 0x80 = the first, what iPXE uses by default). */
#define DB_SAN_DRIVE_DEFAULT 0x80
#define DB_SAN_DRIVE_MIN 0x80
#define DB_SAN_DRIVE_MAX 0xff

/* The images a client may choose from at boot (besides its linked one). */
#define DB_MENU_MAX 8
#define DB_MENU_TIMEOUT_DEFAULT 10
struct db_menu {
	int n;
	int64_t image_id[DB_MENU_MAX];
	char name[DB_MENU_MAX][DB_NAME_MAX];
};

/* An image version after the first. Version 1 of every image is its file
 * (images.path) and has no row. A version is either a delta over the one
 * before it (data_path + map_path: an overlay's files, frozen) or a new base
 * (base_path: a flattened file). */
struct db_version {
	int64_t id, image_id;
	int number;                       /* 2, 3, ... */
	char data_path[DB_PATH_MAX], map_path[DB_PATH_MAX], base_path[DB_PATH_MAX];
	char note[DB_TEXT_MAX];
	int64_t created;
	uint32_t block_size;              /* a delta's overlay granularity in bytes (0 on add = 4096) */
};

/* What a version is made of: a base file and the deltas over it, bottom first. */
#define DB_CHAIN_MAX 32
struct db_chain {
	int number;
	char base_path[DB_PATH_MAX];
	int ndeltas;
	struct db_version deltas[DB_CHAIN_MAX];
};

struct db_event {
	int64_t id, time;
	char mac[18];                     /* "" for appliance-wide events */
	char kind[32];                    /* "boot", "link", "error", "image" ... */
	char text[DB_TEXT_MAX];
};

/* Open (create=true: create file and schema if missing) and migrate.
 * On failure err holds a one-line message that says what to do. */
int db_open(const char *path, bool create, struct db **out, char *err, size_t errlen);
void db_close(struct db *db);
/* Changes whenever another connection committed (PRAGMA data_version). */
int64_t db_data_version(struct db *db);
int db_schema_version(struct db *db);

int db_image_add(struct db *db, struct db_image *img);          /* sets img->id, created */
int db_image_get(struct db *db, const char *name, struct db_image *out);
int db_image_get_id(struct db *db, int64_t id, struct db_image *out);
int db_image_update(struct db *db, const struct db_image *img); /* by id: name, path, size, ident, sums, description */
int db_image_rm(struct db *db, int64_t id);
int db_image_count_clients(struct db *db, int64_t id);
/* Calls cb for each image ordered by name; stops early if cb returns non-zero (returned). */
int db_image_list(struct db *db, int (*cb)(const struct db_image *, void *), void *arg);

int db_client_add(struct db *db, struct db_client *c);          /* sets id, created, menu_timeout */
int db_client_get(struct db *db, const char *mac, struct db_client *out);
int db_client_update(struct db *db, const struct db_client *c); /* by id: name, image_id, mode, last_seen */
int db_client_rm(struct db *db, const char *mac);
int db_client_list(struct db *db, int (*cb)(const struct db_client *, void *), void *arg);
/* Next free "PC%03d" name. */
int db_client_next_name(struct db *db, char out[DB_NAME_MAX]);

int db_event_add(struct db *db, const char *mac, const char *kind, const char *text);
/* Events newest first; mac NULL = all; since 0 = all; limit 0 = no limit. */
int db_event_list(struct db *db, const char *mac, int64_t since, int limit,
		  int (*cb)(const struct db_event *, void *), void *arg);

/* Explicit transaction (BEGIN IMMEDIATE: takes the write lock up front so
 * a later write cannot fail with a lock upgrade). Without one, each call
 * is its own transaction. db_rollback() is safe to call in any state. */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

/* Clients linked to image_id (0 = unlinked clients), ordered by name. */
int db_client_list_image(struct db *db, int64_t image_id,
			 int (*cb)(const struct db_client *, void *), void *arg);
/* Set image_id = 0 on every client linked to id; returns how many. */
int db_image_unlink_clients(struct db *db, int64_t id);

/* Versions. add: number 0 = next free (>= 2); fills the row back. */
int db_version_add(struct db *db, struct db_version *v);
int db_version_get(struct db *db, int64_t image_id, int number, struct db_version *out);
int db_version_list(struct db *db, int64_t image_id, int (*cb)(const struct db_version *, void *), void *arg);
/* Make version `number` current (-ENOENT if it does not exist). */
int db_image_set_current(struct db *db, int64_t image_id, int number);
/* Resolve version `number` of img into its base and deltas (-E2BIG past DB_CHAIN_MAX). */
int db_version_chain(struct db *db, const struct db_image *img, int number, struct db_chain *out);
/* Ask the daemon to discard the client's overlay at its next boot. */
int db_client_bump_epoch(struct db *db, const char *mac);

/* Boot settings (schema version 3). set_boot: boot, kernel, initrd, cmdline
 * of the image with img->id (-EINVAL for a boot outside enum db_boot). */
int db_image_set_boot(struct db *db, const struct db_image *img);
/* menu_timeout, cmdline, san_keep and san_drive of the client with c->id
 * (-EINVAL for a san_drive outside DB_SAN_DRIVE_MIN..MAX). */
int db_client_set_boot(struct db *db, const struct db_client *c);
/* A client's menu, in order; an image removed is dropped from every menu. */
int db_client_menu_get(struct db *db, int64_t client_id, struct db_menu *out);
/* Replace a client's menu (-ENOENT if an image id does not exist, -E2BIG past DB_MENU_MAX). */
int db_client_menu_set(struct db *db, int64_t client_id, const int64_t *image_id, int n);
const char *db_boot_name(int boot);     /* "sanboot", "linux" */
int db_boot_parse(const char *s);       /* -1 if unknown */
/* A background job (bootlinkctl image flatten): one row per run. At most
 * one job of a kind runs per image (a unique index). A job whose process
 * died is still 'running' here until someone notices (ctl/jobs.c). */
struct db_job {
	int64_t id, image_id;
	char kind[16];                    /* "flatten" */
	char image[DB_NAME_MAX];          /* the image's name when the job started */
	char state[16];                   /* "running", "done", "failed" */
	int64_t pid;                      /* the process doing it (0 until it starts) */
	uint64_t pid_start;               /* its start time (/proc/PID/stat), against PID reuse */
	uint64_t done_bytes, total_bytes; /* progress */
	int64_t started, finished;        /* unix time; finished 0 while running */
	char path[DB_PATH_MAX];           /* the file it writes (a temporary name until done) */
	int version;                      /* the version it makes */
	char error[DB_TEXT_MAX];          /* why it failed */
};
/* Add j as running (sets id, started); -EEXIST if one of its kind runs on its image. */
int db_job_add(struct db *db, struct db_job *j);
/* These change only a running job: -ENOENT if it is not (any more). */
int db_job_set_pid(struct db *db, int64_t id, int64_t pid, uint64_t pid_start);
int db_job_progress(struct db *db, int64_t id, uint64_t done, uint64_t total);
int db_job_finish(struct db *db, int64_t id, bool ok, const char *error);
int db_job_get(struct db *db, int64_t id, struct db_job *out);
/* Jobs newest first (running_only: only running ones); limit 0 = all. */
int db_job_list(struct db *db, bool running_only, int limit, int (*cb)(const struct db_job *, void *), void *arg);

/* Backup: copy the database into a new file dest as one consistent
 * snapshot (sqlite online backup API), while others keep writing. */
int db_backup(struct db *db, const char *dest);
/* Set data_path, map_path and base_path of the version row v->id (restore). */
int db_version_set_paths(struct db *db, const struct db_version *v);
/* Delete the events older than before (unix time): the retention limit
 * (events/keep_days). Returns how many went. */
int db_event_prune(struct db *db, int64_t before);
/* How many images and clients there are (restore refuses a database that has any). */
int db_count_rows(struct db *db);

const char *db_mode_name(int mode);     /* "ephemeral" ... */
int db_mode_parse(const char *s);       /* -1 if unknown */

#endif
