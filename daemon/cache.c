/* cache.c — see cache.h for the design.
 *
 * Block life: spare (no memory) ─grow─► free ─get─► VALID (hashed, in A1
 * or Am; some units filled) ─evict─► free (or spare when shrinking).
 * A load error unhashes the block (DEAD); it returns to free when its last
 * pin goes.
 *
 * Partial fill: a block is filled in units (4 KiB, or block/64 for blocks
 * over 256 KiB) as readers ask for them: `have` is the mask of filled
 * units, `loading` the units of the one load in flight. A reader whose
 * units are all in `have` hits; else it waits for the load in flight, or
 * becomes the loader of the first run of units it lacks; when the read
 * continues its connection's previous one (seq), the load runs on through
 * the block's missing units to its end, so a sequential reader costs one
 * disk read per block. Every unit is read from disk at most once while
 * its block stays cached.
 *
 * Memory comes in chunks of CHUNK_BLOCKS blocks mapped on demand, so an
 * idle cache costs nothing; shrinking returns pages with MADV_DONTNEED and
 * keeps the address range for reuse.
 */
#include "cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "image.h"
#include "log.h"
#include "util.h"

#define CHUNK_BYTES (4u << 20)

enum { B_FREE, B_VALID, B_DEAD };
enum { L_NONE, L_FREE, L_SPARE, L_A1, L_AM };

struct cblock {
	struct image_read rd;        /* the loader's read (base + version deltas) */
	struct cblock *hnext;        /* hash chain */
	struct cblock *prev, *next;  /* list (free, spare, A1, Am) */
	int64_t img_id;
	uint64_t blk;
	uint8_t *data;
	struct image *img;           /* held while loading */
	struct worker *lw;           /* loader's worker */
	struct cwait *waiters;
	uint64_t loader_conn;
	uint64_t have, loading;      /* filled units; units of the load in flight */
	uint32_t want;               /* bytes of the block inside the image */
	uint32_t load_off, load_len; /* the load in flight, within the block */
	int pins;
	uint8_t state, list;
	bool ref;                    /* CLOCK bit (Am) */
	bool has_mem;
};

struct list {
	struct cblock head;
	size_t n;
};

struct ghost {
	int64_t img_id;
	uint64_t blk;
	struct ghost *hnext;
	bool used;
};

static struct {
	pthread_mutex_t lock;
	bool on;
	uint32_t bs;
	unsigned ushift, units;     /* fill unit: 1 << ushift bytes, units per block (<= 64) */
	uint64_t capacity;          /* blocks allowed */
	uint64_t active;            /* blocks with memory */
	struct cblock **table;
	size_t tmask;
	struct list freel, spare, a1, am;
	struct cblock *hand;        /* CLOCK hand in Am */
	struct ghost *gpool, **gtable;
	size_t gn, gpos, gmask;
	struct cache_stats st;
} C = { .lock = PTHREAD_MUTEX_INITIALIZER };

static inline size_t hash_key(int64_t id, uint64_t blk)
{
	uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ull ^ (blk * 0xc2b2ae3d27d4eb4full);
	return (size_t)(h ^ (h >> 29));
}

static void list_init(struct list *l)
{
	l->head.next = l->head.prev = &l->head;
	l->n = 0;
}

static void list_add_tail(struct list *l, struct cblock *b, int tag)
{
	b->prev = l->head.prev;
	b->next = &l->head;
	l->head.prev->next = b;
	l->head.prev = b;
	l->n++;
	b->list = tag;
}

static struct list *list_of(struct cblock *b)
{
	switch (b->list) {
	case L_FREE: return &C.freel;
	case L_SPARE: return &C.spare;
	case L_A1: return &C.a1;
	case L_AM: return &C.am;
	}
	return NULL;
}

static void list_del(struct cblock *b)
{
	struct list *l = list_of(b);
	if (!l)
		return;
	if (C.hand == b)
		C.hand = b->next;
	b->prev->next = b->next;
	b->next->prev = b->prev;
	l->n--;
	b->list = L_NONE;
}

/* --- hash table of blocks --- */

static struct cblock **slot_of(int64_t id, uint64_t blk)
{
	return &C.table[hash_key(id, blk) & C.tmask];
}

static struct cblock *lookup(int64_t id, uint64_t blk)
{
	for (struct cblock *b = *slot_of(id, blk); b; b = b->hnext)
		if (b->img_id == id && b->blk == blk)
			return b;
	return NULL;
}

