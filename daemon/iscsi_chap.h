/* iscsi_chap.h — CHAP with MD5 (RFC 1994, RFC 7143 §12.1.3) for iSCSI login.
 *
 * The responder proves it knows the secret by sending
 * MD5(identifier || secret || challenge). The target checks the
 * initiator's answer to our challenge (one-way CHAP) and, for mutual
 * CHAP, answers the initiator's challenge with the mutual secret. Pure
 * (nettle's MD5; no I/O): tests/unit/test_iscsi_chap.c checks known
 * vectors.
 */
#ifndef BL_ISCSI_CHAP_H
#define BL_ISCSI_CHAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAP_MD5_LEN        16   /* bytes of an MD5 CHAP response */
#define CHAP_CHALLENGE_LEN  16   /* bytes of the challenges we send */
#define CHAP_SECRET_MAX     255  /* bytes of a configured secret */

/* out = MD5(id || secret || challenge). */
void chap_md5_response(uint8_t id, const char *secret, size_t secret_len, const uint8_t *challenge,
		       size_t challenge_len, uint8_t out[CHAP_MD5_LEN]);

/* Does response (len bytes) answer challenge with secret? Compares in
 * constant time. */
bool chap_md5_verify(uint8_t id, const char *secret, size_t secret_len, const uint8_t *challenge,
		     size_t challenge_len, const uint8_t *response, size_t len);

#endif
