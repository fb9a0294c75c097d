/* bootev.h — boots recorded in the database: an event and the PC's last_seen.
 *
 * A worker serving a PC the script that boots it (/ipxe) notes the boot
 * (bootev_note) and goes on at once; it never touches the database. The
 * main thread, woken through bootev_fd(), records every noted boot
 * (bootev_run) in one transaction: an event of kind "boot" with the text
 * given (`bootlinkctl events MAC`), and the client's last_seen (`client
 * list`, `status`). At most BOOTEV_QUEUE_MAX boots wait; more in a burst
 * are counted and logged as not recorded, never queued without bound.
 */
#ifndef BL_BOOTEV_H
#define BL_BOOTEV_H

struct db;

#define BOOTEV_QUEUE_MAX 256
#define BOOTEV_TEXT_MAX 160

/* Set up the queue and its eventfd (main thread, at start). 0 or -errno. */
int bootev_init(void);
/* The eventfd that becomes readable when boots are noted. */
int bootev_fd(void);
/* Note a boot of the canonical MAC (any thread); text is cut at BOOTEV_TEXT_MAX. */
void bootev_note(const char *mac, const char *text);
/* Record every noted boot (main thread). Returns how many, or -errno. */
int bootev_run(struct db *db);
void bootev_shutdown(void);

#endif
