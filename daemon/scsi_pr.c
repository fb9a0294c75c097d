/* scsi_pr.c — persistent reservations; see scsi_pr.h.
 *
 * One state per logical unit name in a registry (a list under one mutex:
 * taken at session start and end only). Each state has its own mutex for
 * PERSISTENT RESERVE commands and for access checks while a reservation
 * exists; its reservation type is also kept in an atomic byte so that the
 * access check of every READ and WRITE costs one load when nothing is
 * reserved.
 *
 * The SPC-2 reservation is the holder's port name (empty: none) with an
 * atomic flag beside it for the same one-load check.
 *
 * Registrations are an array (order of registration, swap-removed). The
 * reservation holder is flagged on its registration; with the All
 * Registrants types every registrant holds the reservation.
 */
#include "scsi_pr.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SA_REGISTER           0
#define SA_RESERVE            1
#define SA_RELEASE            2
#define SA_CLEAR              3
#define SA_PREEMPT            4
#define SA_PREEMPT_ABORT      5
#define SA_REGISTER_IGNORE    6

#define SA_READ_KEYS          0
#define SA_READ_RESERVATION   1
#define SA_REPORT_CAPS        2
#define SA_READ_FULL_STATUS   3

struct pr_reg {
	uint64_t key;
	bool holder;                 /* holds the reservation (not used for the AR types) */
	char port[SCSI_PR_PORT_MAX];
};

