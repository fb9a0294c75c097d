/* overlay_map.c — the overlay's block map, RAM tier, files and persistence
 * format; see overlay.h. The I/O paths are in overlay_io.c.
 *
 * Map file format (persistent overlays): a flat array of 2-bit states, four
 * blocks per byte, block b in byte b/4 at bits 2*(b%4); 0 = absent,
 * 1 = zero, 2 = file. A never-written region is a hole in the file.
 */
#include "overlay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "util.h"

#define LOC_STATE(v) ((enum ov_state)((v) >> 30))
#define LOC_SLOT(v)  ((v) & 0x3fffffffu)
#define LOC(st, slot) (((uint32_t)(st) << 30) | (slot))
#define RAM_CHUNK (1u << 20)

/* RAM slots (of ov->bsize bytes) in one RAM_CHUNK: at least one. */
static inline uint32_t slots_per_chunk(const struct overlay *ov)
{
	return RAM_CHUNK / ov->bsize;
}

bool overlay_bsize_valid(uint64_t bsize)
{
	return bsize >= OV_BLOCK_MIN && bsize <= OV_BLOCK_MAX && (bsize & (bsize - 1)) == 0;
}

enum ov_state ov_get(const struct overlay *ov, uint64_t b, uint8_t **ram)
{
	const struct ov_leaf *l = ov->leaves[b / OV_LEAF_BLOCKS];
	if (!l)
		return OV_ABSENT;
	uint32_t v = l->loc[b % OV_LEAF_BLOCKS];
	enum ov_state st = LOC_STATE(v);
	if (st == OV_RAM && ram) {
		uint32_t s = LOC_SLOT(v);
		*ram = ov->ram_chunks[s / slots_per_chunk(ov)] + (size_t)(s % slots_per_chunk(ov)) * ov->bsize;
	}
	return st;
}

static struct ov_leaf *leaf_for(struct overlay *ov, uint64_t b)
{
	struct ov_leaf **l = &ov->leaves[b / OV_LEAF_BLOCKS];
	if (!*l)
		*l = calloc(1, sizeof **l);
	return *l;
}

static void slot_free(struct overlay *ov, uint32_t s)
{
	ov->ram_free[ov->ram_nfree++] = s;
	ov->ram_used--;
}

static void mark_dirty(struct overlay *ov, uint64_t b)
{
	if (ov->map_dirty)
		ov->map_dirty[b / OV_BLOCKS_PER_MAP_PAGE] = 1;
}

int ov_set(struct overlay *ov, uint64_t b, enum ov_state st)
{
	struct ov_leaf *l = leaf_for(ov, b);
	if (!l)
		return -ENOMEM;
	uint32_t *v = &l->loc[b % OV_LEAF_BLOCKS];
	enum ov_state old = LOC_STATE(*v);
	if (old == OV_RAM && st != OV_RAM)
		slot_free(ov, LOC_SLOT(*v));
	if (old == OV_FILE && st != OV_FILE)
		ov->file_blocks--;
	if (st == OV_FILE && old != OV_FILE)
		ov->file_blocks++;
	if (st != OV_RAM)
		*v = LOC(st, 0);
	if ((old == OV_FILE || old == OV_ZERO || st == OV_FILE || st == OV_ZERO) && old != st)
		mark_dirty(ov, b);
	return 0;
}

