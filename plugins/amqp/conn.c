/*
 * One AMQP 1.0 connection per worker, on the worker's loop: Qpid Proton's
 * connection driver does the protocol (framing, SASL, TLS, links,
 * deliveries) on bytes that a bufferevent reads and writes, so nothing
 * here has a thread or waits. Each read is fed to the driver, its events
 * handled, its output written; its timer (heartbeats, the peer's idle
 * time-out) runs on an event.
 *
 * States: DOWN (waiting out the back-off) -> CONNECTING (name looked up,
 * TCP connecting) -> OPENING (AMQP open, SASL, TLS; Service Bus: the
 * token put on $cbs) -> UP (both receivers attached). Anything that ends
 * the connection (refused, lost, closed by the broker, a receiver's link
 * closed, no answer within connect_timeout, the broker silent past
 * idle_timeout) fails what waits, logs why once, and starts over after a
 * back-off of 100 ms doubling to 5 s.
 */
#include "amqp.h"

#include "azure_auth.h"
#include "clock.h"
#include "fetch.h"
#include "resolve.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/message.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/ssl.h>
#include <proton/terminus.h>
#include <proton/transport.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum state { ST_DOWN, ST_CONNECTING, ST_OPENING, ST_UP };

struct op {
	int refs;
	int status;
	char err[400];
	mcpd_done_cb *cb;
	void *arg;
};

static void start(struct amqp *a);
static void connect_now(struct amqp *a);
static void pump(struct amqp *a);

