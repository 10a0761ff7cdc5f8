/* Cosmos DB's Authorization header: see cosmos_sig.h. */
#include "cosmos_sig.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

void
cosmos_date(time_t t, char out[32])
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
	    "Oct", "Nov", "Dec" };
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 32, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int
cosmos_key_decode(const char *text, unsigned char *key, size_t *keylen)
{
	while (isspace((unsigned char)*text))
		text++;
	size_t n = strlen(text);
	while (n > 0 && isspace((unsigned char)text[n - 1]))
		n--;
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > COSMOS_KEY_MAX)
		return -1;
	/* '=' only as the padding at the end */
	size_t pad = n >= 2 && text[n - 2] == '=' ? 2 : text[n - 1] == '=' ? 1 : 0;
	for (size_t i = 0; i < n - pad; i++)
		if (!isalnum((unsigned char)text[i]) && text[i] != '+' && text[i] != '/')
			return -1;
	if (pad == 2 && text[n - 1] != '=')
		return -1;
	unsigned char buf[COSMOS_KEY_MAX + 3];
	int m = EVP_DecodeBlock(buf, (const unsigned char *)text, (int)n);
	if (m < 0)
		return -1;
	*keylen = (size_t)m - pad;
	memcpy(key, buf, *keylen);
	OPENSSL_cleanse(buf, sizeof(buf));
	return *keylen > 0 ? 0 : -1;
}

int
cosmos_uri_encode(const char *s, size_t n, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int keep = isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
		if (o + (keep ? 1 : 3) >= len)
			return -1;
		if (keep) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= len)
		return -1;
	out[o] = '\0';
	return (int)o;
}

/* "type=T&ver=1.0&sig=S", URL-encoded into out. */
static int
header(const char *type, const char *sig, char *out, size_t len)
{
	char plain[8192];
	int n = snprintf(plain, sizeof(plain), "type=%s&ver=1.0&sig=%s", type, sig);
	int rc = n > 0 && (size_t)n < sizeof(plain) ? cosmos_uri_encode(plain, (size_t)n, out, len) : -1;
	OPENSSL_cleanse(plain, sizeof(plain));
	return rc < 0 ? -1 : 0;
}

int
cosmos_auth_master(const unsigned char *key, size_t keylen, const char *verb, const char *rtype,
    const char *rlink, const char *date, char *out, size_t len)
{
	char text[2048];
	size_t n = 0;
	/* verb and type lowercased, the link as it is, the date lowercased */
	for (const char *p = verb; *p && n < sizeof(text) - 1; p++)
		text[n++] = (char)tolower((unsigned char)*p);
	const char *parts[] = { "\n", rtype, "\n", rlink, "\n", date, "\n", "\n" };
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		int lower = parts[i] == rtype || parts[i] == date;
		for (const char *p = parts[i]; *p; p++) {
			if (n >= sizeof(text) - 1)
				return -1;
			text[n++] = lower ? (char)tolower((unsigned char)*p) : *p;
		}
	}
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)text, n, mac, &maclen) == NULL)
		return -1;
	char sig[EVP_MAX_MD_SIZE * 2];
	EVP_EncodeBlock((unsigned char *)sig, mac, (int)maclen);
	OPENSSL_cleanse(mac, sizeof(mac));
	return header("master", sig, out, len);
}

int
cosmos_auth_aad(const char *token, char *out, size_t len)
{
	return header("aad", token, out, len);
}
