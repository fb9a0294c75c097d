/* db.c — the sqlite3 database behind db.h.
 *
 * Design: one sqlite3 connection per struct db, opened in WAL mode with a
 * 5 s busy timeout and foreign keys on. The schema is versioned: `meta`
 * holds 'schema_version', and migrations[] below is an ordered list of SQL
 * scripts; db_open() applies every script past the stored version in one
 * IMMEDIATE transaction, so two processes opening a fresh file at once do
 * not both migrate. Later changes append a script, never edit one.
 *
 * Every accessor prepares its statement, binds parameters, steps, and
 * finalizes (no shared statement cache), which keeps list callbacks free
 * to call back into the database. sqlite result codes become -errno in one
 * place, db_errno(); only the -EIO case is logged, with sqlite's message.
 *
 * Clients store image_id NULL for "no image" (the struct says 0), so the
 * foreign key to images(id) holds for every row.
 */
#include "db.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct db {
	sqlite3 *h;
	bool opening;            /* in db_open: errors go to its err text, not the log */
	char path[DB_PATH_MAX];
};

/* Ordered migrations: migrations[i] takes the schema from version i to i+1. */
static const char *const migrations[] = {
	/* 1: images, clients, events */
	"CREATE TABLE images ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  path TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  fs_uuid TEXT NOT NULL DEFAULT '',"
	"  inode INTEGER NOT NULL DEFAULT 0,"
	"  head_sum TEXT NOT NULL DEFAULT '',"
	"  full_sum TEXT NOT NULL DEFAULT '',"
	"  description TEXT NOT NULL DEFAULT '',"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE clients ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  mac TEXT NOT NULL UNIQUE,"
	"  name TEXT NOT NULL UNIQUE,"
	"  image_id INTEGER REFERENCES images(id),"
	"  mode INTEGER NOT NULL DEFAULT 0 CHECK (mode BETWEEN 0 AND 2),"
	"  created INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX clients_image ON clients(image_id);"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time INTEGER NOT NULL,"
	"  mac TEXT NOT NULL DEFAULT '',"
	"  kind TEXT NOT NULL,"
	"  text TEXT NOT NULL);"
	"CREATE INDEX events_mac_time ON events(mac, time);",
	/* 2: image versions, the current version of each image, overlay epochs */
	"CREATE TABLE versions ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
	"  number INTEGER NOT NULL CHECK (number >= 2),"
	"  data_path TEXT NOT NULL DEFAULT '',"
	"  map_path TEXT NOT NULL DEFAULT '',"
	"  base_path TEXT NOT NULL DEFAULT '',"
	"  note TEXT NOT NULL DEFAULT '',"
	"  created INTEGER NOT NULL,"
	"  UNIQUE (image_id, number));"
	"ALTER TABLE images ADD COLUMN current_version INTEGER NOT NULL DEFAULT 1;"
	"ALTER TABLE clients ADD COLUMN overlay_epoch INTEGER NOT NULL DEFAULT 0;",
	/* 3: how an image boots (sanboot, or a Linux kernel + initrd served over
	 * HTTP), each client's boot menu, menu timeout and extra kernel options */
	"ALTER TABLE images ADD COLUMN boot INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE images ADD COLUMN kernel TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE images ADD COLUMN initrd TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE images ADD COLUMN cmdline TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE clients ADD COLUMN menu_timeout INTEGER NOT NULL DEFAULT 10;"
	"ALTER TABLE clients ADD COLUMN cmdline TEXT NOT NULL DEFAULT '';"
	"CREATE TABLE client_menu ("
	"  client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,"
	"  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
	"  pos INTEGER NOT NULL,"
	"  PRIMARY KEY (client_id, image_id));",
	/* 4: each delta's overlay granularity; background jobs (image flatten) */
	"ALTER TABLE versions ADD COLUMN block_size INTEGER NOT NULL DEFAULT 4096;"
	"CREATE TABLE jobs ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  kind TEXT NOT NULL,"
	"  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
	"  image TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),"
	"  pid INTEGER NOT NULL DEFAULT 0,"
	"  pid_start INTEGER NOT NULL DEFAULT 0,"
	"  done_bytes INTEGER NOT NULL DEFAULT 0,"
	"  total_bytes INTEGER NOT NULL DEFAULT 0,"
	"  started INTEGER NOT NULL,"
	"  finished INTEGER NOT NULL DEFAULT 0,"
	"  path TEXT NOT NULL DEFAULT '',"
	"  version INTEGER NOT NULL DEFAULT 0,"
	"  error TEXT NOT NULL DEFAULT '');"
	"CREATE UNIQUE INDEX jobs_one_running ON jobs(image_id, kind) WHERE state = 'running';",
	/* 5: per-client SAN boot options of the iPXE script: sanboot --keep
	 * (the SAN disk stays hooked if the boot returns) and --drive (its BIOS
	 * drive number, 0x80 = the first hard disk) */
	"ALTER TABLE clients ADD COLUMN san_keep INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE clients ADD COLUMN san_drive INTEGER NOT NULL DEFAULT 128;",
};

#define IMAGE_COLS "id, name, path, size, fs_uuid, inode, head_sum, full_sum, description, created, current_version," \
	" boot, kernel, initrd, cmdline"
#define CLIENT_SELECT \
	"SELECT c.id, c.mac, c.name, coalesce(c.image_id, 0), coalesce(i.name, ''), c.mode," \
	" c.created, c.last_seen, c.overlay_epoch, c.menu_timeout, c.cmdline," \
	" c.san_keep, c.san_drive" \
	" FROM clients c LEFT JOIN images i ON i.id = c.image_id "

