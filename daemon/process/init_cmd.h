/* mcpd init [DIR]: a new server's directory, made by asking on a terminal
 * or from flags: mcpd.yaml, example tools, a users or API keys file, a
 * systemd drop-in or a Containerfile, and a README. */
#ifndef MCPD_INIT_CMD_H
#define MCPD_INIT_CMD_H

/* prog is how mcpd was run (argv[0]), argv[0] is "init". Returns the process exit status: 0 when every file
 * was written, 1 when nothing was (a file exists, a plugin is missing,
 * a write failed), 2 for a usage error. */
int init_main(const char *prog, int argc, char **argv);

#endif
