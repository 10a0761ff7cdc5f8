/* Compressed transport messages (see transport_compress.h). */
#include "transport_compress.h"
#include "log.h"
#include "plugin.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define HEAD 6                          /* "\0Z" and the length inflated */
/* A failure to inflate is logged at most this often. */
#define LOG_EVERY_MS 10000

static struct mcpd_transport_ops zops;
static const struct mcpd_transport_ops *treal;
static uint64_t threshold;

/* A subscription: the plugin's, and whom to hand what it receives. */
struct zsub {
	mcpd_message_cb *cb;
	void *arg;
	void *real;
	struct zsub *prev, *next;
};
static struct zsub *zsubs;

void *
tcomp_deflate(const void *msg, size_t len, size_t *outlen)
{
	if (len > TCOMP_MAX)
		return NULL;
	uLong bound = compressBound((uLong)len);
	unsigned char *out = malloc(HEAD + bound);
	if (out == NULL)
		return NULL;
	out[0] = '\0';
	out[1] = 'Z';
	out[2] = (unsigned char)(len >> 24);
	out[3] = (unsigned char)(len >> 16);
	out[4] = (unsigned char)(len >> 8);
	out[5] = (unsigned char)len;
	/* Level 1: most of what gzip's default saves on JSON, at a
	 * fraction of the time (this runs on the worker's loop). */
	if (compress2(out + HEAD, &bound, msg, (uLong)len, 1) != Z_OK) {
		free(out);
		return NULL;
	}
	*outlen = HEAD + bound;
	return out;
}

int
tcomp_inflate(const void *msg, size_t len, void **out, size_t *outlen)
{
	const unsigned char *m = msg;
	*out = NULL;
	*outlen = 0;
	if (len == 0 || m[0] != '\0')
		return 1;
	if (len < HEAD || m[1] != 'Z')
		return -1;
	uLong n = (uLong)m[2] << 24 | (uLong)m[3] << 16 | (uLong)m[4] << 8 | m[5];
	if (n > TCOMP_MAX)
		return -1;
	unsigned char *buf = malloc(n + 1);     /* never 0 bytes */
	if (buf == NULL)
		return -1;
	uLong got = n;
	if (uncompress(buf, &got, m + HEAD, (uLong)(len - HEAD)) != Z_OK || got != n) {
		free(buf);
		return -1;
	}
	buf[n] = '\0';          /* as the plugins hand messages over */
	*out = buf;
	*outlen = n;
	return 1;
}

static void
heard(void *arg, const char *channel, const void *msg, size_t len)
{
	struct zsub *z = arg;
	void *plain;
	size_t n;
	if (tcomp_inflate(msg, len, &plain, &n) < 0) {
		static uint64_t last_ms, quiet;
		uint64_t now = monotonic_ms();
		if (last_ms == 0 || now - last_ms >= LOG_EVERY_MS) {
			log_warn("transport: dropped a message on channel \"%.80s\" that says it is compressed "
			    "but does not inflate (or over %u bytes) (and %llu more since the last such report)",
			    channel, TCOMP_MAX, (unsigned long long)quiet);
			last_ms = now;
			quiet = 0;
		} else {
			quiet++;
		}
		return;
	}
	/* z may be freed by its callback: not touched after. */
	if (plain == NULL) {
		z->cb(z->arg, channel, msg, len);
	} else {
		z->cb(z->arg, channel, plain, n);
		free(plain);
	}
}

static void
z_publish(void *inst, const char *channel, const void *msg, size_t len,
    const struct mcpd_publish_opts *opts, mcpd_done_cb *cb, void *arg)
{
	int lead_nul = len > 0 && ((const unsigned char *)msg)[0] == '\0';
	if ((threshold == 0 || len <= threshold) && !lead_nul) {
		treal->publish(inst, channel, msg, len, opts, cb, arg);
		return;
	}
	size_t n;
	void *z = tcomp_deflate(msg, len, &n);
	if (z == NULL) {
		log_error("transport: cannot compress a message for channel \"%.80s\"", channel);
		if (cb != NULL)
			cb(arg, MCPD_ERROR, "cannot compress the message");
		return;
	}
	treal->publish(inst, channel, z, n, opts, cb, arg);
	free(z);
}

static void *
z_subscribe(void *inst, const char *channel, mcpd_message_cb *cb, void *arg)
{
	struct zsub *z = calloc(1, sizeof(*z));
	if (z == NULL)
		return NULL;
	z->cb = cb;
	z->arg = arg;
	if ((z->real = treal->subscribe(inst, channel, heard, z)) == NULL) {
		free(z);
		return NULL;
	}
	z->next = zsubs;
	if (zsubs != NULL)
		zsubs->prev = z;
	zsubs = z;
	return z;
}

static void
z_unsubscribe(void *inst, void *subscription)
{
	struct zsub *z = subscription;
	if (z == NULL)
		return;
	if (z->prev != NULL)
		z->prev->next = z->next;
	else
		zsubs = z->next;
	if (z->next != NULL)
		z->next->prev = z->prev;
	treal->unsubscribe(inst, z->real);
	free(z);
}

int
transport_compress_backends(struct backends *b, uint64_t over)
{
	if (b->transport == NULL)
		return 0;
	if (treal == NULL) {
		treal = b->transport;
		zops = *treal;
		zops.publish = z_publish;
		zops.subscribe = z_subscribe;
		zops.unsubscribe = z_unsubscribe;
		threshold = over;
	}
	b->transport = &zops;
	return 0;
}

void
transport_compress_forget(void)
{
	while (zsubs != NULL) {
		struct zsub *z = zsubs;
		zsubs = z->next;
		free(z);
	}
}
