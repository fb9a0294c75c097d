/* test_iscsi_text.c — key=value parsing and the negotiation table.
 *
 * The negotiation rows are what real initiators send (iPXE's exact login
 * strings, open-iscsi's defaults) and what a hostile one might: each row
 * gives the stage, the request text (pairs separated by '\0') and either
 * the exact answer (pairs shown separated by '\n') or the login status
 * the negotiation must fail with.
 */
#include "unit.h"

#include "iscsi_pdu.h"
#include "iscsi_text.h"
#include "util.h"

/* The answer text with NULs shown as newlines. */
static const char *shown(const struct iscsi_textbuf *t)
{
	static char s[ISCSI_TEXT_MAX + 1];
	size_t n = MIN(t->len, sizeof s - 1);
	for (size_t i = 0; i < n; i++)
		s[i] = t->buf[i] ? t->buf[i] : '\n';
	s[n] = 0;
	return s;
}

struct row {
	const char *name;
	enum iscsi_neg_stage stage;
	unsigned auth;          /* ISCSI_AUTH_* allowed */
	const char *in;         /* pairs, each ending in \0 */
	size_t len;             /* bytes of in (0: strlen-based sizeof) */
	const char *out;        /* expected answer, pairs separated by \n */
	uint16_t fail;          /* expected login status, 0 = success */
};

#define T(s) s, sizeof(s) - 1

