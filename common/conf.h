/* conf.h — the config tree: one setting per file under a directory.
 *
 * `bootlinkd -c DIR` and `bootlinkctl -c DIR` read DIR (default
 * /etc/bootlink). A setting is a relative path (e.g. "listen/nbd") holding
 * one value; surrounding whitespace and a trailing newline are ignored.
 * Missing files take the built-in default. An invalid value makes
 * conf_load() fail with a message naming the file, the value and what is
 * allowed. Relative paths in path-valued settings are resolved against DIR.
 *
 * Every key is described once in a schema table (conf.c): name, type,
 * default, range, whether it may change while the daemon runs, and a
 * one-line help. The table drives loading, validation, documentation
 * (`bootlinkctl config --doc`) and the live reload.
 */
#ifndef BL_CONF_H
#define BL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CONF_PATH_MAX 1024
#define CONF_DEFAULT_DIR "/etc/bootlink"

struct bl_conf {
	char dir[CONF_PATH_MAX];         /* the tree itself (absolute) */
	char listen_nbd[128];            /* listen/nbd: "HOST:PORT", port 0 = any (tests); "" or "off" disables */
	char listen_http[128];           /* listen/http: iPXE script endpoint, "off" disables */
	unsigned workers;                /* workers: io_uring worker threads, 0 = one per core */
	char db_path[CONF_PATH_MAX];     /* paths/db: sqlite database (absolute after load) */
	char run_dir[CONF_PATH_MAX];     /* paths/run: runtime state tree (absolute after load) */
	char daemon_user[64];            /* daemon/user: user bootlinkd switches to after binding, "" = stay */
	unsigned events_keep_days;       /* events/keep_days: event log retention, 0 = forever (bootlinkctl) */
	int log_level;                   /* log/level: enum bl_log_level (live) */
	unsigned max_connections;        /* limits/max_connections (live) */
	unsigned max_inflight;           /* limits/inflight: requests in flight per connection (live) */
	unsigned handshake_timeout_s;    /* limits/handshake_timeout_s: NBD negotiation must finish within (live) */
	unsigned shutdown_timeout_s;     /* limits/shutdown_timeout_s: SIGTERM drains in-flight work this long */
	unsigned stats_interval_ms;      /* runtime/interval_ms: how often the runtime tree is refreshed (live) */
	unsigned cache_size_mb;          /* cache/size_mb: shared RAM block cache, 0 = off (live) */
	unsigned cache_block_kb;         /* cache/block_kb: cache block size, power of two 4..1024 */
	char overlay_dirs[CONF_PATH_MAX];/* overlay/dirs: space-separated directories */
	unsigned overlay_ram_mb;         /* overlay/ram_mb: RAM tier per ephemeral client (live) */
	unsigned overlay_block_kb;       /* overlay/block_kb: granularity of new overlays (live) */
	unsigned overlay_boot_gap_s;     /* overlay/boot_gap_s: reconnect grace before a new boot (live) */
	unsigned overlay_allow_image_disk; /* overlay/allow_image_disk: 1 = overlays may share an image's disk (live) */
	char overlay_min_free[32];       /* overlay/min_free: free-space floor for new overlays, "1G", "5%" (live) */
	unsigned cache_learn_s;          /* cache/learn_s: seconds of each connection whose reads form the boot set (live) */
	char tcp_congestion[16];         /* net/tcp_congestion: clients' sockets, "" = the system's (TCP_CA_NAME_MAX) */
	unsigned coalesce_us;            /* daemon/coalesce_us: batch pipelined requests for up to this long (live) */
	unsigned cache_prefetch;         /* cache/prefetch: 1 = read learned boot sets ahead at start (live) */
	char versions_dir[CONF_PATH_MAX];/* paths/versions: committed and flattened image versions (bootlinkctl) */
	unsigned versions_max_chain;     /* versions/max_chain: deltas before bootlinkctl suggests `image flatten` */
	char listen_iscsi[128];          /* listen/iscsi: "HOST:PORT", port 0 = any (tests); "" or "off" disables */
	char iscsi_target_address[128];  /* iscsi/target_address: portal announced and redirected to, "" = none */
	unsigned iscsi_nop_interval_s;   /* iscsi/nop_interval_s: idle seconds before a NOP-In ping, 0 = off */
	unsigned iscsi_nop_timeout_s;    /* iscsi/nop_timeout_s: seconds a ping may go unanswered */
	char iscsi_chap_user[256];       /* iscsi/chap_user: CHAP user initiators log in as, "" = no CHAP */
	char iscsi_chap_secret[256];     /* iscsi/chap_secret */
	char iscsi_chap_mutual_user[256];   /* iscsi/chap_mutual_user: our name for mutual CHAP, "" = none */
	char iscsi_chap_mutual_secret[256]; /* iscsi/chap_mutual_secret */
	/* Unknown PCs asking for their iPXE script (daemon/autoadd.c) */
	unsigned clients_autoadd;        /* clients/autoadd: 1 = register unknown MACs (PC001...) (live) */
	char clients_default_image[64];  /* clients/default_image: image new PCs are linked to (live) */
	unsigned nbd_bind_client_address; /* nbd/bind_client_address: a client's disk answers only the address it booted from (live) */
	char debug_faults[1024];         /* debug/faults: fault injection rules, bootlinkd-faults only (live) */
	/* NBD over TLS (daemon/tls.c) */
	unsigned nbd_tls;                /* nbd/tls: enum conf_tls (off, on, require) */
	char nbd_tls_psk_file[CONF_PATH_MAX]; /* nbd/tls_psk_file: "user:hexkey" lines, "" = no PSK */
	char nbd_tls_cert_dir[CONF_PATH_MAX]; /* nbd/tls_cert_dir: ca-cert.pem, server-cert.pem, server-key.pem, "" = no X.509 */
	unsigned nbd_tls_verify_peer;    /* nbd/tls_verify_peer: 1 = X.509 clients must show a certificate signed by the CA */
};

