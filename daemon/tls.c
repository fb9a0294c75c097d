/* tls.c — GnuTLS sessions over in-memory ciphertext buffers; see tls.h.
 *
 * Design:
 *  - GnuTLS reads through pull() from `in` (what conn.c received) and
 *    writes through push() into `out` (what conn.c will send). pull()
 *    answers EAGAIN when `in` is empty, so every GnuTLS call returns at
 *    once with GNUTLS_E_AGAIN instead of blocking; push() always takes
 *    everything (the output grows), so a write is never left half done.
 *  - GnuTLS reads every byte pull() offers into its own record buffer, so
 *    after a call that ended in EAGAIN `in` is empty again: TLS_IN_CAP
 *    (two maximum records) bounds a connection's unprocessed ciphertext.
 *  - PSK: the file is parsed once (tls_global_init) into a table the
 *    server callback searches; the user a client names is kept for the log
 *    line of a failed handshake ("unknown PSK user", "wrong key").
 *  - Versions: TLS 1.2 and 1.3 only (proto.md "TLS versions").
 */
#include "tls.h"

#include <ctype.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define PSK_FILE_MAX (1024 * 1024)     /* a PSK file larger than this is refused */
#define OUT_KEEP (256 * 1024)          /* an emptied output buffer larger than this is freed */
/* TLS 1.2 and 1.3, PSK key exchanges added, the server's order of ciphers
 * wins. An external PSK's binder is SHA-256, so TLS 1.3 PSK sessions can
 * only use the *_SHA256 suites, where NORMAL lists CHACHA20 before
 * AES-128-GCM; with AES instructions AES-GCM is about 4 times faster here
 * (64 MiB through nbdcopy: 0.13 s against 0.45 s), so CHACHA20 goes last. */
#define PRIORITY_BASE "NORMAL:%SERVER_PRECEDENCE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:+ECDHE-PSK:+PSK"
#define PRIORITY_AES PRIORITY_BASE ":-CHACHA20-POLY1305:+CHACHA20-POLY1305"

struct psk_entry {
	char user[TLS_PSK_MAX_USER + 1];
	uint8_t key[TLS_PSK_MAX_KEY];
	size_t keylen;
};

/* Loaded once at start, read-only afterwards (every worker shares them). */
static struct {
	int mode;                                  /* enum conf_tls */
	struct psk_entry *psk;
	size_t npsk;
	gnutls_psk_server_credentials_t psk_cred;
	gnutls_certificate_credentials_t x509_cred;
	bool verify_peer;
	gnutls_priority_t prio;
} g;

struct tls {
	gnutls_session_t s;
	bool established;
	char psk_user[TLS_PSK_MAX_USER * 4 + 1];   /* as the client named it, escaped for the log */
	bool psk_unknown;                          /* that user is not in the PSK file */
	char err[384];
	unsigned char *out;                        /* ciphertext to send: out[out_start, out_end) */
	size_t out_start, out_end, out_cap;
	size_t in_start, in_end;                   /* ciphertext received: in[in_start, in_end) */
	unsigned char in[TLS_IN_CAP];
};

/* ---- PSK file ---------------------------------------------------------- */

/* Value of one hex digit, or -1. */
static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Parse PSK file text (tls.h). */
int tls_psk_parse(const char *text, int (*add)(const char *user, const uint8_t *key, size_t keylen, void *arg),
		  void *arg, char *err, size_t errlen)
{
	unsigned lineno = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p);
		const char *s = p, *e = end;
		lineno++;
		p = nl ? nl + 1 : end;
		while (s < e && isspace((unsigned char)*s))
			s++;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (s == e || *s == '#')
			continue;
		const char *colon = memchr(s, ':', (size_t)(e - s));
		if (!colon || colon == s) {
			snprintf(err, errlen, "line %u: expected 'username:hexkey'", lineno);
			return -EINVAL;
		}
		size_t ul = (size_t)(colon - s), hl = (size_t)(e - colon - 1);
		if (ul > TLS_PSK_MAX_USER) {
			snprintf(err, errlen, "line %u: user name longer than %d bytes", lineno, TLS_PSK_MAX_USER);
			return -EINVAL;
		}
		if (hl == 0 || hl % 2 || hl / 2 > TLS_PSK_MAX_KEY) {
			snprintf(err, errlen, "line %u: the key must be 2 to %d hex digits, an even number", lineno,
				 TLS_PSK_MAX_KEY * 2);
			return -EINVAL;
		}
		char user[TLS_PSK_MAX_USER + 1];
		uint8_t key[TLS_PSK_MAX_KEY];
		memcpy(user, s, ul);
		user[ul] = 0;
		for (size_t i = 0; i < hl / 2; i++) {
			int hi = hexval((unsigned char)colon[1 + 2 * i]), lo = hexval((unsigned char)colon[2 + 2 * i]);
			if (hi < 0 || lo < 0) {
				snprintf(err, errlen, "line %u: the key has a character that is not a hex digit", lineno);
				return -EINVAL;
			}
			key[i] = (uint8_t)(hi << 4 | lo);
		}
		int r = add(user, key, hl / 2, arg);
		memset(key, 0, sizeof key);
		if (r < 0) {
			snprintf(err, errlen, "line %u: %s", lineno,
				 r == -EEXIST ? "user listed twice" : r == -E2BIG ? "too many users" : "out of memory");
			return r;
		}
	}
	return 0;
}

