/* Client ID metadata documents (MCP authorization 2025-11-25,
 * draft-ietf-oauth-client-id-metadata-document): a client_id that is an
 * https URL names a JSON document, published by the client, that lists
 * its redirect URIs. mcpd fetches it with libcurl's multi interface on
 * the worker's event loop (never blocking it), bounded in size and time,
 * https only, no redirects, no proxy, and, unless the operator allows it,
 * never from loopback, private or link-local addresses (checked on the
 * address actually connected to, so DNS cannot smuggle one in). A
 * document that passes is kept in storage for client_metadata_cache,
 * shared by every worker. Such clients are public: they prove nothing
 * with a secret, PKCE and the exact redirect URIs protect them. */
#include "oauth_internal.h"
#include "arena.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "paths.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#define MAX_DOCUMENT 5120               /* the draft's suggested bound */
#define FETCH_TIMEOUT_MS 5000
#define MAX_FETCHES 16                  /* at once, per worker */

struct fetch;

struct cimd {
	struct oauth *o;
	CURLM *multi;
	struct event *timer;
	LIST_HEAD(, fetch) fetches;
	unsigned nfetches;
};

struct fetch {
	struct cimd *cm;
	struct oreq *q;
	CURL *easy;
	char *url;
	char body[MAX_DOCUMENT + 1];
	size_t len;
	int too_big;
	int refused_address;
	char errbuf[CURL_ERROR_SIZE];
	LIST_ENTRY(fetch) link;
};

struct sock {
	struct cimd *cm;
	curl_socket_t fd;
	struct event *ev;
};

/* ---- addresses ---- */

static int
private_v4(uint32_t a)
{
	return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 16) == 0xa9fe ||
	    (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 || (a >> 22) == (100u << 2 | 1) ||
	    (a >> 28) >= 0xe;
}

static int
private_address(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return private_v4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
	if (sa->sa_family != AF_INET6)
		return 1;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a)) {
		uint32_t v4;
		memcpy(&v4, a->s6_addr + 12, 4);
		return private_v4(ntohl(v4));
	}
	return IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
	    IN6_IS_ADDR_SITELOCAL(a) || IN6_IS_ADDR_MULTICAST(a) || (a->s6_addr[0] & 0xfe) == 0xfc;
}

