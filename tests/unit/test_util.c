/* test_util.c — unit tests for common/util.c.
 *
 * Table-driven: each parser gets a table of inputs with the expected
 * result, good and bad rows mixed; file helpers run in a scratch
 * directory. Run: build/test_util (exit 0 = all passed).
 */
#include "util.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/stat.h>

/* mac_normalize: the three accepted spellings, and what is refused. */
static void test_mac(void)
{
	static const struct { const char *in, *out; } t[] = {
		{ "52:54:00:AA:bb:01", "52:54:00:aa:bb:01" },
		{ "52-54-00-aa-BB-01", "52:54:00:aa:bb:01" },
		{ "525400AABB01", "52:54:00:aa:bb:01" },
		{ "00:00:00:00:00:00", "00:00:00:00:00:00" },
		{ "ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff" },
		{ "", NULL },
		{ "52:54:00:aa:bb", NULL },
		{ "52:54:00:aa:bb:0g", NULL },
		{ "52:54-00:aa:bb:01", NULL },
		{ "52.54.00.aa.bb.01", NULL },
		{ "525400aabb0", NULL },
		{ "525400aabb011", NULL },
		{ "52:54:00:aa:bb:01:", NULL },
		{ " 52:54:00:aa:bb:1", NULL },
		{ "5254:00aa:bb01", NULL },
		{ "52::54:00:aa:bb:01", NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		char out[MAC_STR_LEN] = "";
		UNIT_CTX("mac '%s'", t[i].in);
		int r = mac_normalize(t[i].in, out);
		if (t[i].out) {
			CHECK_INT(r, 0);
			CHECK_STR(out, t[i].out);
		} else {
			CHECK_INT(r, -EINVAL);
		}
	}
	UNIT_CTX(NULL);
}

/* addr_parse: v4, v6, port only, port 0, and malformed ones; the result is
 * checked through addr_format. */
static void test_addr(void)
{
	static const struct { const char *in, *out; } t[] = {
		{ "127.0.0.1:80", "127.0.0.1:80" },
		{ "0.0.0.0:10809", "0.0.0.0:10809" },
		{ "192.168.1.20:65535", "192.168.1.20:65535" },
		{ "[::1]:10809", "[::1]:10809" },
		{ "[::]:0", "[::]:0" },
		{ "[fe80::1]:1", "[fe80::1]:1" },
		{ "10809", "0.0.0.0:10809" },
		{ "0", "0.0.0.0:0" },
		{ "127.0.0.1:0", "127.0.0.1:0" },
		{ "", NULL },
		{ "abc", NULL },
		{ "1.2.3.4", NULL },
		{ "1.2.3.4:", NULL },
		{ "1.2.3.4:65536", NULL },
		{ "1.2.3.4:-1", NULL },
		{ "1.2.3.4:80x", NULL },
		{ "1.2.3.4: 80", NULL },
		{ "256.1.1.1:80", NULL },
		{ "host.example:80", NULL },
		{ "[::1]", NULL },
		{ "[::1]80", NULL },
		{ "[::1:80", NULL },
		{ "::1", NULL },
		{ ":80", NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct sockaddr_storage ss;
		socklen_t len = 0;
		char buf[64] = "";
		UNIT_CTX("addr '%s'", t[i].in);
		int r = addr_parse(t[i].in, &ss, &len);
		if (!t[i].out) {
			CHECK_INT(r, -EINVAL);
			continue;
		}
		if (!CHECK_INT(r, 0))
			continue;
		CHECK(len == (ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)));
		addr_format((struct sockaddr *)&ss, buf, sizeof buf);
		CHECK_STR(buf, t[i].out);
	}
	UNIT_CTX(NULL);
}

/* parse_u64: strict decimal, whole string, inclusive range. */
static void test_parse_u64(void)
{
	static const struct { const char *in; uint64_t min, max; int rc; uint64_t v; } t[] = {
		{ "0", 0, 10, 0, 0 },
		{ "10", 0, 10, 0, 10 },
		{ "007", 0, 10, 0, 7 },
		{ "11", 0, 10, -ERANGE, 0 },
		{ "5", 6, 10, -ERANGE, 0 },
		{ "18446744073709551615", 0, UINT64_MAX, 0, UINT64_MAX },
		{ "18446744073709551616", 0, UINT64_MAX, -ERANGE, 0 },
		{ "99999999999999999999999", 0, UINT64_MAX, -ERANGE, 0 },
		{ "", 0, 10, -EINVAL, 0 },
		{ "-1", 0, 10, -EINVAL, 0 },
		{ "+1", 0, 10, -EINVAL, 0 },
		{ " 1", 0, 10, -EINVAL, 0 },
		{ "1 ", 0, 10, -EINVAL, 0 },
		{ "1a", 0, 10, -EINVAL, 0 },
		{ "0x10", 0, 100, -EINVAL, 0 },
		{ "1.5", 0, 10, -EINVAL, 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		uint64_t v = 12345;
		UNIT_CTX("parse_u64 '%s' in %llu..%llu", t[i].in, (unsigned long long)t[i].min,
			 (unsigned long long)t[i].max);
		CHECK_INT(parse_u64(t[i].in, t[i].min, t[i].max, &v), t[i].rc);
		CHECK(v == (t[i].rc == 0 ? t[i].v : 12345));  /* untouched on error */
	}
	UNIT_CTX(NULL);
}

/* name_valid: 1..63 of [A-Za-z0-9._-], not starting with '.' or '-'. */
static void test_name_valid(void)
{
	static const char n63[] = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk";
	static const char n64[] = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl";
	static const struct { const char *in; bool ok; } t[] = {
		{ "win10", true }, { "a", true }, { "A.b_c-d", true }, { "0", true },
		{ "img.", true }, { n63, true }, { n64, false }, { "", false },
		{ ".hidden", false }, { "-x", false }, { "a b", false }, { "a/b", false },
		{ "..", false }, { "caf\xc3\xa9", false }, { "a:b", false }, { "a\nb", false },
	};
	CHECK_INT(strlen(n63), 63);
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		UNIT_CTX("name '%s'", t[i].in);
		CHECK_INT(name_valid(t[i].in), t[i].ok);
	}
	UNIT_CTX(NULL);
}

/* str_rstrip and the big-endian helpers. */
static void test_small(void)
{
	char s[] = "value \t\r\n\n";
	str_rstrip(s);
	CHECK_STR(s, "value");
	char e[] = " \n";
	str_rstrip(e);
	CHECK_STR(e, "");

	uint8_t b[8];
	put_be16(b, 0x1234);
	CHECK(b[0] == 0x12 && b[1] == 0x34 && get_be16(b) == 0x1234);
	put_be32(b, 0xdeadbeef);
	CHECK(b[0] == 0xde && b[3] == 0xef && get_be32(b) == 0xdeadbeef);
	put_be64(b, 0x0102030405060708ull);
	CHECK(b[0] == 1 && b[7] == 8 && get_be64(b) == 0x0102030405060708ull);
	CHECK(ALIGN_UP(4097, 4096) == 8192 && ALIGN_DOWN(4097, 4096) == 4096);
	uint64_t a = now_ns(), z = now_ns();
	CHECK(a > 0 && z >= a);
}

/* write_small_file / read_small_file: round trip, overwrite, truncation to
 * the buffer, no temporary left behind, errors. */
static void test_files(const char *tmp)
{
	char path[256], buf[64];
	snprintf(path, sizeof path, "%s/f", tmp);
	CHECK_INT(write_small_file(path, "hello\n"), 0);
	CHECK_INT(read_small_file(path, buf, sizeof buf), 6);
	CHECK_STR(buf, "hello\n");
	CHECK_INT(write_small_file(path, "x"), 0);
	CHECK_INT(read_small_file(path, buf, sizeof buf), 1);
	CHECK_STR(buf, "x");
	CHECK_INT(write_small_file(path, ""), 0);
	CHECK_INT(read_small_file(path, buf, sizeof buf), 0);
	CHECK_STR(buf, "");
	CHECK_INT(write_small_file(path, "0123456789"), 0);
	CHECK_INT(read_small_file(path, buf, 5), 4);
	CHECK_STR(buf, "0123");
	CHECK_INT(read_small_file(path, buf, 0), -EINVAL);

	char t[300];
	snprintf(t, sizeof t, "%s.tmp", path);
	CHECK(access(t, F_OK) < 0 && errno == ENOENT);
	snprintf(t, sizeof t, "%s/missing", tmp);
	CHECK_INT(read_small_file(t, buf, sizeof buf), -ENOENT);
	snprintf(t, sizeof t, "%s/nodir/f", tmp);
	CHECK_INT(write_small_file(t, "x"), -ENOENT);
}

/* mkdir_p: nested creation, idempotence, trailing slash, files in the way. */
static void test_mkdir_p(const char *tmp)
{
	char p[256], f[256];
	struct stat st;
	snprintf(p, sizeof p, "%s/a/b/c", tmp);
	CHECK_INT(mkdir_p(p, 0755), 0);
	CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
	CHECK_INT(mkdir_p(p, 0755), 0);
	snprintf(p, sizeof p, "%s/a/d/", tmp);
	CHECK_INT(mkdir_p(p, 0755), 0);
	snprintf(p, sizeof p, "%s/a/d", tmp);
	CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
	snprintf(f, sizeof f, "%s/a/file", tmp);
	CHECK_INT(write_small_file(f, "x"), 0);
	CHECK_INT(mkdir_p(f, 0755), -ENOTDIR);
	snprintf(p, sizeof p, "%s/a/file/sub", tmp);
	CHECK_INT(mkdir_p(p, 0755), -ENOTDIR);
	CHECK_INT(mkdir_p("", 0755), -ENOENT);
	CHECK_INT(mkdir_p("/", 0755), 0);
}

/* Every test; file helpers in a scratch directory. */
int main(void)
{
	const char *tmp = unit_tmpdir();
	test_mac();
	test_addr();
	test_parse_u64();
	test_name_valid();
	test_small();
	test_files(tmp);
	test_mkdir_p(tmp);
	return unit_done();
}
