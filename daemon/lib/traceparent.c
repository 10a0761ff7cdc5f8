/* traceparent values (see traceparent.h), after W3C Trace Context,
 * section 3.2. */
#include "traceparent.h"

#include <string.h>

/* n lowercase hex digits at s; 1 if they are, and *zero when all are 0. */
static int
hex(const char *s, size_t n, int *zero)
{
	*zero = 1;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
		if (c != '0')
			*zero = 0;
	}
	return 1;
}

int
traceparent_parse(const char *s, size_t len, char trace_id[33])
{
	int zero;
	if (s == NULL || len < TRACEPARENT_LEN)
		return -1;
	if (!hex(s, 2, &zero) || memcmp(s, "ff", 2) == 0)
		return -1;
	if (memcmp(s, "00", 2) == 0 ? len != TRACEPARENT_LEN :
	    len > TRACEPARENT_LEN && s[TRACEPARENT_LEN] != '-')
		return -1;
	if (s[2] != '-' || s[35] != '-' || s[52] != '-')
		return -1;
	if (!hex(s + 3, 32, &zero) || zero)
		return -1;
	if (!hex(s + 36, 16, &zero) || zero)
		return -1;
	if (!hex(s + 53, 2, &zero))
		return -1;
	memcpy(trace_id, s + 3, 32);
	trace_id[32] = '\0';
	return 0;
}
