/* linesplit: newline-delimited messages out of an evbuffer (the MCP stdio
 * transport), each at most max bytes: a longer line is reported once and
 * skipped up to its newline, however it arrives. A line ends at "\n"; a
 * "\r" before it is not part of the line. */
#ifndef MCPD_LINESPLIT_H
#define MCPD_LINESPLIT_H

#include <stddef.h>

struct evbuffer;

struct linesplit {
	size_t max;
	size_t scanned;             /* bytes at the front known to hold no newline */
	int discarding;             /* skipping the rest of a line over max */
};

enum linesplit_result {
	LINE_NONE,                  /* no complete line yet */
	LINE_OK,                    /* *text, *len: a line; drain *take bytes once done with it */
	LINE_TOO_LONG,              /* a line over max (already drained; once per line) */
};

void linesplit_init(struct linesplit *ls, size_t max);
/* at_eof: the input has ended, so what is left is the last line. */
enum linesplit_result linesplit_next(struct linesplit *ls, struct evbuffer *in, int at_eof,
    const char **text, size_t *len, size_t *take);

#endif
