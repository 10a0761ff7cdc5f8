/* mcpd: a Model Context Protocol server daemon. */
#include "config.h"
#include "log.h"
#include "master.h"
#include "paths.h"
#include "tls.h"
#include "util.h"

#include <getopt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* mcpd -k: a new API key. Only its hash is kept (the line for
 * keys_file, on stdout, so that `>> file` appends it); the key itself is
 * shown once, on stderr. */
static int
make_api_key(int argc, char **argv)
{
	const char *user = argv[0];
	if (user[0] == '\0' || strchr(user, ':') != NULL || strpbrk(user, " \t\n\r") != NULL) {
		fprintf(stderr, "mcpd: -k: a user name is not empty and has no colon or space\n");
		return 2;
	}
	char scopes[2048] = "";
	size_t len = 0;
	for (int i = 1; i < argc; i++) {
		for (const char *p = argv[i]; *p; p++)
			if ((unsigned char)*p <= 0x20 || *p == '"' || *p == '\\' ||
			    (unsigned char)*p > 0x7e) {
				fprintf(stderr, "mcpd: -k: \"%s\" is not a scope\n", argv[i]);
				return 2;
			}
		len += (size_t)snprintf(scopes + len, sizeof(scopes) - len, "%s%s", len ? " " : "", argv[i]);
		if (len >= sizeof(scopes)) {
			fprintf(stderr, "mcpd: -k: too many scopes\n");
			return 2;
		}
	}
	char token[64];
	if (random_token(token, 32) < 0) {      /* 256 random bits */
		fprintf(stderr, "mcpd: -k: no random bytes from the kernel\n");
		return 1;
	}
	char key[80];
	snprintf(key, sizeof(key), "mcpd_%s", token);
	unsigned char h[32];
	unsigned int n = 32;
	EVP_Digest(key, strlen(key), h, &n, EVP_sha256(), NULL);
	char hex[65];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	printf("%s:sha256:%s%s%s\n", user, hex, len ? ":" : "", scopes);
	fprintf(stderr, "API key for %s (give it to the client; only its hash is kept):\n%s\n", user, key);
	OPENSSL_cleanse(key, sizeof(key));
	return fflush(stdout) == 0 ? 0 : 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mcpd [-t] [-c file]\n"
	    "       mcpd -k user [scope ...]\n"
	    "       mcpd -V | -h\n"
	    "\n"
	    "  -c file  configuration file (default %s)\n"
	    "  -t       check the configuration and exit: 0 when valid\n"
	    "  -k user  make an API key for the apikey auth plugin: the key goes to\n"
	    "           stderr (shown once), its keys_file line to stdout\n"
	    "  -V       print the version and exit\n"
	    "  -h       print this help and exit\n"
	    "\n"
	    "Signals to the master: HUP reloads the configuration, TERM/INT/QUIT stop\n"
	    "gracefully, USR1 reopens the log file. See mcpd(8) and mcpd.yaml(5).\n",
	    mcpd_default_config);
}

int
main(int argc, char **argv)
{
	const char *path = mcpd_default_config;
	int test_only = 0;
	int ch;
	while ((ch = getopt(argc, argv, "c:thVk:")) != -1) {
		switch (ch) {
		case 'k':
			return make_api_key(argc - optind + 1, argv + optind - 1);
		case 'c':
			path = optarg;
			break;
		case 't':
			test_only = 1;
			break;
		case 'V':
			printf("mcpd %s\n", mcpd_version);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mcpd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	char err[512];
	log_open("stderr", LOG_INFO, LOG_TEXT, err, sizeof(err));
	log_capture_libevent();
	struct errlist errs = { 0 };
	struct config *cfg = config_load(path, &errs);
	if (cfg != NULL && tls_load_config(cfg, &errs) < 0) {
		config_free(cfg);
		cfg = NULL;
	}
	if (cfg == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		fprintf(stderr, "mcpd: %s: %zu error%s; %s\n", path, errs.n, errs.n == 1 ? "" : "s",
		    test_only ? "configuration test failed" : "not starting");
		errlist_free(&errs);
		return 1;
	}
	if (test_only) {
		printf("mcpd: configuration file %s test is successful\n", path);
		config_free(cfg);
		return 0;
	}
	if (log_open(cfg->log.file, cfg->log.level, cfg->log.format, err, sizeof(err)) < 0) {
		fprintf(stderr, "mcpd: %s\n", err);
		config_free(cfg);
		return 1;
	}
	return master_main(cfg, path);
}
