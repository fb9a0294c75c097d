/* main.c — bootlinkctl: the administrator's command line.
 *
 *   bootlinkctl [-c DIR] [--json] COMMAND ...
 *
 * Design: global options first, then one or two command words looked up
 * in cmds[] below; everything after them belongs to the command. Exit
 * status 0 on success, 1 on an error (one "bootlinkctl: ..." line on
 * stderr saying what to do), 2 on a usage error (with the usage).
 */
#include "args.h"
#include "ctl.h"
#include "log.h"
#include "out.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

static const struct ctl_cmd cmds[] = {
	{ "image", "add", "NAME FILE [--description TEXT]",
	  "register a raw disk image file (records its identity and checksum)", cmd_image_add },
	{ "image", "list", "", "images with size, linked clients and file status", cmd_image_list },
	{ "image", "rename", "OLD NEW", "rename an image; clients stay linked", cmd_image_rename },
	{ "image", "rm", "NAME [--force]",
	  "remove an image (the file stays); --force unlinks its clients first", cmd_image_rm },
	{ "image", "verify", "NAME [--update]",
	  "recompute the checksum and compare; --update accepts a changed file", cmd_image_verify },
	{ "image", "repair", "NAME [--search DIR]... [--force]",
	  "find a moved image file and re-point the image at it", cmd_image_repair },
	{ "image", "versions", "NAME", "an image's versions: kind, size on disk, which one is current",
	  cmd_image_versions },
	{ "image", "commit", "NAME [--note TEXT] [--force]",
	  "freeze the maintenance client's overlay into a new version and make it current",
	  cmd_image_commit },
	{ "image", "rollback", "NAME VERSION [--force]",
	  "make another version current (1 = the original file)", cmd_image_rollback },
	{ "image", "flatten", "NAME [--note TEXT] [--force] [--wait]",
	  "merge the current version's base and deltas into a new version, in the background (--wait: "
	  "follow it)", cmd_image_flatten },
	{ "image", "set", "NAME [--boot sanboot|linux] [--kernel PATH] [--initrd PATH|none] [--cmdline TEXT]",
	  "how the image's PCs boot: sanboot of their iSCSI disk (default), or a Linux kernel + initrd over HTTP "
	  "with the root on NBD", cmd_image_set },
	{ "client", "add", "MAC --image NAME [--name PC001] [--mode MODE]",
	  "add a client PC (MODE: ephemeral, persistent or maintenance)", cmd_client_add },
	{ "client", "link", "MAC IMAGE", "link a client to another image", cmd_client_link },
	{ "client", "set", "MAC [--mode MODE] [--name NAME] [--menu IMG,IMG..|none] [--menu-timeout S] [--cmdline TEXT] "
	  "[--keep-san 0|1] [--drive 0x80..0xff]",
	  "change a client's mode or name; the images its boot menu offers besides its own, how long the menu "
	  "waits (0 = forever), extra kernel options for Linux images; for sanboot: keep its iSCSI disk hooked "
	  "when the boot returns (to install Windows onto it), its BIOS drive number",
	  cmd_client_set },
	{ "client", "list", "", "clients with image, mode and last boot", cmd_client_list },
	{ "client", "rm", "MAC", "remove a client", cmd_client_rm },
	{ "overlay", "list", "", "clients' overlays: mode, size, RAM/file split, block size, disk, directory",
	  cmd_overlay_list },
	{ "overlay", "reset", "MAC",
	  "discard a client's overlay (its files now if it is off; it starts clean at its next boot)",
	  cmd_overlay_reset },
	{ "jobs", NULL, "[--limit N]", "background jobs (image flatten), newest first, with progress",
	  cmd_jobs },
	{ "status", NULL, "[--watch] [--every SECONDS]",
	  "one screen: clients (state, address, bytes), images, overlay disks, warnings", cmd_status },
	{ "backup", NULL, "DIR",
	  "online backup: the database and every image version's files, with a manifest and sha256 sums",
	  cmd_backup },
	{ "restore", NULL, "DIR [--to DIR] [--force]",
	  "restore a backup onto a stopped, fresh appliance (files into --to, default paths/versions)",
	  cmd_restore },
	{ "events", NULL, "[MAC] [--client MAC] [--since WHEN] [--limit N]",
	  "recent events, newest first (default 50; WHEN: 2d, 3h, 2026-12-01 ...)",
	  cmd_events },
	{ "pxe-config", NULL,
	  "--interface IF [--proxy|--tftp-only] [--range START,END] [--server ADDR] [--out FILE] [--tftp-root DIR] [--efi FILE]",
	  "write the dnsmasq configuration that PXE-boots PCs into bootlinkd (docs/pxe.md)", cmd_pxe_config },
};

