/* stage.c — see stage.h.
 *
 * Three layers, each usable on its own:
 *
 *  1. The walk: device number -> set of whole disks. It reads only files
 *     below env->sysfs (dev/block/M:m, class/block/NAME, DEV/partition,
 *     DEV/slaves/, DEV/loop/backing_file, fs/btrfs/) and, for a device number
 *     sysfs does not know, env->mountinfo. Every recursion (slaves, loop
 *     backing files, overlay layers, btrfs members) carries a depth that
 *     stops at STAGE_MAX_DEPTH, so a cycle in a fake tree cannot hang us.
 *  2. The description (stage_disk_of_path_env): the walk plus the
 *     filesystem's device, type and UUID (libblkid), mount point and space.
 *  3. The choice: probing does the I/O into stage_cand / stage_image, and
 *     stage_verdict / stage_rank are pure, so tests inject free space.
 *
 * mountinfo parsing (stage_mountinfo_parse, stage_mount_find,
 * stage_mount_opt) sits between 1 and 2; text helpers are at the end.
 */
#include "stage.h"
#include "util.h"

#include <blkid.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define STAGE_MAX_DEPTH 8
#define VIRTUAL_PREFIX "virtual:"

static int disks_of_dev_at(const struct stage_env *env, dev_t dev, const char *path,
			   struct stage_disk *out, int depth);
static int disks_of_path(const struct stage_env *env, const char *path, struct stage_disk *out, int depth);

/* ---- small helpers ---- */

/* env->sysfs or "/sys". */
static const char *sysfs_root(const struct stage_env *env)
{
	return env && env->sysfs ? env->sysfs : "/sys";
}

/* env->mountinfo or "/proc/self/mountinfo". */
static const char *mountinfo_path(const struct stage_env *env)
{
	return env && env->mountinfo ? env->mountinfo : "/proc/self/mountinfo";
}

/* snprintf into a path buffer; -ENAMETOOLONG instead of truncating. */
__attribute__((format(printf, 3, 4)))
static int pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Copy a string, always terminated; -ENAMETOOLONG if it did not fit. */
static int copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);
	if (n >= len) {
		if (len)
			dst[0] = 0;
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

/* The last component of a path ("/a/b/sda1" -> "sda1"). */
static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Add a disk name to the set unless it is already there. */
static int set_add(struct stage_disk *d, const char *name)
{
	for (unsigned i = 0; i < d->ndisks; i++)
		if (strcmp(d->disks[i], name) == 0)
			return 0;
	if (d->ndisks == STAGE_MAX_DISKS)
		return -E2BIG;
	int r = copy_str(d->disks[d->ndisks], STAGE_NAME_LEN, name);
	if (r == 0)
		d->ndisks++;
	return r;
}

/* Add the virtual disk standing for device number dev. */
static int set_add_virtual(struct stage_disk *d, dev_t dev)
{
	char name[STAGE_NAME_LEN];
	snprintf(name, sizeof name, VIRTUAL_PREFIX "%u:%u", major(dev), minor(dev));
	return set_add(d, name);
}

/* ---- the sysfs walk ---- */

static int walk_block(const struct stage_env *env, const char *dir, struct stage_disk *out, int depth);

/* Walk the block device called name (class/block/NAME). */
static int walk_name(const struct stage_env *env, const char *name, struct stage_disk *out, int depth)
{
	char p[PATH_MAX], real[PATH_MAX];
	int r = pathf(p, sizeof p, "%s/class/block/%s", sysfs_root(env), name);
	if (r < 0)
		return r;
	if (!realpath(p, real))
		return -errno;
	return walk_block(env, real, out, depth);
}

/* Walk every entry of a directory of block device names (slaves/, btrfs
 * devices/). Returns how many were walked (0: no such directory or empty). */
static int walk_names_in(const struct stage_env *env, const char *dirpath, struct stage_disk *out, int depth)
{
	DIR *d = opendir(dirpath);
	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	int n = 0, r = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		r = walk_name(env, e->d_name, out, depth + 1);
		if (r < 0)
			break;
		n++;
	}
	closedir(d);
	return r < 0 ? r : n;
}

/* A loop device: itself, then the disks of its backing file. A backing file
 * we cannot reach (deleted, another namespace) leaves the loop device alone
 * standing for it. */