static const struct row rows[] = {
	{ "iPXE security, no CHAP", ISCSI_NEG_SECURITY, ISCSI_AUTH_NONE,
	  T("InitiatorName=iqn.2010-04.org.ipxe:pc1\0TargetName=iqn.2026-11.org.bootlink:client.525400aabb01\0"
	    "SessionType=Normal\0AuthMethod=CHAP,None\0"), "AuthMethod=None\n", 0 },
	{ "iPXE security, CHAP", ISCSI_NEG_SECURITY, ISCSI_AUTH_CHAP,
	  T("InitiatorName=iqn.2010-04.org.ipxe:pc1\0TargetName=iqn.2026-11.org.bootlink:client.525400aabb01\0"
	    "SessionType=Normal\0AuthMethod=CHAP,None\0"), "AuthMethod=CHAP\n", 0 },
	{ "iPXE operational", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE,
	  T("HeaderDigest=None\0DataDigest=None\0InitialR2T=Yes\0MaxRecvDataSegmentLength=8192\0"
	    "MaxBurstLength=262144\0DefaultTime2Wait=0\0DefaultTime2Retain=0\0MaxOutstandingR2T=1\0"
	    "DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0ErrorRecoveryLevel=0\0"),
	  "HeaderDigest=None\nDataDigest=None\nInitialR2T=Yes\nMaxBurstLength=262144\nDefaultTime2Wait=0\n"
	  "DefaultTime2Retain=0\nMaxOutstandingR2T=1\nDataPDUInOrder=Yes\nDataSequenceInOrder=Yes\nErrorRecoveryLevel=0\n", 0 },
	{ "open-iscsi operational", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE,
	  T("HeaderDigest=CRC32C,None\0DataDigest=None\0MaxConnections=1\0InitialR2T=No\0ImmediateData=Yes\0"
	    "MaxRecvDataSegmentLength=262144\0MaxBurstLength=16776192\0FirstBurstLength=262144\0"
	    "DefaultTime2Wait=2\0DefaultTime2Retain=0\0MaxOutstandingR2T=1\0DataPDUInOrder=Yes\0"
	    "DataSequenceInOrder=Yes\0ErrorRecoveryLevel=0\0IFMarker=No\0OFMarker=No\0"),
	  "HeaderDigest=CRC32C\nDataDigest=None\nMaxConnections=1\nInitialR2T=No\nImmediateData=Yes\n"
	  "MaxBurstLength=1048576\nFirstBurstLength=262144\nDefaultTime2Wait=2\nDefaultTime2Retain=0\n"
	  "MaxOutstandingR2T=1\nDataPDUInOrder=Yes\nDataSequenceInOrder=Yes\nErrorRecoveryLevel=0\nIFMarker=No\nOFMarker=No\n", 0 },
	{ "out of range and invalid values", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE,
	  T("MaxBurstLength=100\0MaxConnections=0\0ErrorRecoveryLevel=2\0InitialR2T=Maybe\0"
	    "MaxRecvDataSegmentLength=16777216\0DefaultTime2Wait=3601\0MaxOutstandingR2T=0x10\0DataDigest=MD5,SHA1\0"),
	  "MaxBurstLength=Reject\nMaxConnections=Reject\nErrorRecoveryLevel=0\nInitialR2T=Reject\n"
	  "MaxRecvDataSegmentLength=Reject\nDefaultTime2Wait=Reject\nMaxOutstandingR2T=8\nDataDigest=Reject\n", 0 },
	{ "unknown and vendor keys", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE,
	  T("X-com.example.Foo=1\0X#bar=2\0FooBar=3\0"),
	  "X-com.example.Foo=NotUnderstood\nX#bar=NotUnderstood\nFooBar=NotUnderstood\n", 0 },
	{ "obsolete and extension keys", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE,
	  T("OFMarkInt=2048~8192\0IFMarker=Yes\0TaskReporting=FastAbort,RFC3720\0iSCSIProtocolLevel=2\0RDMAExtensions=Yes\0"),
	  "OFMarkInt=Irrelevant\nIFMarker=No\nTaskReporting=RFC3720\niSCSIProtocolLevel=1\nRDMAExtensions=No\n", 0 },
	{ "keys only a target declares", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE,
	  T("TargetAlias=x\0TargetPortalGroupTag=3\0"), "TargetAlias=Irrelevant\nTargetPortalGroupTag=Irrelevant\n", 0 },
	{ "only CHAP offered, none configured", ISCSI_NEG_SECURITY, ISCSI_AUTH_NONE,
	  T("AuthMethod=CHAP\0"), "AuthMethod=Reject\n", 0 },
	{ "CHAP_A with MD5 among others", ISCSI_NEG_SECURITY, ISCSI_AUTH_CHAP, T("CHAP_A=7,5\0"), "CHAP_A=5\n", 0 },
	{ "CHAP_A without MD5", ISCSI_NEG_SECURITY, ISCSI_AUTH_CHAP, T("CHAP_A=7\0"), "CHAP_A=Reject\n", 0 },
	{ "CHAP_I out of range", ISCSI_NEG_SECURITY, ISCSI_AUTH_CHAP, T("CHAP_I=300\0"), NULL, ISCSI_LOGIN_AUTH_FAILED },
	{ "CHAP_R not binary", ISCSI_NEG_SECURITY, ISCSI_AUTH_CHAP, T("CHAP_N=u\0CHAP_R=hello\0"), NULL,
	  ISCSI_LOGIN_AUTH_FAILED },
	{ "security key in operational stage", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE, T("AuthMethod=None\0"), NULL,
	  ISCSI_LOGIN_INITIATOR_ERROR },
	{ "key offered twice", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE, T("MaxConnections=1\0MaxConnections=1\0"), NULL,
	  ISCSI_LOGIN_INITIATOR_ERROR },
	{ "text without its final NUL", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE, T("MaxConnections=1"), NULL,
	  ISCSI_LOGIN_INITIATOR_ERROR },
	{ "pair without =", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE, T("Garbage\0"), NULL, ISCSI_LOGIN_INITIATOR_ERROR },
	{ "key longer than 63 bytes", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE,
	  T("K234567890123456789012345678901234567890123456789012345678901234=1\0"), NULL, ISCSI_LOGIN_INITIATOR_ERROR },
	{ "bad session type", ISCSI_NEG_SECURITY, ISCSI_AUTH_NONE, T("SessionType=Bogus\0"), NULL,
	  ISCSI_LOGIN_NO_SESSION_TYPE },
	{ "SendTargets during login", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE, T("SendTargets=All\0"),
	  "SendTargets=Reject\n", 0 },
	{ "full feature phase: SendTargets, a declaration, a login key", ISCSI_NEG_FFP, ISCSI_AUTH_NONE,
	  T("SendTargets=All\0MaxRecvDataSegmentLength=65536\0MaxBurstLength=4096\0CHAP_A=5\0"),
	  "MaxBurstLength=Reject\nCHAP_A=Reject\n", 0 },
	{ "empty text", ISCSI_NEG_OPERATIONAL, ISCSI_AUTH_NONE, "", 0, "", 0 },
};

