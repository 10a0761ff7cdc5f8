#include "errtail.h"
#include "log.h"

/* What one run (or one call of a persistent process) may log of stderr. */
#define LOG_CAP (64 * 1024)

static void
log_line(struct errtail *e, const char *name)
{
	e->logged += e->line_len + 1;
	if (e->logged <= LOG_CAP)
		log_warn("tool %s stderr: %.*s%s", name, (int)e->line_len, e->line, e->line_cut ? "..." : "");
	e->line_len = 0;
	e->line_cut = 0;
}

void
errtail_feed(struct errtail *e, const char *name, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		e->ring[e->len % ERRTAIL_SIZE] = buf[i];
		e->len++;
		if (buf[i] == '\n')
			log_line(e, name);
		else if (e->line_len < sizeof(e->line))
			e->line[e->line_len++] = buf[i];
		else
			e->line_cut = 1;
	}
}

void
errtail_flush(struct errtail *e, const char *name)
{
	if (e->line_len > 0)
		log_line(e, name);
}

size_t
errtail_copy(const struct errtail *e, char out[ERRTAIL_SIZE + 1])
{
	size_t n = e->len < ERRTAIL_SIZE ? e->len : ERRTAIL_SIZE;
	size_t start = e->len < ERRTAIL_SIZE ? 0 : e->len % ERRTAIL_SIZE;
	for (size_t i = 0; i < n; i++)
		out[i] = e->ring[(start + i) % ERRTAIL_SIZE];
	out[n] = '\0';
	return n;
}