/* Map an sqlite result code to -errno; log the -EIO case with its text.
 * fk is what a foreign-key violation means to the caller. */
static int db_errno(struct db *db, int rc, int fk, const char *what)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return -EEXIST;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return fk;
	case SQLITE_CONSTRAINT_CHECK:
		return -EINVAL;
	}
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		log_debug("database %s: %s: locked by another process for more than 5 s",
			  db->path, what);
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	}
	if (!db->opening)
		log_err("database %s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
	return -EIO;
}

/* Prepare sql into *st; -errno on failure. */
static int prep(struct db *db, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v2(db->h, sql, -1, st, NULL);
	if (rc != SQLITE_OK)
		return db_errno(db, rc, -EIO, sql);
	return 0;
}

/* Bind a C string (NULL binds SQL NULL). */
static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* Copy column i as text into buf of len bytes (truncating). */
static void col_text(sqlite3_stmt *st, int i, char *buf, size_t len)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	snprintf(buf, len, "%s", s ? (const char *)s : "");
}

/* Step a statement that returns no rows, finalize it, and return 0 or
 * -errno; *changes (if given) gets the number of rows it changed. */
static int exec_stmt(struct db *db, sqlite3_stmt *st, int fk, const char *what, int *changes)
{
	int rc = sqlite3_step(st);
	int ret = rc == SQLITE_DONE ? 0 : db_errno(db, rc, fk, what);
	if (changes)
		*changes = sqlite3_changes(db->h);
	sqlite3_finalize(st);
	return ret;
}

/* Run SQL text with no parameters (pragmas, scripts, BEGIN/COMMIT). */
static int exec_sql(struct db *db, const char *sql, const char *what)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db->h, sql, NULL, NULL, &msg);
	sqlite3_free(msg);
	return rc == SQLITE_OK ? 0 : db_errno(db, rc, -EIO, what);
}

/* Run a query that yields one integer; *out gets it (def if no row). */
static int query_int(struct db *db, const char *sql, int64_t def, int64_t *out)
{
	sqlite3_stmt *st;
	int ret = prep(db, sql, &st);
	if (ret < 0)
		return ret;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		*out = def;
	else
		ret = db_errno(db, rc, -EIO, sql);
	sqlite3_finalize(st);
	return ret;
}

/* Read meta.schema_version (0 for a fresh file without `meta`). */
static int read_version(struct db *db, int64_t *v)
{
	int64_t has_meta;
	int ret = query_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
			    0, &has_meta);
	if (ret < 0 || !has_meta) {
		*v = 0;
		return ret;
	}
	return query_int(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'",
			 0, v);
}

/* Apply migrations[from..] and record the new version (inside a transaction). */
static int apply_migrations(struct db *db, int64_t from)
{
	int ret = exec_sql(db, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
			   "create meta");
	for (int64_t v = from; ret == 0 && v < (int64_t)ARRAY_SIZE(migrations); v++) {
		char sql[128];
		if ((ret = exec_sql(db, migrations[v], "schema migration")) < 0)
			break;
		snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta VALUES ('schema_version', '%lld')",
			 (long long)v + 1);
		ret = exec_sql(db, sql, "schema version");
		log_debug("database %s: migrated to schema version %lld", db->path, (long long)v + 1);
	}
	return ret;
}

/* Bring the schema up to date. A file already current is only read; else
 * the version is re-read and the migrations applied under one IMMEDIATE
 * transaction, so concurrent openers migrate once. */
static int migrate(struct db *db, char *err, size_t errlen)
{
	int64_t v;
	int ret = read_version(db, &v);
	if (ret == 0 && v == (int64_t)ARRAY_SIZE(migrations))
		return 0;
	if (ret < 0 || (ret = db_begin(db)) < 0 || (ret = read_version(db, &v)) < 0)
		goto fail;
	if (v > (int64_t)ARRAY_SIZE(migrations)) {
		snprintf(err, errlen, "database %s has schema version %lld but this program knows "
			 "only up to %zu: upgrade bootlink, or restore a database written by this version",
			 db->path, (long long)v, ARRAY_SIZE(migrations));
		db_rollback(db);
		return -EPROTO;
	}
	if ((ret = apply_migrations(db, v)) < 0 || (ret = db_commit(db)) < 0)
		goto fail;
	return 0;
fail:
	db_rollback(db);
	snprintf(err, errlen, "database %s: cannot set up the schema (%s): check that the file is "
		 "a bootlink database and writable", db->path,
		 ret == -EIO ? sqlite3_errmsg(db->h) : strerror(-ret));
	return ret;
}

/* Connection settings: WAL, busy timeout, foreign keys, extended codes. */
static int configure(struct db *db, char *err, size_t errlen)
{
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_timeout(db->h, 5000);
	int ret = exec_sql(db, "PRAGMA foreign_keys = ON", "foreign keys");
	if (ret == 0)
		ret = exec_sql(db, "PRAGMA journal_mode = WAL", "WAL mode");
	if (ret < 0)
		snprintf(err, errlen, "database %s: cannot open it (%s): is it a sqlite database, "
			 "and are it and its directory writable?", db->path,
			 ret == -EIO ? sqlite3_errmsg(db->h) : strerror(-ret));
	return ret;
}

/* Check the file exists (create=false) or its directory can hold it. */
static int check_file(const char *path, bool create, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) == 0)
		return 0;
	if (errno != ENOENT) {
		int e = errno;
		snprintf(err, errlen, "database %s: %s: check paths/db and its permissions",
			 path, strerror(e));
		return -e;
	}
	if (!create) {
		snprintf(err, errlen, "database %s does not exist: add an image first "
			 "(bootlinkctl image add NAME FILE creates it), or point paths/db at the "
			 "existing database", path);
		return -ENOENT;
	}
	char dir[DB_PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	int ret = mkdir_p(dir, 0755);
	if (ret < 0)
		snprintf(err, errlen, "database %s: cannot create directory %s: %s",
			 path, dir, strerror(-ret));
	return ret;
}

