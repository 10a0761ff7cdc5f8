/* mcpd --stdio: one client on stdin and stdout, in one process. */
#ifndef MCPD_STDIO_MODE_H
#define MCPD_STDIO_MODE_H

struct config;

/* Takes ownership of cfg. Returns the process exit status: 0 when the
 * client closed stdin or a signal ended it, 1 when it could not start or
 * the client stopped reading stdout. */
int stdio_main(struct config *cfg);

#endif
