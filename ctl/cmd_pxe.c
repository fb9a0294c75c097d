/* cmd_pxe.c — `bootlinkctl pxe-config`: the dnsmasq configuration for PXE.
 *
 * Design: validate, then render. Everything the configuration names is
 * checked against this machine first — the interface exists and has an
 * IPv4 subnet, the addresses are IPv4 and in it, the iPXE binaries are in
 * the TFTP root, bootlinkd's HTTP endpoint (listen/http) can be reached by
 * a PC — and each failure is one line saying what to do. pxe_conf.c then
 * only formats text. The file is written atomically (--out), or printed.
 *
 * Modes: full DHCP (default), proxyDHCP (--proxy), TFTP only (--tftp-only,
 * for a site whose DHCP server names the boot file: the file and the summary
 * list what that server must send).
 *
 * Addresses: dnsmasq serves TFTP (and proxyDHCP) from the interface's own
 * IPv4 address; the boot URL names bootlinkd: --server if given, else the
 * address listen/http is bound to if it is a single one, else the
 * interface's address. A listen/http port of 0 (tests) is read back from
 * the running daemon's runtime tree (<paths/run>/listen/http).
 */
#include "args.h"
#include "ctl.h"
#include "out.h"
#include "pxe_conf.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PXE_CONF_MAX 8192
#define DEFAULT_TFTP_ROOT "/usr/lib/ipxe"
#define DEFAULT_BIOS_FILE "undionly.kpxe"
#define DEFAULT_EFI_FILE "ipxe.efi"

struct pxe_args {
	const char *iface, *range, *server, *out, *tftp_root, *efi;
	bool proxy, tftp_only;
};

/* A word that may go into the configuration as it is: no separators of
 * dnsmasq's syntax (',', '#', spaces, quotes) and no control characters. */
static bool conf_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || strchr(",#\"'\\", *s) || *s == 0x7f)
			return false;
	return true;
}

/* Dotted-quad IPv4 only (inet_pton refuses "10.1" and friends). */
static int parse_ipv4(const char *s, struct in_addr *a)
{
	return inet_pton(AF_INET, s, a) == 1 ? 0 : -EINVAL;
}

/* Host-order helpers for subnet arithmetic. */
static uint32_t h(struct in_addr a) { return ntohl(a.s_addr); }
static struct in_addr n(uint32_t v) { return (struct in_addr){ htonl(v) }; }

/* Dotted quad of a (one of four static buffers). */
static const char *ip(struct in_addr a)
{
	static char buf[4][INET_ADDRSTRLEN];
	static int i;
	i = (i + 1) & 3;
	inet_ntop(AF_INET, &a, buf[i], sizeof buf[i]);
	return buf[i];
}

/* Prefix length of a contiguous netmask. */
static int prefix_len(struct in_addr mask)
{
	return __builtin_popcount(h(mask));
}

/* The interface's IPv4 address and netmask: the one whose subnet holds
 * want (if want is nonzero and one does), else the first. */
static int iface_ipv4(const struct pxe_args *a, struct in_addr want, struct in_addr *addr, struct in_addr *mask)
{
	if (strlen(a->iface) >= IFNAMSIZ || !conf_safe(a->iface))
		return out_fail("'%s' is not a network interface name", a->iface);
	if (if_nametoindex(a->iface) == 0)
		return out_fail("there is no network interface '%s' here (ip -br link lists them)", a->iface);
	struct ifaddrs *ifs, *i;
	if (getifaddrs(&ifs) < 0)
		return out_fail("cannot list the network interfaces: %s", strerror(errno));
	bool found = false;
	for (i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !i->ifa_netmask ||
		    strcmp(i->ifa_name, a->iface) != 0)
			continue;
		struct in_addr ad = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
		struct in_addr m = ((struct sockaddr_in *)i->ifa_netmask)->sin_addr;
		if (!found || (want.s_addr && (h(ad) & h(m)) == (h(want) & h(m)))) {
			*addr = ad;
			*mask = m;
		}
		found = true;
	}
	freeifaddrs(ifs);
	if (!found)
		return out_fail("interface %s has no IPv4 address; PCs find the boot server through it, so give "
				"it one (ip addr add ADDR/PREFIX dev %s, or your network configuration)",
				a->iface, a->iface);
	if (prefix_len(*mask) > 30)
		return out_fail("interface %s has %s/%d: DHCP needs a subnet with room for PCs (/30 or larger)",
				a->iface, ip(*addr), prefix_len(*mask));
	return CTL_OK;
}