static void test_rows(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		const struct row *r = &rows[i];
		struct iscsi_params p;
		struct iscsi_textbuf out = { 0 };
		iscsi_params_defaults(&p);
		struct iscsi_neg n = { .p = &p, .stage = r->stage, .auth_allowed = r->auth };
		UNIT_CTX("row %zu: %s", i, r->name);
		int res = iscsi_negotiate(&n, r->in, r->len, &out);
		if (r->fail) {
			CHECK_INT(res, -1);
			CHECK_INT(n.fail, r->fail);
			CHECK(n.why[0] != 0);
		} else {
			CHECK_INT(res, 0);
			CHECK_STR(shown(&out), r->out);
		}
		textbuf_free(&out);
	}
	UNIT_CTX(NULL);
}

/* What the rows above leave in the parameters and result flags. */
static void test_results(void)
{
	struct iscsi_params p;
	struct iscsi_textbuf out = { 0 };
	iscsi_params_defaults(&p);
	CHECK_INT(p.max_recv_dsl, 8192);
	CHECK_INT(p.max_xmit_dsl, 8192);
	CHECK(p.initial_r2t && p.immediate_data && p.max_burst == 262144 && p.first_burst == 65536);
	struct iscsi_neg n = { .p = &p, .stage = ISCSI_NEG_SECURITY, .auth_allowed = ISCSI_AUTH_CHAP };
	UNIT_CTX("login across two PDUs");
	CHECK_INT(iscsi_negotiate(&n, T("InitiatorName=iqn.x:y\0SessionType=Discovery\0AuthMethod=None,CHAP\0"), &out), 0);
	CHECK(n.initiator_name_seen && n.session_type_seen && !n.target_name_seen && n.auth_offered);
	CHECK_INT(n.auth_chosen, ISCSI_AUTH_CHAP);
	CHECK_STR(p.initiator_name, "iqn.x:y");
	CHECK(p.discovery);
	CHECK_INT(iscsi_negotiate(&n, T("CHAP_A=5\0"), &out), 0);
	CHECK(n.chap_a_seen && n.chap_a_ok && !n.auth_offered && !n.initiator_name_seen);
	CHECK_INT(iscsi_negotiate(&n, T("CHAP_N=alice\0CHAP_R=0x00112233445566778899aabbccddeeff\0"
					"CHAP_I=7\0CHAP_C=0bAQIDBA==\0"), &out), 0);
	CHECK_STR(n.chap_n, "alice");
	CHECK_INT(n.chap_r_len, 16);
	CHECK(n.chap_r[0] == 0x00 && n.chap_r[15] == 0xff);
	CHECK_INT(n.chap_i, 7);
	CHECK_INT(n.chap_c_len, 4);
	CHECK(n.chap_c[0] == 1 && n.chap_c[3] == 4);
	UNIT_CTX("a key offered again in a later PDU");
	CHECK_INT(iscsi_negotiate(&n, T("AuthMethod=None\0"), &out), -1);
	CHECK_INT(n.fail, ISCSI_LOGIN_INITIATOR_ERROR);

	UNIT_CTX("FirstBurstLength is clamped to MaxBurstLength");
	struct iscsi_neg m = { .p = &p, .stage = ISCSI_NEG_OPERATIONAL };
	CHECK_INT(iscsi_negotiate(&m, T("MaxBurstLength=4096\0FirstBurstLength=65536\0MaxRecvDataSegmentLength=1024\0"),
				  &out), 0);
	CHECK_INT(p.max_burst, 4096);
	CHECK_INT(p.first_burst, 4096);
	CHECK_INT(p.max_xmit_dsl, 1024);
	CHECK(m.max_xmit_declared);

	UNIT_CTX("SendTargets value");
	struct iscsi_neg f = { .p = &p, .stage = ISCSI_NEG_FFP };
	CHECK_INT(iscsi_negotiate(&f, T("SendTargets=\0"), &out), 0);
	CHECK(f.send_targets);
	CHECK_STR(f.send_targets_val, "");
	UNIT_CTX(NULL);
	textbuf_free(&out);
}

