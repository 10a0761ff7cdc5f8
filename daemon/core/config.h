/* daemon/core/: what every layer above shares: log, paths (the install
 * paths compiled in), config (this file; config.c loads it,
 * config_tools.c and config_oauth.c read their sections), defs (the
 * tools, resources and prompts declared) and registry (looking them up,
 * their prebuilt list pages), plugin (loading plugins; the storage and
 * transport in use), host (the table plugins call: where a backend is
 * called from), relay (the master's relay between workers), offload
 * (CPU-heavy work off the loop), tool_exec (running commands). It uses
 * lib/ only; http/, auth/, mcp/ and process/ use it.
 *
 * config: the operator's configuration (mcpd.yaml) as typed structs. A
 * config is built whole or not at all: a reload that fails leaves the
 * running one untouched. */
#ifndef MCPD_CONFIG_H
#define MCPD_CONFIG_H

#include "keykms.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "log.h"
#include "sigmsg.h"

struct arena;
struct cnode;
struct errlist;

struct listen_conf {
	const char *address;            /* as the operator wrote it */
	int family;                     /* AF_INET, AF_INET6, AF_UNIX */
	struct sockaddr_storage sa;
	socklen_t salen;
	const char *tls_cert, *tls_key; /* both NULL: plain HTTP */
	uint64_t backlog;
	int mode;                       /* unix socket permissions, -1 = umask */
	void *ssl_ctx;                  /* SSL_CTX, made by tls_load_config */
	void (*ssl_ctx_free)(void *);   /* set with it; config_free calls it */
	int line, col;
	int metrics_only;               /* metrics.listen: serves /metrics alone */
};

/* limits.rate: requests to the endpoint per principal (or per client
 * address without auth), a token bucket of burst tokens earned at per
 * tokens a period. period_ms 0: no limit. */
struct rate_conf {
	uint64_t per;                   /* sustained: per requests ... */
	uint64_t period_ms;             /* ... each period_ms */
	uint64_t burst;                 /* at once, after a quiet time */
	int shared;                     /* counted in storage, across instances */
};

struct limits_conf {
	uint64_t max_body;
	uint64_t max_header;
	uint64_t max_connections;       /* per worker, like nginx worker_connections */
	uint64_t header_timeout_ms;     /* to receive a whole request head */
	uint64_t body_timeout_ms;       /* between two reads of a request body */
	uint64_t idle_timeout_ms;       /* keep-alive connection with no request */
	uint64_t send_timeout_ms;       /* between two writes the client accepts */
	uint64_t stream_buffer;         /* a stream's bytes the client has not taken */
	uint64_t session_idle_timeout_ms;
	uint64_t shutdown_timeout_ms;
	uint64_t max_sessions;          /* per worker */
	uint64_t json_depth;
	uint64_t tool_timeout_ms;       /* default for tools without timeout: */
	uint64_t tool_output;           /* default for tools without max_output: */
	uint64_t tool_processes;        /* running tool processes per worker */
	uint64_t page_size;             /* items per list page */
	uint64_t max_tasks;             /* tasks kept per principal (tasks extension) */
	uint64_t task_result;           /* bytes of a task's stored result */
	uint64_t task_lease_ms;         /* a running task's record unrenewed this long: failed */
	struct rate_conf rate;
};

struct loaded_plugin;

/* A storage or transport plugin and the instance made from its section. */
struct backend {
	const char *name;               /* as written (plugin:), or the default */
	const struct cnode *section;
	struct loaded_plugin *lp;
	void *inst;
	/* The plugin's struct mcpd_storage_ops or mcpd_transport_ops, copied
	 * to this daemon's size: operations the plugin's table lacks are NULL. */
	const void *ops;
	/* Keys mcpd reads itself from the section (host_keys in config.c),
	 * hidden from the plugin: key files, the signing window. */
	const char *key_file, *key_file_accept;
	const char *hash_key_file;      /* storage: the key of idhash.h */
	uint64_t window_ms;
	/* storage.encrypt_key_kms: the key files hold data keys wrapped by
	 * a KMS (provider NULL: plain key files). */
	struct kms_conf kms;
	uint64_t compress_over;         /* transport: deflate messages longer (0: none) */
};

/* A line of the internal authorization server's users file. */
struct oauth_user {
	const char *name;
	const char *hash;               /* $scrypt$... (pwhash.h) */
	const char *scopes;             /* space-separated, "" if none */
	int line;                       /* in users_file */
};

/* auth: { plugin: internal, ... }: the authorization server built into
 * mcpd (oauth.c). Durations in ms; rates per minute and client address. */
struct oauth_conf {
	int enabled;
	const char *issuer;             /* NULL: the resource's origin */
	const char *users_file;
	struct oauth_user *users;       /* sorted by name */
	size_t nusers;
	uint64_t token_ttl_ms, refresh_ttl_ms, code_ttl_ms, client_ttl_ms, login_ttl_ms;
	int registration;               /* POST /oauth/register is open */
	int client_metadata_documents;  /* https:// client_ids (their JSON document) */
	const char *client_metadata_ca_file;    /* NULL: the system's CAs */
	int client_metadata_private;    /* may fetch from loopback and private addresses */
	uint64_t client_metadata_cache_ms;
	uint64_t rate_token, rate_login, rate_register;     /* 0: no limit */
	const char *login_title;        /* the heading of the sign-in page */
};

struct tool_def;
struct resource_def;
struct prompt_def;
struct skill_def;
struct list_pages;

