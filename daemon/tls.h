/* tls.h — TLS for NBD connections, in user space with GnuTLS.
 *
 * There is no kernel TLS here, so a TLS connection keeps the socket's
 * ciphertext in buffers of its own and GnuTLS works on those through custom
 * transport functions; it never touches the socket and never blocks:
 *
 *   socket ─recv─► tls input ─tls_handshake() / tls_read()─► plaintext (conn rx)
 *   plaintext (txq) ─tls_write() between tls_cork()/tls_uncork()─► tls output ─send─► socket
 *
 * conn.c moves the bytes (io_uring recv and sendmsg, as for plaintext);
 * this module only turns ciphertext into plaintext and back. A session
 * needing more input says so (0 from tls_handshake()/tls_read()); output is
 * never refused (it grows the output buffer), so writes always complete.
 *
 * Credentials (config nbd/tls_psk_file, nbd/tls_cert_dir) are loaded once
 * at start, before the daemon drops root, and shared read-only by every
 * worker. A PSK file is kept in memory: a handshake reads no file.
 */
#ifndef BL_TLS_H
#define BL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"

#define TLS_IN_CAP (34 * 1024)       /* ciphertext input: two full records */
#define TLS_PSK_MAX_USERS 4096       /* lines of a PSK file */
#define TLS_PSK_MAX_KEY 64           /* bytes of one key (128 hex digits) */
#define TLS_PSK_MAX_USER 128         /* bytes of one user name */

struct tls;

/* Load the credentials conf names. 0 (also when nbd/tls is off), or
 * -errno with a one-line message in err naming the file and the fault. */
int tls_global_init(const struct bl_conf *conf, char *err, size_t errlen);
/* Drop the credentials (after every connection is gone). */
void tls_global_free(void);
/* nbd/tls as loaded: CONF_TLS_OFF, CONF_TLS_ON or CONF_TLS_REQUIRE. */
int tls_mode(void);

/* Parse a PSK file's text (NUL-terminated): "user:hexkey" lines, blank
 * lines and "#" comments ignored. Calls add(user, key, keylen, arg) per
 * entry. 0, or -EINVAL with "line N: reason" in err. For unit tests too. */
int tls_psk_parse(const char *text, int (*add)(const char *user, const uint8_t *key, size_t keylen, void *arg),
		  void *arg, char *err, size_t errlen);

/* A server session for one connection; peer names it in messages. NULL if out of memory. */
struct tls *tls_new(void);
void tls_free(struct tls *t);

/* Ciphertext input: where the next recv may write (*len bytes), then how much it did. */
unsigned char *tls_in_space(struct tls *t, size_t *len);
void tls_in_commit(struct tls *t, size_t n);
/* Ciphertext the peer sent before the session existed (after STARTTLS's reply). 0 or -ENOBUFS. */
int tls_in_put(struct tls *t, const void *data, size_t len);

/* Drive the handshake on the input so far: 1 done, 0 more input needed,
 * -1 failed (tls_error() says why). */
int tls_handshake(struct tls *t);
bool tls_established(const struct tls *t);
/* Decrypt into buf: bytes (> 0), 0 more input needed, -1 an error
 * (tls_error() says which), -2 the peer ended TLS (close_notify). */
ssize_t tls_read(struct tls *t, void *buf, size_t len);

/* Batch several writes into full records: cork, write..., uncork. */
void tls_cork(struct tls *t);
/* Encrypt len bytes (all of them, into the output). 0 or -1 (tls_error()). */
int tls_write(struct tls *t, const void *buf, size_t len);
int tls_uncork(struct tls *t);
/* Queue the close_notify alert (a clean end of TLS). */
void tls_bye(struct tls *t);

/* Ciphertext output to send, and how much of it was sent. */
const unsigned char *tls_out(const struct tls *t, size_t *len);
void tls_out_consume(struct tls *t, size_t n);

/* Why the last call failed ("wrong PSK for user 'alice': ...", "unknown PSK user 'bob'", ...). */
const char *tls_error(const struct tls *t);
/* What was negotiated, for the log: "TLS1.3, PSK user alice" or "TLS1.3, X.509". */
void tls_describe(const struct tls *t, char *buf, size_t len);

#endif
