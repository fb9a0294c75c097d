/* progress.c — the checksum progress bar (see progress.h).
 *
 * Design: one line redrawn in place with "\r" and cleared with the
 * "erase line" escape; the rate is the average since the start, which
 * is steadier than an instantaneous one.
 */
#include "progress.h"

#include "out.h"
#include "util.h"

#include <stdio.h>
#include <unistd.h>

#define BAR 30
#define REDRAW_NS 100000000ull

/* Start a bar labelled label (drawn on first progress). */
void progress_init(struct progress *p, const char *label)
{
	p->label = label;
	p->tty = isatty(STDERR_FILENO);
	p->drawn = false;
	p->start_ns = now_ns();
	p->last_ns = 0;
}

/* Draw "label [#####.....]  42%  1.2 GiB / 3.0 GiB  210 MiB/s". */
static void draw(const struct progress *p, uint64_t done, uint64_t total, uint64_t now)
{
	char bar[BAR + 1], a[32], b[32], r[32];
	unsigned pct = total ? (unsigned)MIN(100, done * 100 / total) : 100;
	unsigned fill = pct * BAR / 100;
	for (unsigned i = 0; i < BAR; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR] = 0;
	double secs = (double)(now - p->start_ns) / 1e9;
	uint64_t rate = secs > 0 ? (uint64_t)((double)done / secs) : 0;
	fprintf(stderr, "\r%s [%s] %3u%%  %s / %s  %s/s\033[K", p->label, bar, pct,
		out_size(done, a), out_size(total, b), out_size(rate, r));
}

/* Progress callback: redraw at most every REDRAW_NS. */
int progress_cb(uint64_t done, uint64_t total, void *arg)
{
	struct progress *p = arg;
	uint64_t now = now_ns();
	if (!p->tty || (now - p->last_ns < REDRAW_NS && done < total))
		return 0;
	p->last_ns = now;
	p->drawn = true;
	draw(p, done, total, now);
	return 0;
}

/* Erase the bar. */
void progress_done(struct progress *p)
{
	if (p->drawn)
		fputs("\r\033[K", stderr);
	p->drawn = false;
}

volatile sig_atomic_t progress_stop;

/* Signal handler: ask the work in progress to stop. */
static void on_stop_signal(int sig)
{
	(void)sig;
	progress_stop = 1;
}

void progress_catch_stop(void)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}
