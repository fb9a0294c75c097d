/* test_stage.c — unit tests for common/stage.c.
 *
 * The walk runs on a fake sysfs tree and a fake mountinfo built in the
 * scratch directory: partitions, dm on a partition, dm on md, dm spanning
 * two disks, md with two members, loop devices with a live and a deleted
 * backing file, a slave cycle, btrfs on two devices, tmpfs, nfs and
 * overlayfs. The scratch directory's own device number is made a fake
 * disk "sdz", so a loop device backed by a file in it resolves to
 * {loopN, sdz}. Choosing runs on made-up candidates with injected free
 * space. Real devices are tested by tests/test-stage.sh.
 * Run: build/test_stage (exit 0 = all passed).
 */
#include "stage.h"
#include "util.h"
#include "unit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static char sys[PATH_MAX], minfo[PATH_MAX], tmp[PATH_MAX];
static struct stage_env env;

/* snprintf that stops the test on truncation (paths here are short). */
__attribute__((format(printf, 3, 4)))
static void xsnprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		printf("path too long: %s\n", fmt);
		exit(2);
	}
}

/* ---- building the fake tree ---- */

/* mkdir -p of a path below the fake sysfs. */
static void mk(const char *rel)
{
	char p[PATH_MAX];
	xsnprintf(p, sizeof p, "%s/%s", sys, rel);
	if (mkdir_p(p, 0755) < 0) {
		printf("cannot make %s\n", p);
		exit(2);
	}
}

/* Write a file (path relative to the fake sysfs). */
static void put(const char *rel, const char *content)
{
	char p[PATH_MAX];
	xsnprintf(p, sizeof p, "%s/%s", sys, rel);
	if (write_small_file(p, content) < 0) {
		printf("cannot write %s\n", p);
		exit(2);
	}
}

/* A symlink below the fake sysfs: rel -> target. */
static void ln(const char *target, const char *rel)
{
	char p[PATH_MAX];
	xsnprintf(p, sizeof p, "%s/%s", sys, rel);
	if (symlink(target, p) < 0) {
		printf("cannot link %s\n", p);
		exit(2);
	}
}

/* A block device at block/PATH (a disk "sda" or a partition "sda/sda1"),
 * with its class/block/NAME and dev/block/M:m links. */
static void blockdev(const char *path, const char *majmin)
{
	char rel[PATH_MAX], target[PATH_MAX];
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	xsnprintf(rel, sizeof rel, "block/%s", path);
	mk(rel);
	if (strchr(path, '/')) {
		xsnprintf(rel, sizeof rel, "block/%s/partition", path);
		put(rel, "1\n");
	}
	xsnprintf(target, sizeof target, "../../block/%s", path);
	xsnprintf(rel, sizeof rel, "class/block/%s", name);
	ln(target, rel);
	xsnprintf(rel, sizeof rel, "dev/block/%s", majmin);
	ln(target, rel);
}

/* dev's slaves/ entry for slave (a name in class/block). */
static void slave(const char *dev, const char *name)
{
	char rel[PATH_MAX], target[PATH_MAX];
	xsnprintf(rel, sizeof rel, "block/%s/slaves", dev);
	mk(rel);
	xsnprintf(rel, sizeof rel, "block/%s/slaves/%s", dev, name);
	xsnprintf(target, sizeof target, "../../../class/block/%s", name);
	ln(target, rel);
}

/* A loop device whose backing_file says file. */
static void loopdev(const char *name, const char *majmin, const char *file)
{
	char rel[PATH_MAX], content[PATH_MAX];
	blockdev(name, majmin);
	xsnprintf(rel, sizeof rel, "block/%s/loop", name);
	mk(rel);
	xsnprintf(rel, sizeof rel, "block/%s/loop/backing_file", name);
	xsnprintf(content, sizeof content, "%s\n", file);
	put(rel, content);
}

