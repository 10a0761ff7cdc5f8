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
        ("workers: 1\nstorage: { plugin: memory, encrypt_key_file: k, encrypt_key_kms: { provider: gcp } }\n",
         r"bad\.yaml:3:\d+: encrypt_key_kms.provider: gcp is not built"),
        ("workers: 1\nstorage: { plugin: memory, encrypt_key_file: k, encrypt_key_kms: { region: us-east-1 } }\n",
         r"bad\.yaml:3:\d+: encrypt_key_kms needs provider"),
        ("workers: 1\nstorage: { plugin: memory, encrypt_key_file: k, encrypt_key_kms: { provider: aws, colour: red } }\n",
         r"bad\.yaml:3:\d+: unknown key \"colour\" in encrypt_key_kms"),
        ("workers: 1\nstorage: { plugin: memory, encrypt_key_file: k, encrypt_key_kms: { provider: aws, timeout: 1ms } }\n",
         r"bad\.yaml:3:\d+: encrypt_key_kms.timeout"),
        ("workers: 1\nstorage: { plugin: memory, encrypt_key_file: k, encrypt_key_kms: [aws] }\n",
         r"bad\.yaml:3:\d+: encrypt_key_kms must be"),
    ])
