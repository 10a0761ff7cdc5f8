/* Newline-delimited messages out of an evbuffer (linesplit.h). The
 * search resumes where the last one stopped, so that a line arriving in
 * many pieces is scanned once, and nothing over max is kept. */
#include "linesplit.h"

#include <event2/buffer.h>
#include <sys/types.h>

void
linesplit_init(struct linesplit *ls, size_t max)
{
	ls->max = max;
	ls->scanned = 0;
	ls->discarding = 0;
}

enum linesplit_result
linesplit_next(struct linesplit *ls, struct evbuffer *in, int at_eof, const char **text,
    size_t *len, size_t *take)
{
	for (;;) {
		size_t have = evbuffer_get_length(in);
		if (have == 0)
			return LINE_NONE;
		struct evbuffer_ptr start, nl;
		if (ls->scanned > have)
			ls->scanned = 0;
		evbuffer_ptr_set(in, &start, ls->scanned, EVBUFFER_PTR_SET);
		nl = evbuffer_search(in, "\n", 1, &start);
		size_t n;
		if (nl.pos < 0) {
			ls->scanned = have;
			if (have > ls->max) {
				int report = !ls->discarding;
				ls->discarding = 1;
				evbuffer_drain(in, have);
				ls->scanned = 0;
				if (report)
					return LINE_TOO_LONG;
				return LINE_NONE;
			}
			if (!at_eof)
				return LINE_NONE;
			n = have;           /* the last line, with no newline */
		} else {
			n = (size_t)nl.pos;
		}
		size_t t = n < have ? n + 1 : n;
		ls->scanned = 0;
		if (ls->discarding) {
			/* The end of a line reported already. */
			ls->discarding = 0;
			evbuffer_drain(in, t);
			continue;
		}
		if (n > ls->max) {
			evbuffer_drain(in, t);
			return LINE_TOO_LONG;
		}
		const char *p = (const char *)evbuffer_pullup(in, (ssize_t)t);
		if (p == NULL)
			return LINE_NONE;
		*text = p;
		*len = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
		*take = t;
		return LINE_OK;
	}
}
