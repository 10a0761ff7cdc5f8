/* mcpd: a Model Context Protocol server daemon. */
#include "config.h"
#include "log.h"
#include "master.h"
#include "paths.h"
#include "tls.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mcpd [-t] [-c file]\n"
	    "       mcpd -V | -h\n"
	    "\n"
	    "  -c file  configuration file (default %s)\n"
	    "  -t       check the configuration and exit: 0 when valid\n"
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
	while ((ch = getopt(argc, argv, "c:thV")) != -1) {
		switch (ch) {
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
