/* stage.h — where overlays may live: the physical disks behind a path, and
 * the choice of an overlay directory on a disk other than the image's.
 *
 * "Separate spindles": a client's writes land in its overlay file and the
 * blocks it never wrote come from the golden image. Both on one disk and
 * every boot storm seeks between them, so an overlay directory is refused
 * when it shares a physical disk with an image its overlays sit on.
 *
 * The disk of a path is a set of whole-disk names, found by walking sysfs
 * from the device of the filesystem that holds the path:
 *
 *   partition (sda1, nvme0n1p2, md0p1)  its whole disk, then as below
 *   device-mapper (LVM, dm-crypt)       the disks of its slaves    {sda} {sda,sdd}
 *   md RAID                             the disks of its members   {sdb,sdc}
 *   loop device                         itself + the disks of its backing file
 *                                                                  {loop0,vda}
 *   anything else (sda, vda, nvme0n1, nbd0, zram0)   itself        {sda}
 *
 * A loop device is a member of its own set: its backing file may not be
 * reachable from here (another mount namespace, deleted, on a network
 * filesystem) and the loop device is then all we know; and it is the name
 * an admin sees in lsblk. Two loop devices backed by files on one disk
 * share that disk and are refused as the same spindle, which they are.
 *
 * A filesystem whose device number is not a block device is resolved
 * through /proc/self/mountinfo: btrfs through its source device (and every
 * device of a multi-device btrfs, /sys/fs/btrfs/UUID/devices), overlayfs
 * through its upper and lower directories; everything else (tmpfs, nfs,
 * fuse, overlayfs without a block source) is a "virtual" disk named
 * "virtual:MAJ:MIN" after the mount's device number, so two directories on
 * one tmpfs compare equal and two tmpfs mounts differ. A path that is a
 * block device node (an image stored on a raw LV) stands for that device.
 *
 * The sysfs root and the mountinfo file are parameters (struct stage_env)
 * so the walking logic is unit-tested on a fake tree; NULL means the real
 * /sys and /proc/self/mountinfo. Functions return 0 or -errno, keep no
 * state and may run on any thread; a walk at the maximum depth (8) uses
 * about 200 KiB of stack, so call them from a thread with a normal stack.
 */
#ifndef BL_STAGE_H
#define BL_STAGE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STAGE_MAX_DISKS 16   /* whole disks in one set (an md of 16 members) */
#define STAGE_NAME_LEN 32    /* "nvme10n1", "virtual:0:123" */

/* Where the walk reads from; NULL members (or a NULL env) mean the real thing. */
struct stage_env {
	const char *sysfs;      /* "/sys" */
	const char *mountinfo;  /* "/proc/self/mountinfo" */
};

/* Everything known about the storage behind one path. */
struct stage_disk {
	unsigned ndisks;                              /* >= 1 after a successful lookup */
	char disks[STAGE_MAX_DISKS][STAGE_NAME_LEN];  /* whole disks, or one "virtual:M:m" */
	bool is_virtual;                              /* no block device under it at all */
	dev_t dev;                                    /* st_dev of the path (st_rdev for a device node) */
	char fsdev[STAGE_NAME_LEN];                   /* block device holding the filesystem ("sda1", "dm-0"); "" if none */
	char fstype[32];                              /* "ext4" (blkid, else mountinfo) */
	char uuid[64];                                /* filesystem UUID (blkid); "" if unknown */
	char mountpoint[PATH_MAX];                    /* "" if not found (a device node, another namespace) */
	uint64_t free_bytes;                          /* statvfs f_bavail * f_frsize: what a non-root writer gets */
	uint64_t total_bytes;                         /* statvfs f_blocks * f_frsize */
};

/* ---- finding the disk ---- */

/* Everything above for path (a file, a directory or a block device node). */
int stage_disk_of_path(const char *path, struct stage_disk *out);
int stage_disk_of_path_env(const struct stage_env *env, const char *path, struct stage_disk *out);

/* Only the disk set (ndisks, disks, is_virtual) of device number dev; path,
 * if not NULL, is a path on it, used to find its mount when dev itself is
 * not listed in mountinfo (btrfs subvolumes). -ELOOP if the stack is deeper
 * than 8, -E2BIG if the set has more than STAGE_MAX_DISKS members. */
int stage_disks_of_dev(const struct stage_env *env, dev_t dev, const char *path, struct stage_disk *out);

/* True if a and b share at least one disk. */
bool stage_same_disk(const struct stage_disk *a, const struct stage_disk *b);

/* The disks a and b share, joined with '+' ("sdb+sdc"); "" if none.
 * Returns how many they share. */
unsigned stage_shared_disks(const struct stage_disk *a, const struct stage_disk *b, char *buf, size_t len);

/* The set as text, joined with '+': "sda", "sdb+sdc", "loop0+vda". */
void stage_disks_str(const struct stage_disk *d, char *buf, size_t len);

/* ---- /proc/self/mountinfo ---- */

/* One mountinfo line; the strings point into line (parsed in place, octal
 * escapes undone except in opts, whose values are undone one by one). */
struct stage_mount {
	unsigned major, minor;
	char *point, *fstype, *source, *opts;
	char *line;             /* owned by stage_mount_find()'s result */
};

