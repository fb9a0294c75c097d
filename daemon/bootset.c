/* bootset.c — see bootset.h.
 *
 * File format: the raw bit array, bit b (byte b/8, bit b%8) = cache block b,
 * for the block size in the file name's companion: <key>.bits holds the
 * bits, and its first 8 bytes are the block size in bytes (little endian),
 * so a changed cache/block_kb simply ignores old sets.
 */
#include "bootset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "exports.h"
#include "image.h"
#include "log.h"
#include "util.h"
#include "worker.h"

static char state_dir[1024];
static uint64_t window_ns;
static bool do_prefetch;

void bootset_configure(const char *dir, unsigned learn_s, bool prefetch)
{
	snprintf(state_dir, sizeof state_dir, "%s/bootsets", dir);
	__atomic_store_n(&window_ns, (uint64_t)learn_s * 1000000000ull, __ATOMIC_RELAXED);
	do_prefetch = prefetch;
}

uint64_t bootset_window_ns(void)
{
	return __atomic_load_n(&window_ns, __ATOMIC_RELAXED);
}

/* The bit array of img, allocated on first use (atomic pointer install). */
static uint8_t *bits_of(struct image *img)
{
	uint8_t *b = __atomic_load_n(&img->bootset, __ATOMIC_ACQUIRE);
	if (b || !cache_enabled())
		return b;
	size_t len = (img->size / cache_block_size() + 8) / 8;
	uint8_t *nb = calloc(1, len);
	if (!nb)
		return NULL;
	uint8_t *expected = NULL;
	if (!__atomic_compare_exchange_n(&img->bootset, &expected, nb, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		free(nb);
		return expected;
	}
	img->bootset_len = len;
	img->bootset_bs = cache_block_size();
	return nb;
}

void bootset_mark(struct image *img, uint64_t b0, uint64_t b1)
{
	uint8_t *bits = bits_of(img);
	if (!bits)
		return;
	for (uint64_t b = b0; b <= b1 && b / 8 < img->bootset_len; b++) {
		uint8_t m = (uint8_t)(1u << (b % 8));
		if (!(__atomic_load_n(&bits[b / 8], __ATOMIC_RELAXED) & m)) {
			__atomic_fetch_or(&bits[b / 8], m, __ATOMIC_RELAXED);
			__atomic_store_n(&img->bootset_dirty, true, __ATOMIC_RELAXED);
		}
	}
}

static void path_of(const struct image *img, char *p, size_t len)
{
	snprintf(p, len, "%s/%lld.bits", state_dir, (long long)img->id);
}

static void save_one(struct image *img, void *arg)
{
	(void)arg;
	if (!__atomic_exchange_n(&img->bootset_dirty, false, __ATOMIC_RELAXED) || !img->bootset)
		return;
	char p[1200], tmp[1210];
	path_of(img, p, sizeof p);
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	uint64_t bs = img->bootset_bs;
	bool ok = fd >= 0 && write(fd, &bs, 8) == 8 &&
		  write(fd, img->bootset, img->bootset_len) == (ssize_t)img->bootset_len;
	if (fd >= 0)
		close(fd);
	if (!ok || rename(tmp, p) < 0) {
		log_warn("boot set of image '%s' not saved to %s: %s", img->name, p, strerror(errno));
		unlink(tmp);
		img->bootset_dirty = true;
	}
}

void bootset_save_all(void)
{
	if (mkdir_p(state_dir, 0755) < 0)
		return;
	exports_foreach_image(save_one, NULL);
}

uint64_t bootset_count(const struct image *img)
{
	uint64_t n = 0;
	const uint8_t *bits = __atomic_load_n(&img->bootset, __ATOMIC_ACQUIRE);
	for (size_t i = 0; bits && i < img->bootset_len; i++)
		n += (uint64_t)__builtin_popcount(bits[i]);
	return n;
}

/* A prefetch job runs on a worker (through its mailbox), in batches. */
struct pjob {
	struct cwait wt;          /* first: the mailbox hands us this */
	struct image *img;
	uint64_t next, nblocks;
	unsigned loaded;
};

#define PREFETCH_BATCH 256

static void pjob_run(struct cwait *wt, int res)
{
	struct pjob *j = (struct pjob *)wt;
	(void)res;
	unsigned n = 0;
	for (; j->next < j->nblocks && n < PREFETCH_BATCH; j->next++)
		if (j->img->bootset[j->next / 8] & (1u << (j->next % 8))) {
			cache_prefetch(j->img, j->next, j->wt.w);
			n++;
		}
	j->loaded += n;
	if (j->next < j->nblocks) {
		worker_post(j->wt.w, &j->wt); /* yield to the worker's other work between batches */
		return;
	}
	log_info("image '%s': boot set of %u blocks read ahead into the cache", j->img->name, j->loaded);
	image_put(j->img);
	free(j);
}

void bootset_prefetch(struct image *img, struct worker *w)
{
	if (!do_prefetch || !cache_enabled())
		return;
	char p[1200];
	path_of(img, p, sizeof p);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return; /* nothing learned yet */
	uint8_t *bits = bits_of(img);
	uint64_t bs = 0;
	bool ok = bits && read(fd, &bs, 8) == 8 && bs == cache_block_size() &&
		  read(fd, bits, img->bootset_len) >= 0;
	close(fd);
	struct pjob *j = ok ? calloc(1, sizeof *j) : NULL;
	if (!j)
		return;
	image_get(img);
	j->img = img;
	j->nblocks = img->bootset_len * 8;
	j->wt.w = w;
	j->wt.fn = pjob_run;
	worker_post(w, &j->wt);
}
