#include "channel.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

struct wire_head {
	uint32_t type;
	uint32_t len;
};

int
chan_pair(int fds[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds);
}

int
chan_send(int sock, uint32_t type, const void *payload, size_t len, int fd)
{
	if (len > CHAN_MAX_PAYLOAD) {
		errno = EMSGSIZE;
		return -1;
	}
	struct wire_head h = { type, (uint32_t)len };
	struct iovec iov[2] = {
		{ &h, sizeof(h) },
		{ (void *)payload, len },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t w;
	do
		w = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w < 0 ? -1 : 0;
}

int
chan_recv(int sock, struct chan_msg *m)
{
	struct wire_head h;
	struct iovec iov[2] = {
		{ &h, sizeof(h) },
		{ m->payload, sizeof(m->payload) },
	};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg = {
		.msg_iov = iov, .msg_iovlen = 2,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	ssize_t r;
	do
		r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return (int)r;
	m->fd = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&m->fd, CMSG_DATA(c), sizeof(int));
	if ((size_t)r < sizeof(h) || (size_t)r - sizeof(h) != h.len) {
		if (m->fd >= 0)
			close(m->fd);
		errno = EPROTO;
		return -1;
	}
	m->type = h.type;
	m->len = h.len;
	return 1;
}