enum { LAMBDA_BUFFERED, LAMBDA_STREAMING };

struct config {
	struct arena *arena;
	const char *path;
	struct cnode *root;

	struct {
		const char *name, *version, *instructions;
	} server;
	struct listen_conf *listen;
	size_t nlisten;
	const char *endpoint;
	uint64_t workers;               /* resolved: "auto" is the number of CPUs */
	int workers_auto;
	const char *user, *group;
	uid_t uid;
	gid_t gid;
	int switch_user;                /* user: given */
	const char *pid_file;
	struct {
		enum log_level level;
		enum log_format format;
		const char *file;
	} log;
	const char **allowed_origins;
	size_t norigins;
	const char **allowed_hosts;     /* Host header values; NULL: any */
	size_t nhosts;
	struct limits_conf limits;
	struct {
		int enabled;                /* counting at all (default yes) */
		struct listen_conf *listen; /* a listener of its own, or NULL */
	} metrics;
	struct {
		uint64_t retry_ms;          /* SSE retry: field */
		uint64_t keepalive_ms;      /* comment lines on quiet streams */
		uint64_t history;           /* events kept per session for Last-Event-ID */
	} mcp;
	struct {
		const char *key_file;
		uint64_t ttl_ms;
		unsigned char key[32];      /* HMAC key of MRTR requestState tokens */
	} request_state;
	struct {
		uint64_t list_ttl_ms;       /* ttlMs of list results (2026-07-28) */
		uint64_t read_ttl_ms;       /* ttlMs of resources/read results */
	} cache;
	const char *config_dir;         /* relative tool paths resolve here */
	const char *plugin_dir;
	struct backend storage, transport;
	struct {
		uint64_t entries;           /* storage: { cache: }; 0: none */
		uint64_t ttl_ms;
	} storage_cache;
	struct sigkeys sign;            /* transport.sign_key_file(s); n 0: messages unsigned */
	struct sigkeys seal;            /* storage.encrypt_key_file(s); n 0: values in clear */
	struct sigkeys idkey;           /* storage.hash_key_file; n 0: idhash's fixed key */
	struct backend auth;            /* name NULL: no auth */
	struct {
		const char *resource;       /* the endpoint's URL; NULL: from each request's Host */
		const char *resource_name;
		const char **authorization_servers;
		size_t nservers;
		const char *scopes_supported;   /* space-separated, or NULL */
		uint64_t cache_ms;          /* how long a validated token is trusted */
		const char *admin_scope;    /* what /admin/sessions needs */
	} authz;
	struct oauth_conf oauth;
	const char *helper_path;        /* mcpd-tool, put on the tools' PATH */
	struct {
		int serving;                /* loaded for mcpd --lambda */
		int response_mode;          /* LAMBDA_BUFFERED or LAMBDA_STREAMING */
		uint64_t deadline_margin_ms;    /* tools stop this long before the deadline */
	} lambda;

	struct tool_def *tools;
	size_t ntools;
	struct resource_def *resources;
	size_t nresources;
	struct prompt_def *prompts;
	size_t nprompts;
	struct skill_def *skills;
	size_t nskills;
	struct list_pages *tool_pages, *resource_pages, *template_pages, *prompt_pages;
	struct list_pages *skill_pages;
	char *capabilities_json;        /* server/discover's capabilities object */
	char *capabilities_2025_json;   /* initialize's: without the tasks extension */
	int tasks;                      /* a tool may run as a task */
	struct {
		const char *endpoint;       /* OTLP/HTTP collector URL; NULL: no tracing */
		double sample;              /* share of new traces recorded, 0 to 1 */
		const char *service_name;   /* NULL: server.name */
		uint64_t queue;             /* spans waiting for export, at most */
		uint64_t batch;             /* spans per export request, at most */
		uint64_t interval_ms;       /* a part batch waits this long */
		uint64_t timeout_ms;        /* one export's bound */
		uint64_t retry_ms;          /* a failed batch is tried again within this */
		const char **headers;       /* "Name: value", sent with each export */
		size_t nheaders;
		const char *ca_file;        /* an https collector's CA */
	} tracing;
};

/* Parse and validate. Returns NULL and fills errs ("file:line:col: msg"
 * each) when anything is wrong. */
struct config *config_load(const char *path, struct errlist *errs);
/* Where plugins are found without plugin_dir: plugins/ beside the running
 * binary (a build tree), else the installed directory. Malloc'd; NULL
 * when out of memory. */
char *config_default_plugin_dir(void);
/* For the configurations loaded after it (mcpd --stdio): one worker,
 * sessions in the memory storage, the in-process local transport,
 * whatever storage: and transport: say. */
void config_one_client(int on);
/* For the configurations loaded after it (mcpd --lambda): one worker,
 * no listen socket, any Host unless allowed_hosts says, the memory
 * storage unless storage: names one. */
void config_lambda(int on);
struct config *config_load_string(const char *name, const char *text,
    struct errlist *errs);
void config_free(struct config *c);

/* Split "host:port", "[v6]:port", "unix:/path" into a socket address. */
int config_parse_address(const char *s, struct sockaddr_storage *sa,
    socklen_t *salen, int *family, char *err, size_t errlen);
/* Human form of a socket address, for logs. */
void sockaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen);

/* Each backend's attach (storage, transport, and auth when asked): 0,
 * or -1 with which failed and why in err. Detach undoes it. */
int config_attach_backends(struct config *cfg, int auth, char *err, size_t errlen);
void config_detach_backends(struct config *cfg, int auth);

#endif