/* Open (create=true: create file and schema if missing) and migrate. */
int db_open(const char *path, bool create, struct db **out, char *err, size_t errlen)
{
	if (strlen(path) >= DB_PATH_MAX) {
		snprintf(err, errlen, "database path too long: %s", path);
		return -ENAMETOOLONG;
	}
	int ret = check_file(path, create, err, errlen);
	if (ret < 0)
		return ret;
	struct db *db = calloc(1, sizeof *db);
	if (!db) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(db->path, sizeof db->path, "%s", path);
	db->opening = true;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	int rc = sqlite3_open_v2(path, &db->h, flags, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "database %s: cannot open: %s: check paths/db and that the "
			 "file is readable and writable", path,
			 db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
		ret = -EIO;
		goto fail;
	}
	if ((ret = configure(db, err, errlen)) < 0 || (ret = migrate(db, err, errlen)) < 0)
		goto fail;
	db->opening = false;
	*out = db;
	return 0;
fail:
	db_close(db);
	return ret;
}

/* Close the connection (NULL is a no-op). */
void db_close(struct db *db)
{
	if (!db)
		return;
	sqlite3_close_v2(db->h);
	free(db);
}

/* PRAGMA data_version: changes when another connection committed. */
int64_t db_data_version(struct db *db)
{
	int64_t v = 0;
	int ret = query_int(db, "PRAGMA data_version", 0, &v);
	return ret < 0 ? ret : v;
}

/* The schema version now in the file. */
int db_schema_version(struct db *db)
{
	int64_t v = 0;
	int ret = read_version(db, &v);
	return ret < 0 ? ret : (int)v;
}

/* BEGIN IMMEDIATE. */
int db_begin(struct db *db)
{
	return exec_sql(db, "BEGIN IMMEDIATE", "begin transaction");
}

/* COMMIT. */
int db_commit(struct db *db)
{
	return exec_sql(db, "COMMIT", "commit");
}

/* ROLLBACK if a transaction is open. */
void db_rollback(struct db *db)
{
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- images ---- */

/* Fill *img from a row selected with IMAGE_COLS. */
static void row_image(sqlite3_stmt *st, struct db_image *img)
{
	memset(img, 0, sizeof *img);
	img->id = sqlite3_column_int64(st, 0);
	col_text(st, 1, img->name, sizeof img->name);
	col_text(st, 2, img->path, sizeof img->path);
	img->size = (uint64_t)sqlite3_column_int64(st, 3);
	col_text(st, 4, img->fs_uuid, sizeof img->fs_uuid);
	img->inode = (uint64_t)sqlite3_column_int64(st, 5);
	col_text(st, 6, img->head_sum, sizeof img->head_sum);
	col_text(st, 7, img->full_sum, sizeof img->full_sum);
	col_text(st, 8, img->description, sizeof img->description);
	img->created = sqlite3_column_int64(st, 9);
	img->current_version = sqlite3_column_int(st, 10);
	img->boot = sqlite3_column_int(st, 11);
	col_text(st, 12, img->kernel, sizeof img->kernel);
	col_text(st, 13, img->initrd, sizeof img->initrd);
	col_text(st, 14, img->cmdline, sizeof img->cmdline);
}

/* Bind the mutable image fields to parameters 1..8. */
static void bind_image(sqlite3_stmt *st, const struct db_image *img)
{
	bind_text(st, 1, img->name);
	bind_text(st, 2, img->path);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)img->size);
	bind_text(st, 4, img->fs_uuid);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)img->inode);
	bind_text(st, 6, img->head_sum);
	bind_text(st, 7, img->full_sum);
	bind_text(st, 8, img->description);
}

/* Insert an image; sets img->id and img->created. */
int db_image_add(struct db *db, struct db_image *img)
{
	sqlite3_stmt *st;
	int ret = prep(db, "INSERT INTO images (name, path, size, fs_uuid, inode, head_sum, full_sum,"
		       " description, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", &st);
	if (ret < 0)
		return ret;
	int64_t now = time(NULL);
	bind_image(st, img);
	sqlite3_bind_int64(st, 9, now);
	ret = exec_stmt(db, st, -EIO, "add image", NULL);
	if (ret == 0) {
		img->id = sqlite3_last_insert_rowid(db->h);
		img->created = now;
	}
	return ret;
}

/* Select one image by a text or integer key bound to ?1. */
static int image_get_by(struct db *db, const char *sql, const char *name, int64_t id,
			struct db_image *out)
{
	sqlite3_stmt *st;
	int ret = prep(db, sql, &st);
	if (ret < 0)
		return ret;
	if (name)
		bind_text(st, 1, name);
	else
		sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_image(st, out);
	else
		ret = rc == SQLITE_DONE ? -ENOENT : db_errno(db, rc, -EIO, "get image");
	sqlite3_finalize(st);
	return ret;
}

/* Image by name. */
int db_image_get(struct db *db, const char *name, struct db_image *out)
{
	return image_get_by(db, "SELECT " IMAGE_COLS " FROM images WHERE name = ?1", name, 0, out);
}

/* Image by id. */
int db_image_get_id(struct db *db, int64_t id, struct db_image *out)
{
	return image_get_by(db, "SELECT " IMAGE_COLS " FROM images WHERE id = ?1", NULL, id, out);
}

