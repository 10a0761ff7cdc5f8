/* W3C Trace Context: the traceparent value (a header, or the _meta field
 * of an MCP request), checked so that only a well-formed one is passed on
 * to tools and written to the log. */
#ifndef MCPD_TRACEPARENT_H
#define MCPD_TRACEPARENT_H

#include <stddef.h>

#define TRACEPARENT_LEN 55      /* version 00: 2-32-16-2 hex digits and dashes */

/* 0 and the trace id (32 lowercase hex digits and a NUL) when s is a
 * valid traceparent: version 00 exactly, or a later version (not ff) with
 * the same first fields and, after them, a dash and anything. The trace
 * and parent ids must not be all zeros. -1 otherwise. */
int traceparent_parse(const char *s, size_t len, char trace_id[33]);

#endif
