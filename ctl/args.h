/* args.h — parsing the arguments after a command's words.
 *
 * Options are long-only and GNU style: "--name VALUE", "--name=VALUE" or a
 * bare "--flag", anywhere among the positionals; "--" ends options.
 * "--json" and "-h"/"--help" are accepted by every command. How many
 * positionals a command takes is read from its synopsis (ctl_cmd.args):
 * the leading words, "[WORD]" for an optional one.
 */
#ifndef CTL_ARGS_H
#define CTL_ARGS_H

#include "ctl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define ARGS_MAX_POS 4
#define ARGS_MAX_LIST 16

/* A repeatable option's values, in order. */
struct args_list {
	const char *v[ARGS_MAX_LIST];
	size_t n;
};

/* One option; exactly one of value, flag, list is set. */
struct args_opt {
	const char *name;            /* without the dashes: "description" */
	const char **value;          /* takes a value (last one wins) */
	bool *flag;                  /* takes none, sets *flag */
	struct args_list *list;      /* takes a value, may repeat */
};

/* Parse argv[0..argc) against opts (terminated by a NULL name; opts may
 * be NULL) into pos[ARGS_MAX_POS] (missing optional ones NULL). Returns
 * 0, CTL_HELP (usage printed on stdout) or CTL_USAGE (message and usage
 * printed on stderr). */
int args_parse(struct ctl *c, int argc, char **argv, const struct args_opt *opts,
	       const char *pos[ARGS_MAX_POS]);

/* Usage error for the running command: "bootlinkctl: image add: MSG" and
 * its usage line on stderr; returns CTL_USAGE. */
int args_usage(struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "usage: bootlinkctl [-c DIR] [--json] image add NAME FILE ..." and the
 * help line. */
void args_print_usage(const struct ctl_cmd *cmd, FILE *f);

#endif