/* Update every mutable field of the image with img->id. */
int db_image_update(struct db *db, const struct db_image *img)
{
	sqlite3_stmt *st;
	int changes = 0;
	int ret = prep(db, "UPDATE images SET name = ?1, path = ?2, size = ?3, fs_uuid = ?4,"
		       " inode = ?5, head_sum = ?6, full_sum = ?7, description = ?8 WHERE id = ?9", &st);
	if (ret < 0)
		return ret;
	bind_image(st, img);
	sqlite3_bind_int64(st, 9, img->id);
	ret = exec_stmt(db, st, -EIO, "update image", &changes);
	return ret < 0 ? ret : changes ? 0 : -ENOENT;
}

/* Delete an image; -ENOTEMPTY while clients link to it. */
int db_image_rm(struct db *db, int64_t id)
{
	sqlite3_stmt *st;
	int changes = 0;
	int ret = prep(db, "DELETE FROM images WHERE id = ?1", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, id);
	ret = exec_stmt(db, st, -ENOTEMPTY, "remove image", &changes);
	return ret < 0 ? ret : changes ? 0 : -ENOENT;
}

/* Run a statement with one integer parameter and return its integer result. */
static int count_by_id(struct db *db, const char *sql, int64_t id)
{
	sqlite3_stmt *st;
	int ret = prep(db, sql, &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = (int)MIN(sqlite3_column_int64(st, 0), INT_MAX);
	else
		ret = db_errno(db, rc, -EIO, "count");
	sqlite3_finalize(st);
	return ret;
}

/* Number of clients linked to image id. */
int db_image_count_clients(struct db *db, int64_t id)
{
	return count_by_id(db, "SELECT count(*) FROM clients WHERE image_id = ?1", id);
}

/* Unlink every client of image id; returns how many were unlinked. */
int db_image_unlink_clients(struct db *db, int64_t id)
{
	sqlite3_stmt *st;
	int changes = 0;
	int ret = prep(db, "UPDATE clients SET image_id = NULL WHERE image_id = ?1", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, id);
	ret = exec_stmt(db, st, -EIO, "unlink clients", &changes);
	return ret < 0 ? ret : changes;
}

/* Every image ordered by name; cb's non-zero return stops and is returned. */
int db_image_list(struct db *db, int (*cb)(const struct db_image *, void *), void *arg)
{
	sqlite3_stmt *st;
	int ret = prep(db, "SELECT " IMAGE_COLS " FROM images ORDER BY name", &st);
	if (ret < 0)
		return ret;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_image img;
		row_image(st, &img);
		if ((ret = cb(&img, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = db_errno(db, rc, -EIO, "list images");
	sqlite3_finalize(st);
	return ret;
}

/* ---- clients ---- */

/* Fill *c from a row selected with CLIENT_SELECT. */
static void row_client(sqlite3_stmt *st, struct db_client *c)
{
	memset(c, 0, sizeof *c);
	c->id = sqlite3_column_int64(st, 0);
	col_text(st, 1, c->mac, sizeof c->mac);
	col_text(st, 2, c->name, sizeof c->name);
	c->image_id = sqlite3_column_int64(st, 3);
	col_text(st, 4, c->image_name, sizeof c->image_name);
	c->mode = sqlite3_column_int(st, 5);
	c->created = sqlite3_column_int64(st, 6);
	c->last_seen = sqlite3_column_int64(st, 7);
	c->overlay_epoch = sqlite3_column_int64(st, 8);
	c->menu_timeout = sqlite3_column_int(st, 9);
	col_text(st, 10, c->cmdline, sizeof c->cmdline);
	c->san_keep = sqlite3_column_int(st, 11) != 0;
	c->san_drive = sqlite3_column_int(st, 12);
}

/* Bind an image id, 0 as NULL (no image). */
static void bind_image_id(sqlite3_stmt *st, int i, int64_t id)
{
	if (id)
		sqlite3_bind_int64(st, i, id);
	else
		sqlite3_bind_null(st, i);
}

/* Insert a client; sets c->id and c->created. */
int db_client_add(struct db *db, struct db_client *c)
{
	sqlite3_stmt *st;
	int ret = prep(db, "INSERT INTO clients (mac, name, image_id, mode, created, last_seen)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &st);
	if (ret < 0)
		return ret;
	int64_t now = time(NULL);
	bind_text(st, 1, c->mac);
	bind_text(st, 2, c->name);
	bind_image_id(st, 3, c->image_id);
	sqlite3_bind_int(st, 4, c->mode);
	sqlite3_bind_int64(st, 5, now);
	sqlite3_bind_int64(st, 6, c->last_seen);
	ret = exec_stmt(db, st, -ENOENT, "add client", NULL);
	if (ret == 0) {
		c->id = sqlite3_last_insert_rowid(db->h);
		c->created = now;
		c->menu_timeout = DB_MENU_TIMEOUT_DEFAULT; /* the columns' defaults (db_client_set_boot changes them) */
		c->san_keep = false;
		c->san_drive = DB_SAN_DRIVE_DEFAULT;
	}
	return ret;
}

/* Client by canonical MAC, with its image name. */
int db_client_get(struct db *db, const char *mac, struct db_client *out)
{
	sqlite3_stmt *st;
	int ret = prep(db, CLIENT_SELECT "WHERE c.mac = ?1", &st);
	if (ret < 0)
		return ret;
	bind_text(st, 1, mac);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_client(st, out);
	else
		ret = rc == SQLITE_DONE ? -ENOENT : db_errno(db, rc, -EIO, "get client");
	sqlite3_finalize(st);
	return ret;
}

/* Update name, image_id, mode and last_seen of the client with c->id. */
int db_client_update(struct db *db, const struct db_client *c)
{
	sqlite3_stmt *st;
	int changes = 0;
	int ret = prep(db, "UPDATE clients SET name = ?1, image_id = ?2, mode = ?3, last_seen = ?4"
		       " WHERE id = ?5", &st);
	if (ret < 0)
		return ret;
	bind_text(st, 1, c->name);
	bind_image_id(st, 2, c->image_id);
	sqlite3_bind_int(st, 3, c->mode);
	sqlite3_bind_int64(st, 4, c->last_seen);
	sqlite3_bind_int64(st, 5, c->id);
	ret = exec_stmt(db, st, -ENOENT, "update client", &changes);
	return ret < 0 ? ret : changes ? 0 : -ENOENT;
}

/* Delete a client by MAC. */
int db_client_rm(struct db *db, const char *mac)
{
	sqlite3_stmt *st;
	int changes = 0;
	int ret = prep(db, "DELETE FROM clients WHERE mac = ?1", &st);
	if (ret < 0)
		return ret;
	bind_text(st, 1, mac);
	ret = exec_stmt(db, st, -EIO, "remove client", &changes);
	return ret < 0 ? ret : changes ? 0 : -ENOENT;
}

/* Step a client query and call cb per row (see db_image_list). */
static int client_rows(struct db *db, sqlite3_stmt *st,
		       int (*cb)(const struct db_client *, void *), void *arg)
{
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_client c;
		row_client(st, &c);
		if ((ret = cb(&c, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = db_errno(db, rc, -EIO, "list clients");
	sqlite3_finalize(st);
	return ret;
}

/* Every client ordered by name. */
int db_client_list(struct db *db, int (*cb)(const struct db_client *, void *), void *arg)
{
	sqlite3_stmt *st;
	int ret = prep(db, CLIENT_SELECT "ORDER BY c.name", &st);
	return ret < 0 ? ret : client_rows(db, st, cb, arg);
}

/* Clients linked to image_id (0 = unlinked) ordered by name. */
int db_client_list_image(struct db *db, int64_t image_id,
			 int (*cb)(const struct db_client *, void *), void *arg)
{
	sqlite3_stmt *st;
	int ret = prep(db, CLIENT_SELECT "WHERE coalesce(c.image_id, 0) = ?1 ORDER BY c.name", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, image_id);
	return client_rows(db, st, cb, arg);
}

/* Lowest "PC%03d" (from PC001) that no client uses. */
int db_client_next_name(struct db *db, char out[DB_NAME_MAX])
{
	sqlite3_stmt *st;
	int ret = prep(db, "SELECT 1 FROM clients WHERE name = ?1", &st);
	if (ret < 0)
		return ret;
	ret = -ENOSPC;
	for (int n = 1; n < 1000000; n++) {
		snprintf(out, DB_NAME_MAX, "PC%03d", n);
		sqlite3_reset(st);
		bind_text(st, 1, out);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE) {
			ret = 0;
			break;
		}
		if (rc != SQLITE_ROW) {
			ret = db_errno(db, rc, -EIO, "next client name");
			break;
		}
	}
	sqlite3_finalize(st);
	return ret;
}

/* ---- events ---- */

/* Append an event now; mac NULL for appliance-wide events. */
int db_event_add(struct db *db, const char *mac, const char *kind, const char *text)
{
	sqlite3_stmt *st;
	int ret = prep(db, "INSERT INTO events (time, mac, kind, text) VALUES (?1, ?2, ?3, ?4)", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, time(NULL));
	bind_text(st, 2, mac ? mac : "");
	bind_text(st, 3, kind);
	bind_text(st, 4, text);
	return exec_stmt(db, st, -EIO, "add event", NULL);
}

/* Events newest first, filtered by mac (NULL = all) and since; limit 0 = all. */
int db_event_list(struct db *db, const char *mac, int64_t since, int limit,
		  int (*cb)(const struct db_event *, void *), void *arg)
{
	sqlite3_stmt *st;
	int ret = prep(db, "SELECT id, time, mac, kind, text FROM events"
		       " WHERE (?1 IS NULL OR mac = ?1) AND time >= ?2"
		       " ORDER BY time DESC, id DESC LIMIT ?3", &st);
	if (ret < 0)
		return ret;
	bind_text(st, 1, mac);
	sqlite3_bind_int64(st, 2, since);
	sqlite3_bind_int(st, 3, limit > 0 ? limit : -1);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_event e;
		memset(&e, 0, sizeof e);
		e.id = sqlite3_column_int64(st, 0);
		e.time = sqlite3_column_int64(st, 1);
		col_text(st, 2, e.mac, sizeof e.mac);
		col_text(st, 3, e.kind, sizeof e.kind);
		col_text(st, 4, e.text, sizeof e.text);
		if ((ret = cb(&e, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = db_errno(db, rc, -EIO, "list events");
	sqlite3_finalize(st);
	return ret;
}

/* ---- modes ---- */

static const char *const mode_names[] = { "ephemeral", "persistent", "maintenance" };

/* Name of an overlay mode, "?" if out of range. */
const char *db_mode_name(int mode)
{
	return mode >= 0 && mode < (int)ARRAY_SIZE(mode_names) ? mode_names[mode] : "?";
}

/* Mode from its name; -1 if unknown. */
int db_mode_parse(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(mode_names); i++)
		if (strcmp(s, mode_names[i]) == 0)
			return (int)i;
	return -1;
}

/* ---- versions ---- */

static void row_version(sqlite3_stmt *st, struct db_version *v)
{
	memset(v, 0, sizeof *v);
	v->id = sqlite3_column_int64(st, 0);
	v->image_id = sqlite3_column_int64(st, 1);
	v->number = sqlite3_column_int(st, 2);
	col_text(st, 3, v->data_path, sizeof v->data_path);
	col_text(st, 4, v->map_path, sizeof v->map_path);
	col_text(st, 5, v->base_path, sizeof v->base_path);
	col_text(st, 6, v->note, sizeof v->note);
	v->created = sqlite3_column_int64(st, 7);
	v->block_size = (uint32_t)sqlite3_column_int64(st, 8);
}

#define VERSION_SELECT "SELECT id, image_id, number, data_path, map_path, base_path, note, created, block_size FROM versions "

/* Add version v->number (0 = the next free one, at least 2) of v->image_id. */
int db_version_add(struct db *db, struct db_version *v)
{
	sqlite3_stmt *st;
	int ret = prep(db, "INSERT INTO versions (image_id, number, data_path, map_path, base_path, note, created,"
		       " block_size) VALUES (?1, CASE WHEN ?2 > 0 THEN ?2 ELSE (SELECT max(2, coalesce(max(number), 1) + 1)"
		       " FROM versions WHERE image_id = ?1) END, ?3, ?4, ?5, ?6, ?7, ?8)", &st);
	if (ret < 0)
		return ret;
	int64_t now = time(NULL);
	sqlite3_bind_int64(st, 1, v->image_id);
	sqlite3_bind_int(st, 2, v->number);
	bind_text(st, 3, v->data_path);
	bind_text(st, 4, v->map_path);
	bind_text(st, 5, v->base_path);
	bind_text(st, 6, v->note);
	sqlite3_bind_int64(st, 7, now);
	sqlite3_bind_int64(st, 8, v->block_size ? v->block_size : 4096);
	ret = exec_stmt(db, st, -ENOENT, "add version", NULL);
	if (ret == 0) {
		int64_t id = sqlite3_last_insert_rowid(db->h);
		ret = prep(db, VERSION_SELECT "WHERE id = ?1", &st);
		if (ret < 0)
			return ret;
		sqlite3_bind_int64(st, 1, id);
		if (sqlite3_step(st) == SQLITE_ROW)
			row_version(st, v);
		sqlite3_finalize(st);
	}
	return ret;
}

int db_version_list(struct db *db, int64_t image_id, int (*cb)(const struct db_version *, void *), void *arg)
{
	sqlite3_stmt *st;
	int ret = prep(db, VERSION_SELECT "WHERE image_id = ?1 ORDER BY number", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, image_id);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_version v;
		row_version(st, &v);
		if ((ret = cb(&v, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = db_errno(db, rc, -EIO, "list versions");
	sqlite3_finalize(st);
	return ret;
}

int db_version_get(struct db *db, int64_t image_id, int number, struct db_version *out)
{
	sqlite3_stmt *st;
	int ret = prep(db, VERSION_SELECT "WHERE image_id = ?1 AND number = ?2", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, image_id);
	sqlite3_bind_int(st, 2, number);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_version(st, out);
	else
		ret = rc == SQLITE_DONE ? -ENOENT : db_errno(db, rc, -EIO, "get version");
	sqlite3_finalize(st);
	return ret;
}

int db_image_set_current(struct db *db, int64_t image_id, int number)
{
	sqlite3_stmt *st;
	int changes = 0;
	if (number != 1) {
		struct db_version v;
		int r = db_version_get(db, image_id, number, &v);
		if (r < 0)
			return r;
	}
	int ret = prep(db, "UPDATE images SET current_version = ?2 WHERE id = ?1", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, image_id);
	sqlite3_bind_int(st, 2, number);
	ret = exec_stmt(db, st, -EIO, "set current version", &changes);
	return ret == 0 && changes == 0 ? -ENOENT : ret;
}

int db_client_bump_epoch(struct db *db, const char *mac)
{
	sqlite3_stmt *st;
	int changes = 0;
	int ret = prep(db, "UPDATE clients SET overlay_epoch = overlay_epoch + 1 WHERE mac = ?1", &st);
	if (ret < 0)
		return ret;
	bind_text(st, 1, mac);
	ret = exec_stmt(db, st, -EIO, "reset overlay", &changes);
	return ret == 0 && changes == 0 ? -ENOENT : ret;
}

int db_version_chain(struct db *db, const struct db_image *img, int number, struct db_chain *out)
{
	memset(out, 0, sizeof *out);
	snprintf(out->base_path, sizeof out->base_path, "%s", img->path);
	int n = 0;
	for (int k = number; k >= 2; k--) {
		struct db_version v;
		int r = db_version_get(db, img->id, k, &v);
		if (r < 0)
			return r;
		if (v.base_path[0]) {
			snprintf(out->base_path, sizeof out->base_path, "%s", v.base_path);
			break;
		}
		if (n == DB_CHAIN_MAX)
			return -E2BIG;
		out->deltas[n++] = v; /* top first; reversed below */
	}
	for (int i = 0; i < n / 2; i++) {
		struct db_version t = out->deltas[i];
		out->deltas[i] = out->deltas[n - 1 - i];
		out->deltas[n - 1 - i] = t;
	}
	out->ndeltas = n;
	out->number = number;
	return 0;
}

/* ---- boot: Linux boot files, menus (schema version 3) ---- */

static const char *const boot_names[] = { "sanboot", "linux" };

/* "sanboot", "linux" (db.h). */
const char *db_boot_name(int boot)
{
	return boot >= 0 && boot < (int)ARRAY_SIZE(boot_names) ? boot_names[boot] : "?";
}

/* enum db_boot from its name, -1 if unknown. */
int db_boot_parse(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(boot_names); i++)
		if (strcmp(s, boot_names[i]) == 0)
			return (int)i;
	return -1;
}

/* Store img's boot, kernel, initrd and cmdline (by id). */
int db_image_set_boot(struct db *db, const struct db_image *img)
{
	sqlite3_stmt *st;
	int changes = 0;
	if (img->boot < 0 || img->boot > DB_BOOT_LINUX)
		return -EINVAL;
	int ret = prep(db, "UPDATE images SET boot = ?1, kernel = ?2, initrd = ?3, cmdline = ?4 WHERE id = ?5", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int(st, 1, img->boot);
	bind_text(st, 2, img->kernel);
	bind_text(st, 3, img->initrd);
	bind_text(st, 4, img->cmdline);
	sqlite3_bind_int64(st, 5, img->id);
	ret = exec_stmt(db, st, -EIO, "set image boot", &changes);
	return ret < 0 ? ret : changes ? 0 : -ENOENT;
}

/* Store c's menu_timeout, cmdline, san_keep and san_drive (by id). */
int db_client_set_boot(struct db *db, const struct db_client *c)
{
	sqlite3_stmt *st;
	int changes = 0;
	if (c->san_drive < DB_SAN_DRIVE_MIN || c->san_drive > DB_SAN_DRIVE_MAX)
		return -EINVAL;
	int ret = prep(db, "UPDATE clients SET menu_timeout = ?1, cmdline = ?2, san_keep = ?3, san_drive = ?4"
		       " WHERE id = ?5", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int(st, 1, c->menu_timeout);
	bind_text(st, 2, c->cmdline);
	sqlite3_bind_int(st, 3, c->san_keep ? 1 : 0);
	sqlite3_bind_int(st, 4, c->san_drive);
	sqlite3_bind_int64(st, 5, c->id);
	ret = exec_stmt(db, st, -EIO, "set client boot", &changes);
	return ret < 0 ? ret : changes ? 0 : -ENOENT;
}

/* The images client_id may choose from at boot, in menu order. */
int db_client_menu_get(struct db *db, int64_t client_id, struct db_menu *out)
{
	sqlite3_stmt *st;
	memset(out, 0, sizeof *out);
	int ret = prep(db, "SELECT m.image_id, i.name FROM client_menu m JOIN images i ON i.id = m.image_id"
		       " WHERE m.client_id = ?1 ORDER BY m.pos", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, client_id);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && out->n < DB_MENU_MAX) {
		out->image_id[out->n] = sqlite3_column_int64(st, 0);
		col_text(st, 1, out->name[out->n], sizeof out->name[0]);
		out->n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = db_errno(db, rc, -EIO, "get client menu");
	sqlite3_finalize(st);
	return ret;
}

/* Replace client_id's menu with image_id[0..n) (n = 0: no menu). */
int db_client_menu_set(struct db *db, int64_t client_id, const int64_t *image_id, int n)
{
	sqlite3_stmt *st;
	if (n < 0 || n > DB_MENU_MAX)
		return -E2BIG;
	int ret = prep(db, "DELETE FROM client_menu WHERE client_id = ?1", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, client_id);
	if ((ret = exec_stmt(db, st, -EIO, "clear client menu", NULL)) < 0)
		return ret;
	for (int i = 0; i < n && ret == 0; i++) {
		if ((ret = prep(db, "INSERT INTO client_menu (client_id, image_id, pos) VALUES (?1, ?2, ?3)", &st)) < 0)
			break;
		sqlite3_bind_int64(st, 1, client_id);
		sqlite3_bind_int64(st, 2, image_id[i]);
		sqlite3_bind_int(st, 3, i);
		ret = exec_stmt(db, st, -ENOENT, "set client menu", NULL);
	}
	return ret;
}

/* ---- jobs ---- */

#define JOB_SELECT "SELECT id, kind, image_id, image, state, pid, pid_start, done_bytes, total_bytes," \
	" started, finished, path, version, error FROM jobs "

static void row_job(sqlite3_stmt *st, struct db_job *j)
{
	memset(j, 0, sizeof *j);
	j->id = sqlite3_column_int64(st, 0);
	col_text(st, 1, j->kind, sizeof j->kind);
	j->image_id = sqlite3_column_int64(st, 2);
	col_text(st, 3, j->image, sizeof j->image);
	col_text(st, 4, j->state, sizeof j->state);
	j->pid = sqlite3_column_int64(st, 5);
	j->pid_start = (uint64_t)sqlite3_column_int64(st, 6);
	j->done_bytes = (uint64_t)sqlite3_column_int64(st, 7);
	j->total_bytes = (uint64_t)sqlite3_column_int64(st, 8);
	j->started = sqlite3_column_int64(st, 9);
	j->finished = sqlite3_column_int64(st, 10);
	col_text(st, 11, j->path, sizeof j->path);
	j->version = sqlite3_column_int(st, 12);
	col_text(st, 13, j->error, sizeof j->error);
}

/* Add j as running (-EEXIST if a job of its kind runs on its image). */
int db_job_add(struct db *db, struct db_job *j)
{
	sqlite3_stmt *st;
	int ret = prep(db, "INSERT INTO jobs (kind, image_id, image, state, total_bytes, started, path, version)"
		       " VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7)", &st);
	if (ret < 0)
		return ret;
	j->started = time(NULL);
	bind_text(st, 1, j->kind);
	sqlite3_bind_int64(st, 2, j->image_id);
	bind_text(st, 3, j->image);
	sqlite3_bind_int64(st, 4, (int64_t)j->total_bytes);
	sqlite3_bind_int64(st, 5, j->started);
	bind_text(st, 6, j->path);
	sqlite3_bind_int(st, 7, j->version);
	ret = exec_stmt(db, st, -ENOENT, "add job", NULL);
	if (ret == 0) {
		j->id = sqlite3_last_insert_rowid(db->h);
		snprintf(j->state, sizeof j->state, "running");
	}
	return ret;
}

/* Run one UPDATE of a job that must still be running; -ENOENT if it is not. */
static int job_update(struct db *db, sqlite3_stmt *st, const char *what)
{
	int changes = 0;
	int ret = exec_stmt(db, st, -EIO, what, &changes);
	return ret == 0 && changes == 0 ? -ENOENT : ret;
}

int db_job_set_pid(struct db *db, int64_t id, int64_t pid, uint64_t pid_start)
{
	sqlite3_stmt *st;
	int ret = prep(db, "UPDATE jobs SET pid = ?2, pid_start = ?3 WHERE id = ?1 AND state = 'running'", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, pid);
	sqlite3_bind_int64(st, 3, (int64_t)pid_start);
	return job_update(db, st, "set job pid");
}

int db_job_progress(struct db *db, int64_t id, uint64_t done, uint64_t total)
{
	sqlite3_stmt *st;
	int ret = prep(db, "UPDATE jobs SET done_bytes = ?2, total_bytes = ?3 WHERE id = ?1 AND state = 'running'", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (int64_t)done);
	sqlite3_bind_int64(st, 3, (int64_t)total);
	return job_update(db, st, "job progress");
}

int db_job_finish(struct db *db, int64_t id, bool ok, const char *error)
{
	sqlite3_stmt *st;
	int ret = prep(db, "UPDATE jobs SET state = ?2, finished = ?3, error = ?4,"
		       " done_bytes = CASE WHEN ?2 = 'done' THEN total_bytes ELSE done_bytes END"
		       " WHERE id = ?1 AND state = 'running'", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, ok ? "done" : "failed");
	sqlite3_bind_int64(st, 3, time(NULL));
	bind_text(st, 4, error ? error : "");
	return job_update(db, st, "finish job");
}

int db_job_get(struct db *db, int64_t id, struct db_job *out)
{
	sqlite3_stmt *st;
	int ret = prep(db, JOB_SELECT "WHERE id = ?1", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_job(st, out);
	else
		ret = rc == SQLITE_DONE ? -ENOENT : db_errno(db, rc, -EIO, "get job");
	sqlite3_finalize(st);
	return ret;
}

int db_job_list(struct db *db, bool running_only, int limit, int (*cb)(const struct db_job *, void *), void *arg)
{
	sqlite3_stmt *st;
	int ret = prep(db, JOB_SELECT "WHERE (?1 = 0 OR state = 'running') ORDER BY id DESC LIMIT ?2", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int(st, 1, running_only);
	sqlite3_bind_int(st, 2, limit > 0 ? limit : -1);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_job j;
		row_job(st, &j);
		if ((ret = cb(&j, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = db_errno(db, rc, -EIO, "list jobs");
	sqlite3_finalize(st);
	return ret;
}

/* ---- backup (bootlinkctl backup / restore) ---- */

/* Copy the whole database into a new file dest with sqlite's online
 * backup API: one step of all pages under one read transaction, so the
 * copy is a consistent snapshot while bootlinkd and other bootlinkctl
 * runs go on writing (WAL: readers never block the writer). */
int db_backup(struct db *db, const char *dest)
{
	sqlite3 *out = NULL;
	int rc = sqlite3_open_v2(dest, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		log_err("database backup: cannot create %s: %s", dest,
			out ? sqlite3_errmsg(out) : sqlite3_errstr(rc));
		sqlite3_close_v2(out);
		return -EIO;
	}
	sqlite3_busy_timeout(out, 5000);
	sqlite3_backup *b = sqlite3_backup_init(out, "main", db->h, "main");
	if (!b) {
		log_err("database backup to %s: %s", dest, sqlite3_errmsg(out));
		sqlite3_close_v2(out);
		return -EIO;
	}
	int tries = 0;
	do {
		rc = sqlite3_backup_step(b, -1);
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(100);
	} while ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && ++tries < 50);
	sqlite3_backup_finish(b);
	int ret = rc == SQLITE_DONE ? 0 : (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ? -EBUSY : -EIO;
	if (ret == -EIO)
		log_err("database backup to %s: %s", dest, sqlite3_errstr(rc));
	sqlite3_close_v2(out);
	return ret;
}

/* Set the three file paths of version row v->id. */
int db_version_set_paths(struct db *db, const struct db_version *v)
{
	sqlite3_stmt *st;
	int changes = 0;
	int ret = prep(db, "UPDATE versions SET data_path = ?2, map_path = ?3, base_path = ?4 WHERE id = ?1", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, v->id);
	bind_text(st, 2, v->data_path);
	bind_text(st, 3, v->map_path);
	bind_text(st, 4, v->base_path);
	ret = exec_stmt(db, st, -EIO, "set version paths", &changes);
	return ret == 0 && changes == 0 ? -ENOENT : ret;
}

/* Delete events older than before (unix time); returns how many. */
int db_event_prune(struct db *db, int64_t before)
{
	sqlite3_stmt *st;
	int changes = 0;
	int ret = prep(db, "DELETE FROM events WHERE time < ?1", &st);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, before);
	ret = exec_stmt(db, st, -EIO, "prune events", &changes);
	return ret < 0 ? ret : changes;
}

/* Rows in the images and clients tables together. */
int db_count_rows(struct db *db)
{
	int64_t n = 0;
	int ret = query_int(db, "SELECT (SELECT count(*) FROM images) + (SELECT count(*) FROM clients)", 0, &n);
	return ret < 0 ? ret : (int)n;
}
