/* test_conf.c — unit tests for the config tree (common/conf.c).
 *
 * Each test builds its own small tree under the scratch directory and loads
 * it. Values are checked through conf_print() ("key = value  # help"), so
 * one table covers every key and type. Log lines (unknown files, live
 * changes) are checked by capturing stderr into a file. The inotify test
 * never sleeps: it changes the tree, then poll()s the fd with a bounded
 * timeout (events are queued by the time the syscall returns).
 * Run: build/test_conf (exit 0 = all passed).
 */
#include "conf.h"
#include "log.h"
#include "util.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>

static const char *tmp;     /* scratch directory (realpath'd) */
static char err[512];

/* ---- helpers ----------------------------------------------------------- */

/* A fresh, empty tree directory tmp/name; returns its path (static buffer). */
static const char *tree(const char *name)
{
	static char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", tmp, name);
	if (mkdir_p(p, 0755) < 0) {
		perror(p);
		exit(2);
	}
	return p;
}

/* Write len bytes (strlen if len is 0) to dir/key, making parent directories. */
static void put_len(const char *dir, const char *key, const char *data, size_t len)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof p, "%s/%s", dir, key);
	*strrchr(p, '/') = 0;
	mkdir_p(p, 0755);
	snprintf(p, sizeof p, "%s/%s", dir, key);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t w = fd < 0 ? -1 : write(fd, data, len ? len : strlen(data));
	CHECK_MSG(fd >= 0 && w == (ssize_t)(len ? len : strlen(data)), "writing %s", p);
	if (fd >= 0)
		close(fd);
}

/* Write a text file dir/key. */
static void put(const char *dir, const char *key, const char *data)
{
	put_len(dir, key, data, 0);
}

/* conf_print() output of c (static buffer). */
static const char *printed(const struct bl_conf *c)
{
	static char buf[8192];
	FILE *f = fmemopen(buf, sizeof buf, "w");
	conf_print(c, f);
	fclose(f);
	return buf;
}

/* a and b print the same. */
static bool same_print(const struct bl_conf *a, const struct bl_conf *b)
{
	static char pa[8192];
	snprintf(pa, sizeof pa, "%s", printed(a));
	return strcmp(pa, printed(b)) == 0;
}

/* The value of key as conf_print() shows it (static buffer, "" if absent). */
static const char *value_of(const struct bl_conf *c, const char *key)
{
	static char v[CONF_PATH_MAX];
	char pat[128];
	snprintf(pat, sizeof pat, "\n%s = ", key);
	const char *all = printed(c);
	char *line = strstr(all, pat + 1) == all ? (char *)all : strstr(all, pat);
	v[0] = 0;
	if (!line)
		return v;
	line = strstr(line, " = ") + 3;
	size_t n = strstr(line, "  # ") - line;
	snprintf(v, sizeof v, "%.*s", (int)n, line);
	return v;
}

static int cap_saved = -1, cap_file = -1;

/* Send stderr (the log) to a file until cap_end(). */
static void cap_begin(void)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/stderr.log", tmp);
	fflush(stderr);
	cap_saved = dup(2);
	cap_file = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	dup2(cap_file, 2);
}

