/* worker.c — the per-thread io_uring event loop; see worker.h.
 *
 * The loop: submit what was prepared and wait for at least one completion
 * (io_uring_submit_and_wait), then drain every ready CQE, dispatching on the
 * user_data tag. One submit per loop turn, however many SQEs were prepared;
 * replies queued during the turn go out just before it, one sendmsg per
 * connection.
 *
 * Coalescing: a client that keeps many requests in flight sends each one
 * as it reads a reply, so without care every request costs a full turn
 * (a wakeup, a receive, a send) and each client send pays for waking us.
 * When one of the last turn's receives carried several requests, such
 * clients are about, and the next wait returns after
 * COALESCE_BATCH completions or daemon/coalesce_us, whichever comes first;
 * meanwhile requests gather in the sockets and one receive takes them all.
 * A client that waits for each reply sends one request per receive and is
 * never held back; a turn with nothing to do ends the batching.
 */
#include "worker.h"

#include <errno.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cache.h"
#include "conn.h"
#include "log.h"
#include "daemon.h"
#include "util.h"

#define RING_ENTRIES 1024
#define COALESCE_BATCH 64

unsigned g_total_conns;
uint64_t g_batched_waits;

int worker_init(struct worker *w, int id)
{
	memset(w, 0, sizeof *w);
	w->id = id;
	w->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (w->wake_fd < 0)
		return -errno;
	pthread_mutex_init(&w->mbox_lock, NULL);
	sem_init(&w->started, 0, 0);
	return 0;
}

/* Create the ring on the thread that will use it, so the kernel can run
 * completions only when we ask for them (SINGLE_ISSUER + DEFER_TASKRUN:
 * no interrupts of the loop); fall back for older kernels. */
static int ring_setup(struct worker *w)
{
	static const unsigned flagsets[] = {
		IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int r = -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(flagsets) && r < 0; i++) {
		struct io_uring_params p = { .flags = flagsets[i] };
		r = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
	}
	return r;
}

int worker_add_listener(struct worker *w, int fd, const struct proto *proto)
{
	if (w->nlis >= WORKER_MAX_LISTENERS)
		return -ENOSPC;
	struct listener *l = &w->lis[w->nlis++];
	l->w = w;
	l->fd = fd;
	l->proto = proto;
	return 0;
}

struct io_uring_sqe *worker_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	while (!sqe) {
		io_uring_submit(&w->ring);
		w->pending_sqes = 0;
		sqe = io_uring_get_sqe(&w->ring);
	}
	w->pending_sqes++;
	return sqe;
}

static void arm_accept(struct listener *l)
{
	struct io_uring_sqe *sqe = worker_sqe(l->w);
	io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_make(l, UD_ACCEPT));
	l->armed = true;
}

static void arm_wake(struct worker *w)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_read(sqe, w->wake_fd, &w->wake_buf, sizeof w->wake_buf, 0);
	io_uring_sqe_set_data64(sqe, ud_make(w, UD_WAKE));
}

static void arm_tick(struct worker *w)
{
	w->tick_ts.tv_sec = 1;
	w->tick_ts.tv_nsec = 0;
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_timeout(sqe, &w->tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(w, UD_TICK));
}

