/* pxe_conf.h — the dnsmasq configuration that PXE-boots PCs into bootlinkd.
 *
 * A pure function of a checked plan (cmd_pxe.c does the checking against
 * the system): it only formats text. Three modes:
 *
 *   full DHCP  dnsmasq hands out addresses on an isolated network and
 *              names the boot file itself (DHCP options 66/67, dhcp-boot)
 *   proxyDHCP  the site's DHCP server hands out addresses; dnsmasq only
 *              answers PXE clients with a boot menu of one entry per
 *              architecture (dhcp-range=NET,proxy + pxe-service)
 *   TFTP only  the site's DHCP server names the boot file itself (options
 *              66/67, listed in the file's comments); dnsmasq only serves
 *              the iPXE binaries
 *
 * Either way a PC's firmware gets iPXE over TFTP (undionly.kpxe for BIOS,
 * the chosen .efi for x86-64 UEFI: client architecture, option 93), and a
 * PC already running iPXE (user class "iPXE", or option 175) gets the URL
 * of bootlinkd's /boot.ipxe instead: that breaks the loop in which iPXE
 * would load iPXE again.
 */
#ifndef CTL_PXE_CONF_H
#define CTL_PXE_CONF_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

enum pxe_mode {
	PXE_FULL,                     /* full DHCP on an isolated network */
	PXE_PROXY,                    /* proxyDHCP next to another DHCP server */
	PXE_TFTP,                     /* TFTP only: the site's DHCP server names the boot file */
};

struct pxe_plan {
	const char *iface;            /* interface dnsmasq serves (and binds to) */
	enum pxe_mode mode;
	struct in_addr addr;          /* the interface's IPv4 address (TFTP server) */
	struct in_addr mask;          /* its netmask */
	struct in_addr range_start;   /* full DHCP: the addresses handed out */
	struct in_addr range_end;
	const char *boot_url;         /* http://SERVER:PORT/boot.ipxe */
	const char *tftp_root;        /* absolute directory holding the iPXE binaries */
	const char *bios_file;        /* undionly.kpxe */
	const char *efi_file;         /* ipxe.efi or snponly.efi */
	const char *lease_file;       /* full DHCP: dnsmasq's lease database */
	const char *generated_by;     /* the command line, for the header comment */
};

/* Write the configuration for p into out (NUL-terminated). Returns its
 * length, or -1 if it does not fit in len bytes. */
int pxe_conf_render(const struct pxe_plan *p, char *out, size_t len);

/* "full DHCP", "proxyDHCP", "TFTP only". */
const char *pxe_mode_name(enum pxe_mode m);

#endif
