/*
 * UTF-8 checks for the cloud plugins: what a service stores as text
 * (Cosmos DB's items and ids, Pub/Sub's attributes and ordering keys) and
 * what SQS may carry. Built into the plugins that use it.
 */
#ifndef MCPD_COMMON_UTF8_H
#define MCPD_COMMON_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The character at s (n > 0 bytes left): its length in bytes with its code
 * point in *cp, or 0 when it is not valid UTF-8 (a stray or cut-short
 * sequence, an overlong form, a surrogate, past U+10FFFF). */
size_t utf8_char(const unsigned char *s, size_t n, uint32_t *cp);

/* 1 when the n bytes are valid UTF-8 without NUL, else 0. */
int utf8_text(const unsigned char *s, size_t n);

#endif
