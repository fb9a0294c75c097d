/* conf.c — the config tree: schema, loading, live reload, inotify watch.
 *
 * Every key is described once, in `schema` below; loading, validation,
 * printing and the live reload are loops over that table. A key's value is
 * read from DIR/KEY (one line; surrounding whitespace stripped), checked by
 * its type and stored at (offset, size) in struct bl_conf. conf_load()
 * fills a scratch struct and copies it out only when the whole tree is
 * valid, so a bad edit never leaves a half-loaded config.
 *
 * walk() visits the tree for three jobs: warning about files that are not
 * settings, putting an inotify watch on every directory, and finding the
 * directory an inotify watch descriptor stands for. The watch keeps no
 * state besides the inotify fd: inotify_add_watch() on a directory already
 * watched returns its existing descriptor, so wd -> directory is recomputed
 * when needed (only when a file is created). Hidden entries, editor
 * backups and symlinked directories are skipped everywhere.
 */
#include "conf.h"

#include "log.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define VALUE_MAX 4096                /* a setting file larger than this is invalid */
#define QUOTE_MAX 60                  /* bytes of a bad value shown in a message */
#define QUOTE_BUF (QUOTE_MAX * 4 + 8)
#define WALK_DEPTH 8                  /* directory levels below the tree's root */
#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF)

static const char *const tls_modes[] = { "off", "on", "require", NULL };

#define FIELD(f) .offset = offsetof(struct bl_conf, f), .size = sizeof(((struct bl_conf *)0)->f)

