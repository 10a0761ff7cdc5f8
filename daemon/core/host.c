#include "host.h"
#include "conftree.h"
#include "log.h"
#include "paths.h"
#include "relay.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct {
	struct event_base *base;
	unsigned worker_id;
	long uid, gid;
	const char *config_file;
	char *state_dir;            /* found once, kept */
	char config_dir[4096];
} h = { NULL, 0, -1, -1, NULL, NULL, "" };

static void
host_log(enum mcpd_log_level level, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	enum log_level l = level <= MCPD_LOG_ERROR ? LOG_ERROR : level == MCPD_LOG_WARN ? LOG_WARN :
	    level == MCPD_LOG_NOTICE ? LOG_NOTICE : level == MCPD_LOG_INFO ? LOG_INFO : LOG_DEBUG;
	log_msg(l, "plugin: %s", msg);
}

static struct event_base *
host_event_base(void)
{
	return h.base;
}

/* struct mcpd_config is a struct cnode seen from outside. */
static const struct cnode *
N(const struct mcpd_config *n)
{
	return (const struct cnode *)n;
}

static const struct mcpd_config *
cfg_get(const struct mcpd_config *map, const char *key)
{
	return (const struct mcpd_config *)cnode_get(N(map), key);
}

static const char *
cfg_scalar(const struct mcpd_config *n)
{
	return n != NULL && N(n)->type == CNODE_SCALAR ? N(n)->str : NULL;
}

static size_t
cfg_count(const struct mcpd_config *n)
{
	return n != NULL && N(n)->type != CNODE_SCALAR ? N(n)->n : 0;
}

static const struct mcpd_config *
cfg_item(const struct mcpd_config *n, size_t i, const char **key)
{
	if (n == NULL || i >= cfg_count(n))
		return NULL;
	if (N(n)->type == CNODE_MAP) {
		if (key != NULL)
			*key = N(n)->pairs[i].key->str;
		return (const struct mcpd_config *)N(n)->pairs[i].value;
	}
	if (key != NULL)
		*key = NULL;
	return (const struct mcpd_config *)N(n)->items[i];
}

static int
cfg_duration(const struct mcpd_config *n, uint64_t *ms)
{
	const char *s = cfg_scalar(n);
	return s != NULL ? parse_duration_ms(s, ms) : -1;
}

static int
cfg_size(const struct mcpd_config *n, uint64_t *bytes)
{
	const char *s = cfg_scalar(n);
	return s != NULL ? parse_size(s, bytes) : -1;
}

static void
cfg_where(const struct mcpd_config *n, char *buf, size_t len)
{
	snprintf(buf, len, "%s:%d:%d", h.config_file ? h.config_file : "mcpd.yaml",
	    n ? N(n)->line : 0, n ? N(n)->col : 0);
}

static void
worker_identity(long *uid, long *gid)
{
	*uid = h.uid;
	*gid = h.gid;
}

static unsigned
worker_id(void)
{
	return h.worker_id;
}

/* The directory of the configuration file: plugins resolve relative
 * paths of their sections against it, as mcpd does. */
static const char *
host_config_dir(void)
{
	const char *f = h.config_file ? h.config_file : "mcpd.yaml";
	const char *slash = strrchr(f, '/');
	if (slash == NULL)
		snprintf(h.config_dir, sizeof(h.config_dir), ".");
	else
		snprintf(h.config_dir, sizeof(h.config_dir), "%.*s", slash == f ? 1 : (int)(slash - f), f);
	return h.config_dir;
}

const char *
host_state_dir(void)
{
	if (h.state_dir != NULL)
		return h.state_dir;
	/* A binary in a build tree keeps its state beside it, however long
	 * the path (it was cut at 3 KiB, to another directory). */
	char *dir = exe_dir();
	size_t len = dir != NULL ? strlen(dir) : 0;
	char *path = dir != NULL ? malloc(len + sizeof("/plugins")) : NULL;
	struct stat st;
	if (path != NULL) {
		memcpy(path, dir, len);
		strcpy(path + len, "/plugins");
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			strcpy(path + len, "/state");
			h.state_dir = path;
			path = NULL;
		}
	}
	free(path);
	free(dir);
	return h.state_dir != NULL ? h.state_dir : mcpd_state_dir;
}

static struct mcpd_host table = {
	.size = sizeof(struct mcpd_host),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.log = host_log,
	.event_base = host_event_base,
	.config_get = cfg_get,
	.config_scalar = cfg_scalar,
	.config_count = cfg_count,
	.config_item = cfg_item,
	.config_duration = cfg_duration,
	.config_size = cfg_size,
	.config_where = cfg_where,
	.worker_identity = worker_identity,
	.worker_id = worker_id,
	.relay_subscribe = relay_subscribe,
	.relay_unsubscribe = relay_unsubscribe,
	.relay_publish = relay_publish,
	.relay_count = relay_count,
	.relay_receive = relay_receive,
	.state_dir = host_state_dir,
	.config_dir = host_config_dir,
};

const struct mcpd_host *
host_table(void)
{
	return &table;
}

void
host_set_identity(long uid, long gid)
{
	h.uid = uid;
	h.gid = gid;
}

void
host_set_worker(struct event_base *base, unsigned id)
{
	h.base = base;
	h.worker_id = id;
}

void
host_set_config_file(const char *path)
{
	h.config_file = path;
}

void
host_set_tool_functions(void (*result)(struct mcpd_tool_call *, const char *),
    void (*text)(struct mcpd_tool_call *, const char *, int),
    void (*progress)(struct mcpd_tool_call *, double, double, const char *),
    void (*on_cancel)(struct mcpd_tool_call *, void (*)(void *), void *),
    void (*ask)(struct mcpd_tool_call *, const char *, const char *, const char *,
        void (*)(void *, const char *, const char *), void *),
    void (*status)(struct mcpd_tool_call *, const char *))
{
	table.tool_result = result;
	table.tool_text = text;
	table.tool_progress = progress;
	table.tool_on_cancel = on_cancel;
	table.tool_ask = ask;
	table.tool_status = status;
}