/* tls_psk_parse() callback: append to the global table. */
static int psk_add(const char *user, const uint8_t *key, size_t keylen, void *arg)
{
	(void)arg;
	for (size_t i = 0; i < g.npsk; i++)
		if (strcmp(g.psk[i].user, user) == 0)
			return -EEXIST;
	if (g.npsk == TLS_PSK_MAX_USERS)
		return -E2BIG;
	struct psk_entry *n = realloc(g.psk, (g.npsk + 1) * sizeof *n);
	if (!n)
		return -ENOMEM;
	g.psk = n;
	snprintf(n[g.npsk].user, sizeof n[g.npsk].user, "%s", user);
	memcpy(n[g.npsk].key, key, keylen);
	n[g.npsk].keylen = keylen;
	g.npsk++;
	return 0;
}

/* A client-supplied name, escaped for a log line (printable ASCII kept). */
static void escape_name(const char *in, char *out, size_t len)
{
	size_t o = 0;
	for (; *in && o + 5 < len; in++) {
		unsigned char ch = (unsigned char)*in;
		if (ch >= 0x20 && ch < 0x7f && ch != '\'' && ch != '\\')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", ch);
	}
	out[o] = 0;
}

/* GnuTLS asks for the key of user: from the table, or -1 (handshake fails). */
static int psk_lookup(gnutls_session_t s, const char *user, gnutls_datum_t *key)
{
	struct tls *t = gnutls_session_get_ptr(s);
	escape_name(user, t->psk_user, sizeof t->psk_user);
	for (size_t i = 0; i < g.npsk; i++) {
		if (strcmp(g.psk[i].user, user) != 0)
			continue;
		key->data = gnutls_malloc(g.psk[i].keylen);
		if (!key->data)
			return -1;
		memcpy(key->data, g.psk[i].key, g.psk[i].keylen);
		key->size = (unsigned)g.psk[i].keylen;
		t->psk_unknown = false;
		return 0;
	}
	t->psk_unknown = true;
	return -1;
}

/* Read and parse the PSK file. */
static int load_psk(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char why[160];
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "nbd/tls_psk_file: %s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > PSK_FILE_MAX) {
		snprintf(err, errlen, "nbd/tls_psk_file: %s: not a regular file of at most %d bytes", path, PSK_FILE_MAX);
		return -EINVAL;
	}
	if (st.st_mode & 0077)
		log_warn("nbd/tls_psk_file: %s can be read by others than its owner (mode %03o): chmod 600 it",
			 path, (unsigned)(st.st_mode & 0777));
	char *text = malloc((size_t)st.st_size + 1);
	if (!text)
		return -ENOMEM;
	ssize_t n = read_small_file(path, text, (size_t)st.st_size + 1);
	int r = 0;
	if (n < 0) {
		snprintf(err, errlen, "nbd/tls_psk_file: %s: %s", path, strerror((int)-n));
		r = (int)n;
	} else if ((r = tls_psk_parse(text, psk_add, NULL, why, sizeof why)) < 0) {
		snprintf(err, errlen, "nbd/tls_psk_file: %s: %s", path, why);
	} else if (g.npsk == 0) {
		snprintf(err, errlen, "nbd/tls_psk_file: %s has no 'username:hexkey' line", path);
		r = -EINVAL;
	}
	memset(text, 0, (size_t)st.st_size + 1);
	free(text);
	if (r < 0)
		return r;
	if ((r = gnutls_psk_allocate_server_credentials(&g.psk_cred)) < 0) {
		snprintf(err, errlen, "nbd/tls_psk_file: %s", gnutls_strerror(r));
		return -ENOMEM;
	}
	gnutls_psk_set_server_credentials_function(g.psk_cred, psk_lookup);
	return 0;
}

