/* The master's listening sockets: bound once, kept across reloads when the
 * address stays, adopted from systemd socket activation (LISTEN_FDS). */
#ifndef MCPD_LISTEN_H
#define MCPD_LISTEN_H

#include <sys/socket.h>

struct config;
struct errlist;

struct listen_socket {
	int fd;
	struct sockaddr_storage sa;
	socklen_t salen;
	int from_systemd;
	int created_path;       /* we made the unix socket file: unlink it */
	int mark;               /* used by the configuration being applied */
};

struct listen_set {
	struct listen_socket *v;
	size_t n;
};

/* Take the sockets systemd passed, if LISTEN_PID is this process. */
int listen_adopt_systemd(struct listen_set *set);
/* Give every listen entry of c a socket, reusing those in set; fds[i] is
 * the socket of c->listen[i]. Sockets systemd passed that match no entry
 * are appended to *extra (plain HTTP). On failure nothing new stays open. */
int listen_prepare(struct listen_set *set, const struct config *c, int *fds,
    int **extra, size_t *nextra, struct errlist *errs);
/* Close sockets that the last listen_prepare did not mark. */
void listen_close_unmarked(struct listen_set *set);
void listen_close_all(struct listen_set *set);

#endif
