/* jobs.c — background jobs: start, follow, notice dead ones, list them
 * (`bootlinkctl jobs`). See jobs.h for the design.
 */
#include "jobs.h"

#include "args.h"
#include "out.h"
#include "progress.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define JOBS_REAP_MAX 32          /* running jobs looked at per reap */
#define JOB_START_GRACE_S 60      /* a job without a pid yet counts as starting this long */
#define WAIT_POLL_NS 100000000ull /* --wait re-reads the row every 100 ms */

/* ---- processes ---- */

/* State letter and start time (clock ticks since boot) of pid from
 * /proc/PID/stat; false if there is no such process. */
static bool proc_stat(int64_t pid, char *state, uint64_t *start)
{
	char p[64], buf[1024];
	snprintf(p, sizeof p, "/proc/%lld/stat", (long long)pid);
	if (pid <= 0 || read_small_file(p, buf, sizeof buf) <= 0)
		return false;
	char *s = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
	if (!s)
		return false;
	/* After ") ": field 3 (state) ... field 22 (starttime). */
	char *tok, *save = NULL;
	int field = 3;
	for (tok = strtok_r(s + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
		if (field == 3)
			*state = tok[0];
		else if (field == 22) {
			*start = strtoull(tok, NULL, 10);
			return true;
		}
	}
	return false;
}

bool jobs_alive(const struct db_job *j)
{
	char state;
	uint64_t start;
	if (strcmp(j->state, "running") != 0)
		return false;
	if (j->pid <= 0)
		return time(NULL) - j->started < JOB_START_GRACE_S; /* being started */
	if (!proc_stat(j->pid, &state, &start) || state == 'Z' || state == 'X')
		return false;
	return !j->pid_start || start == j->pid_start;
}

int jobs_spawn(struct ctl *c, struct db_job *j, int (*fn)(struct ctl *jc, int64_t job, void *arg), void *arg)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		char why[128];
		snprintf(why, sizeof why, "cannot start a process: %s", strerror(e));
		db_job_finish(c->db, j->id, false, why);
		return out_fail("image '%s': job %lld: %s", j->image, (long long)j->id, why);
	}
	if (pid == 0) {
		/* The job: its own session (no terminal signals), no stdio, its
		 * own database connection (never the parent's across a fork). */
		setsid();
		int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		struct ctl jc = { .conf_dir = c->conf_dir, .cmd = c->cmd };
		int rc = store_open(&jc, false);
		if (rc == CTL_OK)
			rc = fn(&jc, j->id, arg);
		db_close(jc.db);
		_exit(rc);
	}
	char state;
	uint64_t start = 0;
	proc_stat(pid, &state, &start);
	j->pid = pid;
	j->pid_start = start;
	int ret = db_job_set_pid(c->db, j->id, pid, start);
	if (ret < 0 && ret != -ENOENT) /* -ENOENT: it finished already */
		return store_fail(ret, "recording the process of job %lld", (long long)j->id);
	return CTL_OK;
}

/* ---- progress (in the job's process) ---- */

int jobs_progress_cb(uint64_t done, uint64_t total, void *arg)
{
	struct job_run *r = arg;
	uint64_t now = now_ns();
	if (!r->start_ns)
		r->start_ns = now;
	if (r->kbps) {
		/* Test hook: no faster than kbps (a signal cuts the sleep short). */
		uint64_t due = r->start_ns + done * 1000000000ull / (r->kbps * 1024);
		if (due > now) {
			uint64_t ns = due - now;
			struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
			nanosleep(&ts, NULL);
			now = now_ns();
		}
	}
	if (now - r->last_ns >= JOB_PROGRESS_MS * 1000000ull || done >= total) {
		db_job_progress(r->c->db, r->id, done, total); /* best effort: progress only */
		r->last_ns = now;
	}
	return r->stop ? *r->stop : 0;
}

/* ---- reaping ---- */

struct jlist {
	struct db_job j[JOBS_REAP_MAX];
	int n;
};

/* db_job_list callback: collect. */
static int collect_cb(const struct db_job *j, void *arg)
{
	struct jlist *l = arg;
	if (l->n == JOBS_REAP_MAX)
		return 1;
	l->j[l->n++] = *j;
	return 0;
}

/* Mark job j (whose process is gone) failed; then remove its files. */
static int reap_one(struct ctl *c, const struct db_job *j)
{
	char why[256], tmp[DB_PATH_MAX + 8];
	snprintf(why, sizeof why, "interrupted: its process (pid %lld) ended before it finished; nothing "
		 "changed", (long long)j->pid);
	int ret = store_begin(c);
	if (ret)
		return ret;
	ret = db_job_finish(c->db, j->id, false, why);
	if (ret == -ENOENT)
		return store_abort(c, CTL_OK); /* it finished meanwhile */
	if (ret < 0)
		return store_abort(c, store_fail(ret, "marking job %lld failed", (long long)j->id));
	if ((ret = store_commit(c, NULL, "image", "image %s %s: job %lld interrupted (pid %lld gone); "
				"version %d was not made", j->kind, j->image, (long long)j->id,
				(long long)j->pid, j->version)))
		return ret;
	/* The partial file; and the finished one if it was renamed but the
	 * version never recorded (killed between the two). */
	snprintf(tmp, sizeof tmp, "%s.tmp", j->path);
	if (j->path[0]) {
		struct db_version v;
		unlink(tmp);
		if (db_version_get(c->db, j->image_id, j->version, &v) == -ENOENT)
			unlink(j->path);
	}
	return CTL_OK;
}