/* Ends the connection with an error that PN_TRANSPORT_ERROR reports. */
static void conn_fail(struct amqp *a, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
conn_fail(struct amqp *a, const char *name, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pn_connection_driver_verrorf(&a->driver, name, fmt, ap);
	va_end(ap);
	pn_connection_driver_close(&a->driver);
}

void
conn_log_why(struct amqp *a, int level, const char *fmt, ...)
{
	char buf[sizeof(a->why)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (strcmp(buf, a->why) != 0 || a->state == ST_UP)
		a->host->log(level, "amqp: %s", buf);
	a->said = 1;
	snprintf(a->why, sizeof(a->why), "%s", buf);
}

int
conn_up(const struct amqp *a)
{
	return a->state == ST_UP;
}

/* ---- addresses ---- */

static int
put(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = (*len + n + 1) * 2;
		char *p = realloc(*out, c);
		if (p == NULL)
			return -1;
		*out = p;
		*cap = c;
	}
	memcpy(*out + *len, s, n);
	*len += n;
	(*out)[*len] = '\0';
	return 0;
}

/* The template with {prefix}, {worker}, {exchange} and {topic} put in. */
static char *
expand(const struct amqp *a, const char *tmpl, const char *worker)
{
	char *out = NULL;
	size_t len = 0, cap = 0;
	if (put(&out, &len, &cap, "", 0) < 0)
		return NULL;
	for (const char *p = tmpl; *p;) {
		const char *v = NULL;
		size_t skip = 0;
		if (strncmp(p, "{prefix}", 8) == 0)
			v = a->prefix, skip = 8;
		else if (strncmp(p, "{worker}", 8) == 0)
			v = worker, skip = 8;
		else if (strncmp(p, "{exchange}", 10) == 0)
			v = a->exchange ? a->exchange : "", skip = 10;
		else if (strncmp(p, "{topic}", 7) == 0)
			v = a->topic ? a->topic : "", skip = 7;
		int rc = v ? put(&out, &len, &cap, v, strlen(v)) : put(&out, &len, &cap, p, 1);
		if (rc < 0) {
			free(out);
			return NULL;
		}
		p += v ? skip : 1;
	}
	return out;
}

char *
conn_address(const struct amqp *a, const char *worker, int receive)
{
	if (receive && a->receive_tmpl != NULL)
		return expand(a, a->receive_tmpl, worker);
	return expand(a, strcmp(worker, "all") == 0 ? a->all_tmpl : a->worker_tmpl, worker);
}

/* ---- publishing ---- */

static void
out_free(struct amqp *a, struct out *o)
{
	a->queued -= o->len;
	free(o->bytes);
	free(o);
}

static const char *
cond_text(pn_condition_t *c, char *buf, size_t len, const char *none)
{
	if (c == NULL || !pn_condition_is_set(c)) {
		snprintf(buf, len, "%s", none);
		return buf;
	}
	const char *name = pn_condition_get_name(c), *desc = pn_condition_get_description(c);
	if (name != NULL && strcmp(name, "mcpd:error") == 0)     /* ours: the text says it all */
		name = NULL;
	snprintf(buf, len, "%s%s%s", name ? name : "", name && desc && *desc ? ": " : "", desc ? desc : "");
	return buf;
}

static struct sender *
sender_of(struct amqp *a, const char *address)
{
	for (struct sender *s = a->senders; s != NULL; s = s->next)
		if (strcmp(s->address, address) == 0)
			return s;
	struct sender *s = calloc(1, sizeof(*s));
	if (s == NULL || (s->address = strdup(address)) == NULL) {
		free(s);
		return NULL;
	}
	s->tail = &s->q;
	s->next = a->senders;
	a->senders = s;
	return s;
}

static void
sender_fail_queue(struct amqp *a, struct sender *s, const char *why)
{
	while (s->q != NULL) {
		struct out *o = s->q;
		s->q = o->next;
		if (o->op != NULL)
			op_done(o->op, MCPD_ERROR, why);
		out_free(a, o);
	}
	s->tail = &s->q;
}

static void
sender_open(struct amqp *a, struct sender *s)
{
	char name[96];
	snprintf(name, sizeof(name), "mcpd-%s-%llu", a->me, (unsigned long long)++a->link_seq);
	pn_link_t *l = pn_sender(a->session, name);
	pn_terminus_set_address(pn_link_target(l), s->address);
	pn_link_set_snd_settle_mode(l, PN_SND_UNSETTLED);
	pn_link_set_context(l, s);
	pn_link_open(l);
	s->link = l;
	s->open = 0;
	s->max_message = 0;
}

/* Sends what credit allows. */
static void
sender_flush(struct amqp *a, struct sender *s)
{
	pn_link_t *l = s->link;
	while (l != NULL && s->open && s->q != NULL && pn_link_credit(l) > 0) {
		struct out *o = s->q;
		s->q = o->next;
		if (s->q == NULL)
			s->tail = &s->q;
		if (s->max_message > 0 && o->len > s->max_message) {
			char why[400];
			snprintf(why, sizeof(why), "amqp: a message of %zu bytes is over the broker's maximum of %llu "
			    "bytes (%s): not sent", o->len, (unsigned long long)s->max_message, s->address);
			a->host->log(MCPD_LOG_ERROR, "%s", why);
			if (o->op != NULL)
				op_done(o->op, MCPD_ERROR, why);
			out_free(a, o);
			continue;
		}
		char tag[24];
		int tl = snprintf(tag, sizeof(tag), "%llx", (unsigned long long)++a->tag_seq);
		pn_delivery_t *d = pn_delivery(l, pn_dtag(tag, (size_t)tl));
		pn_link_send(l, o->bytes, o->len);
		pn_delivery_set_context(d, o->op);
		pn_link_advance(l);
		out_free(a, o);
	}
}

void
conn_send(struct amqp *a, const char *address, char *bytes, size_t len, struct op *op)
{
	const char *err = NULL;
	char why[400];
	struct sender *s = NULL;
	struct out *o = NULL;
	if (a->state != ST_UP) {
		err = a->why[0] ? a->why : "amqp: not connected yet";
	} else if (len > AMQP_MAX_MESSAGE) {
		snprintf(why, sizeof(why), "amqp: a message of %zu bytes is over the %u MiB a message may have",
		    len, AMQP_MAX_MESSAGE >> 20);
		err = why;
	} else if (a->queued + len > AMQP_MAX_QUEUED) {
		err = "amqp: too much is waiting for the broker's credit";
	} else if ((s = sender_of(a, address)) == NULL || (o = calloc(1, sizeof(*o))) == NULL) {
		err = "amqp: out of memory";
	} else if (s->link == NULL && s->retry_at > mono_ms()) {
		err = s->why;
	}
	if (err != NULL) {
		free(o);
		free(bytes);
		if (op != NULL)
			op_fail(op, err);
		return;
	}
	if (op != NULL)
		op_hold(op);
	o->op = op;
	o->bytes = bytes;
	o->len = len;
	a->queued += len;
	*s->tail = o;
	s->tail = &o->next;
	if (s->link == NULL)
		sender_open(a, s);
	sender_flush(a, s);
	pump(a);
}

/* The broker settled (or said what it did with) a message we sent. */
static void
sent_update(struct amqp *a, pn_delivery_t *d)
{
	if (!pn_delivery_updated(d) && !pn_delivery_settled(d))
		return;
	uint64_t st = pn_delivery_remote_state(d);
	if (st == 0 && !pn_delivery_settled(d))
		return;
	struct op *op = pn_delivery_get_context(d);
	pn_delivery_set_context(d, NULL);
	if (op != NULL) {
		char buf[400], cond[300];
		if (st == PN_ACCEPTED || (st == 0 && pn_delivery_settled(d))) {
			op_done(op, MCPD_OK, NULL);
		} else {
			pn_link_t *l = pn_delivery_link(d);
			struct sender *s = pn_link_get_context(l);
			snprintf(buf, sizeof(buf), "amqp: the broker %s the message to %s%s%s",
			    st == PN_REJECTED ? "rejected" : st == PN_RELEASED ? "released" : "did not take",
			    s ? s->address : "?", st == PN_REJECTED ? ": " : "",
			    st == PN_REJECTED ? cond_text(pn_disposition_condition(pn_delivery_remote(d)), cond,
			    sizeof(cond), "no reason given") : "");
			a->host->log(MCPD_LOG_ERROR, "%s", buf);
			op_done(op, MCPD_ERROR, buf);
		}
	}
	pn_delivery_settle(d);
}

/* Fails the deliveries of l that the broker has not settled yet. */
static void
fail_unsettled(pn_link_t *l, const char *why)
{
	for (pn_delivery_t *d = pn_unsettled_head(l); d != NULL; d = pn_unsettled_next(d)) {
		struct op *op = pn_delivery_get_context(d);
		pn_delivery_set_context(d, NULL);
		if (op != NULL)
			op_done(op, MCPD_ERROR, why);
	}
}

/* ---- receiving ---- */

static void
receive(struct amqp *a, pn_link_t *l, pn_delivery_t *d)
{
	if (!pn_delivery_readable(d) || pn_delivery_partial(d)) {
		if (pn_delivery_pending(d) > AMQP_MAX_MESSAGE) {
			pn_condition_format(pn_link_condition(l), "amqp:link:message-size-exceeded",
			    "over %u bytes", AMQP_MAX_MESSAGE);
			pn_link_close(l);
		}
		return;
	}
	size_t n = pn_delivery_pending(d);
	char *buf = malloc(n ? n : 1);
	ssize_t got = buf ? pn_link_recv(l, buf, n) : -1;
	pn_link_advance(l);
	pn_delivery_update(d, PN_ACCEPTED);
	pn_delivery_settle(d);
	if (pn_link_credit(l) < AMQP_CREDIT / 2)
		pn_link_flow(l, AMQP_CREDIT - pn_link_credit(l));
	if (got >= 0)
		amqp_received(a, buf, (size_t)got);
	free(buf);
}

static pn_link_t *
receiver_open(struct amqp *a, const char *address)
{
	char name[96];
	snprintf(name, sizeof(name), "mcpd-%s-%llu", a->me, (unsigned long long)++a->link_seq);
	pn_link_t *l = pn_receiver(a->session, name);
	pn_terminus_set_address(pn_link_source(l), address);
	pn_link_set_rcv_settle_mode(l, PN_RCV_FIRST);
	pn_link_set_max_message_size(l, AMQP_MAX_MESSAGE);
	pn_link_open(l);
	pn_link_flow(l, AMQP_CREDIT);
	return l;
}

static void
links_start(struct amqp *a)
{
	char *w = conn_address(a, a->me, 1), *all = a->receive_tmpl ? NULL : conn_address(a, "all", 1);
	if (w == NULL || (a->receive_tmpl == NULL && all == NULL)) {
		conn_fail(a, "mcpd:error", "out of memory");
	} else {
		a->rx_worker = receiver_open(a, w);
		if (all != NULL)
			a->rx_all = receiver_open(a, all);
	}
	free(w);
	free(all);
}

static int
receivers_open(const struct amqp *a)
{
	pn_link_t *ls[] = { a->rx_worker, a->rx_all };
	for (size_t i = 0; i < 2; i++)
		if (ls[i] != NULL && !(pn_link_state(ls[i]) & PN_REMOTE_ACTIVE))
			return 0;
	return a->rx_worker != NULL;
}

/* ---- Service Bus: claims-based security ($cbs put-token) ---- */

char *
sb_read_token(struct amqp *a, char *why, size_t len)
{
	FILE *f = fopen(a->token_file, "r");
	if (f == NULL) {
		snprintf(why, len, "cannot read the token file %s: %s", a->token_file, strerror(errno));
		return NULL;
	}
	char *buf = calloc(1, 65536);
	size_t n = buf ? fread(buf, 1, 65535, f) : 0;
	fclose(f);
	if (buf != NULL) {
		buf[n] = '\0';
		buf[strcspn(buf, "\r\n")] = '\0';
	}
	if (buf == NULL || buf[0] == '\0') {
		snprintf(why, len, "the token file %s is empty", a->token_file);
		free(buf);
		return NULL;
	}
	return buf;
}

/* Puts token (of type jwt, else a SAS token) on $cbs for the topic,
 * valid until expiry (Unix seconds). */
static void
cbs_put(struct amqp *a, const char *token, int jwt, uint64_t expiry)
{
	char audience[600];
	snprintf(audience, sizeof(audience), "sb://%s/%s", a->host_name, a->topic);
	pn_message_t *m = a->msg;
	pn_message_clear(m);
	pn_message_set_id(m, (pn_msgid_t){ .type = PN_ULONG, .u.as_ulong = ++a->cbs_next_id });
	char reply[64];
	snprintf(reply, sizeof(reply), "cbs-%s", a->me);
	pn_message_set_reply_to(m, reply);
	pn_data_t *p = pn_message_properties(m);
	pn_data_put_map(p);
	pn_data_enter(p);
	pn_data_put_string(p, pn_bytes(9, "operation"));
	pn_data_put_string(p, pn_bytes(9, "put-token"));
	pn_data_put_string(p, pn_bytes(4, "type"));
	const char *type = jwt ? "jwt" : "servicebus.windows.net:sastoken";
	pn_data_put_string(p, pn_bytes(strlen(type), type));
	pn_data_put_string(p, pn_bytes(4, "name"));
	pn_data_put_string(p, pn_bytes(strlen(audience), audience));
	pn_data_put_string(p, pn_bytes(10, "expiration"));
	pn_data_put_timestamp(p, (pn_timestamp_t)(expiry * 1000));
	pn_data_exit(p);
	pn_data_t *body = pn_message_body(m);
	pn_data_put_string(body, pn_bytes(strlen(token), token));
	pn_rwbytes_t buf = { 0, NULL };
	ssize_t n = pn_message_encode2(m, &buf);
	pn_data_clear(body);        /* the token is not kept in the reused message */
	if (n < 0) {
		free(buf.start);
		conn_fail(a, "mcpd:error", "cannot encode the token");
		return;
	}
	char tag[24];
	int tl = snprintf(tag, sizeof(tag), "cbs%llx", (unsigned long long)++a->tag_seq);
	pn_delivery_t *d = pn_delivery(a->cbs_tx, pn_dtag(tag, (size_t)tl));
	pn_link_send(a->cbs_tx, buf.start, (size_t)n);
	pn_link_advance(a->cbs_tx);
	pn_delivery_settle(d);      /* the answer comes on $cbs, not as a disposition */
	OPENSSL_cleanse(buf.start, (size_t)n);
	free(buf.start);
}

static void
renew_in(struct amqp *a, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	if (a->token_timer != NULL)
		evtimer_add(a->token_timer, &tv);
}

/* Entra ID's token for $cbs, at once or from the loop later. */
static void
cbs_entra_token(void *arg, const char *token, const char *why)
{
	struct amqp *a = arg;
	int nested = a->cbs_nested;
	a->cbs_asking = 0;
	/* The connection it was asked for may be gone: the next one asks. */
	if (!a->have_driver || a->cbs_tx == NULL || pn_link_credit(a->cbs_tx) <= 0)
		return;
	if (token == NULL) {
		conn_fail(a, "mcpd:error", "no Entra ID token for Service Bus: %s", why);
	} else {
		uint64_t exp = 0, renew = 0;
		if (azure_token_times(a->cred, &exp, &renew) < 0)
			exp = real_ms() + 60000;
		if (a->cbs_next_id != 0 && exp == a->cbs_expires) {
			/* The one put already: its successor is being fetched. */
			renew_in(a, 500);
			return;
		}
		a->cbs_expires = exp;
		cbs_put(a, token, 1, exp / 1000);
	}
	if (!nested)
		pump(a);
}

static void
put_token(struct amqp *a)
{
	char why[300], audience[600];
	if (a->cred != NULL) {
		if (a->cbs_asking)
			return;
		a->cbs_asking = a->cbs_nested = 1;
		azure_token_get(a->cred, cbs_entra_token, a);
		a->cbs_nested = 0;
		return;
	}
	snprintf(audience, sizeof(audience), "sb://%s/%s", a->host_name, a->topic);
	uint64_t expiry = real_ms() / 1000 + a->token_ttl_ms / 1000;
	char *token = a->sas_key ? sas_token(audience, a->sas_key_name, a->sas_key, expiry) :
	    sb_read_token(a, why, sizeof(why));
	if (token == NULL) {
		conn_fail(a, "amqp:unauthorized-access", "%s",
		    a->sas_key ? "out of memory" : why);
		return;
	}
	cbs_put(a, token, strncmp(token, "SharedAccessSignature ", 22) != 0, expiry);
	OPENSSL_cleanse(token, strlen(token));
	free(token);
}

static void
token_renew(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct amqp *a = arg;
	if (a->have_driver && a->cbs_tx != NULL && pn_link_credit(a->cbs_tx) > 0) {
		put_token(a);
		pump(a);
	}
}

static void
cbs_start(struct amqp *a)
{
	char name[96], reply[64];
	snprintf(reply, sizeof(reply), "cbs-%s", a->me);
	snprintf(name, sizeof(name), "mcpd-cbs-tx-%s", a->me);
	a->cbs_tx = pn_sender(a->session, name);
	pn_terminus_set_address(pn_link_target(a->cbs_tx), "$cbs");
	pn_link_open(a->cbs_tx);
	snprintf(name, sizeof(name), "mcpd-cbs-rx-%s", a->me);
	a->cbs_rx = pn_receiver(a->session, name);
	pn_terminus_set_address(pn_link_source(a->cbs_rx), "$cbs");
	pn_terminus_set_address(pn_link_target(a->cbs_rx), reply);
	pn_link_open(a->cbs_rx);
	pn_link_flow(a->cbs_rx, 4);
}

/* The answer to a put-token: status-code 200 or 202, else refused. */
static void
cbs_answer(struct amqp *a, pn_link_t *l, pn_delivery_t *d)
{
	if (!pn_delivery_readable(d) || pn_delivery_partial(d))
		return;
	char buf[8192];
	ssize_t n = pn_link_recv(l, buf, sizeof(buf));
	pn_link_advance(l);
	pn_delivery_update(d, PN_ACCEPTED);
	pn_delivery_settle(d);
	pn_link_flow(l, 1);
	pn_message_t *m = a->msg;
	pn_message_clear(m);
	int64_t code = -1;
	char desc[256] = "";
	if (n > 0 && pn_message_decode(m, buf, (size_t)n) == 0) {
		pn_data_t *p = pn_message_properties(m);
		pn_data_rewind(p);
		if (pn_data_next(p) && pn_data_type(p) == PN_MAP) {
			pn_data_enter(p);
			while (pn_data_next(p)) {
				pn_bytes_t k = pn_data_type(p) == PN_STRING ? pn_data_get_string(p) : pn_bytes(0, "");
				if (!pn_data_next(p))
					break;
				if (k.size == 11 && memcmp(k.start, "status-code", 11) == 0)
					code = pn_data_type(p) == PN_INT ? pn_data_get_int(p) :
					    pn_data_type(p) == PN_LONG ? pn_data_get_long(p) : -1;
				else if (k.size == 18 && memcmp(k.start, "status-description", 18) == 0 &&
				    pn_data_type(p) == PN_STRING) {
					pn_bytes_t v = pn_data_get_string(p);
					snprintf(desc, sizeof(desc), "%.*s", (int)v.size, v.start);
				}
			}
		}
	}
	if (code != 200 && code != 202) {
		if (a->cred != NULL && code == 401)
			azure_token_invalidate(a->cred);
		conn_fail(a, "amqp:unauthorized-access",
		    "Service Bus refused the token for %s (status %lld%s%s)", a->topic, (long long)code,
		    desc[0] ? ": " : "", desc);
		return;
	}
	/* Renewed before it ends: a SAS token at three quarters of its life,
	 * Entra ID's when tokcache would renew it. */
	uint64_t ms = a->token_ttl_ms * 3 / 4, exp, renew, now = real_ms();
	if (a->cred != NULL)
		ms = azure_token_times(a->cred, &exp, &renew) == 0 && renew > now ? renew - now : 500;
	renew_in(a, ms);
	if (!a->cbs_ok) {
		a->cbs_ok = 1;
		links_start(a);
	}
}

/* ---- the connection's events ---- */

static void
set_up(struct amqp *a)
{
	if (a->state == ST_UP || !receivers_open(a))
		return;
	a->state = ST_UP;
	a->backoff_ms = 0;
	if (a->connect_timer != NULL)
		evtimer_del(a->connect_timer);
	a->host->log(MCPD_LOG_NOTICE, "amqp: connected%s to %s:%d as %s", a->ever_up ? " again" : "",
	    a->host_name, a->port, a->me);
	a->ever_up = 1;
	a->why[0] = '\0';
	amqp_connected(a);
}

static void
link_closed(struct amqp *a, pn_link_t *l)
{
	char cond[320];
	cond_text(pn_link_remote_condition(l), cond, sizeof(cond), "closed without a reason");
	if (l == a->rx_worker || l == a->rx_all || l == a->cbs_tx || l == a->cbs_rx) {
		/* Without its receivers the worker cannot hear anything: start over. */
		pn_terminus_t *t = pn_link_is_sender(l) ? pn_link_target(l) : pn_link_source(l);
		conn_fail(a, "mcpd:error", "the broker closed the link from %s: %s",
		    pn_terminus_get_address(t) ? pn_terminus_get_address(t) : "?", cond);
		return;
	}
	struct sender *s = pn_link_get_context(l);
	if (s == NULL)
		return;
	snprintf(s->why, sizeof(s->why), "amqp: the broker closed the link to %.100s: %.200s", s->address, cond);
	a->host->log(MCPD_LOG_ERROR, "%s", s->why);
	fail_unsettled(l, s->why);
	sender_fail_queue(a, s, s->why);
	pn_link_set_context(l, NULL);
	pn_link_close(l);
	s->link = NULL;
	s->open = 0;
	s->retry_at = mono_ms() + 1000;     /* then a new message tries a new link */
}

static void
handle(struct amqp *a, pn_event_t *e)
{
	pn_link_t *l = pn_event_link(e);
	char cond[400];
	switch (pn_event_type(e)) {
	case PN_CONNECTION_REMOTE_OPEN:
		if (a->flavor == FL_SERVICEBUS)
			cbs_start(a);
		else
			links_start(a);
		break;
	case PN_LINK_REMOTE_OPEN:
		if (l == a->cbs_tx) {
			if (pn_link_credit(l) > 0 && a->cbs_next_id == 0)
				put_token(a);
		} else if (pn_link_is_sender(l) && pn_link_get_context(l) != NULL) {
			struct sender *s = pn_link_get_context(l);
			s->open = 1;
			s->max_message = pn_link_remote_max_message_size(l);
			sender_flush(a, s);
		} else {
			set_up(a);
		}
		break;
	case PN_LINK_FLOW:
		if (l == a->cbs_tx) {
			if (pn_link_credit(l) > 0 && a->cbs_next_id == 0)
				put_token(a);
		} else if (pn_link_is_sender(l) && pn_link_get_context(l) != NULL) {
			sender_flush(a, pn_link_get_context(l));
		}
		break;
	case PN_DELIVERY: {
		pn_delivery_t *d = pn_event_delivery(e);
		if (l == a->cbs_rx)
			cbs_answer(a, l, d);
		else if (pn_link_is_sender(l))
			sent_update(a, d);
		else
			receive(a, l, d);
		break;
	}
	case PN_LINK_REMOTE_CLOSE:
	case PN_LINK_REMOTE_DETACH:
		link_closed(a, l);
		break;
	case PN_CONNECTION_REMOTE_CLOSE:
		cond_text(pn_connection_remote_condition(pn_event_connection(e)), cond, sizeof(cond),
		    "without a reason");
		conn_log_why(a, MCPD_LOG_WARN, "the broker closed the connection: %s", cond);
		pn_connection_close(pn_event_connection(e));
		break;
	case PN_TRANSPORT_ERROR:
		cond_text(pn_transport_condition(pn_event_transport(e)), cond, sizeof(cond), "transport error");
		if (strstr(cond, "unauthorized") != NULL || strstr(cond, "Authentication failed") != NULL)
			conn_log_why(a, MCPD_LOG_ERROR, "%s:%d refused the credentials: %s", a->host_name, a->port,
			    cond);
		else
			conn_log_why(a, MCPD_LOG_WARN, "%s", cond);
		break;
	case PN_TRANSPORT_CLOSED:
		a->dead = 1;
		break;
	default:
		break;
	}
}

/* ---- the socket ---- */

static void
teardown(struct amqp *a)
{
	const char *why = a->why[0] ? a->why : "the connection was lost";
	char lost[sizeof(a->why) + 8];
	snprintf(lost, sizeof(lost), "amqp: %s", why);
	if (a->have_driver) {
		for (struct sender *s = a->senders; s != NULL; s = s->next) {
			if (s->link != NULL) {
				fail_unsettled(s->link, lost);
				pn_link_set_context(s->link, NULL);
			}
			sender_fail_queue(a, s, lost);
			s->link = NULL;
			s->open = 0;
			s->retry_at = 0;
		}
		pn_connection_driver_destroy(&a->driver);
		a->have_driver = 0;
	}
	if (a->bev != NULL)
		bufferevent_free(a->bev);
	a->bev = NULL;
	a->session = a->rx_worker = a->rx_all = a->cbs_tx = a->cbs_rx = NULL;
	a->cbs_ok = 0;
	a->cbs_next_id = 0;
	if (a->state == ST_UP)
		a->host->log(MCPD_LOG_WARN, "amqp: lost the connection to %s:%d: %s", a->host_name, a->port, why);
	a->state = ST_DOWN;
	a->dead = 0;
	evtimer_del(a->tick_timer);
	evtimer_del(a->connect_timer);
	if (a->token_timer != NULL)
		evtimer_del(a->token_timer);
	a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : 100;
	if (a->backoff_ms > AMQP_MAX_BACKOFF_MS)
		a->backoff_ms = AMQP_MAX_BACKOFF_MS;
	unsigned ms = a->backoff_ms + (unsigned)(rand() % (int)(a->backoff_ms / 10 + 1));
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(a->retry_timer, &tv);
}

static void
schedule_tick(struct amqp *a)
{
	uint64_t now = mono_ms();
	int64_t next = pn_transport_tick(a->driver.transport, (int64_t)now);
	evtimer_del(a->tick_timer);
	if (next > 0) {
		uint64_t ms = (uint64_t)next > now ? (uint64_t)next - now : 0;
		struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
		evtimer_add(a->tick_timer, &tv);
	}
}

/* Feeds what was read to the driver, handles its events, writes what it
 * has to send; until nothing moves. */
static void
pump(struct amqp *a)
{
	if (!a->have_driver)
		return;
	struct evbuffer *in = a->bev ? bufferevent_get_input(a->bev) : NULL;
	struct evbuffer *out = a->bev ? bufferevent_get_output(a->bev) : NULL;
	int moved = 1;
	while (moved && !a->dead) {
		moved = 0;
		pn_event_t *e;
		while ((e = pn_connection_driver_next_event(&a->driver)) != NULL) {
			handle(a, e);
			moved = 1;
		}
		while (in != NULL && evbuffer_get_length(in) > 0) {
			pn_rwbytes_t rb = pn_connection_driver_read_buffer(&a->driver);
			if (rb.size == 0)
				break;
			int n = evbuffer_remove(in, rb.start, rb.size);
			if (n <= 0)
				break;
			pn_connection_driver_read_done(&a->driver, (size_t)n);
			moved = 1;
		}
		pn_bytes_t wb;
		while (out != NULL && (wb = pn_connection_driver_write_buffer(&a->driver)).size > 0) {
			evbuffer_add(out, wb.start, wb.size);
			pn_connection_driver_write_done(&a->driver, wb.size);
			moved = 1;
		}
		if (pn_connection_driver_finished(&a->driver))
			a->dead = 1;
	}
	if (a->dead) {
		teardown(a);
		return;
	}
	schedule_tick(a);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	pump(arg);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct amqp *a = arg;
	if (what & BEV_EVENT_CONNECTED) {
		/* Small frames go at once: Nagle's wait for the broker's ACK
		 * would add tens of milliseconds to each message. */
		int one = 1;
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		a->state = ST_OPENING;
		pump(a);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		int err = EVUTIL_SOCKET_ERROR();
		const char *how = (what & BEV_EVENT_ERROR) && err ? evutil_socket_error_to_string(err) : NULL;
		/* What the broker said before closing, if anything, is the reason. */
		if (a->state == ST_CONNECTING)
			conn_log_why(a, MCPD_LOG_WARN, "cannot connect to %s:%d: %s", a->host_name, a->port,
			    how ? how : "closed");
		else if (!a->said && how)
			conn_log_why(a, MCPD_LOG_WARN, "the connection to %s:%d failed: %s", a->host_name, a->port,
			    how);
		else if (!a->said)
			conn_log_why(a, MCPD_LOG_WARN, "the connection to %s:%d was closed by the broker",
			    a->host_name, a->port);
		if (a->have_driver) {
			pn_connection_driver_read_close(&a->driver);
			pn_connection_driver_write_close(&a->driver);
		}
		a->dead = 1;
		teardown(a);
	}
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pump(arg);
}

static void
connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct amqp *a = arg;
	if (a->state == ST_UP)
		return;
	conn_log_why(a, MCPD_LOG_WARN, "no answer from %s:%d within %llu ms", a->host_name, a->port,
	    (unsigned long long)a->connect_timeout_ms);
	resolve_cancel(&a->lookup);
	teardown(a);
}