/* Load server-cert.pem, server-key.pem (and ca-cert.pem) from dir. */
static int load_x509(const char *dir, bool verify, char *err, size_t errlen)
{
	char cert[CONF_PATH_MAX + 32], key[CONF_PATH_MAX + 32], ca[CONF_PATH_MAX + 32];
	snprintf(cert, sizeof cert, "%s/server-cert.pem", dir);
	snprintf(key, sizeof key, "%s/server-key.pem", dir);
	snprintf(ca, sizeof ca, "%s/ca-cert.pem", dir);
	int r = gnutls_certificate_allocate_credentials(&g.x509_cred);
	if (r < 0) {
		snprintf(err, errlen, "nbd/tls_cert_dir: %s", gnutls_strerror(r));
		return -ENOMEM;
	}
	r = gnutls_certificate_set_x509_key_file(g.x509_cred, cert, key, GNUTLS_X509_FMT_PEM);
	if (r < 0) {
		snprintf(err, errlen, "nbd/tls_cert_dir: %s with %s: %s", cert, key, gnutls_strerror(r));
		return -EINVAL;
	}
	if (access(ca, F_OK) == 0) {
		r = gnutls_certificate_set_x509_trust_file(g.x509_cred, ca, GNUTLS_X509_FMT_PEM);
		if (r <= 0) {
			snprintf(err, errlen, "nbd/tls_cert_dir: %s: %s", ca, r < 0 ? gnutls_strerror(r) : "no certificate");
			return -EINVAL;
		}
	} else if (verify) {
		snprintf(err, errlen, "nbd/tls_verify_peer is 1 but %s does not exist", ca);
		return -ENOENT;
	}
	g.verify_peer = verify;
	return 0;
}

/* The CPU has AES and carry-less multiply instructions (fast AES-GCM). */
static bool cpu_has_aes(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
#else
	return false;
#endif
}

/* Credentials and priorities for nbd/tls (tls.h). */
int tls_global_init(const struct bl_conf *conf, char *err, size_t errlen)
{
	int r;
	g.mode = (int)conf->nbd_tls;
	if (g.mode == CONF_TLS_OFF)
		return 0;
	if (!conf->nbd_tls_psk_file[0] && !conf->nbd_tls_cert_dir[0]) {
		snprintf(err, errlen, "nbd/tls is %s, but neither nbd/tls_psk_file nor nbd/tls_cert_dir is set",
			 g.mode == CONF_TLS_ON ? "on" : "require");
		return -EINVAL;
	}
	if (conf->nbd_tls_psk_file[0] && (r = load_psk(conf->nbd_tls_psk_file, err, errlen)) < 0)
		return r;
	if (conf->nbd_tls_cert_dir[0] &&
	    (r = load_x509(conf->nbd_tls_cert_dir, conf->nbd_tls_verify_peer, err, errlen)) < 0)
		return r;
	const char *where = NULL, *prio = cpu_has_aes() ? PRIORITY_AES : PRIORITY_BASE;
	if ((r = gnutls_priority_init(&g.prio, prio, &where)) < 0) {
		snprintf(err, errlen, "TLS priorities '%s' at '%s': %s", prio, where ? where : "?", gnutls_strerror(r));
		return -EINVAL;
	}
	log_info("NBD TLS %s: %s%s%s", g.mode == CONF_TLS_ON ? "on" : "required",
		 g.psk_cred ? "PSK" : "", g.psk_cred && g.x509_cred ? " and " : "",
		 g.x509_cred ? (g.verify_peer ? "X.509 (client certificates verified)" : "X.509") : "");
	return 0;
}

void tls_global_free(void)
{
	if (g.prio)
		gnutls_priority_deinit(g.prio);
	if (g.psk_cred)
		gnutls_psk_free_server_credentials(g.psk_cred);
	if (g.x509_cred)
		gnutls_certificate_free_credentials(g.x509_cred);
	if (g.psk)
		memset(g.psk, 0, g.npsk * sizeof *g.psk);
	free(g.psk);
	memset(&g, 0, sizeof g);
}