static int walk_loop(const struct stage_env *env, const char *name, const char *backing,
		     struct stage_disk *out, int depth)
{
	char file[PATH_MAX];
	int r = set_add(out, name);
	if (r < 0)
		return r;
	ssize_t n = read_small_file(backing, file, sizeof file);
	if (n < 0)
		return (int)n;
	str_rstrip(file);
	if (!file[0])
		return 0;
	r = disks_of_path(env, file, out, depth + 1);
	if (r == -ENOENT || r == -ENOTDIR || r == -EACCES)
		return 0;
	return r;
}

/* dir is the canonical sysfs directory of a block device. A partition
 * stands for its disk (the parent directory); a disk with slaves (dm, md)
 * for the disks of its slaves; a loop device see walk_loop(); any other
 * disk for itself. */
static int walk_block(const struct stage_env *env, const char *dir, struct stage_disk *out, int depth)
{
	char p[PATH_MAX], disk[PATH_MAX];
	int r;
	if (depth > STAGE_MAX_DEPTH)
		return -ELOOP;
	if ((r = copy_str(disk, sizeof disk, dir)) < 0)
		return r;
	if ((r = pathf(p, sizeof p, "%s/partition", disk)) < 0)
		return r;
	if (access(p, F_OK) == 0)
		*strrchr(disk, '/') = 0;   /* canonical, so there is a '/' */
	const char *name = base_name(disk);
	if ((r = pathf(p, sizeof p, "%s/loop/backing_file", disk)) < 0)
		return r;
	if (access(p, F_OK) == 0)
		return walk_loop(env, name, p, out, depth);
	if ((r = pathf(p, sizeof p, "%s/slaves", disk)) < 0)
		return r;
	r = walk_names_in(env, p, out, depth);
	if (r != 0)
		return r < 0 ? r : 0;
	return set_add(out, name);
}

/* ---- devices sysfs does not know: through mountinfo ---- */

/* btrfs: every device of the filesystem that has member name, from
 * fs/btrfs/UUID/devices/. Returns how many were walked (0: not found). */
static int walk_btrfs(const struct stage_env *env, const char *name, struct stage_disk *out, int depth)
{
	char root[PATH_MAX], p[PATH_MAX];
	int r = pathf(root, sizeof root, "%s/fs/btrfs", sysfs_root(env));
	if (r < 0)
		return r;
	DIR *d = opendir(root);
	if (!d)
		return 0;
	struct dirent *e;
	r = 0;
	while (r == 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.' || pathf(p, sizeof p, "%s/%s/devices/%s", root, e->d_name, name) < 0)
			continue;
		if (access(p, F_OK) < 0)
			continue;
		*strrchr(p, '/') = 0;
		r = walk_names_in(env, p, out, depth);
	}
	closedir(d);
	return r;
}

/* A mount whose source is a device node ("/dev/sdb1", "/dev/mapper/vg-lv"):
 * walk that device. Returns 1 if walked, 0 if the source is not a block
 * device sysfs knows. */
static int walk_source(const struct stage_env *env, const struct stage_mount *m, struct stage_disk *out, int depth)
{
	char real[PATH_MAX], p[PATH_MAX], name[STAGE_NAME_LEN];
	if (strncmp(m->source, "/dev/", 5) != 0)
		return 0;
	if (copy_str(name, sizeof name, base_name(realpath(m->source, real) ? real : m->source)) < 0)
		return 0;
	if (pathf(p, sizeof p, "%s/class/block/%s", sysfs_root(env), name) < 0 || !realpath(p, real))
		return 0;
	int r = 0;
	if (strcmp(m->fstype, "btrfs") == 0)
		r = walk_btrfs(env, name, out, depth);
	if (r == 0)
		r = walk_block(env, real, out, depth + 1);
	return r < 0 ? r : 1;
}

/* The disks of one overlayfs layer list ("/a:/b", '\' escapes ':').
 * Returns how many layers were resolved; unreachable ones are skipped. */
static int walk_layers(const struct stage_env *env, char *list, struct stage_disk *out, int depth)
{
	int n = 0;
	char *w = list, *start = list;
	for (char *s = list;; s++) {
		if (*s == '\\' && s[1]) {
			*w++ = *++s;
			continue;
		}
		if (*s && *s != ':') {
			*w++ = *s;
			continue;
		}
		bool end = !*s;
		*w = 0;
		if (*start) {
			int r = disks_of_path(env, start, out, depth + 1);
			if (r < 0 && r != -ENOENT && r != -ENOTDIR && r != -EACCES)
				return r;
			n += r == 0;
		}
		if (end)
			return n;
		start = w = s + 1;
	}
}

