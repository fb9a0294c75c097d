/* ident.c — image file identity (see ident.h).
 *
 * Design: the hashes are SHA-256 from nettle, read in 1 MiB heap buffers
 * (callers may be threads with small stacks). The filesystem UUID is found
 * from st_dev: /sys/dev/block/MAJ:MIN/uevent names the block device, which
 * libblkid probes. Filesystems without a block device of their own
 * (overlayfs, tmpfs, btrfs subvolumes with anonymous device numbers) are
 * looked up in /proc/self/mountinfo instead, whose mount source may still
 * be a probeable device ("/dev/sda2" for btrfs) or just a name ("overlay"),
 * in which case the UUID stays "".
 *
 * ident_find_each() walks directories with openat()/fstatat(AT_SYMLINK_NOFOLLOW)
 * so it never follows a symlink, bounded in depth and in the number of
 * entries visited, and hashes only files of exactly the wanted size, each
 * (device, inode) once. It offers every candidate to a callback, so a
 * caller can check the whole-file checksum and keep looking past a file
 * that merely starts the same (e.g. an empty disk of the same size).
 */
#include "ident.h"

#include "util.h"

#include <blkid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <nettle/sha2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#define CHUNK (1u << 20)
#define WALK_MAX_ENTRIES 1000000ul  /* ident_find() gives up after visiting this many */

/* Copy src into dst of len bytes, truncating; false if it did not fit. */
static bool copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);
	bool fits = n < len;
	if (!fits)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
	return fits;
}

/* Finish ctx and write its digest as lower-case hex. */
static void sum_hex(struct sha256_ctx *ctx, char out[IDENT_SUM_LEN])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_digest(ctx, sizeof d, d);
	for (size_t i = 0; i < sizeof d; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[2 * sizeof d] = 0;
}

