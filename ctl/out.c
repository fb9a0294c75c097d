/* out.c — bootlinkctl's output: JSON writer, tables, error lines.
 *
 * Design: one process prints one thing, so the state is a single static
 * struct. The JSON document goes to an open_memstream() buffer, opened
 * lazily with the root object; out_finish() closes every open container,
 * adds "error" on failure, and copies the buffer to stdout, so stdout
 * never holds half a document. Strings are escaped per RFC 8259 and
 * bytes that are not valid UTF-8 (paths may hold any) become U+FFFD, so
 * the document is always valid.
 */
#include "out.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DEPTH 16

static struct {
	bool json;
	FILE *doc;               /* JSON mode: the document being built */
	char *buf;
	size_t len;
	int depth;               /* open containers, root included */
	bool empty[MAX_DEPTH];   /* nothing written yet in this container */
	bool array[MAX_DEPTH];
	char error[1024];        /* last out_fail() message */
} o;

/* Switch to JSON mode. */
void out_set_json(void)
{
	o.json = true;
}

/* Is JSON mode on? */
bool out_json(void)
{
	return o.json;
}

/* Human text on stdout. */
void out_text(const char *fmt, ...)
{
	va_list ap;
	if (o.json)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

/* Format an error line on stderr and keep the message. */
static void fail_line(const char *fmt, va_list ap)
{
	vsnprintf(o.error, sizeof o.error, fmt, ap);
	fflush(stdout);
	fprintf(stderr, "bootlinkctl: %s\n", o.error);
}

/* The last out_fail() message ("" if none). */
const char *out_last_error(void)
{
	return o.error;
}

/* Error line; returns CTL_ERR. */
int out_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fail_line(fmt, ap);
	va_end(ap);
	return CTL_ERR;
}

/* Usage error line; returns CTL_USAGE. */
int out_fail_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fail_line(fmt, ap);
	va_end(ap);
	return CTL_USAGE;
}

/* ---- JSON ---- */

/* Length of the valid UTF-8 sequence at s, 0 if invalid. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80;     /* no overlong forms */
		hi = c == 0xed ? 0x9f : 0xbf;     /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf;     /* not above U+10FFFF */
	} else
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* Write s as a JSON string literal to f (out.h). */
void out_json_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	fputc('"', f);
	while (*p) {
		size_t n = utf8_seq(p);
		if (n == 0) {
			fputs("\\ufffd", f);
			p++;
		} else if (*p == '"' || *p == '\\') {
			fputc('\\', f);
			fputc(*p++, f);
		} else if (*p == '\n') {
			fputs("\\n", f), p++;
		} else if (*p == '\t') {
			fputs("\\t", f), p++;
		} else if (*p == '\r') {
			fputs("\\r", f), p++;
		} else if (*p < 0x20) {
			fprintf(f, "\\u%04x", *p++);
		} else {
			fwrite(p, 1, n, f);
			p += n;
		}
	}
	fputc('"', f);
}

/* Write s as a JSON string literal into the document. */
static void put_string(const char *s)
{
	out_json_string(o.doc, s);
}

/* Open the root object on first use. False if JSON is off or broken. */
static bool doc_ready(void)
{
	if (!o.json)
		return false;
	if (o.doc)
		return true;
	o.doc = open_memstream(&o.buf, &o.len);
	if (!o.doc)
		return false;
	fputc('{', o.doc);
	o.depth = 1;
	o.empty[0] = true;
	o.array[0] = false;
	return true;
}

/* Separator, newline, indentation and "key": before a new value. */
static void begin_value(const char *key)
{
	int d = o.depth - 1;
	if (!o.empty[d])
		fputc(',', o.doc);
	o.empty[d] = false;
	fprintf(o.doc, "\n%*s", 2 * o.depth, "");
	if (!o.array[d]) {
		put_string(key ? key : "");
		fputs(": ", o.doc);
	}
}

/* Begin an object or array as the next value. */
static void open_container(const char *key, bool array)
{
	if (!doc_ready())
		return;
	if (o.depth >= MAX_DEPTH) {
		fprintf(stderr, "bootlinkctl: internal error: JSON nested too deep\n");
		abort();
	}
	begin_value(key);
	fputc(array ? '[' : '{', o.doc);
	o.empty[o.depth] = true;
	o.array[o.depth] = array;
	o.depth++;
}

/* Begin an object. */
void out_obj(const char *key)
{
	open_container(key, false);
}

/* Begin an array. */
void out_arr(const char *key)
{
	open_container(key, true);
}

/* Close the innermost container (the root only from out_finish). */
static void close_container(void)
{
	o.depth--;
	if (!o.empty[o.depth])
		fprintf(o.doc, "\n%*s", 2 * o.depth, "");
	fputc(o.array[o.depth] ? ']' : '}', o.doc);
}

/* End the innermost object or array (never the root). */
void out_end(void)
{
	if (o.doc && o.depth > 1)
		close_container();
}

/* A string member or element. */
void out_str(const char *key, const char *v)
{
	if (!doc_ready())
		return;
	begin_value(key);
	put_string(v);
}

/* An integer member or element. */
void out_int(const char *key, int64_t v)
{
	if (!doc_ready())
		return;
	begin_value(key);
	fprintf(o.doc, "%lld", (long long)v);
}

