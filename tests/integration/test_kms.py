"""A data key wrapped by AWS KMS (storage: { encrypt_key_file: WRAPPED,
encrypt_key_kms: { provider: aws, ... } }), against moto's KMS with IAM
authentication on: the test makes a KMS key and wraps a data key with
moto's Encrypt (boto3); mcpd asks KMS's Decrypt, signed with SigV4, once
at config load in the master, and seals with the key it gets: the same
key as the plain data key in a key file (an instance with that file reads
the sessions of one with the wrapped key). A rotation takes a second
wrapped key; a ciphertext KMS does not know, a KMS key that is not the
ciphertext's, a KMS that does not answer, are clear errors at start."""

import base64
import os
import secrets
import socket
import time

from awspeer import REGION, moto_server
from harness import (call_tool, check, check_config_errors, free_port, redis_server, run_mcpd, sid_hash,
                     start_instances)
from test_redis import TOOLS
from test_seal import enc_kid, no_clear_state, redis_dump, session_as, storage


def wrapped(t, m, key_id, name, data=None):
    """A data key (hex text) wrapped by KMS key key_id into the file
    name (base64, as `aws kms encrypt --output text` prints it): (path
    of the wrapped key, path of the same data key in clear)."""
    data = data or secrets.token_hex(32).encode()
    blob = m.client("kms").encrypt(KeyId=key_id, Plaintext=data)["CiphertextBlob"]
    path = os.path.join(t.dir, name)
    with open(path, "w") as f:
        f.write(base64.b64encode(blob).decode() + "\n")
    plain = path + ".plain"
    with open(plain, "wb") as f:
        f.write(data)
    os.chmod(plain, 0o600)
    return path, plain


def kms_storage(t, redis, m, key, accept=None, extra=""):
    s = storage(t, redis, key, accept).replace(
        " }\ntransport:", ", encrypt_key_kms: { provider: aws, region: %s, endpoint: \"%s\"%s } }\ntransport:" %
        (REGION, m.url, extra), 1)
    return s


def test_a_wrapped_key_seals_and_sessions_work(t):
    m = moto_server(t)
    redis = redis_server(t)
    kid = m.client("kms").create_key(Description="mcpd state")["KeyMetadata"]["KeyId"]
    key, plain = wrapped(t, m, kid, "state.key.kms")
    (a, pa), (b, pb) = start_instances(t, 2, lambda name: kms_storage(t, redis, m, key) + TOOLS % {"name": name},
                                       env=m.env())
    client = "kms-client-%s" % os.urandom(4).hex()
    sid = session_as(pa, client)
    check(call_tool(pb, sid, "where") == "B" and call_tool(pa, sid, "where", id=2) == "A")
    dump = redis_dump(redis)
    record = [v for k, v in dump.items() if k == "mcpd:session:" + sid_hash(sid)]
    # Sealed with the data key KMS unwrapped: its id is the plain key's.
    check(record and record[0].strip().strip('"').startswith("mcpd-enc1:%s:" % enc_kid(plain)), dump)
    no_clear_state(dump, sid, client)
    # An instance with the same data key in a plain key file reads them.
    (c, pc), = start_instances(t, 1, lambda name: storage(t, redis, plain) + TOOLS % {"name": "C"})
    check(call_tool(pc, sid, "where", id=3) == "C")
    # A rotation: a new wrapped key seals, the old one (accepted) opens.
    key2, plain2 = wrapped(t, m, kid, "state2.key.kms")
    (d, pd), = start_instances(t, 1, lambda name: kms_storage(t, redis, m, key2, accept=key) +
                               TOOLS % {"name": "D"}, env=m.env())
    check(call_tool(pd, sid, "where", id=4) == "D")
    sid2 = session_as(pd, client)
    v = redis_dump(redis)["mcpd:session:" + sid_hash(sid2)]
    check(v.strip().strip('"').startswith("mcpd-enc1:%s:" % enc_kid(plain2)), v[:200])
    for x in (a, b, c, d):
        x.stop()


