/* ipxe.c — iPXE script templates; see ipxe.h.
 *
 * iPXE quirks: `${...}` expands settings and `||`, `&&`, `#` and `goto`
 * are syntax, so free text in `echo` lines must not contain `$`, `|`, `&`
 * or `#`: ipxe_escape() keeps a small safe set. A value that must reach
 * iPXE unchanged (a CHAP secret) goes as hex bytes instead: `set NAME:hex`
 * (the 2019 iPXE in Debian's ipxe-qemu has the hex type, colon-separated).
 * A key answered `Reject` in the iSCSI login is fatal to iPXE's sanboot
 * (handled by the target).
 */
#include "ipxe.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void ipxe_escape(const char *s, char *out, size_t len)
{
	size_t n = 0;
	for (; *s && n + 1 < len; s++)
		out[n++] = (isalnum((unsigned char)*s) || strchr(" ._:/()-;,=", *s)) ? *s : '?';
	if (len)
		out[n] = 0;
}

int ipxe_set_line(const char *name, const char *value, char *out, size_t len)
{
	size_t n = strlen(value), pos = 0;
	bool plain = n > 0;
	for (size_t i = 0; i < n && plain; i++)
		plain = isalnum((unsigned char)value[i]) || strchr("._:/@+,=-", value[i]);
	int w = plain ? snprintf(out, len, "set %s %s\n", name, value) : snprintf(out, len, "set %s:hex ", name);
	if (w < 0 || (size_t)w >= len)
		return -1;
	pos = (size_t)w;
	if (plain)
		return (int)pos;
	for (size_t i = 0; i < n; i++) {
		w = snprintf(out + pos, len - pos, "%s%02x", i ? ":" : "", (unsigned char)value[i]);
		if (w < 0 || (size_t)w >= len - pos)
			return -1;
		pos += (size_t)w;
	}
	if (pos + 2 > len)
		return -1;
	out[pos++] = '\n';
	out[pos] = 0;
	return (int)pos;
}

/* The CHAP credentials of every client script (ipxe_set_chap). */
static struct {
	char user[256], secret[256], mutual_user[256], mutual_secret[256];
} chap;

void ipxe_set_chap(const char *user, const char *secret, const char *mutual_user, const char *mutual_secret)
{
	snprintf(chap.user, sizeof chap.user, "%s", user ? user : "");
	snprintf(chap.secret, sizeof chap.secret, "%s", secret ? secret : "");
	snprintf(chap.mutual_user, sizeof chap.mutual_user, "%s", mutual_user ? mutual_user : "");
	snprintf(chap.mutual_secret, sizeof chap.mutual_secret, "%s", mutual_secret ? mutual_secret : "");
}

/* Append ipxe_set_line(name, value) at *pos; -1 (and *pos = len) once it no longer fits. */
static int put_set(char *out, size_t len, size_t *pos, const char *name, const char *value)
{
	if (*pos >= len)
		return -1;
	int n = ipxe_set_line(name, value, out + *pos, len - *pos);
	if (n < 0) {
		*pos = len;
		return -1;
	}
	*pos += (size_t)n;
	return 0;
}

/* The CHAP settings iPXE logs in with: nothing unless user and secret are
 * both set; reverse-* (mutual CHAP) only on top of one-way CHAP. */
static void chap_settings(char *out, size_t len, size_t *pos)
{
	if (!chap.user[0] || !chap.secret[0])
		return;
	put_set(out, len, pos, "username", chap.user);
	put_set(out, len, pos, "password", chap.secret);
	if (!chap.mutual_user[0] || !chap.mutual_secret[0])
		return;
	put_set(out, len, pos, "reverse-username", chap.mutual_user);
	put_set(out, len, pos, "reverse-password", chap.mutual_secret);
}

/* The screen of a PC that cannot boot (yet): what is wrong, then retry. */
static int error_screen(const struct ipxe_ctx *c, char *out, size_t len, size_t *pos)
{
	char err[512];
	ipxe_escape(c->error, err, sizeof err);
	ipxe_put(out, len, pos, "echo\necho ================================================================\n");
	ipxe_put(out, len, pos, "echo  bootlink: this PC cannot boot yet\necho\n");
	ipxe_echo_wrapped(out, len, pos, " ", err);
	ipxe_put(out, len, pos, "echo\necho  MAC address: %s\n", c->mac);
	ipxe_put(out, len, pos, "echo ================================================================\n");
	ipxe_put(out, len, pos, "echo Retrying in %u seconds ...\nsleep %u\n", c->retry_s, c->retry_s);
	return ipxe_put(out, len, pos, "chain --replace http://%s:%u/ipxe?mac=${net0/mac:hexhyp} || goto retry\n"
			 ":retry\nsleep %u\nchain --replace http://%s:%u/ipxe?mac=${net0/mac:hexhyp}\n",
		   c->server, c->http_port, c->retry_s, c->server, c->http_port);
}

