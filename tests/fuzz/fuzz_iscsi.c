/* fuzz_iscsi.c — libFuzzer harness for what an initiator sends to
 * listen/iscsi before any state is involved: BHS parsing and PDU lengths
 * (daemon/iscsi_pdu.c) and the key=value negotiation in every stage
 * (daemon/iscsi_text.c). The first input byte picks the stage and the
 * AuthMethods allowed, the next 48 are a BHS, the rest is login/text data.
 * Asserts: lengths within their caps, stored names NUL-terminated within
 * their fields, answers well-formed (every pair "key=value\0", no key
 * answered that was not offered), a failure always names a login status. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "iscsi_pdu.h"
#include "iscsi_text.h"

/* Every answer pair is key=value with a NUL, within the text cap. */
static void check_answer(const struct iscsi_textbuf *out)
{
	struct iscsi_kv kv;
	size_t pos = 0;
	int r;
	assert(out->len <= ISCSI_TEXT_MAX);
	while ((r = iscsi_text_next(out->buf, out->len, &pos, &kv)) > 0)
		assert(kv.klen > 0 && kv.klen <= ISCSI_KEY_MAX);
	assert(r == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 + ISCSI_BHS_LEN)
		return 0;
	struct iscsi_hdr h;
	if (iscsi_hdr_parse(data + 1, &h) == 0) {
		assert(h.ahs_len <= ISCSI_AHS_MAX && h.dsl <= ISCSI_DSL_MAX);
		assert(iscsi_pdu_len(&h, true, true) <= ISCSI_BHS_LEN + ISCSI_AHS_MAX + 8 + ISCSI_DSL_MAX + 3);
	}
	const char *text = (const char *)data + 1 + ISCSI_BHS_LEN;
	size_t len = size - 1 - ISCSI_BHS_LEN;
	if (len > ISCSI_TEXT_MAX)
		return 0;
	struct iscsi_params p;
	struct iscsi_textbuf out = { 0 };
	iscsi_params_defaults(&p);
	struct iscsi_neg n = { .p = &p, .stage = (enum iscsi_neg_stage)(data[0] % 3),
			       .auth_allowed = data[0] & 4 ? ISCSI_AUTH_CHAP : ISCSI_AUTH_NONE };
	if (iscsi_negotiate(&n, text, len, &out) < 0) {
		assert(n.fail != 0 && memchr(n.why, 0, sizeof n.why));
	} else {
		check_answer(&out);
		assert(memchr(p.initiator_name, 0, sizeof p.initiator_name));
		assert(memchr(p.target_name, 0, sizeof p.target_name));
		assert(memchr(n.chap_n, 0, sizeof n.chap_n));
		assert(n.chap_r_len <= ISCSI_CHAP_BIN_MAX && n.chap_c_len <= ISCSI_CHAP_BIN_MAX);
		assert(p.first_burst <= p.max_burst && p.max_r2t <= ISCSI_OUR_MAX_R2T && p.erl == 0);
		assert(p.max_xmit_dsl >= 512 && p.max_xmit_dsl <= ISCSI_DSL_MAX);
	}
	textbuf_free(&out);
	return 0;
}
