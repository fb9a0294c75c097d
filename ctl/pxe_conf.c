/* pxe_conf.c — the dnsmasq configuration text; see pxe_conf.h.
 *
 * Peer quirks recorded here:
 *  - iPXE sends user class "iPXE" (option 77) and its feature list (option
 *    175); either tags the request "ipxe". Without that test the iPXE we
 *    sent would be handed iPXE again, forever.
 *  - x86-64 UEFI firmware sends client architecture 7 (most) or 9 (the
 *    RFC 4578 numbering; dnsmasq's names: x86-64_EFI = 7, BC_EFI = 9).
 *  - pxe-service appends PXE's ".0" layer suffix only to a basename without
 *    a dot, so "undionly.kpxe" and a URL are sent as they are.
 *  - iPXE sends an IPv6 router solicitation while it does DHCP; some builds
 *    wait ~13 s for an answer (Debian's 2019 NIC ROM does not: docs/pxe.md).
 *    dnsmasq answers when the interface has a global (or ULA) IPv6 prefix,
 *    with router lifetime 0: the appliance never becomes anyone's default
 *    IPv6 router.
 */
#include "pxe_conf.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>

/* Append to out at *pos; *pos goes past len once the text no longer fits. */
static void put(char *out, size_t len, size_t *pos, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *out, size_t len, size_t *pos, const char *fmt, ...)
{
	if (*pos >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out + *pos, len - *pos, fmt, ap);
	va_end(ap);
	*pos = n < 0 ? len : *pos + (size_t)n;
}

/* Dotted quad of a (one of four static buffers, so several fit in one printf). */
static const char *ip(struct in_addr a)
{
	static char buf[4][INET_ADDRSTRLEN];
	static int i;
	i = (i + 1) & 3;
	inet_ntop(AF_INET, &a, buf[i], sizeof buf[i]);
	return buf[i];
}

/* Full DHCP: addresses, and the boot file chosen by dnsmasq itself. */
static void full_dhcp(const struct pxe_plan *p, char *out, size_t len, size_t *pos)
{
	put(out, len, pos,
	    "# Addresses: this is the only DHCP server on the network (isolated boot LAN).\n"
	    "dhcp-range=%s,%s,%s,12h\n", ip(p->range_start), ip(p->range_end), ip(p->mask));
	put(out, len, pos, "dhcp-leasefile=%s\n", p->lease_file);
	put(out, len, pos,
	    "dhcp-authoritative\n"
	    "# Answer at once: by default dnsmasq pings each address before handing it out\n"
	    "# and answers nobody else for up to 3 s each time, so a room of new PCs booting\n"
	    "# together waits for addresses and their firmware times out. Keep devices with\n"
	    "# fixed addresses outside the range.\n"
	    "no-ping\n"
	    "# No default route and no DNS server: the appliance is neither.\n"
	    "dhcp-option=option:router\n"
	    "dhcp-option=option:dns-server\n\n");
	put(out, len, pos,
	    "# Boot file (DHCP option 67; next-server, option 66/siaddr, is this host):\n"
	    "#  iPXE gets bootlinkd's first script over HTTP, firmware gets iPXE over TFTP.\n"
	    "dhcp-match=set:efi64,option:client-arch,7\n"
	    "dhcp-match=set:efi64,option:client-arch,9\n"
	    "dhcp-boot=tag:ipxe,%s\n"
	    "dhcp-boot=tag:!ipxe,tag:efi64,%s\n"
	    "dhcp-boot=tag:!ipxe,tag:!efi64,%s\n",
	    p->boot_url, p->efi_file, p->bios_file);
}