/* Map one more 1 MiB chunk of RAM slots. */
static int ram_grow(struct overlay *ov)
{
	size_t nchunks = ov->ram_alloc / slots_per_chunk(ov);
	uint8_t **nc = realloc(ov->ram_chunks, (nchunks + 1) * sizeof *nc);
	if (!nc)
		return -ENOMEM;
	ov->ram_chunks = nc;
	void *m = mmap(NULL, RAM_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	nc[nchunks] = m;
	for (uint32_t i = slots_per_chunk(ov); i-- > 0;)
		ov->ram_free[ov->ram_nfree++] = ov->ram_alloc + i;
	ov->ram_alloc += slots_per_chunk(ov);
	return 0;
}

uint8_t *ov_ram_alloc(struct overlay *ov, uint64_t b)
{
	uint8_t *mem;
	if (ov_get(ov, b, &mem) == OV_RAM)
		return mem;
	if (ov->ram_used >= ov->ram_max)
		return NULL;
	if (!ov->ram_nfree && ram_grow(ov) < 0)
		return NULL;
	struct ov_leaf *l = leaf_for(ov, b);
	if (!l)
		return NULL;
	uint32_t *v = &l->loc[b % OV_LEAF_BLOCKS];
	if (LOC_STATE(*v) == OV_FILE)
		ov->file_blocks--;
	uint32_t s = ov->ram_free[--ov->ram_nfree];
	ov->ram_used++;
	*v = LOC(OV_RAM, s);
	ov_get(ov, b, &mem);
	return mem;
}

bool ov_busy(const struct overlay *ov, uint64_t b)
{
	for (size_t i = 0; i < ov->nbusy; i++)
		if (ov->busy[i] == b)
			return true;
	return false;
}

int ov_busy_add(struct overlay *ov, uint64_t b)
{
	if (ov->nbusy == ov->capbusy) {
		size_t cap = ov->capbusy ? ov->capbusy * 2 : 16;
		uint64_t *nb = realloc(ov->busy, cap * sizeof *nb);
		if (!nb)
			return -ENOMEM;
		ov->busy = nb;
		ov->capbusy = cap;
	}
	ov->busy[ov->nbusy++] = b;
	return 0;
}

void ov_busy_del(struct overlay *ov, uint64_t b)
{
	for (size_t i = 0; i < ov->nbusy; i++)
		if (ov->busy[i] == b) {
			ov->busy[i] = ov->busy[--ov->nbusy];
			return;
		}
}

void ov_encode_page(const struct overlay *ov, size_t p, uint8_t *out)
{
	memset(out, 0, OV_MAP_PAGE);
	uint64_t first = (uint64_t)p * OV_BLOCKS_PER_MAP_PAGE;
	uint64_t last = MIN(first + OV_BLOCKS_PER_MAP_PAGE, ov->nblocks);
	for (uint64_t b = first; b < last; b++) {
		enum ov_state st = ov_get(ov, b, NULL);
		uint8_t code = st == OV_ZERO ? 1 : st == OV_FILE ? 2 : 0;
		out[(b - first) / 4] |= code << (2 * (b % 4));
	}
}

/* Load block states from the map file (persistent overlays). */
static int load_map(struct overlay *ov)
{
	uint8_t *page = malloc(OV_MAP_PAGE);
	if (!page)
		return -ENOMEM;
	int r = 0;
	for (size_t p = 0; p < ov->map_pages && r == 0; p++) {
		ssize_t n = pread(ov->map_fd, page, OV_MAP_PAGE, (off_t)p * OV_MAP_PAGE);
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n < (ssize_t)OV_MAP_PAGE)
			memset(page + n, 0, OV_MAP_PAGE - n);
		uint64_t first = (uint64_t)p * OV_BLOCKS_PER_MAP_PAGE;
		for (size_t i = 0; i < OV_MAP_PAGE && r == 0; i++) {
			if (!page[i])
				continue;
			for (int k = 0; k < 4; k++) {
				int code = (page[i] >> (2 * k)) & 3;
				uint64_t b = first + i * 4 + k;
				if (code && b < ov->nblocks)
					r = ov_set(ov, b, code == 1 ? OV_ZERO : OV_FILE);
			}
		}
	}
	free(page);
	memset(ov->map_dirty, 0, ov->map_pages);
	return r;
}

