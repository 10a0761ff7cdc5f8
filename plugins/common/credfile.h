/*
 * What the cloud credential code (aws_creds.c, gcp_auth.c) does with the
 * environment and the files that hold keys and tokens: a variable that is
 * set and not empty, a small file read whole with a bound, text trimmed,
 * and secrets wiped when dropped. Built into the plugins that use it.
 */
#ifndef MCPD_COMMON_CREDFILE_H
#define MCPD_COMMON_CREDFILE_H

#include <stddef.h>

/* The variable's value, or NULL when it is unset or empty. */
const char *cred_env(const char *name);
/* The file whole, NUL-terminated (malloc'ed; its length in *lenp when not
 * NULL), or NULL and errno (EFBIG: over max bytes, what was read wiped). */
char *cred_slurp(const char *path, size_t max, size_t *lenp);
/* s without leading and trailing white space (s is cut in place). */
char *cred_trim(char *s);
/* *p wiped and freed, and set to NULL (nothing when already NULL). */
void cred_wipe_free(char **p);

#endif