/* SHA-256 hex of the first IDENT_HEAD_BYTES of fd (all of it if shorter). */
static int head_sum_fd(int fd, char out[IDENT_SUM_LEN])
{
	uint8_t *buf = malloc(IDENT_HEAD_BYTES);
	size_t got = 0;
	int ret = 0;
	if (!buf)
		return -ENOMEM;
	while (got < IDENT_HEAD_BYTES) {
		ssize_t n = pread(fd, buf + got, IDENT_HEAD_BYTES - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	sha256_update(&ctx, got, buf);
	sum_hex(&ctx, out);
out:
	free(buf);
	return ret;
}

/* ---- filesystems ---- */

struct mnt {
	unsigned maj, min;
	char root[PATH_MAX];     /* path inside the filesystem that is mounted */
	char dir[PATH_MAX];      /* mount point */
	char fstype[64];
	char source[PATH_MAX];   /* "/dev/vda1", "overlay", ... */
};

/* Decode mountinfo's octal escapes ("\040" for a space) in place. */
static void unescape(char *s)
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

/* Copy field src (unescaped) into dst of len bytes; false if it does not fit. */
static bool take_field(char *dst, size_t len, const char *src)
{
	if (!src || !copy_str(dst, len, src))
		return false;
	unescape(dst);
	return true;
}

/* Parse one mountinfo line:
 * "ID PARENT MAJ:MIN ROOT DIR OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS". */
static bool parse_mount(char *line, struct mnt *m)
{
	char *save, *f[6];
	for (int i = 0; i < 6; i++)
		if (!(f[i] = strtok_r(i ? NULL : line, " \n", &save)))
			return false;
	if (sscanf(f[2], "%u:%u", &m->maj, &m->min) != 2 || !take_field(m->root, sizeof m->root, f[3]) ||
	    !take_field(m->dir, sizeof m->dir, f[4]))
		return false;
	char *t;
	while ((t = strtok_r(NULL, " \n", &save)) && strcmp(t, "-") != 0)
		;
	return t && take_field(m->fstype, sizeof m->fstype, strtok_r(NULL, " \n", &save)) &&
	       take_field(m->source, sizeof m->source, strtok_r(NULL, " \n", &save));
}

/* Call cb for each mount; a non-zero return stops and is returned (0 at end). */
static int mounts_each(int (*cb)(const struct mnt *, void *), void *arg)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	struct mnt *m = malloc(sizeof *m);
	char *line = NULL;
	size_t cap = 0;
	int ret = m ? 0 : -ENOMEM;
	while (ret == 0 && getline(&line, &cap, f) > 0)
		if (parse_mount(line, m))
			ret = cb(m, arg);
	free(line);
	free(m);
	fclose(f);
	return ret;
}

/* "/dev/NAME" of block device dev, from /sys/dev/block/MAJ:MIN/uevent. */
static int sys_devname(dev_t dev, char *out, size_t len)
{
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/sys/dev/block/%u:%u/uevent", major(dev), minor(dev));
	ssize_t n = read_small_file(path, buf, sizeof buf);
	if (n < 0)
		return (int)n;
	char *save, *l;
	for (l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		if (strncmp(l, "DEVNAME=", 8) == 0)
			return (size_t)snprintf(out, len, "/dev/%s", l + 8) < len ? 0 : -ENAMETOOLONG;
	return -ENOENT;
}

/* Filesystem UUID of a device: a blkid probe, then blkid's cache. */
int ident_probe_uuid(const char *device, char *uuid, size_t len)
{
	blkid_probe pr = blkid_new_probe_from_filename(device);
	int ret = -ENOENT;
	if (pr) {
		const char *v = NULL;
		blkid_probe_enable_superblocks(pr, 1);
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_UUID);
		if (blkid_do_safeprobe(pr) == 0 && blkid_probe_lookup_value(pr, "UUID", &v, NULL) == 0 &&
		    v && *v && copy_str(uuid, len, v))
			ret = 0;
		blkid_free_probe(pr);
		if (ret == 0)
			return 0;
	}
	char *v = blkid_get_tag_value(NULL, "UUID", device);
	if (v && *v && copy_str(uuid, len, v))
		ret = 0;
	free(v);
	return ret;
}

/* mounts_each() callback: the mount of the wanted st_dev, kept in arg. */
static int mount_of_dev_cb(const struct mnt *m, void *arg)
{
	struct mnt *want = arg;
	if (m->maj != want->maj || m->min != want->min)
		return 0;
	*want = *m;
	return 1;
}

/* Record device and UUID of the filesystem with st_dev dev (best effort). */
static void fs_of_dev(dev_t dev, struct ident *id)
{
	if (sys_devname(dev, id->device, sizeof id->device) == 0 &&
	    ident_probe_uuid(id->device, id->fs_uuid, sizeof id->fs_uuid) == 0)
		return;
	struct mnt *m = calloc(1, sizeof *m);
	if (!m)
		return;
	m->maj = major(dev);
	m->min = minor(dev);
	if (mounts_each(mount_of_dev_cb, m) == 1) {
		if (!id->device[0])
			copy_str(id->device, sizeof id->device, m->source);
		if (strncmp(m->source, "/dev/", 5) == 0)
			ident_probe_uuid(m->source, id->fs_uuid, sizeof id->fs_uuid);
	}
	free(m);
}

struct uuid_mount {
	const char *uuid;
	char dir[PATH_MAX];
	bool whole;              /* dir mounts the filesystem's root */
};

/* mounts_each() callback: remember a mount of the wanted UUID. */
static int uuid_mount_cb(const struct mnt *m, void *arg)
{
	struct uuid_mount *u = arg;
	char uuid[64];
	bool whole = strcmp(m->root, "/") == 0;
	if (strncmp(m->source, "/dev/", 5) != 0 || (u->dir[0] && (u->whole || !whole)))
		return 0;
	if (ident_probe_uuid(m->source, uuid, sizeof uuid) < 0 || strcmp(uuid, u->uuid) != 0)
		return 0;
	copy_str(u->dir, sizeof u->dir, m->dir);
	u->whole = whole;
	return 0;
}

/* Mount point of the filesystem with this UUID. */
int ident_uuid_mountpoint(const char *uuid, char *dir, size_t len)
{
	struct uuid_mount *u = calloc(1, sizeof *u);
	if (!u)
		return -ENOMEM;
	u->uuid = uuid;
	int ret = uuid[0] ? mounts_each(uuid_mount_cb, u) : 0;
	if (ret == 0 && !u->dir[0])
		ret = -ENOENT;
	if (ret == 0 && !copy_str(dir, len, u->dir))
		ret = -ENAMETOOLONG;
	free(u);
	return ret;
}

/* ---- identity and checksums ---- */

/* Identify the regular file at path. */
int ident_of_file(const char *path, struct ident *id)
{
	struct stat st;
	memset(id, 0, sizeof *id);
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	int ret = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
	if (ret == 0)
		ret = head_sum_fd(fd, id->head_sum);
	close(fd);
	if (ret < 0)
		return ret;
	id->size = (uint64_t)st.st_size;
	id->inode = st.st_ino;
	id->dev = st.st_dev;
	fs_of_dev(st.st_dev, id);
	return 0;
}

/* Copy an identity into a db_image. */
void ident_to_image(const struct ident *id, struct db_image *img)
{
	img->size = id->size;
	img->inode = id->inode;
	copy_str(img->fs_uuid, sizeof img->fs_uuid, id->fs_uuid);
	copy_str(img->head_sum, sizeof img->head_sum, id->head_sum);
}

/* Hash fd from its current offset to EOF, reporting progress. */
static int sum_fd(int fd, uint64_t total, char out[IDENT_SUM_LEN], ident_progress_fn cb, void *arg)
{
	uint8_t *buf = malloc(CHUNK);
	uint64_t done = 0;
	int ret = 0;
	struct sha256_ctx ctx;
	if (!buf)
		return -ENOMEM;
	sha256_init(&ctx);
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n > 0)
			sha256_update(&ctx, (size_t)n, buf);
		done += (uint64_t)n;
		if (cb && cb(done, total, arg)) {
			ret = -ECANCELED;
			goto out;
		}
		if (n == 0)
			break;
	}
	sum_hex(&ctx, out);
