/*
 * The amqp transport's shared declarations: its configuration and state
 * (transport_amqp.c), the AMQP connection on the worker's loop (conn.c)
 * and Service Bus's tokens (sas.c; Entra ID's through
 * plugins/common/azure_auth.c).
 */
#ifndef MCPD_AMQP_H
#define MCPD_AMQP_H

#include <mcpd/plugin.h>

#include "presence.h"
#include "sas.h"
#include "subs.h"

#include <proton/connection_driver.h>
#include <stddef.h>
#include <stdint.h>

#define AMQP_MAX_CHANNEL 1024
#define AMQP_MAX_MESSAGE (64u << 20)    /* what a worker sends or takes, whatever the broker allows */
#define AMQP_MAX_QUEUED (16u << 20)     /* bytes waiting for credit or a connection, per worker */
#define AMQP_CREDIT 256                 /* messages a receiver lets the broker send ahead */
#define AMQP_MAX_BACKOFF_MS 5000

enum flavor { FL_GENERIC, FL_RABBITMQ, FL_ACTIVEMQ, FL_SERVICEBUS };
enum sasl_mech { SASL_AUTO, SASL_ANONYMOUS, SASL_PLAIN, SASL_EXTERNAL };

struct op;                              /* one publish, waiting for its dispositions */
struct recent;
struct sbput;
struct azure_cred;

struct out {                            /* a message waiting for credit */
	struct op *op;                      /* NULL: nobody waits for it */
	char *bytes;
	size_t len;
	struct out *next;
};

struct sender {                         /* one link to an address, made on demand */
	char *address;
	void *link;                         /* pn_link_t; NULL: none on this connection */
	uint64_t max_message;               /* the broker's, once attached (0: none said) */
	int open;                           /* the broker attached its end */
	struct out *q, **tail;
	uint64_t retry_at;                  /* refused: new messages fail until then */
	char why[400];
	struct sender *next;
};

struct amqp {
	const struct mcpd_host *host;
	/* configuration (master) */
	enum flavor flavor;
	enum sasl_mech mech;
	char *host_name, *vhost, *user, *password;
	int port, tls;
	char *ca_file, *cert_file, *key_file;
	char *prefix, *exchange, *topic;
	char *worker_tmpl, *all_tmpl, *receive_tmpl;
	char *sas_key_name, *sas_key, *token_file, *management_url;
	char *client_id, *token_scope;      /* Entra ID (servicebus without a key or token_file) */
	uint64_t connect_timeout_ms, idle_timeout_ms, heartbeat_ms, token_ttl_ms;
	char instance[9];

	/* worker */
	char me[PRESENCE_ID_MAX + 1];       /* <instance>-<worker> */
	struct event_base *base;
	struct resolver *dns;
	struct lookup *lookup;
	struct bufferevent *bev;
	pn_connection_driver_t driver;
	int have_driver, dead;
	void *session;                      /* pn_session_t */
	void *rx_worker, *rx_all;           /* pn_link_t: receivers */
	void *cbs_tx, *cbs_rx;              /* servicebus: the $cbs node */
	int cbs_ok;
	uint64_t cbs_next_id;
	int state;                          /* enum state in conn.c */
	int ever_up;
	int said;                           /* this attempt's failure was told */
	unsigned backoff_ms;
	char why[512];
	struct event *retry_timer, *tick_timer, *connect_timer, *beat_timer, *local_ev, *token_timer,
	    *sync_timer;
	uint64_t link_seq, tag_seq;
	struct sender *senders;
	size_t queued;
	struct subs subs;
	struct presence presence;
	struct local *locals, **locals_tail;
	void *msg;                          /* pn_message_t, reused */
	struct fetcher *fetcher;            /* servicebus: the management API, Entra ID */
	struct azure_cred *cred;            /* Entra ID tokens, or NULL */
	int cbs_asking, cbs_nested;         /* a token asked for $cbs; the answer comes at once */
	uint64_t cbs_expires;               /* of the Entra ID token put last (Unix ms) */
	struct sbput *sb_pending;           /* its PUTs in flight */
	uint64_t gen;                       /* connection attempts */
	struct recent *recents[1024];       /* transport_amqp.c's RECENT_BUCKETS */
	size_t recent_bytes;
};

/* conn.c */
int conn_attach(struct amqp *a, char *err, size_t errlen);
void conn_detach(struct amqp *a);
int conn_up(const struct amqp *a);
/* Queues a message for address; op (may be NULL) hears how it ends. */
void conn_send(struct amqp *a, const char *address, char *bytes, size_t len, struct op *op);
/* The address of a worker's messages ("all": every worker's). */
char *conn_address(const struct amqp *a, const char *worker, int receive);
void conn_log_why(struct amqp *a, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* transport_amqp.c: what conn.c calls back */
void amqp_received(struct amqp *a, const char *bytes, size_t len);
void amqp_connected(struct amqp *a);
struct op *op_new(mcpd_done_cb *cb, void *arg);
void op_hold(struct op *op);
void op_fail(struct op *op, const char *err);
void op_done(struct op *op, int status, const char *err);

/* sbadmin.c: Service Bus's management API */
/* Makes this worker's subscription (or finds it made); done(a, NULL) or
 * done(a, why). done may run before this returns. */
void sb_subscription(struct amqp *a, void (*done)(struct amqp *a, const char *err));
/* conn.c: the token_file's first line, malloc'ed; NULL and why. */
char *sb_read_token(struct amqp *a, char *why, size_t len);
/* Frees the PUTs in flight (their fetcher is gone). */
void sb_forget(struct amqp *a);

#endif