/* nbd/tls values: NOTLS, SELECTIVETLS (every export), FORCEDTLS (proto.md "TLS support"). */
enum conf_tls { CONF_TLS_OFF = 0, CONF_TLS_ON = 1, CONF_TLS_REQUIRE = 2 };

enum conf_type { CONF_STR, CONF_UINT, CONF_PATH, CONF_ADDR, CONF_LOGLEVEL, CONF_ENUM };

/* One schema entry. */
struct conf_key {
	const char *name;        /* relative file name, e.g. "listen/nbd" */
	enum conf_type type;
	const char *def;         /* default value as text */
	unsigned long long min, max; /* CONF_UINT range (inclusive) */
	bool pow2;               /* CONF_UINT: must also be a power of two */
	bool live;               /* applied while running, without restart */
	size_t offset, size;     /* field in struct bl_conf */
	const char *help;        /* one line: meaning */
	const char *note;        /* extra words on allowed values ("0 = one per core"), or NULL */
	const char *const *choices; /* CONF_ENUM: the words allowed, NULL-terminated; stored as the index (unsigned) */
};

/* The schema, for documentation and tests. */
const struct conf_key *conf_schema(size_t *count);

/* What k accepts, in words, e.g. "an integer 0..256 (0 = one per core)". */
void conf_describe(const struct conf_key *k, char *buf, size_t len);

/* Fill *c with the built-in defaults (dir = "."); never fails. */
void conf_defaults(struct bl_conf *c);

/* Load the tree at dir into *c (defaults first, then each file present).
 * Returns 0, or -errno with a one-line message in err, e.g.
 *   "/etc/bootlink/workers: 'abc' is not valid: expected an integer 0..256 (0 = one per core)".
 * Unknown files in the tree are ignored with a warning in the log. */
int conf_load(const char *dir, struct bl_conf *c, char *err, size_t errlen);

/* Copy the live-changeable fields of fresh into live, logging each change
 * ("config: log/level changed: info -> debug"); for a changed non-live
 * field log a warning that it takes effect at restart. Returns the number
 * of live fields changed. The caller serialises calls. */
int conf_apply_live(struct bl_conf *live, const struct bl_conf *fresh);

/* inotify watch on the tree (every directory in it, and directories created
 * later). Returns an fd to poll for POLLIN, or -errno. */
int conf_watch_open(const char *dir);
/* Drain pending events on fd; returns 1 if any setting file may have
 * changed, 0 if not, -errno on error. */
int conf_watch_drain(int fd, const char *dir);

/* Write every key with its current value, one "key = value  # help" line each. */
void conf_print(const struct bl_conf *c, FILE *out);

#endif
