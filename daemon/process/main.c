/* mcpd: a Model Context Protocol server daemon. */
#include "apikeygen.h"
#include "config.h"
#include "lambda_mode.h"
#include "init_cmd.h"
#include "log.h"
#include "master.h"
#include "paths.h"
#include "pwhash.h"
#include "stdio_mode.h"
#include "tls.h"
#include "ttyline.h"
#include "util.h"

#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The scopes given on the command line, space-separated, checked. */
static int
join_scopes(const char *opt, int argc, char **argv, char *out, size_t outlen)
{
	struct sbuf b;
	sbuf_init(&b, out, outlen);
	for (int i = 1; i < argc; i++) {
		for (const char *p = argv[i]; *p; p++)
			if ((unsigned char)*p <= 0x20 || *p == '"' || *p == '\\' ||
			    (unsigned char)*p > 0x7e) {
				fprintf(stderr, "mcpd: %s: \"%s\" is not a scope\n", opt, argv[i]);
				return -1;
			}
		if (sbuf_printf(&b, "%s%s", b.len ? " " : "", argv[i]) < 0) {
			fprintf(stderr, "mcpd: %s: too many scopes\n", opt);
			return -1;
		}
	}
	return 0;
}

/* mcpd -p: a users_file line for the internal authorization server,
 * the password read from stdin and hashed with scrypt. */
static int
make_user(int argc, char **argv)
{
	const char *user = argv[0];
	if (user[0] == '\0' || strlen(user) > 128 || strchr(user, ':') != NULL ||
	    strpbrk(user, " \t\n\r") != NULL) {
		fprintf(stderr, "mcpd: -p: a user name is 1 to 128 characters, with no colon or space\n");
		return 2;
	}
	char scopes[2048];
	if (join_scopes("-p", argc, argv, scopes, sizeof(scopes)) < 0)
		return 2;
	char pw[PWHASH_MAX_PASSWORD + 2], again[PWHASH_MAX_PASSWORD + 2];
	int rc = 1;
	long n = tty_read_line(stderr, "Password: ", pw, sizeof(pw), 0);
	if (n == -2) {
		fprintf(stderr, "mcpd: -p: a password is at most %d bytes\n", PWHASH_MAX_PASSWORD);
		goto fail;
	}
	if (n <= 0) {
		fprintf(stderr, "mcpd: -p: no password on stdin\n");
		goto fail;
	}
	if (isatty(STDIN_FILENO)) {
		long m = tty_read_line(stderr, "Again: ", again, sizeof(again), 0);
		if (m != n || memcmp(pw, again, (size_t)n) != 0) {
			fprintf(stderr, "mcpd: -p: the passwords differ\n");
			goto fail;
		}
	}
	char hash[PWHASH_MAX + 1], err[160];
	if (pwhash_make(pw, (size_t)n, hash, sizeof(hash), err, sizeof(err)) < 0) {
		fprintf(stderr, "mcpd: -p: %s\n", err);
		goto fail;
	}
	printf("%s:%s%s%s\n", user, hash, scopes[0] ? ":" : "", scopes);
	rc = fflush(stdout) == 0 ? 0 : 1;
fail:
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(again, sizeof(again));
	return rc;
}

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
	char scopes[2048];
	if (join_scopes("-k", argc, argv, scopes, sizeof(scopes)) < 0)
		return 2;
	char key[APIKEY_LEN + 1], hex[APIKEY_HASH_HEX + 1];
	if (apikey_generate(key, sizeof(key), hex, sizeof(hex)) < 0) {
		fprintf(stderr, "mcpd: -k: no random bytes from the kernel\n");
		return 1;
	}
	printf("%s:sha256:%s%s%s\n", user, hex, scopes[0] ? ":" : "", scopes);
	fprintf(stderr, "API key for %s (give it to the client; only its hash is kept):\n%s\n", user, key);
	OPENSSL_cleanse(key, sizeof(key));
	return fflush(stdout) == 0 ? 0 : 1;
}

/* Does this log file name what stdout is (/dev/stdout, /proc/self/fd/1,
 * the file stdout was redirected to)? */
