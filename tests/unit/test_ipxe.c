/* test_ipxe.c — unit tests for the iPXE script templates (daemon/ipxe.c,
 * daemon/ipxe_boot.c) and cmdline_valid() (common/util.c).
 *
 * What is checked: the Linux script's exact kernel/initrd/boot lines and
 * its failure branch; kernel options from the database that are not
 * cmdline_valid() never reach a script; menus (items, default, timeout,
 * 0 = no timeout, descriptions escaped, bad image names refused); the
 * autoadd script; error screens with hostile text; the sanboot line's
 * --drive (hex) and --keep only when the client has them; every script line is
 * free of iPXE metacharacters except the expansions we put there
 * ourselves; truncation is an error. Run: build/test_ipxe.
 */
#include "ipxe.h"
#include "util.h"
#include "unit.h"

#include <string.h>

#define BIG 8192

static const struct ipxe_ctx base = { .server = "10.0.2.2", .http_port = 8080, .iscsi_port = 3260,
				      .nbd_port = 10809, .mac = "52:54:00:aa:bb:01", .client_name = "PC001",
				      .image = "deb12", .mode = "ephemeral",
				      .target_iqn = "iqn.2026-11.org.bootlink:client.525400aabb01",
				      .initiator_iqn = "iqn.2026-11.org.bootlink:initiator.525400aabb01", .error = "",
				      .retry_s = 10 };

/* Whether the script has line as a whole line. */
static bool has_line(const char *script, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = script; (p = strstr(p, line)); p++)
		if ((p == script || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0))
			return true;
	return false;
}

/* No '$' outside the expansions the templates put there themselves, no
 * '|' or '&' outside "|| goto" and the URL query separators we write. */
static void check_no_injection(const char *s)
{
	static const char *const ours[] = { "${net0/mac:hexhyp}", "${blimage}", "${uuid:uristring}",
					    "${serial:uristring}", "${net0/ip}" };
	char buf[BIG];
	snprintf(buf, sizeof buf, "%s", s);
	for (size_t i = 0; i < ARRAY_SIZE(ours); i++)
		for (char *p; (p = strstr(buf, ours[i]));)
			memset(p, 'x', strlen(ours[i]));
	for (char *p; (p = strstr(buf, "|| goto"));)
		memset(p, 'x', 2);
	for (char *p; (p = strstr(buf, "&image="));)
		*p = 'x';
	if (strncmp(buf, "#!ipxe", 6) == 0)
		buf[0] = 'x';
	CHECK_MSG(!strpbrk(buf, "$|&#\r`\"'"), "metacharacter in script: %s", s);
}

static void test_linux(void)
{
	char s[BIG];
	struct ipxe_linux l = { .initrd = true, .image_cmdline = "console=ttyS0 quiet", .client_cmdline = "bootlink.conns=2" };
	UNIT_CTX("linux");
	int n = ipxe_linux_script(&base, &l, s, sizeof s);
	CHECK(n > 0 && (size_t)n == strlen(s));
	CHECK(strncmp(s, "#!ipxe\n", 7) == 0);
	CHECK_MSG(has_line(s, "kernel http://10.0.2.2:8080/boot/deb12/vmlinuz bootlink.nbd=10.0.2.2:10809/client/"
			      "52:54:00:aa:bb:01 console=ttyS0 quiet bootlink.conns=2 || goto failed"), "%s", s);
	CHECK_MSG(has_line(s, "initrd http://10.0.2.2:8080/boot/deb12/initrd || goto failed"), "%s", s);
	CHECK(has_line(s, "boot || goto failed"));
	CHECK(has_line(s, ":failed"));
	CHECK_CONTAINS(s, "image deb12: its kernel or initrd could not be loaded");
	CHECK(has_line(s, "sleep 10"));
	CHECK(has_line(s, "chain --replace http://10.0.2.2:8080/ipxe?mac=${net0/mac:hexhyp}"));
	CHECK(!strstr(s, "sanboot"));
	check_no_injection(s);

	/* No initrd, no options: no initrd line, no trailing spaces. */
	struct ipxe_linux bare = { .initrd = false };
	n = ipxe_linux_script(&base, &bare, s, sizeof s);
	CHECK(n > 0);
	CHECK_MSG(has_line(s, "kernel http://10.0.2.2:8080/boot/deb12/vmlinuz bootlink.nbd=10.0.2.2:10809/client/"
			      "52:54:00:aa:bb:01 || goto failed"), "%s", s);
	CHECK(!strstr(s, "\ninitrd "));

	/* Options a hand-edited database could hold are dropped, never put in. */
	static const char *const bad[] = { "a ${x}", "quiet || shell", "x && y", "a #b", "a\necho pwned",
					   "q\"uote", "semi;colon", "back`tick`" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		UNIT_CTX("bad cmdline '%s'", bad[i]);
		struct ipxe_linux h = { .initrd = true, .image_cmdline = bad[i], .client_cmdline = bad[i] };
		CHECK(!cmdline_valid(bad[i]));
		n = ipxe_linux_script(&base, &h, s, sizeof s);
		CHECK(n > 0);
		CHECK_MSG(!strstr(s, bad[i]), "%s", s);
		CHECK(!strstr(s, "pwned"));
		check_no_injection(s);
	}
	UNIT_CTX("linux truncated");
	CHECK_INT(ipxe_linux_script(&base, &l, s, 100), -1);
	CHECK_INT(ipxe_linux_script(&base, &l, s, 0), -1);
}

