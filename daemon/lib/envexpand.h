/* Environment variables in the text of a configuration: ${NAME} is the
 * variable's value, ${NAME:-default} the value or, where it is unset or
 * empty, the default; $${ is a literal ${. A $ followed by anything else
 * stays as it is (so $HOME and $$ in a shell: line are left to the
 * shell). NAME is [A-Za-z_][A-Za-z0-9_]*; a default runs to the first }
 * and may not hold ${. Names starting MCP_ are those mcpd gives each
 * command run (MCP_ARG_name and so on): they are refused here, where they
 * could only ever be unset or the daemon's own. */
#ifndef MCPD_ENVEXPAND_H
#define MCPD_ENVEXPAND_H

#include <stddef.h>

struct arena;

#define ENVEXPAND_MAX_NAME 255

/* Does s (len bytes) hold anything to expand (a ${ or $${)? */
int envexpand_needed(const char *s, size_t len);

/* The text of s (len bytes, may hold NULs) expanded, NUL-terminated, in a,
 * its length in *outlen. The result may be at most max bytes. On error
 * returns NULL, *at is the offset in s of the $ the problem starts at and
 * msg says what it is. */
char *envexpand(struct arena *a, const char *s, size_t len, size_t max, size_t *outlen,
    size_t *at, char *msg, size_t msglen);

#endif