/* Restore stderr; the captured text into buf. */
static void cap_end(char *buf, size_t len)
{
	dup2(cap_saved, 2);
	close(cap_saved);
	ssize_t n = pread(cap_file, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = 0;
	close(cap_file);
}

/* ---- schema and defaults ----------------------------------------------- */

/* The schema as specified: names, defaults, ranges, live flags; field sizes
 * match their types; defaults are valid values. */
static void test_schema(void)
{
	static const struct { const char *name, *def; unsigned long long min, max; bool live; } t[] = {
		{ "listen/nbd", "0.0.0.0:10809", 0, 0, false },
		{ "workers", "0", 0, 256, false },
		{ "paths/db", "/var/lib/bootlink/bootlink.db", 0, 0, false },
		{ "paths/run", "/run/bootlink", 0, 0, false },
		{ "log/level", "info", 0, 0, true },
		{ "limits/max_connections", "1024", 1, 1000000, true },
		{ "limits/inflight", "128", 1, 4096, true },
		{ "limits/handshake_timeout_s", "30", 1, 3600, true },
		{ "limits/shutdown_timeout_s", "10", 1, 600, false },
		{ "runtime/interval_ms", "1000", 100, 60000, true },
		{ "cache/size_mb", "1024", 0, 1048576, true },
		{ "cache/block_kb", "64", 4, 1024, false },
	};
	size_t n;
	const struct conf_key *s = conf_schema(&n);
	struct bl_conf c;
	conf_defaults(&c);
	/* The first keys, in order; later issues append keys after them. */
	CHECK(n >= ARRAY_SIZE(t));
	for (size_t i = 0; i < ARRAY_SIZE(t) && i < n; i++) {
		UNIT_CTX("schema %s", t[i].name);
		CHECK_STR(s[i].name, t[i].name);
		CHECK_STR(s[i].def, t[i].def);
		CHECK_INT(s[i].live, t[i].live);
		CHECK(s[i].help && s[i].help[0]);
		CHECK_STR(value_of(&c, s[i].name), s[i].def);  /* the default is valid */
		if (s[i].type == CONF_UINT) {
			CHECK_INT(s[i].min, t[i].min);
			CHECK_INT(s[i].max, t[i].max);
		}
		if (s[i].type == CONF_UINT || s[i].type == CONF_LOGLEVEL)
			CHECK_INT(s[i].size, sizeof(int));
		else
			CHECK(s[i].size >= 64);
		CHECK(s[i].offset + s[i].size <= sizeof c);
	}
	UNIT_CTX(NULL);
}

/* conf_defaults() fills the fields the daemon reads. */
static void test_defaults(void)
{
	struct bl_conf c;
	conf_defaults(&c);
	CHECK_STR(c.dir, ".");
	CHECK_STR(c.listen_nbd, "0.0.0.0:10809");
	CHECK_INT(c.workers, 0);
	CHECK_STR(c.db_path, "/var/lib/bootlink/bootlink.db");
	CHECK_STR(c.run_dir, "/run/bootlink");
	CHECK_INT(c.log_level, BL_INFO);
	CHECK_INT(c.max_connections, 1024);
	CHECK_INT(c.max_inflight, 128);
	CHECK_INT(c.handshake_timeout_s, 30);
	CHECK_INT(c.shutdown_timeout_s, 10);
	CHECK_INT(c.stats_interval_ms, 1000);
	CHECK_INT(c.cache_size_mb, 1024);
	CHECK_INT(c.cache_block_kb, 64);

	/* An empty tree gives the same. */
	struct bl_conf l;
	CHECK_INT(conf_load(tree("empty"), &l, err, sizeof err), 0);
	CHECK_STR(err, "");
	strcpy(c.dir, l.dir);
	CHECK(same_print(&l, &c));
}

/* ---- values ------------------------------------------------------------ */

/* One file's content: ok rows give the value conf_print shows, error rows
 * a substring of the message. len for contents with NUL bytes. */
struct value_row {
	const char *key, *content;
	bool ok;
	const char *expect;
	size_t len;
};

#define V(key, content, ok, expect) { key, content, ok, expect, 0 }
static const struct value_row value_rows[] = {
	V("listen/nbd", "127.0.0.1:10809", true, "127.0.0.1:10809"),
	V("listen/nbd", "  1.2.3.4:99 \n\n", true, "1.2.3.4:99"),
	V("listen/nbd", "[::]:10809\n", true, "[::]:10809"),
	V("listen/nbd", "10809", true, "10809"),
	V("listen/nbd", "127.0.0.1:0", true, "127.0.0.1:0"),
	V("listen/nbd", "off\n", true, "off"),
	V("listen/nbd", "localhost:10809", false, "expected HOST:PORT, [IPV6]:PORT, PORT or off"),
	V("listen/nbd", "1.2.3.4:70000", false, "'1.2.3.4:70000' is not valid"),
	V("listen/nbd", "OFF", false, "is not valid"),
	V("workers", "0", true, "0"),
	V("workers", "4\n", true, "4"),
	V("workers", " \t 42 \r\n", true, "42"),
	V("workers", "256", true, "256"),
	V("workers", "257", false, "'257' is not valid: expected an integer 0..256 (0 = one per core)"),
	V("workers", "-1", false, "expected an integer 0..256"),
	V("workers", "0x4", false, "expected an integer 0..256"),
	V("workers", "4 4", false, "'4 4' is not valid"),
	V("workers", "4\n4\n", false, "'4\\n4' is not valid: more than one line; expected an integer 0..256"),
	V("workers", "4\t2", false, "'4\\t2' is not valid: contains control characters"),
	{ "workers", "4\0", false, "'4\\x00' is not valid: contains control characters", 2 },
	V("workers", "", false, "workers: file is empty: expected an integer 0..256 (0 = one per core) "
	  "(delete the file to use the default, 0)"),
	V("workers", " \n\n", false, "file is empty"),
	V("paths/db", "/srv/bootlink/bl.db", true, "/srv/bootlink/bl.db"),
	V("paths/run", "/run/bl\n", true, "/run/bl"),
	V("log/level", "error", true, "error"),
	V("log/level", "warn", true, "warn"),
	V("log/level", "info", true, "info"),
	V("log/level", "debug\n", true, "debug"),
	V("log/level", "DEBUG", false, "'DEBUG' is not valid: expected one of error, warn, info, debug"),
	V("log/level", "verbose", false, "expected one of error, warn, info, debug"),
	V("limits/max_connections", "1", true, "1"),
	V("limits/max_connections", "1000000", true, "1000000"),
	V("limits/max_connections", "0", false, "expected an integer 1..1000000"),
	V("limits/max_connections", "1000001", false, "expected an integer 1..1000000"),
	V("limits/inflight", "1", true, "1"),
	V("limits/inflight", "4096", true, "4096"),
	V("limits/inflight", "0", false, "expected an integer 1..4096"),
	V("limits/inflight", "4097", false, "expected an integer 1..4096"),
	V("limits/handshake_timeout_s", "3600", true, "3600"),
	V("limits/handshake_timeout_s", "0", false, "expected an integer 1..3600"),
	V("limits/handshake_timeout_s", "3601", false, "expected an integer 1..3600"),
	V("limits/shutdown_timeout_s", "1", true, "1"),
	V("limits/shutdown_timeout_s", "600", true, "600"),
	V("limits/shutdown_timeout_s", "601", false, "expected an integer 1..600"),
	V("runtime/interval_ms", "100", true, "100"),
	V("runtime/interval_ms", "60000", true, "60000"),
	V("runtime/interval_ms", "99", false, "expected an integer 100..60000"),
	V("runtime/interval_ms", "60001", false, "expected an integer 100..60000"),
	V("runtime/interval_ms", "99999999999999999999999", false, "expected an integer 100..60000"),
	V("cache/size_mb", "0", true, "0"),
	V("cache/size_mb", "1048576", true, "1048576"),
	V("cache/size_mb", "1048577", false, "expected an integer 0..1048576 (0 = off)"),
	V("cache/block_kb", "4", true, "4"),
	V("cache/block_kb", "128", true, "128"),
	V("cache/block_kb", "1024", true, "1024"),
	V("cache/block_kb", "96", false, "'96' is not valid: expected a power of two 4..1024"),
	V("cache/block_kb", "2", false, "expected a power of two 4..1024"),
	V("cache/block_kb", "2048", false, "expected a power of two 4..1024"),
};

/* Every row in a tree of its own: the value loads, or the load fails with
 * -EINVAL and a message that starts with the file's path. */
static void test_values(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(value_rows); i++) {
		const struct value_row *t = &value_rows[i];
		char name[32], path[PATH_MAX + 64];
		struct bl_conf c;
		snprintf(name, sizeof name, "values/%zu", i);
		const char *dir = tree(name);
		put_len(dir, t->key, t->content, t->len);
		UNIT_CTX("row %zu: %s", i, t->key);
		int r = conf_load(dir, &c, err, sizeof err);
		if (t->ok) {
			CHECK_INT(r, 0);
			CHECK_STR(value_of(&c, t->key), t->expect);
			continue;
		}
		CHECK_INT(r, -EINVAL);
		snprintf(path, sizeof path, "%s/%s: ", dir, t->key);
		CHECK(strncmp(err, path, strlen(path)) == 0);
		CHECK_CONTAINS(err, t->expect);
	}
	UNIT_CTX(NULL);
}

