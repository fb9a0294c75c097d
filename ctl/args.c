/* args.c — command argument parsing (see args.h).
 *
 * Design: a hand-written loop instead of getopt_long, which keeps global
 * state, wants short options, and cannot read the positional count from
 * the synopsis. Errors are usage errors (exit 2) naming the command.
 */
#include "args.h"

#include "out.h"
#include "util.h"

#include <stdarg.h>
#include <string.h>

/* Length of the synopsis word at p. */
static size_t word_len(const char *p)
{
	return strcspn(p, " ");
}

/* Count the leading positional words of a synopsis (*required of them
 * not in brackets). If want >= 0, also copy word number want (without
 * brackets) into buf. */
static int synopsis_pos(const char *args, int want, char *buf, size_t len, int *required)
{
	int n = 0;
	*required = 0;
	for (const char *p = args ? args : ""; *p; p += word_len(p)) {
		p += strspn(p, " ");
		if (!*p || *p == '-' || (p[0] == '[' && p[1] == '-'))
			break;
		bool opt = *p == '[';
		if (!opt)
			(*required)++;
		if (n == want) {
			size_t l = word_len(p) - (opt ? 2 : 0);
			snprintf(buf, len, "%.*s", (int)l, p + opt);
		}
		n++;
	}
	return n;
}

/* Usage line and help of one command. */
void args_print_usage(const struct ctl_cmd *cmd, FILE *f)
{
	fprintf(f, "usage: bootlinkctl [-c DIR] [--json] %s%s%s%s%s\n  %s\n", cmd->group,
		cmd->verb ? " " : "", cmd->verb ? cmd->verb : "", cmd->args[0] ? " " : "", cmd->args,
		cmd->help);
}

/* Usage error naming the running command. */
int args_usage(struct ctl *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	out_fail_usage("%s%s%s: %s", c->cmd->group, c->cmd->verb ? " " : "",
		       c->cmd->verb ? c->cmd->verb : "", msg);
	args_print_usage(c->cmd, stderr);
	return CTL_USAGE;
}

/* Handle the option at argv[*i] (may consume the next word as its value). */
static int take_option(struct ctl *c, const struct args_opt *opts, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const char *name = a + 2, *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	for (const struct args_opt *o = opts; a[1] == '-' && o && o->name; o++) {
		if (strlen(o->name) != len || strncmp(o->name, name, len) != 0)
			continue;
		if (o->flag) {
			if (eq)
				return args_usage(c, "option --%s takes no value", o->name);
			*o->flag = true;
			return 0;
		}
		const char *v = eq ? eq + 1 : *i + 1 < argc ? argv[++*i] : NULL;
		if (!v)
			return args_usage(c, "option --%s needs a value", o->name);
		if (!o->list)
			*o->value = v;
		else if (o->list->n < ARGS_MAX_LIST)
			o->list->v[o->list->n++] = v;
		else
			return args_usage(c, "too many --%s (at most %d)", o->name, ARGS_MAX_LIST);
		return 0;
	}
	return args_usage(c, "unknown option '%.*s'", (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
}

/* Split argv into options and positionals. */
int args_parse(struct ctl *c, int argc, char **argv, const struct args_opt *opts,
	       const char *pos[ARGS_MAX_POS])
{
	int required, max = synopsis_pos(c->cmd->args, -1, NULL, 0, &required), n = 0;
	bool options = true;
	memset(pos, 0, ARGS_MAX_POS * sizeof *pos);
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		int ret = 0;
		if (!options || a[0] != '-' || a[1] == 0) {
			if (n >= max || n >= ARGS_MAX_POS)
				return args_usage(c, "unexpected argument '%s'", a);
			pos[n++] = a;
		} else if (strcmp(a, "--") == 0)
			options = false;
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			args_print_usage(c->cmd, stdout);
			return CTL_HELP;
		} else if (strcmp(a, "--json") == 0)
			out_set_json();
		else
			ret = take_option(c, opts, argc, argv, &i);
		if (ret)
			return ret;
	}
	if (n < required) {
		char word[64];
		synopsis_pos(c->cmd->args, n, word, sizeof word, &required);
		return args_usage(c, "missing %s", word);
	}
	return 0;
}
