/* test_ipxe_chap.c — the iPXE script templates (daemon/ipxe.c): CHAP credentials.
 *
 * A per-client script sets iPXE's username/password (and reverse-* for
 * mutual CHAP) only when configured; a value made of plain characters goes
 * as it is, anything else as `set NAME:hex` bytes, so no secret can inject
 * an iPXE expansion, command or comment. The e2e test
 * (tests/test-e2e-sanboot.sh) proves real iPXE logs in with such a secret.
 */
#include "unit.h"

#include "ipxe.h"


struct set_vec {
	const char *value;
	const char *want;   /* the line ipxe_set_line() writes */
};

static const struct set_vec set_vecs[] = {
	{ "alice", "set password alice\n" },
	{ "a.b_c:d/e@f+g,h=i-9", "set password a.b_c:d/e@f+g,h=i-9\n" },
	{ "a b", "set password:hex 61:20:62\n" },
	{ "${x}", "set password:hex 24:7b:78:7d\n" },
	{ "#|&", "set password:hex 23:7c:26\n" },
	{ "\n", "set password:hex 0a\n" },
	{ "\xff", "set password:hex ff\n" },
};

/* ipxe_set_line: plain or hex, exact output, and -1 (never a cut line) when out is short. */
static void test_set_line(void)
{
	char out[256];
	for (size_t i = 0; i < sizeof set_vecs / sizeof set_vecs[0]; i++) {
		const struct set_vec *v = &set_vecs[i];
		unit_context("value %zu", i);
		int n = ipxe_set_line("password", v->value, out, sizeof out);
		CHECK_MSG(n == (int)strlen(v->want), "length %d, want %zu", n, strlen(v->want));
		CHECK_MSG(strcmp(out, v->want) == 0, "got '%s' want '%s'", out, v->want);
		for (size_t len = 0; len < strlen(v->want) + 1; len++)
			CHECK_MSG(ipxe_set_line("password", v->value, out, len) == -1, "fits in %zu bytes", len);
		CHECK_MSG(ipxe_set_line("password", v->value, out, strlen(v->want) + 1) == n, "does not fit exactly");
	}
	unit_context(NULL);
}

static const struct ipxe_ctx base = {
	.server = "10.0.2.2", .http_port = 80, .iscsi_port = 3260, .nbd_port = 10809,
	.mac = "52:54:00:aa:bb:01", .client_name = "PC001", .image = "win", .mode = "ephemeral",
	.target_iqn = "iqn.2026-11.org.bootlink:client.525400aabb01",
	.initiator_iqn = "iqn.2026-11.org.bootlink:initiator.525400aabb01", .error = "", .retry_s = 10,
};

/* line_index: the position of the line `line` in script, -1 if absent. */
static long line_index(const char *script, const char *line)
{
	size_t l = strlen(line);
	for (const char *p = script; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, line, l) == 0 && (p[l] == '\n' || p[l] == 0))
			return p - script;
	return -1;
}

/* The client script: credentials only when configured, before the sanboot line. */
static void test_client_chap(void)
{
	char s[4096];
	struct ipxe_ctx c = base;
	const char *sanboot = "sanboot iscsi:10.0.2.2::3260::iqn.2026-11.org.bootlink:client.525400aabb01 || goto failed";

	unit_context("no CHAP");
	ipxe_set_chap(NULL, NULL, NULL, NULL);
	CHECK_MSG(ipxe_client_script(&c, s, sizeof s) > 0, "no script");
	CHECK_MSG(!strstr(s, "username") && !strstr(s, "password"), "credentials without CHAP: %s", s);
	CHECK_MSG(line_index(s, sanboot) >= 0, "no sanboot line: %s", s);

	unit_context("user without secret");
	ipxe_set_chap("alice", "", "bootlink", "t$rget");
	ipxe_client_script(&c, s, sizeof s);
	CHECK_MSG(!strstr(s, "username") && !strstr(s, "reverse-"), "credentials set without a secret: %s", s);

	unit_context("one-way");
	ipxe_set_chap("alice", "pa$${x} #|&\"word", "bootlink", NULL);
	CHECK_MSG(ipxe_client_script(&c, s, sizeof s) > 0, "no script");
	long u = line_index(s, "set username alice");
	long p = line_index(s, "set password:hex 70:61:24:24:7b:78:7d:20:23:7c:26:22:77:6f:72:64");
	long b = line_index(s, sanboot);
	CHECK_MSG(u >= 0 && p >= 0 && b >= 0 && u < b && p < b, "username/password not set before sanboot: %s", s);
	CHECK_MSG(!strstr(s, "reverse-"), "mutual CHAP without a mutual secret: %s", s);
	CHECK_MSG(!strstr(s, "${x}") && !strstr(s, "#|&") && !strchr(s, '"'), "the secret reached the script: %s", s);

	unit_context("mutual");
	ipxe_set_chap("alice", "pa$${x} #|&\"word", "bootlink", "t$rget");
	ipxe_client_script(&c, s, sizeof s);
	long ru = line_index(s, "set reverse-username bootlink");
	long rp = line_index(s, "set reverse-password:hex 74:24:72:67:65:74");
	b = line_index(s, sanboot);
	CHECK_MSG(ru >= 0 && rp >= 0 && ru < b && rp < b, "reverse-username/password not set before sanboot: %s", s);

	unit_context("error screen");
	c.error = "not linked";
	ipxe_client_script(&c, s, sizeof s);
	CHECK_MSG(!strstr(s, "password") && !strstr(s, "sanboot"), "an error screen with credentials: %s", s);

	unit_context("too small");
	c.error = "";
	CHECK_MSG(ipxe_client_script(&c, s, 300) == -1, "a cut script is not an error");
	unit_context(NULL);
}

int main(void)
{
	test_set_line();
	test_client_chap();
	return unit_done();
}
