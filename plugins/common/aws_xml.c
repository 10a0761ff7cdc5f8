/* The text of an element of an AWS query API answer: see aws_xml.h. */
#include "aws_xml.h"

#include <stdlib.h>
#include <string.h>

/* Where the text of the first <tag> starts and its length, or NULL. */
static const char *
find(const char *xml, const char *tag, size_t *len)
{
	size_t tl = strlen(tag);
	for (const char *p = xml; (p = strchr(p, '<')) != NULL; p++) {
		if (strncmp(p + 1, tag, tl) != 0 || (p[1 + tl] != '>' && p[1 + tl] != ' ' && p[1 + tl] != '/'))
			continue;
		const char *start = strchr(p + 1 + tl, '>');
		if (start == NULL)
			return NULL;
		if (start[-1] == '/') {         /* <tag/> */
			*len = 0;
			return start + 1;
		}
		start++;
		for (const char *e = start; (e = strstr(e, "</")) != NULL; e += 2) {
			if (strncmp(e + 2, tag, tl) == 0 && e[2 + tl] == '>') {
				*len = (size_t)(e - start);
				return start;
			}
		}
		return NULL;
	}
	return NULL;
}

/* Decodes the five entities and numeric references below 128 in place
 * (into out, which has room for n + 1 bytes). */
static void
decode(const char *s, size_t n, char *out)
{
	static const struct { const char *name; char c; } ents[] = {
		{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' },
	};
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '&') {
			int done = 0;
			for (size_t k = 0; k < sizeof(ents) / sizeof(ents[0]) && !done; k++) {
				size_t el = strlen(ents[k].name);
				if (i + el <= n && strncmp(s + i, ents[k].name, el) == 0) {
					out[o++] = ents[k].c;
					i += el - 1;
					done = 1;
				}
			}
			if (!done && i + 3 < n && s[i + 1] == '#') {
				char *end;
				long v = strtol(s + i + 2, &end, 10);
				if ((size_t)(end - s) < n && *end == ';' && v > 0 && v < 128) {
					out[o++] = (char)v;
					i = (size_t)(end - s);
					done = 1;
				}
			}
			if (done)
				continue;
		}
		out[o++] = s[i];
	}
	out[o] = '\0';
}

int
aws_xml_text(const char *xml, const char *tag, char *out, size_t len)
{
	size_t n;
	const char *s = xml ? find(xml, tag, &n) : NULL;
	out[0] = '\0';
	if (s == NULL || n >= len)
		return -1;
	decode(s, n, out);
	return 0;
}

char *
aws_xml_dup(const char *xml, const char *tag)
{
	size_t n;
	const char *s = xml ? find(xml, tag, &n) : NULL;
	char *out = s ? malloc(n + 1) : NULL;
	if (out != NULL)
		decode(s, n, out);
	return out;
}