int tls_mode(void)
{
	return g.mode;
}

/* ---- transport: the in-memory buffers ---------------------------------- */

/* GnuTLS wants ciphertext: what was received, or EAGAIN. */
static ssize_t pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	struct tls *t = p;
	size_t n = MIN(len, t->in_end - t->in_start);
	if (n == 0) {
		gnutls_transport_set_errno(t->s, EAGAIN);
		return -1;
	}
	memcpy(data, t->in + t->in_start, n);
	t->in_start += n;
	if (t->in_start == t->in_end)
		t->in_start = t->in_end = 0;
	return (ssize_t)n;
}

/* GnuTLS asks whether input is waiting (it never waits here). */
static int pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	struct tls *t = p;
	(void)ms;
	return t->in_end > t->in_start;
}

/* GnuTLS has ciphertext to send: append it to the output. */
static ssize_t push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
	struct tls *t = p;
	if (t->out_end + len > t->out_cap) {
		if (t->out_start) {
			memmove(t->out, t->out + t->out_start, t->out_end - t->out_start);
			t->out_end -= t->out_start;
			t->out_start = 0;
		}
		size_t cap = MAX(t->out_cap, 16384);
		while (cap < t->out_end + len)
			cap *= 2;
		if (cap > t->out_cap) {
			unsigned char *n = realloc(t->out, cap);
			if (!n) {
				gnutls_transport_set_errno(t->s, ENOMEM);
				return -1;
			}
			t->out = n;
			t->out_cap = cap;
		}
	}
	memcpy(t->out + t->out_end, data, len);
	t->out_end += len;
	return (ssize_t)len;
}

/* ---- sessions ---------------------------------------------------------- */

struct tls *tls_new(void)
{
	struct tls *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	if (gnutls_init(&t->s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_TICKETS) < 0) {
		free(t);
		return NULL;
	}
	gnutls_session_set_ptr(t->s, t);
	if (gnutls_priority_set(t->s, g.prio) < 0 ||
	    (g.psk_cred && gnutls_credentials_set(t->s, GNUTLS_CRD_PSK, g.psk_cred) < 0) ||
	    (g.x509_cred && gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, g.x509_cred) < 0)) {
		tls_free(t);
		return NULL;
	}
	if (g.x509_cred && g.verify_peer) {
		gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
		gnutls_session_set_verify_cert(t->s, NULL, 0);
	}
	gnutls_transport_set_ptr(t->s, t);
	gnutls_transport_set_pull_function(t->s, pull);
	gnutls_transport_set_pull_timeout_function(t->s, pull_timeout);
	gnutls_transport_set_push_function(t->s, push);
	return t;
}

void tls_free(struct tls *t)
{
	if (!t)
		return;
	gnutls_deinit(t->s);
	free(t->out);
	free(t);
}

unsigned char *tls_in_space(struct tls *t, size_t *len)
{
	if (t->in_start) {
		memmove(t->in, t->in + t->in_start, t->in_end - t->in_start);
		t->in_end -= t->in_start;
		t->in_start = 0;
	}
	*len = TLS_IN_CAP - t->in_end;
	return t->in + t->in_end;
}

void tls_in_commit(struct tls *t, size_t n)
{
	t->in_end += n;
}

int tls_in_put(struct tls *t, const void *data, size_t len)
{
	size_t room;
	unsigned char *p = tls_in_space(t, &room);
	if (len > room)
		return -ENOBUFS;
	memcpy(p, data, len);
	t->in_end += len;
	return 0;
}

/* Record why r failed in t->err (with the alert the peer sent, the PSK user). */
static void set_error(struct tls *t, int r)
{
	char alert[80] = "";
	if (r == GNUTLS_E_FATAL_ALERT_RECEIVED || r == GNUTLS_E_WARNING_ALERT_RECEIVED)
		snprintf(alert, sizeof alert, " (%s)", gnutls_alert_get_name(gnutls_alert_get(t->s)));
	if (t->psk_unknown)
		snprintf(t->err, sizeof t->err, "unknown PSK user '%.160s'", t->psk_user);
	else if (t->psk_user[0] && !t->established)
		snprintf(t->err, sizeof t->err, "PSK user '%.160s': %s%s (wrong key?)", t->psk_user, gnutls_strerror(r), alert);
	else
		snprintf(t->err, sizeof t->err, "%s%s", gnutls_strerror(r), alert);
}