/* overlayfs: the disks of its upper and lower layers. Returns how many
 * layers were resolved (0: none, the caller calls it virtual). */
static int walk_overlay(const struct stage_env *env, const struct stage_mount *m, struct stage_disk *out, int depth)
{
	size_t len = strlen(m->opts) + 1;
	char *val = malloc(len), *key = malloc(len);
	int n = 0, r = 0;
	if (!val || !key) {
		r = -ENOMEM;
		goto out;
	}
	for (const char *p = m->opts; *p && r >= 0;) {
		size_t klen = strcspn(p, "=,");
		memcpy(key, p, klen);
		key[klen] = 0;
		if (strcmp(key, "upperdir") == 0 || strcmp(key, "lowerdir") == 0 ||
		    strcmp(key, "lowerdir+") == 0 || strcmp(key, "datadir+") == 0) {
			if (stage_mount_opt(p, key, val, len) == 0 && (r = walk_layers(env, val, out, depth)) > 0)
				n += r;
		}
		p += strcspn(p, ",");
		p += *p == ',';
	}
out:
	free(val);
	free(key);
	return r < 0 ? r : n;
}

/* dev is not a block device: find its mount and go through the mount's
 * source (btrfs, a device node) or layers (overlayfs); failing that, it is
 * the virtual disk named after dev. */
static int disks_of_mount(const struct stage_env *env, dev_t dev, const char *path, struct stage_disk *out, int depth)
{
	struct stage_mount m;
	int r = stage_mount_find(mountinfo_path(env), dev, path, &m);
	if (r == -ENOENT)
		return set_add_virtual(out, dev);
	if (r < 0)
		return r;
	if (strcmp(m.fstype, "overlay") == 0 && makedev(m.major, m.minor) == dev)
		r = walk_overlay(env, &m, out, depth);
	else
		r = walk_source(env, &m, out, depth);
	if (r == 0)
		r = set_add_virtual(out, dev);
	stage_mount_free(&m);
	return r < 0 ? r : 0;
}

/* The disks of device number dev (path: a canonical path on it, or NULL). */
static int disks_of_dev_at(const struct stage_env *env, dev_t dev, const char *path,
			   struct stage_disk *out, int depth)
{
	char p[PATH_MAX], real[PATH_MAX];
	if (depth > STAGE_MAX_DEPTH)
		return -ELOOP;
	int r = pathf(p, sizeof p, "%s/dev/block/%u:%u", sysfs_root(env), major(dev), minor(dev));
	if (r < 0)
		return r;
	if (realpath(p, real))
		return walk_block(env, real, out, depth);
	if (errno != ENOENT)
		return -errno;
	return disks_of_mount(env, dev, path, out, depth);
}

/* The disks of the filesystem holding path, or of the device path names. */
static int disks_of_path(const struct stage_env *env, const char *path, struct stage_disk *out, int depth)
{
	char real[PATH_MAX];
	struct stat st;
	if (!realpath(path, real) || stat(real, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode))
		return disks_of_dev_at(env, st.st_rdev, NULL, out, depth);
	return disks_of_dev_at(env, st.st_dev, real, out, depth);
}

int stage_disks_of_dev(const struct stage_env *env, dev_t dev, const char *path, struct stage_disk *out)
{
	out->ndisks = 0;
	out->is_virtual = false;
	int r = disks_of_dev_at(env, dev, path, out, 0);
	if (r < 0)
		return r;
	out->is_virtual = true;
	for (unsigned i = 0; i < out->ndisks; i++)
		if (strncmp(out->disks[i], VIRTUAL_PREFIX, strlen(VIRTUAL_PREFIX)) != 0)
			out->is_virtual = false;
	return 0;
}

/* ---- the description of a path ---- */

/* fsdev, mount point and (fallback) type: sysfs for a block device number,
 * else the mount's source device. */
