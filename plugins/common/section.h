/*
 * An auth plugin's section of mcpd.yaml, read through the host's config
 * API (include/mcpd/plugin.h): values checked, errors prefixed with the
 * node's file:line. Built into each plugin that uses it, like fetch.c.
 */
#ifndef MCPD_PLUGIN_SECTION_H
#define MCPD_PLUGIN_SECTION_H

#include <stddef.h>
#include <stdint.h>

struct mcpd_host;
struct mcpd_config;

struct strlist {
	char **v;
	size_t n;
};

void strlist_clear(struct strlist *l);
/* Adds a copy of s's first len bytes. 0, or -1 (out of memory). */
int strlist_add(struct strlist *l, const char *s, size_t len);
/* Adds the words of a space-separated string. 0, or -1. */
int strlist_split(struct strlist *l, const char *s);

/* A name: printable ASCII without spaces, quotes or backslashes. */
int section_word_ok(const char *s);

void section_say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* err = "where n is: " and the message. Returns -1. */
int section_error(const struct mcpd_host *h, const struct mcpd_config *n, char *err, size_t errlen,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A string of 1 to 2048 bytes into *out, replacing (and wiping: it may
 * be a secret) what was there. 0, or -1 and err. */
int section_string(const struct mcpd_host *h, const struct mcpd_config *n, const char *key, char **out,
    char *err, size_t errlen);
/* A duration in ms from min to max (range says so in words). */
int section_duration(const struct mcpd_host *h, const struct mcpd_config *n, const char *key, uint64_t min,
    uint64_t max, const char *range, uint64_t *out, char *err, size_t errlen);

/* A string or a sequence of them, into l (emptied first); split: a
 * string is split into words at spaces. ok, unless NULL, checks each
 * string taken whole, in order. 0; -1 with *bad the item that is not a
 * string (NULL: out of memory); -2 with *bad the one ok refused. */
int section_strings(const struct mcpd_host *h, const struct mcpd_config *n, int split, int (*ok)(const char *),
    struct strlist *l, const struct mcpd_config **bad);

/* A path of the section, relative to the configuration's directory;
 * malloc'ed, or NULL. */
char *section_path(const struct mcpd_host *h, const char *file);

#endif
