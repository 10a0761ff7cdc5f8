#include "plugin.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = { "?", "tools", "storage", "transport", "auth" };

/* Process-wide: the objects the master loaded, inherited by its workers. */
static struct loaded_plugin **loaded;
static size_t nloaded;

static const char *
kind_name(int k)
{
	return k >= 1 && k <= 4 ? kind_names[k] : "unknown";
}

struct loaded_plugin *
plugin_load(const char *path, enum mcpd_plugin_kind kind, char *err, size_t errlen)
{
	for (size_t i = 0; i < nloaded; i++)
		if (strcmp(loaded[i]->path, path) == 0 && loaded[i]->desc->kind == kind)
			return loaded[i];
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		snprintf(err, errlen, "cannot load plugin: %s", dlerror());
		return NULL;
	}
	const struct mcpd_plugin *d = NULL;
	mcpd_plugin_entries_fn *entries = (mcpd_plugin_entries_fn *)dlsym(h, MCPD_PLUGIN_ENTRIES);
	mcpd_plugin_entry_fn *entry = (mcpd_plugin_entry_fn *)dlsym(h, MCPD_PLUGIN_ENTRY);
	if (entries != NULL) {
		/* Several kinds in one object: the one asked for, else the first
		 * (so that the messages below say what it is instead). */
		const struct mcpd_plugin *const *all = entries();
		for (size_t i = 0; all != NULL && all[i] != NULL; i++) {
			if (all[i]->kind == kind) {
				d = all[i];
				break;
			}
			if (d == NULL)
				d = all[i];
		}
	} else if (entry != NULL) {
		d = entry();
	} else {
		snprintf(err, errlen, "%s is not an mcpd plugin: it exports no %s", path, MCPD_PLUGIN_ENTRY);
		return NULL;    /* left loaded: dlclose of foreign code is not worth the risk */
	}
	if (d == NULL || d->size < offsetof(struct mcpd_plugin, init_worker)) {
		snprintf(err, errlen, "%s: %s returned no usable descriptor", path, MCPD_PLUGIN_ENTRY);
		return NULL;
	}
	if (d->abi_major != MCPD_PLUGIN_ABI_MAJOR) {
		snprintf(err, errlen, "%s was built for plugin ABI %u.%u; this mcpd speaks %d.%d",
		    path, d->abi_major, d->abi_minor, MCPD_PLUGIN_ABI_MAJOR, MCPD_PLUGIN_ABI_MINOR);
		return NULL;
	}
	if (d->abi_minor > MCPD_PLUGIN_ABI_MINOR) {
		snprintf(err, errlen, "%s needs plugin ABI %u.%u, newer than this mcpd's %d.%d",
		    path, d->abi_major, d->abi_minor, MCPD_PLUGIN_ABI_MAJOR, MCPD_PLUGIN_ABI_MINOR);
		return NULL;
	}
	if (d->kind != kind) {
		snprintf(err, errlen, "%s is a %s plugin, not a %s plugin", path, kind_name(d->kind),
		    kind_name(kind));
		return NULL;
	}
	struct loaded_plugin *p = calloc(1, sizeof(*p));
	struct loaded_plugin **l = realloc(loaded, (nloaded + 1) * sizeof(*l));
	if (p == NULL || l == NULL) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	loaded = l;
	p->path = strdup(path);
	p->handle = h;
	p->desc = d;
	loaded[nloaded++] = p;
	return p;
}

void *
plugin_symbol(struct loaded_plugin *p, const char *symbol, char *err, size_t errlen)
{
	dlerror();
	void *s = dlsym(p->handle, symbol);
	if (s == NULL)
		snprintf(err, errlen, "plugin %s exports no symbol \"%s\"", p->path, symbol);
	return s;
}

static int
in_use(const struct loaded_plugin *p, struct loaded_plugin *const *use, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (use[i] == p)
			return 1;
	return 0;
}

int
plugins_init_worker(const struct mcpd_host *host, struct loaded_plugin *const *use, size_t n,
    char *err, size_t errlen)
{
	for (size_t i = 0; i < nloaded; i++) {
		const struct mcpd_plugin *d = loaded[i]->desc;
		if (!in_use(loaded[i], use, n))
			continue;
		loaded[i]->inited = 1;
		if (d->size > offsetof(struct mcpd_plugin, init_worker) && d->init_worker != NULL &&
		    d->init_worker(host) != 0) {
			snprintf(err, errlen, "plugin %s (%s) refused to start", d->name ? d->name : "?",
			    loaded[i]->path);
			return -1;
		}
	}
	return 0;
}

void
plugins_fini_worker(void)
{
	for (size_t i = 0; i < nloaded; i++) {
		const struct mcpd_plugin *d = loaded[i]->desc;
		if (!loaded[i]->inited)
			continue;
		loaded[i]->inited = 0;
		if (d->size > offsetof(struct mcpd_plugin, fini_worker) && d->fini_worker != NULL)
			d->fini_worker();
	}
}