static int
driver_new(struct amqp *a)
{
	if (pn_connection_driver_init(&a->driver, NULL, NULL) != 0)
		return -1;
	a->have_driver = 1;
	pn_connection_t *c = a->driver.connection;
	pn_transport_t *t = a->driver.transport;
	char container[80], host[300];
	snprintf(container, sizeof(container), "mcpd-%s", a->me);
	pn_connection_set_container(c, container);
	if (a->vhost != NULL)
		snprintf(host, sizeof(host), "vhost:%s", a->vhost);
	else
		snprintf(host, sizeof(host), "%s", a->host_name);
	pn_connection_set_hostname(c, host);
	pn_transport_set_idle_timeout(t, (pn_millis_t)a->idle_timeout_ms);
	if (a->tls) {
		pn_ssl_domain_t *dom = pn_ssl_domain(PN_SSL_MODE_CLIENT);
		if (dom == NULL)
			return -1;
		int rc = 0;
		if (a->ca_file != NULL)
			rc = pn_ssl_domain_set_trusted_ca_db(dom, a->ca_file);
		if (rc == 0)
			rc = pn_ssl_domain_set_peer_authentication(dom, PN_SSL_VERIFY_PEER_NAME, NULL);
		if (rc == 0 && a->cert_file != NULL)
			rc = pn_ssl_domain_set_credentials(dom, a->cert_file, a->key_file, NULL);
		pn_ssl_t *ssl = rc == 0 ? pn_ssl(t) : NULL;
		if (ssl == NULL || pn_ssl_init(ssl, dom, NULL) != 0 || pn_ssl_set_peer_hostname(ssl, a->host_name) != 0)
			rc = -1;
		pn_ssl_domain_free(dom);
		if (rc != 0) {
			conn_log_why(a, MCPD_LOG_ERROR, "cannot set TLS up (tls_ca_file, tls_cert_file)");
			return -1;
		}
	}
	pn_sasl_t *sasl = pn_sasl(t);
	switch (a->mech) {
	case SASL_PLAIN:
		pn_sasl_allowed_mechs(sasl, "PLAIN");
		/* PLAIN without TLS is the operator's choice (a broker on loopback). */
		pn_sasl_set_allow_insecure_mechs(sasl, true);
		pn_connection_set_user(c, a->user);
		pn_connection_set_password(c, a->password);
		break;
	case SASL_EXTERNAL:
		pn_sasl_allowed_mechs(sasl, "EXTERNAL");
		break;
	default:
		pn_sasl_allowed_mechs(sasl, "ANONYMOUS");
		break;
	}
	a->session = pn_session(c);
	pn_connection_open(c);
	pn_session_open(a->session);
	return 0;
}

