/* Compressed transport messages (transport: { compress_over: SIZE }): the
 * worker's transport operations wrapped so that a message published that
 * is longer than SIZE goes out deflated (zlib), and every message
 * received that says so is inflated before it reaches its subscriber,
 * whatever this worker's own setting: an instance with compression off
 * reads what one with it on sends. On the wire a compressed message is
 * "\0Z", its length inflated (4 bytes, big-endian) and the zlib stream;
 * no other message starts with a NUL byte (one that would is sent
 * compressed). Outside signing: what is signed is what goes on the wire. */
#ifndef MCPD_TRANSPORT_COMPRESS_H
#define MCPD_TRANSPORT_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

struct backends;

/* Largest message inflated; a longer one is dropped. */
#define TCOMP_MAX (64u << 20)

/* Replace b's transport operations by compressing ones (over: 0 sends
 * every message as it is, but still reads compressed ones). -1 when out
 * of memory. */
int transport_compress_backends(struct backends *b, uint64_t over);
/* After the backends are detached: free the subscriptions left. */
void transport_compress_forget(void);

/* The codec, for tests: a malloc'd wire form of msg (always compressed),
 * or NULL; and the message inside a wire form: 1 and *out malloc'd
 * (*out NULL: msg is not compressed, use it as it is), or -1 when it
 * says compressed but is not valid. */
void *tcomp_deflate(const void *msg, size_t len, size_t *outlen);
int tcomp_inflate(const void *msg, size_t len, void **out, size_t *outlen);

#endif
