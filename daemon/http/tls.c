#include "tls.h"
#include "config.h"
#include "util.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>

static void
ssl_errors(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (e == 0) {
		snprintf(buf, len, "unknown error");
		return;
	}
	ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	static const unsigned char h11[] = "\x08http/1.1";
	if (SSL_select_next_proto((unsigned char **)out, outlen, h11, sizeof(h11) - 1,
	    in, inlen) == OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_NOACK;
}

/* The config frees the contexts with it, without knowing TLS. */
static void
free_ctx(void *ctx)
{
	SSL_CTX_free(ctx);
}

int
tls_load_config(struct config *c, struct errlist *errs)
{
	int rc = 0;
	for (size_t i = 0; i < c->nlisten; i++) {
		struct listen_conf *l = &c->listen[i];
		if (l->tls_cert == NULL)
			continue;
		char why[256];
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
		if (ctx == NULL) {
			ssl_errors(why, sizeof(why));
			errlist_add(errs, "%s:%d:%d: TLS: %s", c->path, l->line, l->col, why);
			rc = -1;
			continue;
		}
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
		SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
		if (SSL_CTX_use_certificate_chain_file(ctx, l->tls_cert) != 1) {
			ssl_errors(why, sizeof(why));
			errlist_add(errs, "%s:%d:%d: TLS certificate %s: %s", c->path, l->line, l->col,
			    l->tls_cert, why);
			SSL_CTX_free(ctx);
			rc = -1;
			continue;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, l->tls_key, SSL_FILETYPE_PEM) != 1) {
			ssl_errors(why, sizeof(why));
			errlist_add(errs, "%s:%d:%d: TLS key %s: %s", c->path, l->line, l->col,
			    l->tls_key, why);
			SSL_CTX_free(ctx);
			rc = -1;
			continue;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			errlist_add(errs, "%s:%d:%d: TLS key %s does not match certificate %s",
			    c->path, l->line, l->col, l->tls_key, l->tls_cert);
			SSL_CTX_free(ctx);
			rc = -1;
			continue;
		}
		l->ssl_ctx = ctx;
		l->ssl_ctx_free = free_ctx;
	}
	return rc;
}
