/*
 * resolve: host names looked up on the worker's event loop; see resolve.h.
 *
 * evdns answers a cancelled lookup later, from the loop (a deferred
 * callback that still reads the lookup and its evdns_base). So a lookup
 * lives until evdns is done with it, whoever asked for it is gone: its
 * callback is cleared instead. When the worker stops its loop has ended
 * and those answers never come: the resolver is then kept, reachable, for
 * the few moments the process has left, rather than freed under evdns.
 */
#include "resolve.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct lookup {
	struct resolver *rs;
	struct lookup *prev, *next;     /* the resolver's lookups in flight */
	struct evdns_getaddrinfo_request *req;
	resolve_cb *cb;                 /* NULL once cancelled or abandoned */
	void *arg;
	struct lookup **slot;
	int starting;                   /* inside evdns_getaddrinfo */
	int answered;
};

struct resolver {
	struct evdns_base *dns;
	struct lookup *running;
	struct resolver *next;          /* in the graveyard */
};

/* Resolvers abandoned with lookups in flight (see above). */
static struct resolver *graveyard;

int
resolve_is_name(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	if (host == NULL || host[0] == '\0' || host[0] == '/' || host[0] == '@')
		return 0;
	if (strchr(host, ':') != NULL)  /* IPv6, maybe with a zone: never a name */
		return 0;
	return evutil_inet_pton(AF_INET, host, buf) != 1;
}

struct resolver *
resolver_new(struct event_base *base, char *err, size_t errlen)
{
	struct resolver *rs = calloc(1, sizeof(*rs));
	if (rs == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* Name servers, search domains and options from /etc/resolv.conf,
	 * and /etc/hosts (so "localhost" needs no name server). The loop may
	 * end while no lookup runs. */
	rs->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (rs->dns == NULL) {
		snprintf(err, errlen, "cannot set up the DNS resolver (/etc/resolv.conf)");
		free(rs);
		return NULL;
	}
	return rs;
}

static void
unlink_lookup(struct lookup *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else if (l->rs->running == l)
		l->rs->running = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
}

static void
answered(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct lookup *l = arg;
	char addrs[RESOLVE_MAX_ADDRS][RESOLVE_ADDR_LEN];
	size_t n = 0;
	for (struct evutil_addrinfo *a = err == 0 ? ai : NULL; a != NULL && n < RESOLVE_MAX_ADDRS; a = a->ai_next) {
		const void *src;
		if (a->ai_family == AF_INET)
			src = &((const struct sockaddr_in *)(const void *)a->ai_addr)->sin_addr;
		else if (a->ai_family == AF_INET6)
			src = &((const struct sockaddr_in6 *)(const void *)a->ai_addr)->sin6_addr;
		else
			continue;
		if (evutil_inet_ntop(a->ai_family, src, addrs[n], RESOLVE_ADDR_LEN) == NULL)
			continue;
		size_t i = 0;
		while (i < n && strcmp(addrs[i], addrs[n]) != 0)
			i++;
		if (i == n)
			n++;
	}
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
	unlink_lookup(l);
	l->answered = 1;
	resolve_cb *cb = l->cb;
	void *cb_arg = l->arg;
	if (l->slot != NULL)
		*l->slot = NULL;
	if (!l->starting)
		free(l);                /* else resolve_start frees it */
	if (cb != NULL)
		cb(cb_arg, addrs, n, n > 0 ? NULL : err == 0 ? "no IPv4 or IPv6 address" :
		    evutil_gai_strerror(err));
}

void
resolve_start(struct resolver *rs, const char *host, resolve_cb *cb, void *arg, struct lookup **slot)
{
	struct lookup *l = calloc(1, sizeof(*l));
	if (l == NULL) {
		*slot = NULL;
		cb(arg, NULL, 0, "out of memory");
		return;
	}
	l->rs = rs;
	l->cb = cb;
	l->arg = arg;
	l->slot = slot;
	l->starting = 1;
	l->next = rs->running;
	if (l->next != NULL)
		l->next->prev = l;
	rs->running = l;
	*slot = l;
	/* Stream sockets; AI_ADDRCONFIG leaves out IPv6 answers on a host
	 * with no IPv6 address (and IPv4 ones on an IPv6-only host). */
	struct evutil_addrinfo hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	struct evdns_getaddrinfo_request *req = evdns_getaddrinfo(rs->dns, host, NULL, &hints, answered, l);
	l->starting = 0;
	if (l->answered) {              /* answered at once: hosts file, literal, error */
		free(l);
		return;
	}
	if (req == NULL) {              /* not expected: evdns answers when it returns NULL */
		answered(EVUTIL_EAI_FAIL, NULL, l);
		return;
	}
	l->req = req;
}

void
resolve_cancel(struct lookup **slot)
{
	struct lookup *l = *slot;
	if (l == NULL)
		return;
	*slot = NULL;
	l->slot = NULL;
	l->cb = NULL;
	/* evdns answers EVUTIL_EAI_CANCEL later, from the loop: then it is
	 * freed (in answered). */
	evdns_getaddrinfo_cancel(l->req);
}

void
resolver_free(struct resolver *rs)
{
	if (rs == NULL)
		return;
	if (rs->running == NULL) {
		evdns_base_free(rs->dns, 0);
		free(rs);
		return;
	}
	for (struct lookup *l = rs->running; l != NULL; l = l->next) {
		if (l->slot != NULL)
			*l->slot = NULL;
		l->slot = NULL;
		l->cb = NULL;
	}
	rs->next = graveyard;
	graveyard = rs;
}
