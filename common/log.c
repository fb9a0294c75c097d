/* log.c — see log.h. */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int bl_log_level = BL_INFO;
const char *bl_log_ident = "bootlink";

static const char *const names[] = { "error", "warn", "info", "debug" };

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

const char *log_level_name(int level)
{
	return level >= 0 && level < 4 ? names[level] : "?";
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
	if (level > __atomic_load_n(&bl_log_level, __ATOMIC_RELAXED))
		return;
	char line[2048];
	int n;
	/* Under systemd (JOURNAL_STREAM set) use the <N> priority prefix. */
	static const int prio[] = { 3, 4, 6, 7 };
	if (getenv("JOURNAL_STREAM"))
		n = snprintf(line, sizeof line, "<%d>%s: ", prio[level], bl_log_ident);
	else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld %s %s: ", tm.tm_hour, tm.tm_min,
			     tm.tm_sec, ts.tv_nsec / 1000000, bl_log_ident, names[level]);
	}
	if (n < 0)
		return;
	int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if (n > (int)sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

bool log_ratelimit(struct log_ratelimit *rl, uint64_t interval_ns, unsigned *suppressed)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (now < rl->next_ns) {
		rl->suppressed++;
		return false;
	}
	rl->next_ns = now + interval_ns;
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}
