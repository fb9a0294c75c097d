/* faults_none.c — the release build's fault injection: none (see faults.h).
 * bootlinkd links this; bootlinkd-faults links faults.c. */
#include "faults.h"

#include "log.h"

int g_faults_armed;

/* Rules are ignored here; say so once per change, so a test run against the
 * wrong binary is obvious from the log. */
int faults_configure(const char *spec, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	if (spec[0])
		log_warn("debug/faults is set but this bootlinkd has no fault injection (build bootlinkd-faults); ignored");
	return 0;
}

void faults_shutdown(void)
{
}

bool faults_hook(struct uop *op, struct worker *w, const struct fault_ctx *fc, int *res, uint32_t flags)
{
	(void)op;
	(void)w;
	(void)fc;
	(void)res;
	(void)flags;
	return false;
}
