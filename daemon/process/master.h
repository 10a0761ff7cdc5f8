/* The master process: binds, forks and watches the workers, owns signals
 * (HUP reload, TERM/INT/QUIT graceful stop, USR1 reopen logs) and speaks
 * sd_notify. */
#ifndef MCPD_MASTER_H
#define MCPD_MASTER_H

struct config;

/* Takes ownership of cfg. Returns the process exit status. */
int master_main(struct config *cfg, const char *config_path);

#endif
