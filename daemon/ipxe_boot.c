/* ipxe_boot.c — the iPXE scripts for Linux images, boot menus and PCs being
 * registered; see ipxe.h. Pure text generation, unit-tested
 * (tests/unit/test_ipxe.c).
 *
 * What goes into a script: image and client names (name_valid(): letters,
 * digits, '.', '_', '-'), canonical MACs, the server address (the Host
 * header, checked by http_parse) and ports are put as they are; kernel
 * options from the database are put only if cmdline_valid() accepts them
 * (bootlinkctl refuses others; a database edited by hand gets them dropped
 * here, never expanded by iPXE); free text (descriptions) goes through
 * ipxe_escape(). iPXE quirk: `choose` returns failure on Esc, and a menu
 * with a timeout returns the default when it expires.
 */
#include "ipxe.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

/* The retry tail every failure path ends in: wait, then ask for the PC's
 * script again (which may show a menu again). */
static void retry_tail(const struct ipxe_ctx *c, char *out, size_t len, size_t *pos)
{
	ipxe_put(out, len, pos, "echo Retrying in %u seconds ...\nsleep %u\n", c->retry_s, c->retry_s);
	ipxe_put(out, len, pos, "chain --replace http://%s:%u/ipxe?mac=${net0/mac:hexhyp}\n", c->server, c->http_port);
}

int ipxe_linux_script(const struct ipxe_ctx *c, const struct ipxe_linux *l, char *out, size_t len)
{
	size_t pos = 0;
	const char *icl = l->image_cmdline && cmdline_valid(l->image_cmdline) ? l->image_cmdline : "";
	const char *ccl = l->client_cmdline && cmdline_valid(l->client_cmdline) ? l->client_cmdline : "";
	char base[300];
	snprintf(base, sizeof base, "http://%s:%u/boot/%s", c->server, c->http_port, c->image);
	ipxe_put(out, len, &pos, "#!ipxe\n");
	ipxe_put(out, len, &pos, "echo bootlink: %s (%s) boots image %s (%s overlay): Linux, root on NBD\n",
		 c->client_name, c->mac, c->image, c->mode);
	ipxe_put(out, len, &pos, "kernel %s/vmlinuz bootlink.nbd=%s:%u/client/%s%s%s%s%s || goto failed\n", base,
		 c->server, c->nbd_port, c->mac, icl[0] ? " " : "", icl, ccl[0] ? " " : "", ccl);
	if (l->initrd)
		ipxe_put(out, len, &pos, "initrd %s/initrd || goto failed\n", base);
	ipxe_put(out, len, &pos, "boot || goto failed\n");
	char msg[512];
	snprintf(msg, sizeof msg, "bootlink: image %s: its kernel or initrd could not be loaded or booted from %s/ "
		 "- the log of bootlinkd on the server says why.", c->image, base);
	ipxe_put(out, len, &pos, ":failed\necho\n");
	ipxe_echo_wrapped(out, len, &pos, "", msg);
	retry_tail(c, out, len, &pos);
	return pos < len ? (int)pos : -1;
}

int ipxe_menu_script(const struct ipxe_ctx *c, const struct ipxe_menu *m, char *out, size_t len)
{
	size_t pos = 0;
	if (m->n < 1 || m->def < 0 || m->def >= m->n)
		return -1;
	for (int i = 0; i < m->n; i++)
		if (!name_valid(m->image[i]))
			return -1;
	const char *def = m->image[m->def];
	ipxe_put(out, len, &pos, "#!ipxe\n");
	ipxe_put(out, len, &pos, "menu bootlink: %s (%s) - choose what to boot\n", c->client_name, c->mac);
	for (int i = 0; i < m->n; i++) {
		char d[128] = "";
		if (m->description[i] && m->description[i][0])
			ipxe_escape(m->description[i], d, sizeof d);
		ipxe_put(out, len, &pos, "item %s %s%s%s%s\n", m->image[i], m->image[i], d[0] ? " - " : "", d,
			 i == m->def ? " (default)" : "");
	}
	if (m->timeout_s)
		ipxe_put(out, len, &pos, "choose --timeout %u --default %s blimage || goto cancel\n", m->timeout_s * 1000, def);
	else
		ipxe_put(out, len, &pos, "choose --default %s blimage || goto cancel\n", def);
	ipxe_put(out, len, &pos, "echo bootlink: booting ${blimage}\n");
	ipxe_put(out, len, &pos, "chain --replace http://%s:%u/ipxe?mac=${net0/mac:hexhyp}&image=${blimage} || goto failed\n",
		 c->server, c->http_port);
	ipxe_put(out, len, &pos, ":cancel\necho bootlink: no choice made: booting the default, %s\n", def);
	ipxe_put(out, len, &pos, "chain --replace http://%s:%u/ipxe?mac=${net0/mac:hexhyp}&image=%s || goto failed\n",
		 c->server, c->http_port, def);
	ipxe_put(out, len, &pos, ":failed\necho bootlink: the boot server http://%s:%u/ did not answer.\n", c->server,
		 c->http_port);
	retry_tail(c, out, len, &pos);
	return pos < len ? (int)pos : -1;
}

int ipxe_autoadd_script(const struct ipxe_ctx *c, unsigned retry_s, char *out, size_t len)
{
	size_t pos = 0;
	ipxe_put(out, len, &pos, "#!ipxe\n");
	ipxe_put(out, len, &pos, "echo bootlink: this PC (MAC %s) is new: registering it ...\n", c->mac);
	ipxe_put(out, len, &pos, "echo (clients/autoadd = 1 on the server)\n");
	ipxe_put(out, len, &pos, "sleep %u\n", retry_s);
	ipxe_put(out, len, &pos, "chain --replace http://%s:%u/ipxe?mac=${net0/mac:hexhyp} || goto failed\n", c->server,
		 c->http_port);
	ipxe_put(out, len, &pos, ":failed\necho bootlink: the boot server http://%s:%u/ did not answer.\n", c->server,
		 c->http_port);
	retry_tail(c, out, len, &pos);
	return pos < len ? (int)pos : -1;
}
