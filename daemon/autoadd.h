/* autoadd.h — registering PCs the database does not know (clients/autoadd).
 *
 * A worker answering /ipxe for an unknown MAC while clients/autoadd = 1
 * queues the MAC (autoadd_request) and answers at once with a script that
 * asks again a few seconds later; it never touches the database. The main
 * thread, woken through autoadd_fd(), registers the queued MACs
 * (autoadd_run): the next free name PC001, PC002 ..., linked to
 * clients/default_image, an event "autoadd" per PC, then reloads the
 * export table, so the PC's next fetch boots it. The queue holds at most
 * AUTOADD_QUEUE_MAX MACs (duplicates are merged): a flood of made-up MACs
 * cannot grow it.
 */
#ifndef BL_AUTOADD_H
#define BL_AUTOADD_H

struct db;
struct bl_conf;

#define AUTOADD_QUEUE_MAX 64

/* Set up the queue and its eventfd (main thread, at start). 0 or -errno. */
int autoadd_init(void);
/* The eventfd that becomes readable when MACs are queued. */
int autoadd_fd(void);
/* Queue a canonical MAC (any thread). 0, or -EAGAIN when the queue is full. */
int autoadd_request(const char *mac);
/* Register every queued MAC (main thread). Returns how many were added. */
int autoadd_run(struct db *db, const struct bl_conf *conf);
void autoadd_shutdown(void);

#endif
