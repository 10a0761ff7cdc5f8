/* Loading plugins (dlopen), checking their ABI, and the host table they
 * call. Loaded objects stay for the life of the process (never dlclose:
 * a reload may still run code from them). */
#ifndef MCPD_PLUGIN_LOADER_H
#define MCPD_PLUGIN_LOADER_H

#include <stddef.h>

#include <mcpd/plugin.h>

struct loaded_plugin {
	char *path;
	void *handle;
	const struct mcpd_plugin *desc;
	int inited;                     /* in this worker: init_worker ran */
};

/* The storage and transport a worker uses: their operations and the
 * instances the config created. */
struct backends {
	const struct mcpd_storage_ops *storage;
	void *storage_inst;
	const struct mcpd_transport_ops *transport;
	void *transport_inst;
};

/* Load path (once; later calls return the same object) and check that it
 * is a plugin of this kind and ABI. */
struct loaded_plugin *plugin_load(const char *path, enum mcpd_plugin_kind kind,
    char *err, size_t errlen);
void *plugin_symbol(struct loaded_plugin *p, const char *symbol, char *err, size_t errlen);

/* Per worker: run init_worker of the plugins in use (the n of use, which
 * may repeat; plugins a reload dropped stay loaded but are not in it), in
 * the order they were loaded. Returns -1 with err. */
int plugins_init_worker(const struct mcpd_host *host, struct loaded_plugin *const *use, size_t n,
    char *err, size_t errlen);
/* fini_worker of those whose init_worker ran. */
void plugins_fini_worker(void);

#endif