static void unhash(struct cblock *b)
{
	for (struct cblock **p = slot_of(b->img_id, b->blk); *p; p = &(*p)->hnext)
		if (*p == b) {
			*p = b->hnext;
			return;
		}
}

static int table_resize(size_t want_blocks)
{
	size_t n = 1024;
	while (n < want_blocks * 2)
		n *= 2;
	if (C.table && n <= C.tmask + 1)
		return 0;
	struct cblock **t = calloc(n, sizeof *t);
	if (!t)
		return -ENOMEM;
	if (C.table)
		for (size_t i = 0; i <= C.tmask; i++)
			for (struct cblock *b = C.table[i], *nx; b; b = nx) {
				nx = b->hnext;
				size_t s = hash_key(b->img_id, b->blk) & (n - 1);
				b->hnext = t[s];
				t[s] = b;
			}
	free(C.table);
	C.table = t;
	C.tmask = n - 1;
	return 0;
}

/* --- ghost list: keys of blocks recently evicted from A1 --- */

static int ghost_resize(size_t n)
{
	size_t tn = 64;
	while (tn < n * 2)
		tn *= 2;
	struct ghost *pool = calloc(n ? n : 1, sizeof *pool);
	struct ghost **t = calloc(tn, sizeof *t);
	if (!pool || !t) {
		free(pool);
		free(t);
		return -ENOMEM;
	}
	free(C.gpool);
	free(C.gtable);
	C.gpool = pool;
	C.gtable = t;
	C.gn = n;
	C.gpos = 0;
	C.gmask = tn - 1;
	return 0;
}

static void ghost_unlink(struct ghost *g)
{
	for (struct ghost **p = &C.gtable[hash_key(g->img_id, g->blk) & C.gmask]; *p; p = &(*p)->hnext)
		if (*p == g) {
			*p = g->hnext;
			break;
		}
	g->used = false;
}

static void ghost_add(int64_t id, uint64_t blk)
{
	if (!C.gn)
		return;
	struct ghost *g = &C.gpool[C.gpos];
	C.gpos = (C.gpos + 1) % C.gn;
	if (g->used)
		ghost_unlink(g);
	g->img_id = id;
	g->blk = blk;
	g->used = true;
	struct ghost **s = &C.gtable[hash_key(id, blk) & C.gmask];
	g->hnext = *s;
	*s = g;
}

/* True (and forgotten) if the key was recently evicted from A1. */
static bool ghost_take(int64_t id, uint64_t blk)
{
	if (!C.gn)
		return false;
	for (struct ghost *g = C.gtable[hash_key(id, blk) & C.gmask]; g; g = g->hnext)
		if (g->img_id == id && g->blk == blk) {
			ghost_unlink(g);
			return true;
		}
	return false;
}

/* --- memory --- */

/* Map one more chunk of blocks onto the free list. */
static int grow_chunk(void)
{
	uint32_t per = MAX(CHUNK_BYTES / C.bs, 1u);
	size_t len = (size_t)per * C.bs;
	void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct cblock *bl = calloc(per, sizeof *bl);
	if (mem == MAP_FAILED || !bl) {
		if (mem != MAP_FAILED)
			munmap(mem, len);
		free(bl);
		return -ENOMEM;
	}
	/* No MADV_HUGEPAGE: with THP defrag=madvise (Debian's default) every first
	 * fault in such a range compacts memory synchronously, and cold loads (the
	 * first boot storm) ran at a third of the disk's speed (bench/limits.sh,
	 * "cold": 300-400 MiB/s with it, 830-940 without, 1 GiB image). */
	for (uint32_t i = 0; i < per; i++) {
		bl[i].data = (uint8_t *)mem + (size_t)i * C.bs;
		bl[i].has_mem = true;
		list_add_tail(&C.freel, &bl[i], L_FREE);
	}
	C.active += per;
	return 0;
}

/* Give a free block's memory back (shrinking). */
static void to_spare(struct cblock *b)
{
	madvise(b->data, C.bs, MADV_DONTNEED);
	b->state = B_FREE;
	list_add_tail(&C.spare, b, L_SPARE);
	C.active--;
}

