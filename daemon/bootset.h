/* bootset.h — boot-set learning: which cache blocks of an image version
 * clients read while they boot, remembered across restarts, read ahead.
 *
 * Every read a client makes during its first cache/learn_s seconds after
 * connecting marks the cache blocks it touched in its image version's
 * bit set (one bit per cache block, lock-free atomic OR). The main thread
 * writes changed sets to <state>/bootsets/<version key>.bits now and then
 * and at exit. When a version is opened (daemon start, new version) and
 * cache/prefetch is 1, its saved set is read and every block in it is
 * loaded into the cache by a worker, so the first boot storm after a
 * restart already reads from RAM. Nothing learns across versions: a new
 * version learns its own set.
 */
#ifndef BL_BOOTSET_H
#define BL_BOOTSET_H

#include <stdbool.h>
#include <stdint.h>

struct image;
struct worker;

/* Settings: where sets live, the learning window, whether to prefetch. */
void bootset_configure(const char *state_dir, unsigned learn_s, bool prefetch);
/* Nanoseconds after a connection's start during which its reads are learned. */
uint64_t bootset_window_ns(void);
/* Mark cache blocks [b0, b1] of img as part of its boot set. */
void bootset_mark(struct image *img, uint64_t b0, uint64_t b1);
/* Write every changed set (main thread). */
void bootset_save_all(void);
/* Load img's saved set and read it into the cache on worker w (any thread). */
void bootset_prefetch(struct image *img, struct worker *w);
/* Blocks in img's set (for the runtime tree). */
uint64_t bootset_count(const struct image *img);

#endif