/* True if x is a host address of the subnet of addr/mask (not the network
 * or broadcast address). */
static bool in_subnet(struct in_addr x, struct in_addr addr, struct in_addr mask)
{
	uint32_t m = h(mask), net = h(addr) & m, bcast = net | ~m;
	return (h(x) & m) == net && h(x) != net && h(x) != bcast;
}

/* Full DHCP: the range given (START,END) or the upper half of the subnet. */
static int dhcp_range(const struct pxe_args *a, struct pxe_plan *p, struct in_addr server)
{
	uint32_t m = h(p->mask), net = h(p->addr) & m, bcast = net | ~m;
	const char *sub = ip(n(net));
	int plen = prefix_len(p->mask);
	if (a->range) {
		char s[64], *comma;
		snprintf(s, sizeof s, "%s", a->range);
		comma = strchr(s, ',');
		if (!comma)
			return out_fail("--range '%s': expected START,END (two IPv4 addresses)", a->range);
		*comma = 0;
		if (parse_ipv4(s, &p->range_start) < 0 || parse_ipv4(comma + 1, &p->range_end) < 0)
			return out_fail("--range '%s': expected START,END (two IPv4 addresses)", a->range);
		if (!in_subnet(p->range_start, p->addr, p->mask) || !in_subnet(p->range_end, p->addr, p->mask))
			return out_fail("--range %s: both ends must be host addresses of %s's subnet %s/%d",
					a->range, a->iface, sub, plen);
		if (h(p->range_start) > h(p->range_end))
			return out_fail("--range %s: START is after END", a->range);
	} else {
		/* The upper half, which keeps the lower half for fixed addresses. */
		uint32_t size = ~m + 1;
		p->range_start = n(net + size / 2);
		p->range_end = n(bcast - 1);
	}
	struct in_addr own[] = { p->addr, server };
	for (size_t i = 0; i < ARRAY_SIZE(own); i++)
		if (h(own[i]) >= h(p->range_start) && h(own[i]) <= h(p->range_end))
			return out_fail("the DHCP range %s-%s holds %s, an address of the appliance; "
					"give one without it: --range START,END", ip(p->range_start),
					ip(p->range_end), ip(own[i]));
	return CTL_OK;
}

/* The iPXE binaries: the directory exists, the files in it are readable. */
static int tftp_files(const struct pxe_args *a, struct pxe_plan *p, char root[PATH_MAX])
{
	const char *dir = a->tftp_root ? a->tftp_root : DEFAULT_TFTP_ROOT;
	if (!realpath(dir, root))
		return out_fail("TFTP root %s: %s%s", dir, strerror(errno),
				a->tftp_root ? "" : " (install Debian's ipxe package: apt-get install ipxe)");
	if (!conf_safe(root))
		return out_fail("TFTP root '%s': a path with spaces, commas, quotes or '#' cannot go into "
				"dnsmasq's configuration", root);
	p->tftp_root = root;
	p->bios_file = DEFAULT_BIOS_FILE;
	p->efi_file = a->efi ? a->efi : DEFAULT_EFI_FILE;
	if (!conf_safe(p->efi_file) || strchr(p->efi_file, '/') || !strchr(p->efi_file, '.'))
		return out_fail("--efi '%s': expected a file name in the TFTP root, e.g. ipxe.efi or snponly.efi",
				p->efi_file);
	const char *files[] = { p->bios_file, p->efi_file };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char path[PATH_MAX + 64];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", root, files[i]);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, R_OK) < 0)
			return out_fail("%s is missing or unreadable: the TFTP root must hold iPXE's %s and %s "
					"(Debian's ipxe package puts them in " DEFAULT_TFTP_ROOT ")",
					path, p->bios_file, p->efi_file);
		/* dnsmasq serves TFTP after dropping root (user dnsmasq). */
		if (!(st.st_mode & S_IROTH))
			return out_fail("%s is not readable by others: dnsmasq serves TFTP as its own user "
					"(chmod o+r %s)", path, path);
	}
	return CTL_OK;
}