/* Release an unpinned, evicted or dead block to free (or spare if over capacity). */
static void release_block(struct cblock *b)
{
	b->state = B_FREE;
	b->waiters = NULL;
	if (C.active > C.capacity)
		to_spare(b);
	else
		list_add_tail(&C.freel, b, L_FREE);
}

/* Evict one unpinned valid block (A1 first while it is over its share).
 * Returns it unlinked from table and lists, or NULL. */
static struct cblock *evict_one(void)
{
	uint64_t kin = MAX(C.capacity / 4, 1);
	for (int pass = 0; pass < 2; pass++) {
		bool from_a1 = pass == 0 ? (C.a1.n > kin || C.am.n == 0) : true;
		if (from_a1) {
			for (struct cblock *b = C.a1.head.next; b != &C.a1.head; b = b->next)
				if (!b->pins && b->state == B_VALID) {
					list_del(b);
					unhash(b);
					ghost_add(b->img_id, b->blk);
					C.st.evictions++;
					return b;
				}
			continue;
		}
		/* CLOCK over Am: clear reference bits until an unreferenced, unpinned block. */
		for (size_t steps = 0; steps < 2 * C.am.n + 2; steps++) {
			if (!C.hand || C.hand == &C.am.head)
				C.hand = C.am.head.next;
			struct cblock *b = C.hand;
			if (b == &C.am.head)
				break;
			C.hand = b->next;
			if (b->pins || b->state != B_VALID)
				continue;
			if (b->ref) {
				b->ref = false;
				continue;
			}
			list_del(b);
			unhash(b);
			C.st.evictions++;
			return b;
		}
	}
	return NULL;
}

/* A block to load into, or NULL if everything is pinned. */
static struct cblock *take_block(void)
{
	struct cblock *b;
	if (C.freel.n) {
		b = C.freel.head.next;
		list_del(b);
		return b;
	}
	if (C.active < C.capacity) {
		if (C.spare.n) {
			b = C.spare.head.next;
			list_del(b);
			C.active++;
			return b;
		}
		if (grow_chunk() == 0)
			return take_block();
	}
	return evict_one();
}

/* --- public --- */

int cache_init(uint64_t bytes, uint32_t block_size)
{
	if (block_size < 4096 || block_size > (1u << 20) || (block_size & (block_size - 1)))
		return -EINVAL;
	pthread_mutex_lock(&C.lock);
	C.bs = block_size;
	C.ushift = 12;
	while ((block_size >> C.ushift) > 64)
		C.ushift++;
	C.units = block_size >> C.ushift;
	list_init(&C.freel);
	list_init(&C.spare);
	list_init(&C.a1);
	list_init(&C.am);
	C.capacity = bytes / block_size;
	C.on = C.capacity > 0;
	int r = table_resize(C.capacity);
	if (r == 0)
		r = ghost_resize(C.capacity / 2);
	pthread_mutex_unlock(&C.lock);
	return r;
}

void cache_resize(uint64_t bytes)
{
	pthread_mutex_lock(&C.lock);
	uint64_t cap = bytes / C.bs;
	if (cap > C.capacity) {
		table_resize(cap);
		ghost_resize(cap / 2);
	}
	C.capacity = cap;
	C.on = cap > 0;
	while (C.active > C.capacity && C.freel.n) {
		struct cblock *b = C.freel.head.next;
		list_del(b);
		to_spare(b);
	}
	while (C.active > C.capacity) {
		struct cblock *b = evict_one();
		if (!b)
			break; /* the rest go as they are unpinned */
		to_spare(b);
	}
	pthread_mutex_unlock(&C.lock);
}

uint32_t cache_block_size(void)
{
	return C.bs;
}

bool cache_enabled(void)
{
	return __atomic_load_n(&C.on, __ATOMIC_RELAXED);
}

/* Units [u0, u1] as a mask. */
static inline uint64_t unit_run(unsigned u0, unsigned u1)
{
	unsigned n = u1 - u0 + 1;
	return (n >= 64 ? ~0ull : (1ull << n) - 1) << u0;
}

/* Units covering bytes [lo, hi) of a block (lo < hi <= block size). */
static inline uint64_t units_of(uint32_t lo, uint32_t hi)
{
	return unit_run(lo >> C.ushift, (hi - 1) >> C.ushift);
}

static inline bool has_unit(uint64_t m, unsigned u)
{
	return u < 64 && (m >> u) & 1;
}