static const struct conf_key schema[] = {
	{ .name = "listen/nbd", .type = CONF_ADDR, .def = "0.0.0.0:10809", FIELD(listen_nbd),
	  .help = "address the NBD server listens on (port 0 = any free port)" },
	{ .name = "workers", .type = CONF_UINT, .def = "0", .min = 0, .max = 256, FIELD(workers),
	  .help = "io_uring worker threads", .note = "0 = one per core" },
	{ .name = "paths/db", .type = CONF_PATH, .def = "/var/lib/bootlink/bootlink.db", FIELD(db_path),
	  .help = "sqlite database file" },
	{ .name = "paths/run", .type = CONF_PATH, .def = "/run/bootlink", FIELD(run_dir),
	  .help = "runtime state tree (status and statistics files)" },
	{ .name = "log/level", .type = CONF_LOGLEVEL, .def = "info", .live = true, FIELD(log_level),
	  .help = "log verbosity" },
	{ .name = "limits/max_connections", .type = CONF_UINT, .def = "1024", .min = 1, .max = 1000000,
	  .live = true, FIELD(max_connections), .help = "NBD connections served at once; more are refused" },
	{ .name = "limits/inflight", .type = CONF_UINT, .def = "128", .min = 1, .max = 4096,
	  .live = true, FIELD(max_inflight), .help = "requests in flight per connection" },
	{ .name = "limits/handshake_timeout_s", .type = CONF_UINT, .def = "30", .min = 1, .max = 3600,
	  .live = true, FIELD(handshake_timeout_s), .help = "seconds a client has to finish NBD negotiation" },
	{ .name = "limits/shutdown_timeout_s", .type = CONF_UINT, .def = "10", .min = 1, .max = 600,
	  FIELD(shutdown_timeout_s), .help = "seconds SIGTERM waits for in-flight requests" },
	{ .name = "runtime/interval_ms", .type = CONF_UINT, .def = "1000", .min = 100, .max = 60000,
	  .live = true, FIELD(stats_interval_ms), .help = "milliseconds between refreshes of the runtime tree" },
	{ .name = "cache/size_mb", .type = CONF_UINT, .def = "1024", .min = 0, .max = 1048576, .live = true,
	  FIELD(cache_size_mb), .help = "MiB of RAM for the block cache shared by all images", .note = "0 = off" },
	{ .name = "cache/block_kb", .type = CONF_UINT, .def = "64", .min = 4, .max = 1024, .pow2 = true,
	  FIELD(cache_block_kb), .help = "KiB per cache block (the unit of replacement; misses read only the 4 KiB units asked for)" },
	{ .name = "daemon/user", .type = CONF_STR, .def = "", FIELD(daemon_user),
	  .help = "user bootlinkd runs as once its ports are bound, when started as root",
	  .note = "empty = stay as started; the Debian package sets bootlink" },
	{ .name = "net/tcp_congestion", .type = CONF_STR, .def = "", FIELD(tcp_congestion),
	  .help = "TCP congestion control of the connections bootlinkd accepts (NBD, iSCSI, HTTP)",
	  .note = "empty = the system's (net.ipv4.tcp_congestion_control)" },
	{ .name = "daemon/coalesce_us", .type = CONF_UINT, .def = "20", .min = 0, .max = 1000, .live = true,
	  FIELD(coalesce_us),
	  .help = "microseconds a worker may wait to gather a batch while clients keep several requests in flight",
	  .note = "0 = off; a client that waits for each reply is never delayed" },
	{ .name = "events/keep_days", .type = CONF_UINT, .def = "365", .min = 0, .max = 36500, .live = true,
	  FIELD(events_keep_days), .help = "days the event log keeps an event (older ones go at the next change)",
	  .note = "0 = forever" },
	{ .name = "overlay/dirs", .type = CONF_STR, .def = "/var/lib/bootlink/overlays", FIELD(overlay_dirs),
	  .help = "directories for overlay files, separated by spaces (relative: to the config tree)",
	  .note = "new overlays go to the one with the most free space" },
	{ .name = "overlay/ram_mb", .type = CONF_UINT, .def = "64", .min = 0, .max = 1048576, .live = true,
	  FIELD(overlay_ram_mb), .help = "MiB of RAM per ephemeral client before its writes spill to disk",
	  .note = "takes effect at each client's next boot" },
	{ .name = "overlay/block_kb", .type = CONF_UINT, .def = "4", .min = 4, .max = 1024, .pow2 = true,
	  .live = true, FIELD(overlay_block_kb),
	  .help = "KiB per overlay block (the unit a client's writes are tracked, merged and stored in)",
	  .note = "for new overlays; a persistent overlay keeps the size it was made with" },
	{ .name = "overlay/boot_gap_s", .type = CONF_UINT, .def = "30", .min = 0, .max = 86400, .live = true,
	  FIELD(overlay_boot_gap_s),
	  .help = "a client that reconnects within this many seconds of its last disconnect is the same boot" },
	{ .name = "overlay/allow_image_disk", .type = CONF_UINT, .def = "0", .min = 0, .max = 1, .live = true,
	  FIELD(overlay_allow_image_disk),
	  .help = "place overlays on the disk that holds the image when no other overlay directory is usable",
	  .note = "0 = refuse (the client cannot boot; the log says why), 1 = allow" },
	{ .name = "overlay/min_free", .type = CONF_STR, .def = "1G", .live = true, FIELD(overlay_min_free),
	  .help = "an overlay directory with less free space than this gets no new overlays",
	  .note = "bytes with K/M/G/T, or a percentage like 5%" },
	{ .name = "cache/learn_s", .type = CONF_UINT, .def = "60", .min = 0, .max = 3600, .live = true,
	  FIELD(cache_learn_s), .help = "seconds after a client connects during which its reads are learned as the boot set",
	  .note = "0 = learn nothing" },
	{ .name = "cache/prefetch", .type = CONF_UINT, .def = "1", .min = 0, .max = 1, .live = true,
	  FIELD(cache_prefetch), .help = "read each image's learned boot set into the cache when it is opened",
	  .note = "1 = on, 0 = off" },
	{ .name = "paths/versions", .type = CONF_PATH, .def = "/var/lib/bootlink/versions", .live = true,
	  FIELD(versions_dir), .help = "directory where bootlinkctl stores committed and flattened image versions" },
	{ .name = "versions/max_chain", .type = CONF_UINT, .def = "8", .min = 1, .max = 32, .live = true,
	  FIELD(versions_max_chain),
	  .help = "deltas an image version may stack before bootlinkctl suggests `image flatten`" },
	{ .name = "listen/iscsi", .type = CONF_ADDR, .def = "0.0.0.0:3260", FIELD(listen_iscsi),
	  .help = "address the iSCSI target listens on (port 0 = any free port)" },
	{ .name = "iscsi/target_address", .type = CONF_STR, .def = "", FIELD(iscsi_target_address),
	  .help = "portal HOST:PORT announced by SendTargets; normal logins arriving at another address are redirected there",
	  .note = "empty = the address each initiator connected to" },
	{ .name = "iscsi/nop_interval_s", .type = CONF_UINT, .def = "30", .min = 0, .max = 3600,
	  FIELD(iscsi_nop_interval_s), .help = "seconds an iSCSI session may be idle before the target pings it (NOP-In)",
	  .note = "0 = never; iPXE is never pinged (it cannot answer)" },
	{ .name = "iscsi/nop_timeout_s", .type = CONF_UINT, .def = "15", .min = 1, .max = 3600,
	  FIELD(iscsi_nop_timeout_s), .help = "seconds a NOP-In ping may go unanswered before the session is closed" },
	{ .name = "iscsi/chap_user", .type = CONF_STR, .def = "", FIELD(iscsi_chap_user),
	  .help = "CHAP user name initiators must log in with (discovery and normal sessions)",
	  .note = "empty = no authentication" },
	{ .name = "iscsi/chap_secret", .type = CONF_STR, .def = "", FIELD(iscsi_chap_secret),
	  .help = "CHAP secret of iscsi/chap_user" },
	{ .name = "iscsi/chap_mutual_user", .type = CONF_STR, .def = "", FIELD(iscsi_chap_mutual_user),
	  .help = "name the target answers mutual CHAP with", .note = "empty = mutual CHAP refused" },
	{ .name = "iscsi/chap_mutual_secret", .type = CONF_STR, .def = "", FIELD(iscsi_chap_mutual_secret),
	  .help = "secret the target proves for mutual CHAP" },
	{ .name = "listen/http", .type = CONF_ADDR, .def = "0.0.0.0:80", FIELD(listen_http),
	  .help = "address of the HTTP endpoint that hands iPXE its per-client scripts", .note = "off = disabled" },
	/* Unknown PCs asking for their iPXE script */
	{ .name = "clients/autoadd", .type = CONF_UINT, .def = "0", .min = 0, .max = 1, .live = true,
	  FIELD(clients_autoadd), .help = "register a PC the database does not know when it asks for its iPXE script",
	  .note = "1 = named PC001, PC002 ... and linked to clients/default_image; 0 = a screen saying how to add it" },
	{ .name = "clients/default_image", .type = CONF_STR, .def = "", .live = true, FIELD(clients_default_image),
	  .help = "image PCs registered by clients/autoadd are linked to", .note = "empty = none (link them later)" },
	/* Hardening (docs/hardening.md). */
	{ .name = "nbd/bind_client_address", .type = CONF_UINT, .def = "1", .min = 0, .max = 1, .live = true,
	  FIELD(nbd_bind_client_address),
	  .help = "a client's NBD export answers only the IP address its boot came from (its iPXE script fetch, "
		  "else the boot's first connection)", .note = "1 = on, 0 = any address" },
	{ .name = "debug/faults", .type = CONF_STR, .def = "", .live = true, FIELD(debug_faults),
	  .help = "fault injection rules for tests (daemon/faults.h); only the bootlinkd-faults build obeys them",
	  .note = "empty = none" },
	/* NBD over TLS (daemon/tls.c, docs/tls.md) */
	{ .name = "nbd/tls", .type = CONF_ENUM, .def = "off", .choices = tls_modes, FIELD(nbd_tls),
	  .help = "TLS for NBD clients (NBD_OPT_STARTTLS)",
	  .note = "off = refused; on = at the client's choice; require = every option before STARTTLS is refused" },
	{ .name = "nbd/tls_psk_file", .type = CONF_PATH, .def = "", FIELD(nbd_tls_psk_file),
	  .help = "pre-shared keys NBD clients may use, one 'username:hexkey' line each (psktool's format)",
	  .note = "empty = no PSK; read once at start, before the daemon drops root" },
	{ .name = "nbd/tls_cert_dir", .type = CONF_PATH, .def = "", FIELD(nbd_tls_cert_dir),
	  .help = "directory with server-cert.pem, server-key.pem and (for nbd/tls_verify_peer) ca-cert.pem",
	  .note = "empty = no X.509 certificate; read once at start" },
	{ .name = "nbd/tls_verify_peer", .type = CONF_UINT, .def = "0", .min = 0, .max = 1, FIELD(nbd_tls_verify_peer),
	  .help = "X.509 clients must present a certificate signed by ca-cert.pem of nbd/tls_cert_dir",
	  .note = "0 = no client certificate asked for, 1 = required" },
};

