/* How a command's run ended, and the bound on its channel: what
 * tool_exec.c (one process a call) and tool_pool.c (persistent
 * processes) both report to the caller of tool_run_start. */
#ifndef MCPD_TOOL_RESULT_H
#define MCPD_TOOL_RESULT_H

#include <stddef.h>

struct tool_result {
	int exited;             /* normal exit: status is valid */
	int status;
	int signal;             /* killed by this signal, or 0 */
	int timed_out;
	int deadline;           /* timed out at tool_exec_set_invocation's deadline */
	int output_exceeded;    /* stdout went past max_output: killed */
	int channel_exceeded;   /* did not read its channel's answers: killed */
	int cancelled;
	char *out;              /* stdout, NUL-terminated */
	size_t outlen;
	char *err_tail;         /* last bytes of stderr, NUL-terminated */
};

/* Answers written to a command's channel that it has not read: past
 * this it is stopped (it asks and does not read, and the client's
 * answers would pile up in the worker). One answer may go past it. */
#define TOOL_CHANNEL_UNREAD_MAX (4 * 1024 * 1024)

#endif
