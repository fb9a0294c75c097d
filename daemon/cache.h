/* cache.h — the shared RAM block cache: one pool for all images and workers.
 *
 * Blocks of cache/block_kb (default 64 KiB) keyed by (image id, block
 * number). Block memory is page-aligned slices of anonymous mappings, so
 * O_DIRECT reads land in it directly and replies are sent from it without
 * a copy (the reply's iovecs point into pinned blocks).
 *
 * Partial fill: a block is read from disk in units (4 KiB for blocks up
 * to 256 KiB) as readers ask for them, so a cold boot reads the bytes
 * clients read, not whole blocks around them; a sequential reader still
 * gets one read per block (cache.c).
 *
 * Single flight: the first request to miss a unit becomes the loader; every
 * other request for a block while it loads waits on it, then checks again
 * (cache_recheck). Each unit is read from disk once. Waiters on other
 * workers are handed their completion through that worker's mailbox
 * (worker.h).
 *
 * Replacement is 2Q-like and scan resistant: a newly loaded block enters
 * the probationary FIFO (A1, a quarter of the cache). It is promoted to the
 * protected set (Am, CLOCK) only when a *different* connection reads it
 * (or when it is loaded again soon after eviction: the ghost list). A
 * client streaming through a large file touches each block from one
 * connection only, so it churns A1 and never displaces Am, where the
 * blocks every client reads at boot live.
 *
 * Locking: one mutex guards the table and lists; it is held for a few
 * pointer operations per block, never across I/O.
 */
#ifndef BL_CACHE_H
#define BL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

struct cblock;
struct image;

/* A request waiting for a block to load. */
struct cwait {
	struct cwait *next;
	struct worker *w;                     /* the waiter's worker: the callback runs there */
	void (*fn)(struct cwait *wt, int res); /* res 0 or -errno */
	int res;
};

enum cache_get_result {
	CACHE_HIT,      /* the range is filled, block pinned: data usable now */
	CACHE_LOAD,     /* pinned, caller is the loader: call cache_load(); wt->fn runs after */
	CACHE_WAIT,     /* pinned, a load is in flight: wt->fn runs after it, then cache_recheck() */
	CACHE_FULL,     /* every block is pinned (or the block failed): read without the cache */
};

/* Size the pool (bytes, block size in bytes: power of two, 4 KiB..1 MiB). */
int cache_init(uint64_t bytes, uint32_t block_size);
/* Change the size live: shrinking evicts (pinned blocks go when unpinned). */
void cache_resize(uint64_t bytes);
void cache_shutdown(void);
uint32_t cache_block_size(void);
bool cache_enabled(void);

/* Find or create block blk of img for a reader of bytes [lo, hi) of it
 * (0 <= lo < hi <= block size) on connection conn_id; seq: the read
 * continues the connection's last one, so a load runs on to the end of the
 * block. On CACHE_LOAD and CACHE_WAIT, wt (with w and fn set) is queued.
 * The block is pinned (*out set) in every case but CACHE_FULL from a full
 * cache. */
enum cache_get_result cache_get(struct image *img, uint64_t blk, uint32_t lo, uint32_t hi, bool seq,
				uint64_t conn_id, struct cwait *wt, struct cblock **out);
/* After wt->fn ran with 0: is [lo, hi) of the pinned block b filled now?
 * Same results as cache_get (CACHE_FULL: the block failed meanwhile; it
 * stays pinned). */
enum cache_get_result cache_recheck(struct cblock *b, struct image *img, uint32_t lo, uint32_t hi,
				    bool seq, struct cwait *wt);
/* As the loader, read the units cache_get chose from the image on w's
 * ring; waiters and the loader's own wt are called when it completes. */
void cache_load(struct cblock *b, struct worker *w, struct cwait *wt);
/* Prefetch: load the block if absent, without waiting for it. */
void cache_prefetch(struct image *img, uint64_t blk, struct worker *w);
/* Data of a pinned block (valid where a get or recheck said CACHE_HIT). */
uint8_t *cache_data(struct cblock *b);
void cache_unpin(struct cblock *b);
/* Drop every block of an image (image replaced or removed). */
void cache_forget_image(int64_t image_id);

struct cache_stats {
	uint64_t capacity_bytes, used_bytes, block_size;
	uint64_t hits, misses, waits, disk_reads, disk_bytes, evictions, promotions, errors;
	uint64_t blocks, a1_blocks, am_blocks, pinned;
};
void cache_get_stats(struct cache_stats *s);

/* Check every invariant (lists, counts, table); for assert() in tests. */
bool cache_sane(void);

#endif
