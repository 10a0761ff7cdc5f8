/*
 * local: the transport between the workers of one mcpd, through the
 * master's relay. The default when every request reaches one host.
 * Built against <mcpd/plugin.h> and plugins/common/subs.c.
 *
 * Delivery to subscribers in the publishing worker happens on the next
 * turn of its event loop, never inside publish().
 */
#include <mcpd/plugin.h>

#include "subs.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct local {
	const struct mcpd_host *host;
	struct subs subs;
};

static void
deliver(struct local *l, const char *channel, const void *msg, size_t len)
{
	subs_deliver(&l->subs, channel, msg, len);
}

static void
from_relay(void *arg, const char *channel, const void *msg, size_t len)
{
	deliver(arg, channel, msg, len);
}

struct pending {
	struct local *l;
	size_t len;
	char *channel;
	unsigned char msg[];
};

static void
deliver_later(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct pending *p = arg;
	deliver(p->l, p->channel, p->msg, p->len);
	free(p->channel);
	free(p);
}

static void *
t_subscribe(void *inst, const char *channel, mcpd_message_cb *cb, void *arg)
{
	struct local *l = inst;
	int first = subs_count(&l->subs, channel) == 0;
	struct sub *s = subs_add(&l->subs, channel, cb, arg);
	if (s != NULL && first)
		l->host->relay_subscribe(channel);
	return s;
}

static void
t_unsubscribe(void *inst, void *subscription)
{
	struct local *l = inst;
	struct sub *s = subscription;
	if (!subs_mark(s))
		return;
	if (subs_count(&l->subs, s->channel) == 0)
		l->host->relay_unsubscribe(s->channel);
	subs_release(&l->subs, s);
}

static void
t_publish(void *inst, const char *channel, const void *msg, size_t len,
    const struct mcpd_publish_opts *opts, mcpd_done_cb *cb, void *arg)
{
	(void)opts;
	struct local *l = inst;
	if (subs_count(&l->subs, channel) > 0) {
		struct pending *p = malloc(sizeof(*p) + len);
		if (p != NULL) {
			p->l = l;
			p->len = len;
			p->channel = strdup(channel);
			memcpy(p->msg, msg, len);
			event_base_once(l->host->event_base(), -1, EV_TIMEOUT, deliver_later, p, NULL);
		}
	}
	int rc = l->host->relay_publish(channel, msg, len);
	if (cb)
		cb(arg, rc == 0 ? MCPD_OK : MCPD_ERROR, rc == 0 ? NULL : "the relay to the other workers is full");
}

struct counting {
	int64_t local;
	mcpd_int_cb *cb;
	void *arg;
};

static void
counted(void *arg, int status, int64_t value, const char *err)
{
	struct counting *c = arg;
	c->cb(c->arg, status, status == MCPD_OK ? value + c->local : c->local, err);
	free(c);
}

static void
t_has_subscribers(void *inst, const char *channel, mcpd_int_cb *cb, void *arg)
{
	struct local *l = inst;
	struct counting *c = malloc(sizeof(*c));
	if (c == NULL) {
		cb(arg, MCPD_ERROR, 0, "out of memory");
		return;
	}
	c->local = (int64_t)subs_count(&l->subs, channel);
	c->cb = cb;
	c->arg = arg;
	l->host->relay_count(channel, counted, c);
}

static const struct mcpd_transport_ops ops = {
	.size = sizeof(struct mcpd_transport_ops),
	.subscribe = t_subscribe,
	.unsubscribe = t_unsubscribe,
	.publish = t_publish,
	.has_subscribers = t_has_subscribers,
};

static void *
local_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key;
		const struct mcpd_config *v = host->config_item(section, i, &key);
		if (strcmp(key, "plugin") != 0) {
			char where[512];
			host->config_where(v, where, sizeof(where));
			snprintf(err, errlen, "%s: unknown key \"%s\" in transport (local takes none)", where, key);
			return NULL;
		}
	}
	struct local *l = calloc(1, sizeof(*l));
	if (l == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->host = host;
	return l;
}

static int
local_attach(void *inst, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	struct local *l = inst;
	l->host->relay_receive(from_relay, l);
	return 0;
}

static void
local_detach(void *inst)
{
	struct local *l = inst;
	l->host->relay_receive(NULL, NULL);
	subs_clear(&l->subs);
}

static void
local_destroy(void *inst)
{
	free(inst);
}

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_TRANSPORT,
	.name = "local",
	.version = "1.0.0",
	.create = local_create,
	.attach = local_attach,
	.detach = local_detach,
	.destroy = local_destroy,
	.ops = &ops,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
