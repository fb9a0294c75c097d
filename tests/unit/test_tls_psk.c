/* test_tls_psk.c — unit tests for the PSK file parser of daemon/tls.c.
 *
 * Table-driven: each row is a file's text, how many users it yields (or
 * that it is refused) and, when refused, the line the message must name.
 * Run: build/test_tls_psk (exit 0 = all passed).
 */
#include "tls.h"
#include "unit.h"
#include "util.h"

#include <errno.h>
#include <string.h>

struct got {
	int n;
	char first_user[TLS_PSK_MAX_USER + 1];
	uint8_t first_key[TLS_PSK_MAX_KEY];
	size_t first_len;
};

/* tls_psk_parse() callback: count, keep the first entry, refuse a second "dup". */
static int add(const char *user, const uint8_t *key, size_t keylen, void *arg)
{
	struct got *g = arg;
	if (g->n && strcmp(user, "dup") == 0 && strcmp(g->first_user, "dup") == 0)
		return -EEXIST;
	if (g->n++ == 0) {
		snprintf(g->first_user, sizeof g->first_user, "%s", user);
		memcpy(g->first_key, key, keylen);
		g->first_len = keylen;
	}
	return 0;
}

static void test_parse(void)
{
	static const struct { const char *text; int users; const char *err; } t[] = {
		{ "alice:0123456789abcdef\n", 1, NULL },
		{ "alice:0123456789ABCDEF", 1, NULL },                   /* no final newline, upper case */
		{ "# keys\n\n  alice:00ff  \nbob:aa\n", 2, NULL },       /* comments, blanks, spaces */
		{ "", 0, NULL },
		{ "alice\n", -1, "line 1" },                              /* no colon */
		{ ":00ff\n", -1, "line 1" },                              /* no user */
		{ "alice:\n", -1, "line 1" },                             /* no key */
		{ "alice:abc\n", -1, "line 1" },                          /* odd digit count */
		{ "alice:00\nbob:zz\n", -1, "line 2" },                   /* not hex */
		{ "dup:00\ndup:11\n", -1, "line 2: user listed twice" },
		{ "a:0000000000000000000000000000000000000000000000000000000000000000"
		  "0000000000000000000000000000000000000000000000000000000000000000\n", 1, NULL }, /* 64 bytes */
		{ "a:0000000000000000000000000000000000000000000000000000000000000000"
		  "000000000000000000000000000000000000000000000000000000000000000000\n", -1, "line 1" }, /* 65 */
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct got g = { 0 };
		char err[160] = "";
		UNIT_CTX("row %zu", i);
		int r = tls_psk_parse(t[i].text, add, &g, err, sizeof err);
		if (t[i].users < 0) {
			CHECK(r < 0);
			CHECK_CONTAINS(err, t[i].err);
		} else {
			CHECK_INT(r, 0);
			CHECK_INT(g.n, t[i].users);
		}
	}
	UNIT_CTX(NULL);
	struct got g = { 0 };
	char err[160];
	CHECK_INT(tls_psk_parse("alice:00Ff10\n", add, &g, err, sizeof err), 0);
	CHECK_STR(g.first_user, "alice");
	CHECK_INT(g.first_len, 3);
	CHECK(g.first_key[0] == 0x00 && g.first_key[1] == 0xff && g.first_key[2] == 0x10);
}

int main(void)
{
	test_parse();
	return unit_done();
}