/* The schema table (conf.h). */
const struct conf_key *conf_schema(size_t *count)
{
	*count = ARRAY_SIZE(schema);
	return schema;
}

/* The schema entry named name, or NULL. */
static const struct conf_key *schema_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(schema); i++)
		if (strcmp(schema[i].name, name) == 0)
			return &schema[i];
	return NULL;
}

/* ---- messages ---------------------------------------------------------- */

/* Format a message into err (if any) and return rc. */
__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* Allowed values in words, from the key's type, range and note (conf.h). */
void conf_describe(const struct conf_key *k, char *buf, size_t len)
{
	switch (k->type) {
	case CONF_UINT:
		snprintf(buf, len, "%s %llu..%llu%s%s%s", k->pow2 ? "a power of two" : "an integer", k->min, k->max,
			 k->note ? " (" : "", k->note ? k->note : "", k->note ? ")" : "");
		break;
	case CONF_ADDR:
		snprintf(buf, len, "HOST:PORT, [IPV6]:PORT, PORT or off");
		break;
	case CONF_LOGLEVEL:
		snprintf(buf, len, "one of error, warn, info, debug");
		break;
	case CONF_ENUM: {
		size_t o = (size_t)snprintf(buf, len, "one of");
		for (size_t i = 0; k->choices[i] && o < len; i++)
			o += (size_t)snprintf(buf + o, len - o, "%s %s", i ? "," : "", k->choices[i]);
		if (k->note && o < len)
			snprintf(buf + o, len - o, " (%s)", k->note);
		break;
	}
	case CONF_PATH:
		snprintf(buf, len, "a path (absolute, or relative to the config directory) of at most %zu bytes",
			 k->size - 1);
		break;
	case CONF_STR:
		snprintf(buf, len, "one line of at most %zu bytes", k->size - 1);
		break;
	}
}