int jobs_reap(struct ctl *c)
{
	struct jlist *l = calloc(1, sizeof *l);
	if (!l)
		return out_fail("out of memory");
	int ret = db_job_list(c->db, true, 0, collect_cb, l);
	if (ret < 0) {
		free(l);
		return store_fail(ret, "listing jobs");
	}
	ret = CTL_OK;
	for (int i = 0; i < l->n && ret == CTL_OK; i++)
		if (!jobs_alive(&l->j[i]))
			ret = reap_one(c, &l->j[i]);
	free(l);
	return ret;
}

struct find {
	int64_t image_id;
	const char *kind;
	struct db_job *out;
	int found;
};

/* db_job_list callback: the running job of (image_id, kind). */
static int find_cb(const struct db_job *j, void *arg)
{
	struct find *f = arg;
	if (j->image_id != f->image_id || strcmp(j->kind, f->kind) != 0)
		return 0;
	*f->out = *j;
	f->found = 1;
	return 1;
}

int jobs_running(struct ctl *c, int64_t image_id, const char *kind, struct db_job *out)
{
	struct find f = { image_id, kind, out, 0 };
	int ret = db_job_list(c->db, true, 0, find_cb, &f);
	return ret < 0 ? ret : f.found;
}

/* ---- following one ---- */

int jobs_wait(struct ctl *c, int64_t id, const char *label, volatile int *stop, struct db_job *out)
{
	struct progress p;
	int ret = CTL_OK;
	progress_init(&p, label);
	for (;;) {
		int r = db_job_get(c->db, id, out);
		if (r < 0) {
			ret = store_fail(r, "reading job %lld", (long long)id);
			break;
		}
		if (strcmp(out->state, "running") != 0 || (stop && *stop))
			break;
		if (!jobs_alive(out)) {
			if ((ret = jobs_reap(c)))
				break;
			continue; /* the next read sees it failed (or done) */
		}
		progress_cb(out->done_bytes, out->total_bytes ? out->total_bytes : 1, &p);
		struct timespec ts = { 0, (long)WAIT_POLL_NS };
		nanosleep(&ts, NULL);
	}
	progress_done(&p);
	return ret;
}

/* ---- showing ---- */

const char *jobs_progress_str(const struct db_job *j, char buf[96])
{
	char d[32], t[32];
	unsigned pct = j->total_bytes ? (unsigned)(j->done_bytes * 100 / j->total_bytes) : 0;
	snprintf(buf, 96, "%s of %s (%u%%)", out_size(j->done_bytes, d), out_size(j->total_bytes, t), pct);
	return buf;
}

void jobs_json(const struct db_job *j)
{
	out_int("id", j->id);
	out_str("kind", j->kind);
	out_str("image", j->image);
	out_str("state", j->state);
	out_int("pid", j->pid);
	out_int("done_bytes", (int64_t)j->done_bytes);
	out_int("total_bytes", (int64_t)j->total_bytes);
	out_int("version", j->version);
	out_str("path", j->path);
	out_int("started", j->started);
	out_int("finished", j->finished);
	out_str("error", j->error);
}

static const struct out_col job_cols[] = {
	{ "id", "JOB", COL_NUM },
	{ "kind", "KIND", 0 },
	{ "image", "IMAGE", 0 },
	{ "state", "STATE", 0 },
	{ NULL, "PROGRESS", COL_HUMAN },
	{ "done_bytes", NULL, COL_NUM | COL_JSON },
	{ "total_bytes", NULL, COL_NUM | COL_JSON },
	{ "version", "VERSION", COL_NUM },
	{ "pid", "PID", COL_NUM },
	{ NULL, "STARTED", COL_HUMAN },
	{ "started", NULL, COL_NUM | COL_JSON },
	{ "finished", NULL, COL_NUM | COL_JSON },
	{ "path", NULL, COL_JSON },
	{ "error", "ERROR", 0 },
};

/* db_job_list callback: one row. */
static int row_cb(const struct db_job *j, void *arg)
{
	char id[24], prog[96], done[24], total[24], ver[16], pid[24], when[32], start[24], fin[24];
	snprintf(id, sizeof id, "%lld", (long long)j->id);
	snprintf(done, sizeof done, "%llu", (unsigned long long)j->done_bytes);
	snprintf(total, sizeof total, "%llu", (unsigned long long)j->total_bytes);
	snprintf(ver, sizeof ver, "%d", j->version);
	snprintf(pid, sizeof pid, "%lld", (long long)j->pid);
	snprintf(start, sizeof start, "%lld", (long long)j->started);
	snprintf(fin, sizeof fin, "%lld", (long long)j->finished);
	const char *cells[] = { id, j->kind, j->image, j->state, jobs_progress_str(j, prog), done, total, ver,
				pid, out_time(j->started, when), start, fin, j->path, j->error };
	return out_table_row(arg, cells);
}

/* jobs [--limit N] */
int cmd_jobs(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS], *limit_s = "20";
	const struct args_opt opts[] = { { .name = "limit", .value = &limit_s }, { 0 } };
	uint64_t limit;
	int ret = args_parse(c, argc, argv, opts, pos);
	if (ret)
		return ret;
	if (parse_u64(limit_s, 0, 1000000, &limit) < 0)
		return out_fail("invalid --limit '%s': a number of jobs (0 = all)", limit_s);
	if ((ret = store_open(c, false)) || (ret = jobs_reap(c)))
		return ret;
	struct out_table *t = out_table_new(job_cols, ARRAY_SIZE(job_cols));
	if (!t)
		return out_fail("out of memory");
	if ((ret = db_job_list(c->db, false, (int)limit, row_cb, t)) < 0) {
		out_table_free(t);
		return store_fail(ret, "listing jobs");
	}
	out_table_print(t, "jobs", "no jobs; `bootlinkctl image flatten NAME` starts one");
	return CTL_OK;
}
