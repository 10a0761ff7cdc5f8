/* The host table plugins call (struct mcpd_host): logging, the event
 * loop, their YAML section, the relay between workers, and the tool call
 * functions the MCP layer registers. One per process. */
#ifndef MCPD_HOST_H
#define MCPD_HOST_H

#include <mcpd/plugin.h>

struct event_base;
struct config;

const struct mcpd_host *host_table(void);
/* Master, before plugins are created: the identity workers will have. */
void host_set_identity(long uid, long gid);
/* Worker: its loop and number. */
void host_set_worker(struct event_base *base, unsigned id);
/* The MCP layer's tool functions. */
void host_set_tool_functions(void (*result)(struct mcpd_tool_call *, const char *),
    void (*text)(struct mcpd_tool_call *, const char *, int),
    void (*progress)(struct mcpd_tool_call *, double, double, const char *),
    void (*on_cancel)(struct mcpd_tool_call *, void (*)(void *), void *),
    void (*ask)(struct mcpd_tool_call *, const char *, const char *, const char *,
        void (*)(void *, const char *, const char *), void *),
    void (*status)(struct mcpd_tool_call *, const char *));
/* The default directory for state (also used by mcpd.yaml defaults). */
const char *host_state_dir(void);
/* Config file name used by config_where; set while plugins are created. */
void host_set_config_file(const char *path);

#endif