static void describe_mount(const struct stage_env *env, const char *real, bool node, struct stage_disk *d)
{
	char p[PATH_MAX], dir[PATH_MAX];
	if (pathf(p, sizeof p, "%s/dev/block/%u:%u", sysfs_root(env), major(d->dev), minor(d->dev)) == 0 &&
	    realpath(p, dir))
		copy_str(d->fsdev, sizeof d->fsdev, base_name(dir));
	struct stage_mount m;
	if (node || stage_mount_find(mountinfo_path(env), d->dev, real, &m) < 0)
		return;
	copy_str(d->mountpoint, sizeof d->mountpoint, m.point);
	copy_str(d->fstype, sizeof d->fstype, m.fstype);
	if (!d->fsdev[0] && !d->is_virtual && strncmp(m.source, "/dev/", 5) == 0)
		copy_str(d->fsdev, sizeof d->fsdev, base_name(realpath(m.source, dir) ? dir : m.source));
	stage_mount_free(&m);
}

/* Filesystem type and UUID of /dev/FSDEV by probing it (root), else from
 * the blkid cache. Best effort: leaves what it cannot find. */
static void describe_blkid(struct stage_disk *d)
{
	char dev[PATH_MAX];
	struct stat st;
	if (!d->fsdev[0] || pathf(dev, sizeof dev, "/dev/%s", d->fsdev) < 0 ||
	    stat(dev, &st) < 0 || !S_ISBLK(st.st_mode))
		return;
	blkid_probe pr = blkid_new_probe_from_filename(dev);
	if (!pr) {
		char *v = blkid_get_tag_value(NULL, "UUID", dev);
		if (v)
			copy_str(d->uuid, sizeof d->uuid, v);
		free(v);
		return;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_UUID | BLKID_SUBLKS_TYPE);
	const char *v;
	if (blkid_do_safeprobe(pr) == 0) {
		if (blkid_probe_lookup_value(pr, "UUID", &v, NULL) == 0)
			copy_str(d->uuid, sizeof d->uuid, v);
		if (blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0)
			copy_str(d->fstype, sizeof d->fstype, v);
	}
	blkid_free_probe(pr);
}

int stage_disk_of_path_env(const struct stage_env *env, const char *path, struct stage_disk *out)
{
	char real[PATH_MAX];
	struct stat st;
	memset(out, 0, sizeof *out);
	if (!realpath(path, real) || stat(real, &st) < 0)
		return -errno;
	bool node = S_ISBLK(st.st_mode);
	out->dev = node ? st.st_rdev : st.st_dev;
	int r = stage_disks_of_dev(env, out->dev, node ? NULL : real, out);
	if (r < 0)
		return r;
	describe_mount(env, real, node, out);
	describe_blkid(out);
	struct statvfs vfs;
	if (!node && statvfs(real, &vfs) == 0) {
		out->free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		out->total_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	}
	return 0;
}

int stage_disk_of_path(const char *path, struct stage_disk *out)
{
	return stage_disk_of_path_env(NULL, path, out);
}

/* ---- comparing sets ---- */

unsigned stage_shared_disks(const struct stage_disk *a, const struct stage_disk *b, char *buf, size_t len)
{
	unsigned n = 0;
	size_t used = 0;
	if (buf && len)
		buf[0] = 0;
	for (unsigned i = 0; i < a->ndisks; i++)
		for (unsigned j = 0; j < b->ndisks; j++) {
			if (strcmp(a->disks[i], b->disks[j]) != 0)
				continue;
			if (buf && used < len) {
				int w = snprintf(buf + used, len - used, "%s%s", n ? "+" : "", a->disks[i]);
				used += w > 0 ? (size_t)w : 0;
			}
			n++;
		}
	return n;
}

bool stage_same_disk(const struct stage_disk *a, const struct stage_disk *b)
{
	return stage_shared_disks(a, b, NULL, 0) > 0;
}

void stage_disks_str(const struct stage_disk *d, char *buf, size_t len)
{
	size_t used = 0;
	if (!len)
		return;
	buf[0] = 0;
	for (unsigned i = 0; i < d->ndisks && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%s", i ? "+" : "", d->disks[i]);
		used += w > 0 ? (size_t)w : 0;
	}
}

/* ---- /proc/self/mountinfo ---- */

/* Undo mountinfo's octal escapes ("\040" is a space) in place. */
static void unescape_octal(char *s)
{
	char *w = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else
			*w++ = *s;
	}
	*w = 0;
}

