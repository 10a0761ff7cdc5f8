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

/* An AWS X-Ray trace header (Lambda-Runtime-Trace-Id, _X_AMZN_TRACE_ID):
 * "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;
 * Sampled=1", fields in any order, others ignored. Its Root (version 1,
 * 8 hex digits of epoch seconds, 24 of randomness) is a W3C trace id, the
 * two parts run together; Parent, when there, a span id. 0 with trace_id,
 * parent_id ("" without a usable Parent) and *sampled (1, 0, or -1 when
 * Sampled is absent or "?"); -1 when there is no usable Root. */
int traceparent_from_xray(const char *s, char trace_id[33], char parent_id[17], int *sampled);

#endif