/* http://HOST:PORT/boot.ipxe from listen/http (see the design note). */
static int boot_url(struct ctl *c, const struct pxe_args *a, const struct pxe_plan *p, struct in_addr *server,
		    char *url, size_t len)
{
	const char *listen = c->conf.listen_http;
	char path[CONF_PATH_MAX + 32], bound[128];
	if (!listen[0] || strcmp(listen, "off") == 0)
		return out_fail("listen/http is off, so bootlinkd hands iPXE no scripts; set it, e.g. "
				"echo 0.0.0.0:80 > %s/listen/http, and restart bootlinkd", c->conf.dir);
	struct sockaddr_storage ss;
	socklen_t sl;
	if (addr_parse(listen, &ss, &sl) < 0)
		return out_fail("listen/http '%s' is not HOST:PORT", listen);
	unsigned port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
				 : ((struct sockaddr_in6 *)&ss)->sin6_port);
	if (port == 0) {
		/* Chosen by the kernel at start: ask the running daemon. */
		struct sockaddr_storage bs;
		snprintf(path, sizeof path, "%s/listen/http", c->conf.run_dir);
		if (read_small_file(path, bound, sizeof bound) <= 0)
			return out_fail("listen/http '%s' has port 0 (any free port) and bootlinkd is not running "
					"to say which one (%s); give listen/http a fixed port", listen, path);
		str_rstrip(bound);
		if (addr_parse(bound, &bs, &sl) < 0 || bs.ss_family != ss.ss_family)
			return out_fail("%s holds '%s', not HOST:PORT", path, bound);
		port = ntohs(bs.ss_family == AF_INET ? ((struct sockaddr_in *)&bs)->sin_port
			     : ((struct sockaddr_in6 *)&bs)->sin6_port);
	}
	struct in_addr lhost = { 0 };
	bool wildcard;
	if (ss.ss_family == AF_INET) {
		lhost = ((struct sockaddr_in *)&ss)->sin_addr;
		wildcard = lhost.s_addr == INADDR_ANY;
		if (!wildcard && (h(lhost) >> 24) == 127)
			return out_fail("listen/http is %s: a loopback address PCs cannot reach; set it to "
					"0.0.0.0:%u or this host's address on %s", listen, port, a->iface);
	} else {
		wildcard = IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr);
		if (!wildcard && !a->server)
			return out_fail("listen/http is %s, an IPv6 address; PXE clients boot over IPv4: name "
					"bootlinkd's IPv4 address with --server ADDR", listen);
	}
	if (a->server) {
		if (ss.ss_family == AF_INET && !wildcard && lhost.s_addr != server->s_addr)
			return out_fail("--server %s, but bootlinkd listens on %s only (listen/http): PCs sent "
					"there would not reach it", a->server, listen);
	} else {
		*server = ss.ss_family == AF_INET && !wildcard ? lhost : p->addr;
	}
	snprintf(url, len, "http://%s:%u/boot.ipxe", ip(*server), port);
	return CTL_OK;
}

/* The command line, for the file's header. */
static void command_line(int argc, char **argv, char *buf, size_t len)
{
	size_t pos = (size_t)snprintf(buf, len, "bootlinkctl pxe-config");
	for (int i = 0; i < argc && pos < len; i++)
		pos += (size_t)snprintf(buf + pos, len - pos, " %s", conf_safe(argv[i]) ? argv[i] : "...");
}

/* Write text to path atomically, or print it. */
static int emit(const struct pxe_args *a, const struct pxe_plan *p, const char *text, struct in_addr server)
{
	out_str("mode", p->mode == PXE_PROXY ? "proxy" : p->mode == PXE_TFTP ? "tftp" : "dhcp");
	out_str("interface", p->iface);
	out_str("address", ip(p->addr));
	out_int("prefix", prefix_len(p->mask));
	out_str("server", ip(server));
	out_str("next_server", ip(p->addr));
	out_str("boot_url", p->boot_url);
	out_str("tftp_root", p->tftp_root);
	out_str("bios_file", p->bios_file);
	out_str("efi_file", p->efi_file);
	if (p->mode == PXE_FULL) {
		out_str("range_start", ip(p->range_start));
		out_str("range_end", ip(p->range_end));
		out_str("lease_file", p->lease_file);
	}
	if (!a->out || strcmp(a->out, "-") == 0) {
		out_str("config", text);
		out_text("%s", text);
		return CTL_OK;
	}
	int ret = write_small_file(a->out, text);
	if (ret < 0)
		return out_fail("cannot write %s: %s", a->out, strerror(-ret));
	out_str("file", a->out);
	out_text("wrote %s: %s on %s (%s/%d), ", a->out, pxe_mode_name(p->mode), p->iface,
		 ip(p->addr), prefix_len(p->mask));
	if (p->mode == PXE_FULL)
		out_text("addresses %s-%s, ", ip(p->range_start), ip(p->range_end));
	out_text("TFTP %s (%s, %s), iPXE then fetches %s\n", p->tftp_root, p->bios_file, p->efi_file,
		 p->boot_url);
	if (p->mode == PXE_TFTP)
		out_text("the site's DHCP server must send: next-server (option 66) %s; filename (option 67) "
			 "%s for BIOS (option 93 = 0), %s for x86-64 UEFI (93 = 7 or 9), %s when the user "
			 "class is \"iPXE\"\n", ip(p->addr), p->bios_file, p->efi_file, p->boot_url);
	out_text("start it with: systemctl restart bootlink-dnsmasq (or dnsmasq --keep-in-foreground "
		 "--conf-file=%s)\n", a->out);
	return CTL_OK;
}

