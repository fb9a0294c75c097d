/* test_iscsi_chap.c — CHAP MD5 responses against known vectors.
 *
 * Expected values are MD5(identifier || secret || challenge) computed
 * independently (Python hashlib); verify() must accept exactly the right
 * response and refuse any flipped bit, a wrong identifier, secret or
 * challenge, and responses of the wrong length.
 */
#include "unit.h"

#include "iscsi_chap.h"
#include "iscsi_text.h"
#include "util.h"

struct vec {
	const char *name;
	uint8_t id;
	const char *secret;
	size_t secret_len;
	const char *challenge_hex;   /* "" = empty; "ff*1024" = 1024 bytes of 0xff */
	const char *response_hex;
};

static const struct vec vecs[] = {
	{ "16-byte challenge", 1, "secret", 6, "0123456789abcdef0123456789abcdef", "6c2da888fed7077ca3a793cec7b2a5eb" },
	{ "empty secret and challenge", 0, "", 0, "", "93b885adfe0da089cdf634904fd59f71" },
	{ "identifier 255", 255, "iscsi-secret-12", 15, "000102030405060708090a0b0c0d0e0f",
	  "ae9490a4fcf283bc70299617c5e6ee57" },
	{ "longest secret and challenge", 0x2a, NULL, 255, "ff*1024", "87c270b3fac96896d7bf013cd67e6fc8" },
};

/* Decode the challenge spelling of a vector into out; returns its length. */
static size_t challenge(const char *spec, uint8_t *out)
{
	if (strcmp(spec, "ff*1024") == 0) {
		memset(out, 0xff, 1024);
		return 1024;
	}
	size_t n = strlen(spec) / 2;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		sscanf(spec + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
	return n;
}

int main(void)
{
	static char long_secret[256];
	memset(long_secret, 'a', 255);
	for (size_t i = 0; i < ARRAY_SIZE(vecs); i++) {
		const struct vec *v = &vecs[i];
		const char *secret = v->secret ? v->secret : long_secret;
		uint8_t ch[1024], r[CHAP_MD5_LEN];
		char hex[2 * CHAP_MD5_LEN + 3];
		size_t cl = challenge(v->challenge_hex, ch);
		UNIT_CTX("%s", v->name);
		chap_md5_response(v->id, secret, v->secret_len, ch, cl, r);
		iscsi_hex_encode(r, sizeof r, hex);
		CHECK_STR(hex + 2, v->response_hex);
		CHECK(chap_md5_verify(v->id, secret, v->secret_len, ch, cl, r, sizeof r));
		CHECK(!chap_md5_verify((uint8_t)(v->id + 1), secret, v->secret_len, ch, cl, r, sizeof r));
		CHECK(!chap_md5_verify(v->id, "wrong", 5, ch, cl, r, sizeof r));
		CHECK(!chap_md5_verify(v->id, secret, v->secret_len, ch, cl, r, sizeof r - 1));
		if (cl) {
			ch[0] ^= 1;
			CHECK(!chap_md5_verify(v->id, secret, v->secret_len, ch, cl, r, sizeof r));
			ch[0] ^= 1;
		}
		for (int bit = 0; bit < 8 * CHAP_MD5_LEN; bit += 13) {
			r[bit / 8] ^= (uint8_t)(1 << (bit % 8));
			CHECK(!chap_md5_verify(v->id, secret, v->secret_len, ch, cl, r, sizeof r));
			r[bit / 8] ^= (uint8_t)(1 << (bit % 8));
		}
	}
	UNIT_CTX(NULL);
	/* The encodings an initiator may use for CHAP_R decode to the same bytes. */
	uint8_t a[16], b[16];
	CHECK_INT(iscsi_binary_decode("0x6c2da888fed7077ca3a793cec7b2a5eb", 34, a, sizeof a), 16);
	CHECK_INT(iscsi_binary_decode("0bbC2oiP7XB3yjp5POx7Kl6w==", 26, b, sizeof b), 16);
	CHECK(memcmp(a, b, 16) == 0);
	return unit_done();
}
