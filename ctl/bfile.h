/* bfile.h — copying a file while taking its SHA-256 (backup and restore).
 *
 * bootlinkctl backup copies every image version's files into the backup
 * directory and restore copies them back out; both need the checksum of
 * what was copied, and neither should inflate sparse files (an overlay
 * delta is a disk-sized file with few data blocks). One function does
 * both in one read: data extents are read and written, holes are skipped
 * in the copy and hashed as the zeros they read as, so the sum is the
 * same as `sha256sum FILE` and the copy is as sparse as the source.
 *
 * Returns 0 or -errno with a one-line reason naming the file in err.
 */
#ifndef CTL_BFILE_H
#define CTL_BFILE_H

#include "ident.h"

#include <stddef.h>
#include <stdint.h>

/* Copy src to a new file dst (created exclusively, mode 0640, fsync'ed
 * when done), the same size, holes kept; sum gets the SHA-256 hex of the
 * content, *size its size. cb (may be NULL) gets (bytes done, size) after
 * each chunk; a non-zero return stops with -ECANCELED (dst is left for
 * the caller to remove). dst NULL: only the checksum. */
int bfile_copy_sum(const char *src, const char *dst, uint64_t *size, char sum[IDENT_SUM_LEN],
		   ident_progress_fn cb, void *arg, char *err, size_t errlen);

/* Write a small text file atomically and durably: dst.tmp, fsync, rename,
 * fsync of the directory. */
int bfile_write_text(const char *dst, const char *text, size_t len, char *err, size_t errlen);

/* fsync the directory holding path (after a rename into it). 0 or -errno. */
int bfile_sync_dir(const char *path);

#endif
