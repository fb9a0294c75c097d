/* iscsi_chap.c — CHAP MD5 responses; see iscsi_chap.h. */
#include "iscsi_chap.h"

#include <nettle/md5.h>

void chap_md5_response(uint8_t id, const char *secret, size_t secret_len, const uint8_t *challenge,
		       size_t challenge_len, uint8_t out[CHAP_MD5_LEN])
{
	struct md5_ctx ctx;
	md5_init(&ctx);
	md5_update(&ctx, 1, &id);
	md5_update(&ctx, secret_len, (const uint8_t *)secret);
	md5_update(&ctx, challenge_len, challenge);
	md5_digest(&ctx, CHAP_MD5_LEN, out);
}

bool chap_md5_verify(uint8_t id, const char *secret, size_t secret_len, const uint8_t *challenge,
		     size_t challenge_len, const uint8_t *response, size_t len)
{
	uint8_t want[CHAP_MD5_LEN];
	uint8_t diff = 0;
	if (len != CHAP_MD5_LEN)
		return false;
	chap_md5_response(id, secret, secret_len, challenge, challenge_len, want);
	for (size_t i = 0; i < CHAP_MD5_LEN; i++)
		diff |= want[i] ^ response[i];
	return diff == 0;
}