static void test_cmdline_valid(void)
{
	static const struct { const char *s; bool ok; } t[] = {
		{ "", true },
		{ "console=ttyS0,115200n8 quiet", true },
		{ "root=UUID=0a1b-2c3d rootflags=data=ordered", true },
		{ "bootlink.ramsize=50% ip=dhcp", true },
		{ "a+b@c:d/e_f.g-h", true },
		{ "$x", false }, { "a|b", false }, { "a&b", false }, { "a#b", false }, { "a'b", false },
		{ "a\"b", false }, { "a\nb", false }, { "a\tb", false }, { "a;b", false }, { "a\\b", false },
		{ "a{b}", false }, { "\x80", false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		UNIT_CTX("cmdline '%s'", t[i].s);
		CHECK_INT(cmdline_valid(t[i].s), t[i].ok);
	}
	char longer[300];
	memset(longer, 'a', sizeof longer - 1);
	longer[sizeof longer - 1] = 0;
	UNIT_CTX("cmdline of 299 bytes");
	CHECK(!cmdline_valid(longer));
	longer[255] = 0;
	CHECK(cmdline_valid(longer));
}

static void test_menu(void)
{
	char s[BIG];
	struct ipxe_menu m = { .n = 3, .image = { "deb12", "win10", "tools" },
			       .description = { "Debian 12 ${evil} | x", "Windows & more #1", "" }, .def = 0,
			       .timeout_s = 7 };
	UNIT_CTX("menu");
	int n = ipxe_menu_script(&base, &m, s, sizeof s);
	CHECK(n > 0);
	CHECK(has_line(s, "menu bootlink: PC001 (52:54:00:aa:bb:01) - choose what to boot"));
	CHECK_MSG(has_line(s, "item deb12 deb12 - Debian 12 ??evil? ? x (default)"), "%s", s);
	CHECK_MSG(has_line(s, "item win10 win10 - Windows ? more ?1"), "%s", s);
	CHECK_MSG(has_line(s, "item tools tools"), "%s", s);
	CHECK_MSG(has_line(s, "choose --timeout 7000 --default deb12 blimage || goto cancel"), "%s", s);
	CHECK(has_line(s, "chain --replace http://10.0.2.2:8080/ipxe?mac=${net0/mac:hexhyp}&image=${blimage} || goto failed"));
	CHECK(has_line(s, "chain --replace http://10.0.2.2:8080/ipxe?mac=${net0/mac:hexhyp}&image=deb12 || goto failed"));
	check_no_injection(s);

	UNIT_CTX("menu, no timeout, default second");
	m.timeout_s = 0;
	m.def = 1;
	n = ipxe_menu_script(&base, &m, s, sizeof s);
	CHECK(n > 0);
	CHECK_MSG(has_line(s, "choose --default win10 blimage || goto cancel"), "%s", s);
	CHECK(strstr(s, "Windows ? more ?1 (default)"));

	UNIT_CTX("menu: refused");
	struct ipxe_menu bad = m;
	bad.image[2] = "a b";
	CHECK_INT(ipxe_menu_script(&base, &bad, s, sizeof s), -1);
	bad = m;
	bad.image[0] = "x${y}";
	CHECK_INT(ipxe_menu_script(&base, &bad, s, sizeof s), -1);
	bad = m;
	bad.def = 3;
	CHECK_INT(ipxe_menu_script(&base, &bad, s, sizeof s), -1);
	bad.n = 0;
	bad.def = 0;
	CHECK_INT(ipxe_menu_script(&base, &bad, s, sizeof s), -1);
	CHECK_INT(ipxe_menu_script(&base, &m, s, 200), -1);
}

static void test_autoadd_and_errors(void)
{
	char s[BIG];
	UNIT_CTX("autoadd");
	int n = ipxe_autoadd_script(&base, 3, s, sizeof s);
	CHECK(n > 0);
	CHECK(has_line(s, "echo bootlink: this PC (MAC 52:54:00:aa:bb:01) is new: registering it ..."));
	CHECK(has_line(s, "sleep 3"));
	CHECK(has_line(s, "chain --replace http://10.0.2.2:8080/ipxe?mac=${net0/mac:hexhyp} || goto failed"));
	check_no_injection(s);

	UNIT_CTX("error screen with hostile text");
	struct ipxe_ctx e = base;
	e.error = "image ${x} missing || shell & #\n sanboot evil";
	n = ipxe_client_script(&e, s, sizeof s);
	CHECK(n > 0);
	CHECK_MSG(!strstr(s, "${x}") && !has_line(s, " sanboot evil") && !strstr(s, "\nsanboot"), "%s", s);
	CHECK(strstr(s, "image ??x? missing ?? shell ? ?? sanboot evil"));
	check_no_injection(s);
}

/* sanboot --drive 0xNN / --keep: only when set; a drive that is no BIOS
 * hard disk number is left to iPXE's default. */
static void test_sanboot_options(void)
{
	static const struct {
		unsigned drive;
		bool keep;
		const char *line;
	} t[] = {
		{ 0, false, "sanboot iscsi:10.0.2.2::3260::iqn.2026-11.org.bootlink:client.525400aabb01 || goto failed" },
		{ 0x80, false, "sanboot --drive 0x80 iscsi:10.0.2.2::3260::iqn.2026-11.org.bootlink:client.525400aabb01 || goto failed" },
		{ 0x81, true, "sanboot --drive 0x81 --keep iscsi:10.0.2.2::3260::iqn.2026-11.org.bootlink:client.525400aabb01 || goto failed" },
		{ 0xff, false, "sanboot --drive 0xff iscsi:10.0.2.2::3260::iqn.2026-11.org.bootlink:client.525400aabb01 || goto failed" },
		{ 0, true, "sanboot --keep iscsi:10.0.2.2::3260::iqn.2026-11.org.bootlink:client.525400aabb01 || goto failed" },
		{ 0x7f, false, "sanboot iscsi:10.0.2.2::3260::iqn.2026-11.org.bootlink:client.525400aabb01 || goto failed" },
		{ 0x100, true, "sanboot --keep iscsi:10.0.2.2::3260::iqn.2026-11.org.bootlink:client.525400aabb01 || goto failed" },
	};
	char s[BIG];
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		UNIT_CTX("sanboot drive 0x%x keep %d", t[i].drive, t[i].keep);
		struct ipxe_ctx c = base;
		c.san_drive = t[i].drive;
		c.san_keep = t[i].keep;
		int n = ipxe_client_script(&c, s, sizeof s);
		CHECK(n > 0 && (size_t)n == strlen(s));
		CHECK_MSG(has_line(s, t[i].line), "%s", s);
		CHECK_INT(!!strstr(s, "--keep"), t[i].keep);
		check_no_injection(s);
	}
	UNIT_CTX("sanboot options on an error screen");
	struct ipxe_ctx e = base;
	e.san_drive = 0x81;
	e.san_keep = true;
	e.error = "image deb12 is missing";
	CHECK(ipxe_client_script(&e, s, sizeof s) > 0);
	CHECK_MSG(!strstr(s, "sanboot") && !strstr(s, "--drive"), "%s", s);
}

