/* stage_main.c — bootlink-stage: which physical disks hold a path, and
 * where a new overlay may go (overlays on a disk apart from their image).
 *
 *   bootlink-stage disk [--json] PATH...
 *   bootlink-stage check --image IMG [--image IMG]... [--force] [--min-free SIZE|N%] OVERLAY_DIR...
 *   bootlink-stage choose --image IMG [--image IMG]... [--force] [--min-free SIZE|N%] [-v] OVERLAY_DIR...
 *
 * Exit status: 0 fine; 1 a directory refused, nothing usable, or a path
 * that could not be looked up; 2 usage. The logic is all in common/stage.c
 * (shared with bootlinkd); this file parses arguments and prints. Errors
 * are one line on stderr, "bootlink-stage: ...", saying what to do.
 */
#include "log.h"
#include "stage.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2 };

/* What the options said. */
struct args {
	bool json, force, verbose, floor_set;
	struct stage_floor floor;
	const char **images;    /* argv pointers */
	int nimg;
	char **paths;           /* the operands */
	int npaths;
};

static const char usage_text[] =
	"usage: bootlink-stage disk [--json] PATH...\n"
	"       bootlink-stage check --image IMG [--image IMG]... [--force] [--min-free SIZE|N%] OVERLAY_DIR...\n"
	"       bootlink-stage choose --image IMG [--image IMG]... [--force] [--min-free SIZE|N%] [-v] OVERLAY_DIR...\n"
	"\n"
	"  disk     the physical disks behind each path, its filesystem, mount point and space\n"
	"  check    OK or REFUSED (with the reason) for each overlay directory; exit 1 if any is refused\n"
	"  choose   print the overlay directory a new overlay should go to; exit 1 with the reasons if none\n"
	"\n"
	"  --image IMG      a golden image the overlays sit on (repeat for several)\n"
	"  --force          allow a directory on an image's disk (a disk apart is still preferred)\n"
	"  --min-free X     free-space floor: a size (1G, 512M, bytes) or a percentage (5%);\n"
	"                   give both to require both; default 1G\n"
	"  --json           (disk) one JSON document on stdout\n"
	"  -v, --verbose    (choose) also print why the other directories were passed over\n";

