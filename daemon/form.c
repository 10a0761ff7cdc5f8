/* Form and query parsing, URL and HTML escaping (see form.h). */
#include "form.h"
#include "arena.h"
#include "util.h"

#include <string.h>

/* Decodes s[0..len) into a new string; NULL on a bad escape or a NUL. */
static char *
decode(struct arena *ar, const char *s, size_t len)
{
	char *out = arena_alloc(ar, len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (i + 2 >= len)
				return NULL;
			int hi = hex_digit((unsigned char)s[i + 1]), lo = hex_digit((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return NULL;
			c = hi << 4 | lo;
			i += 2;
		}
		if (c == 0)
			return NULL;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

int
form_parse(struct arena *ar, const char *s, size_t len, size_t max_fields, size_t max_value,
    struct form *out, const char **why)
{
	out->fields = arena_zalloc(ar, (max_fields ? max_fields : 1) * sizeof(*out->fields));
	out->n = 0;
	out->repeated = NULL;
	size_t i = 0;
	while (i < len) {
		size_t end = i;
		while (end < len && s[end] != '&')
			end++;
		if (end > i) {
			const char *eq = memchr(s + i, '=', end - i);
			size_t nl = eq ? (size_t)(eq - (s + i)) : end - i;
			size_t vl = eq ? end - i - nl - 1 : 0;
			if (nl > max_value || vl > max_value) {
				*why = "a parameter is too long";
				return -1;
			}
			if (out->n == max_fields) {
				*why = "too many parameters";
				return -1;
			}
			char *name = decode(ar, s + i, nl);
			char *value = decode(ar, eq ? eq + 1 : s + end, vl);
			if (name == NULL || value == NULL) {
				*why = "a malformed percent-encoding";
				return -1;
			}
			if (out->repeated == NULL && form_get(out, name) != NULL)
				out->repeated = name;
			out->fields[out->n].name = name;
			out->fields[out->n].value = value;
			out->n++;
		}
		i = end + 1;
	}
	return 0;
}

const char *
form_get(const struct form *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->fields[i].name, name) == 0)
			return f->fields[i].value;
	return NULL;
}

char *
url_encode(struct arena *ar, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(s);
	char *out = arena_alloc(ar, 3 * len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}

char *
html_escape(struct arena *ar, const char *s)
{
	size_t len = strlen(s);
	char *out = arena_alloc(ar, 6 * len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		const char *rep = NULL;
		switch (s[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		}
		if (rep != NULL) {
			size_t rl = strlen(rep);
			memcpy(out + o, rep, rl);
			o += rl;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

const char *
cookie_get(struct arena *ar, const char *header, const char *name)
{
	if (header == NULL)
		return NULL;
	size_t nl = strlen(name);
	const char *p = header;
	while (*p) {
		while (*p == ' ' || *p == ';')
			p++;
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=')
			return arena_strndup(ar, p + nl + 1, len - nl - 1);
		p += len;
	}
	return NULL;
}
