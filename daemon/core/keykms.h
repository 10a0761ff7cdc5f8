/* A data key kept wrapped by a cloud KMS (storage.encrypt_key_kms): the
 * key file holds the KMS's ciphertext of the data key, and this asks the
 * KMS to decrypt it, once, when the configuration is loaded (in the
 * master before it forks, at a reload, by mcpd -t), never in a worker,
 * on a loop of its own that runs until the answer or the timeout:
 *
 *   aws    AWS KMS's Decrypt, signed with SigV4 with the credentials of
 *          the AWS plugins' chain (plugins/common/aws*.c);
 *   gcp    Cloud KMS's cryptoKeys.decrypt, with an OAuth token from
 *          Google's default credentials (plugins/common/gcp_auth.c);
 *   azure  Key Vault's unwrapkey, with an Entra ID token
 *          (plugins/common/azure_auth.c). */
#ifndef MCPD_KEYKMS_H
#define MCPD_KEYKMS_H

#include <stddef.h>
#include <stdint.h>

#include "keyfile.h"

struct kms_conf {
	const char *provider;           /* aws, gcp, azure */
	const char *region;             /* aws: NULL: AWS_REGION, the profile's... */
	const char *endpoint;           /* aws, gcp: NULL: the cloud's own */
	const char *key_id;             /* aws: NULL: the one the ciphertext names;
	                                   gcp: projects/P/locations/L/keyRings/R/cryptoKeys/K;
	                                   azure: https://VAULT.vault.azure.net/keys/NAME[/VERSION] */
	const char *algorithm;          /* azure: the wrapping algorithm (RSA-OAEP-256) */
	const char *client_id;          /* azure: a user-assigned identity, or NULL */
	uint64_t timeout_ms;
};

/* The wrapped key of path (the KMS's CiphertextBlob, as base64 text or
 * raw bytes) decrypted by the KMS, then derived for label as a key file's
 * secret (keyfile.h). 0, or -1 with a message in err. */
int keykms_unwrap(const struct kms_conf *k, const char *path, const char *label, unsigned char key[KEYFILE_LEN],
    char *err, size_t errlen);

/* Is the configuration of k complete and well formed for its provider?
 * 0, or -1 with the setting at fault in *which and why. */
int keykms_check(const struct kms_conf *k, const char **which, char *why, size_t whylen);

#endif