/* One byte of a value as shown in a message: printable ASCII as is,
 * the rest escaped C-style. Returns the length written to out. */
static size_t esc_byte(unsigned char ch, char out[5])
{
	const char *e = ch == '\n' ? "\\n" : ch == '\r' ? "\\r" : ch == '\t' ? "\\t"
		      : ch == '\\' ? "\\\\" : ch == '\'' ? "\\'" : NULL;
	if (e) {
		memcpy(out, e, 3);
		return 2;
	}
	if (ch >= 0x20 && ch < 0x7f) {
		out[0] = (char)ch;
		return 1;
	}
	snprintf(out, 5, "\\x%02x", ch);
	return 4;
}

/* Quote n bytes of v for a message into out (QUOTE_BUF bytes): escaped,
 * and cut after QUOTE_MAX bytes with "...". */
static void quote(const char *v, size_t n, char out[QUOTE_BUF])
{
	size_t o = 0;
	char e[5];
	for (size_t i = 0; i < n; i++) {
		if (i == QUOTE_MAX) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		size_t el = esc_byte((unsigned char)v[i], e);
		memcpy(out + o, e, el);
		o += el;
	}
	out[o] = 0;
}

/* "PATH: 'VALUE' is not valid: [WHY; ]expected ALLOWED" into err; -EINVAL. */
static int invalid(char *err, size_t errlen, const char *path, const struct conf_key *k,
		   const char *v, size_t n, const char *why)
{
	char q[QUOTE_BUF], a[256];
	quote(v, n, q);
	conf_describe(k, a, sizeof a);
	return fail(err, errlen, -EINVAL, "%s: '%s' is not valid: %s%sexpected %s", path, q,
		    why ? why : "", why ? "; " : "", a);
}

/* ---- walking the tree -------------------------------------------------- */

enum walk_kind { W_FILE, W_DIR, W_OTHER };
struct walk_ent {
	const char *path;     /* absolute (or as the root was given) */
	const char *rel;      /* relative to the root: a key name for a setting */
	enum walk_kind kind;  /* W_FILE: regular file or symlink to one */
};
typedef int (*walk_fn)(const struct walk_ent *e, void *arg);

/* s ends with suffix. */
static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Names that are never settings: hidden files, editor backups, leftovers
 * of package managers and of write_small_file(), and other programs'
 * configuration kept beside the tree (*.conf: dnsmasq.conf, written by
 * `bootlinkctl pxe-config`). */
static bool name_ignored(const char *n)
{
	size_t l = strlen(n);
	return l == 0 || n[0] == '.' || n[l - 1] == '~' || (n[0] == '#' && n[l - 1] == '#') ||
	       has_suffix(n, ".tmp") || has_suffix(n, ".bak") || has_suffix(n, ".orig") || has_suffix(n, ".conf") ||
	       has_suffix(n, ".swp") || strstr(n, ".dpkg-") || strstr(n, ".ucf-");
}

/* What a directory entry is; symlinks count as files only if they lead to one. */
static enum walk_kind entry_kind(int dfd, const struct dirent *de)
{
	struct stat st;
	if (de->d_type == DT_DIR)
		return W_DIR;
	if (de->d_type == DT_REG)
		return W_FILE;
	if (de->d_type != DT_UNKNOWN && de->d_type != DT_LNK)
		return W_OTHER;
	if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return W_OTHER;
	if (S_ISDIR(st.st_mode))
		return W_DIR;
	if (S_ISLNK(st.st_mode) && fstatat(dfd, de->d_name, &st, 0) < 0)
		return W_OTHER;
	return S_ISREG(st.st_mode) ? W_FILE : W_OTHER;
}

static int walk(const char *root, const char *rel, int depth, walk_fn fn, void *arg);

/* True if some key lives under top-level directory name ("listen" ...).
 * Other top-level directories are data kept next to the settings (a test's
 * database, runtime tree or overlays): not walked, not watched. */
static bool namespace_known(const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < ARRAY_SIZE(schema); i++)
		if (strncmp(schema[i].name, name, n) == 0 && schema[i].name[n] == '/')
			return true;
	return false;
}

