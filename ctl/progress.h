/* progress.h — a progress bar on stderr for long reads (image checksums).
 *
 * Drawn only when stderr is a terminal, at most ten times a second, and
 * erased when done, so logs and pipes never see it.
 */
#ifndef CTL_PROGRESS_H
#define CTL_PROGRESS_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct progress {
	const char *label;       /* e.g. the image name */
	bool tty;
	bool drawn;
	uint64_t start_ns, last_ns;
};

void progress_init(struct progress *p, const char *label);
/* An ident_progress_fn: arg is the struct progress. Always returns 0. */
int progress_cb(uint64_t done, uint64_t total, void *arg);
/* Erase the bar if it was drawn. */
void progress_done(struct progress *p);

/* Set by SIGINT, SIGTERM or SIGHUP once progress_catch_stop() ran, so long
 * work (copies, checksums, jobs) can stop cleanly and remove partial files. */
extern volatile sig_atomic_t progress_stop;
void progress_catch_stop(void);

#endif
