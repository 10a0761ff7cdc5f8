#include "envexpand.h"
#include "arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
name_first(int c)
{
	return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
name_char(int c)
{
	return name_first(c) || (c >= '0' && c <= '9');
}

static int
fail(size_t *at, size_t where, char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
fail(size_t *at, size_t where, char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	*at = where;
	return -1;
}

int
envexpand_needed(const char *s, size_t len)
{
	for (const char *p = s, *end = s + len; (p = memchr(p, '$', (size_t)(end - p))) != NULL; p++)
		if (end - p >= 2 && p[1] == '{')
			return 1;
	return 0;
}

/* What ${ at s[i] stands for: *val and *vlen, *adv the bytes it takes. */
static int
reference(const char *s, size_t len, size_t i, const char **val, size_t *vlen, size_t *adv,
    size_t *at, char *msg, size_t msglen)
{
	size_t j = i + 2, name0 = j;
	if (j < len && name_first((unsigned char)s[j]))
		while (j < len && name_char((unsigned char)s[j]))
			j++;
	size_t nlen = j - name0;
	if (nlen == 0) {
		if (j < len && s[j] == '}')
			return fail(at, i, msg, msglen, "empty variable name in ${}");
		if (j >= len)
			return fail(at, i, msg, msglen, "unterminated ${ (write $${ for a literal ${)");
		return fail(at, i, msg, msglen, "invalid variable name after ${: a name is a letter "
		    "or _ then letters, digits and _ (write $${ for a literal ${)");
	}
	if (nlen > ENVEXPAND_MAX_NAME)
		return fail(at, i, msg, msglen, "variable name longer than %d characters",
		    ENVEXPAND_MAX_NAME);
	if (j >= len)
		return fail(at, i, msg, msglen, "unterminated ${%.*s (no closing })", (int)nlen, s + name0);
	const char *def = NULL;
	size_t dlen = 0;
	if (s[j] == ':' && j + 1 < len && s[j + 1] == '-') {
		def = s + j + 2;
		const char *close = memchr(def, '}', len - (j + 2));
		if (close == NULL)
			return fail(at, i, msg, msglen, "unterminated ${%.*s:- (no closing })",
			    (int)nlen, s + name0);
		dlen = (size_t)(close - def);
		if (envexpand_needed(def, dlen))
			return fail(at, i, msg, msglen, "the default of ${%.*s} holds ${: defaults "
			    "are not expanded", (int)nlen, s + name0);
		j = (size_t)(close - s);
	} else if (s[j] != '}') {
		return fail(at, i, msg, msglen, "expected } or :- after ${%.*s (the forms are "
		    "${NAME} and ${NAME:-default})", (int)nlen, s + name0);
	}
	if (nlen >= 4 && memcmp(s + name0, "MCP_", 4) == 0)
		return fail(at, i, msg, msglen, "${%.*s}: mcpd sets MCP_ variables for each run of a "
		    "command, not when it reads its configuration; write $${%.*s...} to leave it to "
		    "the command", (int)nlen, s + name0, (int)nlen, s + name0);
	char name[ENVEXPAND_MAX_NAME + 1];
	memcpy(name, s + name0, nlen);
	name[nlen] = '\0';
	const char *v = getenv(name);
	if (def != NULL && (v == NULL || v[0] == '\0')) {
		v = def;
		*vlen = dlen;
	} else if (v == NULL) {
		return fail(at, i, msg, msglen, "environment variable %s is not set (give a default "
		    "as ${%s:-value}, or write $${ for a literal ${)", name, name);
	} else {
		*vlen = strlen(v);
	}
	*val = v;
	*adv = j + 1 - i;
	return 0;
}

/* One pass over s: the result's length in *n, and the result in out
 * unless out is NULL. */
static int
walk(const char *s, size_t len, char *out, size_t max, size_t *n, size_t *at, char *msg,
    size_t msglen)
{
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		const char *piece;
		size_t plen, adv;
		if (s[i] != '$') {
			const char *d = memchr(s + i, '$', len - i);
			piece = s + i;
			plen = adv = d != NULL ? (size_t)(d - piece) : len - i;
		} else if (len - i >= 3 && s[i + 1] == '$' && s[i + 2] == '{') {
			piece = "${";
			plen = 2;
			adv = 3;
		} else if (len - i >= 2 && s[i + 1] == '{') {
			if (reference(s, len, i, &piece, &plen, &adv, at, msg, msglen) < 0)
				return -1;
		} else {
			piece = "$";
			plen = adv = 1;
		}
		if (plen > max - o)
			return fail(at, i, msg, msglen, "expanded, the text would be longer than the %zu bytes left for it", max);
		if (out != NULL)
			memcpy(out + o, piece, plen);
		o += plen;
		i += adv;
	}
	*n = o;
	return 0;
}

char *
envexpand(struct arena *a, const char *s, size_t len, size_t max, size_t *outlen,
    size_t *at, char *msg, size_t msglen)
{
	size_t n;
	/* Measured first, so that nothing larger than max is allocated. */
	if (walk(s, len, NULL, max, &n, at, msg, msglen) < 0)
		return NULL;
	char *out = arena_alloc(a, n + 1);
	if (out == NULL) {
		fail(at, 0, msg, msglen, "out of memory");
		return NULL;
	}
	if (walk(s, len, out, n, &n, at, msg, msglen) < 0)
		return NULL;
	out[n] = '\0';
	*outlen = n;
	return out;
}
