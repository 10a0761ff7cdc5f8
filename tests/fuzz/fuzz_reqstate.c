/* libFuzzer target: opening MRTR requestState tokens (daemon/reqstate.c)
 * with a fixed key. Each input is tried twice:
 *  - as a token from a client (forged, truncated, any bytes): it must be
 *    refused unless it is one this key sealed;
 *  - as the JSON inside a token this key sealed (the MAC is made here), so
 *    that what follows the integrity check is reached: the payload's
 *    parsing and its expiry. What opens is read as mcp.c reads it, sealed
 *    again and must open again to the same object. */
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reqstate.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char key[REQSTATE_KEY_LEN] = "mcpd fuzz requestState key 0123";

/* mcp.c's mrtr_begin: the method, name and digest it binds, the answers. */
static void
use_state(cJSON *p)
{
	const cJSON *pm = cJSON_GetObjectItemCaseSensitive(p, "m");
	const cJSON *pn = cJSON_GetObjectItemCaseSensitive(p, "n");
	const cJSON *ph = cJSON_GetObjectItemCaseSensitive(p, "h");
	if (cJSON_IsString(pm) && cJSON_IsString(pn) && cJSON_IsString(ph))
		(void)(strcmp(pm->valuestring, "tools/call") == 0 && strcmp(pn->valuestring, "greet") == 0);
	cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "a");
	char digest[65];
	json_digest(a, digest);
}

/* mcp.c builds its payloads, so their names are never repeated; sealing
 * replaces one "exp", and a repeated one would come back in its place. */
static int
names_unique(const cJSON *o)
{
	for (const cJSON *a = o->child; a != NULL; a = a->next)
		for (const cJSON *b = a->next; b != NULL; b = b->next)
			if (strcmp(a->string, b->string) == 0)
				return 0;
	return 1;
}

static void
reseal(const cJSON *p)
{
	if (!names_unique(p))
		return;
	cJSON *copy = cJSON_Duplicate(p, 1);
	char *token = reqstate_seal(key, copy, 60000);
	if (token == NULL) {
		/* cJSON cannot print every tree it parsed (e.g. a number it made
		 * infinite); the daemon then sends no requestState. */
		cJSON_Delete(copy);
		return;
	}
	char err[160];
	cJSON *again = reqstate_open(key, token, err, sizeof(err));
	/* Compared as text: cJSON_Compare is unsure of repeated names. */
	char *want = cJSON_PrintUnformatted(copy);
	char *got = again ? cJSON_PrintUnformatted(again) : NULL;
	if (got == NULL || want == NULL || strcmp(got, want) != 0) {
		fprintf(stderr, "a sealed requestState did not open to itself: %s\n",
		    again == NULL ? err : token);
		abort();
	}
	free(want);
	free(got);
	cJSON_Delete(again);
	cJSON_Delete(copy);
	free(token);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[160];

	/* 1. The input as the token (a JSON string: no NUL inside). */
	char *token = malloc(size + 1);
	if (token == NULL)
		return 0;
	memcpy(token, data, size);
	token[size] = '\0';
	cJSON *p = reqstate_open(key, token, err, sizeof(err));
	if (p != NULL) {
		use_state(p);
		cJSON_Delete(p);
	}
	free(token);

	/* 2. The input as the sealed JSON. */
	unsigned char mac[32];
	unsigned int maclen = sizeof(mac);
	HMAC(EVP_sha256(), key, sizeof(key), data, size, mac, &maclen);
	char *t = malloc(4 * ((size + 2) / 3) + 1 + 64);
	if (t == NULL)
		return 0;
	size_t n = base64url_encode(data, size, t);
	t[n++] = '.';
	base64url_encode(mac, maclen, t + n);
	p = reqstate_open(key, t, err, sizeof(err));
	free(t);
	if (p != NULL) {
		use_state(p);
		reseal(p);
		cJSON_Delete(p);
	}
	return 0;
}