/* Report one entry of directory dpath (rel from root), descend into it if a directory. */
static int walk_entry(DIR *d, const struct dirent *de, const char *root, const char *dpath,
		      const char *rel, int depth, walk_fn fn, void *arg)
{
	char path[CONF_PATH_MAX], sub[CONF_PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s", dpath, de->d_name) >= (int)sizeof path ||
	    snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= (int)sizeof sub)
		return 0;
	struct walk_ent e = { .path = path, .rel = sub, .kind = entry_kind(dirfd(d), de) };
	if (e.kind == W_DIR && depth == 0 && !namespace_known(de->d_name))
		return 0;
	int r = fn(&e, arg);
	if (r == 0 && e.kind == W_DIR && depth < WALK_DEPTH)
		r = walk(root, sub, depth + 1, fn, arg);
	return r;
}

/* Call fn for every entry below root/rel (directories before their content),
 * skipping ignored names. Stops at the first nonzero fn() and returns it. */
static int walk(const char *root, const char *rel, int depth, walk_fn fn, void *arg)
{
	char dpath[CONF_PATH_MAX];
	if (snprintf(dpath, sizeof dpath, "%s%s%s", root, *rel ? "/" : "", rel) >= (int)sizeof dpath)
		return 0;
	DIR *d = opendir(dpath);
	if (!d)
		return 0;
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d)))
		if (!name_ignored(de->d_name))
			r = walk_entry(d, de, root, dpath, rel, depth, fn, arg);
	closedir(d);
	return r;
}

/* ---- unknown files ----------------------------------------------------- */

/* Edit distance between two short strings (SIZE_MAX if either is long). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[64];
	if (la >= ARRAY_SIZE(row) || lb >= ARRAY_SIZE(row))
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			row[j] = MIN(diag + (a[i - 1] != b[j - 1]), MIN(up, row[j - 1]) + 1);
			diag = up;
		}
	}
	return row[lb];
}

/* The last component of a slash-separated name. */
static const char *base_name(const char *s)
{
	const char *b = strrchr(s, '/');
	return b ? b + 1 : s;
}

/* The key an unknown name was probably meant to be: same last component,
 * or at most two typos away. NULL if none. */
static const struct conf_key *nearest_key(const char *rel)
{
	const struct conf_key *best = NULL;
	size_t bestd = 3;
	for (size_t i = 0; i < ARRAY_SIZE(schema); i++) {
		size_t d = strcmp(base_name(rel), base_name(schema[i].name)) == 0 ? 0
			 : edit_distance(rel, schema[i].name);
		if (d < bestd) {
			bestd = d;
			best = &schema[i];
		}
	}
	return best;
}

/* walk() callback: warn about a file that is no setting (but the README
 * `make install` puts at the top of the tree). */
static int warn_unknown_cb(const struct walk_ent *e, void *arg)
{
	(void)arg;
	if (e->kind == W_DIR || schema_find(e->rel) || strcmp(e->rel, "README") == 0)
		return 0;
	const struct conf_key *k = nearest_key(e->rel);
	if (k)
		log_warn("config: %s: unknown setting, ignored (did you mean %s?)", e->path, k->name);
	else
		log_warn("config: %s: unknown setting, ignored", e->path);
	return 0;
}

/* ---- reading and checking one setting ---------------------------------- */