/* Under the lock: a pinned, hashed block, and the units a reader needs.
 * HIT, or wt is queued and the result says whether the caller loads. */
static enum cache_get_result ensure(struct cblock *b, uint64_t need, bool seq, struct cwait *wt)
{
	if (b->state == B_DEAD)
		return CACHE_FULL; /* its last load failed: read around the cache */
	uint64_t miss = need & ~b->have;
	if (!miss) {
		C.st.hits++;
		return CACHE_HIT;
	}
	wt->next = b->waiters;
	b->waiters = wt;
	if (b->loading) {
		C.st.waits++;
		return CACHE_WAIT;
	}
	C.st.misses++;
	unsigned u0 = (unsigned)__builtin_ctzll(miss), u1 = u0;
	while (u1 + 1 < C.units && !has_unit(b->have, u1 + 1) && (seq || has_unit(need, u1 + 1)))
		u1++;
	b->loading = unit_run(u0, u1);
	b->load_off = u0 << C.ushift;
	b->load_len = MIN((u1 + 1) << C.ushift, ALIGN_UP(b->want, IMAGE_ALIGN)) - b->load_off;
	return CACHE_LOAD;
}

/* ensure(), and a loader holds the image until its read is done. */
static enum cache_get_result ensure_load(struct cblock *b, struct image *img, uint64_t need, bool seq,
					 struct cwait *wt)
{
	enum cache_get_result r = ensure(b, need, seq, wt);
	if (r == CACHE_LOAD) {
		b->img = img;
		image_get(img);
	}
	return r;
}

enum cache_get_result cache_get(struct image *img, uint64_t blk, uint32_t lo, uint32_t hi, bool seq,
				uint64_t conn_id, struct cwait *wt, struct cblock **out)
{
	uint64_t need = units_of(lo, hi);
	pthread_mutex_lock(&C.lock);
	struct cblock *b = lookup(img->id, blk);
	if (b) {
		b->pins++;
		*out = b;
		/* A second connection wants it (now or while it loads): protect it. */
		if (b->list == L_A1 && conn_id != b->loader_conn) {
			list_del(b);
			list_add_tail(&C.am, b, L_AM);
			C.st.promotions++;
		}
		b->ref = true;
		enum cache_get_result r = ensure_load(b, img, need, seq, wt);
		pthread_mutex_unlock(&C.lock);
		return r;
	}
	b = take_block();
	if (!b) {
		C.st.misses++;
		pthread_mutex_unlock(&C.lock);
		return CACHE_FULL;
	}
	b->img_id = img->id;
	b->blk = blk;
	b->state = B_VALID;
	b->pins = 1;
	b->ref = false;
	b->loader_conn = conn_id;
	uint64_t off = blk * C.bs;
	b->want = off < img->size ? (uint32_t)MIN((uint64_t)C.bs, img->size - off) : 0;
	/* Units wholly past the end of the image have nothing to read. */
	b->have = b->want ? ~unit_run(0, (b->want - 1) >> C.ushift) : ~0ull;
	b->loading = 0;
	b->waiters = NULL;
	struct cblock **s = slot_of(b->img_id, blk);
	b->hnext = *s;
	*s = b;
	if (ghost_take(img->id, blk))
		list_add_tail(&C.am, b, L_AM);
	else
		list_add_tail(&C.a1, b, L_A1);
	*out = b;
	enum cache_get_result r = ensure_load(b, img, need, seq, wt);
	pthread_mutex_unlock(&C.lock);
	return r;
}

enum cache_get_result cache_recheck(struct cblock *b, struct image *img, uint32_t lo, uint32_t hi,
				    bool seq, struct cwait *wt)
{
	pthread_mutex_lock(&C.lock);
	enum cache_get_result r = ensure_load(b, img, units_of(lo, hi), seq, wt);
	pthread_mutex_unlock(&C.lock);
	return r;
}

static void load_finish(struct cblock *b, int res)
{
	struct image *img = b->img;
	pthread_mutex_lock(&C.lock);
	struct cwait *wt = b->waiters;
	b->waiters = NULL;
	b->img = NULL;
	C.st.disk_reads++;
	C.st.disk_bytes += b->rd.got;
	if (res == 0) {
		b->have |= b->loading;
		b->loading = 0;
	} else {
		/* Unhash so the next reader retries; freed at the last unpin. */
		C.st.errors++;
		list_del(b);
		unhash(b);
		b->state = B_DEAD;
		b->loading = 0;
	}
	pthread_mutex_unlock(&C.lock);
	struct worker *self = b->lw;
	image_put(img);
	worker_wake_list(wt, self, res);
}

