/* privdrop.h — bootlinkd gives up root once its ports are bound.
 *
 * With daemon/user set (the Debian package sets "bootlink") and bootlinkd
 * started as root, priv_drop() runs after the listeners are bound and
 * before the workers start: it hands bootlinkd's own state to the user
 * (the runtime tree, the database file and its WAL, the boot-set
 * directory, the overlay directories and their files, and paths/versions
 * read access), switches to the user's groups, gid and uid for good, and
 * then checks that every place bootlinkd writes is writable; if one is
 * not, start-up fails with a line that names it and says what to run.
 * Not root, daemon/user empty or "root", or no such user: nothing changes,
 * with a log line saying why.
 */
#ifndef BL_PRIVDROP_H
#define BL_PRIVDROP_H

struct bl_conf;

/* 0, or -errno after logging why start-up must stop. */
int priv_drop(const struct bl_conf *c);

#endif
