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

/* n hex digits of either case at s, copied in lower case to out. */
static int
hex_lower(const char *s, size_t n, char *out, int *zero)
{
	*zero = 1;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
		if (c != '0')
			*zero = 0;
		out[i] = c;
	}
	return 1;
}

int
traceparent_from_xray(const char *s, char trace_id[33], char parent_id[17], int *sampled)
{
	int have_root = 0, zero;
	trace_id[0] = '\0';
	parent_id[0] = '\0';
	*sampled = -1;
	if (s == NULL)
		return -1;
	while (*s != '\0') {
		while (*s == ' ' || *s == '\t')
			s++;
		size_t n = strcspn(s, ";");
		const char *eq = memchr(s, '=', n);
		size_t kl = eq != NULL ? (size_t)(eq - s) : n;
		const char *v = eq != NULL ? eq + 1 : s + n;
		size_t vl = (size_t)(s + n - v);
		while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
		if (kl == 4 && memcmp(s, "Root", 4) == 0) {
			/* 1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx */
			have_root = vl == 35 && memcmp(v, "1-", 2) == 0 && v[10] == '-' &&
			    hex_lower(v + 2, 8, trace_id, &zero) &&
			    hex_lower(v + 11, 24, trace_id + 8, &zero);
			if (have_root && memcmp(trace_id, "00000000000000000000000000000000", 32) == 0)
				have_root = 0;
			trace_id[have_root ? 32 : 0] = '\0';
		} else if (kl == 6 && memcmp(s, "Parent", 6) == 0) {
			if (vl == 16 && hex_lower(v, 16, parent_id, &zero) && !zero)
				parent_id[16] = '\0';
			else
				parent_id[0] = '\0';
		} else if (kl == 7 && memcmp(s, "Sampled", 7) == 0) {
			*sampled = vl == 1 && v[0] == '1' ? 1 : vl == 1 && v[0] == '0' ? 0 : -1;
		}
		s += n;
		if (*s == ';')
			s++;
	}
	if (!have_root) {
		parent_id[0] = '\0';
		*sampled = -1;
		return -1;
	}
	return 0;
}
