/* Reading an auth plugin's section of mcpd.yaml: see section.h. */
#include <mcpd/plugin.h>

#include "section.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
strlist_clear(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int
strlist_add(struct strlist *l, const char *s, size_t len)
{
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	l->v = v;
	if ((v[l->n] = strndup(s, len)) == NULL)
		return -1;
	l->n++;
	return 0;
}

int
strlist_split(struct strlist *l, const char *s)
{
	while (*s) {
		size_t n = strcspn(s, " ");
		if (n > 0 && strlist_add(l, s, n) < 0)
			return -1;
		s += n;
		while (*s == ' ')
			s++;
	}
	return 0;
}

int
section_word_ok(const char *s)
{
	for (const char *p = s; *p; p++)
		if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
			return 0;
	return s[0] != '\0';
}

void
section_say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int
section_error(const struct mcpd_host *h, const struct mcpd_config *n, char *err, size_t errlen,
    const char *fmt, ...)
{
	char where[512];
	h->config_where(n, where, sizeof(where));
	int len = snprintf(err, errlen, "%s: ", where);
	if (len >= 0 && (size_t)len < errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + len, errlen - (size_t)len, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int
section_string(const struct mcpd_host *h, const struct mcpd_config *n, const char *key, char **out,
    char *err, size_t errlen)
{
	const char *s = h->config_scalar(n);
	if (s == NULL || s[0] == '\0' || strlen(s) > 2048)
		return section_error(h, n, err, errlen, "%s must be a string", key);
	if (*out != NULL) {
		OPENSSL_cleanse(*out, strlen(*out));
		free(*out);
	}
	if ((*out = strdup(s)) == NULL) {
		section_say(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int
section_duration(const struct mcpd_host *h, const struct mcpd_config *n, const char *key, uint64_t min,
    uint64_t max, const char *range, uint64_t *out, char *err, size_t errlen)
{
	if (h->config_duration(n, out) < 0 || *out < min || *out > max)
		return section_error(h, n, err, errlen, "%s must be a duration from %s", key, range);
	return 0;
}

int
section_strings(const struct mcpd_host *h, const struct mcpd_config *n, int split, int (*ok)(const char *),
    struct strlist *l, const struct mcpd_config **bad)
{
	strlist_clear(l);
	*bad = NULL;
	const char *one = h->config_scalar(n);
	if (one != NULL && split)
		return strlist_split(l, one);
	if (one != NULL) {
		if (ok != NULL && !ok(one)) {
			*bad = n;
			return -2;
		}
		return strlist_add(l, one, strlen(one));
	}
	size_t count = h->config_count(n);
	for (size_t i = 0; i < count; i++) {
		const char *k = NULL;
		const struct mcpd_config *item = h->config_item(n, i, &k);
		const char *v = h->config_scalar(item);
		if (k != NULL || v == NULL) {
			*bad = item;
			return -1;
		}
		if (ok != NULL && !ok(v)) {
			*bad = item;
			return -2;
		}
		if (strlist_add(l, v, strlen(v)) < 0)
			return -1;
	}
	return 0;
}

char *
section_path(const struct mcpd_host *h, const char *file)
{
	char *p = NULL;
	if (file[0] == '/')
		return strdup(file);
	if (asprintf(&p, "%s/%s", h->config_dir(), file) < 0)
		return NULL;
	return p;
}