static void on_load(struct image_read *rd, int res)
{
	load_finish((struct cblock *)rd, res);
}

void cache_load(struct cblock *b, struct worker *w, struct cwait *wt)
{
	(void)wt;
	b->lw = w;
	b->rd.done = on_load;
	/* Whole 4 KiB units (O_DIRECT); the read stops at the end of the file. */
	image_read_into(&b->rd, w, b->img, b->blk * C.bs + b->load_off, b->load_len, b->data + b->load_off);
}

/* A prefetch is a waiter with nobody behind it: it only unpins. */
struct prefetch {
	struct cwait wt;   /* first: the callback gets this pointer */
	struct cblock *b;
};

static void prefetch_done(struct cwait *wt, int res)
{
	struct prefetch *p = (struct prefetch *)wt;
	(void)res;
	cache_unpin(p->b);
	free(p);
}

void cache_prefetch(struct image *img, uint64_t blk, struct worker *w)
{
	struct prefetch *p = malloc(sizeof *p);
	if (!p)
		return;
	p->wt.w = w;
	p->wt.fn = prefetch_done;
	switch (cache_get(img, blk, 0, C.bs, false, 0, &p->wt, &p->b)) {
	case CACHE_HIT:
		cache_unpin(p->b);
		free(p);
		break;
	case CACHE_FULL:
		free(p);
		break;
	case CACHE_LOAD:
		cache_load(p->b, w, &p->wt);
		break;
	case CACHE_WAIT:
		break; /* prefetch_done runs when the load finishes */
	}
}

uint8_t *cache_data(struct cblock *b)
{
	return b->data;
}

void cache_unpin(struct cblock *b)
{
	pthread_mutex_lock(&C.lock);
	if (--b->pins == 0) {
		if (b->state == B_DEAD) {
			release_block(b);
		} else if (C.active > C.capacity && b->state == B_VALID) {
			list_del(b);
			unhash(b);
			C.st.evictions++;
			to_spare(b);
		}
	}
	pthread_mutex_unlock(&C.lock);
}

void cache_forget_image(int64_t image_id)
{
	pthread_mutex_lock(&C.lock);
	struct list *ls[] = { &C.a1, &C.am };
	for (int i = 0; i < 2; i++)
		for (struct cblock *b = ls[i]->head.next, *n; b != &ls[i]->head; b = n) {
			n = b->next;
			if (b->img_id != image_id || b->pins || b->state != B_VALID)
				continue;
			list_del(b);
			unhash(b);
			release_block(b);
		}
	pthread_mutex_unlock(&C.lock);
}

void cache_get_stats(struct cache_stats *s)
{
	pthread_mutex_lock(&C.lock);
	*s = C.st;
	s->block_size = C.bs;
	s->capacity_bytes = C.capacity * C.bs;
	s->used_bytes = (C.a1.n + C.am.n) * (uint64_t)C.bs;
	s->blocks = C.a1.n + C.am.n;
	s->a1_blocks = C.a1.n;
	s->am_blocks = C.am.n;
	pthread_mutex_unlock(&C.lock);
}

void cache_shutdown(void)
{
	/* Chunks stay mapped until exit; nothing to do that the kernel won't. */
}

bool cache_sane(void)
{
	pthread_mutex_lock(&C.lock);
	bool ok = true;
	struct list *ls[] = { &C.freel, &C.spare, &C.a1, &C.am };
	int tags[] = { L_FREE, L_SPARE, L_A1, L_AM };
	size_t total = 0;
	for (int i = 0; i < 4; i++) {
		size_t n = 0;
		for (struct cblock *b = ls[i]->head.next; b != &ls[i]->head; b = b->next, n++) {
			ok &= b->list == tags[i] && b->next->prev == b;
			if (tags[i] >= L_A1)
				ok &= lookup(b->img_id, b->blk) == b && b->state == B_VALID;
		}
		ok &= n == ls[i]->n;
		total += n;
	}
	ok &= C.active >= C.freel.n + C.a1.n + C.am.n; /* the rest are dead blocks awaiting unpin */
	(void)total;
	pthread_mutex_unlock(&C.lock);
	return ok;
}