static void
resolved(void *arg, char addrs[][RESOLVE_ADDR_LEN], size_t naddrs, const char *why)
{
	struct amqp *a = arg;
	if (naddrs == 0) {
		conn_log_why(a, MCPD_LOG_WARN, "cannot resolve %s: %s", a->host_name, why ? why : "no address");
		teardown(a);
		return;
	}
	struct sockaddr_storage ss;
	int sslen = (int)sizeof(ss);
	char spec[RESOLVE_ADDR_LEN + 16];
	snprintf(spec, sizeof(spec), strchr(addrs[0], ':') ? "[%s]:%d" : "%s:%d", addrs[0], a->port);
	a->bev = bufferevent_socket_new(a->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (a->bev == NULL || evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) < 0 ||
	    driver_new(a) < 0) {
		if (!a->why[0])
			conn_log_why(a, MCPD_LOG_ERROR, "cannot start a connection to %s", spec);
		teardown(a);
		return;
	}
	bufferevent_setcb(a->bev, read_cb, NULL, event_cb, a);
	bufferevent_enable(a->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(a->bev, (struct sockaddr *)&ss, sslen) < 0) {
		conn_log_why(a, MCPD_LOG_WARN, "cannot connect to %s:%d: %s", a->host_name, a->port, strerror(errno));
		teardown(a);
	}
}