/* Parse one line in place. 0 or -EINVAL. */
int stage_mountinfo_parse(char *line, struct stage_mount *m);

/* The mount that holds dev: the entry with that device number whose mount
 * point is the longest prefix of path (path may be NULL: the last entry
 * with that number); if no entry has the number, the entry whose mount
 * point is the longest prefix of path. -ENOENT if none. Free with
 * stage_mount_free(). path must be canonical (realpath). */
int stage_mount_find(const char *mountinfo, dev_t dev, const char *path, struct stage_mount *m);
void stage_mount_free(struct stage_mount *m);

/* The value of option key in a mountinfo option string ("rw,upperdir=/u"),
 * octal escapes undone, into buf. 0, -ENOENT, or -ENAMETOOLONG. */
int stage_mount_opt(const char *opts, const char *key, char *buf, size_t len);

/* ---- choosing an overlay directory ---- */

/* The free-space floor: a directory is refused when its filesystem has less
 * than min_bytes free, or less than min_percent of its size free. */
struct stage_floor {
	uint64_t min_bytes;
	unsigned min_percent;
};
#define STAGE_FLOOR_DEFAULT_BYTES (1ull << 30)   /* 1 GiB, no percentage */

/* Free space counts in whole units of this size when comparing directories,
 * so near-equal disks tie and the one with fewer clients wins. */
#define STAGE_FREE_GRAIN (1ull << 30)

/* Parse a floor setting: "1G", "512M", "1073741824" (bytes; K/M/G/T are
 * powers of 1024) or "5%" (0..100). Sets the matching member only.
 * 0 or -EINVAL / -ERANGE. */
int stage_floor_parse(const char *s, struct stage_floor *f);

/* A directory under consideration, as probed (or as a test makes it up). */
struct stage_cand {
	const char *dir;
	int err;                /* 0, or why it cannot be used: -ENOENT, -ENOTDIR, -EACCES, -EROFS, ... */
	unsigned clients;       /* overlays it already holds */
	struct stage_disk disk; /* valid when err == 0 */
};

/* An image the overlays sit on. */
struct stage_image {
	const char *path;
	int err;                /* 0, or why its disk is unknown */
	struct stage_disk disk;
};

/* Probe a directory: it exists, is a directory, is writable (access(2),
 * so a read-only filesystem is -EROFS), and its disk. Fills c (c->dir = dir). */
int stage_probe_dir(const struct stage_env *env, const char *dir, struct stage_cand *c);
/* Probe an image file (or device node): its disk. Fills img. */
int stage_probe_image(const struct stage_env *env, const char *path, struct stage_image *img);

/* Can c take a new overlay? 0: yes. 1: yes, but only because force is set
 * (it shares a disk with an image; reason says which). -errno: no (c->err;
 * -EBUSY: on an image's disk; -ENOSPC: below the floor), and reason says
 * why in one line that ends with what to do, e.g.
 * "/srv/ov1: on sda, the disk that holds image win10 (/srv/images/win10.img);
 * use another disk or --force". floor NULL = 1 GiB. Images with err != 0
 * are not compared (stage_choose() refuses to run with them unless forced). */
int stage_verdict(const struct stage_cand *c, const struct stage_image *img, int nimg,
		  const struct stage_floor *floor, bool force, char *reason, size_t len);

/* Pick among probed candidates: those stage_verdict() accepts, preferring a
 * disk apart from every image (matters with force), then the most free
 * space (in STAGE_FREE_GRAIN units), then the fewest clients, then the
 * earliest in the list. Appends one line per refused (or forced) directory
 * to why. Returns the index, -ENOENT if no candidate exists (or n == 0),
 * -ENOSPC if they exist but none may be used. */
int stage_rank(const struct stage_cand *c, int n, const struct stage_image *img, int nimg,
	       const struct stage_floor *floor, bool force, char *why, size_t whylen);

/* The directory stage_choose() picked. */
struct stage_choice {
	int index;              /* into overlay_dirs */
	const char *dir;        /* overlay_dirs[index] */
	unsigned clients;
	struct stage_disk disk;
};

/* Probe every overlay directory and image, then stage_rank(). clients_per_dir
 * may be NULL (all zero), floor NULL (1 GiB). why receives one line per
 * excluded directory (also on success, for the log), or the reason nothing
 * was tried: an image whose disk cannot be found is -errno with
 * "image PATH: ..." unless force, which then ignores that image.
 * Returns 0 with *out filled, or -ENOENT / -ENOSPC / -errno. */
int stage_choose(const char *const *overlay_dirs, int n, const char *const *image_paths, int nimg,
		 const unsigned *clients_per_dir, const struct stage_floor *floor, bool force,
		 struct stage_choice *out, char *why, size_t whylen);

/* ---- text ---- */

/* "12.0 MiB", "931.5 GiB", "512 B". */
void stage_fmt_bytes(uint64_t n, char *buf, size_t len);

/* The name an image is called by in messages: its file name without the
 * last extension ("/srv/images/win10.img" -> "win10"). */
void stage_image_name(const char *path, char *buf, size_t len);

#endif