def test_kms_errors_stop_the_start(t):
    m = moto_server(t)
    redis = redis_server(t)
    kms = m.client("kms")
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    key, _ = wrapped(t, m, kid, "state.key.kms")
    # Bytes that are no ciphertext of this KMS.
    bogus = os.path.join(t.dir, "bogus.kms")
    with open(bogus, "w") as f:
        f.write(base64.b64encode(os.urandom(180)).decode())
    env = m.env()
    ep = "endpoint: \"%s\", region: %s" % (m.url, REGION)
    base = "storage: { plugin: redis, url: \"%s\", encrypt_key_file: %%s, encrypt_key_kms: { provider: aws, %s%%s } }\n" % (
        redis.url, ep)
    check_config_errors(t, [
        (base % (bogus, ""), r"bad\.yaml:2:\d+: encrypt_key_file: .*AWS KMS .* refused to decrypt it: \S+"),
        (base % (key, ", key_id: " + other), r"bad\.yaml:2:\d+: encrypt_key_file: .*AWS KMS .* refused"),
        (base % (os.path.join(t.dir, "nowhere"), ""), r"bad\.yaml:2:\d+: encrypt_key_file: .*nowhere: No such file"),
    ], env=env)
    # The right key (and its id) passes: what made the others fail is the key.
    path = os.path.join(t.dir, "good.yaml")
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\n" % free_port() + base % (key, ", key_id: " + kid))
    rc, out, err = run_mcpd("-t", "-c", path, env=env)
    check(rc == 0, out + err)
    # Wrong credentials: moto refuses the signature.
    check_config_errors(t, [(base % (key, ""), r"encrypt_key_file: .*AWS KMS .* refused")],
                        env=dict(env, AWS_SECRET_ACCESS_KEY="not-the-secret"))
    # A KMS that accepts and never answers: bounded by timeout.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    hung = "storage: { plugin: redis, url: \"%s\", encrypt_key_file: %s, encrypt_key_kms: { provider: aws, " \
           "region: %s, endpoint: \"http://127.0.0.1:%d\", timeout: 1s } }\n" % (redis.url, key, REGION,
                                                                                s.getsockname()[1])
    started = time.monotonic()
    check_config_errors(t, [(hung, r"bad\.yaml:2:\d+: encrypt_key_file: .*AWS KMS .* did not answer: .*timed out")],
                        env=env)
    check(time.monotonic() - started < 8, "the hung KMS held the start %.1fs" % (time.monotonic() - started))
    s.close()
    # The daemon itself does not start with a bad key, and says why.
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\n" % free_port() + base % (bogus, ""))
    rc, out, err = run_mcpd("-c", path, env=env, timeout=20)
    check(rc != 0 and "refused to decrypt it" in out + err, (rc, out + err))


def test_kms_configuration_errors(t):
    check_config_errors(t, [
        ("workers: 1\nstorage: { plugin: memory, encrypt_key_kms: { provider: aws } }\n",
         r"bad\.yaml:3:\d+: encrypt_key_kms needs encrypt_key_file"),
        ("workers: 1\nstorage: { plugin: memory, encrypt_key_file: k, encrypt_key_kms: { region: us-east-1 } }\n",
         r"bad\.yaml:3:\d+: encrypt_key_kms.provider is needed"),
        ("workers: 1\nstorage: { plugin: memory, encrypt_key_file: k, encrypt_key_kms: { provider: aws, colour: red } }\n",
         r"bad\.yaml:3:\d+: unknown key \"colour\" in encrypt_key_kms"),
        ("workers: 1\nstorage: { plugin: memory, encrypt_key_file: k, encrypt_key_kms: { provider: aws, timeout: 1ms } }\n",
         r"bad\.yaml:3:\d+: encrypt_key_kms.timeout"),
        ("workers: 1\nstorage: { plugin: memory, encrypt_key_file: k, encrypt_key_kms: [aws] }\n",
         r"bad\.yaml:3:\d+: encrypt_key_kms must be"),
    ])