static void on_accept(struct listener *l, int res, uint32_t flags)
{
	struct worker *w = l->w;
	if (!(flags & IORING_CQE_F_MORE))
		l->armed = false;
	if (res >= 0) {
		if (w->stopping) {
			close(res);
		} else if (__atomic_load_n(&g_total_conns, __ATOMIC_RELAXED) >= live_get(&g_live.max_connections)) {
			/* One line a second at most, over all workers. */
			static uint64_t last;
			uint64_t now = now_ns(), prev = __atomic_load_n(&last, __ATOMIC_RELAXED);
			if (now - prev > 1000000000ull &&
			    __atomic_compare_exchange_n(&last, &prev, now, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
				struct sockaddr_storage ss;
				socklen_t sl = sizeof ss;
				char peer[64] = "?";
				if (getpeername(res, (struct sockaddr *)&ss, &sl) == 0)
					addr_format((struct sockaddr *)&ss, peer, sizeof peer);
				log_warn("connection refused: limits/max_connections (%u) reached; %s closed "
					 "(one line a second at most)", live_get(&g_live.max_connections), peer);
			}
			close(res);
		} else {
			conn_new(w, res, l->proto);
		}
	} else if (res != -ECANCELED && res != -EINVAL && res != -EBADF) {
		log_warn("worker %d: accept failed: %s", w->id, strerror(-res));
	}
	if (!l->armed && !w->stopping && l->fd >= 0)
		arm_accept(l);
}

/* Draining: close listeners once, ask every connection to stop reading,
 * and close connections that have nothing left in flight. */
static void drain_step(struct worker *w)
{
	for (int i = 0; i < w->nlis; i++) {
		struct listener *l = &w->lis[i];
		if (l->fd >= 0) {
			shutdown(l->fd, SHUT_RDWR);
			close(l->fd);
			l->fd = -1;
		}
	}
	uint64_t now = now_ns();
	for (struct conn *c = w->conns, *n; c; c = n) {
		n = c->next;
		if (c->closing)
			continue;
		if (now > w->stop_deadline_ns)
			conn_close(c, "shutdown deadline passed");
		else if (c->proto->drain)
			c->proto->drain(c);
	}
	if (!w->conns)
		w->done = true;
}

static void on_tick(struct worker *w)
{
	uint64_t now = now_ns();
	for (struct conn *c = w->conns, *n; c; c = n) {
		n = c->next;
		if (!c->closing && c->proto->tick && c->proto->tick(c, now) < 0)
			conn_close(c, "timed out");
	}
	if (w->stopping)
		drain_step(w);
	if (!w->done)
		arm_tick(w);
}

void worker_post(struct worker *w, struct cwait *wt)
{
	wt->next = NULL;
	pthread_mutex_lock(&w->mbox_lock);
	if (w->mbox_tail)
		w->mbox_tail->next = wt;
	else
		w->mbox_head = wt;
	w->mbox_tail = wt;
	pthread_mutex_unlock(&w->mbox_lock);
	worker_wake(w);
}

void worker_wake_list(struct cwait *wt, struct worker *self, int res)
{
	while (wt) {
		struct cwait *n = wt->next;
		wt->res = res;
		if (wt->w == self)
			wt->fn(wt, res);
		else
			worker_post(wt->w, wt);
		wt = n;
	}
}

static void mailbox_drain(struct worker *w)
{
	pthread_mutex_lock(&w->mbox_lock);
	struct cwait *wt = w->mbox_head;
	w->mbox_head = w->mbox_tail = NULL;
	pthread_mutex_unlock(&w->mbox_lock);
	while (wt) {
		struct cwait *n = wt->next;
		wt->fn(wt, wt->res);
		wt = n;
	}
}

static void dispatch(struct worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	void *p = ud_ptr(ud);
	switch (ud_tag(ud)) {
	case UD_ACCEPT:
		on_accept(p, cqe->res, cqe->flags);
		break;
	case UD_RECV:
		conn_on_recv(p, cqe->res);
		break;
	case UD_SEND:
		conn_on_send(p, cqe->res);
		break;
	case UD_OP: {
		struct uop *op = p;
		op->cb(op, cqe->res, cqe->flags);
		break;
	}
	case UD_WAKE:
		mailbox_drain(w);
		if (__atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE))
			drain_step(w);
		if (!w->done)
			arm_wake(w);
		break;
	case UD_TICK:
		on_tick(w);
		break;
	default:
		break;
	}
}

/* Submit and wait for the next completions: at least one, or a batch if
 * the last turn saw pipelining (see the top of this file). */
static int submit_and_wait(struct worker *w)
{
	unsigned us = live_get(&g_live.coalesce_us);
	/* Without EXT_ARG (kernels before 5.11) liburing would add a timeout
	 * SQE per wait; not worth it there. */
	bool batch = us && w->pipelined && (w->ring.features & IORING_FEAT_EXT_ARG);
	w->pipelined = false;
	if (!batch)
		return io_uring_submit_and_wait(&w->ring, 1);
	__atomic_fetch_add(&g_batched_waits, 1, __ATOMIC_RELAXED);
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = (long long)us * 1000 };
	struct io_uring_cqe *cqe;
	int r = io_uring_submit_and_wait_timeout(&w->ring, &cqe, COALESCE_BATCH, &ts, NULL);
	return r == -ETIME ? 0 : r;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	w->init_result = ring_setup(w);
	w->ring_ok = w->init_result == 0;
	sem_post(&w->started);
	if (!w->ring_ok)
		return NULL;
	for (int i = 0; i < w->nlis; i++)
		arm_accept(&w->lis[i]);
	arm_wake(w);
	arm_tick(w);
	while (!w->done) {
		conn_flush_sends(w);
		int r = submit_and_wait(w);
		w->pending_sqes = 0;
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			log_err("worker %d: io_uring_submit_and_wait: %s", w->id, strerror(-r));
			break;
		}
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			dispatch(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
		if (w->stopping && !w->conns)
			w->done = true;
	}
	/* Give outstanding operations (cancelled accepts, the wake read, the
	 * tick) a bounded chance to complete before the ring goes away. */
	io_uring_submit(&w->ring);
	return NULL;
}

int worker_start(struct worker *w)
{
	int r = -pthread_create(&w->thread, NULL, worker_main, w);
	if (r < 0)
		return r;
	w->thread_ok = true;
	sem_wait(&w->started);
	return w->init_result;
}

void worker_wake(struct worker *w)
{
	uint64_t one = 1;
	ssize_t r = write(w->wake_fd, &one, sizeof one);
	(void)r;
}

void worker_request_stop(struct worker *w, uint64_t deadline_ns)
{
	w->stop_deadline_ns = deadline_ns;
	__atomic_store_n(&w->stopping, true, __ATOMIC_RELEASE);
	worker_wake(w);
}

void worker_join(struct worker *w)
{
	if (w->thread_ok)
		pthread_join(w->thread, NULL);
	w->thread_ok = false;
}

void worker_destroy(struct worker *w)
{
	if (w->ring_ok)
		io_uring_queue_exit(&w->ring);
	sem_destroy(&w->started);
	close(w->wake_fd);
	pthread_mutex_destroy(&w->mbox_lock);
	for (int i = 0; i < w->nlis; i++)
		if (w->lis[i].fd >= 0)
			close(w->lis[i].fd);
}
