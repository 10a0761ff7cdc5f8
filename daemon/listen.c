#include "listen.h"
#include "config.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SD_LISTEN_FDS_START 3
#define LISTEN_FDS_MAX 1024      /* sockets taken from systemd */

static int
same_addr(const struct sockaddr_storage *a, socklen_t alen,
    const struct sockaddr_storage *b, socklen_t blen)
{
	if (a->ss_family != b->ss_family)
		return 0;
	switch (a->ss_family) {
	case AF_INET: {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	case AF_UNIX: {
		const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;
		size_t off = offsetof(struct sockaddr_un, sun_path);
		if (alen <= off || blen <= off)
			return 0;
		return strncmp(x->sun_path, y->sun_path, sizeof(x->sun_path)) == 0;
	}
	}
	return 0;
}

static int
add_socket(struct listen_set *set, int fd, const struct sockaddr_storage *sa,
    socklen_t salen, int from_systemd, int created_path)
{
	struct listen_socket *v = realloc(set->v, (set->n + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	set->v = v;
	struct listen_socket *s = &v[set->n++];
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->sa = *sa;
	s->salen = salen;
	s->from_systemd = from_systemd;
	s->created_path = created_path;
	return 0;
}

int
listen_adopt_systemd(struct listen_set *set)
{
	const char *pid = getenv("LISTEN_PID");
	const char *fds = getenv("LISTEN_FDS");
	if (pid == NULL || fds == NULL)
		return 0;
	int n = 0;
	uint64_t lp, nf;
	/* Digits only (strtol took "12x" for 12); a count no systemd passes
	 * would be as many warnings. */
	if (parse_u64(pid, &lp) == 0 && lp == (uint64_t)getpid()) {
		if (parse_u64(fds, &nf) < 0 || nf > LISTEN_FDS_MAX)
			log_warn("LISTEN_FDS=%.32s is not a number of descriptors up to %d; ignored",
			    fds, LISTEN_FDS_MAX);
		else
			n = (int)nf;
	}
	/* Tools must not see these: they describe our process, not theirs. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		struct sockaddr_storage sa;
		socklen_t salen = sizeof(sa);
		if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
			log_sys(LOG_WARN, "LISTEN_FDS: descriptor %d", fd);
			continue;
		}
		set_cloexec(fd);
		char name[128];
		sockaddr_format((struct sockaddr *)&sa, salen, name, sizeof(name));
		log_info("using socket %s passed by systemd", name);
		if (add_socket(set, fd, &sa, salen, 1, 0) < 0)
			return -1;
	}
	return n;
}

static int
unix_stale(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	/* A socket file nobody listens on is left over from a crash. */
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	int rc = connect(probe, (struct sockaddr *)&un, sizeof(un));
	close(probe);
	if (rc == 0) {
		snprintf(err, errlen, "%s is in use by another process", path);
		return -1;
	}
	unlink(path);
	return 0;
}

static int
bind_one(const struct listen_conf *l, char *err, size_t errlen)
{
	int fd = socket(l->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	if (l->family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l->family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (l->family == AF_UNIX) {
		const char *path = ((const struct sockaddr_un *)&l->sa)->sun_path;
		if (unix_stale(path, err, errlen) < 0)
			goto fail_quiet;
	}
	if (bind(fd, (const struct sockaddr *)&l->sa, l->salen) < 0) {
		snprintf(err, errlen, "bind: %s", strerror(errno));
		goto fail_quiet;
	}
	if (l->family == AF_UNIX && l->mode >= 0) {
		const char *path = ((const struct sockaddr_un *)&l->sa)->sun_path;
		if (chmod(path, (mode_t)l->mode) < 0) {
			snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
			unlink(path);
			goto fail_quiet;
		}
	}
	if (listen(fd, (int)l->backlog) < 0) {
		snprintf(err, errlen, "listen: %s", strerror(errno));
		goto fail_quiet;
	}
	return fd;
fail_quiet:
	close(fd);
	return -1;
}

static void
close_socket(struct listen_socket *s)
{
	if (s->created_path && s->sa.ss_family == AF_UNIX)
		unlink(((struct sockaddr_un *)&s->sa)->sun_path);
	close(s->fd);
}

int
listen_prepare(struct listen_set *set, const struct config *c, int *fds,
    int **extra, size_t *nextra, struct errlist *errs)
{
	size_t old_n = set->n;
	for (size_t i = 0; i < set->n; i++)
		set->v[i].mark = 0;
	for (size_t i = 0; i < c->nlisten; i++) {
		const struct listen_conf *l = &c->listen[i];
		fds[i] = -1;
		for (size_t j = 0; j < set->n; j++) {
			if (same_addr(&set->v[j].sa, set->v[j].salen, &l->sa, l->salen)) {
				set->v[j].mark = 1;
				fds[i] = set->v[j].fd;
				break;
			}
		}
		if (fds[i] >= 0)
			continue;
		char err[256];
		int fd = bind_one(l, err, sizeof(err));
		if (fd < 0) {
			errlist_add(errs, "%s:%d:%d: cannot listen on %s: %s", c->path, l->line, l->col,
			    l->address, err);
			goto fail;
		}
		if (add_socket(set, fd, &l->sa, l->salen, 0, l->family == AF_UNIX) < 0) {
			close(fd);
			errlist_add(errs, "out of memory");
			goto fail;
		}
		set->v[set->n - 1].mark = 1;
		fds[i] = fd;
	}
	*extra = NULL;
	*nextra = 0;
	for (size_t j = 0; j < set->n; j++) {
		if (set->v[j].from_systemd && !set->v[j].mark) {
			int *e = realloc(*extra, (*nextra + 1) * sizeof(int));
			if (e == NULL)
				continue;
			*extra = e;
			e[(*nextra)++] = set->v[j].fd;
			set->v[j].mark = 1;
			char name[128];
			sockaddr_format((struct sockaddr *)&set->v[j].sa, set->v[j].salen, name, sizeof(name));
			log_notice("socket %s from systemd matches no listen entry; serving plain HTTP on it", name);
		}
	}
	return 0;
fail:
	/* Undo what this call bound; the running configuration keeps its own. */
	for (size_t j = old_n; j < set->n; j++)
		close_socket(&set->v[j]);
	set->n = old_n;
	for (size_t j = 0; j < set->n; j++)
		set->v[j].mark = 1;
	return -1;
}

void
listen_close_unmarked(struct listen_set *set)
{
	size_t w = 0;
	for (size_t i = 0; i < set->n; i++) {
		if (set->v[i].mark || set->v[i].from_systemd) {
			set->v[w++] = set->v[i];
			continue;
		}
		char name[128];
		sockaddr_format((struct sockaddr *)&set->v[i].sa, set->v[i].salen, name, sizeof(name));
		log_info("no longer listening on %s", name);
		close_socket(&set->v[i]);
	}
	set->n = w;
}

void
listen_close_all(struct listen_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		close_socket(&set->v[i]);
	free(set->v);
	set->v = NULL;
	set->n = 0;
}
