/* log.h — leveled logging to stderr (journald picks it up).
 *
 * One line per event, prefixed with a level tag that journald understands
 * ("<3>" style when BL_LOG_PREFIX_SYSLOG is set by systemd, plain tags
 * otherwise). Every line about a client names it: callers pass the peer
 * address and the export/target as part of the message ("[127.0.0.1:5000
 * export=win10] ..."). Thread-safe: a line is written with one write(2).
 *
 * log_level is read on every call without a lock; changing it at run time
 * (config `log/level`) is a relaxed atomic store.
 */
#ifndef BL_LOG_H
#define BL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum bl_log_level { BL_ERR = 0, BL_WARN = 1, BL_INFO = 2, BL_DEBUG = 3 };

extern int bl_log_level;      /* messages above this level are dropped */
extern const char *bl_log_ident; /* program name in each line */

/* Parse "error" | "warn" | "info" | "debug"; returns level or -1. */
int log_level_parse(const char *s);
const char *log_level_name(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);

/* Rate limit for lines a peer can trigger at will: at most one per interval.
 * Zero-initialised; not thread-safe (keep one per connection or take a lock). */
struct log_ratelimit {
	uint64_t next_ns;         /* no line before this time */
	unsigned suppressed;      /* lines held back since the last one logged */
};

/* True if a line may be logged now; then *suppressed is the number held
 * back since the previous line (to mention in this one). */
bool log_ratelimit(struct log_ratelimit *rl, uint64_t interval_ns, unsigned *suppressed);

#define log_err(...)   log_msg(BL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(BL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(BL_INFO, __VA_ARGS__)
#define log_debug(...) do { if (__builtin_expect(__atomic_load_n(&bl_log_level, __ATOMIC_RELAXED) >= BL_DEBUG, 0)) \
                              log_msg(BL_DEBUG, __VA_ARGS__); } while (0)

#endif
