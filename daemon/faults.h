/* faults.h — test-only fault injection at the completions of disk I/O.
 *
 * Only the test build bootlinkd-faults injects anything: it links faults.c;
 * bootlinkd links faults_none.c, where g_faults_armed stays 0 and a
 * non-empty `debug/faults` setting is ignored with a warning. The hooks
 * below therefore cost one relaxed load per disk completion in the release
 * build.
 *
 * `debug/faults` (live) holds rules separated by ';', each
 *
 *   SITE KIND [image=NAME] [client=MAC] [off=START-END] [ms=N]
 *
 *   SITE   image-read     base image and committed-delta reads (the cache's loads)
 *          overlay-read   reads of a client's overlay data file
 *          overlay-write  writes to a client's overlay data file
 *          overlay-flush  fdatasync of a client's overlay files
 *   KIND   eio            the operation fails with EIO
 *          enospc         ... with ENOSPC
 *          short          it transfers half of what it did (4 KiB multiples):
 *                         the caller must go on with the rest
 *          delay          its completion is delivered N ms late (ms=, default
 *                         500) through an io_uring timeout: nothing blocks
 *
 * image= matches the image's name, client= the client's MAC (any spelling),
 * off= byte range of the image or disk the operation must touch. The first
 * matching rule applies. Image faults are shared by every client of the
 * image (the cache loads a block once for all); overlay faults belong to one
 * client.
 */
#ifndef BL_FAULTS_H
#define BL_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

enum fault_site { FS_IMAGE_READ, FS_OVERLAY_READ, FS_OVERLAY_WRITE, FS_OVERLAY_FLUSH };

/* Where a completion comes from, for matching rules. */
struct fault_ctx {
	enum fault_site site;
	const char *image;       /* image name, or NULL */
	const char *client;      /* client MAC (overlay name), or NULL */
	uint64_t off, len;       /* byte range the operation covers */
};

/* Nonzero while rules are loaded (fault builds only). */
extern int g_faults_armed;

/* Replace the rules with those in spec ("" = none). Main thread only.
 * Returns 0, or -EINVAL with a one-line reason in err. */
int faults_configure(const char *spec, char *err, size_t errlen);
/* Log how often each rule fired and free every rule set (after the workers stopped). */
void faults_shutdown(void);

/* The slow path of fault_inject(). */
bool faults_hook(struct uop *op, struct worker *w, const struct fault_ctx *fc, int *res, uint32_t flags);

/* Call first in a disk completion callback op->cb(op, *res, flags) running on w.
 * May rewrite *res (an error, a shorter transfer) and return false: carry on
 * with it; or return true: the completion was taken over (delay) and op->cb
 * will be called again later with the same arguments: return at once. */
static inline bool fault_inject(struct uop *op, struct worker *w, const struct fault_ctx *fc, int *res,
				uint32_t flags)
{
	if (__builtin_expect(!__atomic_load_n(&g_faults_armed, __ATOMIC_RELAXED), 1))
		return false;
	return faults_hook(op, w, fc, res, flags);
}

#endif
