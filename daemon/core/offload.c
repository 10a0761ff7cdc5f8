/* A helper thread for CPU-heavy jobs (see offload.h). Jobs go in through a
 * mutex-protected queue; finished ones come back through another, and an
 * eventfd wakes the loop to run their done() callbacks. */
#include "offload.h"
#include "log.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

struct job {
	void (*work)(void *);
	void (*done)(void *, int);
	void *arg;
	TAILQ_ENTRY(job) link;
};

TAILQ_HEAD(jobq, job);

struct offload {
	struct event_base *base;
	size_t max_queued, queued;      /* queued: waiting or running, not yet done */
	pthread_t thread;
	int started, stopping;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct jobq todo, finished;
	int efd;
	struct event *ev;
};

static void *
helper(void *arg)
{
	struct offload *o = arg;
	pthread_mutex_lock(&o->mu);
	for (;;) {
		while (TAILQ_EMPTY(&o->todo) && !o->stopping)
			pthread_cond_wait(&o->cv, &o->mu);
		if (o->stopping)
			break;
		struct job *j = TAILQ_FIRST(&o->todo);
		TAILQ_REMOVE(&o->todo, j, link);
		pthread_mutex_unlock(&o->mu);
		j->work(j->arg);
		pthread_mutex_lock(&o->mu);
		TAILQ_INSERT_TAIL(&o->finished, j, link);
		uint64_t one = 1;
		while (write(o->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

static void
wake_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)ev;
	struct offload *o = arg;
	uint64_t n;
	while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	struct jobq done = TAILQ_HEAD_INITIALIZER(done);
	pthread_mutex_lock(&o->mu);
	TAILQ_CONCAT(&done, &o->finished, link);
	pthread_mutex_unlock(&o->mu);
	struct job *j;
	while ((j = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, j, link);
		o->queued--;
		j->done(j->arg, 0);
		free(j);
	}
}

struct offload *
offload_new(struct event_base *base, size_t max_queued)
{
	struct offload *o = calloc(1, sizeof(*o));
	if (o == NULL)
		return NULL;
	o->base = base;
	o->max_queued = max_queued;
	o->efd = -1;
	TAILQ_INIT(&o->todo);
	TAILQ_INIT(&o->finished);
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	return o;
}

static int
start(struct offload *o)
{
	o->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (o->efd < 0) {
		log_sys(LOG_ERROR, "eventfd");
		return -1;
	}
	o->ev = event_new(o->base, o->efd, EV_READ | EV_PERSIST, wake_cb, o);
	if (o->ev == NULL || event_add(o->ev, NULL) < 0)
		goto fail;
	/* The helper takes no signals: they belong to the loop's thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&o->thread, NULL, helper, o);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_error("cannot start a helper thread: %s", strerror(rc));
		goto fail;
	}
	o->started = 1;
	return 0;
fail:
	if (o->ev != NULL)
		event_free(o->ev);
	o->ev = NULL;
	close(o->efd);
	o->efd = -1;
	return -1;
}

int
offload_run(struct offload *o, void (*work)(void *), void (*done)(void *, int), void *arg)
{
	if (o->queued >= o->max_queued)
		return -1;
	if (!o->started && start(o) < 0)
		return -1;
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -1;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&o->mu);
	TAILQ_INSERT_TAIL(&o->todo, j, link);
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
	o->queued++;
	return 0;
}

void
offload_free(struct offload *o)
{
	if (o == NULL)
		return;
	if (o->started) {
		pthread_mutex_lock(&o->mu);
		o->stopping = 1;
		pthread_cond_signal(&o->cv);
		pthread_mutex_unlock(&o->mu);
		pthread_join(o->thread, NULL);
	}
	/* The loop is gone: finished or not, every job is cancelled. */
	struct job *j;
	while ((j = TAILQ_FIRST(&o->finished)) != NULL) {
		TAILQ_REMOVE(&o->finished, j, link);
		j->done(j->arg, 1);
		free(j);
	}
	while ((j = TAILQ_FIRST(&o->todo)) != NULL) {
		TAILQ_REMOVE(&o->todo, j, link);
		j->done(j->arg, 1);
		free(j);
	}
	if (o->ev != NULL)
		event_free(o->ev);
	if (o->efd >= 0)
		close(o->efd);
	pthread_mutex_destroy(&o->mu);
	pthread_cond_destroy(&o->cv);
	free(o);
}
