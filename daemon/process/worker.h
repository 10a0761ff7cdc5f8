/* A worker process: one event loop serving HTTP on the inherited sockets. */
#ifndef MCPD_WORKER_H
#define MCPD_WORKER_H

#include <stddef.h>

struct config;

struct worker_params {
	struct config *cfg;
	const int *fds;         /* one per cfg->listen entry */
	const int *extra_fds;   /* systemd sockets matching no entry: plain HTTP */
	size_t nextra;
	int chan;               /* channel to the master */
	int relay;              /* the master's relay between workers */
	unsigned id;            /* 1..workers */
};

/* Exit status: 0 done, 2 fatal at setup (the master does not respawn). */
#define WORKER_EXIT_FATAL 2

int worker_main(const struct worker_params *p);

#endif