/* The message format exactly; escaping and truncation of bad values; the
 * file size limit. */
static void test_error_messages(void)
{
	const char *dir = tree("errors");
	char want[PATH_MAX + 128], big[4200];
	struct bl_conf c;

	put(dir, "workers", "abc\n");
	CHECK_INT(conf_load(dir, &c, err, sizeof err), -EINVAL);
	snprintf(want, sizeof want, "%s/workers: 'abc' is not valid: expected an integer 0..256 (0 = one per core)", dir);
	CHECK_STR(err, want);

	put(dir, "workers", "a'b\\c\x01\xff");
	CHECK_INT(conf_load(dir, &c, err, sizeof err), -EINVAL);
	CHECK_CONTAINS(err, "'a\\'b\\\\c\\x01\\xff' is not valid");

	memset(big, 'x', 300);
	big[300] = 0;
	put(dir, "workers", big);
	CHECK_INT(conf_load(dir, &c, err, sizeof err), -EINVAL);
	CHECK_CONTAINS(err, "xxxxxxxxxx...' is not valid: expected an integer 0..256");
	CHECK(strlen(err) < 250);

	/* 4096 bytes is the limit, whitespace included. */
	memset(big, ' ', 4096);
	big[0] = '5';
	big[4096] = 0;
	put(dir, "workers", big);
	CHECK_INT(conf_load(dir, &c, err, sizeof err), 0);
	CHECK_INT(c.workers, 5);
	strcpy(big + 4096, " ");
	put(dir, "workers", big);
	CHECK_INT(conf_load(dir, &c, err, sizeof err), -EFBIG);
	CHECK_CONTAINS(err, "/workers: file is larger than 4096 bytes");
}

