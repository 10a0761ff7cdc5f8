/* Signed transport messages: the envelope mcpd puts around every message
 * it publishes when transport: names sign_key_file, and the cache of
 * what was received, against replays. The envelope is one line of text
 * before the body:
 *
 *   mcpd-sig1 <key id> <unix ms> <nonce: 32 hex> <HMAC-SHA256: 64 hex>\n<body>
 *
 * The HMAC covers the version, key id, time, nonce, the channel and the
 * body (each but the last ended by a NUL), so a message moved to another
 * channel, re-dated or altered fails. */
#ifndef MCPD_SIGMSG_H
#define MCPD_SIGMSG_H

#include <stddef.h>
#include <stdint.h>

#define SIGMSG_NONCE 16
#define SIGMSG_KEYS 2

/* key[0] signs; every key verifies (two during a rotation). */
struct sigkeys {
	int n;
	unsigned char key[SIGMSG_KEYS][32];
	char id[SIGMSG_KEYS][9];
};

enum sigmsg_verdict {
	SIGMSG_OK, SIGMSG_UNSIGNED, SIGMSG_FORGED, SIGMSG_REPLAYED, SIGMSG_STALE, SIGMSG_N
};

/* The envelope and body (malloc'd, *outlen bytes), or NULL. */
char *sigmsg_sign(const struct sigkeys *k, const char *channel, const void *body, size_t len,
    uint64_t now_ms, size_t *outlen);
/* SIGMSG_OK with *body, *bodylen (inside msg), the nonce and time; or
 * why not. A time more than window_ms from now_ms either way is STALE. */
enum sigmsg_verdict sigmsg_verify(const struct sigkeys *k, const char *channel, const void *msg,
    size_t len, uint64_t now_ms, uint64_t window_ms, const void **body, size_t *bodylen,
    unsigned char nonce[SIGMSG_NONCE], uint64_t *ts_ms);

/* What a process received lately: (nonce, subscriber) pairs, at most cap
 * of them. When full the oldest goes, and from then on nothing dated at
 * or before it is accepted: bounded memory never lets a replay through. */
struct replay;
struct replay *replay_new(size_t cap);
void replay_free(struct replay *r);
/* 0: first time (now remembered); -1: seen before, or too old to tell.
 * Entries older than now_ms - window_ms are let go first. */
int replay_check(struct replay *r, const unsigned char nonce[SIGMSG_NONCE], uint64_t subscriber,
    uint64_t ts_ms, uint64_t now_ms, uint64_t window_ms);

#endif
