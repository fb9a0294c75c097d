/* daemon.h — process-wide state shared by bootlinkd's threads.
 *
 * g_live holds the settings that may change while running (config tree
 * keys marked live). The main thread stores them with relaxed atomics when
 * the tree changes; workers read them with relaxed loads. Nothing else is
 * shared between threads except through exports.h (reference-counted
 * tables) and stats.h (counters).
 */
#ifndef BL_DAEMON_H
#define BL_DAEMON_H

#include <stdint.h>

struct live_settings {
	unsigned max_connections;
	unsigned max_inflight;
	unsigned handshake_timeout_s;
	unsigned clients_autoadd;       /* clients/autoadd (daemon/autoadd.h) */
	unsigned coalesce_us;           /* daemon/coalesce_us (worker.c) */
};

extern struct live_settings g_live;

static inline unsigned live_get(const unsigned *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

#endif
