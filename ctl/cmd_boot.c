/* cmd_boot.c — how PCs boot: `bootlinkctl image set` (sanboot, or a Linux
 * kernel + initrd served over HTTP) and the boot options of `client set`
 * (--menu, --menu-timeout, --cmdline; --keep-san and --drive for sanboot).
 *
 * Design: boot files are stored as absolute paths checked when they are
 * set (a regular, readable file); bootlinkd serves them at
 * /boot/<image>/vmlinuz and /boot/<image>/initrd, looked up by image name,
 * and checks them again whenever it reloads the database. Kernel options
 * (image and client) must pass cmdline_valid(): nothing iPXE would expand.
 * Every change is one transaction with its event, like the other commands.
 */
#include "args.h"
#include "ctl.h"
#include "out.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMDLINE_CHARS "letters, digits, spaces and ._,:/=+@%%-" /* (a format string) */

/* An image's boot settings as JSON under key. */
static void boot_json(const char *key, const struct db_image *img)
{
	out_obj(key);
	out_str("name", img->name);
	out_str("boot", db_boot_name(img->boot));
	out_str("kernel", img->kernel);
	out_str("initrd", img->initrd);
	out_str("cmdline", img->cmdline);
	out_end();
}

/* Absolute path of a boot file (what names it in errors), checked to be a
 * readable regular file. */
static int boot_file(const char *what, const char *arg, char out[DB_PATH_MAX])
{
	char abs[PATH_MAX];
	struct stat st;
	if (!realpath(arg, abs) || stat(abs, &st) < 0)
		return out_fail("%s %s: %s", what, arg, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return out_fail("%s %s: not a regular file", what, arg);
	if (access(abs, R_OK) < 0)
		return out_fail("%s %s: %s (bootlinkd must be able to read it)", what, arg, strerror(errno));
	if (strlen(abs) >= DB_PATH_MAX)
		return out_fail("%s %s: path longer than %d bytes", what, arg, DB_PATH_MAX - 1);
	snprintf(out, DB_PATH_MAX, "%s", abs);
	return CTL_OK;
}

/* Check a --cmdline value. */
static int check_cmdline(const char *s)
{
	if (!cmdline_valid(s))
		return out_fail("--cmdline '%s': use at most 255 bytes of " CMDLINE_CHARS
				" (nothing iPXE would expand: no $, |, &, #, quotes)", s);
	return CTL_OK;
}

/* image set NAME [--boot sanboot|linux] [--kernel PATH] [--initrd PATH|none] [--cmdline TEXT] */
int cmd_image_set(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS], *boot = NULL, *kernel = NULL, *initrd = NULL, *cmdline = NULL;
	const struct args_opt opts[] = { { .name = "boot", .value = &boot },
					 { .name = "kernel", .value = &kernel },
					 { .name = "initrd", .value = &initrd },
					 { .name = "cmdline", .value = &cmdline }, { 0 } };
	struct db_image img;
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	if (!boot && !kernel && !initrd && !cmdline)
		return args_usage(c, "nothing to change: give --boot, --kernel, --initrd and/or --cmdline");
	int b = boot ? db_boot_parse(boot) : -1;
	if (boot && b < 0)
		return out_fail("unknown boot '%s': use sanboot (iSCSI disk, any OS) or linux (kernel + initrd "
				"over HTTP, root on NBD)", boot);
	if ((cmdline && (ret = check_cmdline(cmdline))) || (ret = store_open(c, false)) ||
	    (ret = store_image(c, pos[0], &img)))
		return ret;
	if (kernel && (ret = boot_file("kernel", kernel, img.kernel)))
		return ret;
	if (initrd && strcmp(initrd, "none") == 0)
		img.initrd[0] = 0;
	else if (initrd && (ret = boot_file("initrd", initrd, img.initrd)))
		return ret;
	if (cmdline)
		snprintf(img.cmdline, sizeof img.cmdline, "%s", cmdline);
	/* Giving a kernel means booting it, unless --boot says otherwise. */
	img.boot = b >= 0 ? b : kernel ? DB_BOOT_LINUX : img.boot;
	if (img.boot == DB_BOOT_LINUX && !img.kernel[0])
		return out_fail("image %s: --boot linux needs a kernel: add --kernel PATH (and --initrd PATH)", img.name);
	if ((ret = store_begin(c)))
		return ret;
	if ((ret = db_image_set_boot(c->db, &img)) < 0)
		return store_abort(c, store_fail(ret, "setting the boot of image %s", img.name));
	if ((ret = store_commit(c, NULL, "image", "image set %s: boot %s, kernel %s, initrd %s, cmdline '%s'",
				img.name, db_boot_name(img.boot), img.kernel[0] ? img.kernel : "-",
				img.initrd[0] ? img.initrd : "-", img.cmdline)))
		return ret;
	if (img.boot == DB_BOOT_LINUX)
		out_text("image %s boots Linux: kernel %s, initrd %s%s%s\n", img.name, img.kernel,
			 img.initrd[0] ? img.initrd : "none", img.cmdline[0] ? ", options: " : "", img.cmdline);
	else
		out_text("image %s boots with sanboot (iSCSI)\n", img.name);
	boot_json("image", &img);
	return CTL_OK;
}

