/* The HTML of the authorization endpoint: the sign-in and consent page
 * and error pages. Self-contained (no scripts, no external assets, one
 * stylesheet allowed by its hash), never framed, never cached. */
#include "oauth_internal.h"
#include "arena.h"
#include "form.h"
#include "http.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static const char STYLE[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f5f7;color:#1d2330;"
    "margin:0;padding:2rem 1rem}"
    "main{max-width:26rem;margin:0 auto;background:#fff;border:1px solid #d8dbe2;border-radius:8px;"
    "padding:1.5rem 1.75rem}"
    "h1{font-size:1.3rem;margin:0 0 1rem}"
    "p{line-height:1.45;margin:.6rem 0}"
    "code{background:#eef0f4;padding:0 .25rem;border-radius:3px;word-break:break-all}"
    "ul{margin:.4rem 0 .8rem;padding-left:1.3rem}"
    "label{display:block;margin:.8rem 0 .25rem;font-weight:600}"
    "input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;"
    "border:1px solid #b9bfcc;border-radius:4px;font-size:1rem}"
    ".error{background:#fdecec;border:1px solid #e5a3a3;color:#8a1f1f;padding:.5rem .75rem;border-radius:4px}"
    ".buttons{display:flex;gap:.75rem;margin-top:1.2rem}"
    "button{flex:1;padding:.6rem;font-size:1rem;border-radius:4px;border:1px solid #b9bfcc;background:#fff;"
    "cursor:pointer}"
    "button.allow{background:#1f5fbf;border-color:#1f5fbf;color:#fff}"
    ".small{font-size:.85rem;color:#5a6275}";

/* 'sha256-...' of STYLE, for the Content-Security-Policy. */
static const char *
style_hash(void)
{
	static char hash[64];
	if (hash[0] == '\0') {
		unsigned char h[32];
		unsigned int n = 32;
		char b64[48];
		EVP_Digest(STYLE, strlen(STYLE), h, &n, EVP_sha256(), NULL);
		EVP_EncodeBlock((unsigned char *)b64, h, 32);
		snprintf(hash, sizeof(hash), "'sha256-%s'", b64);
	}
	return hash;
}

void
page_headers(struct http_request *r)
{
	char csp[200];
	snprintf(csp, sizeof(csp), "default-src 'none'; style-src %s; frame-ancestors 'none'; base-uri 'none'",
	    style_hash());
	http_response_header(r, "Content-Security-Policy", csp);
	http_response_header(r, "X-Frame-Options", "DENY");
	http_response_header(r, "X-Content-Type-Options", "nosniff");
	http_response_header(r, "Referrer-Policy", "no-referrer");
	http_response_header(r, "Cache-Control", "no-store");
	http_response_header(r, "Pragma", "no-cache");
}

static const char *
head(struct arena *ar, const char *title)
{
	return arena_printf(ar, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
	    "<meta name=\"referrer\" content=\"no-referrer\">"
	    "<title>%s</title><style>%s</style></head><body><main>\n", html_escape(ar, title), STYLE);
}

const char *
page_error(struct arena *ar, const char *title, const char *message)
{
	return arena_printf(ar, "%s<h1>%s</h1>\n<p class=\"error\">%s</p>\n"
	    "<p class=\"small\">You may close this page.</p>\n</main></body></html>\n",
	    head(ar, title), html_escape(ar, title), html_escape(ar, message));
}

const char *
page_login(struct arena *ar, const struct page_login *p)
{
	const char *who = p->client_name != NULL && p->client_name[0] ?
	    arena_printf(ar, "<strong>%s</strong> (<code>%s</code>)", html_escape(ar, p->client_name),
	    html_escape(ar, p->client_id)) :
	    arena_printf(ar, "The application <code>%s</code>", html_escape(ar, p->client_id));
	const char *scopes = "";
	if (p->scope != NULL && p->scope[0]) {
		char *list = arena_strdup(ar, "<p>It asks for:</p><ul>");
		for (const char *s = p->scope; *s;) {
			size_t l = strcspn(s, " ");
			if (l > 0)
				list = arena_printf(ar, "%s<li><code>%s</code></li>", list,
				    html_escape(ar, arena_strndup(ar, s, l)));
			s += l;
			while (*s == ' ')
				s++;
		}
		scopes = arena_printf(ar, "%s</ul>\n", list);
	}
	const char *error = p->error ? arena_printf(ar, "<p class=\"error\">%s</p>\n", html_escape(ar, p->error)) : "";
	return arena_printf(ar, "%s<h1>%s</h1>\n"
	    "<p>%s wants to use this server on your behalf.</p>\n%s"
	    "<p class=\"small\">If you allow it, you will be sent back to <code>%s</code>.</p>\n%s"
	    "<form method=\"post\" action=\"/oauth/authorize\">\n"
	    "<input type=\"hidden\" name=\"request_id\" value=\"%s\">\n"
	    "<input type=\"hidden\" name=\"csrf\" value=\"%s\">\n"
	    "<label for=\"username\">User name</label>"
	    "<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required value=\"%s\">\n"
	    "<label for=\"password\">Password</label>"
	    "<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\n"
	    "<div class=\"buttons\"><button type=\"submit\" name=\"action\" value=\"deny\" formnovalidate>Deny</button>"
	    "<button type=\"submit\" name=\"action\" value=\"allow\" class=\"allow\">Sign in and allow</button></div>\n"
	    "</form>\n</main></body></html>\n",
	    head(ar, p->title), html_escape(ar, p->title), who, scopes, html_escape(ar, p->redirect_host), error,
	    html_escape(ar, p->request_id), html_escape(ar, p->csrf), html_escape(ar, p->user ? p->user : ""));
}