/* The fake tree described at the top. */
static void build_sysfs(void)
{
	char p[PATH_MAX], mm[32];
	struct stat st;
	mk("class/block");
	mk("dev/block");
	blockdev("sda", "8:0");
	blockdev("sda/sda1", "8:1");
	blockdev("sda/sda2", "8:2");
	blockdev("sdb", "8:16");
	blockdev("sdb/sdb1", "8:17");
	blockdev("sdc", "8:32");
	blockdev("sdc/sdc1", "8:33");
	blockdev("sdd", "8:48");
	blockdev("md0", "9:0");
	slave("md0", "sdb1");
	slave("md0", "sdc1");
	blockdev("md0/md0p1", "259:0");
	blockdev("dm-0", "253:0");       /* LVM on sda2 */
	slave("dm-0", "sda2");
	blockdev("dm-1", "253:1");       /* dm-crypt on md0 */
	slave("dm-1", "md0");
	blockdev("dm-2", "253:2");       /* LVM spanning sda2 and sdd */
	slave("dm-2", "sda2");
	slave("dm-2", "sdd");
	blockdev("dm-3", "253:3");       /* LVM on the crypt on the md */
	slave("dm-3", "dm-1");
	blockdev("cyc-a", "240:0");      /* a slave cycle: must end, not hang */
	blockdev("cyc-b", "240:1");
	slave("cyc-a", "cyc-b");
	slave("cyc-b", "cyc-a");
	/* The scratch directory's real device is the fake disk sdz. */
	if (stat(tmp, &st) < 0)
		exit(2);
	xsnprintf(mm, sizeof mm, "%u:%u", major(st.st_dev), minor(st.st_dev));
	blockdev("sdz", mm);
	xsnprintf(p, sizeof p, "%s/backing.img", tmp);
	write_small_file(p, "x");
	loopdev("loop0", "7:0", p);
	blockdev("loop0/loop0p1", "259:8");
	xsnprintf(p, sizeof p, "%s/gone.img (deleted)", tmp);
	loopdev("loop1", "7:1", p);
	blockdev("loop2", "7:2");        /* not attached: no loop/ directory */
	/* btrfs on sdb1 + sdc1 */
	mk("fs/btrfs/0b1c-uuid/devices");
	ln("../../../../class/block/sdb1", "fs/btrfs/0b1c-uuid/devices/sdb1");
	ln("../../../../class/block/sdc1", "fs/btrfs/0b1c-uuid/devices/sdc1");
	mk("fs/btrfs/features");
	/* btrfs on "null" (mounted as /dev/null, which realpath() resolves) + sdd */
	blockdev("null", "250:0");
	mk("fs/btrfs/7e57-uuid/devices");
	ln("../../../../class/block/null", "fs/btrfs/7e57-uuid/devices/null");
	ln("../../../../class/block/sdd", "fs/btrfs/7e57-uuid/devices/sdd");
}

/* The fake mountinfo: devices 0:77.. are not in the fake sysfs. */
static void build_mountinfo(void)
{
	char buf[8192];
	xsnprintf(buf, sizeof buf,
		 "20 1 0:77 / /mnt/tmp rw,relatime shared:1 - tmpfs tmpfs rw\n"
		 "21 1 0:78 / /mnt/btr rw - btrfs /dev/sdb1 rw,subvolid=5,subvol=/\n"
		 "22 1 0:79 / /mnt/ovl rw - overlay overlay rw,lowerdir=%s/lower1:/proc,upperdir=%s/up\\054per,workdir=%s/work\n"
		 "23 1 0:80 / /mnt/ovl2 rw - overlay overlay rw,lowerdir=/nonexistent/a,upperdir=/nonexistent/b\n"
		 "24 1 0:81 / /mnt/nfs rw - nfs4 server:/export rw,vers=4.2\n"
		 "25 1 0:82 / /mnt/with\\040space rw master:3 shared:4 - ext4 /dev/sdd rw\n"
		 "26 1 0:83 / /mnt/btr2 rw - btrfs /dev/null rw\n",
		 tmp, tmp, tmp);
	xsnprintf(minfo, sizeof minfo, "%s/mountinfo", tmp);
	write_small_file(minfo, buf);
	xsnprintf(buf, sizeof buf, "%s/lower1", tmp);
	mkdir(buf, 0755);
	xsnprintf(buf, sizeof buf, "%s/up,per", tmp);
	mkdir(buf, 0755);
}

/* ---- helpers ---- */

/* qsort comparator for disk names. */
static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The set as sorted '+'-joined text (readdir order is arbitrary). */
static const char *sorted(struct stage_disk *d)
{
	static char buf[STAGE_MAX_DISKS * STAGE_NAME_LEN];
	qsort(d->disks, d->ndisks, STAGE_NAME_LEN, cmp_name);
	stage_disks_str(d, buf, sizeof buf);
	return buf;
}

