/* confdoc.c — documentation generated from the config schema (common/conf.c).
 *
 *   bootlink-confdoc man      bootlink-config(5), every key of the tree
 *   bootlink-confdoc defaults the text of /etc/bootlink/README: each key, its
 *                             default, what it accepts
 *
 * Built with the programs and run by `make man` / `make install`, so the
 * manual page and the installed README can never drift from what
 * conf_load() accepts: both are loops over conf_schema().
 */
#include "conf.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

/* Write s for roff: backslashes doubled, a leading dot or quote escaped,
 * hyphens as \- (they are part of names and options). */
static void roff(const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", stdout);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", stdout);
		else if (*s == '-')
			fputs("\\-", stdout);
		else
			putchar(*s);
	}
}

/* The manual page. */
static void man(void)
{
	size_t n;
	const struct conf_key *k = conf_schema(&n);
	char allowed[256];
	puts(".TH BOOTLINK-CONFIG 5 2026-12-03 \"bootlink " BL_VERSION "\" \"File Formats\"\n"
	     ".SH NAME\nbootlink-config \\- the bootlink configuration tree\n"
	     ".SH SYNOPSIS\n.I /etc/bootlink/KEY\n"
	     ".SH DESCRIPTION\n"
	     "bootlinkd(8) and bootlinkctl(8) read their settings from a directory tree,\n"
	     "by default\n.IR /etc/bootlink ,\n"
	     "or the one named with\n.BR \\-c .\n"
	     "Each setting is one file whose path below the tree is the key, holding one value on\n"
	     "one line; surrounding white space is ignored. A missing file means the default.\n"
	     "An invalid value stops bootlinkd at start\\-up (and is ignored with a warning while it\n"
	     "runs) with a message naming the file, the value and what is allowed.\n"
	     "Relative paths in path settings are taken relative to the tree.\n"
	     "Files whose names are not keys are reported in the log, with the key they were\n"
	     "probably meant to be.\n"
	     ".PP\n"
	     "A key marked\n.B live\n"
	     "takes effect while bootlinkd runs: it watches the tree with inotify and logs\n"
	     ".RI \"config: \" KEY \" changed: \" OLD \" \\-> \" NEW .\n"
	     "Other keys take effect when bootlinkd is restarted.\n"
	     ".PP\nExample:\n.PP\n.RS\n.nf\n"
	     "mkdir \\-p /etc/bootlink/listen\n"
	     "echo 0.0.0.0:10809 > /etc/bootlink/listen/nbd\n"
	     "echo 2048 > /etc/bootlink/cache/size_mb    # live\n"
	     ".fi\n.RE\n"
	     ".SH KEYS");
	for (size_t i = 0; i < n; i++) {
		conf_describe(&k[i], allowed, sizeof allowed);
		fputs(".TP\n.B ", stdout);
		roff(k[i].name);
		fputs("\n", stdout);
		roff(k[i].help);
		fputs(".\n.br\n", stdout);
		if (k[i].def[0]) {
			fputs("Default:\n.BR \"", stdout);
			roff(k[i].def);
			fputs("\" .\n", stdout);
		} else
			fputs("Default: empty.\n", stdout);
		fputs(".br\nAllowed: ", stdout);
		roff(allowed);
		fputs(".\n.br\n", stdout);
		fputs(k[i].live ? "Changes live.\n" : "Changes at restart.\n", stdout);
	}
	puts(".SH FILES\n.TP\n.I /etc/bootlink/\nthe tree (the Debian package sets\n.BR daemon/user ).\n"
	     ".TP\n.I /var/lib/bootlink/\nthe database, overlays and committed versions by default.\n"
	     ".TP\n.I /run/bootlink/\nthe runtime tree bootlinkd writes.\n"
	     ".SH SEE ALSO\nbootlinkd(8), bootlinkctl(8), bootlink\\-stage(8), bootlink\\-attach(8)");
}

/* The README installed in /etc/bootlink. */
static void defaults(void)
{
	size_t n;
	const struct conf_key *k = conf_schema(&n);
	char allowed[256];
	puts("bootlink configuration tree: one setting per file, the file's path is the key.\n"
	     "A missing file means the default below. Full descriptions: man 5 bootlink-config.\n"
	     "Example: echo 2048 > /etc/bootlink/cache/size_mb\n");
	for (size_t i = 0; i < n; i++) {
		conf_describe(&k[i], allowed, sizeof allowed);
		printf("%s\n    %s\n    default: %s; allowed: %s; %s\n", k[i].name, k[i].help,
		       k[i].def[0] ? k[i].def : "(empty)", allowed, k[i].live ? "changes live" : "changes at restart");
	}
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "man") == 0)
		man();
	else if (argc == 2 && strcmp(argv[1], "defaults") == 0)
		defaults();
	else {
		fprintf(stderr, "usage: bootlink-confdoc man|defaults\n");
		return 2;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