/* Print a one-line error, prefixed with the program name. */
__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
	va_list ap;
	fputs("bootlink-stage: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Parse the options after the command name into a. 0, or an exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },     { "force", no_argument, NULL, 'f' },
		{ "image", required_argument, NULL, 'i' }, { "min-free", required_argument, NULL, 'm' },
		{ "verbose", no_argument, NULL, 'v' },  { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	a->floor.min_bytes = STAGE_FLOOR_DEFAULT_BYTES;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': a->json = true; break;
		case 'f': a->force = true; break;
		case 'v': a->verbose = true; break;
		case 'i': a->images[a->nimg++] = optarg; break;
		case 'm':
			if (!a->floor_set)
				a->floor = (struct stage_floor){ 0, 0 };
			a->floor_set = true;
			if (stage_floor_parse(optarg, &a->floor) < 0) {
				say("--min-free '%s': give a size (1G, 512M, a number of bytes) or a percentage (5%%)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h': fputs(usage_text, stdout); exit(0);
		case ':':
			say("%s: %s needs a value (bootlink-stage --help)", argv[0], argv[optind - 1]);
			return EXIT_USAGE;
		default:
			say("%s: unknown option '%s' (bootlink-stage --help)", argv[0], argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	a->paths = argv + optind;
	a->npaths = argc - optind;
	return 0;
}

/* ---- disk ---- */

/* Print s as a JSON string. */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* One path as a JSON object (err: -errno if it could not be looked up). */
static void disk_json(const char *path, int err, const struct stage_disk *d, bool first)
{
	printf("%s\n    {\"path\": ", first ? "" : ",");
	json_str(path);
	if (err) {
		printf(", \"error\": ");
		json_str(strerror(-err));
		printf("}");
		return;
	}
	printf(", \"disks\": [");
	for (unsigned i = 0; i < d->ndisks; i++) {
		fputs(i ? ", " : "", stdout);
		json_str(d->disks[i]);
	}
	printf("], \"virtual\": %s, \"device\": ", d->is_virtual ? "true" : "false");
	json_str(d->fsdev);
	printf(", \"fstype\": ");
	json_str(d->fstype);
	printf(", \"uuid\": ");
	json_str(d->uuid);
	printf(", \"mountpoint\": ");
	json_str(d->mountpoint);
	printf(", \"free_bytes\": %llu, \"total_bytes\": %llu}", (unsigned long long)d->free_bytes,
	       (unsigned long long)d->total_bytes);
}

/* One path as a block of aligned lines. */
static void disk_text(const char *path, const struct stage_disk *d)
{
	char set[STAGE_MAX_DISKS * STAGE_NAME_LEN], fr[32], tot[32];
	stage_disks_str(d, set, sizeof set);
	stage_fmt_bytes(d->free_bytes, fr, sizeof fr);
	stage_fmt_bytes(d->total_bytes, tot, sizeof tot);
	printf("%s\n", path);
	printf("  disks       %s%s\n", set, d->is_virtual ? " (no block device: a virtual disk)" : "");
	printf("  device      %s\n", d->fsdev[0] ? d->fsdev : "-");
	printf("  filesystem  %s%s%s\n", d->fstype[0] ? d->fstype : "-", d->uuid[0] ? "  UUID " : "", d->uuid);
	printf("  mounted on  %s\n", d->mountpoint[0] ? d->mountpoint : "-");
	if (d->total_bytes)
		printf("  space       %s free of %s\n", fr, tot);
}

/* bootlink-stage disk PATH... */
static int cmd_disk(struct args *a)
{
	int rc = 0;
	if (a->npaths == 0) {
		say("disk: give at least one path (a file, a directory or a block device)");
		return EXIT_USAGE;
	}
	if (a->json)
		printf("{\"paths\": [");
	for (int i = 0; i < a->npaths; i++) {
		struct stage_disk d;
		int r = stage_disk_of_path(a->paths[i], &d);
		if (r < 0) {
			say("%s: %s; give an existing file, directory or block device", a->paths[i], strerror(-r));
			rc = EXIT_REFUSED;
		}
		if (a->json)
			disk_json(a->paths[i], r, &d, i == 0);
		else if (r == 0) {
			if (i)
				putchar('\n');
			disk_text(a->paths[i], &d);
		}
	}
	if (a->json)
		printf("\n]}\n");
	return rc;
}

/* ---- check and choose ---- */

/* The operands check and choose both need: images and directories. */
static int need_images_and_dirs(const struct args *a, const char *cmd)
{
	if (a->nimg == 0) {
		say("%s: give the golden image the overlays sit on with --image IMG", cmd);
		return EXIT_USAGE;
	}
	if (a->npaths == 0) {
		say("%s: give at least one overlay directory", cmd);
		return EXIT_USAGE;
	}
	return 0;
}

/* Probe the images for check; one that cannot be found is an error
 * unless --force. 0 or an exit status. */
static int check_images(const struct args *a, struct stage_image *img)
{
	for (int i = 0; i < a->nimg; i++) {
		if (stage_probe_image(NULL, a->images[i], &img[i]) == 0)
			continue;
		if (!a->force) {
			say("image %s: %s; give the path of the golden image file (or --force to skip it)",
			    a->images[i], strerror(-img[i].err));
			return EXIT_REFUSED;
		}
		say("image %s: %s; not compared because of --force", a->images[i], strerror(-img[i].err));
	}
	return 0;
}

/* One OK/REFUSED line for a directory. Returns the verdict. */
static int check_one(const struct args *a, const char *dir, const struct stage_image *img)
{
	struct stage_cand c;
	char reason[PATH_MAX + 512], set[STAGE_MAX_DISKS * STAGE_NAME_LEN], fr[32];
	stage_probe_dir(NULL, dir, &c);
	int r = stage_verdict(&c, img, a->nimg, &a->floor, a->force, reason, sizeof reason);
	if (r < 0) {
		printf("REFUSED %s\n", reason);
		return r;
	}
	if (r > 0) {
		printf("OK      %s\n", reason);
		return r;
	}
	stage_disks_str(&c.disk, set, sizeof set);
	stage_fmt_bytes(c.disk.free_bytes, fr, sizeof fr);
	printf("OK      %s: on %s, apart from the image%s; %s free\n", dir, set, a->nimg > 1 ? "s" : "", fr);
	return 0;
}

/* bootlink-stage check --image IMG... DIR... */
static int cmd_check(struct args *a)
{
	int rc = need_images_and_dirs(a, "check");
	if (rc)
		return rc;
	struct stage_image *img = calloc((size_t)a->nimg, sizeof *img);
	if (!img) {
		say("out of memory");
		return EXIT_REFUSED;
	}
	if ((rc = check_images(a, img)) == 0)
		for (int i = 0; i < a->npaths; i++)
			if (check_one(a, a->paths[i], img) < 0)
				rc = EXIT_REFUSED;
	free(img);
	return rc;
}

/* Print each line of why on stderr, indented. */
static void print_lines(const char *why)
{
	while (*why) {
		size_t n = strcspn(why, "\n");
		fprintf(stderr, "  %.*s\n", (int)n, why);
		why += n + (why[n] == '\n');
	}
}

/* bootlink-stage choose --image IMG... DIR... */
static int cmd_choose(struct args *a)
{
	int rc = need_images_and_dirs(a, "choose");
	if (rc)
		return rc;
	size_t whylen = (size_t)(a->npaths + a->nimg) * (PATH_MAX + 512);
	char *why = malloc(whylen);
	struct stage_choice ch;
	if (!why) {
		say("out of memory");
		return EXIT_REFUSED;
	}
	int r = stage_choose((const char *const *)a->paths, a->npaths, a->images, a->nimg, NULL, &a->floor,
			     a->force, &ch, why, whylen);
	if (r == 0) {
		printf("%s\n", ch.dir);
		if (a->verbose && why[0])
			print_lines(why);
	} else {
		say("no overlay directory can take a new overlay (%s):", strerror(-r));
		print_lines(why);
		rc = EXIT_REFUSED;
	}
	free(why);
	return rc;
}

/* Dispatch on the command name. */
int main(int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(struct args *); } cmds[] = {
		{ "disk", cmd_disk }, { "check", cmd_check }, { "choose", cmd_choose },
	};
	bl_log_ident = "bootlink-stage";
	if (argc < 2) {
		say("give a command: disk, check or choose (bootlink-stage --help)");
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("bootlink-stage %s\n", BL_VERSION);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (strcmp(argv[1], cmds[i].name) != 0)
			continue;
		struct args a = { .images = calloc((size_t)argc, sizeof(char *)) };
		int rc = a.images ? parse_args(argc - 1, argv + 1, &a) : EXIT_REFUSED;
		if (rc == 0)
			rc = cmds[i].fn(&a);
		free(a.images);
		return rc;
	}
	say("unknown command '%s': use disk, check or choose (bootlink-stage --help)", argv[1]);
	return EXIT_USAGE;
}
