/* metrics.h — Prometheus text metrics (GET /metrics on listen/http).
 *
 * Everything but the latency histograms is read at scrape time from the
 * counters the runtime tree shows (stats.h): images, clients, overlay
 * directories, the cache, connections. The names and labels are listed in
 * docs/metrics.md; a name, once published, is never reused for another
 * meaning.
 *
 * Request latency histograms: one per (protocol, operation) for NBD and
 * iSCSI reads and writes, with the fixed buckets of met_bounds_ns[]. Each
 * worker thread owns its own counters (g_met[worker id], a cache line
 * apart) and is the only writer: a record is a relaxed load and store, no
 * lock and no atomic read-modify-write on the data path. A scrape sums
 * the workers with relaxed loads, so a scrape racing a record may see a
 * bucket without its sum for an instant; the next scrape is exact.
 */
#ifndef BL_METRICS_H
#define BL_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum met_proto { MET_NBD, MET_ISCSI, MET_NPROTO };
enum met_op { MET_READ, MET_WRITE, MET_NOP };

#define MET_BUCKETS 16            /* finite buckets; one more counts everything above */
#define MET_MAX_WORKERS 256       /* workers beyond this share the last slot's counters */

struct met_hist {
	uint64_t bucket[MET_BUCKETS + 1];   /* not cumulative: bucket[i] = le bound i, above bound i-1 */
	uint64_t sum_ns;
};

struct met_worker {
	struct met_hist h[MET_NPROTO][MET_NOP];
} __attribute__((aligned(64)));

extern struct met_worker g_met[MET_MAX_WORKERS];
extern const uint64_t met_bounds_ns[MET_BUCKETS];

/* Record one request of proto/op that took ns, on worker `worker` (the
 * calling thread must be that worker). */
static inline void metrics_latency(int worker, enum met_proto proto, enum met_op op, uint64_t ns)
{
	struct met_hist *h = &g_met[worker < MET_MAX_WORKERS ? worker : MET_MAX_WORKERS - 1].h[proto][op];
	int b = 0;
	while (b < MET_BUCKETS && ns > met_bounds_ns[b])
		b++;
	__atomic_store_n(&h->bucket[b], __atomic_load_n(&h->bucket[b], __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&h->sum_ns, __atomic_load_n(&h->sum_ns, __ATOMIC_RELAXED) + ns, __ATOMIC_RELAXED);
}

/* The whole exposition (text format 0.0.4) in a malloc'ed *text of *len
 * bytes. 0 or -ENOMEM. Any thread. */
int metrics_render(char **text, size_t *len);

#endif
