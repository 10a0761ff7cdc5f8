/* Environment and files for the credential code: see credfile.h. */
#include "credfile.h"

#include <openssl/crypto.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
cred_env(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && *v != '\0' ? v : NULL;
}

char *
cred_slurp(const char *path, size_t max, size_t *lenp)
{
	FILE *fp = fopen(path, "re");
	if (fp == NULL)
		return NULL;
	char *buf = malloc(max + 1);
	size_t n = buf ? fread(buf, 1, max + 1, fp) : 0;
	int bad = buf == NULL || ferror(fp) || n > max;
	fclose(fp);
	if (bad) {
		int e = buf == NULL ? ENOMEM : EFBIG;
		if (buf != NULL)
			OPENSSL_cleanse(buf, n < max ? n : max);
		free(buf);
		errno = e;
		return NULL;
	}
	buf[n] = '\0';
	if (lenp != NULL)
		*lenp = n;
	return buf;
}

char *
cred_trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

void
cred_wipe_free(char **p)
{
	if (*p != NULL) {
		OPENSSL_cleanse(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}