/* Parse "IMG1,IMG2" (or "" / "none": no menu) into image ids. */
static int parse_menu(struct ctl *c, const char *list, struct db_menu *m)
{
	char buf[DB_MENU_MAX * DB_NAME_MAX + 16];
	memset(m, 0, sizeof *m);
	if (!list[0] || strcmp(list, "none") == 0)
		return CTL_OK;
	if (strlen(list) >= sizeof buf)
		return out_fail("--menu: too long (at most %d images)", DB_MENU_MAX);
	snprintf(buf, sizeof buf, "%s", list);
	char *save = NULL;
	for (char *n = strtok_r(buf, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
		struct db_image img;
		int ret = store_image(c, n, &img);
		if (ret)
			return ret;
		bool dup = false;
		for (int i = 0; i < m->n; i++)
			dup |= m->image_id[i] == img.id;
		if (dup)
			continue;
		if (m->n == DB_MENU_MAX)
			return out_fail("--menu: at most %d images", DB_MENU_MAX);
		m->image_id[m->n] = img.id;
		snprintf(m->name[m->n], sizeof m->name[0], "%s", img.name);
		m->n++;
	}
	return CTL_OK;
}

/* "IMG1,IMG2" or "none". */
static void menu_text(const struct db_menu *m, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = 0;
	for (int i = 0; i < m->n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "", m->name[i]);
	if (!m->n)
		snprintf(buf, len, "none");
}

/* Boot settings of a client as JSON members of the open object. */
void client_boot_json(struct ctl *c, const struct db_client *cl)
{
	struct db_menu m;
	out_int("menu_timeout", cl->menu_timeout);
	out_str("cmdline", cl->cmdline);
	out_int("keep_san", cl->san_keep);
	out_int("san_drive", cl->san_drive);
	out_arr("menu");
	if (c->db && db_client_menu_get(c->db, cl->id, &m) == 0)
		for (int i = 0; i < m.n; i++)
			out_str(NULL, m.name[i]);
	out_end();
}

/* Parse a --drive value: a BIOS hard disk number, 0x80..0xff (hex with
 * 0x, or decimal 128..255). */
static int parse_drive(const char *s, int *out)
{
	uint64_t v = 0;
	bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	const char *h = s + 2;
	bool ok = hex ? h[0] && strlen(h) <= 4 && strspn(h, "0123456789abcdefABCDEF") == strlen(h)
		      : parse_u64(s, 0, 0xffff, &v) == 0;
	if (hex && ok)
		v = strtoull(h, NULL, 16);
	if (!ok || v < DB_SAN_DRIVE_MIN || v > DB_SAN_DRIVE_MAX)
		return out_fail("--drive '%s': a BIOS hard disk number, 0x%02x..0x%02x (0x80 = the first disk; "
				"decimal 128..255 also works)", s, DB_SAN_DRIVE_MIN, DB_SAN_DRIVE_MAX);
	*out = (int)v;
	return CTL_OK;
}

/* Validate --keep-san and --drive for cl, describing the change in what. */
static int san_prepare(struct db_client *cl, const char *keep, const char *drive, char *what, size_t len)
{
	int d = cl->san_drive, ret;
	size_t used = strlen(what);
	if (keep && strcmp(keep, "0") != 0 && strcmp(keep, "1") != 0)
		return out_fail("--keep-san '%s': use 1 (sanboot --keep: the disk stays hooked when the boot "
				"returns, e.g. to install Windows onto it) or 0", keep);
	if (drive && (ret = parse_drive(drive, &d)))
		return ret;
	if (d < DB_SAN_DRIVE_MIN || d > DB_SAN_DRIVE_MAX) /* a database edited by hand */
		return out_fail("client %s: its drive in the database (%d) is no BIOS hard disk number: "
				"give --drive 0x80..0xff too", cl->mac, d);
	bool k = keep ? keep[0] == '1' : cl->san_keep;
	if (k != cl->san_keep && used < len)
		used += (size_t)snprintf(what + used, len - used, "%skeep-san %d -> %d", used ? ", " : "",
					 cl->san_keep, k);
	if (d != cl->san_drive && used < len)
		snprintf(what + used, len - used, "%sdrive 0x%02x -> 0x%02x", used ? ", " : "", cl->san_drive, d);
	cl->san_keep = k;
	cl->san_drive = d;
	return CTL_OK;
}

/* Validate --menu, --menu-timeout, --cmdline, --keep-san, --drive for cl
 * (database open, no transaction yet). Fills *m (menu to store; m->n =
 * -1: unchanged) and cl's fields; describes the change in what. */
int client_boot_prepare(struct ctl *c, struct db_client *cl, const struct client_boot_opts *o, struct db_menu *m,
			char *what, size_t len)
{
	const char *menu = o->menu, *timeout = o->timeout, *cmdline = o->cmdline;
	int ret;
	m->n = -1;
	if ((cmdline && (ret = check_cmdline(cmdline))) || (ret = san_prepare(cl, o->keep_san, o->drive, what, len)))
		return ret;
	size_t used = strlen(what);
	if (timeout) {
		uint64_t t;
		if (parse_u64(timeout, 0, 3600, &t) < 0)
			return out_fail("--menu-timeout '%s': seconds 0..3600 (0 = wait for a choice)", timeout);
		if ((int)t != cl->menu_timeout && used < len)
			used += (size_t)snprintf(what + used, len - used, "%smenu timeout %d -> %d s", used ? ", " : "",
						 cl->menu_timeout, (int)t);
		cl->menu_timeout = (int)t;
	}
	if (cmdline && strcmp(cmdline, cl->cmdline) != 0) {
		if (used < len)
			used += (size_t)snprintf(what + used, len - used, "%scmdline '%s' -> '%s'", used ? ", " : "",
						 cl->cmdline, cmdline);
		snprintf(cl->cmdline, sizeof cl->cmdline, "%s", cmdline);
	}
	if (menu) {
		struct db_menu old;
		char a[DB_MENU_MAX * DB_NAME_MAX + 8], b[sizeof a];
		if ((ret = parse_menu(c, menu, m)))
			return ret;
		if ((ret = db_client_menu_get(c->db, cl->id, &old)) < 0)
			return store_fail(ret, "reading the menu of client %s", cl->mac);
		menu_text(&old, a, sizeof a);
		menu_text(m, b, sizeof b);
		if (strcmp(a, b) != 0 && used < len)
			snprintf(what + used, len - used, "%smenu %s -> %s", used ? ", " : "", a, b);
		else if (strcmp(a, b) == 0)
			m->n = -1;
	}
	return CTL_OK;
}

/* Store what client_boot_prepare() prepared (inside the transaction). */
int client_boot_store(struct ctl *c, const struct db_client *cl, const struct db_menu *m)
{
	int ret = db_client_set_boot(c->db, cl);
	if (ret == 0 && m->n >= 0)
		ret = db_client_menu_set(c->db, cl->id, m->image_id, m->n);
	return ret < 0 ? store_fail(ret, "setting the boot options of client %s", cl->mac) : CTL_OK;
}