struct scsi_pr {
	struct scsi_pr *next;        /* registry list */
	int refs;                    /* under reg_mu */
	pthread_mutex_t mu;
	uint8_t type;                /* enum scsi_pr_type, 0 = not reserved; written under mu, read atomically */
	uint32_t gen;                /* PRgeneration */
	bool r6;                     /* SPC-2 reservation held (by r6_port); written under mu, read atomically */
	char r6_port[SCSI_PR_PORT_MAX];
	int nreg;
	struct pr_reg reg[SCSI_PR_MAX_REG];
	char name[];
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct scsi_pr *registry;

struct scsi_pr *scsi_pr_get(const char *name)
{
	pthread_mutex_lock(&reg_mu);
	struct scsi_pr *pr;
	for (pr = registry; pr; pr = pr->next)
		if (strcmp(pr->name, name) == 0)
			break;
	if (!pr) {
		size_t n = strlen(name) + 1;
		pr = calloc(1, sizeof *pr + n);
		if (pr) {
			memcpy(pr->name, name, n);
			pthread_mutex_init(&pr->mu, NULL);
			pr->next = registry;
			registry = pr;
		}
	}
	if (pr)
		pr->refs++;
	pthread_mutex_unlock(&reg_mu);
	return pr;
}

void scsi_pr_put(struct scsi_pr *pr)
{
	if (!pr)
		return;
	pthread_mutex_lock(&reg_mu);
	if (--pr->refs == 0) {
		pthread_mutex_lock(&pr->mu);
		bool empty = pr->nreg == 0 && pr->type == 0 && !pr->r6;
		pthread_mutex_unlock(&pr->mu);
		if (empty) {
			struct scsi_pr **pp = &registry;
			while (*pp != pr)
				pp = &(*pp)->next;
			*pp = pr->next;
			pthread_mutex_destroy(&pr->mu);
			free(pr);
		}
	}
	pthread_mutex_unlock(&reg_mu);
}

static bool type_valid(uint8_t t)
{
	return t == PR_WRITE_EXCLUSIVE || t == PR_EXCLUSIVE_ACCESS || t == PR_WRITE_EXCLUSIVE_RO ||
	       t == PR_EXCLUSIVE_ACCESS_RO || t == PR_WRITE_EXCLUSIVE_AR || t == PR_EXCLUSIVE_ACCESS_AR;
}

static bool type_all_reg(uint8_t t)
{
	return t == PR_WRITE_EXCLUSIVE_AR || t == PR_EXCLUSIVE_ACCESS_AR;
}

static bool type_write_excl(uint8_t t)
{
	return t == PR_WRITE_EXCLUSIVE || t == PR_WRITE_EXCLUSIVE_RO || t == PR_WRITE_EXCLUSIVE_AR;
}

static void set_type(struct scsi_pr *pr, uint8_t t)
{
	__atomic_store_n(&pr->type, t, __ATOMIC_RELEASE);
}

/* Index of port's registration, or -1. Under mu. */
static int find(const struct scsi_pr *pr, const char *port)
{
	for (int i = 0; i < pr->nreg; i++)
		if (strcmp(pr->reg[i].port, port) == 0)
			return i;
	return -1;
}

/* Does registration i hold the reservation? Under mu. */
static bool is_holder(const struct scsi_pr *pr, int i)
{
	return pr->type && (type_all_reg(pr->type) || pr->reg[i].holder);
}

/* Drop the reservation (not the registrations). Under mu. */
static void release(struct scsi_pr *pr)
{
	set_type(pr, 0);
	for (int i = 0; i < pr->nreg; i++)
		pr->reg[i].holder = false;
}

/* Remove registration i; a holder going away releases the reservation
 * (with the AR types: the last registrant going away). Under mu. */
static void unregister(struct scsi_pr *pr, int i)
{
	bool was_holder = pr->reg[i].holder;
	pr->reg[i] = pr->reg[--pr->nreg];
	if (pr->type && (type_all_reg(pr->type) ? pr->nreg == 0 : was_holder))
		release(pr);
}

bool scsi_pr_conflict(struct scsi_pr *pr, const char *port, bool write)
{
	if (!pr)
		return false;
	uint8_t t = __atomic_load_n(&pr->type, __ATOMIC_ACQUIRE);
	bool r6 = __atomic_load_n(&pr->r6, __ATOMIC_ACQUIRE);
	if (!r6 && (!t || (!write && type_write_excl(t))))
		return false;
	pthread_mutex_lock(&pr->mu);
	bool conflict = false;
	t = pr->type;
	if (pr->r6) {
		conflict = strcmp(pr->r6_port, port) != 0;
	} else if (t && (write || !type_write_excl(t))) {
		int i = find(pr, port);
		bool registrants = t >= PR_WRITE_EXCLUSIVE_RO; /* RO and AR types: every registrant has access */
		conflict = !(i >= 0 && (registrants || pr->reg[i].holder));
	}
	pthread_mutex_unlock(&pr->mu);
	return conflict;
}

enum scsi_pr_result scsi_pr_reserve6(struct scsi_pr *pr, const char *port)
{
	if (!pr)
		return PR_NO_RESOURCES;
	enum scsi_pr_result res = PR_OK;
	pthread_mutex_lock(&pr->mu);
	if (pr->nreg || pr->type || (pr->r6 && strcmp(pr->r6_port, port) != 0)) {
		res = PR_CONFLICT;
	} else {
		snprintf(pr->r6_port, sizeof pr->r6_port, "%s", port);
		__atomic_store_n(&pr->r6, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&pr->mu);
	return res;
}

enum scsi_pr_result scsi_pr_release6(struct scsi_pr *pr, const char *port)
{
	scsi_pr_reset(pr, port);
	return PR_OK;
}

void scsi_pr_reset(struct scsi_pr *pr, const char *port)
{
	if (!pr || !__atomic_load_n(&pr->r6, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&pr->mu);
	if (pr->r6 && (!port || strcmp(pr->r6_port, port) == 0)) {
		__atomic_store_n(&pr->r6, false, __ATOMIC_RELEASE);
		pr->r6_port[0] = 0;
	}
	pthread_mutex_unlock(&pr->mu);
}

/* REGISTER and REGISTER AND IGNORE EXISTING KEY. Under mu. */
static enum scsi_pr_result do_register(struct scsi_pr *pr, const char *port, bool ignore, uint64_t rk,
				       uint64_t sark)
{
	int i = find(pr, port);
	if (i < 0) {
		if (!ignore && rk != 0)
			return PR_CONFLICT;
		if (sark == 0)
			return PR_OK;
		if (pr->nreg == SCSI_PR_MAX_REG)
			return PR_NO_RESOURCES;
		struct pr_reg *r = &pr->reg[pr->nreg++];
		r->key = sark;
		r->holder = false;
		snprintf(r->port, sizeof r->port, "%s", port);
	} else {
		if (!ignore && pr->reg[i].key != rk)
			return PR_CONFLICT;
		if (sark == 0)
			unregister(pr, i);
		else
			pr->reg[i].key = sark;
	}
	pr->gen++;
	return PR_OK;
}

/* PREEMPT (and PREEMPT AND ABORT) by registration self. Under mu. */
static enum scsi_pr_result do_preempt(struct scsi_pr *pr, int self, uint8_t type, uint64_t sark)
{
	bool take = false;     /* the preemptor takes the reservation */
	bool all = false;      /* remove every other registration, whatever its key */
	if (pr->type && type_all_reg(pr->type)) {
		if (sark == 0)
			take = all = true;
	} else if (pr->type) {
		for (int i = 0; i < pr->nreg; i++)
			if (pr->reg[i].holder && pr->reg[i].key == sark)
				take = true;
	}
	if (!take && sark == 0)
		return PR_BAD_PARAM;
	if (take && !type_valid(type))
		return PR_BAD_TYPE;
	char me[SCSI_PR_PORT_MAX];
	memcpy(me, pr->reg[self].port, sizeof me);
	int removed = 0;
	for (int i = 0; i < pr->nreg;) {
		if (strcmp(pr->reg[i].port, me) != 0 && (all || pr->reg[i].key == sark)) {
			pr->reg[i] = pr->reg[--pr->nreg];
			removed++;
		} else {
			i++;
		}
	}
	if (!take && removed == 0)
		return PR_CONFLICT;
	if (take) {
		release(pr);
		pr->reg[find(pr, me)].holder = true;
		set_type(pr, type);
	} else if (pr->type && type_all_reg(pr->type) && pr->nreg == 0) {
		release(pr);
	}
	pr->gen++;
	return PR_OK;
}

enum scsi_pr_result scsi_pr_out(struct scsi_pr *pr, const char *port, uint8_t sa, uint8_t type,
				uint64_t rk, uint64_t sark)
{
	if (!pr)
		return PR_NO_RESOURCES;
	pthread_mutex_lock(&pr->mu);
	enum scsi_pr_result res = PR_OK;
	if (pr->r6 && strcmp(pr->r6_port, port) != 0) {
		res = PR_CONFLICT; /* SPC-2 reserved by another nexus */
		goto out;
	}
	if (sa == SA_REGISTER || sa == SA_REGISTER_IGNORE) {
		res = do_register(pr, port, sa == SA_REGISTER_IGNORE, rk, sark);
		goto out;
	}
	int i = find(pr, port);
	if (i < 0 || pr->reg[i].key != rk) {
		res = PR_CONFLICT;
		goto out;
	}
	switch (sa) {
	case SA_RESERVE:
		if (!type_valid(type))
			res = PR_BAD_TYPE;
		else if (pr->type)
			res = is_holder(pr, i) && pr->type == type ? PR_OK : PR_CONFLICT;
		else {
			pr->reg[i].holder = true;
			set_type(pr, type);
		}
		break;
	case SA_RELEASE:
		if (!is_holder(pr, i))
			break; /* nothing to release: GOOD */
		if (type != pr->type)
			res = PR_BAD_RELEASE;
		else
			release(pr);
		break;
	case SA_CLEAR:
		pr->nreg = 0;
		release(pr);
		pr->gen++;
		break;
	case SA_PREEMPT:
	case SA_PREEMPT_ABORT:
		res = do_preempt(pr, i, type, sark);
		break;
	default:
		res = PR_BAD_TYPE;
		break;
	}
out:
	pthread_mutex_unlock(&pr->mu);
	return res;
}

/* An iSCSI TransportID (format 01b: initiator port name) for port at p
 * (room for it assumed); returns its length, a multiple of 4, at least 24. */
static uint32_t transport_id(uint8_t *p, uint8_t proto, const char *port)
{
	uint32_t n = (uint32_t)strlen(port) + 1;
	n = (n + 3) & ~3u;
	if (n < 20)
		n = 20;
	memset(p, 0, 4 + n);
	p[0] = 0x40 | (proto & 0x0f);
	put_be16(p + 2, (uint16_t)n);
	memcpy(p + 4, port, strlen(port));
	return 4 + n;
}

int scsi_pr_in(struct scsi_pr *pr, uint8_t sa, uint8_t proto, uint8_t *tmp)
{
	if (sa > SA_READ_FULL_STATUS)
		return -1;
	if (sa == SA_REPORT_CAPS) {
		uint8_t c[8] = { 0, 8, 0, 0x80 /* TMV: the type mask is valid */, 0, 0, 0, 0 };
		c[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; /* WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX */
		c[5] = 0x01;                              /* EX_AC_AR */
		memcpy(tmp, c, sizeof c);
		return sizeof c;
	}
	uint32_t len = 8;
	memset(tmp, 0, 8);
	if (pr) {
		pthread_mutex_lock(&pr->mu);
		put_be32(tmp, pr->gen);
		if (sa == SA_READ_KEYS) {
			for (int i = 0; i < pr->nreg; i++, len += 8)
				put_be64(tmp + len, pr->reg[i].key);
		} else if (sa == SA_READ_RESERVATION && pr->type) {
			uint8_t *d = tmp + len;
			memset(d, 0, 16);
			for (int i = 0; i < pr->nreg && !type_all_reg(pr->type); i++)
				if (pr->reg[i].holder)
					put_be64(d, pr->reg[i].key);
			d[13] = pr->type; /* scope 0: logical unit */
			len += 16;
		} else if (sa == SA_READ_FULL_STATUS) {
			for (int i = 0; i < pr->nreg; i++) {
				uint8_t *d = tmp + len;
				memset(d, 0, 24);
				put_be64(d, pr->reg[i].key);
				if (is_holder(pr, i)) {
					d[12] = 0x01; /* R_HOLDER */
					d[13] = pr->type;
				}
				put_be16(d + 18, 1); /* relative target port identifier */
				uint32_t t = transport_id(d + 24, proto, pr->reg[i].port);
				put_be32(d + 20, t);
				len += 24 + t;
			}
		}
		pthread_mutex_unlock(&pr->mu);
	}
	put_be32(tmp + 4, len - 8);
	return (int)len;
}