/* A directory where a setting should be, a dangling symlink (errors), a
 * symlink to a file (fine); a failed load leaves *c alone. */
static void test_error_files(void)
{
	const char *dir = tree("errfiles");
	char want[PATH_MAX + 128], target[PATH_MAX];
	struct bl_conf c, before;

	snprintf(want, sizeof want, "%s/workers", dir);
	CHECK(mkdir(want, 0755) == 0);
	CHECK_INT(conf_load(dir, &c, err, sizeof err), -EINVAL);
	CHECK_CONTAINS(err, "/workers: is not a regular file");
	rmdir(want);
	snprintf(want, sizeof want, "%s/log", dir);
	mkdir(want, 0755);
	snprintf(want, sizeof want, "%s/log/level", dir);
	CHECK(symlink("/nonexistent/level", want) == 0);
	CHECK_INT(conf_load(dir, &c, err, sizeof err), -ENOENT);
	CHECK_CONTAINS(err, "/log/level: is a symlink to nothing");
	unlink(want);

	/* A symlink to a file is a fine setting. */
	snprintf(target, sizeof target, "%s/shared-level", tmp);
	put(tmp, "shared-level", "debug\n");
	CHECK(symlink(target, want) == 0);
	CHECK_INT(conf_load(dir, &c, err, sizeof err), 0);
	CHECK_INT(c.log_level, BL_DEBUG);

	/* A failed load does not touch *c. */
	put(dir, "limits/inflight", "0");
	before = c;
	CHECK_INT(conf_load(dir, &c, err, sizeof err), -EINVAL);
	CHECK(memcmp(&before, &c, sizeof c) == 0);

	/* err may be NULL. */
	CHECK_INT(conf_load(dir, &c, NULL, 0), -EINVAL);
}

/* Relative path values resolve against the tree's absolute directory, also
 * when the tree itself was named by a relative path. */
static void test_paths(void)
{
	const char *dir = tree("rel/etc");
	struct bl_conf c;
	char want[PATH_MAX], cwd[PATH_MAX], long_path[1200];
	put(dir, "paths/db", "data/bl.db\n");
	put(dir, "paths/run", "./././run");
	CHECK_INT(conf_load(dir, &c, err, sizeof err), 0);
	CHECK_STR(c.dir, dir);
	snprintf(want, sizeof want, "%s/data/bl.db", dir);
	CHECK_STR(c.db_path, want);
	snprintf(want, sizeof want, "%s/run", dir);
	CHECK_STR(c.run_dir, want);

	CHECK(getcwd(cwd, sizeof cwd) != NULL);
	CHECK(chdir(tmp) == 0);
	CHECK_INT(conf_load("rel/../rel/etc/", &c, err, sizeof err), 0);
	CHECK_STR(c.dir, dir);
	snprintf(want, sizeof want, "%s/data/bl.db", dir);
	CHECK_STR(c.db_path, want);
	CHECK(chdir(cwd) == 0);

	put(dir, "paths/run", "/abs/run");
	CHECK_INT(conf_load(dir, &c, err, sizeof err), 0);
	CHECK_STR(c.run_dir, "/abs/run");

	memset(long_path, 'p', sizeof long_path - 1);
	long_path[sizeof long_path - 1] = 0;
	put(dir, "paths/run", long_path);
	CHECK_INT(conf_load(dir, &c, err, sizeof err), -EINVAL);
	CHECK_CONTAINS(err, "is not valid: too long; expected a path");
}