/* read() until len bytes or end of file. Returns the length or -errno. */
static ssize_t read_all(int fd, char *buf, size_t len)
{
	size_t n = 0;
	while (n < len) {
		ssize_t r = read(fd, buf + n, len - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	return (ssize_t)n;
}

/* open() of a setting failed with e: a missing file (or a parent that is
 * not a directory) means "use the default" (0); anything else is an error. */
static int open_error(const char *path, int e, char *err, size_t errlen)
{
	struct stat st;
	if (e == ENOENT && lstat(path, &st) == 0)
		return fail(err, errlen, -ENOENT, "%s: is a symlink to nothing", path);
	if (e == ENOENT || e == ENOTDIR)
		return 0;
	return fail(err, errlen, -e, "%s: cannot open: %s", path, strerror(e));
}

/* Read the setting file path into raw (VALUE_MAX + 2 bytes), *len = bytes
 * read. Returns 1 if present, 0 if absent, or -errno with a message. */
static int read_setting(const char *path, char *raw, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return open_error(path, errno, err, errlen);
	struct stat st;
	ssize_t n;
	if (fstat(fd, &st) < 0)
		n = fail(err, errlen, -errno, "%s: cannot stat: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		n = fail(err, errlen, -EINVAL, "%s: is not a regular file (a setting is a file holding one value)", path);
	else if ((n = read_all(fd, raw, VALUE_MAX + 1)) < 0)
		fail(err, errlen, (int)n, "%s: cannot read: %s", path, strerror((int)-n));
	else if (n > VALUE_MAX)
		n = fail(err, errlen, -EFBIG, "%s: file is larger than %d bytes (a setting holds one short value)",
			 path, VALUE_MAX);
	close(fd);
	if (n < 0)
		return (int)n;
	raw[n] = 0;
	*len = (size_t)n;
	return 1;
}

/* Strip surrounding whitespace from raw (n bytes) and check it is one line of
 * text. Sets *val to the value (NUL-terminated in raw). 0 or -EINVAL with a message. */
static int clean_value(char *raw, size_t n, const char *path, const struct conf_key *k,
		       char **val, char *err, size_t errlen)
{
	char *s = raw, *e = raw + n;
	while (s < e && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	if (s == e) {
		char a[256];
		conf_describe(k, a, sizeof a);
		return fail(err, errlen, -EINVAL, "%s: file is empty: expected %s (delete the file to use the default, %s)",
			    path, a, k->def);
	}
	*e = 0;
	for (const char *p = s; p < e; p++) {
		if (*p == '\n' || *p == '\r')
			return invalid(err, errlen, path, k, s, (size_t)(e - s), "more than one line");
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return invalid(err, errlen, path, k, s, (size_t)(e - s), "contains control characters");
	}
	*val = s;
	return 0;
}

/* ---- storing a value --------------------------------------------------- */

/* Copy text v into a char[size] field. */
static int store_str(char *f, size_t size, const char *v, const char **why)
{
	if (strlen(v) >= size) {
		*why = "too long";
		return -EINVAL;
	}
	strcpy(f, v);
	return 0;
}

/* A path: absolute as is, relative ones (leading "./" dropped) joined to dir. */
static int store_path(char *f, size_t size, const char *dir, const char *v, const char **why)
{
	char buf[CONF_PATH_MAX * 2];
	if (!v[0]) {
		/* Only a default can be empty (a setting file never is): "none". */
		f[0] = 0;
		return 0;
	}
	if (v[0] == '/')
		return store_str(f, size, v, why);
	while (v[0] == '.' && v[1] == '/')
		for (v += 2; *v == '/'; v++)
			;
	if (!*v) {
		*why = "names no file";
		return -EINVAL;
	}
	snprintf(buf, sizeof buf, "%s/%s", dir, v);
	return store_str(f, size, buf, why);
}

/* An unsigned field within [k->min, k->max]. */
static int store_uint(void *f, const struct conf_key *k, const char *v, const char **why)
{
	uint64_t x;
	if (k->size != sizeof(unsigned) || k->max > UINT_MAX) {
		*why = "internal error: bad schema entry";
		return -EINVAL;
	}
	if (parse_u64(v, k->min, k->max, &x) < 0 || (k->pow2 && (x & (x - 1))))
		return -EINVAL;
	*(unsigned *)f = (unsigned)x;
	return 0;
}

/* One of k->choices, stored as its index. */
static int store_enum(void *f, const struct conf_key *k, const char *v)
{
	for (unsigned i = 0; k->choices[i]; i++) {
		if (strcmp(v, k->choices[i]) == 0) {
			*(unsigned *)f = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Check text v against k's type and store it into c (relative paths are
 * resolved against c->dir). 0, or -EINVAL with *why a short reason or NULL. */
static int store(struct bl_conf *c, const struct conf_key *k, const char *v, const char **why)
{
	char *f = (char *)c + k->offset;
	struct sockaddr_storage ss;
	socklen_t sl;
	int level;
	*why = NULL;
	switch (k->type) {
	case CONF_UINT:
		return store_uint(f, k, v, why);
	case CONF_LOGLEVEL:
		if ((level = log_level_parse(v)) < 0)
			return -EINVAL;
		*(int *)f = level;
		return 0;
	case CONF_ADDR:
		if (strcmp(v, "off") != 0 && addr_parse(v, &ss, &sl) < 0)
			return -EINVAL;
		return store_str(f, k->size, v, why);
	case CONF_PATH:
		return store_path(f, k->size, c->dir, v, why);
	case CONF_STR:
		return store_str(f, k->size, v, why);
	case CONF_ENUM:
		return store_enum(f, k, v);
	}
	return -EINVAL;
}

/* Read DIR/KEY into c if the file exists. 0 or -errno with a message. */
static int load_key(struct bl_conf *c, const struct conf_key *k, char *err, size_t errlen)
{
	char path[CONF_PATH_MAX + 64], raw[VALUE_MAX + 2], *v = raw;
	const char *why;
	size_t n = 0;
	snprintf(path, sizeof path, "%s/%s", c->dir, k->name);
	int r = read_setting(path, raw, &n, err, errlen);
	if (r <= 0)
		return r;
	if ((r = clean_value(raw, n, path, k, &v, err, errlen)) < 0)
		return r;
	if (store(c, k, v, &why) < 0)
		return invalid(err, errlen, path, k, v, strlen(v), why);
	return 0;
}

/* ---- loading the tree -------------------------------------------------- */

/* Every key at its default, dir "." (conf.h). */
void conf_defaults(struct bl_conf *c)
{
	const char *why;
	memset(c, 0, sizeof *c);
	strcpy(c->dir, ".");
	/* The defaults are valid (test_conf checks each one). */
	for (size_t i = 0; i < ARRAY_SIZE(schema); i++)
		(void)store(c, &schema[i], schema[i].def, &why);
}

/* dir names CONF_DEFAULT_DIR (trailing slashes aside). */
static bool is_default_dir(const char *dir)
{
	size_t n = strlen(dir), m = strlen(CONF_DEFAULT_DIR);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	return n == m && memcmp(dir, CONF_DEFAULT_DIR, m) == 0;
}

/* Make the tree's directory absolute into out. Returns 1 if it exists, 0 if it
 * is the default directory and missing (defaults apply), or -errno with a message. */
static int resolve_dir(const char *dir, char out[CONF_PATH_MAX], char *err, size_t errlen)
{
	char *abs = realpath(dir, NULL);
	struct stat st;
	int r = 1;
	if (!abs) {
		int e = errno;
		if (e == ENOENT && is_default_dir(dir)) {
			snprintf(out, CONF_PATH_MAX, "%s", CONF_DEFAULT_DIR);
			return 0;
		}
		if (e == ENOENT)
			return fail(err, errlen, -ENOENT, "config directory %s does not exist", dir);
		return fail(err, errlen, -e, "config directory %s: %s", dir, strerror(e));
	}
	if (stat(abs, &st) < 0 || !S_ISDIR(st.st_mode))
		r = fail(err, errlen, -ENOTDIR, "config directory %s is not a directory", dir);
	else if (strlen(abs) >= CONF_PATH_MAX)
		r = fail(err, errlen, -ENAMETOOLONG, "config directory %s: path too long", dir);
	else
		strcpy(out, abs);
	free(abs);
	return r;
}

/* Defaults, then every setting file present, into a scratch copy; *c is
 * written only on success (conf.h). */
int conf_load(const char *dir, struct bl_conf *c, char *err, size_t errlen)
{
	struct bl_conf t;
	if (!dir)
		dir = CONF_DEFAULT_DIR;
	fail(err, errlen, 0, "%s", "");
	conf_defaults(&t);
	int r = resolve_dir(dir, t.dir, err, errlen);
	if (r < 0)
		return r;
	if (r > 0) {
		walk(t.dir, "", 0, warn_unknown_cb, NULL);
		for (size_t i = 0; i < ARRAY_SIZE(schema); i++)
			if ((r = load_key(&t, &schema[i], err, errlen)) < 0)
				return r;
	}
	*c = t;
	return 0;
}

/* ---- live changes and printing ----------------------------------------- */

/* Text of k's value in c, as a setting file would hold it. */
static void format_value(const struct bl_conf *c, const struct conf_key *k, char *buf, size_t len)
{
	const char *f = (const char *)c + k->offset;
	switch (k->type) {
	case CONF_UINT:
		snprintf(buf, len, "%u", *(const unsigned *)f);
		break;
	case CONF_LOGLEVEL:
		snprintf(buf, len, "%s", log_level_name(*(const int *)f));
		break;
	case CONF_ENUM:
		snprintf(buf, len, "%s", k->choices[*(const unsigned *)f]);
		break;
	default:
		snprintf(buf, len, "%s", f);
		break;
	}
}

/* Copy k's field from src to dst; numbers with relaxed atomic stores, as
 * other threads read them without a lock. log/level also sets bl_log_level. */
static void copy_field(struct bl_conf *dst, const struct bl_conf *src, const struct conf_key *k)
{
	char *d = (char *)dst + k->offset;
	const char *s = (const char *)src + k->offset;
	if (k->type == CONF_UINT || k->type == CONF_ENUM) {
		__atomic_store_n((unsigned *)d, *(const unsigned *)s, __ATOMIC_RELAXED);
	} else if (k->type == CONF_LOGLEVEL) {
		int level = *(const int *)s;
		__atomic_store_n((int *)d, level, __ATOMIC_RELAXED);
		__atomic_store_n(&bl_log_level, level, __ATOMIC_RELAXED);
	} else {
		memcpy(d, s, k->size);
	}
}

/* Copy changed live keys, warn about changed restart keys (conf.h). */
int conf_apply_live(struct bl_conf *live, const struct bl_conf *fresh)
{
	char was[CONF_PATH_MAX], now[CONF_PATH_MAX];
	int changed = 0;
	for (size_t i = 0; i < ARRAY_SIZE(schema); i++) {
		const struct conf_key *k = &schema[i];
		format_value(live, k, was, sizeof was);
		format_value(fresh, k, now, sizeof now);
		if (strcmp(was, now) == 0)
			continue;
		if (!k->live) {
			log_warn("config: %s changed: %s -> %s; takes effect at restart", k->name, was, now);
			continue;
		}
		/* A quieter log/level would drop the line about itself: log it first. */
		bool quieter = k->type == CONF_LOGLEVEL && fresh->log_level < live->log_level;
		if (quieter)
			log_info("config: %s changed: %s -> %s", k->name, was, now);
		copy_field(live, fresh, k);
		if (!quieter)
			log_info("config: %s changed: %s -> %s", k->name, was, now);
		changed++;
	}
	return changed;
}

/* "key = value  # help" for every key (conf.h). */
void conf_print(const struct bl_conf *c, FILE *out)
{
	char v[CONF_PATH_MAX];
	for (size_t i = 0; i < ARRAY_SIZE(schema); i++) {
		format_value(c, &schema[i], v, sizeof v);
		fprintf(out, "%s = %s  # %s\n", schema[i].name, v, schema[i].help);
	}
}

/* ---- inotify ----------------------------------------------------------- */

/* Watch one directory; returns its watch descriptor (the existing one if
 * already watched) or -1 with errno. */
static int add_watch(int fd, const char *path, uint32_t flags)
{
	return inotify_add_watch(fd, path, WATCH_MASK | IN_ONLYDIR | flags);
}

/* walk() callback: watch a directory of the tree. */
static int watch_dir_cb(const struct walk_ent *e, void *arg)
{
	if (e->kind == W_DIR && add_watch(*(int *)arg, e->path, IN_DONT_FOLLOW) < 0)
		log_warn("config: cannot watch %s: %s", e->path, strerror(errno));
	return 0;
}

/* Watch the tree's root and every directory below it (again: existing
 * watches stay as they are). 0 or -errno if the root cannot be watched. */
static int watch_tree(int fd, const char *dir)
{
	if (add_watch(fd, dir, 0) < 0)
		return -errno;
	walk(dir, "", 0, watch_dir_cb, &fd);
	return 0;
}

/* A non-blocking inotify fd watching every directory of the tree (conf.h). */
int conf_watch_open(const char *dir)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = watch_tree(fd, dir);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

struct find_wd {
	int fd, wd;
	char path[CONF_PATH_MAX];
};

/* walk() callback: stop at the directory whose watch descriptor is f->wd. */
static int find_wd_cb(const struct walk_ent *e, void *arg)
{
	struct find_wd *f = arg;
	if (e->kind != W_DIR || add_watch(f->fd, e->path, IN_DONT_FOLLOW) != f->wd)
		return 0;
	snprintf(f->path, sizeof f->path, "%s", e->path);
	return 1;
}

/* A non-directory created in the tree matters at once only if it is already
 * complete: a symlink, a hard link, anything non-empty. A new empty file is
 * still being written, and its IN_CLOSE_WRITE follows. */
static int created_relevant(int fd, const char *dir, const struct inotify_event *ev)
{
	struct find_wd f = { .fd = fd, .wd = ev->wd };
	char path[CONF_PATH_MAX * 2];
	struct stat st;
	if (add_watch(fd, dir, 0) == ev->wd)
		snprintf(f.path, sizeof f.path, "%s", dir);
	else if (walk(dir, "", 0, find_wd_cb, &f) != 1)
		return 1;  /* directory unknown: reload to be safe */
	snprintf(path, sizeof path, "%s/%s", f.path, ev->name);
	if (lstat(path, &st) < 0)
		return 0;  /* gone again: its delete or rename event follows */
	return !S_ISREG(st.st_mode) || st.st_size > 0;
}

/* Whether one event may change a setting; watches new directories. */
static int event_relevant(int fd, const char *dir, const struct inotify_event *ev)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		watch_tree(fd, dir);
		return 1;
	}
	if (ev->mask & IN_DELETE_SELF)
		return 1;
	if ((ev->mask & IN_IGNORED) || ev->len == 0 || name_ignored(ev->name))
		return 0;
	if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
		watch_tree(fd, dir);
		return 1;
	}
	if ((ev->mask & IN_CREATE) && !(ev->mask & IN_ISDIR))
		return created_relevant(fd, dir, ev);
	return 1;
}

/* Read every queued event; 1 if any may change a setting (conf.h). */
int conf_watch_drain(int fd, const char *dir)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int relevant = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return relevant;
		if (n < 0)
			return -errno;
		if (n == 0)
			return relevant;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;
			relevant |= event_relevant(fd, dir, ev);
			p += sizeof *ev + ev->len;
		}
	}
}
