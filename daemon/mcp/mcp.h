/* The MCP endpoint: Streamable HTTP for the session-based 2025 revisions,
 * JSON-RPC dispatch, and the methods over the operator's tools, resources
 * and prompts. One per worker. */
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
