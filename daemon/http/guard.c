/* Host, Origin and CORS (see guard.h). */
#include "guard.h"
#include "config.h"
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int
glob_match(const char *pat, const char *s)
{
	if (*pat == '\0')
		return *s == '\0';
	if (*pat == '*') {
		for (;; s++) {
			if (glob_match(pat + 1, s))
				return 1;
			if (*s == '\0')
				return 0;
		}
	}
	return tolower((unsigned char)*pat) == tolower((unsigned char)*s) && *s != '\0' &&
	    glob_match(pat + 1, s + 1);
}

int
guard_origin_allowed(const struct config *c, const char *origin)
{
	for (size_t i = 0; i < c->norigins; i++) {
		const char *p = c->allowed_origins[i];
		if (strcmp(p, "*") == 0 || glob_match(p, origin))
			return 1;
		/* "http://localhost:*" also admits the origin without a port */
		size_t pl = strlen(p);
		if (pl > 2 && strcmp(p + pl - 2, ":*") == 0 && strncasecmp(p, origin, pl - 2) == 0 &&
		    origin[pl - 2] == '\0')
			return 1;
	}
	return 0;
}

int
guard_host_allowed(const struct config *c, const char *host)
{
	if (c->allowed_hosts == NULL)
		return 1;
	if (host == NULL)
		return 0;
	/* Compared in place (no copy: snprintf was a tenth of the HTTP
	 * layer's work): the name is the host without its port. */
	size_t len = strnlen(host, 256);
	if (len == 256)
		return 0;       /* no host name is that long; a cut one could match */
	const char *colon = host[0] == '[' ? memchr(host, ']', len) : memrchr(host, ':', len);
	size_t nlen = len;
	if (host[0] == '[' && colon != NULL)
		nlen = (size_t)(colon + 1 - host);
	else if (colon != NULL)
		nlen = (size_t)(colon - host);
	for (size_t i = 0; i < c->nhosts; i++) {
		const char *a = c->allowed_hosts[i];
		if ((a[0] | 0x20) != (host[0] | 0x20))
			continue;       /* unlike in their first byte, in any case */
		if ((strncasecmp(a, host, nlen) == 0 && a[nlen] == '\0') || strcasecmp(a, host) == 0)
			return 1;
	}
	return 0;
}

void
guard_cors(const struct config *c, struct http_request *r)
{
	const char *origin = http_request_field(r, HDR_ORIGIN);
	if (origin == NULL || !guard_origin_allowed(c, origin))
		return;
	http_response_header(r, "Access-Control-Allow-Origin", origin);
	http_response_header(r, "Vary", "Origin");
	http_response_header(r, "Access-Control-Expose-Headers",
	    "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate");
}
