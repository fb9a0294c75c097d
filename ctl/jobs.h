/* jobs.h — bootlinkctl's background jobs (today: image flatten).
 *
 * A job is a row of the database's jobs table (common/db.h) and a
 * detached bootlinkctl process doing the work: started with fork() +
 * setsid(), stdio on /dev/null, its own database connection. The process
 * records its progress in the row (at most every JOB_PROGRESS_MS) and
 * finishes it (done or failed, with the reason) in the same transaction
 * as the work's result. A job whose process died (kill -9, a crash, a
 * reboot) stays 'running' in the table until someone looks: jobs_reap(),
 * called by `bootlinkctl jobs` and by the commands that start jobs, marks
 * it failed ("interrupted") and removes the partial file it was writing.
 * A process is recognised by its pid and its start time
 * (/proc/PID/stat), so a recycled pid is not taken for the job.
 *
 * Test hook: BOOTLINK_TEST_JOB_KBPS=N in the environment caps a job's
 * speed at N KiB/s (tests interrupt a flatten mid-way deterministically).
 */
#ifndef CTL_JOBS_H
#define CTL_JOBS_H

#include "ctl.h"

#include <stdbool.h>
#include <stdint.h>

#define JOB_PROGRESS_MS 1000             /* each update also makes bootlinkd re-read its (cheap) export table */

/* What a job's progress callback needs (in the job's process). */
struct job_run {
	struct ctl *c;                  /* the job process's own context and database */
	int64_t id;
	uint64_t start_ns, last_ns;
	uint64_t kbps;                  /* BOOTLINK_TEST_JOB_KBPS, 0 = no cap */
	volatile int *stop;             /* set by a signal handler: cancel */
};

/* Start job j (added as running) in a detached process that runs
 * fn(jc, arg) with its own context jc and exits with its return value.
 * Records the process's pid in the row. Returns CTL_OK or CTL_ERR (the
 * job is then marked failed). */
int jobs_spawn(struct ctl *c, struct db_job *j, int (*fn)(struct ctl *jc, int64_t job, void *arg), void *arg);
/* True while j's process runs (always false for a finished job). */
bool jobs_alive(const struct db_job *j);
/* Mark running jobs whose process is gone failed, remove their partial
 * files (with an event). CTL_OK or CTL_ERR. */
int jobs_reap(struct ctl *c);
/* The running job of kind on image_id: 1 found (*out), 0 none, <0 error. */
int jobs_running(struct ctl *c, int64_t image_id, const char *kind, struct db_job *out);
/* Follow job id with a progress bar until it ends (or a signal stops the
 * waiting: *out is then still running). CTL_OK (*out filled) or CTL_ERR. */
int jobs_wait(struct ctl *c, int64_t id, const char *label, volatile int *stop, struct db_job *out);
/* An ident_progress_fn for the job's process (arg: struct job_run):
 * records progress, applies the test speed cap, returns *stop. */
int jobs_progress_cb(uint64_t done, uint64_t total, void *arg);
/* "12.5 MiB of 100 MiB (12%)" into buf. */
const char *jobs_progress_str(const struct db_job *j, char buf[96]);
/* Add a job's JSON members (inside an open object). */
void jobs_json(const struct db_job *j);

#endif