int ipxe_client_script(const struct ipxe_ctx *c, char *out, size_t len)
{
	size_t pos = 0;
	ipxe_put(out, len, &pos, "#!ipxe\n");
	if (c->error && c->error[0]) {
		error_screen(c, out, len, &pos);
		return pos < len ? (int)pos : -1;
	}
	ipxe_put(out, len, &pos, "echo bootlink: %s (%s) boots image %s (%s overlay)\n", c->client_name, c->mac,
	    c->image, c->mode);
	ipxe_put(out, len, &pos, "set initiator-iqn %s\n", c->initiator_iqn);
	chap_settings(out, len, &pos);
	/* sanboot --drive/--keep: in Debian's 2019 iPXE too (ipxe.efi names
	 * them). A drive that is no BIOS hard disk number (a database edited by
	 * hand) is left to iPXE's default, 0x80. */
	ipxe_put(out, len, &pos, "sanboot ");
	if (c->san_drive >= 0x80 && c->san_drive <= 0xff)
		ipxe_put(out, len, &pos, "--drive 0x%02x ", c->san_drive);
	if (c->san_keep)
		ipxe_put(out, len, &pos, "--keep ");
	ipxe_put(out, len, &pos, "iscsi:%s::%u::%s || goto failed\n", c->server, c->iscsi_port, c->target_iqn);
	ipxe_put(out, len, &pos, ":failed\n");
	ipxe_put(out, len, &pos, "echo bootlink: sanboot of %s from %s:%u failed.\n", c->target_iqn, c->server, c->iscsi_port);
	ipxe_put(out, len, &pos, "echo Check that bootlinkd listens for iSCSI there (listen/iscsi) and see its log.\n");
	ipxe_put(out, len, &pos, "echo Retrying in %u seconds ...\nsleep %u\n", c->retry_s, c->retry_s);
	ipxe_put(out, len, &pos, "chain --replace http://%s:%u/ipxe?mac=${net0/mac:hexhyp}\n", c->server, c->http_port);
	return pos < len ? (int)pos : -1;
}

int ipxe_boot_script(const char *server, unsigned http_port, char *out, size_t len)
{
	size_t pos = 0;
	ipxe_put(out, len, &pos, "#!ipxe\n");
	ipxe_put(out, len, &pos, "# bootlink: the first script. Chains to this PC's own script.\n");
	ipxe_put(out, len, &pos, "set tries:int32 0\n:again\n");
	ipxe_put(out, len, &pos, "chain --replace http://%s:%u/ipxe?mac=${net0/mac:hexhyp}&uuid=${uuid:uristring}&serial=${serial:uristring}&ip=${net0/ip} && goto done ||\n",
	    server, http_port);
	ipxe_put(out, len, &pos, "inc tries\n");
	ipxe_put(out, len, &pos, "iseq ${tries} 5 && goto shell ||\n");
	ipxe_put(out, len, &pos, "echo bootlink: cannot reach http://%s:%u/ (try ${tries} of 5), retrying ...\n", server, http_port);
	ipxe_put(out, len, &pos, "sleep ${tries}\ngoto again\n");
	ipxe_put(out, len, &pos, ":shell\necho bootlink: the boot server http://%s:%u/ does not answer.\n", server, http_port);
	ipxe_put(out, len, &pos, "echo Check that bootlinkd runs (systemctl status bootlinkd) and listens on listen/http.\n");
	ipxe_put(out, len, &pos, "shell\n:done\n");
	return pos < len ? (int)pos : -1;
}

int ipxe_put(char *out, size_t len, size_t *pos, const char *fmt, ...)
{
	if (*pos >= len)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *pos) {
		*pos = len;
		return -1;
	}
	*pos += (size_t)n;
	return 0;
}

int ipxe_echo_wrapped(char *out, size_t len, size_t *pos, const char *indent, const char *text)
{
	size_t n = strlen(text), il = strlen(indent), i = 0;
	int r = 0;
	while (i < n && r == 0) {
		while (i < n && text[i] == ' ')
			i++;
		/* Take words while they fit in IPXE_ECHO_WIDTH; a longer word goes alone. */
		size_t end = i, cut = i;
		while (end < n) {
			size_t w = end;
			while (w < n && text[w] != ' ')
				w++;
			if (w - i + il > IPXE_ECHO_WIDTH && cut > i)
				break;
			cut = w;
			end = w + 1;
		}
		if (cut > i)
			r = ipxe_put(out, len, pos, "echo %s%.*s\n", indent, (int)(cut - i), text + i);
		i = cut;
	}
	return r;
}