static curl_socket_t
open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct fetch *f = arg;
	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKET_BAD;
	if (!f->cm->o->oc->client_metadata_private && private_address(&addr->addr)) {
		f->refused_address = 1;
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* ---- the document ---- */

static int
url_ok(const char *u, const char **why)
{
	if (strlen(u) > 1024) {
		*why = "the client_id URL is too long";
		return 0;
	}
	const char *host = u + 8;               /* after https:// */
	size_t hl = strcspn(host, "/?#");
	const char *path = host + hl;
	if (hl == 0 || memchr(host, '@', hl) != NULL) {
		*why = "the client_id URL needs a host and no credentials";
		return 0;
	}
	if (*path != '/' || path[1] == '\0' || path[1] == '?') {
		*why = "the client_id URL needs a path";
		return 0;
	}
	if (strchr(u, '#') != NULL) {
		*why = "the client_id URL must not have a fragment";
		return 0;
	}
	for (const char *p = u; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			*why = "the client_id URL has spaces or non-ASCII characters";
			return 0;
		}
	for (const char *s = path; *s == '/' && s[1] != '\0';) {
		s++;
		size_t l = strcspn(s, "/?");
		if ((l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.')) {
			*why = "the client_id URL must not have . or .. segments";
			return 0;
		}
		s += l;
	}
	return 1;
}

/* The stored client record the document describes, or NULL and why. */
static cJSON *
record_of(struct arena *ar, const char *url, const char *body, size_t len, const char **why)
{
	cJSON *d = json_parse(body, len, 32, NULL);
	if (!cJSON_IsObject(d)) {
		cJSON_Delete(d);
		*why = "it is not a JSON object";
		return NULL;
	}
	cJSON *rec = cJSON_CreateObject();
	const char *id = json_str(d, "client_id");
	const cJSON *uris = cJSON_GetObjectItemCaseSensitive(d, "redirect_uris");
	const char *method = json_str(d, "token_endpoint_auth_method");
	const char *name = json_str(d, "client_name");
	const char *scope = json_str(d, "scope");
	*why = NULL;
	if (id == NULL || strcmp(id, url) != 0)
		*why = "its client_id is not the URL it was fetched from";
	else if (cJSON_GetObjectItemCaseSensitive(d, "client_secret") != NULL ||
	    cJSON_GetObjectItemCaseSensitive(d, "client_secret_expires_at") != NULL)
		*why = "it carries a client secret, which a public document must not";
	else if (method != NULL && strcmp(method, "none") != 0)
		*why = "only token_endpoint_auth_method none is supported for such clients";
	else if (!cJSON_IsArray(uris) || cJSON_GetArraySize(uris) == 0 ||
	    cJSON_GetArraySize(uris) > OAUTH_MAX_REDIRECTS)
		*why = "redirect_uris must be an array of 1 to 8 URIs";
	else if (name != NULL && strlen(name) > OAUTH_MAX_NAME)
		*why = "client_name is too long";
	else if (scope != NULL && !scope_valid(scope))
		*why = "scope must be space-separated scope tokens";
	cJSON *list = cJSON_AddArrayToObject(rec, "redirect_uris");
	const cJSON *u;
	cJSON_ArrayForEach(u, uris) {
		const char *w;
		if (*why != NULL)
			break;
		if (!cJSON_IsString(u))
			*why = "redirect_uris must hold strings";
		else if (!redirect_uri_ok(u->valuestring, &w))
			*why = arena_printf(ar, "%s: %.100s", w, u->valuestring);
		else
			cJSON_AddItemToArray(list, cJSON_CreateString(u->valuestring));
	}
	int refresh = 0;
	const cJSON *g;
	cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(d, "grant_types")) {
		if (cJSON_IsString(g) && strcmp(g->valuestring, "refresh_token") == 0)
			refresh = 1;
		else if (!cJSON_IsString(g) || strcmp(g->valuestring, "authorization_code") != 0)
			*why = *why ? *why : "grant_types may hold authorization_code and refresh_token only";
	}
	if (*why != NULL) {
		cJSON_Delete(d);
		cJSON_Delete(rec);
		return NULL;
	}
	cJSON_AddStringToObject(rec, "client_id", url);
	cJSON_AddStringToObject(rec, "method", "none");
	if (name != NULL)
		for (const char *p = name; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				name = NULL;
	if (name != NULL)
		cJSON_AddStringToObject(rec, "client_name", name);
	if (scope != NULL)
		cJSON_AddStringToObject(rec, "scope", scope);
	cJSON *grants = cJSON_AddArrayToObject(rec, "grant_types");
	cJSON_AddItemToArray(grants, cJSON_CreateString("authorization_code"));
	if (refresh)
		cJSON_AddItemToArray(grants, cJSON_CreateString("refresh_token"));
	cJSON_AddBoolToObject(rec, "document", 1);
	cJSON_Delete(d);
	return rec;
}

static const char *
cache_key(struct oreq *q, const char *url)
{
	char hex[65];
	oauth_sha256_hex(url, strlen(url), hex);
	return arena_printf(q->ar, "oauth:cimd:%s", hex);
}

static void
answer(struct oreq *q, const struct oclient *c, int status, const char *why)
{
	if (q->r == NULL) {
		oreq_free(q);
		return;
	}
	q->client_status = status;
	q->client_error = why;
	q->client_next(q, c);
}

static void
fetch_free(struct fetch *f)
{
	LIST_REMOVE(f, link);
	f->cm->nfetches--;
	curl_multi_remove_handle(f->cm->multi, f->easy);
	curl_easy_cleanup(f->easy);
	free(f->url);
	free(f);
}

static void
fetched(struct fetch *f, CURLcode rc)
{
	struct oreq *q = f->q;
	long code = 0;
	curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
	const char *why = NULL;
	if (f->refused_address)
		why = "its host has a loopback, private or link-local address (see client_metadata_private_addresses)";
	else if (f->too_big || rc == CURLE_FILESIZE_EXCEEDED)
		why = "it is larger than 5 KiB";
	else if (rc != CURLE_OK)
		why = arena_strdup(q->ar, f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc));
	else if (code != 200)
		why = arena_printf(q->ar, "the server answered HTTP %ld", code);
	cJSON *rec = NULL;
	if (why == NULL)
		rec = record_of(q->ar, f->url, f->body, f->len, &why);
	const char *url = arena_strdup(q->ar, f->url);
	fetch_free(f);
	if (rec == NULL) {
		log_notice("oauth: client metadata document %s refused: %s", url, oauth_printable(q->ar, why));
		answer(q, NULL, MCPD_NOT_FOUND, arena_printf(q->ar, "its metadata document (%s) is unusable: %s", url, why));
		return;
	}
	char *text = cJSON_PrintUnformatted(rec);
	struct oauth *o = q->o;
	if (text != NULL && o->oc->client_metadata_cache_ms > 0)
		o->b.storage->set(o->b.storage_inst, cache_key(q, url), text, strlen(text), o->oc->client_metadata_cache_ms,
		    0, NULL, NULL);
	cJSON_free(text);
	struct oclient *c = oclient_from_json(q->ar, rec);
	cJSON_Delete(rec);
	answer(q, c, c ? MCPD_OK : MCPD_ERROR, c ? NULL : "a malformed client record");
}

static void
check_done(struct cimd *cm)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(cm->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct fetch *f = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
		CURLcode rc = m->data.result;
		if (f != NULL)
			fetched(f, rc);
	}
}

/* ---- libcurl on the event loop ---- */