int tls_handshake(struct tls *t)
{
	for (int tries = 0; tries < 16; tries++) {
		int r = gnutls_handshake(t->s);
		if (r == 0) {
			t->established = true;
			return 1;
		}
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
			return 0;
		if (gnutls_error_is_fatal(r)) {
			set_error(t, r);
			/* Tell the client why (the alert goes out before the close). */
			gnutls_alert_send_appropriate(t->s, r);
			return -1;
		}
		/* A warning alert: the handshake goes on. */
	}
	snprintf(t->err, sizeof t->err, "too many warning alerts during the handshake");
	return -1;
}

bool tls_established(const struct tls *t)
{
	return t->established;
}

ssize_t tls_read(struct tls *t, void *buf, size_t len)
{
	for (int tries = 0; tries < 16; tries++) {
		ssize_t r = gnutls_record_recv(t->s, buf, len);
		if (r > 0)
			return r;
		if (r == 0) {
			snprintf(t->err, sizeof t->err, "the client ended TLS (close_notify)");
			return -2;
		}
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
			return 0;
		if (r == GNUTLS_E_REHANDSHAKE) {
			/* A TLS 1.2 renegotiation: declined, the session goes on. */
			gnutls_alert_send(t->s, GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION);
			continue;
		}
		if (gnutls_error_is_fatal((int)r)) {
			set_error(t, (int)r);
			return -1;
		}
	}
	snprintf(t->err, sizeof t->err, "too many warning alerts");
	return -1;
}

void tls_cork(struct tls *t)
{
	gnutls_record_cork(t->s);
}

int tls_write(struct tls *t, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	while (len) {
		ssize_t r = gnutls_record_send(t->s, p, len);
		if (r < 0) {
			set_error(t, (int)r);
			return -1;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int tls_uncork(struct tls *t)
{
	int r = gnutls_record_uncork(t->s, GNUTLS_RECORD_WAIT);
	if (r < 0) {
		set_error(t, r);
		return -1;
	}
	return 0;
}

void tls_bye(struct tls *t)
{
	if (t->established)
		gnutls_bye(t->s, GNUTLS_SHUT_WR);
}

const unsigned char *tls_out(const struct tls *t, size_t *len)
{
	*len = t->out_end - t->out_start;
	return t->out + t->out_start;
}

void tls_out_consume(struct tls *t, size_t n)
{
	t->out_start += n;
	if (t->out_start < t->out_end)
		return;
	t->out_start = t->out_end = 0;
	if (t->out_cap > OUT_KEEP) {
		free(t->out);
		t->out = NULL;
		t->out_cap = 0;
	}
}

const char *tls_error(const struct tls *t)
{
	return t->err[0] ? t->err : "unknown error";
}

/* The common name of the client's (verified) certificate into cn, escaped; "" if none. */
static void peer_cn(const struct tls *t, char *cn, size_t len)
{
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(t->s, &n);
	gnutls_x509_crt_t crt;
	char raw[256];
	size_t rl = sizeof raw - 1;
	cn[0] = 0;
	if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
	    gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, raw, &rl) == 0) {
		raw[MIN(rl, sizeof raw - 1)] = 0;
		escape_name(raw, cn, len);
	}
	gnutls_x509_crt_deinit(crt);
}

void tls_describe(const struct tls *t, char *buf, size_t len)
{
	char cn[200];
	const char *ver = gnutls_protocol_get_name(gnutls_protocol_get_version(t->s));
	const char *cipher = gnutls_cipher_get_name(gnutls_cipher_get(t->s));
	if (gnutls_auth_get_type(t->s) == GNUTLS_CRD_PSK)
		snprintf(buf, len, "%s, %s, PSK user '%.160s'", ver ? ver : "?", cipher ? cipher : "?", t->psk_user);
	else if (g.verify_peer && (peer_cn(t, cn, sizeof cn), cn[0]))
		snprintf(buf, len, "%s, %s, X.509, client certificate '%s' verified", ver ? ver : "?",
			 cipher ? cipher : "?", cn);
	else
		snprintf(buf, len, "%s, %s, X.509%s", ver ? ver : "?", cipher ? cipher : "?",
			 g.verify_peer ? ", client certificate verified" : "");
}
