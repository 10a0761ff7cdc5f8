/* mcpd init: the text of the files it writes. Only the sections chosen
 * are written; every value an operator may want to change per host is a
 * ${VAR:-default}, read when mcpd starts. */
#include "init_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct init_template init_templates[TMPL_N] = {
	[TMPL_LOCAL] = { "local", "one host: lmdb (sessions in a file on this host)", "lmdb", "local", 0 },
	[TMPL_REDIS] = { "redis", "Redis (storage and transport, several hosts)", "redis", "redis", 0 },
	[TMPL_POSTGRES] = { "postgres", "PostgreSQL (storage) with Redis (transport)", "postgres", "redis", 0 },
	[TMPL_NATS] = { "nats", "NATS (transport) with Redis (storage)", "redis", "nats", 0 },
	[TMPL_AWS] = { "aws", "AWS: DynamoDB (storage) and SNS/SQS (transport)", "dynamodb", "sqs", 1 },
	[TMPL_AZURE] = { "azure", "Azure: Cosmos DB (storage) and Service Bus (transport)", "cosmos", "amqp", 1 },
	[TMPL_GOOGLE] = { "google", "Google Cloud: Firestore (storage) and Pub/Sub (transport)", "firestore",
	    "pubsub", 1 },
};

const struct init_authinfo init_auths[AUTH_N] = {
	[AUTH_NONE] = { "none", "none: anyone who can connect, so loopback only", NULL },
	[AUTH_INTERNAL] = { "internal", "mcpd's own OAuth server, with a first user", NULL },
	[AUTH_APIKEY] = { "apikey", "API keys", "apikey" },
	[AUTH_JWT] = { "jwt", "an OpenID provider's tokens (jwt:PRESET)", "jwt" },
};

