/* A command's stderr: logged line by line (at most 64 KiB of lines
 * between resets of logged, so that a tool cannot flood the log), its
 * last bytes kept for the result or the error that tells of its end.
 * One per one-shot run (tool_exec.c) or persistent process (tool_pool.c). */
#ifndef MCPD_ERRTAIL_H
#define MCPD_ERRTAIL_H

#include <stddef.h>

#define ERRTAIL_SIZE 2048

struct errtail {
	char ring[ERRTAIL_SIZE];
	size_t len;                 /* bytes seen */
	size_t logged;              /* bytes of lines logged, counted toward the cap */
	char line[512];             /* the line being read, for the log */
	size_t line_len;
	int line_cut;               /* it went on beyond line */
};

/* n more bytes of tool name's stderr. */
void errtail_feed(struct errtail *e, const char *name, const char *buf, size_t n);
/* The line left without its newline, logged (at the end of the run). */
void errtail_flush(struct errtail *e, const char *name);
/* The last bytes seen, NUL-terminated, in out (ERRTAIL_SIZE + 1 bytes);
 * returns their length. */
size_t errtail_copy(const struct errtail *e, char out[ERRTAIL_SIZE + 1]);

#endif
