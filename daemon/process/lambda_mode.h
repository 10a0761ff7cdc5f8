/* mcpd --lambda: an AWS Lambda custom runtime (the bootstrap). */
#ifndef MCPD_LAMBDA_MODE_H
#define MCPD_LAMBDA_MODE_H

struct config;

/* Takes ownership of cfg. Loops on the Runtime API named by
 * AWS_LAMBDA_RUNTIME_API until it goes away (exit status 1, so that
 * Lambda starts the environment again) or SIGTERM (0). */
int lambda_main(struct config *cfg);

/* Before the loop, when the configuration cannot be loaded: tell the
 * Runtime API (POST /runtime/init/error), blocking, within a second or
 * two. Quiet when AWS_LAMBDA_RUNTIME_API is unset. */
void lambda_init_error(const char *type, const char *message);

#endif