static void
subscribed(struct amqp *a, const char *err)
{
	if (err != NULL) {
		conn_log_why(a, MCPD_LOG_ERROR, "%s", err);
		teardown(a);
		return;
	}
	connect_now(a);
}

static void
start(struct amqp *a)
{
	a->state = ST_CONNECTING;
	a->said = 0;
	a->gen++;
	struct timeval tv = { (time_t)(a->connect_timeout_ms / 1000), (suseconds_t)(a->connect_timeout_ms % 1000) * 1000 };
	evtimer_add(a->connect_timer, &tv);
	/* Service Bus: the subscription first (again at each connection: it
	 * deletes itself when idle, as while the broker was away). */
	if (a->flavor == FL_SERVICEBUS)
		sb_subscription(a, subscribed);
	else
		connect_now(a);
}

static void
connect_now(struct amqp *a)
{
	if (resolve_is_name(a->host_name)) {
		resolve_start(a->dns, a->host_name, resolved, a, &a->lookup);
	} else {
		char one[1][RESOLVE_ADDR_LEN];
		snprintf(one[0], sizeof(one[0]), "%s", a->host_name);
		resolved(a, one, 1, NULL);
	}
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start(arg);
}

int
conn_attach(struct amqp *a, char *err, size_t errlen)
{
	a->base = a->host->event_base();
	if (resolve_is_name(a->host_name) && (a->dns = resolver_new(a->base, err, errlen)) == NULL)
		return -1;
	a->retry_timer = evtimer_new(a->base, retry_cb, a);
	a->tick_timer = evtimer_new(a->base, tick_cb, a);
	a->connect_timer = evtimer_new(a->base, connect_timeout_cb, a);
	if (a->flavor == FL_SERVICEBUS)
		a->token_timer = evtimer_new(a->base, token_renew, a);
	if (a->retry_timer == NULL || a->tick_timer == NULL || a->connect_timer == NULL ||
	    (a->flavor == FL_SERVICEBUS && a->token_timer == NULL)) {
		snprintf(err, errlen, "amqp: out of memory");
		return -1;
	}
	/* Service Bus without a key or token file: Entra ID tokens, fetched
	 * on this loop for $cbs and the management API. */
	if (a->flavor == FL_SERVICEBUS && a->sas_key == NULL && a->token_file == NULL) {
		char why[600];
		if ((a->fetcher = fetcher_new(a->base, "mcpd-amqp", why, sizeof(why))) == NULL ||
		    (a->cred = azure_cred_new(a->fetcher, a->token_scope, a->client_id, a->host, why,
		    sizeof(why))) == NULL) {
			snprintf(err, errlen, "amqp: %s", why);
			return -1;
		}
		a->host->log(MCPD_LOG_INFO, "amqp: Entra ID tokens for Service Bus from %s", azure_cred_source(a->cred));
	}
	/* Not connected yet is fine: mcpd starts, says it is not ready, and
	 * serves once the broker answers. */
	start(a);
	return 0;
}

