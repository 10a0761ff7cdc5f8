/* Query strings and application/x-www-form-urlencoded bodies, and the
 * escaping that goes with them (URL components, HTML text). Everything
 * is allocated from an arena. */
#ifndef MCPD_FORM_H
#define MCPD_FORM_H

#include <stddef.h>

struct arena;

struct form_field {
	const char *name, *value;
};

struct form {
	struct form_field *fields;
	size_t n;
	const char *repeated;           /* a name given more than once, or NULL */
};

/* Parses len bytes of s ("a=1&b=x%20y"; '+' is a space). -1 and why on a
 * bad percent escape, a NUL, more than max_fields fields, or a name or
 * value longer than max_value. */
int form_parse(struct arena *ar, const char *s, size_t len, size_t max_fields, size_t max_value,
    struct form *out, const char **why);
/* The value of name, or NULL. */
const char *form_get(const struct form *f, const char *name);

/* s percent-encoded for a query component (unreserved characters stay). */
char *url_encode(struct arena *ar, const char *s);
/* s with & < > " ' escaped, for HTML text and attribute values. */
char *html_escape(struct arena *ar, const char *s);
/* The value of a cookie in a Cookie header, or NULL. */
const char *cookie_get(struct arena *ar, const char *header, const char *name);

#endif
