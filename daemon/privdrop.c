/* privdrop.c — see privdrop.h.
 *
 * Design: chown before setuid (afterwards it is too late), then setgroups/
 * setgid/setuid in that order (the reverse would leave root's groups), and
 * a check that setuid(0) now fails, so a partial drop is never mistaken
 * for a full one. glibc applies set*id to every thread of the process;
 * the workers are not started yet anyway. The writability checks use
 * access(W_OK) with the new ids, which is what the later open() calls see.
 */
#include "privdrop.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "util.h"

#define MAX_DIRS 16

/* chown path (not following symlinks); depth 1: also the entries in it. */
static void give(const char *path, uid_t uid, gid_t gid, int depth)
{
	struct stat st;
	if (lstat(path, &st) < 0 || S_ISLNK(st.st_mode))
		return;
	if ((st.st_uid != uid || st.st_gid != gid) && lchown(path, uid, gid) < 0)
		log_warn("daemon/user: cannot give %s to uid %u: %s", path, (unsigned)uid, strerror(errno));
	if (depth <= 0 || !S_ISDIR(st.st_mode))
		return;
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	char sub[CONF_PATH_MAX + 256];
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
			give(sub, uid, gid, depth - 1);
		}
	closedir(d);
}

/* The directory part of path into dir. */
static void dir_of(const char *path, char *dir, size_t len)
{
	snprintf(dir, len, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = 0;
}

/* After the drop: a place we must write, or a clear error. */
static int must_write(const char *user, const char *what, const char *path)
{
	if (access(path, W_OK) == 0 || errno == ENOENT)
		return 0;
	log_err("daemon/user %s cannot write %s %s (%s): give it to the user with: chown -R %s: %s "
		"(or leave daemon/user empty to run as root)", user, what, path, strerror(errno), user, path);
	return -EACCES;
}

/* Drop root (privdrop.h). */
int priv_drop(const struct bl_conf *c)
{
	const char *user = c->daemon_user;
	if (!user[0] || strcmp(user, "root") == 0) {
		log_debug("daemon/user is %s: not changing user", user[0] ? "root" : "empty");
		return 0;
	}
	if (geteuid() != 0) {
		log_info("daemon/user %s: not started as root (uid %u), running as uid %u", user,
			 (unsigned)geteuid(), (unsigned)geteuid());
		return 0;
	}
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		log_warn("daemon/user %s: no such user, so bootlinkd keeps running as root; create it with: "
			 "adduser --system --group --home /var/lib/bootlink %s", user, user);
		return 0;
	}
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	char db_dir[CONF_PATH_MAX], p[CONF_PATH_MAX + 32], dirs[MAX_DIRS][1024];
	dir_of(c->db_path, db_dir, sizeof db_dir);
	int ndirs = split_dirs(c->dir, c->overlay_dirs, dirs, MAX_DIRS);
	/* Our own state, handed over while we still may. */
	give(c->run_dir, uid, gid, 3);
	give(db_dir, uid, gid, 0);
	give(c->db_path, uid, gid, 0);
	static const char *const side[] = { "-wal", "-shm", "-journal" };
	for (size_t i = 0; i < ARRAY_SIZE(side); i++) {
		snprintf(p, sizeof p, "%s%s", c->db_path, side[i]);
		give(p, uid, gid, 0);
	}
	snprintf(p, sizeof p, "%s/bootsets", db_dir);
	give(p, uid, gid, 1);
	for (int i = 0; i < ndirs; i++)
		give(dirs[i], uid, gid, 1);
	give(c->versions_dir, uid, gid, 1);
	if (initgroups(user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		log_err("daemon/user %s: cannot switch to uid %u gid %u: %s", user, (unsigned)uid, (unsigned)gid,
			strerror(errno));
		return -EPERM;
	}
	if (setuid(0) == 0 || geteuid() == 0) {
		log_err("daemon/user %s: still able to become root after the switch; refusing to go on", user);
		return -EPERM;
	}
	log_info("running as user %s (uid %u, gid %u) from now on", user, (unsigned)uid, (unsigned)gid);
	int ret = must_write(user, "the runtime tree (paths/run)", c->run_dir);
	if (!ret)
		ret = must_write(user, "the database (paths/db)", c->db_path);
	if (!ret)
		ret = must_write(user, "the database's directory", db_dir);
	for (int i = 0; !ret && i < ndirs; i++)
		ret = must_write(user, "the overlay directory (overlay/dirs)", dirs[i]);
	return ret;
}