void
conn_detach(struct amqp *a)
{
	resolve_cancel(&a->lookup);
	if (a->have_driver) {
		/* A clean close, written if the socket takes it now. */
		pn_connection_close(a->driver.connection);
		a->state = ST_DOWN;
		pump(a);
		if (a->bev != NULL) {
			struct evbuffer *out = bufferevent_get_output(a->bev);
			evbuffer_write(out, bufferevent_getfd(a->bev));
		}
	}
	if (a->have_driver || a->bev != NULL) {
		snprintf(a->why, sizeof(a->why), "the worker is stopping");
		a->state = ST_DOWN;
		teardown(a);
	}
	struct event **evs[] = { &a->retry_timer, &a->tick_timer, &a->connect_timer, &a->token_timer };
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		if (*evs[i] != NULL)
			event_free(*evs[i]);
		*evs[i] = NULL;
	}
	while (a->senders != NULL) {
		struct sender *s = a->senders;
		a->senders = s->next;
		sender_fail_queue(a, s, "amqp: the worker is stopping");
		free(s->address);
		free(s);
	}
	if (a->dns != NULL)
		resolver_free(a->dns);
	a->dns = NULL;
	if (a->fetcher != NULL)
		fetcher_free(a->fetcher);  /* drops a PUT or token fetch in flight, callback and all */
	a->fetcher = NULL;
	azure_cred_free(a->cred);   /* its waiters hear nothing more */
	a->cred = NULL;
	a->cbs_asking = 0;
	sb_forget(a);
}

/* ---- publish operations ---- */

struct op *
op_new(mcpd_done_cb *cb, void *arg)
{
	struct op *op = calloc(1, sizeof(*op));
	if (op == NULL)
		return NULL;
	op->refs = 1;
	op->status = MCPD_OK;
	op->cb = cb;
	op->arg = arg;
	return op;
}

void
op_hold(struct op *op)
{
	op->refs++;
}

/* A part that could not start: the error is kept for the callback. */
void
op_fail(struct op *op, const char *err)
{
	if (op->status == MCPD_OK) {
		op->status = MCPD_ERROR;
		snprintf(op->err, sizeof(op->err), "%.399s", err ? err : "amqp: error");
	}
}

/* One part ended; the last one calls back, with the first error. */
void
op_done(struct op *op, int status, const char *err)
{
	if (status != MCPD_OK && op->status == MCPD_OK) {
		op->status = status;
		snprintf(op->err, sizeof(op->err), "%s", err ? err : "amqp: error");
	}
	if (--op->refs > 0)
		return;
	if (op->cb != NULL)
		op->cb(op->arg, op->status, op->status == MCPD_OK ? NULL : op->err);
	free(op);
}