static int open_files(struct overlay *ov, const char *stem, char *err, size_t errlen)
{
	if (ov->mode == DB_MODE_EPHEMERAL) {
		ov->data_fd = open(ov->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		snprintf(ov->data_path, sizeof ov->data_path, "%s/(unnamed, %s)", ov->dir, stem);
	} else {
		snprintf(ov->data_path, sizeof ov->data_path, "%s/%s.data", ov->dir, stem);
		snprintf(ov->map_path, sizeof ov->map_path, "%s/%s.map", ov->dir, stem);
		ov->data_fd = open(ov->data_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (ov->data_fd >= 0)
			ov->map_fd = open(ov->map_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	}
	if (ov->data_fd < 0 || (ov->mode != DB_MODE_EPHEMERAL && ov->map_fd < 0)) {
		snprintf(err, errlen, "overlay for %s: cannot create files in %s: %s (check overlay/dirs)",
			 ov->name, ov->dir, strerror(errno));
		return -errno;
	}
	if (ftruncate(ov->data_fd, (off_t)ov->size) < 0) {
		snprintf(err, errlen, "overlay for %s: cannot size %s: %s", ov->name, ov->data_path, strerror(errno));
		return -errno;
	}
	/* The map is small (2 bits per block): reserve all of it now, so that
	 * recording blocks at a flush never fails for space on a full disk. */
	if (ov->map_fd >= 0 && ov->map_pages) {
		int r = posix_fallocate(ov->map_fd, 0, (off_t)ov->map_pages * OV_MAP_PAGE);
		if (r != 0 && r != EOPNOTSUPP) {
			snprintf(err, errlen, "overlay for %s: cannot reserve %s: %s (overlay disk full?)", ov->name,
				 ov->map_path, strerror(r));
			return -r;
		}
	}
	return 0;
}

/* Sizes that follow from ov->size and ov->bsize. */
static void set_geometry(struct overlay *ov, uint64_t size, uint32_t bsize)
{
	ov->size = size;
	ov->bsize = bsize;
	ov->nblocks = (size + bsize - 1) / bsize;
	ov->nleaves = (ov->nblocks + OV_LEAF_BLOCKS - 1) / OV_LEAF_BLOCKS;
	ov->map_pages = (ov->nblocks + OV_BLOCKS_PER_MAP_PAGE - 1) / OV_BLOCKS_PER_MAP_PAGE;
}

int overlay_open(const char *name, int mode, uint64_t size, uint32_t bsize, const char *dir,
		 const char *stem, uint64_t ram_bytes, struct overlay **out, char *err, size_t errlen)
{
	if (!overlay_bsize_valid(bsize)) {
		snprintf(err, errlen, "overlay for %s: invalid granularity %u bytes", name, bsize);
		return -EINVAL;
	}
	struct overlay *ov = calloc(1, sizeof *ov);
	if (!ov)
		return -ENOMEM;
	pthread_mutex_init(&ov->lock, NULL);
	snprintf(ov->name, sizeof ov->name, "%s", name);
	snprintf(ov->dir, sizeof ov->dir, "%s", dir);
	ov->mode = mode;
	set_geometry(ov, size, bsize);
	ov->data_fd = ov->map_fd = -1;
	ov->ram_max = mode == DB_MODE_EPHEMERAL ? (uint32_t)MIN(ram_bytes / bsize, 0x3fffffffull) : 0;
	ov->leaves = calloc(ov->nleaves ? ov->nleaves : 1, sizeof *ov->leaves);
	ov->ram_free = malloc(((size_t)ov->ram_max + slots_per_chunk(ov)) * sizeof *ov->ram_free);
	ov->map_dirty = calloc(ov->map_pages ? ov->map_pages : 1, 1);
	int r = -ENOMEM;
	if (!ov->leaves || !ov->ram_free || !ov->map_dirty) {
		snprintf(err, errlen, "overlay for %s: out of memory", name);
		goto fail;
	}
	r = open_files(ov, stem, err, errlen);
	if (r < 0)
		goto fail;
	if (ov->map_fd >= 0 && (r = load_map(ov)) < 0) {
		snprintf(err, errlen, "overlay for %s: cannot read %s: %s", name, ov->map_path, strerror(-r));
		goto fail;
	}
	*out = ov;
	return 0;
fail:
	overlay_close(ov);
	return r;
}

int overlay_open_ro(const char *name, uint64_t size, uint32_t bsize, const char *data_path,
		    const char *map_path, struct overlay **out, char *err, size_t errlen)
{
	if (!overlay_bsize_valid(bsize)) {
		snprintf(err, errlen, "image '%s': version %s has an invalid granularity (%u bytes)", name,
			 map_path, bsize);
		return -EINVAL;
	}
	struct overlay *ov = calloc(1, sizeof *ov);
	if (!ov)
		return -ENOMEM;
	pthread_mutex_init(&ov->lock, NULL);
	snprintf(ov->name, sizeof ov->name, "%s", name);
	snprintf(ov->data_path, sizeof ov->data_path, "%s", data_path);
	snprintf(ov->map_path, sizeof ov->map_path, "%s", map_path);
	ov->mode = DB_MODE_PERSISTENT;
	set_geometry(ov, size, bsize);
	ov->leaves = calloc(ov->nleaves ? ov->nleaves : 1, sizeof *ov->leaves);
	ov->map_dirty = calloc(ov->map_pages ? ov->map_pages : 1, 1);
	ov->ram_free = malloc(sizeof *ov->ram_free);
	ov->data_fd = open(data_path, O_RDONLY | O_CLOEXEC);
	ov->map_fd = ov->data_fd >= 0 ? open(map_path, O_RDONLY | O_CLOEXEC) : -1;
	int r;
	if (!ov->leaves || !ov->map_dirty || !ov->ram_free) {
		r = -ENOMEM;
		snprintf(err, errlen, "image '%s': out of memory loading a version", name);
	} else if (ov->data_fd < 0 || ov->map_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "image '%s': cannot open version file %s: %s", name,
			 ov->data_fd < 0 ? data_path : map_path, strerror(errno));
	} else if ((r = load_map(ov)) < 0) {
		snprintf(err, errlen, "image '%s': cannot read %s: %s", name, map_path, strerror(-r));
	}
	if (r < 0) {
		overlay_close(ov);
		return r;
	}
	*out = ov;
	return 0;
}

int overlay_sync_now(struct overlay *ov)
{
	if (ov->map_fd < 0 || ov->mode == DB_MODE_EPHEMERAL)
		return 0;
	uint8_t *page = malloc(OV_MAP_PAGE);
	if (!page)
		return -ENOMEM;
	int r = fdatasync(ov->data_fd) < 0 ? -errno : 0;
	pthread_mutex_lock(&ov->lock);
	for (size_t p = 0; p < ov->map_pages && r == 0; p++) {
		if (!ov->map_dirty[p])
			continue;
		ov_encode_page(ov, p, page);
		if (pwrite(ov->map_fd, page, OV_MAP_PAGE, (off_t)p * OV_MAP_PAGE) != (ssize_t)OV_MAP_PAGE)
			r = -errno ? -errno : -EIO;
		else
			ov->map_dirty[p] = 0;
	}
	pthread_mutex_unlock(&ov->lock);
	if (r == 0 && fdatasync(ov->map_fd) < 0)
		r = -errno;
	free(page);
	if (r < 0)
		log_err("client %s: saving the overlay map %s failed: %s", ov->name, ov->map_path, strerror(-r));
	return r;
}

void overlay_close(struct overlay *ov)
{
	if (!ov)
		return;
	for (size_t i = 0; i < ov->nleaves && ov->leaves; i++)
		free(ov->leaves[i]);
	free(ov->leaves);
	for (size_t i = 0; ov->bsize && i < ov->ram_alloc / slots_per_chunk(ov); i++)
		munmap(ov->ram_chunks[i], RAM_CHUNK);
	free(ov->ram_chunks);
	free(ov->ram_free);
	free(ov->map_dirty);
	free(ov->busy);
	if (ov->data_fd >= 0)
		close(ov->data_fd);
	if (ov->map_fd >= 0)
		close(ov->map_fd);
	pthread_mutex_destroy(&ov->lock);
	free(ov);
}

int overlay_remove_files(const char *dir, const char *stem)
{
	char p[1200];
	int r = 0;
	const char *ext[] = { "data", "map" };
	for (int i = 0; i < 2; i++) {
		snprintf(p, sizeof p, "%s/%s.%s", dir, stem, ext[i]);
		if (unlink(p) < 0 && errno != ENOENT)
			r = -errno;
	}
	return r;
}

uint64_t ov_ram_bytes(const struct overlay *ov)
{
	return (uint64_t)ov->ram_used * ov->bsize;
}

uint64_t ov_file_bytes(const struct overlay *ov)
{
	return ov->file_blocks * ov->bsize;
}

bool ov_sane(const struct overlay *ov)
{
	uint64_t ram = 0, file = 0;
	for (size_t i = 0; i < ov->nleaves; i++) {
		if (!ov->leaves[i])
			continue;
		for (uint32_t k = 0; k < OV_LEAF_BLOCKS; k++) {
			enum ov_state st = LOC_STATE(ov->leaves[i]->loc[k]);
			ram += st == OV_RAM;
			file += st == OV_FILE;
		}
	}
	return ram == ov->ram_used && file == ov->file_blocks && ov->ram_used <= ov->ram_max &&
	       ov->ram_nfree + ov->ram_used == ov->ram_alloc;
}
