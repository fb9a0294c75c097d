/* iscsi_text.h — key=value text (RFC 7143 §6) and the negotiation table (§13).
 *
 * Login and Text PDUs carry "key=value\0" pairs. iscsi_text_next() walks
 * them with every length capped; iscsi_negotiate() answers the keys an
 * initiator offers, one table row per standard key (type, range, RFC
 * default, what we support, where the result goes in struct
 * iscsi_params), appends the answers to an output text and records what
 * the login code must act on (AuthMethod chosen, CHAP values, names,
 * SendTargets). Unknown keys are answered NotUnderstood, invalid values
 * Reject; a malformed text, a key offered twice or a key used in the
 * wrong stage fails the negotiation with a login status. Pure: no I/O
 * (tests/unit/test_iscsi_text.c).
 */
#ifndef BL_ISCSI_TEXT_H
#define BL_ISCSI_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISCSI_KEY_MAX        63      /* bytes of a key name (§6.1) */
#define ISCSI_VALUE_MAX      255     /* bytes of a simple value (§6.1) */
#define ISCSI_BIG_VALUE_MAX  8192    /* bytes of an encoded binary value (CHAP_C, CHAP_R) */
#define ISCSI_TEXT_MAX       65536   /* bytes of one login or text request, continuation PDUs included */
#define ISCSI_NAME_MAX       223     /* bytes of an iSCSI name (§4.2.7.1) */
#define ISCSI_CHAP_BIN_MAX   1024    /* bytes of a decoded CHAP challenge or response */

/* Limits we offer (our side of each negotiation). */
#define ISCSI_OUR_MAX_RECV_DSL  (256u * 1024)   /* MaxRecvDataSegmentLength we declare */
#define ISCSI_OUR_MAX_BURST     (1u << 20)      /* MaxBurstLength */
#define ISCSI_OUR_FIRST_BURST   (256u * 1024)   /* FirstBurstLength */
#define ISCSI_OUR_MAX_R2T       8               /* MaxOutstandingR2T */

/* One key=value pair, pointing into the text (not NUL-terminated views). */
struct iscsi_kv {
	const char *key;
	size_t klen;
	const char *val;
	size_t vlen;
};

/* The next pair of text[0, len) starting at *pos. Returns 1 (kv filled,
 * *pos advanced), 0 (end of text) or -EBADMSG: no '=', an empty or too
 * long key, a too long value, or a pair without its NUL terminator. */
int iscsi_text_next(const char *text, size_t len, size_t *pos, struct iscsi_kv *kv);

