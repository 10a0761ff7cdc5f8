/* A data key kept wrapped by a cloud KMS (storage.encrypt_key_kms): the
 * key file holds the KMS's ciphertext of the data key, and this asks the
 * KMS to decrypt it, once, when the configuration is loaded (in the
 * master before it forks, at a reload, by mcpd -t), never in a worker.
 * AWS KMS's Decrypt, signed with SigV4 with the credentials of the AWS
 * plugins' chain (plugins/common/aws*.c), on a loop of its own that runs
 * until the answer or the timeout. */
#ifndef MCPD_KEYKMS_H
#define MCPD_KEYKMS_H

#include <stddef.h>
#include <stdint.h>

#include "keyfile.h"

struct kms_conf {
	const char *provider;           /* aws */
	const char *region;             /* NULL: AWS_REGION, the profile's... */
	const char *endpoint;           /* NULL: AWS's regional endpoint */
	const char *key_id;             /* NULL: the one the ciphertext names */
	uint64_t timeout_ms;
};

/* The wrapped key of path (the KMS's CiphertextBlob, as base64 text or
 * raw bytes) decrypted by the KMS, then derived for label as a key file's
 * secret (keyfile.h). 0, or -1 with a message in err. */
int keykms_unwrap(const struct kms_conf *k, const char *path, const char *label, unsigned char key[KEYFILE_LEN],
    char *err, size_t errlen);

#endif