static void
sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cimd *cm = arg;
	int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;
	curl_multi_socket_action(cm->multi, fd, flags, &running);
	check_done(cm);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct cimd *cm = arg;
	int running;
	curl_multi_socket_action(cm->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(cm);
}

static int
curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	struct cimd *cm = userp;
	struct sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			event_free(s->ev);
			free(s);
			curl_multi_assign(cm->multi, fd, NULL);
		}
		return 0;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return -1;
		s->cm = cm;
		s->fd = fd;
		curl_multi_assign(cm->multi, fd, s);
	} else {
		event_free(s->ev);
	}
	short ev = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
	s->ev = event_new(cm->o->base, fd, ev, sock_cb, cm);
	if (s->ev == NULL || event_add(s->ev, NULL) < 0)
		return -1;
	return 0;
}

static int
curl_timer(CURLM *multi, long ms, void *userp)
{
	(void)multi;
	struct cimd *cm = userp;
	if (ms < 0) {
		evtimer_del(cm->timer);
		return 0;
	}
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	return evtimer_add(cm->timer, &tv);
}

static size_t
write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct fetch *f = arg;
	size_t len = size * n;
	if (f->len + len > MAX_DOCUMENT) {
		f->too_big = 1;
		return 0;       /* aborts the transfer */
	}
	memcpy(f->body + f->len, data, len);
	f->len += len;
	return len;
}

static void
start_fetch(struct oreq *q, const char *url)
{
	struct cimd *cm = q->o->cimd;
	if (cm->nfetches >= MAX_FETCHES) {
		answer(q, NULL, MCPD_ERROR, "too many client metadata documents are being fetched; try again");
		return;
	}
	struct fetch *f = calloc(1, sizeof(*f));
	if (f == NULL || (f->url = strdup(url)) == NULL || (f->easy = curl_easy_init()) == NULL) {
		if (f != NULL)
			free(f->url);
		free(f);
		answer(q, NULL, MCPD_ERROR, "out of memory");
		return;
	}
	f->cm = cm;
	f->q = q;
	CURL *e = f->easy;
	static struct curl_slist *accept;
	if (accept == NULL)
		accept = curl_slist_append(NULL, "Accept: application/json");
	curl_easy_setopt(e, CURLOPT_URL, f->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)FETCH_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)FETCH_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MAX_DOCUMENT);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, f);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, f);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, accept);
	char agent[64];
	snprintf(agent, sizeof(agent), "mcpd/%s", mcpd_version);
	curl_easy_setopt(e, CURLOPT_USERAGENT, agent);
	if (q->o->oc->client_metadata_ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, q->o->oc->client_metadata_ca_file);
	LIST_INSERT_HEAD(&cm->fetches, f, link);
	cm->nfetches++;
	if (curl_multi_add_handle(cm->multi, e) != CURLM_OK) {
		fetch_free(f);
		answer(q, NULL, MCPD_ERROR, "cannot start a fetch");
	}
}

static void
cached(struct oreq *q, int status, cJSON *rec)
{
	const char *url = q->cimd_url;
	if (status == MCPD_OK) {
		struct oclient *c = oclient_from_json(q->ar, rec);
		if (c != NULL && strcmp(c->id, url) == 0) {
			answer(q, c, MCPD_OK, NULL);
			return;
		}
	}
	start_fetch(q, url);
}

void
cimd_lookup(struct oreq *q, const char *url)
{
	const char *why;
	if (!url_ok(url, &why)) {
		answer(q, NULL, MCPD_NOT_FOUND, why);
		return;
	}
	q->cimd_url = arena_strdup(q->ar, url);
	oreq_get(q, cache_key(q, url), cached);
}

struct cimd *
cimd_new(struct oauth *o)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return NULL;
	struct cimd *cm = calloc(1, sizeof(*cm));
	if (cm == NULL)
		return NULL;
	cm->o = o;
	LIST_INIT(&cm->fetches);
	cm->multi = curl_multi_init();
	cm->timer = evtimer_new(o->base, timer_cb, cm);
	if (cm->multi == NULL || cm->timer == NULL) {
		cimd_free(cm);
		return NULL;
	}
	curl_multi_setopt(cm->multi, CURLMOPT_SOCKETFUNCTION, curl_socket);
	curl_multi_setopt(cm->multi, CURLMOPT_SOCKETDATA, cm);
	curl_multi_setopt(cm->multi, CURLMOPT_TIMERFUNCTION, curl_timer);
	curl_multi_setopt(cm->multi, CURLMOPT_TIMERDATA, cm);
	return cm;
}

void
cimd_free(struct cimd *cm)
{
	if (cm == NULL)
		return;
	while (!LIST_EMPTY(&cm->fetches)) {
		struct fetch *f = LIST_FIRST(&cm->fetches);
		struct oreq *q = f->q;
		fetch_free(f);
		answer(q, NULL, MCPD_ERROR, "the worker is stopping");
	}
	if (cm->multi != NULL)
		curl_multi_cleanup(cm->multi);
	if (cm->timer != NULL)
		event_free(cm->timer);
	free(cm);
}