/* Usage: every command (of group, if not NULL) with its help line. */
static void usage(FILE *f, const char *group)
{
	fprintf(f, "usage: bootlinkctl [-c DIR] [--json] %s%sCOMMAND ...\n\ncommands:\n",
		group ? group : "", group ? " " : "");
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (group && strcmp(group, cmds[i].group) != 0)
			continue;
		char words[192];
		snprintf(words, sizeof words, "%s%s%s%s%s", cmds[i].group, cmds[i].verb ? " " : "",
			 cmds[i].verb ? cmds[i].verb : "", cmds[i].args[0] ? " " : "", cmds[i].args);
		fprintf(f, "  %s\n      %s\n", words, cmds[i].help);
	}
	fprintf(f, "\noptions:\n"
		"  -c DIR      config tree (default " CONF_DEFAULT_DIR ")\n"
		"  --json      print one JSON document on stdout\n"
		"  -h, --help  this text; COMMAND --help for one command\n"
		"\nexit status: 0 ok, 1 error, 2 usage error\n");
}

/* Usage error before a command was found (group: the word that matched). */
static int usage_error(const char *group, const char *fmt, const char *arg)
{
	out_fail_usage(fmt, arg);
	usage(stderr, group);
	return CTL_USAGE;
}

/* Parse global options into c; returns the index of the command word,
 * or -(exit status) when done already. */
static int global_options(struct ctl *c, int argc, char **argv)
{
	int i;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0)
			out_set_json();
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout, NULL);
			return -CTL_HELP;
		} else if (strcmp(a, "-c") == 0 && i + 1 < argc)
			c->conf_dir = argv[++i];
		else if (strncmp(a, "-c", 2) == 0 && a[2])
			c->conf_dir = a + 2;
		else if (strcmp(a, "--") == 0)
			return i + 1;
		else
			return -usage_error(NULL, strcmp(a, "-c") == 0 ? "option %s needs a directory"
				: "unknown option '%s'", a);
	}
	if (i == argc)
		return -usage_error(NULL, "%s", "missing COMMAND");
	return i;
}

/* The command named by argv[0] (and argv[1]); *words gets how many words
 * it used. NULL after printing a usage error (or help: *words = -1). */
static const struct ctl_cmd *find_cmd(int argc, char **argv, int *words)
{
	bool group = false;
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (strcmp(cmds[i].group, argv[0]) != 0)
			continue;
		group = true;
		if (!cmds[i].verb) {
			*words = 1;
			return &cmds[i];
		}
		if (argc > 1 && strcmp(cmds[i].verb, argv[1]) == 0) {
			*words = 2;
			return &cmds[i];
		}
	}
	if (strcmp(argv[0], "help") == 0 ||
	    (group && argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))) {
		usage(stdout, group ? argv[0] : NULL);
		*words = -1;
		return NULL;
	}
	*words = 0;
	char msg[160];
	if (!group)
		snprintf(msg, sizeof msg, "unknown command '%s'", argv[0]);
	else if (argc > 1)
		snprintf(msg, sizeof msg, "%s: unknown command '%s'", argv[0], argv[1]);
	else
		snprintf(msg, sizeof msg, "%s: missing a command word", argv[0]);
	usage_error(group ? argv[0] : NULL, "%s", msg);
	return NULL;
}

/* Global options, dispatch, output. */
int main(int argc, char **argv)
{
	struct ctl c = { .conf_dir = CONF_DEFAULT_DIR };
	int words, rc;
	bl_log_ident = "bootlinkctl";
	bl_log_level = BL_WARN;
	int i = global_options(&c, argc, argv);
	if (i < 0)
		return out_finish(-i);
	c.cmd = find_cmd(argc - i, argv + i, &words);
	if (!c.cmd)
		return out_finish(words < 0 ? CTL_HELP : CTL_USAGE);
	rc = c.cmd->run(&c, argc - i - words, argv + i + words);
	db_close(c.db);
	return out_finish(rc);
}
