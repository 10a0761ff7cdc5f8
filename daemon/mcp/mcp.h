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
 * mcp: the MCP endpoint: Streamable HTTP for the session-based 2025
 * revisions, the stateless 2026-07-28 revision, JSON-RPC dispatch, and
 * the methods over the operator's tools, resources and prompts. One per
 * worker. */
#ifndef MCPD_MCP_H
#define MCPD_MCP_H

struct event_base;
struct config;
struct http_server;
struct mcp;

struct backends;

struct mcp *mcp_new(struct event_base *base, struct config *cfg, struct http_server *http,
    const struct backends *b);
/* The worker is about to stop: tell clients on GET streams to reconnect
 * (elsewhere), announcing which lists changed when a reload changed them. */
void mcp_drain(struct mcp *m, int tools_changed, int resources_changed, int prompts_changed);
void mcp_free(struct mcp *m);

#endif