/* A stage_disk made of a '+'-joined list. */
static struct stage_disk set_of(const char *list)
{
	struct stage_disk d = { 0 };
	char buf[256], *save = NULL;
	xsnprintf(buf, sizeof buf, "%s", list);
	for (char *t = strtok_r(buf, "+", &save); t; t = strtok_r(NULL, "+", &save))
		xsnprintf(d.disks[d.ndisks++], STAGE_NAME_LEN, "%s", t);
	return d;
}

/* ---- the walk ---- */

/* Device numbers in the fake sysfs -> the right sets. */
static void test_walk_sysfs(void)
{
	static const struct { unsigned maj, min; const char *want; int err; } t[] = {
		{ 8, 0, "sda", 0 },            /* a whole disk */
		{ 8, 1, "sda", 0 },            /* partition -> disk */
		{ 8, 32, "sdc", 0 },
		{ 9, 0, "sdb+sdc", 0 },        /* md: its members' disks */
		{ 259, 0, "sdb+sdc", 0 },      /* a partition of the md */
		{ 253, 0, "sda", 0 },          /* LVM on sda2 */
		{ 253, 1, "sdb+sdc", 0 },      /* crypt on md */
		{ 253, 2, "sda+sdd", 0 },      /* LVM over two disks */
		{ 253, 3, "sdb+sdc", 0 },      /* LVM on crypt on md */
		{ 7, 0, "loop0+sdz", 0 },      /* loop: itself + the backing file's disk */
		{ 259, 8, "loop0+sdz", 0 },    /* a partition of the loop device */
		{ 7, 1, "loop1", 0 },          /* backing file deleted: the loop alone */
		{ 7, 2, "loop2", 0 },          /* unattached loop device */
		{ 240, 0, NULL, -ELOOP },      /* cycle */
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct stage_disk d;
		UNIT_CTX("dev %u:%u", t[i].maj, t[i].min);
		int r = stage_disks_of_dev(&env, makedev(t[i].maj, t[i].min), NULL, &d);
		CHECK_INT(r, t[i].err);
		if (r == 0) {
			CHECK_STR(sorted(&d), t[i].want);
			CHECK(!d.is_virtual);
		}
	}
	UNIT_CTX(NULL);
}

/* Device numbers sysfs does not know -> through the fake mountinfo. */
static void test_walk_mountinfo(void)
{
	struct stat proc;
	char want_ovl[64];
	if (!CHECK(stat("/proc", &proc) == 0))
		return;
	xsnprintf(want_ovl, sizeof want_ovl, "sdz+virtual:%u:%u", major(proc.st_dev), minor(proc.st_dev));
	static const char *paths[] = { NULL, NULL, NULL, NULL, NULL, "/mnt/btr/sub/dir", "/mnt/tmp/x", "/elsewhere", NULL };
	const struct { unsigned min; const char *want; bool virt; } t[] = {
		{ 77, "virtual:0:77", true },   /* tmpfs */
		{ 78, "sdb+sdc", false },       /* btrfs on sdb1 (+ sdc1 from fs/btrfs) */
		{ 79, want_ovl, false },        /* overlay: upper and lower layers */
		{ 80, "virtual:0:80", true },   /* overlay whose layers are not reachable */
		{ 81, "virtual:0:81", true },   /* nfs */
		{ 99, "sdb+sdc", false },       /* a btrfs subvolume: found by path */
		{ 98, "virtual:0:98", true },   /* under a tmpfs but another number: itself */
		{ 97, "virtual:0:97", true },   /* in no mount at all */
		{ 83, "null+sdd", false },      /* btrfs whose source is a real /dev path */
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct stage_disk d;
		UNIT_CTX("dev 0:%u", t[i].min);
		if (!CHECK_INT(stage_disks_of_dev(&env, makedev(0, t[i].min), paths[i], &d), 0))
			continue;
		CHECK_STR(sorted(&d), t[i].want);
		CHECK_INT(d.is_virtual, t[i].virt);
	}
	UNIT_CTX(NULL);
}

/* The whole description of a real path whose device is in the fake tree. */
static void test_disk_of_path(void)
{
	struct stage_disk d;
	char p[PATH_MAX];
	xsnprintf(p, sizeof p, "%s/backing.img", tmp);
	if (CHECK_INT(stage_disk_of_path_env(&env, p, &d), 0)) {
		CHECK_STR(sorted(&d), "sdz");
		CHECK_STR(d.fsdev, "sdz");
		CHECK(d.total_bytes > 0);
	}
	xsnprintf(p, sizeof p, "%s/nonexistent", tmp);
	CHECK_INT(stage_disk_of_path_env(&env, p, &d), -ENOENT);
}

