/* daemon/mcp/: the MCP layer. A request enters at endpoint.c (routed there
 * by http.c), becomes a call (call.c), and its method is handled in a
 * t_*.c file: t_tools.c, t_resources.c, t_prompts.c, t_complete.c,
 * t_lifecycle.c; a command runs through command.c, questions to the
 * client go through ask.c, change notifications through changes.c.
 * Sessions of the 2025 revisions are session*.c; admin.c is
 * /admin/sessions, content.c builds tool results. mcp_internal.h and
 * session_internal.h are what its files share. It uses auth/, http/,
 * core/ and lib/; process/ (worker.c) creates it.
 *
 * line.c serves one client over a line transport (mcpd --stdio) through
 * the same calls.
 *
 * mcp: the MCP endpoint: Streamable HTTP for the session-based 2025
 * revisions, the stateless 2026-07-28 revision, JSON-RPC dispatch, and
 * the methods over the operator's tools, resources and prompts. One per
 * worker. */
#ifndef MCPD_MCP_H
#define MCPD_MCP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct config;
struct http_server;
struct mcp;

struct backends;

/* http NULL: no endpoint and no auth, for mcp_line_open (stdio). */
struct mcp *mcp_new(struct event_base *base, struct config *cfg, struct http_server *http,
    const struct backends *b);
/* The worker is about to stop: tell clients on GET streams to reconnect
 * (elsewhere), announcing which lists changed when a reload changed them. */
void mcp_drain(struct mcp *m, int tools_changed, int resources_changed, int prompts_changed);
void mcp_free(struct mcp *m);
/* mcpd --lambda: each request is one invocation, and nothing else runs
 * until it is answered: no GET stream (405), and a question of a 2025
 * session to its client fails at once (its answer would be another
 * invocation, which cannot come while this one waits). At each
 * invocation: commands stop at deadline_ms (wall-clock ms since the
 * epoch; 0: none) and get trace_id as _X_AMZN_TRACE_ID. A buffered
 * answer goes out only once complete: then subscriptions/listen is
 * refused. */
enum { MCP_LAMBDA_BUFFERED = 1, MCP_LAMBDA_STREAMING };
void mcp_lambda(struct mcp *m, int mode);
void mcp_invocation(struct mcp *m, uint64_t deadline_ms, const char *trace_id);
/* Tasks whose command runs in this worker: a draining worker waits for
 * them (within shutdown_timeout) before it exits. */
unsigned mcp_tasks_running(const struct mcp *m);
/* Persistent tool processes still running here: a draining worker gave
 * them end of file and waits for them to exit (within shutdown_timeout). */
unsigned mcp_persistent_running(const struct mcp *m);

/* One client on a line transport (the MCP stdio transport): each line
 * it sends is one JSON-RPC message given to mcp_line_message, without
 * its line end; each message for it is handed to out(arg, json), one
 * JSON text with no newline in it. While busy (an initialize waits for
 * storage) the caller holds further lines back; resume(arg) says when
 * to go on. */
struct mcp_line;
struct mcp_line *mcp_line_open(struct mcp *m, void (*out)(void *arg, const char *json),
    void (*resume)(void *arg), void *arg);
void mcp_line_message(struct mcp_line *l, const char *text, size_t len);
int mcp_line_busy(const struct mcp_line *l);
/* Answer what could not be read as a message (id null). */
void mcp_line_error(struct mcp_line *l, int code, const char *message);
/* The client is gone (EOF, SIGTERM): its calls end, their commands are
 * killed, its session is deleted. Frees l. */
void mcp_line_close(struct mcp_line *l);

#endif