out:
	free(buf);
	return ret;
}

/* SHA-256 hex of the whole file at path. */
int ident_full_sum(const char *path, char out[IDENT_SUM_LEN], ident_progress_fn cb, void *arg)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct stat st;
	int ret = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
	if (ret == 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		ret = sum_fd(fd, (uint64_t)st.st_size, out, cb, arg);
	}
	close(fd);
	return ret;
}

/* ---- finding a moved image ---- */

#define SEEN_MAX 256

struct walk {
	const struct db_image *want;
	ident_found_fn cb;
	void *arg;
	bool one_fs;             /* stay on filesystem dev */
	dev_t dev;
	unsigned long entries;   /* visited so far, capped at WALK_MAX_ENTRIES */
	size_t nseen;            /* candidates already offered (dev, inode) */
	struct { dev_t dev; ino_t ino; } seen[SEEN_MAX];
	char path[PATH_MAX];     /* path of the entry being looked at */
};

/* A directory on a kernel pseudo filesystem, never holding images. */
static bool pseudo_fs(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0)
		return true;
	switch ((unsigned long)sf.f_type) {
	case PROC_SUPER_MAGIC: case SYSFS_MAGIC: case DEVPTS_SUPER_MAGIC:
	case CGROUP_SUPER_MAGIC: case CGROUP2_SUPER_MAGIC: case DEBUGFS_MAGIC:
	case TRACEFS_MAGIC: case SECURITYFS_MAGIC: case BPF_FS_MAGIC: case PSTOREFS_MAGIC:
		return true;
	}
	return false;
}

/* True the first time a file is seen; remembers it (while room lasts). */
static bool first_sight(struct walk *w, const struct stat *st)
{
	for (size_t i = 0; i < w->nseen; i++)
		if (w->seen[i].dev == st->st_dev && w->seen[i].ino == st->st_ino)
			return false;
	if (w->nseen < SEEN_MAX) {
		w->seen[w->nseen].dev = st->st_dev;
		w->seen[w->nseen++].ino = st->st_ino;
	}
	return true;
}