/* Real tmpfs: two directories on one compare equal; another mount differs. */
static void test_real_virtual(void)
{
	struct stage_disk a, b, c;
	if (stage_disk_of_path("/dev/shm", &a) < 0 || !a.is_virtual)
		return;   /* no tmpfs /dev/shm here */
	CHECK_INT(stage_disk_of_path("/dev/shm/.", &b), 0);
	CHECK(stage_same_disk(&a, &b));
	CHECK_STR(a.fstype, "tmpfs");
	CHECK_STR(a.mountpoint, "/dev/shm");
	CHECK_INT(stage_disk_of_path("/proc", &c), 0);
	CHECK(!stage_same_disk(&a, &c));
}

/* ---- mountinfo ---- */

/* Lines: fields, optional fields, escapes, malformed ones. */
static void test_mountinfo_parse(void)
{
	struct stage_mount m;
	char l1[] = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n";
	if (CHECK_INT(stage_mountinfo_parse(l1, &m), 0)) {
		CHECK_INT(m.major, 98);
		CHECK_INT(m.minor, 0);
		CHECK_STR(m.point, "/mnt two");
		CHECK_STR(m.fstype, "ext3");
		CHECK_STR(m.source, "/dev/root");
		CHECK_STR(m.opts, "rw,errors=continue");
	}
	char l2[] = "36 35 98:0 / / rw - tmpfs";
	CHECK_INT(stage_mountinfo_parse(l2, &m), -EINVAL);
	char l3[] = "36 35 98:0 / / rw tmpfs tmpfs rw";
	CHECK_INT(stage_mountinfo_parse(l3, &m), -EINVAL);
	char l4[] = "36 35 x:y / / rw - tmpfs tmpfs rw";
	CHECK_INT(stage_mountinfo_parse(l4, &m), -EINVAL);
	char l5[] = "";
	CHECK_INT(stage_mountinfo_parse(l5, &m), -EINVAL);
}

/* Options: escaped commas, keys that only start alike, missing keys. */
static void test_mount_opt(void)
{
	const char *o = "rw,upperdirx=/no,lowerdir=/a\\054b:/c,upperdir=/u";
	char buf[64];
	CHECK_INT(stage_mount_opt(o, "lowerdir", buf, sizeof buf), 0);
	CHECK_STR(buf, "/a,b:/c");
	CHECK_INT(stage_mount_opt(o, "upperdir", buf, sizeof buf), 0);
	CHECK_STR(buf, "/u");
	CHECK_INT(stage_mount_opt(o, "workdir", buf, sizeof buf), -ENOENT);
	CHECK_INT(stage_mount_opt(o, "rw", buf, sizeof buf), -ENOENT);
	CHECK_INT(stage_mount_opt(o, "lowerdir", buf, 4), -ENAMETOOLONG);
}

/* Finding a mount: by number, by path, longest prefix, the last of an overmount. */
static void test_mount_find(void)
{
	char p[PATH_MAX];
	struct stage_mount m;
	xsnprintf(p, sizeof p, "%s/mi2", tmp);
	write_small_file(p, "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
			    "2 1 0:50 / /srv rw - tmpfs tmpfs rw\n"
			    "3 1 8:17 / /srv/data rw - ext4 /dev/sdb1 rw\n"
			    "4 1 8:33 / /srv/data rw - ext4 /dev/sdc1 rw\n"
			    "5 1 8:1 /x /bind rw - ext4 /dev/sda1 rw\n");
	static const struct { unsigned maj, min; const char *path, *point; int err; } t[] = {
		{ 8, 1, "/etc/x", "/", 0 },
		{ 8, 1, "/bind/y", "/bind", 0 },          /* the bind mount's point, same number */
		{ 8, 1, NULL, "/bind", 0 },               /* no path: the last with the number */
		{ 8, 33, "/srv/data/f", "/srv/data", 0 },
		{ 0, 60, "/srv/data/f", "/srv/data", 0 }, /* unknown number: the top mount by path */
		{ 0, 60, "/srvx", "/", 0 },               /* component boundary */
		{ 0, 60, NULL, NULL, -ENOENT },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		UNIT_CTX("%u:%u %s", t[i].maj, t[i].min, t[i].path ? t[i].path : "(null)");
		int r = stage_mount_find(p, makedev(t[i].maj, t[i].min), t[i].path, &m);
		if (CHECK_INT(r, t[i].err) && r == 0) {
			CHECK_STR(m.point, t[i].point);
			if (t[i].min == 60 && t[i].path && strcmp(t[i].path, "/srv/data/f") == 0)
				CHECK_STR(m.source, "/dev/sdc1");
			stage_mount_free(&m);
		}
	}
	UNIT_CTX(NULL);
	CHECK_INT(stage_mount_find("/nonexistent/mountinfo", 0, "/", &m), -ENOENT);
}