/* Every echo line fits an 80-column console; words are not cut. */
static void test_wrap(void)
{
	char s[BIG];
	struct ipxe_ctx e = base;
	e.error = "This PC (MAC 52:54:00:e3:00:99) is not linked to an image. Link it with: bootlinkctl client add "
		  "52:54:00:e3:00:99 --image NAME and then wait averyveryveryveryveryveryveryveryveryveryveryveryvery"
		  "veryveryveryverylongwordthatcannotbecut end";
	UNIT_CTX("wrapped error screen");
	int n = ipxe_client_script(&e, s, sizeof s);
	CHECK(n > 0);
	char joined[BIG] = "";
	for (char *l = s, *nl; *l; l = nl + 1) {
		nl = strchr(l, '\n');
		if (!nl)
			break;
		size_t ll = (size_t)(nl - l);
		if (strncmp(l, "echo ", 5) == 0 && !strstr(l, "averyvery") && ll > 5)
			CHECK_MSG(ll - 5 <= IPXE_ECHO_WIDTH, "line of %zu: %.*s", ll - 5, (int)ll, l);
		if (strncmp(l, "echo  ", 6) == 0 && ll > 6) {
			strncat(joined, l + 6, ll - 6);
			strcat(joined, " ");
		}
	}
	CHECK_MSG(strstr(joined, "Link it with: bootlinkctl client add 52:54:00:e3:00:99 --image NAME and then wait"),
		  "%s", joined);
	CHECK(strstr(joined, " averyvery"));
	CHECK(strstr(joined, "longwordthatcannotbecut end"));

	size_t pos = 0;
	UNIT_CTX("wrap: empty and spaces only");
	CHECK_INT(ipxe_echo_wrapped(s, sizeof s, &pos, "", ""), 0);
	CHECK_INT(ipxe_echo_wrapped(s, sizeof s, &pos, "", "   "), 0);
	CHECK_INT(pos, 0);
}

int main(void)
{
	test_wrap();
	test_linux();
	test_cmdline_valid();
	test_menu();
	test_autoadd_and_errors();
	test_sanboot_options();
	return unit_done();
}
