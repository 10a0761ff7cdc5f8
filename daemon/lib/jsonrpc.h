/* JSON-RPC 2.0 messages: bounded parsing and compact serialization. */
#ifndef MCPD_JSONRPC_H
#define MCPD_JSONRPC_H

#include <stddef.h>

struct cJSON;
struct arena;

#define JSONRPC_PARSE_ERROR      -32700
#define JSONRPC_INVALID_REQUEST  -32600
#define JSONRPC_METHOD_NOT_FOUND -32601
#define JSONRPC_INVALID_PARAMS   -32602
#define JSONRPC_INTERNAL_ERROR   -32603
#define JSONRPC_REQUEST_CANCELLED -32800

enum jsonrpc_kind {
	RPC_REQUEST,        /* method and id */
	RPC_NOTIFICATION,   /* method, no id */
	RPC_RESPONSE,       /* result or error, with id */
};

/* What reads messages one at a time (a worker, the stdio loop): the
 * arena of the message it freed last is kept, reset, for its next one,
 * so that a request costs no malloc and free of an arena. */
struct jsonrpc_reader {
	struct arena *spare;
};
/* Frees the kept arena; after the last of the reader's messages is freed. */
void jsonrpc_reader_clear(struct jsonrpc_reader *rd);

struct jsonrpc_msg {
	enum jsonrpc_kind kind;
	struct cJSON *root;         /* everything below; read only (from arena) */
	struct arena *arena;        /* owns the tree */
	struct jsonrpc_reader *reader;  /* gets the arena back at the free, or NULL */
	const struct cJSON *id;     /* string or number; NULL for notifications */
	const char *method;
	const struct cJSON *params; /* object or NULL */
	const struct cJSON *meta;   /* params' _meta when an object, else NULL */
	const struct cJSON *result;
	const struct cJSON *error;
};

/* Parse one message from a request body, its tree in rd's kept arena when
 * there is one (rd may be NULL: an arena of its own). On failure returns
 * -1 with a JSON-RPC error code and message; *id_out gets a copy of the
 * id when it could be read (so that the error response can echo it),
 * else NULL (and always NULL on success). */
int jsonrpc_parse(struct jsonrpc_reader *rd, const char *body, size_t len, int max_depth, struct jsonrpc_msg *out,
    int *code, char *msg, size_t msglen, struct cJSON **id_out);
/* Frees the message's tree. A message handed on is copied (struct
 * assignment) and its root set to NULL: then only the copy frees it. */
void jsonrpc_free(struct jsonrpc_msg *m);

/* Serialize compactly (one line, as SSE data needs). Caller frees. */
char *jsonrpc_result(const struct cJSON *id, struct cJSON *result);   /* takes result */
/* The same with the result as JSON text already (one object, on one line:
 * the caller has checked it); copied as it is. */
char *jsonrpc_result_text(const struct cJSON *id, const char *result, size_t len);
/* The same with "resultType":"complete" put first in the object (the
 * stateless revision's plain result, when it has no resultType). */
char *jsonrpc_result_complete(const struct cJSON *id, const char *result, size_t len);
char *jsonrpc_error(const struct cJSON *id, int code, const char *message,
    struct cJSON *data);                                                /* takes data */
char *jsonrpc_notification(const char *method, struct cJSON *params);  /* takes params */
char *jsonrpc_request(const struct cJSON *id, const char *method, struct cJSON *params);

/* Nesting depth of a JSON text, counted without parsing; strings skipped. */
int json_depth_exceeds(const char *s, size_t len, int max_depth);

#endif