/* Unknown files are ignored with a warning (with a suggestion when close
 * to a key); hidden files, editor backups and other programs' *.conf files are
 * ignored silently. */
static void test_unknown(void)
{
	const char *dir = tree("unknown");
	static const char *const silent[] = {
		"workers~", ".workers.swp", "#workers#", ".git/config", "listen/nbd.dpkg-old", "workers.tmp",
		"dnsmasq.conf",
	};
	char log[8192];
	struct bl_conf c;
	put(dir, "worker", "4");
	put(dir, "limits/infliht", "4");
	put(dir, "notes.txt", "hello");
	put(dir, "README", "the tree's README (make install)");
	put(dir, "workers", "3");
	for (size_t i = 0; i < ARRAY_SIZE(silent); i++)
		put(dir, silent[i], "junk");
	cap_begin();
	int r = conf_load(dir, &c, err, sizeof err);
	cap_end(log, sizeof log);
	CHECK_INT(r, 0);
	CHECK_INT(c.workers, 3);
	CHECK_CONTAINS(log, "/unknown/worker: unknown setting, ignored (did you mean workers?)");
	CHECK_CONTAINS(log, "/unknown/limits/infliht: unknown setting, ignored (did you mean limits/inflight?)");
	CHECK_CONTAINS(log, "/unknown/notes.txt: unknown setting, ignored\n");
	CHECK(!strstr(log, "/unknown/README"));
	for (size_t i = 0; i < ARRAY_SIZE(silent); i++) {
		UNIT_CTX("silent %s", silent[i]);
		CHECK(!strstr(log, silent[i]));
	}
	UNIT_CTX(NULL);
}

/* A missing tree is an error, except the default one; not-a-directory too. */
static void test_missing_dir(void)
{
	struct bl_conf c;
	char p[PATH_MAX], want[PATH_MAX + 64];
	CHECK_INT(conf_load("/nonexistent/bootlink", &c, err, sizeof err), -ENOENT);
	CHECK_STR(err, "config directory /nonexistent/bootlink does not exist");

	snprintf(p, sizeof p, "%s/plainfile", tmp);
	put(tmp, "plainfile", "x");
	CHECK_INT(conf_load(p, &c, err, sizeof err), -ENOTDIR);
	snprintf(want, sizeof want, "config directory %s is not a directory", p);
	CHECK_STR(err, want);

	if (access(CONF_DEFAULT_DIR, F_OK) == 0) {
		printf("note: %s exists; the missing-default-directory checks are skipped\n", CONF_DEFAULT_DIR);
		return;
	}
	struct bl_conf d;
	conf_defaults(&d);
	CHECK_INT(conf_load(CONF_DEFAULT_DIR, &c, err, sizeof err), 0);
	CHECK_STR(c.dir, CONF_DEFAULT_DIR);
	strcpy(d.dir, c.dir);
	CHECK(same_print(&c, &d));
	CHECK_INT(conf_load(NULL, &c, err, sizeof err), 0);
	CHECK_INT(conf_load(CONF_DEFAULT_DIR "/", &c, err, sizeof err), 0);
}

/* ---- live changes, printing -------------------------------------------- */

/* Live keys are copied (and logged), log/level reaches bl_log_level;
 * non-live changes are only warned about. */
