/* ident.h — the identity of an image file, and finding it again when moved.
 *
 * An image is recognised by its size plus the SHA-256 of its first MiB
 * (head_sum): cheap to compute, and enough to tell golden images apart.
 * The inode and the UUID of the filesystem holding the file are recorded
 * too, as hints: the UUID says which filesystem to search when the file
 * has moved, wherever that filesystem is mounted now. The SHA-256 of the
 * whole file (full_sum) is the integrity check (`image verify`).
 *
 * Functions return 0 or -errno; none logs.
 */
#ifndef BL_IDENT_H
#define BL_IDENT_H

#include "db.h"

#include <stddef.h>
#include <stdint.h>

#define IDENT_HEAD_BYTES (1u << 20)  /* head_sum covers this much (or the whole file if smaller) */
#define IDENT_SUM_LEN 65             /* sha256 hex + NUL */
#define IDENT_FIND_DEPTH 8           /* ident_find() descends at most this many directories */

struct ident {
	uint64_t size;                   /* bytes */
	uint64_t inode;
	uint64_t dev;                    /* st_dev of the filesystem */
	char device[256];                /* "/dev/vda1", or the mount source ("overlay", "tmpfs"), "" if unknown */
	char fs_uuid[64];                /* filesystem UUID, "" if the device is not probeable */
	char head_sum[IDENT_SUM_LEN];    /* sha256 hex of the first IDENT_HEAD_BYTES */
};

/* Identify the regular file at path. -EISDIR/-EINVAL if it is not a
 * regular file; other -errno from open/read. */
int ident_of_file(const char *path, struct ident *id);

/* Copy an identity into the matching db_image fields (size, inode,
 * fs_uuid, head_sum). */
void ident_to_image(const struct ident *id, struct db_image *img);

/* Filesystem UUID of a block device (or a filesystem image file) via
 * libblkid: a probe first, then blkid's cache. -ENOENT if none found. */
int ident_probe_uuid(const char *device, char *uuid, size_t len);

/* Mount point of the filesystem with this UUID, from /proc/self/mountinfo
 * (a mount of its root preferred over bind mounts). -ENOENT if not mounted. */
int ident_uuid_mountpoint(const char *uuid, char *dir, size_t len);

/* Progress callback for long reads: done of total bytes so far. A non-zero
 * return aborts the read with -ECANCELED. */
typedef int (*ident_progress_fn)(uint64_t done, uint64_t total, void *arg);

/* SHA-256 hex of the whole file at path; cb (may be NULL) is called after
 * every chunk and once at the end. */
int ident_full_sum(const char *path, char out[IDENT_SUM_LEN], ident_progress_fn cb, void *arg);

/* Called by ident_find_each() for each candidate: a regular file with the
 * wanted size and head_sum. Return 0 to go on, a positive value to stop. */
typedef int (*ident_found_fn)(const char *path, void *arg);

/* Find a moved image: regular files with want->size bytes whose head_sum
 * matches, under search_dirs (NULL-terminated, may be NULL; missing ones
 * skipped) and then under the mount point of want->fs_uuid if mounted
 * (that walk stays on that filesystem). At most IDENT_FIND_DEPTH levels,
 * symlinks never followed, pseudo filesystems (proc, sysfs...) skipped,
 * each file offered once even if reached from two search dirs, and the
 * walk gives up after a million directory entries. Returns cb's positive
 * value, or -ENOENT when the walk ended without cb stopping it. */
int ident_find_each(const struct db_image *want, const char *const *search_dirs,
		    ident_found_fn cb, void *arg);

/* ident_find_each() taking the first candidate: its path goes to found.
 * -ENOENT if none, -ENAMETOOLONG if it does not fit in len. */
int ident_find(const struct db_image *want, const char *const *search_dirs, char *found, size_t len);

#endif
