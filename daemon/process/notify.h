/* The sd_notify protocol, spoken directly: a datagram to $NOTIFY_SOCKET. */
#ifndef MCPD_NOTIFY_H
#define MCPD_NOTIFY_H

/* Send "KEY=value\n..." lines. Does nothing without NOTIFY_SOCKET. */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
