/* bootev.c — see bootev.h. A mutex-protected array and an eventfd; the
 * mutex is taken once per boot script served and once per main-thread
 * wake-up, never on the data path. */
#include "bootev.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "util.h"

struct boot {
	char mac[MAC_STR_LEN];
	char text[BOOTEV_TEXT_MAX];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct boot queue[BOOTEV_QUEUE_MAX];
static int nqueue;
static uint64_t dropped;           /* noted while the queue was full, since the last run */
static int efd = -1;

int bootev_init(void)
{
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return efd < 0 ? -errno : 0;
}

int bootev_fd(void)
{
	return efd;
}

void bootev_note(const char *mac, const char *text)
{
	pthread_mutex_lock(&lock);
	if (nqueue == BOOTEV_QUEUE_MAX) {
		dropped++;
	} else {
		snprintf(queue[nqueue].mac, sizeof queue[nqueue].mac, "%s", mac);
		snprintf(queue[nqueue].text, sizeof queue[nqueue].text, "%s", text);
		nqueue++;
	}
	pthread_mutex_unlock(&lock);
	uint64_t one = 1;
	if (efd >= 0 && write(efd, &one, sizeof one) < 0 && errno != EAGAIN)
		log_warn("bootev: cannot wake the main thread: %s", strerror(errno));
}

/* Record one boot inside the open transaction: 0, or -errno. A MAC the
 * database no longer has (removed meanwhile) is skipped. */
static int record(struct db *db, const struct boot *b, int64_t now)
{
	struct db_client cl;
	if (db_client_get(db, b->mac, &cl) < 0)
		return 0;
	cl.last_seen = now;
	int r = db_client_update(db, &cl);
	return r < 0 ? r : db_event_add(db, b->mac, "boot", b->text);
}

int bootev_run(struct db *db)
{
	static struct boot batch[BOOTEV_QUEUE_MAX]; /* main thread only */
	uint64_t v, lost;
	if (efd >= 0 && read(efd, &v, sizeof v) < 0 && errno != EAGAIN)
		log_warn("bootev: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&lock);
	int n = nqueue;
	memcpy(batch, queue, (size_t)n * sizeof batch[0]);
	nqueue = 0;
	lost = dropped;
	dropped = 0;
	pthread_mutex_unlock(&lock);
	if (lost)
		log_warn("bootev: %llu boots in a burst were not recorded as events (more than %d at once)",
			 (unsigned long long)lost, BOOTEV_QUEUE_MAX);
	if (n == 0)
		return 0;
	int64_t now = (int64_t)time(NULL);
	int r = db_begin(db);
	for (int i = 0; i < n && r == 0; i++)
		r = record(db, &batch[i], now);
	if (r == 0)
		r = db_commit(db);
	if (r < 0) {
		db_rollback(db);
		log_err("bootev: %d boots not recorded in the database: %s", n, strerror(-r));
		return r;
	}
	return n;
}

void bootev_shutdown(void)
{
	if (efd >= 0)
		close(efd);
	efd = -1;
}