static int
writes_stdout(const char *path)
{
	struct stat a, b;
	if (strcmp(path, "stderr") == 0)
		return 0;
	if (stat(path, &a) < 0 || fstat(STDOUT_FILENO, &b) < 0)
		return 0;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mcpd [-t] [-c file]\n"
	    "       mcpd --stdio [-c file]\n"
	    "       mcpd --lambda [-c file]\n"
	    "       mcpd init [--template t] [--auth a] [--examples] [--yes] [dir]\n"
	    "       mcpd -k user [scope ...]\n"
	    "       mcpd -p user [scope ...] < password\n"
	    "       mcpd -V | -h\n"
	    "\n"
	    "  -c file  configuration file (default %s)\n"
	    "  -t       check the configuration and exit: 0 when valid\n"
	    "  --stdio  serve one client on stdin and stdout (the MCP stdio transport,\n"
	    "           for desktop clients): one process, logs on stderr\n"
	    "  --lambda serve as an AWS Lambda function's bootstrap (a custom runtime\n"
	    "           on AWS_LAMBDA_RUNTIME_API): one process, no listen socket\n"
	    "  init     make a new server's directory: mcpd.yaml, tools, README\n"
	    "           (asks on a terminal; mcpd init -h lists its options)\n"
	    "  -k user  make an API key for the apikey auth plugin: the key goes to\n"
	    "           stderr (shown once), its keys_file line to stdout\n"
	    "  -p user  make a users_file line for the internal authorization server:\n"
	    "           the password is read from stdin (not echoed on a terminal)\n"
	    "  -V       print the version and exit\n"
	    "  -h       print this help and exit\n"
	    "\n"
	    "Signals to the master: HUP reloads the configuration, TERM/INT/QUIT stop\n"
	    "gracefully, USR1 reopens the log file. See mcpd(8) and mcpd.yaml(5).\n",
	    mcpd_default_config);
}

static void
print_error(const char *msg, void *arg)
{
	(void)arg;
	fprintf(stderr, "%s\n", msg);
}

int
main(int argc, char **argv)
{
	const char *path = mcpd_default_config;
	int test_only = 0, one_client = 0, lambda = 0;
	int ch;
	if (argc > 1 && strcmp(argv[1], "init") == 0)
		return init_main(argv[0], argc - 1, argv + 1);
	static const struct option longopts[] = {
		{ "stdio", no_argument, NULL, 'S' },
		{ "lambda", no_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	while ((ch = getopt_long(argc, argv, "c:thVk:p:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'S':
			one_client = 1;
			break;
		case 'L':
			lambda = 1;
			break;
		case 'k':
			return make_api_key(argc - optind + 1, argv + optind - 1);
		case 'p':
			return make_user(argc - optind + 1, argv + optind - 1);
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
	if (one_client && lambda) {
		fprintf(stderr, "mcpd: --stdio and --lambda are two different ways to run\n");
		usage(stderr);
		return 2;
	}
	if (optind != argc) {
		fprintf(stderr, "mcpd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	char err[512];
	log_open("stderr", LOG_INFO, LOG_TEXT, err, sizeof(err));
	log_capture_libevent();
	config_one_client(one_client);
	config_lambda(lambda);
	struct errlist errs = { 0 };
	struct config *cfg = config_load(path, &errs);
	if (cfg != NULL && tls_load_config(cfg, &errs) < 0) {
		config_free(cfg);
		cfg = NULL;
	}
	if (cfg == NULL) {
		errlist_each(&errs, print_error, NULL);
		fprintf(stderr, "mcpd: %s: %zu error%s; %s\n", path, errs.n, errs.n == 1 ? "" : "s",
		    test_only ? "configuration test failed" : "not starting");
		if (lambda && !test_only && errs.n > 0)
			lambda_init_error("mcpd.ConfigError", errs.msgs[0]);
		errlist_free(&errs);
		return 1;
	}
	if (test_only) {
		printf("mcpd: configuration file %s test is successful\n", path);
		config_free(cfg);
		return 0;
	}
	const char *log_file = cfg->log.file;
	if (one_client && log_file != NULL && writes_stdout(log_file))
		log_file = "stderr";    /* stdout is the client's */
	if (log_open(log_file, cfg->log.level, cfg->log.format, err, sizeof(err)) < 0) {
		fprintf(stderr, "mcpd: %s\n", err);
		config_free(cfg);
		return 1;
	}
	if (one_client)
		return stdio_main(cfg);
	if (lambda)
		return lambda_main(cfg);
	return master_main(cfg, path);
}
