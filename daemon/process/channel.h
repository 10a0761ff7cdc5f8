/* Messages between the master and one worker over a SOCK_SEQPACKET
 * socketpair: one message per packet, optionally carrying a descriptor. */
#ifndef MCPD_CHANNEL_H
#define MCPD_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

enum chan_type {
	CHAN_READY = 1,     /* worker → master: serving */
	CHAN_QUIT,          /* master → worker: drain and exit */
	CHAN_TERMINATE,     /* master → worker: exit now */
	CHAN_LOG_FD,        /* master → worker: new log descriptor (reopened) */
};

#define CHAN_MAX_PAYLOAD 65536

struct chan_msg {
	uint32_t type;
	uint32_t len;       /* payload bytes */
	int fd;             /* received descriptor or -1 */
	unsigned char payload[CHAN_MAX_PAYLOAD];
};

int chan_pair(int fds[2]);
/* Returns 0, or -1 with errno (EAGAIN when the peer is not reading). */
int chan_send(int sock, uint32_t type, const void *payload, size_t len, int fd);
/* Returns 1 with a message, 0 at end of file, -1 on error (EAGAIN: none). */
int chan_recv(int sock, struct chan_msg *m);

#endif
