/* faults.c — fault injection for bootlinkd-faults (tests only); see faults.h.
 *
 * The rules are an immutable array published through one pointer: the main
 * thread builds a new set and swaps it in; workers read whatever set is
 * current. Retired sets are kept (they are tiny and changed a few times per
 * test) and freed by faults_shutdown() once no worker runs.
 *
 * A delayed completion is parked in a struct fdelay that carries the
 * original uop, result and flags; an io_uring timeout on the same worker
 * fires after the delay and replays op->cb() with a thread-local flag set,
 * so the replay is not delayed (or faulted) again.
 */
#include "faults.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define FAULT_RULES_MAX 32
#define FAULT_SPEC_WORD 64

enum fault_kind { FK_EIO, FK_ENOSPC, FK_SHORT, FK_DELAY };

struct fault_rule {
	enum fault_site site;
	enum fault_kind kind;
	char image[64];             /* "" = any */
	char client[16];            /* 12 lowercase hex digits, "" = any */
	uint64_t start, end;        /* byte range; end 0 = no range */
	unsigned ms;                /* FK_DELAY */
	char text[160];             /* the rule as written, for logs */
	uint64_t hits;              /* relaxed atomic */
};

struct fault_set {
	struct fault_set *retired;  /* older sets, freed at shutdown */
	int n;
	struct fault_rule r[FAULT_RULES_MAX];
};

/* A completion held back by a delay rule. */
struct fdelay {
	struct uop uop;             /* first: the timeout's user_data */
	struct __kernel_timespec ts;
	struct uop *orig;
	int res;
	uint32_t flags;
};

int g_faults_armed;
static struct fault_set *cur;       /* published with release/acquire */
static struct fault_set *retired;   /* main thread only */
static __thread bool replaying;

static const char *const site_names[] = { "image-read", "overlay-read", "overlay-write", "overlay-flush" };
static const char *const kind_names[] = { "eio", "enospc", "short", "delay" };

/* Index of word in names[n], or -1. */
static int lookup(const char *const *names, int n, const char *word)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], word) == 0)
			return i;
	return -1;
}

/* A MAC in any spelling → 12 lowercase hex digits; false if it is not one. */
static bool mac_norm(const char *in, char out[16])
{
	int n = 0;
	for (; *in; in++) {
		if (isxdigit((unsigned char)*in)) {
			if (n == 12)
				return false;
			out[n++] = (char)tolower((unsigned char)*in);
		} else if (*in != ':' && *in != '-' && *in != '.') {
			return false;
		}
	}
	out[n] = 0;
	return n == 12;
}

/* Parse one rule (words separated by blanks) into r. 0 or -EINVAL with err set. */
static int parse_rule(char *s, struct fault_rule *r, char *err, size_t errlen)
{
	char *save = NULL, *w;
	int i = 0;
	memset(r, 0, sizeof *r);
	s += strspn(s, " \t\n");
	snprintf(r->text, sizeof r->text, "%s", s);
	for (size_t n = strlen(r->text); n && isspace((unsigned char)r->text[n - 1]); n--)
		r->text[n - 1] = 0;
	r->ms = 500;
	for (w = strtok_r(s, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save), i++) {
		char *eq = strchr(w, '=');
		int k;
		if (i == 0 && (k = lookup(site_names, (int)ARRAY_SIZE(site_names), w)) >= 0) {
			r->site = k;
		} else if (i == 1 && (k = lookup(kind_names, (int)ARRAY_SIZE(kind_names), w)) >= 0) {
			r->kind = k;
		} else if (i >= 2 && eq && strncmp(w, "image=", 6) == 0 && strlen(eq + 1) < sizeof r->image) {
			snprintf(r->image, sizeof r->image, "%s", eq + 1);
		} else if (i >= 2 && eq && strncmp(w, "client=", 7) == 0 && mac_norm(eq + 1, r->client)) {
			;
		} else if (i >= 2 && eq && strncmp(w, "off=", 4) == 0 &&
			   sscanf(eq + 1, "%" SCNu64 "-%" SCNu64, &r->start, &r->end) == 2 && r->end > r->start) {
			;
		} else if (i >= 2 && eq && strncmp(w, "ms=", 3) == 0 && sscanf(eq + 1, "%u", &r->ms) == 1 &&
			   r->ms > 0 && r->ms <= 600000) {
			;
		} else {
			snprintf(err, errlen, "debug/faults: '%.*s' in rule '%s' is not valid: expected "
				 "SITE KIND [image=NAME] [client=MAC] [off=START-END] [ms=N]",
				 FAULT_SPEC_WORD, w, r->text);
			return -EINVAL;
		}
	}
	if (i < 2) {
		snprintf(err, errlen, "debug/faults: rule '%s' needs a site and a kind", r->text);
		return -EINVAL;
	}
	return 0;
}