/* pxe-config */
int cmd_pxe_config(struct ctl *c, int argc, char **argv)
{
	struct pxe_args a = { 0 };
	const struct args_opt opts[] = {
		{ .name = "interface", .value = &a.iface },
		{ .name = "proxy", .flag = &a.proxy },
		{ .name = "tftp-only", .flag = &a.tftp_only },
		{ .name = "range", .value = &a.range },
		{ .name = "server", .value = &a.server },
		{ .name = "out", .value = &a.out },
		{ .name = "tftp-root", .value = &a.tftp_root },
		{ .name = "efi", .value = &a.efi },
		{ 0 },
	};
	const char *pos[ARGS_MAX_POS];
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	if (!a.iface)
		return args_usage(c, "missing --interface IF (the network the PCs boot on)");
	if (a.proxy && a.tftp_only)
		return args_usage(c, "--proxy and --tftp-only exclude each other: proxyDHCP answers PXE "
				  "clients, --tftp-only leaves all of DHCP to the site's server");
	if ((a.proxy || a.tftp_only) && a.range)
		return args_usage(c, "--range is for full DHCP; with %s the site's DHCP server hands out "
				  "the addresses", a.proxy ? "--proxy" : "--tftp-only");
	char err[1024];
	if ((ret = conf_load(c->conf_dir, &c->conf, err, sizeof err)) < 0)
		return out_fail("%s%s", err, ret == -ENOENT || ret == -ENOTDIR
				? "; create it, or name the config tree with: bootlinkctl -c DIR ..." : "");

	struct in_addr server = { 0 };
	if (a.server && parse_ipv4(a.server, &server) < 0)
		return out_fail("--server '%s' is not an IPv4 address (PCs boot over IPv4)", a.server);
	struct pxe_plan p = { .iface = a.iface,
			      .mode = a.proxy ? PXE_PROXY : a.tftp_only ? PXE_TFTP : PXE_FULL };
	if ((ret = iface_ipv4(&a, server, &p.addr, &p.mask)))
		return ret;
	char root[PATH_MAX], url[160], leases[CONF_PATH_MAX + 32], cmdline[512];
	char *text = NULL;
	if ((ret = tftp_files(&a, &p, root)) || (ret = boot_url(c, &a, &p, &server, url, sizeof url)))
		return ret;
	p.boot_url = url;
	if (p.mode == PXE_FULL) {
		if ((ret = dhcp_range(&a, &p, server)))
			return ret;
		/* Beside the database: a directory bootlink owns (paths/db). */
		snprintf(leases, sizeof leases, "%s", c->conf.db_path);
		char *slash = strrchr(leases, '/');
		snprintf(slash ? slash + 1 : leases, sizeof leases - (size_t)(slash ? slash + 1 - leases : 0),
			 "dnsmasq.leases");
		if (!conf_safe(leases))
			return out_fail("lease file %s: a path with spaces, commas or quotes cannot go into "
					"dnsmasq's configuration (paths/db)", leases);
		p.lease_file = leases;
	}
	command_line(argc, argv, cmdline, sizeof cmdline);
	p.generated_by = cmdline;
	if (!(text = malloc(PXE_CONF_MAX)))
		return out_fail("out of memory");
	if (pxe_conf_render(&p, text, PXE_CONF_MAX) < 0)
		ret = out_fail("the configuration does not fit in %d bytes", PXE_CONF_MAX);
	else
		ret = emit(&a, &p, text, server);
	free(text);
	return ret;
}