static void test_text_next(void)
{
	struct iscsi_kv kv;
	size_t pos = 0;
	const char t[] = "a=1\0\0b=\0c=x=y\0";
	CHECK_INT(iscsi_text_next(t, sizeof t - 1, &pos, &kv), 1);
	CHECK(kv.klen == 1 && kv.key[0] == 'a' && kv.vlen == 1 && kv.val[0] == '1');
	CHECK_INT(iscsi_text_next(t, sizeof t - 1, &pos, &kv), 1); /* the stray NUL is skipped */
	CHECK(kv.klen == 1 && kv.key[0] == 'b' && kv.vlen == 0);
	CHECK_INT(iscsi_text_next(t, sizeof t - 1, &pos, &kv), 1);
	CHECK(kv.klen == 1 && kv.vlen == 3 && memcmp(kv.val, "x=y", 3) == 0);
	CHECK_INT(iscsi_text_next(t, sizeof t - 1, &pos, &kv), 0);
	pos = 0;
	CHECK_INT(iscsi_text_next("=1", 3, &pos, &kv), -EBADMSG);
	pos = 0;
	CHECK_INT(iscsi_text_next("a=1", 3, &pos, &kv), -EBADMSG);
	static char big[ISCSI_BIG_VALUE_MAX + 10];
	memset(big, 'v', sizeof big);
	big[0] = 'k';
	big[1] = '=';
	big[sizeof big - 1] = 0;
	pos = 0;
	CHECK_INT(iscsi_text_next(big, sizeof big, &pos, &kv), -EBADMSG);
}

static void test_values(void)
{
	uint8_t b[8];
	static const struct { const char *in; int n; uint8_t first, last; } bins[] = {
		{ "0x0a0B", 2, 0x0a, 0x0b }, { "0xabc", 2, 0x0a, 0xbc }, { "0bAQID", 3, 1, 3 }, { "0bAQI=", 2, 1, 2 },
		{ "0bAQ==", 1, 1, 1 }, { "0x", -EINVAL, 0, 0 }, { "0xzz", -EINVAL, 0, 0 }, { "12", -EINVAL, 0, 0 },
		{ "0bA=QI", -EINVAL, 0, 0 }, { "0x112233445566778899", -EMSGSIZE, 0, 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bins); i++) {
		UNIT_CTX("binary '%s'", bins[i].in);
		int n = iscsi_binary_decode(bins[i].in, strlen(bins[i].in), b, sizeof b);
		CHECK_INT(n, bins[i].n);
		if (n > 0)
			CHECK(b[0] == bins[i].first && b[n - 1] == bins[i].last);
	}
	static const struct { const char *in; int r; uint32_t v; } nums[] = {
		{ "0", 0, 0 }, { "4294967295", 0, 4294967295u }, { "4294967296", -EINVAL, 0 }, { "0x10", 0, 16 },
		{ "0xFFFFFFFF", 0, 0xffffffffu }, { "0x100000000", -EINVAL, 0 }, { "-1", -EINVAL, 0 }, { "", -EINVAL, 0 },
		{ "1a", -EINVAL, 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(nums); i++) {
		uint32_t v = 12345;
		UNIT_CTX("number '%s'", nums[i].in);
		CHECK_INT(iscsi_number(nums[i].in, strlen(nums[i].in), &v), nums[i].r);
		if (nums[i].r == 0)
			CHECK_INT(v, nums[i].v);
	}
	UNIT_CTX(NULL);
	char hex[16];
	iscsi_hex_encode((const uint8_t *)"\x01\xab\xff", 3, hex);
	CHECK_STR(hex, "0x01abff");
}

static void test_textbuf(void)
{
	struct iscsi_textbuf t = { 0 };
	textbuf_add(&t, "A", "%d", 1);
	textbuf_add(&t, "Bb", "%s", "two");
	CHECK_INT(t.len, 4 + 7);
	CHECK(memcmp(t.buf, "A=1\0Bb=two\0", 11) == 0);
	CHECK(!t.overflow);
	t.limit = 20;
	textbuf_add(&t, "C", "%s", "0123456789");
	CHECK(t.overflow);
	CHECK_INT(t.len, 11);
	textbuf_free(&t);
}

int main(void)
{
	test_rows();
	test_results();
	test_text_next();
	test_values();
	test_textbuf();
	return unit_done();
}