/* ---- comparing ---- */

/* Set intersection, and the shared names for messages. */
static void test_same_disk(void)
{
	static const struct { const char *a, *b, *shared; } t[] = {
		{ "sda", "sda", "sda" },
		{ "sda", "sdb", "" },
		{ "sdb+sdc", "sdc", "sdc" },
		{ "sdb+sdc", "sdc+sdb", "sdb+sdc" },
		{ "sdb+sdc", "sdd+sde", "" },
		{ "loop0+vda", "loop1+vda", "vda" },
		{ "loop0+vda", "loop1+virtual:0:50", "" },
		{ "loop0+vda", "loop0+vda", "loop0+vda" },
		{ "virtual:0:27", "virtual:0:27", "virtual:0:27" },
		{ "virtual:0:27", "virtual:0:28", "" },
		{ "sda", "", "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct stage_disk a = set_of(t[i].a), b = set_of(t[i].b);
		char buf[128];
		UNIT_CTX("%s vs %s", t[i].a, t[i].b);
		CHECK_INT(stage_same_disk(&a, &b), t[i].shared[0] != 0);
		CHECK_INT(stage_same_disk(&b, &a), t[i].shared[0] != 0);
		stage_shared_disks(&a, &b, buf, sizeof buf);
		CHECK_STR(buf, t[i].shared);
	}
	UNIT_CTX(NULL);
}

/* ---- choosing ---- */

#define GiB (1ull << 30)

/* A made-up candidate. */
static struct stage_cand cand(const char *dir, const char *disks, uint64_t free_gib_x10, unsigned clients)
{
	struct stage_cand c = { .dir = dir, .clients = clients, .disk = set_of(disks) };
	c.disk.free_bytes = free_gib_x10 * GiB / 10;
	c.disk.total_bytes = 1000 * GiB;
	return c;
}

/* Ordering: image disk excluded, most free, then fewest clients, then order. */
static void test_rank_order(void)
{
	struct stage_image img = { .path = "/srv/images/win10.img", .disk = set_of("sda") };
	char why[2048];
	struct stage_cand c[] = {
		cand("/srv/ov1", "sda", 1000, 0),
		cand("/srv/ov2", "sdb", 500, 0),
		cand("/srv/ov3", "sdc", 800, 0),
	};
	why[0] = 0;
	CHECK_INT(stage_rank(c, 3, &img, 1, NULL, false, why, sizeof why), 2);
	CHECK_STR(why, "/srv/ov1: on sda, the disk that holds image win10 (/srv/images/win10.img); "
		       "use another disk or --force\n");
	/* Within one GiB the fewer clients win; equal clients: the earlier. */
	c[1] = cand("/srv/ov2", "sdb", 802, 3);
	c[2] = cand("/srv/ov3", "sdc", 805, 1);
	CHECK_INT(stage_rank(c, 3, &img, 1, NULL, false, NULL, 0), 2);
	c[2].clients = 3;
	CHECK_INT(stage_rank(c, 3, &img, 1, NULL, false, NULL, 0), 1);
	c[2].disk.free_bytes += GiB;
	CHECK_INT(stage_rank(c, 3, &img, 1, NULL, false, NULL, 0), 2);
	/* With force the image's disk may be used, but a disk apart comes first. */
	why[0] = 0;
	CHECK_INT(stage_rank(c, 3, &img, 1, NULL, true, why, sizeof why), 2);
	CHECK_CONTAINS(why, "/srv/ov1: on sda, the disk that holds image win10 (/srv/images/win10.img); allowed by --force");
	CHECK_INT(stage_rank(c, 1, &img, 1, NULL, true, NULL, 0), 0);
	CHECK_INT(stage_rank(c, 1, &img, 1, NULL, false, NULL, 0), -ENOSPC);
}

/* Exclusions: probe errors, the floor in bytes and percent, md images. */
static void test_rank_exclusions(void)
{
	struct stage_image img[] = {
		{ .path = "/srv/images/a.img", .disk = set_of("sdb+sdc") },
		{ .path = "/srv/images/gone.img", .err = -ENOENT },
	};
	struct stage_floor pct = { 0, 5 };
	char why[4096];
	struct stage_cand c[] = {
		{ .dir = "/srv/missing", .err = -ENOENT },
		{ .dir = "/srv/ro", .err = -EROFS },
		{ .dir = "/srv/locked", .err = -EACCES },
		{ .dir = "/srv/file", .err = -ENOTDIR },
		cand("/srv/small", "sdd", 5, 0),            /* 0.5 GiB < 1 GiB */
		cand("/srv/md1", "sdc", 900, 0),
		cand("/srv/md2", "sdb+sdc", 900, 0),
	};
	why[0] = 0;
	CHECK_INT(stage_rank(c, (int)ARRAY_SIZE(c), img, 2, NULL, false, why, sizeof why), -ENOSPC);
	CHECK_CONTAINS(why, "/srv/missing: does not exist; create it (mkdir -p /srv/missing) or leave it out\n");
	CHECK_CONTAINS(why, "/srv/ro: on a read-only filesystem; remount it read-write or use another directory\n");
	CHECK_CONTAINS(why, "/srv/locked: not writable (Permission denied)");
	CHECK_CONTAINS(why, "/srv/file: not a directory");
	CHECK_CONTAINS(why, "/srv/small: only 512.0 MiB free of 1000.0 GiB, below the floor of 1.0 GiB; free some space");
	CHECK_CONTAINS(why, "/srv/md1: on sdc, the disk that holds image a (/srv/images/a.img)");
	CHECK_CONTAINS(why, "/srv/md2: on sdb+sdc, the disks that hold image a (/srv/images/a.img)");
	/* 5%: 0.5 GiB free of 1000 GiB fails, 60 GiB passes, 40 GiB fails. */
	char reason[512];
	struct stage_cand d = cand("/srv/big", "sdd", 600, 0);
	CHECK_INT(stage_verdict(&d, img, 2, &pct, false, reason, sizeof reason), 0);
	d.disk.free_bytes = 40 * GiB;
	CHECK_INT(stage_verdict(&d, img, 2, &pct, false, reason, sizeof reason), -ENOSPC);
	CHECK_CONTAINS(reason, "below the floor of 50.0 GiB");
	struct stage_floor both = { 100 * GiB, 5 };
	d.disk.free_bytes = 60 * GiB;
	CHECK_INT(stage_verdict(&d, img, 2, &both, false, reason, sizeof reason), -ENOSPC);
	/* Only missing ones: -ENOENT; none at all: -ENOENT. */
	CHECK_INT(stage_rank(c, 1, img, 2, NULL, false, NULL, 0), -ENOENT);
	CHECK_INT(stage_rank(c, 0, img, 2, NULL, false, NULL, 0), -ENOENT);
	/* force does not lift the floor. */
	c[5].disk.free_bytes = GiB / 2;
	CHECK_INT(stage_rank(c + 5, 2, img, 2, NULL, true, NULL, 0), 1);
}

/* stage_choose on real directories: same disk refused, force, missing image. */
static void test_choose_real(void)
{
	char ov1[PATH_MAX], ov2[PATH_MAX], im[PATH_MAX], gone[PATH_MAX], why[4096];
	xsnprintf(ov1, sizeof ov1, "%s/ov1", tmp);
	xsnprintf(ov2, sizeof ov2, "%s/ov-missing", tmp);
	xsnprintf(im, sizeof im, "%s/golden.img", tmp);
	xsnprintf(gone, sizeof gone, "%s/gone.img", tmp);
	mkdir(ov1, 0755);
	write_small_file(im, "image");
	const char *dirs[] = { ov2, ov1 }, *imgs[] = { im }, *gones[] = { gone };
	const unsigned clients[] = { 0, 7 };
	struct stage_floor none = { 0, 0 };
	struct stage_choice ch;
	CHECK_INT(stage_choose(dirs, 2, imgs, 1, clients, &none, false, &ch, why, sizeof why), -ENOSPC);
	CHECK_CONTAINS(why, "the disk that holds image golden (");
	CHECK_CONTAINS(why, "ov-missing: does not exist");
	if (CHECK_INT(stage_choose(dirs, 2, imgs, 1, clients, &none, true, &ch, why, sizeof why), 0)) {
		CHECK_INT(ch.index, 1);
		CHECK_STR(ch.dir, ov1);
		CHECK_INT(ch.clients, 7);
	}
	CHECK_INT(stage_choose(dirs, 2, gones, 1, NULL, &none, false, &ch, why, sizeof why), -ENOENT);
	CHECK_CONTAINS(why, "gone.img: cannot find its disk (No such file or directory); fix the path or use --force");
	CHECK_INT(stage_choose(dirs, 2, gones, 1, NULL, &none, true, &ch, why, sizeof why), 0);
	CHECK_INT(stage_choose(dirs, 0, imgs, 1, NULL, NULL, false, &ch, why, sizeof why), -ENOENT);
	CHECK_CONTAINS(why, "no overlay directory");
}

/* ---- text ---- */

/* Floor settings. */
static void test_floor_parse(void)
{
	static const struct { const char *in; int err; uint64_t bytes; unsigned pct; } t[] = {
		{ "1G", 0, 1ull << 30, 0 },   { "1g", 0, 1ull << 30, 0 },  { "512M", 0, 512ull << 20, 0 },
		{ "4096", 0, 4096, 0 },       { "0", 0, 0, 0 },            { "2T", 0, 2ull << 40, 0 },
		{ "5%", 0, 0, 5 },            { "0%", 0, 0, 0 },           { "100%", 0, 0, 100 },
		{ "101%", -ERANGE, 0, 0 },    { "%", -EINVAL, 0, 0 },      { "", -EINVAL, 0, 0 },
		{ "G", -EINVAL, 0, 0 },       { "1X", -EINVAL, 0, 0 },     { " 1G", -EINVAL, 0, 0 },
		{ "-1G", -EINVAL, 0, 0 },     { "1.5G", -EINVAL, 0, 0 },   { "17179869184G", -ERANGE, 0, 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct stage_floor f = { 0, 0 };
		UNIT_CTX("'%s'", t[i].in);
		CHECK_INT(stage_floor_parse(t[i].in, &f), t[i].err);
		CHECK_INT(f.min_bytes, t[i].bytes);
		CHECK_INT(f.min_percent, t[i].pct);
	}
	UNIT_CTX(NULL);
}

/* Sizes and image names. */
static void test_text(void)
{
	static const struct { uint64_t n; const char *s; } t[] = {
		{ 0, "0 B" }, { 1023, "1023 B" }, { 1024, "1.0 KiB" }, { 1536ull << 20, "1.5 GiB" },
		{ 1ull << 40, "1.0 TiB" }, { UINT64_MAX, "16.0 EiB" },
	};
	char buf[32];
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		stage_fmt_bytes(t[i].n, buf, sizeof buf);
		CHECK_STR(buf, t[i].s);
	}
	static const struct { const char *path, *name; } n[] = {
		{ "/srv/images/win10.img", "win10" }, { "/a/b.c.qcow2", "b.c" },
		{ "/a/noext", "noext" }, { "/a/.hidden", ".hidden" }, { "rel.raw", "rel" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(n); i++) {
		stage_image_name(n[i].path, buf, sizeof buf);
		CHECK_STR(buf, n[i].name);
	}
	struct stage_disk d = set_of("loop0+vda");
	stage_disks_str(&d, buf, sizeof buf);
	CHECK_STR(buf, "loop0+vda");
}

int main(void)
{
	xsnprintf(tmp, sizeof tmp, "%s", unit_tmpdir());
	xsnprintf(sys, sizeof sys, "%s/sys", tmp);
	build_sysfs();
	build_mountinfo();
	env = (struct stage_env){ .sysfs = sys, .mountinfo = minfo };
	test_walk_sysfs();
	test_walk_mountinfo();
	test_disk_of_path();
	test_real_virtual();
	test_mountinfo_parse();
	test_mount_opt();
	test_mount_find();
	test_same_disk();
	test_rank_order();
	test_rank_exclusions();
	test_choose_real();
	test_floor_parse();
	test_text();
	return unit_done();
}