static void test_apply_live(void)
{
	struct bl_conf live, fresh;
	char log[4096];
	int saved = bl_log_level;
	conf_defaults(&live);
	fresh = live;
	fresh.log_level = BL_DEBUG;
	fresh.max_connections = 5;
	fresh.stats_interval_ms = 250;
	fresh.workers = 8;
	fresh.shutdown_timeout_s = 20;
	strcpy(fresh.listen_nbd, "off");

	cap_begin();
	int n = conf_apply_live(&live, &fresh);
	cap_end(log, sizeof log);
	CHECK_INT(n, 3);
	CHECK_INT(live.log_level, BL_DEBUG);
	CHECK_INT(__atomic_load_n(&bl_log_level, __ATOMIC_RELAXED), BL_DEBUG);
	CHECK_INT(live.max_connections, 5);
	CHECK_INT(live.stats_interval_ms, 250);
	CHECK_INT(live.workers, 0);
	CHECK_INT(live.shutdown_timeout_s, 10);
	CHECK_STR(live.listen_nbd, "0.0.0.0:10809");
	CHECK_CONTAINS(log, "config: log/level changed: info -> debug\n");
	CHECK_CONTAINS(log, "config: limits/max_connections changed: 1024 -> 5\n");
	CHECK_CONTAINS(log, "config: workers changed: 0 -> 8; takes effect at restart\n");
	CHECK_CONTAINS(log, "config: listen/nbd changed: 0.0.0.0:10809 -> off; takes effect at restart\n");

	/* Again: nothing live left to change. */
	cap_begin();
	n = conf_apply_live(&live, &fresh);
	cap_end(log, sizeof log);
	CHECK_INT(n, 0);
	CHECK(!strstr(log, "log/level"));
	__atomic_store_n(&bl_log_level, saved, __ATOMIC_RELAXED);
}

/* The daemon's reload: a tree edit, loaded into a fresh struct, applied. */
static void test_reload(void)
{
	struct bl_conf live, fresh;
	char log[4096];
	int saved = bl_log_level;
	const char *dir = tree("live");
	CHECK_INT(conf_load(dir, &live, err, sizeof err), 0);
	put(dir, "log/level", "warn\n");
	put(dir, "workers", "2\n");
	CHECK_INT(conf_load(dir, &fresh, err, sizeof err), 0);
	cap_begin();
	int n = conf_apply_live(&live, &fresh);
	cap_end(log, sizeof log);
	CHECK_INT(n, 1);
	CHECK_CONTAINS(log, "config: log/level changed: info -> warn\n");
	CHECK_INT(bl_log_level, BL_WARN);
	CHECK_INT(live.workers, 0);
	__atomic_store_n(&bl_log_level, saved, __ATOMIC_RELAXED);
}

/* conf_print: one "key = value  # help" line per key; conf_describe. */
static void test_print(void)
{
	struct bl_conf c;
	size_t n, lines = 0;
	char a[256];
	const struct conf_key *s = conf_schema(&n);
	conf_defaults(&c);
	const char *out = printed(&c);
	for (const char *p = out; *p; p++)
		lines += *p == '\n';
	CHECK_INT(lines, n);
	CHECK(strncmp(out, "listen/nbd = 0.0.0.0:10809  # ", 30) == 0);
	CHECK_CONTAINS(out, "\nworkers = 0  # io_uring worker threads\n");
	CHECK_CONTAINS(out, "\nlog/level = info  # ");
	CHECK_CONTAINS(out, "\nruntime/interval_ms = 1000  # ");
	conf_describe(&s[1], a, sizeof a);
	CHECK_STR(a, "an integer 0..256 (0 = one per core)");
}

/* ---- inotify ----------------------------------------------------------- */

/* fd becomes readable within a second. */
static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 1000) == 1 && (p.revents & POLLIN);
}

/* One change to the tree, then: is the fd readable, and what drain says. */
#define EXPECT_DRAIN(fd, dir, want) do { \
		CHECK(readable(fd)); \
		CHECK_INT(conf_watch_drain(fd, dir), want); \
		CHECK_INT(conf_watch_drain(fd, dir), 0); \
	} while (0)

/* Writes (in place or tmp + rename) in existing and new (nested)
 * directories are reported; ignored names are not. */