int stage_mountinfo_parse(char *line, struct stage_mount *m)
{
	char *save = NULL, *f[5];
	memset(m, 0, sizeof *m);
	line[strcspn(line, "\n")] = 0;
	/* id parent maj:min root point options [optional...] - fstype source superopts */
	for (int i = 0; i < 5; i++)
		if (!(f[i] = strtok_r(i ? NULL : line, " ", &save)))
			return -EINVAL;
	if (sscanf(f[2], "%u:%u", &m->major, &m->minor) != 2)
		return -EINVAL;
	m->point = f[4];
	char *t;
	while ((t = strtok_r(NULL, " ", &save)) && strcmp(t, "-") != 0)
		;
	if (!t || !(m->fstype = strtok_r(NULL, " ", &save)) || !(m->source = strtok_r(NULL, " ", &save)))
		return -EINVAL;
	m->opts = strtok_r(NULL, " ", &save);
	if (!m->opts)
		m->opts = m->source + strlen(m->source);   /* "" */
	unescape_octal(m->point);
	unescape_octal(m->fstype);
	unescape_octal(m->source);
	return 0;
}

/* Length of mount point point if it is a prefix of path (on a component
 * boundary), else -1. */
static long prefix_len(const char *point, const char *path)
{
	size_t n = strlen(point);
	if (strcmp(point, "/") == 0)
		return 1;
	if (strncmp(point, path, n) != 0 || (path[n] && path[n] != '/'))
		return -1;
	return (long)n;
}

/* How well mount m matches (dev, path): tier 2 = same device number,
 * tier 1 = only the path; len = prefix length. Higher is better. */
static void match_score(const struct stage_mount *m, dev_t dev, const char *path, int *tier, long *len)
{
	*len = path ? prefix_len(m->point, path) : 0;
	if (makedev(m->major, m->minor) == dev)
		*tier = 2;
	else
		*tier = path && *len >= 0 ? 1 : 0;
}

int stage_mount_find(const char *mountinfo, dev_t dev, const char *path, struct stage_mount *m)
{
	FILE *f = fopen(mountinfo, "re");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	int best_tier = 0, r = 0;
	long best_len = -2;
	memset(m, 0, sizeof *m);
	while (getline(&line, &cap, f) > 0) {
		struct stage_mount c;
		int tier;
		long len;
		char *copy = strdup(line);
		if (!copy) {
			r = -ENOMEM;
			break;
		}
		if (stage_mountinfo_parse(copy, &c) == 0) {
			match_score(&c, dev, path, &tier, &len);
			if (tier > 0 && (tier > best_tier || (tier == best_tier && len >= best_len))) {
				stage_mount_free(m);
				*m = c;
				m->line = copy;
				best_tier = tier;
				best_len = len;
				continue;
			}
		}
		free(copy);
	}
	free(line);
	fclose(f);
	if (r == 0 && !best_tier)
		r = -ENOENT;
	if (r < 0)
		stage_mount_free(m);
	return r;
}

void stage_mount_free(struct stage_mount *m)
{
	free(m->line);
	memset(m, 0, sizeof *m);
}

int stage_mount_opt(const char *opts, const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);
	for (const char *p = opts; *p;) {
		size_t n = strcspn(p, ",");
		if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			size_t vlen = n - klen - 1;
			if (vlen >= len)
				return -ENAMETOOLONG;
			memcpy(buf, p + klen + 1, vlen);
			buf[vlen] = 0;
			unescape_octal(buf);
			return 0;
		}
		p += n;
		p += *p == ',';
	}
	return -ENOENT;
}

/* ---- choosing ---- */

/* "1G" / "512M" / "123" into bytes. */
static int parse_size(const char *s, uint64_t *out)
{
	char num[32];
	size_t n = strlen(s);
	unsigned shift = 0;
	const char *units = "KMGT", *u;
	if (n && isalpha((unsigned char)s[n - 1])) {
		if (!(u = strchr(units, toupper((unsigned char)s[n - 1]))))
			return -EINVAL;
		shift = 10 * (unsigned)(u - units + 1);
		n--;
	}
	if (n == 0 || n >= sizeof num)
		return -EINVAL;
	memcpy(num, s, n);
	num[n] = 0;
	uint64_t v;
	int r = parse_u64(num, 0, UINT64_MAX >> shift, &v);
	if (r < 0)
		return r;
	*out = v << shift;
	return 0;
}

