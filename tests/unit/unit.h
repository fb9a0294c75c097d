/* unit.h — a tiny helper for table-driven unit tests.
 *
 * Every CHECK counts; a failed one prints "file:line: [context] failed: ..."
 * to stdout and the test goes on, so one run shows every failure. Table
 * loops set a context (UNIT_CTX("row %zu: %s", i, t->in)) that failure lines
 * carry, naming the row. A test program ends with `return unit_done();`,
 * which prints "<prog>: N checks, M failed" and returns the exit status:
 * 0 if all passed, 1 otherwise.
 *
 * unit_tmpdir() makes a scratch directory that unit_done() removes.
 *
 * Header-only: each test program is one translation unit.
 */
#ifndef BL_UNIT_H
#define BL_UNIT_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned unit_checks, unit_failed;
static char unit_ctx[256];
static char unit_tmp[64];

/* Set the context shown with failures (NULL or "" clears it). */
__attribute__((format(printf, 1, 2)))
static inline void unit_context(const char *fmt, ...)
{
	unit_ctx[0] = 0;
	if (!fmt)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(unit_ctx, sizeof unit_ctx, fmt, ap);
	va_end(ap);
}

/* Count one check; on failure print where, the context and the message. */
__attribute__((format(printf, 4, 5)))
static inline bool unit_check(bool ok, const char *file, int line, const char *fmt, ...)
{
	unit_checks++;
	if (ok)
		return true;
	unit_failed++;
	printf("%s:%d: %s%s%sfailed: ", file, line, unit_ctx[0] ? "[" : "", unit_ctx, unit_ctx[0] ? "] " : "");
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return false;
}

/* nftw() callback: remove one entry. */
static inline int unit_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

/* A fresh scratch directory (the same one for the whole program), removed
 * with its content by unit_done(). Exits if it cannot be made. */
static inline const char *unit_tmpdir(void)
{
	if (!unit_tmp[0]) {
		snprintf(unit_tmp, sizeof unit_tmp, "/tmp/bl-unit-XXXXXX");
		if (!mkdtemp(unit_tmp)) {
			perror("mkdtemp");
			exit(2);
		}
	}
	return unit_tmp;
}

/* Print the summary line, remove the scratch directory; the exit status. */
static inline int unit_done(void)
{
	if (unit_tmp[0])
		nftw(unit_tmp, unit_rm, 16, FTW_DEPTH | FTW_PHYS);
	printf("%s: %u checks, %u failed: %s\n", program_invocation_short_name, unit_checks, unit_failed,
	       unit_failed ? "FAIL" : "PASS");
	return unit_failed ? 1 : 0;
}

#define UNIT_CTX(...) unit_context(__VA_ARGS__)

/* Each CHECK evaluates to true if it passed, so a test can skip what
 * depends on it: if (!CHECK(fd >= 0)) return; */
#define CHECK(cond) unit_check(!!(cond), __FILE__, __LINE__, "%s", #cond)

#define CHECK_MSG(cond, ...) unit_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define CHECK_INT(a, b) ({ long long a_ = (long long)(a), b_ = (long long)(b); \
	unit_check(a_ == b_, __FILE__, __LINE__, "%s == %s (%lld != %lld)", #a, #b, a_, b_); })

#define CHECK_STR(a, b) ({ const char *a_ = (a), *b_ = (b); \
	unit_check(a_ && b_ && strcmp(a_, b_) == 0, __FILE__, __LINE__, "%s == %s ('%s' != '%s')", \
		   #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); })

#define CHECK_CONTAINS(hay, needle) ({ const char *h_ = (hay), *n_ = (needle); \
	unit_check(h_ && n_ && strstr(h_, n_), __FILE__, __LINE__, "%s contains '%s' (it is '%s')", \
		   #hay, n_ ? n_ : "(null)", h_ ? h_ : "(null)"); })

#endif
