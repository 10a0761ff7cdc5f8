/*
 * resolve: host names looked up on the worker's event loop (libevent's
 * evdns), so that a plugin connecting by name never waits in
 * getaddrinfo(3). Built into the plugins that need it (PLUGIN_SHARED_*).
 *
 * A resolver reads /etc/resolv.conf and /etc/hosts when it is made (in
 * the plugin's attach, once per worker); each connection attempt looks
 * the name up again, so that a changed address is followed.
 */
#ifndef MCPD_PLUGIN_RESOLVE_H
#define MCPD_PLUGIN_RESOLVE_H

#include <stddef.h>

struct event_base;
struct resolver;
struct lookup;

#define RESOLVE_MAX_ADDRS 8
#define RESOLVE_ADDR_LEN 46             /* INET6_ADDRSTRLEN */

/* The answer: addresses as text (IPv4 or IPv6, in the resolver's order,
 * without duplicates), or naddrs 0 and why. */
typedef void resolve_cb(void *arg, char addrs[][RESOLVE_ADDR_LEN], size_t naddrs, const char *why);

/* 1 when host must be looked up: not an IPv4 or IPv6 literal, not a
 * socket path (/...) or an abstract socket (@...), not empty. */
int resolve_is_name(const char *host);

struct resolver *resolver_new(struct event_base *base, char *err, size_t errlen);

/* Looks host up. *slot holds the lookup while it runs and is set to NULL
 * before cb runs; cb may run before this returns (/etc/hosts, a
 * literal). */
void resolve_start(struct resolver *rs, const char *host, resolve_cb *cb, void *arg, struct lookup **slot);

/* Cancels the lookup in *slot, if any, while the loop keeps running: cb
 * is not called; *slot becomes NULL. */
void resolve_cancel(struct lookup **slot);

/* When the worker stops (its loop has ended): lookups still running are
 * abandoned, their callbacks never run and their slots become NULL. */
void resolver_free(struct resolver *rs);

#endif