static void test_watch_writes(int fd, const char *dir)
{
	char p[PATH_MAX + 64];
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK_INT(conf_watch_drain(fd, dir), 0);

	snprintf(p, sizeof p, "%s/workers", dir);
	CHECK_INT(write_small_file(p, "4\n"), 0);            /* tmp + rename */
	EXPECT_DRAIN(fd, dir, 1);
	put(dir, "limits/inflight", "32");                   /* existing subdirectory */
	EXPECT_DRAIN(fd, dir, 1);
	put(dir, "workers~", "junk");                        /* ignored name */
	EXPECT_DRAIN(fd, dir, 0);
	put(dir, "runtime/interval_ms", "500");              /* new directory */
	EXPECT_DRAIN(fd, dir, 1);
	put(dir, "runtime/interval_ms", "600");              /* ...now watched */
	EXPECT_DRAIN(fd, dir, 1);
	snprintf(p, sizeof p, "%s/overlay/b/c", dir);
	CHECK_INT(mkdir_p(p, 0755), 0);                       /* nested new directories */
	EXPECT_DRAIN(fd, dir, 1);
	put(dir, "overlay/b/c/x", "1");
	EXPECT_DRAIN(fd, dir, 1);
	/* A top-level directory no key lives in holds data (a runtime tree,
	 * overlays): its creation is seen once, its content never. */
	snprintf(p, sizeof p, "%s/run/clients", dir);
	CHECK_INT(mkdir_p(p, 0755), 0);
	EXPECT_DRAIN(fd, dir, 1);
	put(dir, "run/clients/x", "1");
	/* inotify queues events within the write itself: none may be there. */
	CHECK_INT(conf_watch_drain(fd, dir), 0);
}

/* Files being written count only when closed; symlinks when created;
 * renames from hidden names, deletes, removed directories. */
static void test_watch_more(int fd, const char *dir)
{
	char p[PATH_MAX + 64], q[PATH_MAX + 64];

	/* A new empty file is still being written: only its close counts. */
	snprintf(p, sizeof p, "%s/limits/max_connections", dir);
	int f = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	EXPECT_DRAIN(fd, dir, 0);
	CHECK(write(f, "9\n", 2) == 2);
	close(f);
	EXPECT_DRAIN(fd, dir, 1);

	/* Symlinks are complete when created (root and subdirectory). */
	snprintf(p, sizeof p, "%s/log/level", dir);
	put(dir, "shared/level", "debug");
	EXPECT_DRAIN(fd, dir, 1);
	CHECK(mkdir(strcat(strcpy(q, dir), "/log"), 0755) == 0);
	EXPECT_DRAIN(fd, dir, 1);
	CHECK(symlink("../shared/level", p) == 0);
	EXPECT_DRAIN(fd, dir, 1);

	/* Rename into place from a hidden name; delete; remove a directory. */
	put(dir, ".workers.new", "8");
	EXPECT_DRAIN(fd, dir, 0);
	snprintf(p, sizeof p, "%s/.workers.new", dir);
	snprintf(q, sizeof q, "%s/workers", dir);
	CHECK(rename(p, q) == 0);
	EXPECT_DRAIN(fd, dir, 1);
	CHECK(unlink(q) == 0);
	EXPECT_DRAIN(fd, dir, 1);
	snprintf(p, sizeof p, "%s/overlay/b/c/x", dir);
	CHECK(unlink(p) == 0);
	EXPECT_DRAIN(fd, dir, 1);
	*strrchr(p, '/') = 0;
	CHECK(rmdir(p) == 0);
	EXPECT_DRAIN(fd, dir, 1);
}

/* The watch on one tree through a series of changes. */
static void test_watch(void)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", tree("watch"));
	put(dir, "limits/inflight", "64");
	CHECK_INT(conf_watch_open("/nonexistent/bootlink"), -ENOENT);
	int fd = conf_watch_open(dir);
	if (!CHECK(fd >= 0))
		return;
	test_watch_writes(fd, dir);
	test_watch_more(fd, dir);
	close(fd);
}

/* Every test in one scratch directory (realpath'd: trees compare as absolute paths). */
int main(void)
{
	static char real[PATH_MAX];
	if (!realpath(unit_tmpdir(), real))
		return 2;
	tmp = real;
	test_schema();
	test_defaults();
	test_values();
	test_error_messages();
	test_error_files();
	test_paths();
	test_unknown();
	test_missing_dir();
	test_apply_live();
	test_reload();
	test_print();
	test_watch();
	return unit_done();
}