/* proxyDHCP: no addresses; a one-entry PXE menu per architecture. */
static void proxy_dhcp(const struct pxe_plan *p, char *out, size_t len, size_t *pos)
{
	struct in_addr net = { p->addr.s_addr & p->mask.s_addr };
	put(out, len, pos,
	    "# proxyDHCP: the site's DHCP server hands out addresses; this one only answers\n"
	    "# PXE clients (vendor class PXEClient) with what to boot.\n"
	    "dhcp-range=%s,proxy,%s\n\n", ip(net), ip(p->mask));
	static const char *const csa[][2] = {
		{ "x86PC", "BIOS" }, { "x86-64_EFI", "UEFI" }, { "BC_EFI", "UEFI" },
	};
	put(out, len, pos, "# Firmware: iPXE over TFTP from this host.\n");
	for (size_t i = 0; i < sizeof csa / sizeof csa[0]; i++)
		put(out, len, pos, "pxe-service=tag:!ipxe,%s,\"bootlink (%s)\",%s\n", csa[i][0], csa[i][1],
		    i == 0 ? p->bios_file : p->efi_file);
	put(out, len, pos, "# iPXE: bootlinkd's first script over HTTP.\n");
	for (size_t i = 0; i < sizeof csa / sizeof csa[0]; i++)
		put(out, len, pos, "pxe-service=tag:ipxe,%s,\"bootlink (iPXE)\",%s\n", csa[i][0], p->boot_url);
}

/* TFTP only: what the site's DHCP server must send, as comments. */
static void site_dhcp(const struct pxe_plan *p, char *out, size_t len, size_t *pos)
{
	put(out, len, pos,
	    "\n# No DHCP here. The site's DHCP server must send (docs/pxe.md):\n"
	    "#   option 66 / next-server (siaddr)         %s\n"
	    "#   option 67 / filename, client arch 0      %s\n"
	    "#   option 67, client arch (option 93) 7, 9  %s\n"
	    "#   option 67 when the user class is \"iPXE\"  %s\n",
	    ip(p->addr), p->bios_file, p->efi_file, p->boot_url);
}

const char *pxe_mode_name(enum pxe_mode m)
{
	return m == PXE_PROXY ? "proxyDHCP" : m == PXE_TFTP ? "TFTP only" : "full DHCP";
}

/* The whole file. */
int pxe_conf_render(const struct pxe_plan *p, char *out, size_t len)
{
	size_t pos = 0;
	put(out, len, &pos,
	    "# bootlink PXE: dnsmasq configuration written by\n"
	    "#   %s\n"
	    "# Regenerate it rather than edit it (docs/pxe.md). bootlink-dnsmasq.service runs\n"
	    "#   dnsmasq --keep-in-foreground --conf-file=/etc/bootlink/dnsmasq.conf\n"
	    "# Mode: %s on %s, this host %s/%d; iPXE then fetches %s\n\n",
	    p->generated_by, pxe_mode_name(p->mode), p->iface, ip(p->addr),
	    __builtin_popcount(ntohl(p->mask.s_addr)),
	    p->boot_url);
	put(out, len, &pos,
	    "# Serve only this interface; no DNS; no pid file (systemd tracks the process).\n"
	    "interface=%s\n"
	    "bind-interfaces\n"
	    "port=0\n"
	    "pid-file=\n", p->iface);
	if (p->mode != PXE_TFTP)
		put(out, len, &pos,
		    "log-dhcp\n"
		    "\n# A PC already running iPXE says so (user class \"iPXE\", option 175): it gets\n"
		    "# the HTTP script instead of iPXE again (the loop-breaker).\n"
		    "dhcp-userclass=set:ipxe,iPXE\n"
		    "dhcp-match=set:ipxe,175\n\n");
	if (p->mode == PXE_PROXY)
		proxy_dhcp(p, out, len, &pos);
	else if (p->mode == PXE_FULL)
		full_dhcp(p, out, len, &pos);
	put(out, len, &pos,
	    "\n# TFTP: the iPXE binaries (Debian package ipxe). Read-only.\n"
	    "enable-tftp\n"
	    "tftp-root=%s\n", p->tftp_root);
	if (p->mode == PXE_TFTP) {
		site_dhcp(p, out, len, &pos);
		return pos < len ? (int)pos : -1;
	}
	put(out, len, &pos,
	    "\n# IPv6 router advertisements (router lifetime 0: not a router), sent only if\n"
	    "# %s has an IPv6 prefix: some iPXE builds wait ~13 s for one on every boot.\n"
	    "enable-ra\n"
	    "dhcp-range=::,constructor:%s,ra-only\n"
	    "ra-param=%s,0,0\n", p->iface, p->iface, p->iface);
	return pos < len ? (int)pos : -1;
}