const struct init_preset init_presets[] = {
	{ "keycloak", "https://keycloak.example.com/realms/mcp", NULL },
	{ "auth0", "https://example.auth0.com/", NULL },
	{ "okta", "https://example.okta.com/oauth2/default", "api://default" },
	{ "cognito", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE", "app-client-id" },
	{ "entra", "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0",
	    "00000000-0000-0000-0000-000000000000" },
	{ "firebase", "https://securetoken.google.com/example-project", NULL },
	{ NULL, NULL, NULL },
};

void
text_printf(struct text *t, const char *fmt, ...)
{
	if (t->failed)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->p != NULL ? t->p + t->len : NULL, t->p != NULL ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = 1;
			return;
		}
		if (t->p != NULL && (size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap : 4096;
		while (cap - t->len <= (size_t)n)
			cap *= 2;
		char *p = realloc(t->p, cap);
		if (p == NULL) {
			t->failed = 1;
			return;
		}
		t->p = p;
		t->cap = cap;
	}
}

void
text_free(struct text *t)
{
	free(t->p);
	memset(t, 0, sizeof(*t));
}

const char *
init_tool_file(int example)
{
	switch (example) {
	case EX_PLAIN:
		return "tools/hello.sh";
	case EX_PROGRESS:
		return "tools/countdown.sh";
	default:
		return "tools/ask-name.sh";
	}
}

/* The URL clients reach the endpoint at, on this host. */
#define LOCAL_URL "http://127.0.0.1:8080/mcp"

static void
yaml_storage(struct text *t, const struct init_plan *p)
{
	static const char redis_url[] = "\"${REDIS_URL:-redis://127.0.0.1:6379/0}\"";
	text_printf(t,
	    "# Sessions of the 2025 revisions, and the events kept for Last-Event-ID,\n"
	    "# live in the storage plugin, shared by every worker; the transport\n"
	    "# carries what one worker passes to another (see STORAGE AND TRANSPORT\n"
	    "# in mcpd.yaml(5)).\n");
	switch (p->tmpl) {
	case TMPL_LOCAL:
		text_printf(t,
		    "# lmdb keeps them in one file on this host, across restarts: in\n"
		    "# state/ here, or in the unit's StateDirectory under systemd.\n"
		    "storage: { plugin: lmdb, path: \"${STATE_DIRECTORY:-%s/state}\" }\n"
		    "transport: { plugin: local }          # between the workers of this host\n", p->dir);
		break;
	case TMPL_REDIS:
		text_printf(t,
		    "# Every instance that names the same Redis shares the sessions.\n"
		    "storage: { plugin: redis, url: %s }\n"
		    "transport: { plugin: redis, url: %s }\n", redis_url, redis_url);
		break;
	case TMPL_POSTGRES:
		text_printf(t,
		    "# Every instance that names the same database shares the sessions;\n"
		    "# the postgres plugin has no transport, Redis carries the messages.\n"
		    "# A password: in the URL, or password_file: (see mcpd.yaml(5)).\n"
		    "storage: { plugin: postgres, url: \"${POSTGRES_URL:-postgresql://mcpd@127.0.0.1:5432/mcpd}\" }\n"
		    "transport: { plugin: redis, url: %s }\n", redis_url);
		break;
	case TMPL_NATS:
		text_printf(t,
		    "# Sessions in Redis, messages between the instances over NATS.\n"
		    "storage: { plugin: redis, url: %s }\n"
		    "transport: { plugin: nats, url: \"${NATS_URL:-nats://127.0.0.1:4222}\" }\n", redis_url);
		break;
	case TMPL_AWS:
		text_printf(t,
		    "# DynamoDB and SNS/SQS, with the credentials of the environment (the\n"
		    "# task's or instance's role); conf/aws/mcpd.yaml in mcpd's source is a\n"
		    "# CloudFormation template for the table, the topic and a policy.\n"
		    "storage:\n"
		    "  plugin: dynamodb\n"
		    "  table: \"${MCPD_TABLE:-mcpd}\"\n"
		    "  region: \"${AWS_REGION:-us-east-1}\"\n"
		    "transport:\n"
		    "  plugin: sqs\n"
		    "  region: \"${AWS_REGION:-us-east-1}\"\n"
		    "  topic: \"${MCPD_TOPIC:-mcpd}\"\n"
		    "  queue_prefix: \"${MCPD_QUEUE_PREFIX:-mcpd-}\"   # mcpd makes a queue per worker\n");
		break;
	case TMPL_AZURE:
		text_printf(t,
		    "# Cosmos DB and Service Bus, with Entra ID tokens of the managed or\n"
		    "# workload identity (or key_file: / sas_key_file:, see mcpd.yaml(5)).\n"
		    "storage:\n"
		    "  plugin: cosmos\n"
		    "  endpoint: \"${COSMOS_ENDPOINT:-https://example.documents.azure.com}\"\n"
		    "  database: \"${COSMOS_DATABASE:-mcpd}\"\n"
		    "  container: \"${COSMOS_CONTAINER:-state}\"\n"
		    "transport:\n"
		    "  plugin: amqp\n"
		    "  flavor: servicebus\n"
		    "  url: \"${SERVICEBUS_URL:-amqps://example.servicebus.windows.net}\"\n"
		    "  topic: \"${SERVICEBUS_TOPIC:-mcpd}\"\n");
		break;
	case TMPL_GOOGLE:
		text_printf(t,
		    "# Firestore and Pub/Sub, with the Application Default Credentials\n"
		    "# (the service account of Cloud Run, GKE or the VM).\n"
		    "storage:\n"
		    "  plugin: firestore\n"
		    "  project: \"${GOOGLE_CLOUD_PROJECT:-example-project}\"\n"
		    "  collection: \"${FIRESTORE_COLLECTION:-mcpd}\"\n"
		    "transport:\n"
		    "  plugin: pubsub\n"
		    "  project: \"${GOOGLE_CLOUD_PROJECT:-example-project}\"\n"
		    "  topic: \"${PUBSUB_TOPIC:-mcpd}\"\n");
		break;
	}
}

static void
yaml_auth(struct text *t, const struct init_plan *p)
{
	switch (p->auth) {
	case AUTH_NONE:
		text_printf(t,
		    "# No auth: section: anyone who can connect may call every tool, so\n"
		    "# mcpd listens on loopback only. See AUTHORIZATION in mcpd.yaml(5).\n");
		break;
	case AUTH_INTERNAL:
		text_printf(t,
		    "# mcpd's own OAuth 2.1 authorization server: clients register, send\n"
		    "# the user's browser to its sign-in page and get tokens by themselves.\n"
		    "# Add a user with: mcpd -p USER >> users (then SIGHUP).\n"
		    "auth:\n"
		    "  plugin: internal\n"
		    "  users_file: users                   # user:scrypt-hash lines, mode 600\n"
		    "  # resource: https://mcp.example.com/mcp   # behind a TLS proxy\n");
		break;
	case AUTH_APIKEY:
		text_printf(t,
		    "# Static API keys, sent as bearer tokens; only their SHA-256 is kept.\n"
		    "# Add a key with: mcpd -k USER >> apikeys (then SIGHUP).\n"
		    "auth:\n"
		    "  plugin: apikey\n"
		    "  keys_file: apikeys                  # user:sha256:hash lines, mode 600\n");
		break;
	case AUTH_JWT: {
		const struct init_preset *ps = &init_presets[p->preset];
		text_printf(t,
		    "# Access tokens (JWTs) of an OpenID provider, checked against its keys\n"
		    "# (the jwt plugin, preset %s: see Presets in mcpd.yaml(5)). Clients\n"
		    "# get their tokens from the provider named in authorization_servers.\n"
		    "auth:\n"
		    "  plugin: jwt\n"
		    "  preset: %s\n"
		    "  issuer: \"${OIDC_ISSUER:-%s}\"\n"
		    "  authorization_servers: [\"${OIDC_ISSUER:-%s}\"]\n"
		    "  resource: \"${MCPD_RESOURCE:-" LOCAL_URL "}\"   # the URL clients reach\n",
		    ps->name, ps->name, p->issuer, p->issuer);
		if (p->audience[0] != '\0')
			text_printf(t, "  audience: \"${OIDC_AUDIENCE:-%s}\"   # what the tokens carry\n", p->audience);
		break;
	}
	}
}

static void
yaml_tools(struct text *t, const struct init_plan *p)
{
	if (p->examples == 0) {
		text_printf(t,
		    "# Tools: programs run for each call, arguments in the environment and\n"
		    "# on stdin (see TOOLS in mcpd.yaml(5)), such as\n"
		    "#\n"
		    "# tools:\n"
		    "#   - name: disk-free\n"
		    "#     description: Free space on a mount point.\n"
		    "#     input: { path: { type: string, pattern: \"^/\" } }\n"
		    "#     required: [path]\n"
		    "#     command: [df, -h, --]           # argv, no shell; then the arguments\n");
		return;
	}
	text_printf(t,
	    "# Each tool is a program run for each call: its arguments arrive in the\n"
	    "# environment (MCP_ARG_name) and as JSON on stdin, never as shell code;\n"
	    "# what it prints is the answer. mcpd-tool, on its PATH, talks back to the\n"
	    "# client (see RUNNING COMMANDS in mcpd.yaml(5)).\n"
	    "tools:\n");
	if (p->examples & EX_PLAIN)
		text_printf(t,
		    "  - name: hello\n"
		    "    title: Say hello\n"
		    "    description: Greets someone (a plain answer).\n"
		    "    input:\n"
		    "      name: { type: string, description: Who to greet, maxLength: 100 }\n"
		    "    required: [name]\n"
		    "    command: [tools/hello.sh]\n"
		    "    timeout: 10s\n"
		    "    annotations: { readOnlyHint: true }\n");
	if (p->examples & EX_PROGRESS)
		text_printf(t,
		    "  - name: countdown\n"
		    "    description: Counts down, reporting progress; cancel it from the client.\n"
		    "    input: { seconds: { type: integer, minimum: 1, maximum: 30 } }\n"
		    "    command: [tools/countdown.sh]\n"
		    "    timeout: 40s\n");
	if (p->examples & EX_ASK)
		text_printf(t,
		    "  - name: ask-name\n"
		    "    description: Asks the user for their name (elicitation), then greets them.\n"
		    "    command: [tools/ask-name.sh]\n"
		    "    timeout: 5m\n");
}

void
init_text_yaml(struct text *t, const struct init_plan *p)
{
	const struct init_template *tp = &init_templates[p->tmpl];
	text_printf(t,
	    "# %s: an MCP server made by mcpd init (template %s, auth %s%s%s).\n"
	    "# Every key is described in mcpd.yaml(5); ${VAR:-default} is the\n"
	    "# variable's value or the default, read when mcpd starts and on SIGHUP.\n"
	    "# Relative paths (tool commands, files) are relative to this file.\n"
	    "# Check it with: mcpd -t -c mcpd.yaml\n"
	    "\n"
	    "server:\n"
	    "  name: \"%s\"\n"
	    "  version: 0.1.0\n"
	    "\n"
	    "listen:\n",
	    p->name, tp->name, init_auths[p->auth].name, p->auth == AUTH_JWT ? ":" : "",
	    p->auth == AUTH_JWT ? init_presets[p->preset].name : "", p->name);
	if (p->auth == AUTH_NONE)
		text_printf(t, "  - address: \"127.0.0.1:${PORT:-8080}\"   # loopback only: there is no auth\n");
	else
		text_printf(t, "  - address: \"${MCPD_HOST:-127.0.0.1}:${PORT:-8080}\"%s\n",
		    tp->container ? "   # MCPD_HOST=0.0.0.0 in the container" : "");
	text_printf(t,
	    "  # - address: 0.0.0.0:8443\n"
	    "  #   tls: { cert: /etc/mcpd/cert.pem, key: /etc/mcpd/key.pem }\n"
	    "\n"
	    "endpoint: /mcp\n"
	    "workers: ${MCPD_WORKERS:-auto}         # one per CPU, or a number\n"
	    "# user: mcpd                           # workers drop to this user when started as root\n"
	    "\n"
	    "log:\n"
	    "  level: ${MCPD_LOG_LEVEL:-info}       # error, warn, notice, info, debug\n"
	    "  file: stderr\n"
	    "  format: %s\n"
	    "\n"
	    "# Browsers may call from these origins (the MCP Inspector's page);\n"
	    "# requests without Origin always pass.\n"
	    "allowed_origins: [\"http://localhost:*\", \"http://127.0.0.1:*\"]\n"
	    "\n"
	    "limits:\n"
	    "  tool_timeout: 60s                    # for tools without their own timeout\n"
	    "  shutdown_timeout: %s\n"
	    "\n",
	    tp->container ? "json                         # one object a line, for log collectors" :
	    "text                         # or json",
	    tp->container ? "8s                   # Cloud Run allows 10s after SIGTERM" : "30s");
	yaml_storage(t, p);
	text_printf(t, "\n");
	yaml_auth(t, p);
	text_printf(t, "\n");
	yaml_tools(t, p);
}

void
init_text_tool(struct text *t, int example)
{
	switch (example) {
	case EX_PLAIN:
		text_printf(t,
		    "#!/bin/sh\n"
		    "# hello: a plain answer. The arguments arrive in the environment\n"
		    "# (MCP_ARG_name) and as one JSON object on stdin; what is printed on\n"
		    "# stdout is the result.\n"
		    "set -eu\n"
		    "printf 'Hello, %%s!\\n' \"$MCP_ARG_name\"\n");
		break;
	case EX_PROGRESS:
		text_printf(t,
		    "#!/bin/sh\n"
		    "# countdown: reports progress to the client while it works; a client\n"
		    "# that cancels the call has it killed.\n"
		    "set -eu\n"
		    "n=${MCP_ARG_seconds:-3}\n"
		    "i=0\n"
		    "while [ \"$i\" -lt \"$n\" ]; do\n"
		    "\tmcpd-tool progress \"$i\" \"$n\" \"$((n - i)) second(s) left\"\n"
		    "\tsleep 1\n"
		    "\ti=$((i + 1))\n"
		    "done\n"
		    "mcpd-tool log info \"countdown of $n finished\"\n"
		    "echo \"Done after $n second(s).\"\n");
		break;
	default:
		text_printf(t,
		    "#!/bin/sh\n"
		    "# ask-name: asks the user through the client (elicitation) before\n"
		    "# answering; mcpd-tool prints the client's answer as JSON.\n"
		    "set -eu\n"
		    "answer=$(mcpd-tool elicit \"What is your name?\" \\\n"
		    "\t'{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"description\":\"Your name\"}},"
		    "\"required\":[\"name\"]}')\n"
		    "if [ \"$(mcpd-tool get action \"$answer\")\" != accept ]; then\n"
		    "\techo \"No name given.\"\n"
		    "\texit 0\n"
		    "fi\n"
		    "printf 'Nice to meet you, %%s.\\n' \"$(mcpd-tool get content.name \"$answer\")\"\n");
		break;
	}
}

/* The environment a template reads, for the drop-in and the README. */
static const char *const *
template_env(int tmpl)
{
	static const char *const none[] = { NULL };
	static const char *const redis[] = { "REDIS_URL=redis://10.0.0.20:6379/0", NULL };
	static const char *const postgres[] = { "POSTGRES_URL=postgresql://mcpd@10.0.0.30:5432/mcpd",
		"REDIS_URL=redis://10.0.0.20:6379/0", NULL };
	static const char *const nats[] = { "REDIS_URL=redis://10.0.0.20:6379/0",
		"NATS_URL=nats://10.0.0.21:4222", NULL };
	static const char *const aws[] = { "AWS_REGION=eu-west-1", "MCPD_TABLE=mcpd", "MCPD_TOPIC=mcpd",
		"MCPD_QUEUE_PREFIX=mcpd-", NULL };
	static const char *const azure[] = { "COSMOS_ENDPOINT=https://ACCOUNT.documents.azure.com",
		"COSMOS_DATABASE=mcpd", "COSMOS_CONTAINER=state",
		"SERVICEBUS_URL=amqps://NAMESPACE.servicebus.windows.net", "SERVICEBUS_TOPIC=mcpd", NULL };
	static const char *const google[] = { "GOOGLE_CLOUD_PROJECT=my-project", "FIRESTORE_COLLECTION=mcpd",
		"PUBSUB_TOPIC=mcpd", NULL };
	switch (tmpl) {
	case TMPL_REDIS:
		return redis;
	case TMPL_POSTGRES:
		return postgres;
	case TMPL_NATS:
		return nats;
	case TMPL_AWS:
		return aws;
	case TMPL_AZURE:
		return azure;
	case TMPL_GOOGLE:
		return google;
	default:
		return none;
	}
}

void
init_text_dropin(struct text *t, const struct init_plan *p)
{
	text_printf(t,
	    "# A drop-in for mcpd.service (the Debian package's, or systemd/mcpd.service\n"
	    "# of mcpd's source): the service serves %s/mcpd.yaml.\n"
	    "#   sudo mkdir -p /etc/systemd/system/mcpd.service.d\n"
	    "#   sudo cp %s/mcpd.service.d/%s.conf /etc/systemd/system/mcpd.service.d/\n"
	    "#   sudo systemctl daemon-reload && sudo systemctl restart mcpd\n"
	    "[Service]\n"
	    "ExecStartPre=\n"
	    "ExecStartPre=%s -t -c %s/mcpd.yaml\n"
	    "ExecStart=\n"
	    "ExecStart=%s -c %s/mcpd.yaml\n"
	    "ExecReload=\n"
	    "ExecReload=%s -t -c %s/mcpd.yaml\n"
	    "ExecReload=/bin/kill -HUP $MAINPID\n"
	    "# The unit hides /home (ProtectHome=yes); this directory may be there.\n"
	    "ProtectHome=read-only\n",
	    p->dir, p->dir, p->name, p->mcpd, p->dir, p->mcpd, p->dir, p->mcpd, p->dir);
	if (p->tmpl == TMPL_LOCAL)
		text_printf(t, "# The sessions go to the unit's StateDirectory (STATE_DIRECTORY).\n");
	if (p->auth != AUTH_NONE)
		text_printf(t, "# Serve beyond this host (behind a TLS proxy, or with tls: in mcpd.yaml):\n"
		    "#Environment=MCPD_HOST=0.0.0.0\n");
	for (const char *const *e = template_env(p->tmpl); *e != NULL; e++)
		text_printf(t, "#Environment=%s\n", *e);
}

void
init_text_containerfile(struct text *t, const struct init_plan *p)
{
	const struct init_template *tp = &init_templates[p->tmpl];
	const char *authso = init_auths[p->auth].plugin;
	text_printf(t,
	    "# %s in a container (Cloud Run, Container Apps, ECS, Kubernetes, podman),\n"
	    "# on mcpd's image. First build that image from mcpd's source tree, with\n"
	    "# the plugins this server needs:\n"
	    "#   podman build -f conf/Containerfile --build-arg PLUGINS=\"%s %s%s%s\" -t mcpd .\n"
	    "# then this one, here:\n"
	    "#   podman build -t %s .\n"
	    "#   podman run --rm -p 8080:8080", p->name, tp->storage, tp->transport,
	    authso ? " " : "", authso ? authso : "", p->name);
	for (const char *const *e = template_env(p->tmpl); *e != NULL; e++)
		text_printf(t, " -e %.*s=...", (int)(strchr(*e, '=') - *e), *e);
	text_printf(t, " %s\n"
	    "ARG MCPD_IMAGE=mcpd\n"
	    "FROM ${MCPD_IMAGE}\n"
	    "COPY mcpd.yaml /etc/mcpd/mcpd.yaml\n", p->name);
	if (p->examples)
		text_printf(t, "COPY tools/ /etc/mcpd/tools/\n");
	if (p->auth == AUTH_INTERNAL)
		text_printf(t, "COPY --chown=mcpd:mcpd --chmod=600 users /etc/mcpd/users\n");
	if (p->auth == AUTH_APIKEY)
		text_printf(t, "COPY --chown=mcpd:mcpd --chmod=600 apikeys /etc/mcpd/apikeys\n");
	if (p->auth == AUTH_NONE)
		text_printf(t, "# No auth: mcpd listens on the container's loopback only (mcpd init\n"
		    "# --auth ... for a server others reach).\n");
	else
		text_printf(t, "ENV MCPD_HOST=0.0.0.0\n");
	text_printf(t, "EXPOSE 8080\n");
}

static void
readme_connect(struct text *t, const struct init_plan *p)
{
	text_printf(t,
	    "## Connect a client\n"
	    "\n"
	    "Claude Code:\n"
	    "\n"
	    "    claude mcp add --transport http %s " LOCAL_URL "%s\n"
	    "\n", p->name, p->auth == AUTH_APIKEY ? " --header \"Authorization: Bearer $MCPD_API_KEY\"" : "");
	if (p->auth == AUTH_INTERNAL)
		text_printf(t, "Claude Code finds mcpd's sign-in page by itself (`/mcp` in Claude Code,\n"
		    "then Authenticate) and opens it in the browser: sign in as `%s`.\n\n", p->user);
	if (p->auth == AUTH_JWT)
		text_printf(t, "Claude Code gets its token from the provider named by `OIDC_ISSUER`\n"
		    "(`/mcp` in Claude Code, then Authenticate); the provider must know it as\n"
		    "a client (dynamic registration, or a client id given to Claude Code).\n\n");
	if (p->auth == AUTH_APIKEY)
		text_printf(t, "`MCPD_API_KEY` holds the key `mcpd init` printed (only its hash is in\n"
		    "`apikeys`; make another with `mcpd -k USER >> apikeys`, then reload).\n\n");
	text_printf(t,
	    "Claude Desktop starts a local server itself, over stdio: in\n"
	    "`claude_desktop_config.json` (on macOS in `~/Library/Application Support/Claude/`,\n"
	    "on Windows in `%%APPDATA%%\\Claude\\`):\n"
	    "\n"
	    "```json\n"
	    "{\n"
	    "  \"mcpServers\": {\n"
	    "    \"%s\": {\n"
	    "      \"command\": \"%s\",\n"
	    "      \"args\": [\"--stdio\", \"-c\", \"%s/mcpd.yaml\"]\n"
	    "    }\n"
	    "  }\n"
	    "}\n"
	    "```\n"
	    "\n"
	    "Over stdio the client is whoever started mcpd: `auth:` is not applied,\n"
	    "and the session lives in that process. A server that others share is\n"
	    "added in Claude Desktop as a custom connector (Settings, Connectors) by\n"
	    "its https URL.\n"
	    "\n"
	    "The MCP Inspector: `npx @modelcontextprotocol/inspector`, then transport\n"
	    "\"Streamable HTTP\" and the URL " LOCAL_URL "%s; or from the command line\n"
	    "\n"
	    "    npx @modelcontextprotocol/inspector --cli " LOCAL_URL " --transport http --method tools/list%s\n"
	    "\n",
	    p->name, p->mcpd, p->dir,
	    p->auth == AUTH_APIKEY ? " (with the header `Authorization: Bearer` and the key)" :
	    p->auth == AUTH_NONE ? "" : " (its OAuth flow signs you in)",
	    p->auth == AUTH_APIKEY ? " --header \"Authorization: Bearer $MCPD_API_KEY\"" : "");
}

void
init_text_readme(struct text *t, const struct init_plan *p)
{
	const struct init_template *tp = &init_templates[p->tmpl];
	text_printf(t,
	    "# %s\n"
	    "\n"
	    "An MCP server served by mcpd, made by `mcpd init`.\n"
	    "\n"
	    "- State: %s\n"
	    "- Authorization: %s%s%s\n"
	    "- `mcpd.yaml`: the configuration (every key in mcpd.yaml(5))\n",
	    p->name, tp->label, init_auths[p->auth].label, p->auth == AUTH_JWT ? ", preset " : "",
	    p->auth == AUTH_JWT ? init_presets[p->preset].name : "");
	for (int ex = EX_PLAIN; ex <= EX_ASK; ex <<= 1)
		if (p->examples & ex)
			text_printf(t, "- `%s`: %s\n", init_tool_file(ex),
			    ex == EX_PLAIN ? "the tool `hello`, a plain answer" :
			    ex == EX_PROGRESS ? "the tool `countdown`, which reports progress" :
			    "the tool `ask-name`, which asks the user (elicitation)");
	if (p->auth == AUTH_INTERNAL)
		text_printf(t, "- `users`: who may sign in (`%s` to begin with; `mcpd -p USER >> users` adds one)\n",
		    p->user);
	if (p->auth == AUTH_APIKEY)
		text_printf(t, "- `apikeys`: the API keys' hashes (`mcpd -k USER >> apikeys` adds one)\n");
	if (tp->container)
		text_printf(t, "- `Containerfile`: an image of this server, on mcpd's\n");
	else
		text_printf(t, "- `mcpd.service.d/%s.conf`: a systemd drop-in that has mcpd.service serve it\n",
		    p->name);
	text_printf(t,
	    "\n"
	    "## Run it\n"
	    "\n"
	    "    %s -t -c %s/mcpd.yaml     # check the configuration\n"
	    "    %s -c %s/mcpd.yaml        # serve " LOCAL_URL " (Ctrl-C stops it)\n"
	    "\n",
	    p->mcpd, p->dir, p->mcpd, p->dir);
	const char *const *env = template_env(p->tmpl);
	if (*env != NULL) {
		text_printf(t, "It reads these variables of the environment (the defaults in\n"
		    "`mcpd.yaml` are for a first try):\n\n");
		for (; *env != NULL; env++)
			text_printf(t, "    %s\n", *env);
		text_printf(t, "\n");
	}
	if (p->auth == AUTH_JWT)
		text_printf(t, "Set `OIDC_ISSUER` to your provider's issuer%s, and `MCPD_RESOURCE` to the\n"
		    "URL clients reach this server at.\n\n",
		    init_presets[p->preset].audience ? " and `OIDC_AUDIENCE` to what its tokens carry as audience" : "");
	if (p->auth != AUTH_NONE)
		text_printf(t, "It listens on 127.0.0.1; `MCPD_HOST=0.0.0.0` serves others too (put TLS\n"
		    "in front, or `tls:` in `mcpd.yaml`, and set `resource:` to the https URL).\n\n");
	readme_connect(t, p);
	text_printf(t, "## Deploy\n\n");
	if (tp->container)
		text_printf(t, "The `Containerfile` says how to build the image: first mcpd's own\n"
		    "(`conf/Containerfile` of mcpd's source, with the plugins `%s` and `%s`),\n"
		    "then this one on it. The container listens on port 8080 (or `$PORT`).\n",
		    tp->storage, tp->transport);
	else
		text_printf(t, "With mcpd installed as a service (the Debian package), the drop-in\n"
		    "has it serve this directory:\n"
		    "\n"
		    "    sudo mkdir -p /etc/systemd/system/mcpd.service.d\n"
		    "    sudo cp %s/mcpd.service.d/%s.conf /etc/systemd/system/mcpd.service.d/\n"
		    "    sudo systemctl daemon-reload && sudo systemctl restart mcpd\n"
		    "\n"
		    "A change to `mcpd.yaml` then takes effect with `sudo systemctl reload mcpd`.\n",
		    p->dir, p->name);
}