int stage_floor_parse(const char *s, struct stage_floor *f)
{
	char num[32];
	size_t n = strlen(s);
	if (n && s[n - 1] == '%') {
		uint64_t v;
		if (n == 1 || n > sizeof num)
			return -EINVAL;
		memcpy(num, s, n - 1);
		num[n - 1] = 0;
		int r = parse_u64(num, 0, 100, &v);
		if (r == 0)
			f->min_percent = (unsigned)v;
		return r;
	}
	return parse_size(s, &f->min_bytes);
}

int stage_probe_dir(const struct stage_env *env, const char *dir, struct stage_cand *c)
{
	struct stat st;
	memset(c, 0, sizeof *c);
	c->dir = dir;
	if (stat(dir, &st) < 0)
		return c->err = -errno;
	if (!S_ISDIR(st.st_mode))
		return c->err = -ENOTDIR;
	if (access(dir, W_OK | X_OK) < 0)
		return c->err = -errno;
	return c->err = stage_disk_of_path_env(env, dir, &c->disk);
}

int stage_probe_image(const struct stage_env *env, const char *path, struct stage_image *img)
{
	memset(img, 0, sizeof *img);
	img->path = path;
	return img->err = stage_disk_of_path_env(env, path, &img->disk);
}

/* The one-line reason a directory that could not be probed is refused. */
static void reason_probe(const struct stage_cand *c, char *reason, size_t len)
{
	switch (c->err) {
	case -ENOENT:
		snprintf(reason, len, "%s: does not exist; create it (mkdir -p %s) or leave it out", c->dir, c->dir);
		break;
	case -ENOTDIR:
		snprintf(reason, len, "%s: not a directory; give a directory", c->dir);
		break;
	case -EROFS:
		snprintf(reason, len, "%s: on a read-only filesystem; remount it read-write or use another directory",
			 c->dir);
		break;
	case -EACCES:
	case -EPERM:
		snprintf(reason, len, "%s: not writable (%s); give bootlinkd's user write access to it", c->dir,
			 strerror(-c->err));
		break;
	default:
		snprintf(reason, len, "%s: cannot find its disk (%s); check the path", c->dir, strerror(-c->err));
	}
}

/* The free-space floor for a filesystem of total bytes. */
static uint64_t floor_bytes(const struct stage_floor *floor, uint64_t total)
{
	uint64_t pct = total / 100 * floor->min_percent + total % 100 * floor->min_percent / 100;
	return MAX(floor->min_bytes, pct);
}

/* If c shares a disk with an image, the reason (ending with what to do,
 * or with the --force note); returns 1 then, else 0. */
static int reason_image(const struct stage_cand *c, const struct stage_image *img, int nimg, bool force,
			char *reason, size_t len)
{
	char shared[STAGE_MAX_DISKS * STAGE_NAME_LEN], name[64];
	for (int i = 0; i < nimg; i++) {
		if (img[i].err)
			continue;
		unsigned k = stage_shared_disks(&c->disk, &img[i].disk, shared, sizeof shared);
		if (!k)
			continue;
		stage_image_name(img[i].path, name, sizeof name);
		snprintf(reason, len, "%s: on %s, the disk%s that hold%s image %s (%s); %s", c->dir, shared,
			 k > 1 ? "s" : "", k > 1 ? "" : "s", name, img[i].path,
			 force ? "allowed by --force" : "use another disk or --force");
		return 1;
	}
	return 0;
}

int stage_verdict(const struct stage_cand *c, const struct stage_image *img, int nimg,
		  const struct stage_floor *floor, bool force, char *reason, size_t len)
{
	static const struct stage_floor def = { STAGE_FLOOR_DEFAULT_BYTES, 0 };
	char fr[32], tot[32], need[32];
	if (len)
		reason[0] = 0;
	if (c->err) {
		reason_probe(c, reason, len);
		return c->err;
	}
	int shared = reason_image(c, img, nimg, force, reason, len);
	if (shared && !force)
		return -EBUSY;
	uint64_t want = floor_bytes(floor ? floor : &def, c->disk.total_bytes);
	if (c->disk.free_bytes < want) {
		stage_fmt_bytes(c->disk.free_bytes, fr, sizeof fr);
		stage_fmt_bytes(c->disk.total_bytes, tot, sizeof tot);
		stage_fmt_bytes(want, need, sizeof need);
		snprintf(reason, len, "%s: only %s free of %s, below the floor of %s; free some space there or use another disk",
			 c->dir, fr, tot, need);
		return -ENOSPC;
	}
	return shared;
}

