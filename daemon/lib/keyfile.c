#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
keyfile_load(const char *path, int secret, unsigned char *buf, size_t cap, size_t *len,
    char *err, size_t errlen)
{
	size_t n = 0;
	int rc = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		goto done;
	}
	if (secret && (st.st_mode & 0027) != 0) {
		snprintf(err, errlen, "%s is %s by others (mode %03o); chmod 600 (or 640) it", path,
		    (st.st_mode & 0007) ? "readable or writable" : "writable", (unsigned)(st.st_mode & 0777));
		goto done;
	}
	/* A read may return less than the file: read until the end. */
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
	    buf[n - 1] == '\t'))
		n--;
	*len = n;
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	return rc;
}

int
keyfile_read(const char *path, const char *label, unsigned char key[KEYFILE_LEN],
    char *err, size_t errlen)
{
	unsigned char buf[KEYFILE_MAX + 1];
	size_t n = 0;
	int rc = -1;
	if (keyfile_load(path, 1, buf, sizeof(buf), &n, err, errlen) < 0)
		goto done;
	if (n > KEYFILE_MAX) {
		snprintf(err, errlen, "%s holds more than %d bytes: not a key file", path, KEYFILE_MAX);
		goto done;
	}
	if (n < KEYFILE_MIN) {
		snprintf(err, errlen, "%s holds %zu bytes; a key needs at least %d (e.g. openssl rand -hex 32 > %s)",
		    path, n, KEYFILE_MIN, path);
		goto done;
	}
	if (keyfile_derive(buf, n, label, key) < 0) {
		snprintf(err, errlen, "%s: cannot hash the key", path);
		goto done;
	}
	rc = 0;
done:
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

int
keyfile_derive(const unsigned char *secret, size_t n, const char *label, unsigned char key[KEYFILE_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = KEYFILE_LEN;
	int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(md, label, strlen(label) + 1) == 1 &&
	    EVP_DigestUpdate(md, secret, n) == 1 && EVP_DigestFinal_ex(md, key, &len) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

void
keyfile_id(const unsigned char key[KEYFILE_LEN], char id[9])
{
	static const char label[] = "mcpd key id";
	unsigned char in[sizeof(label) + KEYFILE_LEN], h[EVP_MAX_MD_SIZE];
	unsigned int hl = 0;
	memcpy(in, label, sizeof(label));
	memcpy(in + sizeof(label), key, KEYFILE_LEN);
	if (EVP_Digest(in, sizeof(in), h, &hl, EVP_sha256(), NULL) != 1)
		memset(h, 0, 4);
	OPENSSL_cleanse(in, sizeof(in));
	snprintf(id, 9, "%02x%02x%02x%02x", h[0], h[1], h[2], h[3]);
}