/* Does dfd/name (not followed if a symlink) have the wanted size and head? */
static bool candidate_matches(int dfd, const char *name, const struct db_image *want)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return false;
	struct stat st;
	char sum[IDENT_SUM_LEN];
	bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == want->size &&
		  head_sum_fd(fd, sum) == 0 && strcmp(sum, want->head_sum) == 0;
	close(fd);
	return ok;
}

static int walk_dir(struct walk *w, int dfd, size_t plen, int depth);

/* Look at one directory entry: offer it to the callback if it is a
 * candidate, descend if it is a directory. 0 to go on, else cb's value. */
static int walk_entry(struct walk *w, int dfd, const char *name, size_t plen, int depth)
{
	size_t n = strlen(name);
	struct stat st;
	int ret = 0;
	if (plen + 1 + n >= sizeof w->path || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	w->path[plen] = '/';
	memcpy(w->path + plen + 1, name, n + 1);
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size == w->want->size && first_sight(w, &st) &&
	    candidate_matches(dfd, name, w->want))
		ret = w->cb(w->path, w->arg);
	else if (S_ISDIR(st.st_mode) && depth < IDENT_FIND_DEPTH && (!w->one_fs || st.st_dev == w->dev)) {
		int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && pseudo_fs(fd))
			close(fd);
		else if (fd >= 0)
			ret = walk_dir(w, fd, plen + 1 + n, depth + 1);
	}
	w->path[plen] = 0;
	return ret;
}

/* Walk the directory open at dfd (taken over and closed) whose path is
 * w->path[0..plen). 0 to go on, else cb's value. */
static int walk_dir(struct walk *w, int dfd, size_t plen, int depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	struct dirent *de;
	int ret = 0;
	while (ret == 0 && w->entries < WALK_MAX_ENTRIES && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		w->entries++;
		ret = walk_entry(w, dirfd(d), de->d_name, plen, depth);
	}
	closedir(d);
	return ret;
}

/* Walk the tree at dir (resolved to an absolute path first). */
static int walk_root(struct walk *w, const char *dir, bool one_fs)
{
	if (!realpath(dir, w->path))
		return 0;
	int fd = open(w->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || pseudo_fs(fd)) {
		close(fd);
		return 0;
	}
	w->one_fs = one_fs;
	w->dev = st.st_dev;
	size_t plen = strlen(w->path);
	if (plen == 1)               /* "/": entries become "/name" */
		plen = 0;
	return walk_dir(w, fd, plen, 0);
}

/* Offer every candidate under search_dirs, then on want's filesystem. */
int ident_find_each(const struct db_image *want, const char *const *search_dirs,
		    ident_found_fn cb, void *arg)
{
	struct walk *w = calloc(1, sizeof *w);
	char mnt[PATH_MAX];
	int ret = 0;
	if (!w)
		return -ENOMEM;
	w->want = want;
	w->cb = cb;
	w->arg = arg;
	for (size_t i = 0; search_dirs && search_dirs[i] && ret == 0; i++)
		ret = walk_root(w, search_dirs[i], false);
	if (ret == 0 && want->fs_uuid[0] && ident_uuid_mountpoint(want->fs_uuid, mnt, sizeof mnt) == 0)
		ret = walk_root(w, mnt, true);
	free(w);
	return ret ? ret : -ENOENT;
}

struct first {
	char *found;
	size_t len;
	bool fits;
};

/* ident_find() callback: keep the first candidate. */
static int first_cb(const char *path, void *arg)
{
	struct first *f = arg;
	f->fits = copy_str(f->found, f->len, path);
	return 1;
}

/* The first candidate's path. */
int ident_find(const struct db_image *want, const char *const *search_dirs, char *found, size_t len)
{
	struct first f = { found, len, false };
	int ret = ident_find_each(want, search_dirs, first_cb, &f);
	if (ret < 0)
		return ret;
	return f.fits ? 0 : -ENAMETOOLONG;
}
