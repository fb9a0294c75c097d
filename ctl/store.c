/* store.c — config, database and lookups for the commands (see store.h).
 *
 * Design: the messages here are the ones users meet most ("image 'x' not
 * found; images: ..."), so they are written once and shared. A change is
 * BEGIN IMMEDIATE ... event ... COMMIT, so the event log never disagrees
 * with the state it describes.
 */
#include "store.h"

#include "out.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <pwd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const struct bl_conf *loaded;   /* for store_give() */

/* Give path to daemon/user (store.h). */
void store_give(const char *path)
{
	struct passwd *pw;
	if (!loaded || !loaded->daemon_user[0] || strcmp(loaded->daemon_user, "root") == 0 || geteuid() != 0 ||
	    !(pw = getpwnam(loaded->daemon_user)))
		return;
	if (chown(path, pw->pw_uid, pw->pw_gid) < 0)
		fprintf(stderr, "bootlinkctl: warning: cannot give %s to user %s: %s; bootlinkd may not be able "
			"to read it\n", path, loaded->daemon_user, strerror(errno));
}

/* Remember the config for store_give() (commands that skip store_open). */
void store_set_conf(const struct bl_conf *conf)
{
	loaded = conf;
}

/* Load the config tree and open the database. */
int store_open(struct ctl *c, bool create)
{
	char err[1024];
	loaded = &c->conf;
	int ret = conf_load(c->conf_dir, &c->conf, err, sizeof err);
	if (ret == -ENOENT || ret == -ENOTDIR)
		return out_fail("%s; create it, or name the config tree with: bootlinkctl -c DIR ...", err);
	if (ret == -EINVAL)
		return out_fail("%s; fix that file, or remove it to use the default (see man 5 bootlink-config)", err);
	if (ret < 0)
		return out_fail("%s", err);
	ret = db_open(c->conf.db_path, create, &c->db, err, sizeof err);
	if (ret < 0)
		return out_fail("%s", err);
	return CTL_OK;
}

/* Message for a failed database call. */
int store_fail(int err, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (err == -EBUSY)
		return out_fail("%s: the database is locked by another process (waited 5 s): another bootlinkctl "
				"(a commit, a restore) or a sqlite3 shell holds it; try again when it is done", what);
	if (err == -EIO)
		return out_fail("%s: database error (logged above); check the database file and "
				"the disk holding it", what);
	return out_fail("%s: %s", what, strerror(-err));
}

/* Canonical MAC or an error showing the accepted form. */
int store_mac(const char *arg, char mac[MAC_STR_LEN])
{
	if (mac_normalize(arg, mac) < 0)
		return out_fail("invalid MAC address '%s': use six hex byte pairs, like "
				"52:54:00:aa:bb:01", arg);
	return CTL_OK;
}

struct names {
	char *buf;
	size_t len, used;
	bool full;
};

/* db_image_list callback: append ", name" while it fits. */
static int names_cb(const struct db_image *img, void *arg)
{
	struct names *n = arg;
	size_t need = strlen(img->name) + (n->used ? 2 : 0);
	if (n->full || n->used + need + 4 >= n->len) {
		if (!n->full)
			snprintf(n->buf + n->used, n->len - n->used, ", ...");
		n->full = true;
		return 0;
	}
	n->used += (size_t)snprintf(n->buf + n->used, n->len - n->used, "%s%s",
				    n->used ? ", " : "", img->name);
	return 0;
}

/* Comma-separated image names, or "none". */
void store_image_names(struct ctl *c, char *buf, size_t len)
{
	struct names n = { .buf = buf, .len = len };
	buf[0] = 0;
	if (db_image_list(c->db, names_cb, &n) < 0 || !buf[0])
		snprintf(buf, len, "none");
}

/* Image by name, or an error listing the images. */
int store_image(struct ctl *c, const char *name, struct db_image *img)
{
	char names[512];
	int ret = db_image_get(c->db, name, img);
	if (ret == -ENOENT) {
		store_image_names(c, names, sizeof names);
		if (strcmp(names, "none") == 0)
			return out_fail("image '%s' not found; there are no images yet: add one with: "
					"bootlinkctl image add NAME FILE", name);
		return out_fail("image '%s' not found; images: %s", name, names);
	}
	if (ret < 0)
		return store_fail(ret, "reading image '%s'", name);
	return CTL_OK;
}

/* Client by canonical MAC, or an error saying how to add it. */
int store_client(struct ctl *c, const char *mac, struct db_client *cl)
{
	int ret = db_client_get(c->db, mac, cl);
	if (ret == -ENOENT)
		return out_fail("client %s not found; add it with: bootlinkctl client add %s "
				"--image NAME", mac, mac);
	if (ret < 0)
		return store_fail(ret, "reading client %s", mac);
	return CTL_OK;
}

/* Start a write transaction. */
int store_begin(struct ctl *c)
{
	int ret = db_begin(c->db);
	return ret < 0 ? store_fail(ret, "starting a change") : CTL_OK;
}

/* Append the event and commit. */
int store_commit(struct ctl *c, const char *mac, const char *kind, const char *fmt, ...)
{
	char text[DB_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	int ret = db_event_add(c->db, mac, kind, text);
	if (ret < 0)
		return store_abort(c, store_fail(ret, "recording the event"));
	if (c->conf.events_keep_days &&
	    (ret = db_event_prune(c->db, time(NULL) - (int64_t)c->conf.events_keep_days * 86400)) < 0)
		return store_abort(c, store_fail(ret, "pruning the event log (events/keep_days)"));
	ret = db_commit(c->db);
	if (ret < 0)
		return store_abort(c, store_fail(ret, "saving the change"));
	return CTL_OK;
}

/* Roll back and pass rc through. */
int store_abort(struct ctl *c, int rc)
{
	db_rollback(c->db);
	return rc;
}

/* ok / MISSING / CHANGED from a stat of the stored path. */
const char *store_image_status(const struct db_image *img)
{
	struct stat st;
	if (stat(img->path, &st) < 0 || !S_ISREG(st.st_mode))
		return "MISSING";
	return (uint64_t)st.st_size == img->size ? "ok" : "CHANGED";
}
