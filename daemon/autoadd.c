/* autoadd.c — see autoadd.h. A mutex-protected array of MACs and an
 * eventfd; the mutex is taken once per script fetch of an unknown PC and
 * once per main-thread wake-up, never on the data path. */
#include "autoadd.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "conf.h"
#include "db.h"
#include "log.h"
#include "util.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char queue[AUTOADD_QUEUE_MAX][MAC_STR_LEN];
static int nqueue;
static int efd = -1;

int autoadd_init(void)
{
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return efd < 0 ? -errno : 0;
}

int autoadd_fd(void)
{
	return efd;
}

int autoadd_request(const char *mac)
{
	int r = 0;
	pthread_mutex_lock(&lock);
	int i;
	for (i = 0; i < nqueue && strcmp(queue[i], mac) != 0; i++)
		;
	if (i == nqueue) {
		if (nqueue == AUTOADD_QUEUE_MAX)
			r = -EAGAIN;
		else
			snprintf(queue[nqueue++], MAC_STR_LEN, "%s", mac);
	}
	pthread_mutex_unlock(&lock);
	if (r == 0 && efd >= 0) {
		uint64_t one = 1;
		if (write(efd, &one, sizeof one) < 0 && errno != EAGAIN)
			log_warn("autoadd: cannot wake the main thread: %s", strerror(errno));
	}
	return r;
}

/* Register one MAC (not known yet) with the next free name. Returns 1 if
 * added, 0 if it already exists, -errno. */
static int register_one(struct db *db, const struct bl_conf *conf, const char *mac)
{
	struct db_client cl = { .mode = DB_MODE_EPHEMERAL };
	struct db_image img = { 0 };
	if (db_client_get(db, mac, &cl) == 0)
		return 0;
	if (conf->clients_default_image[0] && db_image_get(db, conf->clients_default_image, &img) < 0) {
		log_err("autoadd: clients/default_image '%s' is not an image; PC %s is registered without one "
			"(link it with: bootlinkctl client link %s IMAGE)", conf->clients_default_image, mac, mac);
		img.id = 0;
	}
	snprintf(cl.mac, sizeof cl.mac, "%.17s", mac);
	cl.image_id = img.id;
	int r = -EEXIST;
	/* bootlinkctl may take a name at the same time: try the next one. */
	for (int tries = 0; tries < 3 && r == -EEXIST; tries++) {
		if ((r = db_begin(db)) < 0)
			return r;
		if ((r = db_client_next_name(db, cl.name)) == 0 && (r = db_client_add(db, &cl)) == 0) {
			char text[DB_TEXT_MAX];
			snprintf(text, sizeof text, "autoadd: registered as %s, image %s (clients/autoadd = 1)", cl.name,
				 img.id ? img.name : "none");
			r = db_event_add(db, mac, "autoadd", text);
		}
		if (r == 0)
			r = db_commit(db);
		if (r < 0)
			db_rollback(db);
	}
	if (r < 0)
		return r;
	log_info("autoadd: new PC %s registered as %s, image %s", mac, cl.name, img.id ? img.name : "none");
	return 1;
}

int autoadd_run(struct db *db, const struct bl_conf *conf)
{
	char macs[AUTOADD_QUEUE_MAX][MAC_STR_LEN];
	uint64_t v;
	if (efd >= 0 && read(efd, &v, sizeof v) < 0 && errno != EAGAIN)
		log_warn("autoadd: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&lock);
	int n = nqueue;
	memcpy(macs, queue, sizeof macs);
	nqueue = 0;
	pthread_mutex_unlock(&lock);
	int added = 0;
	for (int i = 0; i < n; i++) {
		if (!conf->clients_autoadd) {
			log_info("autoadd: %s not registered: clients/autoadd was turned off", macs[i]);
			continue;
		}
		int r = register_one(db, conf, macs[i]);
		if (r < 0)
			log_err("autoadd: registering PC %s failed: %s (it asks again)", macs[i], strerror(-r));
		else
			added += r;
	}
	return added;
}

void autoadd_shutdown(void)
{
	if (efd >= 0)
		close(efd);
	efd = -1;
}
