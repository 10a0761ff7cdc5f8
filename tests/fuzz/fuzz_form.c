/* libFuzzer target: query strings and form bodies (daemon/form.c), as
 * oauth.c parses them (32 fields, 2048-byte values) and as oauth_client.c
 * splits a client's credentials (2 fields); cookies; and the escaping that
 * writes values back out. A value written with url_encode must parse back
 * to itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
round_trip(struct arena *ar, const char *name, const char *value)
{
	/* Names and values never hold a NUL (form_parse refuses it). */
	const char *enc = arena_printf(ar, "%s=%s", url_encode(ar, name), url_encode(ar, value));
	struct form f;
	const char *why = NULL;
	if (form_parse(ar, enc, strlen(enc), 1, 1u << 20, &f, &why) < 0 || f.n != 1 ||
	    strcmp(f.fields[0].name, name) != 0 || strcmp(f.fields[0].value, value) != 0) {
		fprintf(stderr, "url_encode round trip broke: \"%s\"=\"%s\" -> %s (%s)\n", name, value,
		    enc, why ? why : "changed");
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena *ar = arena_new(4096);
	if (ar == NULL)
		return 0;
	const char *s = (const char *)data;
	struct form f;
	const char *why = NULL;
	if (form_parse(ar, s, size, 32, 2048, &f, &why) == 0) {
		if (f.n > 32)
			abort();
		for (size_t i = 0; i < f.n; i++) {
			if (strlen(f.fields[i].name) > 2048 || strlen(f.fields[i].value) > 2048)
				abort();
			html_escape(ar, f.fields[i].value);
			round_trip(ar, f.fields[i].name, f.fields[i].value);
		}
		form_get(&f, "client_id");
		form_get(&f, "redirect_uri");
		if (f.repeated != NULL && form_get(&f, f.repeated) == NULL)
			abort();
	}
	struct form two;
	form_parse(ar, s, size, 2, 2048, &two, &why);

	/* A Cookie header is a C string. */
	char *hdr = arena_strndup(ar, s, size);
	cookie_get(ar, hdr, "mcpd_login");
	cookie_get(ar, hdr, "a");
	arena_free(ar);
	return 0;
}