/* A boolean member or element. */
void out_bool(const char *key, bool v)
{
	if (!doc_ready())
		return;
	begin_value(key);
	fputs(v ? "true" : "false", o.doc);
}

/* Finish the document and stdout; see out.h. */
int out_finish(int rc)
{
	if (rc == CTL_HELP)
		rc = CTL_OK;
	else if (doc_ready()) {
		while (o.depth > 1)
			close_container();
		if (rc != CTL_OK)
			out_str("error", o.error[0] ? o.error : "failed");
		close_container();
		fputc('\n', o.doc);
		fclose(o.doc);
		fwrite(o.buf, 1, o.len, stdout);
		free(o.buf);
		o.doc = NULL;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		int e = errno;
		fprintf(stderr, "bootlinkctl: cannot write the output: %s\n", strerror(e));
		return CTL_ERR;
	}
	return rc;
}

/* ---- tables ---- */

struct out_table {
	const struct out_col *cols;
	size_t ncols, nrows, cap;
	char **cells;            /* nrows * ncols, row-major */
};

/* An empty table with these columns (kept by reference). */
struct out_table *out_table_new(const struct out_col *cols, size_t ncols)
{
	struct out_table *t = calloc(1, sizeof *t);
	if (t) {
		t->cols = cols;
		t->ncols = ncols;
	}
	return t;
}

/* Append a row (cells copied). */
int out_table_row(struct out_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		char **c = realloc(t->cells, cap * t->ncols * sizeof *c);
		if (!c)
			return -ENOMEM;
		t->cells = c;
		t->cap = cap;
	}
	char **row = t->cells + t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		row[i] = strdup(cells[i] ? cells[i] : "");
		if (!row[i]) {
			while (i--)
				free(row[i]);
			return -ENOMEM;
		}
	}
	t->nrows++;
	return 0;
}

/* Rows so far. */
size_t out_table_rows(const struct out_table *t)
{
	return t->nrows;
}

/* Free a table (NULL is fine). */
void out_table_free(struct out_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* Display width of a UTF-8 string (code points; good enough for names). */
static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/* Append one cell to line, padded to w (right-aligned for numbers). */
static void put_cell(FILE *line, const char *s, size_t w, bool num)
{
	int pad = (int)(w - width(s));
	if (num)
		fprintf(line, "%*s%s", pad, "", s);
	else
		fprintf(line, "%s%*s", s, pad, "");
}

/* Print row r (0 = the headings) without trailing blanks. */
static void print_row(const struct out_table *t, const size_t *w, size_t n, size_t r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *line = open_memstream(&buf, &len);
	if (!line)
		return;
	for (size_t c = 0; c < n; c++) {
		if (t->cols[c].flags & COL_JSON)
			continue;
		put_cell(line, r ? t->cells[(r - 1) * t->ncols + c] : t->cols[c].head, w[c],
			 r && (t->cols[c].flags & COL_NUM));
		fputs("  ", line);
	}
	fclose(line);
	while (len && buf[len - 1] == ' ')
		buf[--len] = 0;
	puts(buf);
	free(buf);
}

/* Human rendering: heading row, then rows, columns two spaces apart. */
static void print_human(const struct out_table *t)
{
	size_t w[32] = { 0 };
	size_t n = t->ncols < 32 ? t->ncols : 32;
	for (size_t c = 0; c < n; c++) {
		if (t->cols[c].flags & COL_JSON)
			continue;
		w[c] = width(t->cols[c].head);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t cw = width(t->cells[r * t->ncols + c]);
			w[c] = cw > w[c] ? cw : w[c];
		}
	}
	for (size_t r = 0; r <= t->nrows; r++)
		print_row(t, w, n, r);
}

/* JSON rendering: an array of objects. */
static void print_json(const struct out_table *t, const char *key)
{
	out_arr(key);
	for (size_t r = 0; r < t->nrows; r++) {
		out_obj(NULL);
		for (size_t c = 0; c < t->ncols; c++) {
			const struct out_col *col = &t->cols[c];
			const char *v = t->cells[r * t->ncols + c];
			char *end;
			if (col->flags & COL_HUMAN)
				continue;
			long long n = strtoll(v, &end, 10);
			if ((col->flags & COL_NUM) && *v && !*end)
				out_int(col->key, n);
			else
				out_str(col->key, v);
		}
		out_end();
	}
	out_end();
}

/* Print as text or JSON, then free. */
void out_table_print(struct out_table *t, const char *json_key, const char *empty_msg)
{
	if (o.json)
		print_json(t, json_key);
	else if (t->nrows == 0 && empty_msg)
		printf("%s\n", empty_msg);
	else
		print_human(t);
	out_table_free(t);
}

/* ---- formatting ---- */

/* Binary-unit size with one decimal below 10. */
const char *out_size(uint64_t bytes, char buf[32])
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	if (bytes < 1024) {
		snprintf(buf, 32, "%llu B", (unsigned long long)bytes);
		return buf;
	}
	double v = (double)bytes / 1024;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, 32, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
	return buf;
}

/* Local time, or "never". */
const char *out_time(int64_t t, char buf[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (t == 0 || !localtime_r(&tt, &tm))
		snprintf(buf, 32, "never");
	else
		strftime(buf, 32, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}
