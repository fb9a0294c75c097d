/* out.h — everything bootlinkctl prints on stdout and its error lines.
 *
 * Two modes, chosen once per run: human text (aligned tables, sentences)
 * or --json, where stdout carries exactly one JSON document: an object
 * built with the out_obj/out_str/... calls below, buffered in memory and
 * written by out_finish(). A failed command still yields one document,
 * with an "error" key holding the message. In human mode the JSON calls
 * do nothing and out_text() prints; in JSON mode it is the other way
 * round, so a command may simply call both.
 *
 * Errors go to stderr as one line, "bootlinkctl: MESSAGE", where the
 * message says what exists or what to do (out_fail()).
 */
#ifndef CTL_OUT_H
#define CTL_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses (CTL_HELP is internal: help was printed, exit 0). */
enum { CTL_OK = 0, CTL_ERR = 1, CTL_USAGE = 2, CTL_HELP = 3 };

/* Switch JSON mode on (before any output; idempotent). */
void out_set_json(void);
bool out_json(void);

/* Human mode: printf to stdout. No-op in JSON mode. */
void out_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "bootlinkctl: MESSAGE" on stderr, keep it for the JSON document;
 * returns CTL_ERR so callers can `return out_fail(...)`. */
int out_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message out_fail() printed, "" if none (a background job
 * records it as its error). */
const char *out_last_error(void);
/* The same for usage errors (the caller prints the usage after it). */
int out_fail_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Write the JSON document (closing what is open, adding "error" when rc
 * is an error), flush stdout, and return the exit status: rc, or CTL_ERR
 * if stdout could not be written. CTL_HELP becomes 0 with no document. */
int out_finish(int rc);

/* JSON writer. key names the member inside an object; pass NULL for
 * array elements. No-ops in human mode. Nesting is at most 16 deep. */
void out_obj(const char *key);
void out_arr(const char *key);
void out_end(void);                         /* close the innermost object/array */
void out_str(const char *key, const char *v);
void out_int(const char *key, int64_t v);
void out_bool(const char *key, bool v);

/* Write s to f as a JSON string literal (escaped; invalid UTF-8 becomes
 * U+FFFD), for JSON files other than the document (backup manifests). */
void out_json_string(FILE *f, const char *s);

/* Tables: the same rows print as aligned columns (human) or as a JSON
 * array of objects (one member per column with a key). */
enum {
	COL_NUM = 1,      /* value is a decimal integer: right-aligned, a JSON number */
	COL_JSON = 2,     /* JSON only */
	COL_HUMAN = 4,    /* human only */
};
struct out_col {
	const char *key;  /* JSON member name */
	const char *head; /* column heading */
	unsigned flags;
};
struct out_table;

struct out_table *out_table_new(const struct out_col *cols, size_t ncols);
/* Add a row of ncols strings (copied). 0 or -ENOMEM. */
int out_table_row(struct out_table *t, const char *const *cells);
size_t out_table_rows(const struct out_table *t);
/* Print: human mode the table (or empty_msg if no rows), JSON mode an
 * array under json_key. Frees t. */
void out_table_print(struct out_table *t, const char *json_key, const char *empty_msg);
void out_table_free(struct out_table *t);

/* "1.5 GiB", "512 B". */
const char *out_size(uint64_t bytes, char buf[32]);
/* Local "YYYY-MM-DD HH:MM:SS", or "never" for 0. */
const char *out_time(int64_t t, char buf[32]);

#endif
