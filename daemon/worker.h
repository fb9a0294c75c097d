/* worker.h — one io_uring event loop per thread.
 *
 * Each worker owns a ring, its own listening socket(s) (SO_REUSEPORT, so the
 * kernel spreads new connections across workers) and the connections it
 * accepted; a connection never moves between workers, so nothing on the
 * data path takes a lock. Every SQE's user_data is a pointer with a 3-bit
 * tag in its low bits (all objects are 8-byte aligned):
 *
 *   UD_ACCEPT  struct listener *   multishot accept
 *   UD_RECV    struct conn *       recv into the connection's rx buffer
 *   UD_SEND    struct conn *       sendmsg of the connection's tx queue
 *   UD_OP      struct uop *        any other operation (disk I/O ...), with its own callback
 *   UD_WAKE    struct worker *     eventfd read: main thread asks for attention
 *   UD_TICK    struct worker *     1 s timeout: timeouts, drain progress
 *   0          —                   ignored (cancel requests)
 *
 * Objects referenced by an SQE stay alive until its CQE arrives: connections
 * are reference-counted by their outstanding SQEs (conn.h).
 */
#ifndef BL_WORKER_H
#define BL_WORKER_H

#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>

struct conn;
struct worker;

enum { UD_ACCEPT = 1, UD_RECV = 2, UD_SEND = 3, UD_OP = 4, UD_WAKE = 5, UD_TICK = 6 };
#define UD_TAG_MASK 7ull

static inline uint64_t ud_make(void *p, int tag) { return (uint64_t)(uintptr_t)p | (uint64_t)tag; }
static inline int ud_tag(uint64_t ud) { return (int)(ud & UD_TAG_MASK); }
static inline void *ud_ptr(uint64_t ud) { return (void *)(uintptr_t)(ud & ~UD_TAG_MASK); }

/* A generic asynchronous operation: set cb, submit with ud_make(op, UD_OP). */
struct uop {
	void (*cb)(struct uop *op, int res, uint32_t cqe_flags);
} __attribute__((aligned(8)));

/* The protocol a listener speaks (NBD now; iSCSI and HTTP later). */
struct proto;

struct listener {
	struct worker *w;
	int fd;
	const struct proto *proto;
	bool armed;
} __attribute__((aligned(8)));

#define WORKER_MAX_LISTENERS 4

struct worker {
	int id;
	pthread_t thread;
	struct io_uring ring;
	struct listener lis[WORKER_MAX_LISTENERS];
	int nlis;
	int wake_fd;                /* eventfd, read through the ring */
	uint64_t wake_buf;
	struct __kernel_timespec tick_ts;
	struct conn *conns;         /* live connections (list through conn->next/prev) */
	unsigned nconns;
	struct conn *tx_dirty;      /* connections with replies queued this turn (conn_flush_sends) */
	unsigned pending_sqes;      /* prepared, not yet submitted */
	unsigned nreqs;             /* client requests started (worker_note_request) */
	bool pipelined;             /* this turn, one receive carried several requests */
	bool stopping;              /* draining: no accepts, close when idle */
	pthread_mutex_t mbox_lock;  /* mailbox: completions handed over by other workers */
	struct cwait *mbox_head, *mbox_tail;
	bool done;
	uint64_t stop_deadline_ns;
	sem_t started;              /* the thread has set up its ring (init_result) */
	int init_result;
	bool ring_ok, thread_ok;
};

/* Set up the eventfd and mailbox (the ring is made by the thread). 0 or -errno. */
int worker_init(struct worker *w, int id);
/* Attach a bound, listening socket speaking proto (before worker_start). */
int worker_add_listener(struct worker *w, int fd, const struct proto *proto);
/* Start the thread; returns once it has its ring: 0 or -errno. */
int worker_start(struct worker *w);
/* Ask the worker to stop accepting and drain (thread-safe; from main). */
void worker_request_stop(struct worker *w, uint64_t deadline_ns);
/* Wake the worker (thread-safe). */
void worker_wake(struct worker *w);
/* Count a client request started on w's thread. When one receive starts
 * several (the client is pipelining), the next wait gathers a batch
 * (daemon/coalesce_us; conn.c notes it). */
static inline void worker_note_request(struct worker *w)
{
	w->nreqs++;
}
/* Hand a cache waiter to w: its fn runs on w's thread (thread-safe). */
struct cwait;
void worker_post(struct worker *w, struct cwait *wt);
/* Run a list of waiters with res: on self directly, on other workers
 * through their mailboxes. */
void worker_wake_list(struct cwait *wt, struct worker *self, int res);
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);

/* Get an SQE on w's ring, submitting first if the SQ is full. Never NULL. */
struct io_uring_sqe *worker_sqe(struct worker *w);

/* Number of live connections over all workers (relaxed). */
extern unsigned g_total_conns;
/* Waits that gathered a batch (daemon/coalesce_us), over all workers:
 * totals/batched_waits in the runtime tree. */
extern uint64_t g_batched_waits;

#endif