# ---- Google Cloud KMS and Azure Key Vault ----
# Neither service is reachable from the machines these tests run on, and
# neither has an emulator. The two peers below are written here from the
# services' REST documentation (Cloud KMS: cryptoKeys.decrypt; Key Vault
# 7.4: keys/unwrapkey), with real cryptography (AES-256-GCM; RSA-OAEP-256)
# and the token services the Firestore and Cosmos DB tests already use.
# They check mcpd's requests as the documentation states them; they do not
# prove the services accept them.

GCP_KEY = "projects/test-project/locations/global/keyRings/mcpd/cryptoKeys/state"


class KmsPeer:
    """One REST endpoint that decrypts with a key of its own, for bearer
    tokens `good(auth)` accepts. kind: "gcp" (POST /v1/NAME:decrypt,
    {"ciphertext": base64} -> {"plaintext": base64}) or "azure" (POST
    /keys/NAME/VERSION/unwrapkey?api-version=7.4, {"alg", "value":
    base64url} -> {"kid", "value": base64url})."""

    def __init__(self, t, kind, good):
        import json
        import threading
        from harness import HTTPPeer, json_handler
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.kind, self.good, self.seen, self.hang = kind, good, [], False
        self.aes = os.urandom(32)
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        peer = self

        class H(json_handler()):

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                peer.seen.append((self.path, dict(self.headers), body))
                if peer.hang:
                    threading.Event().wait(30)
                    return
                if not peer.good(self.headers.get("Authorization", "")):
                    return self.answer(401, peer.error(401, "UNAUTHENTICATED", "Unauthorized",
                                                       "Request had invalid authentication credentials."))
                if self.headers.get("Content-Type") != "application/json":
                    return self.answer(400, peer.error(400, "INVALID_ARGUMENT", "BadParameter", "not JSON"))
                try:
                    status, out = peer.decrypt(self.path, json.loads(body))
                except Exception as e:
                    status, out = 400, peer.error(400, "INVALID_ARGUMENT", "BadParameter",
                                                  "Decryption failed: the ciphertext is invalid. (%s)" % e)
                self.answer(status, out)

        self.http = HTTPPeer()
        self.http.listen(H, daemon_threads=True)
        self.http.log_path = "(the %s KMS peer)" % kind
        self.http.log = lambda: "requests: %s" % [(s[0], s[2][:200]) for s in self.seen]
        serve_peer(t, self.http)
        self.url = self.http.url
        self.key_id = self.url + "/keys/mcpd/0123456789abcdef0123456789abcdef"

    def error(self, code, gstatus, acode, message):
        if self.kind == "gcp":
            return {"error": {"code": code, "message": message, "status": gstatus}}
        return {"error": {"code": acode, "message": message}}

    def wrap(self, data):
        """What `gcloud kms encrypt` (the ciphertext) or Key Vault's
        wrapkey (its value, base64url) gives for data."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        if self.kind == "gcp":
            nonce = os.urandom(12)
            return base64.b64encode(nonce + AESGCM(self.aes).encrypt(nonce, data, GCP_KEY.encode())).decode()
        ct = self.rsa.public_key().encrypt(data, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                              algorithm=hashes.SHA256(), label=None))
        return base64.urlsafe_b64encode(ct).decode().rstrip("=")

    def decrypt(self, path, req):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        if self.kind == "gcp":
            if path != "/v1/%s:decrypt" % GCP_KEY:
                return 404, self.error(404, "NOT_FOUND", "", "CryptoKey %s not found." % path)
            raw = base64.b64decode(req["ciphertext"], validate=True)
            plain = AESGCM(self.aes).decrypt(raw[:12], raw[12:], GCP_KEY.encode())
            return 200, {"plaintext": base64.b64encode(plain).decode(), "usedPrimary": True,
                         "protectionLevel": "SOFTWARE"}
        kid = self.key_id[len(self.url):]
        if path != kid + "/unwrapkey?api-version=7.4":
            return 404, self.error(404, "", "KeyNotFound", "A key with (name/id) %s was not found." % path)
        if req.get("alg") != "RSA-OAEP-256":
            return 400, self.error(400, "", "BadParameter", "Invalid algorithm %s" % req.get("alg"))
        value = req["value"]
        if "=" in value or "+" in value or "/" in value:
            return 400, self.error(400, "", "BadParameter", "value is not base64url")
        plain = self.rsa.decrypt(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)),
                                 padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                                              label=None))
        return 200, {"kid": self.key_id, "value": base64.urlsafe_b64encode(plain).decode().rstrip("=")}


def serve_peer(t, p):
    from harness import serve
    serve(t, p)


def peer_wrapped(t, kms, name, data=None):
    data = data or secrets.token_hex(32).encode()
    path = os.path.join(t.dir, name)
    with open(path, "w") as f:
        f.write(kms.wrap(data) + "\n")
    plain = path + ".plain"
    with open(plain, "wb") as f:
        f.write(data)
    os.chmod(plain, 0o600)
    return path, plain


def with_kms(t, redis, key, kms_inline, accept=None):
    return storage(t, redis, key, accept).replace(" }\ntransport:", ", encrypt_key_kms: { %s } }\ntransport:"
                                                  % kms_inline, 1)


def gcp_setup(t):
    from test_gcp_credentials import CLEAN, Tokens, sa_file
    tokens = Tokens(t, life=60)
    kms = KmsPeer(t, "gcp", lambda auth: tokens.good(auth, kind="service"))
    env = dict(CLEAN, GOOGLE_APPLICATION_CREDENTIALS=sa_file(t, tokens))
    return tokens, kms, env, "provider: gcp, key_id: \"%s\", endpoint: \"%s\"" % (GCP_KEY, kms.url)


def azure_setup(t):
    from cosmospeer import TokenService
    from harness import serve
    svc = serve(t, TokenService(t.dir, identity_header="id-header-secret"))
    kms = KmsPeer(t, "azure", lambda auth: auth.startswith("Bearer ") and svc.valid(auth[7:], "https://vault.azure.net"))
    env = {"AZURE_FEDERATED_TOKEN_FILE": "", "AZURE_CLIENT_ID": "", "AZURE_TENANT_ID": "",
           "AZURE_POD_IDENTITY_AUTHORITY_HOST": "", "IDENTITY_ENDPOINT": svc.url + "/msi/token",
           "IDENTITY_HEADER": "id-header-secret"}
    return svc, kms, env, "provider: azure, key_id: \"%s\"" % kms.key_id


def wrapped_key_in_the_peer(t, setup):
    redis = redis_server(t)
    tokens, kms, env, inline = setup(t)
    key, plain = peer_wrapped(t, kms, "state.key.kms")
    (a, pa), (b, pb) = start_instances(t, 2, lambda name: with_kms(t, redis, key, inline) + TOOLS % {"name": name},
                                       env=env)
    client = "kms-client-%s" % os.urandom(4).hex()
    sid = session_as(pa, client)
    check(call_tool(pb, sid, "where") == "B")
    dump = redis_dump(redis)
    record = dump.get("mcpd:session:" + sid_hash(sid), "")
    check(record.strip().strip('"').startswith("mcpd-enc1:%s:" % enc_kid(plain)), dump)
    no_clear_state(dump, sid, client)
    # The master asked once per instance, with a bearer token, never a worker.
    check(len(kms.seen) == 2 and all(s[1].get("Authorization", "").startswith("Bearer ") for s in kms.seen),
          [s[:2] for s in kms.seen])
    for d in (a, b):
        check(all(s[1]["Authorization"][7:] not in d.log() for s in kms.seen), "a token in the log")
    # A plain key file with the same data key reads the sessions.
    (c, pc), = start_instances(t, 1, lambda name: storage(t, redis, plain) + TOOLS % {"name": "C"})
    check(call_tool(pc, sid, "where", id=3) == "C")
    # Errors: a ciphertext the key did not make, no answer within timeout,
    # credentials the service refuses.
    bogus = os.path.join(t.dir, "bogus.kms")
    with open(bogus, "w") as f:
        f.write(base64.urlsafe_b64encode(os.urandom(256)).decode().rstrip("="))
    base = "storage: { plugin: redis, url: \"%s\", encrypt_key_file: %%s, encrypt_key_kms: { %s%%s } }\n" % (
        redis.url, inline)
    service = "Google Cloud KMS" if kms.kind == "gcp" else "Azure Key Vault"
    check_config_errors(t, [(base % (bogus, ""), r"bad\.yaml:2:\d+: encrypt_key_file: .*%s .* refused to decrypt "
                             r"it: HTTP 400 \S+: Decryption failed" % service)], env=env)
    kms.good = lambda auth: False
    check_config_errors(t, [(base % (key, ""), r"encrypt_key_file: .*%s .* refused to decrypt it: HTTP 401" % service)],
                        env=env)
    kms.hang = True
    started = time.monotonic()
    check_config_errors(t, [(base % (key, ", timeout: 1s"), r"encrypt_key_file: .*%s .* (did not answer)" % service)],
                        env=env)
    check(time.monotonic() - started < 10, "the hung KMS held the start %.1fs" % (time.monotonic() - started))
    for d in (a, b, c):
        d.stop()
    return tokens, kms


def test_gcp_cloud_kms_peer(t):
    """provider: gcp against the Cloud KMS peer: a service account's
    token (scope cloud-platform) on a decrypt of the key's name."""
    tokens, kms = wrapped_key_in_the_peer(t, gcp_setup)
    check(tokens.grants("jwt") >= 1 and tokens.errors == [], tokens.log())


