/* daemon/process/: the process model, which composes the layers below:
 * main.c (the command line), master (this file), worker.c (a worker's
 * event loop with its HTTP server, plugins and MCP layer), listen.c (the
 * sockets, systemd's included), notify.c (sd_notify), channel.c (master
 * <-> worker frames). It may use every layer; none uses it.
 *
 * master: binds, forks and watches the workers, owns signals (HUP
 * reload, TERM/INT/QUIT graceful stop, USR1 reopen logs) and speaks
 * sd_notify. */
#ifndef MCPD_MASTER_H
#define MCPD_MASTER_H

struct config;

/* Takes ownership of cfg. Returns the process exit status. */
int master_main(struct config *cfg, const char *config_path);

#endif
