/* store.h — the commands' view of the database.
 *
 * Opening the config tree and database, looking things up by the names
 * an administrator typed (with errors that list what does exist and say
 * what to do), and changing state in a transaction that also appends the
 * event describing the change. Every function returning int returns
 * CTL_OK or, after printing the error line, CTL_ERR.
 */
#ifndef CTL_STORE_H
#define CTL_STORE_H

#include "ctl.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>

/* Load the config tree c->conf_dir and open its database (create: make
 * the file and schema if missing). */
int store_open(struct ctl *c, bool create);

/* Error line for a failed db_* call (err is its -errno): "WHAT: why". */
int store_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Canonical MAC from what the user typed. */
int store_mac(const char *arg, char mac[MAC_STR_LEN]);
/* Image by name; if missing the error lists the images. */
int store_image(struct ctl *c, const char *name, struct db_image *img);
/* "win10, ubuntu24" (or "none"), truncated with "..." to fit len. */
void store_image_names(struct ctl *c, char *buf, size_t len);
/* Client by canonical MAC; if missing the error says how to add it. */
int store_client(struct ctl *c, const char *mac, struct db_client *cl);

/* When run as root with daemon/user set to an existing user, chown path
 * to that user, so bootlinkd (which dropped root) can use the files
 * bootlinkctl writes for it (version files, restored files). */
void store_give(const char *path);
/* The config store_give() reads, for commands that do not call store_open(). */
void store_set_conf(const struct bl_conf *conf);

/* Start a change (write transaction). */
int store_begin(struct ctl *c);
/* Append the event (mac may be NULL) and commit; on failure roll back. */
int store_commit(struct ctl *c, const char *mac, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Abandon the change; returns rc so callers can `return store_abort(c, out_fail(...))`. */
int store_abort(struct ctl *c, int rc);

/* "ok", "MISSING" (no regular file at the path) or "CHANGED" (size differs). */
const char *store_image_status(const struct db_image *img);

#endif
