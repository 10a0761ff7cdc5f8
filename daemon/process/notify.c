#include "notify.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int
notify_send(const char *fmt, ...)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (path == NULL || path[0] == '\0')
		return 0;
	if ((path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		log_warn("NOTIFY_SOCKET %s is not a usable socket path", path);
		return -1;
	}
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -1;

	struct sockaddr_un un = { .sun_family = AF_UNIX };
	size_t plen = strlen(path);
	memcpy(un.sun_path, path, plen);
	if (un.sun_path[0] == '@')
		un.sun_path[0] = '\0';  /* abstract namespace */
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);

	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_sys(LOG_WARN, "sd_notify socket");
		return -1;
	}
	ssize_t w = sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&un, len);
	int saved = errno;
	close(fd);
	if (w != n) {
		errno = saved;
		log_sys(LOG_WARN, "sd_notify to %s", path);
		return -1;
	}
	return 0;
}