/* Append one line to why (truncating, always terminated). */
static void why_append(char *why, size_t whylen, const char *line)
{
	if (!why || !whylen)
		return;
	size_t used = strnlen(why, whylen - 1);
	snprintf(why + used, whylen - used, "%s\n", line);
}

/* Is candidate a (verdict ra) a better place than b (verdict rb)? */
static bool better(const struct stage_cand *a, int ra, const struct stage_cand *b, int rb)
{
	if (ra != rb)
		return ra < rb;   /* 0 (apart from the images) before 1 (forced) */
	uint64_t fa = a->disk.free_bytes / STAGE_FREE_GRAIN, fb = b->disk.free_bytes / STAGE_FREE_GRAIN;
	if (fa != fb)
		return fa > fb;
	return a->clients < b->clients;
}

int stage_rank(const struct stage_cand *c, int n, const struct stage_image *img, int nimg,
	       const struct stage_floor *floor, bool force, char *why, size_t whylen)
{
	char line[PATH_MAX + 512];
	int best = -1, best_r = 0;
	bool any = false;
	for (int i = 0; i < n; i++) {
		int r = stage_verdict(&c[i], img, nimg, floor, force, line, sizeof line);
		any |= c[i].err != -ENOENT;
		if (r != 0)
			why_append(why, whylen, line);
		if (r < 0)
			continue;
		if (best < 0 || better(&c[i], r, &c[best], best_r)) {
			best = i;
			best_r = r;
		}
	}
	if (best >= 0)
		return best;
	return any ? -ENOSPC : -ENOENT;
}

/* Probe every image; one that cannot be found stops the choice unless
 * force. 0 or -errno (with why). */
static int probe_images(const char *const *paths, int nimg, bool force, struct stage_image *img,
			char *why, size_t whylen)
{
	char line[PATH_MAX + 256];
	for (int i = 0; i < nimg; i++) {
		if (stage_probe_image(NULL, paths[i], &img[i]) == 0)
			continue;
		snprintf(line, sizeof line, "image %s: cannot find its disk (%s); %s", paths[i],
			 strerror(-img[i].err), force ? "not compared because of --force" : "fix the path or use --force");
		why_append(why, whylen, line);
		if (!force)
			return img[i].err;
	}
	return 0;
}

int stage_choose(const char *const *overlay_dirs, int n, const char *const *image_paths, int nimg,
		 const unsigned *clients_per_dir, const struct stage_floor *floor, bool force,
		 struct stage_choice *out, char *why, size_t whylen)
{
	struct stage_cand *c = NULL;
	struct stage_image *img = NULL;
	int r;
	if (why && whylen)
		why[0] = 0;
	if (n <= 0) {
		why_append(why, whylen, "no overlay directory to choose from; configure at least one");
		return -ENOENT;
	}
	c = calloc((size_t)n, sizeof *c);
	img = calloc(nimg > 0 ? (size_t)nimg : 1, sizeof *img);
	if (!c || !img) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = probe_images(image_paths, nimg, force, img, why, whylen)) < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		stage_probe_dir(NULL, overlay_dirs[i], &c[i]);
		c[i].clients = clients_per_dir ? clients_per_dir[i] : 0;
	}
	r = stage_rank(c, n, img, nimg, floor, force, why, whylen);
	if (r < 0)
		goto out;
	out->index = r;
	out->dir = overlay_dirs[r];
	out->clients = c[r].clients;
	out->disk = c[r].disk;
	r = 0;
out:
	free(c);
	free(img);
	return r;
}

/* ---- text ---- */

void stage_fmt_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	if (n < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)n);
		return;
	}
	double v = (double)n / 1024;
	unsigned u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(unit)) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, unit[u]);
}

void stage_image_name(const char *path, char *buf, size_t len)
{
	const char *b = base_name(path);
	const char *dot = strrchr(b, '.');
	size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
	if (!len)
		return;
	n = MIN(n, len - 1);
	memcpy(buf, b, n);
	buf[n] = 0;
}