def test_azure_key_vault_peer(t):
    """provider: azure against the Key Vault peer: a managed identity's
    token for https://vault.azure.net, RSA-OAEP-256 unwrapkey of a
    base64url value."""
    svc, kms = wrapped_key_in_the_peer(t, azure_setup)
    check(any(r[0] == "managed" for r in svc.requests) and svc.refusals == [], svc.log())
    body = kms.seen[0][2].decode()
    check('"alg":"RSA-OAEP-256"' in body.replace(" ", ""), body)


def test_kms_provider_settings(t):
    m = "workers: 1\nstorage: { plugin: memory, encrypt_key_file: k, encrypt_key_kms: { %s } }\n"
    check_config_errors(t, [
        (m % "provider: gcp", r"bad\.yaml:3:\d+: encrypt_key_kms.key_id is needed: the key's name"),
        (m % "provider: gcp, key_id: projects/p/keyRings/r", r"encrypt_key_kms.key_id projects/p/keyRings/r is not a key's name"),
        (m % ("provider: gcp, key_id: %s, region: eu" % GCP_KEY), r"encrypt_key_kms.region is not a setting of provider gcp"),
        (m % ("provider: gcp, key_id: %s, endpoint: \"http://kms.example.com\"" % GCP_KEY), r"encrypt_key_kms.endpoint"),
        (m % "provider: azure", r"encrypt_key_kms.key_id is needed: the key's identifier"),
        (m % "provider: azure, key_id: \"https://v.vault.azure.net/secrets/x\"", r"is not a Key Vault key's identifier"),
        (m % "provider: azure, key_id: \"http://v.vault.azure.net/keys/x\"", r"encrypt_key_kms.key_id"),
        (m % "provider: azure, key_id: \"https://v.vault.azure.net/keys/x\", algorithm: ROT13",
         r"encrypt_key_kms.algorithm ROT13 is not one of"),
        (m % "provider: azure, key_id: \"https://v.vault.azure.net/keys/x\", endpoint: \"https://e\"",
         r"encrypt_key_kms.endpoint is not a setting of provider azure"),
        (m % "provider: aws, client_id: abc", r"encrypt_key_kms.client_id is not a setting of provider aws"),
        (m % "provider: vault", r"encrypt_key_kms.provider vault is not one of aws, gcp, azure"),
    ])