int faults_configure(const char *spec, char *err, size_t errlen)
{
	struct fault_set *set = calloc(1, sizeof *set);
	char *copy = strdup(spec), *save = NULL, *rule;
	int rc = 0;
	if (!set || !copy) {
		free(set);
		free(copy);
		snprintf(err, errlen, "debug/faults: out of memory");
		return -ENOMEM;
	}
	for (rule = strtok_r(copy, ";", &save); rule; rule = strtok_r(NULL, ";", &save)) {
		if (strspn(rule, " \t\n") == strlen(rule))
			continue;
		if (set->n == FAULT_RULES_MAX) {
			snprintf(err, errlen, "debug/faults: more than %d rules", FAULT_RULES_MAX);
			rc = -EINVAL;
			break;
		}
		rc = parse_rule(rule, &set->r[set->n], err, errlen);
		if (rc < 0)
			break;
		set->n++;
	}
	free(copy);
	if (rc < 0) {
		free(set);
		return rc;
	}
	struct fault_set *old = __atomic_load_n(&cur, __ATOMIC_RELAXED);
	if (old) {
		old->retired = retired;
		retired = old;
	}
	__atomic_store_n(&cur, set, __ATOMIC_RELEASE);
	__atomic_store_n(&g_faults_armed, set->n > 0, __ATOMIC_RELAXED);
	for (int i = 0; i < set->n; i++)
		log_warn("fault injection: rule %d: %s", i + 1, set->r[i].text);
	if (!set->n && old && old->n)
		log_warn("fault injection: no rules");
	return 0;
}

/* Log each rule's hits in set. */
static void log_hits(const struct fault_set *set)
{
	for (int i = 0; i < set->n; i++)
		log_info("fault injection: rule '%s' hit %llu times", set->r[i].text,
			 (unsigned long long)__atomic_load_n(&set->r[i].hits, __ATOMIC_RELAXED));
}

void faults_shutdown(void)
{
	struct fault_set *s = cur;
	cur = NULL;
	g_faults_armed = 0;
	if (s)
		log_hits(s);
	free(s);
	while (retired) {
		s = retired;
		retired = s->retired;
		log_hits(s);
		free(s);
	}
}

/* Does rule r apply to the operation fc? */
static bool matches(const struct fault_rule *r, const struct fault_ctx *fc)
{
	char mac[16];
	if (r->site != fc->site)
		return false;
	if (r->image[0] && (!fc->image || strcmp(r->image, fc->image) != 0))
		return false;
	if (r->client[0] && (!fc->client || !mac_norm(fc->client, mac) || strcmp(mac, r->client) != 0))
		return false;
	if (r->end && (fc->off >= r->end || fc->off + fc->len <= r->start))
		return false;
	return true;
}

/* The delay is over: deliver the held completion (not faulted again). */
static void delay_fired(struct uop *op, int res, uint32_t flags)
{
	struct fdelay *d = (struct fdelay *)op;
	(void)res;
	(void)flags;
	replaying = true;
	d->orig->cb(d->orig, d->res, d->flags);
	replaying = false;
	free(d);
}

bool faults_hook(struct uop *op, struct worker *w, const struct fault_ctx *fc, int *res, uint32_t flags)
{
	if (replaying)
		return false;
	struct fault_set *set = __atomic_load_n(&cur, __ATOMIC_ACQUIRE);
	struct fault_rule *r = NULL;
	for (int i = 0; set && i < set->n && !r; i++)
		if (matches(&set->r[i], fc))
			r = &set->r[i];
	if (!r || *res == -EAGAIN || *res == -EINTR)
		return false;
	if (__atomic_fetch_add(&r->hits, 1, __ATOMIC_RELAXED) == 0)
		log_warn("fault injection: '%s' fires first at offset %llu length %llu (res %d)", r->text,
			 (unsigned long long)fc->off, (unsigned long long)fc->len, *res);
	switch (r->kind) {
	case FK_EIO:
		*res = -EIO;
		return false;
	case FK_ENOSPC:
		*res = -ENOSPC;
		return false;
	case FK_SHORT:
		if (*res >= 8192)
			*res = (int)ALIGN_DOWN((unsigned)*res / 2, 4096u);
		return false;
	case FK_DELAY: {
		struct fdelay *d = calloc(1, sizeof *d);
		if (!d)
			return false; /* no memory: deliver on time */
		d->uop.cb = delay_fired;
		d->orig = op;
		d->res = *res;
		d->flags = flags;
		d->ts.tv_sec = r->ms / 1000;
		d->ts.tv_nsec = (long long)(r->ms % 1000) * 1000000;
		struct io_uring_sqe *sqe = worker_sqe(w);
		io_uring_prep_timeout(sqe, &d->ts, 0, 0);
		io_uring_sqe_set_data64(sqe, ud_make(&d->uop, UD_OP));
		return true;
	}
	}
	return false;
}