/* Output text under construction, capped at ISCSI_TEXT_MAX bytes. */
struct iscsi_textbuf {
	char *buf;
	size_t len, cap;
	bool overflow;               /* something did not fit (or malloc failed) */
	size_t limit;                /* cap on len; 0 = ISCSI_TEXT_MAX */
};
/* Append "key=value\0" (value from a printf format). */
void textbuf_add(struct iscsi_textbuf *t, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void textbuf_free(struct iscsi_textbuf *t);

/* Operational parameters of a session, as negotiated (RFC defaults until then). */
struct iscsi_params {
	bool header_digest;          /* HeaderDigest=CRC32C */
	bool data_digest;            /* DataDigest=CRC32C */
	uint32_t max_connections;    /* MaxConnections */
	bool initial_r2t;            /* InitialR2T */
	bool immediate_data;         /* ImmediateData */
	uint32_t max_recv_dsl;       /* our MaxRecvDataSegmentLength: the largest data segment we accept */
	uint32_t max_xmit_dsl;       /* the initiator's MaxRecvDataSegmentLength: the largest we send */
	uint32_t max_burst;          /* MaxBurstLength */
	uint32_t first_burst;        /* FirstBurstLength */
	uint32_t time2wait;          /* DefaultTime2Wait */
	uint32_t time2retain;        /* DefaultTime2Retain */
	uint32_t max_r2t;            /* MaxOutstandingR2T */
	bool data_pdu_in_order;      /* DataPDUInOrder */
	bool data_seq_in_order;      /* DataSequenceInOrder */
	uint32_t erl;                /* ErrorRecoveryLevel */
	uint32_t protocol_level;     /* iSCSIProtocolLevel (RFC 7144) */
	bool ofmarker, ifmarker;     /* obsolete markers: always No */
	bool rdma;                   /* RDMAExtensions: always No */
	bool discovery;              /* SessionType=Discovery */
	char initiator_name[ISCSI_NAME_MAX + 1];  /* InitiatorName */
	char initiator_alias[ISCSI_VALUE_MAX + 1];/* InitiatorAlias */
	char target_name[ISCSI_NAME_MAX + 1];     /* TargetName */
};

/* The RFC defaults (and our MaxRecvDataSegmentLength of 8192 until declared). */
void iscsi_params_defaults(struct iscsi_params *p);

/* Where a negotiation happens. */
enum iscsi_neg_stage {
	ISCSI_NEG_SECURITY,          /* login, CSG 0: security and operational keys */
	ISCSI_NEG_OPERATIONAL,       /* login, CSG 1: operational keys */
	ISCSI_NEG_FFP,               /* Text request in full feature phase */
};

/* AuthMethods we accept (bit mask). */
#define ISCSI_AUTH_NONE 1u
#define ISCSI_AUTH_CHAP 2u

/* One negotiation: inputs, state carried across the PDUs of one login,
 * and what the caller acts on. */
struct iscsi_neg {
	struct iscsi_params *p;      /* updated in place */
	enum iscsi_neg_stage stage;
	unsigned auth_allowed;       /* ISCSI_AUTH_* the target accepts */
	uint64_t seen;               /* table rows already offered in this login */
	/* results */
	unsigned auth_chosen;        /* ISCSI_AUTH_* agreed on, 0 if AuthMethod not offered or refused */
	bool auth_offered;           /* AuthMethod was offered (in this call) */
	bool session_type_seen;      /* SessionType was declared (in this call) */
	bool target_name_seen;       /* TargetName was declared (in this call) */
	bool initiator_name_seen;    /* InitiatorName was declared (in this call) */
	bool chap_a_seen, chap_a_ok; /* CHAP_A offered, and with MD5 (5) in the list */
	bool chap_n_seen, chap_r_seen, chap_i_seen, chap_c_seen;
	char chap_n[ISCSI_VALUE_MAX + 1];        /* CHAP_N: the initiator's user name */
	uint8_t chap_r[ISCSI_CHAP_BIN_MAX];      /* CHAP_R, decoded */
	size_t chap_r_len;
	int chap_i;                              /* CHAP_I (mutual), 0..255 */
	uint8_t chap_c[ISCSI_CHAP_BIN_MAX];      /* CHAP_C (mutual), decoded */
	size_t chap_c_len;
	bool send_targets;                       /* SendTargets was asked (FFP) */
	char send_targets_val[ISCSI_VALUE_MAX + 1];
	bool max_xmit_declared;                  /* MaxRecvDataSegmentLength was declared */
	/* failure */
	uint16_t fail;               /* enum iscsi_login_status to end the login with, 0 = none */
	char why[200];               /* for the log */
};

/* Answer every key of text[0, len) into out. Returns 0, or -1 with
 * n->fail and n->why set (malformed text, duplicate key, key in the wrong
 * stage). Per-call result flags are cleared first; n->seen accumulates. */
int iscsi_negotiate(struct iscsi_neg *n, const char *text, size_t len, struct iscsi_textbuf *out);

/* Decode a binary value ("0x" hex or "0b" base64, §6.1) into out. Returns
 * the byte count, or -EINVAL (bad encoding) / -EMSGSIZE (more than max). */
int iscsi_binary_decode(const char *s, size_t len, uint8_t *out, size_t max);
/* Encode bytes as "0x..." hex into out (2 * n + 3 bytes). */
void iscsi_hex_encode(const uint8_t *in, size_t n, char *out);
/* Strict number: decimal or 0x hex, < 2^32. 0 or -EINVAL. */
int iscsi_number(const char *s, size_t len, uint32_t *out);

#endif
