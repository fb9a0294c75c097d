/* overlay.h — one client's write-back overlay: where its writes live.
 *
 * The overlay divides the disk into blocks of ov->bsize bytes (its
 * granularity: a power of two from OV_BLOCK_MIN, 4 KiB, to OV_BLOCK_MAX,
 * 1 MiB; overlay/block_kb, 4 KiB by default, when the overlay is created).
 * A persistent overlay keeps the granularity it was created with (its .info
 * file records it) whatever the setting says later; a committed version's
 * delta keeps its own (versions.block_size). Each block is in one of four
 * states:
 *
 *   ABSENT   never written: reads come from the image below
 *   ZERO     trimmed or zeroed: reads return zeros, no space is held
 *   RAM      data in a RAM slot (ephemeral overlays, up to overlay/ram_mb)
 *   FILE     data in the overlay's data file, at the same offset as on the disk
 *
 * The data file is sparse and the same size as the disk, so a partial write
 * to a FILE block is a plain write at its byte offset and a trim punches a
 * hole. Ephemeral overlays fill RAM first and spill to an unnamed
 * (O_TMPFILE) data file that vanishes with the process; they never fsync.
 * Persistent and maintenance overlays write everything to a named data file
 * and keep the block states in a map file (2 bits per block); a flush makes
 * acknowledged writes durable: fdatasync(data), then the dirty map pages,
 * then fdatasync(map). A block becomes FILE in memory only when its data
 * write has completed, so a map page on disk never names data that was not
 * synced before it.
 *
 * The map is two-level (a leaf of OV_LEAF_BLOCKS states per 16 MiB of disk,
 * allocated on first write), so an untouched 100 GiB disk costs a few KiB.
 * Every map access holds ov->lock; no I/O is ever done under it.
 */
#ifndef BL_OVERLAY_H
#define BL_OVERLAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h" /* struct cwait: waiters are handed to their own worker */

#define OV_BLOCK_MIN 4096u            /* smallest granularity; every other one is a multiple */
#define OV_BLOCK_MAX (1u << 20)       /* largest granularity */
#define OV_BLOCK_DEFAULT 4096u        /* what an overlay without a recorded granularity has */
#define OV_LEAF_BLOCKS 4096u          /* blocks per leaf (16 MiB of disk at 4 KiB) */
#define OV_MAP_PAGE 4096u             /* bytes of map file per dirty-tracking page */
#define OV_BLOCKS_PER_MAP_PAGE (OV_MAP_PAGE * 4)

enum ov_state { OV_ABSENT = 0, OV_ZERO = 1, OV_FILE = 2, OV_RAM = 3 };

struct ov_leaf {
	uint32_t loc[OV_LEAF_BLOCKS];     /* state in the top 2 bits, RAM slot in the rest */
};

struct overlay {
	pthread_mutex_t lock;
	char name[40];                    /* client MAC, for logs */
	int mode;                         /* enum db_overlay_mode */
	uint64_t size, nblocks;
	uint32_t bsize;                   /* granularity in bytes (power of two, OV_BLOCK_MIN..OV_BLOCK_MAX) */
	struct ov_leaf **leaves;
	size_t nleaves;
	/* RAM tier */
	uint8_t **ram_chunks;             /* 1 MiB chunks of bsize slots */
	uint32_t ram_max, ram_used, ram_alloc; /* slots allowed / in use / mapped */
	uint32_t *ram_free;               /* stack of free slot numbers */
	uint32_t ram_nfree;
	/* file tier */
	int data_fd, map_fd;              /* map_fd -1 for ephemeral */
	char dir[1024];                   /* where the files live (or would) */
	char data_path[1100], map_path[1100];
	uint64_t file_blocks;             /* blocks in FILE state */
	uint8_t *map_dirty;               /* per map page: 1 if it changed since the last flush */
	size_t map_pages;
	/* blocks whose first write is in flight: later writes to them wait */
	uint64_t *busy;
	size_t nbusy, capbusy;
	struct cwait *waiters;            /* writes waiting for a busy block */
	/* flush rounds (persistent) */
	bool flushing;
	struct cwait *flush_wait, *flush_next;
	/* counters */
	uint64_t stat_writes, stat_bytes_written, stat_errors, stat_enospc, stat_flushes;
	uint64_t stat_reads, stat_bytes_read;   /* read requests, counted when they start */
	uint64_t last_error_log_ns;
	int last_errno;                   /* last I/O error other than ENOSPC (the disk may be failing) */
};

/* True if bsize is a granularity an overlay may have. */
bool overlay_bsize_valid(uint64_t bsize);

/* Create an overlay for a disk of `size` bytes in dir, in blocks of bsize
 * bytes (overlay_bsize_valid). Ephemeral: an unnamed data file, RAM up to
 * ram_bytes. Persistent/maintenance: files <dir>/<file_stem>.data and .map,
 * loaded if they exist (the caller passes the granularity they were made
 * with). err gets a one-line reason on failure. */
int overlay_open(const char *name, int mode, uint64_t size, uint32_t bsize, const char *dir,
		 const char *file_stem, uint64_t ram_bytes, struct overlay **out, char *err, size_t errlen);
/* Open a committed version's delta (data + map, blocks of bsize) read-only. */
int overlay_open_ro(const char *name, uint64_t size, uint32_t bsize, const char *data_path,
		    const char *map_path, struct overlay **out, char *err, size_t errlen);
void overlay_close(struct overlay *ov);
/* Make everything written so far durable, synchronously (blocking I/O: for
 * closing and shutdown, never on the request path). 0 or -errno. */
int overlay_sync_now(struct overlay *ov);
/* Delete a persistent overlay's files (overlay reset). */
int overlay_remove_files(const char *dir, const char *file_stem);

/* State of block b and, for RAM, its memory. Caller holds ov->lock. */
enum ov_state ov_get(const struct overlay *ov, uint64_t b, uint8_t **ram);
/* Set block b's state (caller holds ov->lock); frees a RAM slot it leaves,
 * marks the map page dirty. Returns -ENOMEM if a leaf cannot be allocated. */
int ov_set(struct overlay *ov, uint64_t b, enum ov_state st);
/* Give block b a RAM slot (state RAM) and return its memory, or NULL if the
 * RAM tier is full or off. Caller holds ov->lock. */
uint8_t *ov_ram_alloc(struct overlay *ov, uint64_t b);

/* Busy blocks (first write in flight). Caller holds ov->lock. */
bool ov_busy(const struct overlay *ov, uint64_t b);
int ov_busy_add(struct overlay *ov, uint64_t b);
void ov_busy_del(struct overlay *ov, uint64_t b);

/* Encode map page p (OV_MAP_PAGE bytes, 2 bits per block) from memory. Caller holds ov->lock. */
void ov_encode_page(const struct overlay *ov, size_t p, uint8_t *out);
/* Bytes held: RAM slots in use, data file blocks. */
uint64_t ov_ram_bytes(const struct overlay *ov);
uint64_t ov_file_bytes(const struct overlay *ov);

/* Check the map against its counters (assert() in tests). Caller holds ov->lock. */
bool ov_sane(const struct overlay *ov);

#endif
