// Makes JWTs and keys for the tests of mcpd's jwt auth plugin, with
// node's crypto only: the tokens a provider would never issue (forged,
// expired, alg none, HMAC with the public key...). Reads a JSON array on
// standard input, writes a JSON array of results.
//
//   node jwt-tool.mjs keygen < [{"alg": "RS256", "kid": "k1"}, ...]
//     -> [{"private": JWK, "public": JWK}, ...]
//   node jwt-tool.mjs sign < [{"header": {...}, "payload": {...}, KEY}, ...]
//     -> ["header.payload.signature", ...]
//
// header.alg picks the algorithm (RS*, PS*, ES256/384, EdDSA, HS*, none).
// KEY is "key": a private JWK; or "secret": a string (HS*); or
// "secret_pem_of": a public JWK whose SPKI PEM is the HMAC secret (the
// algorithm confusion attack).
import * as crypto from "node:crypto";

const b64 = (b) => Buffer.from(b).toString("base64url");
const DIGEST = { 256: "sha256", 384: "sha384", 512: "sha512" };

function keygen({ alg, kid }) {
  const { privateKey, publicKey } =
    alg.startsWith("ES") ? crypto.generateKeyPairSync("ec", { namedCurve: alg === "ES384" ? "P-384" : "P-256" })
      : alg === "EdDSA" || alg === "Ed25519" ? crypto.generateKeyPairSync("ed25519")
        : crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const extra = { alg, use: "sig", ...(kid === undefined ? {} : { kid }) };
  return {
    private: { ...privateKey.export({ format: "jwk" }), ...extra },
    public: { ...publicKey.export({ format: "jwk" }), ...extra },
  };
}

function sign({ header, payload, key, secret, secret_pem_of: pemOf, raw_payload: rawPayload }) {
  const input = `${b64(JSON.stringify(header))}.${rawPayload ?? b64(JSON.stringify(payload))}`;
  const alg = header.alg;
  const md = DIGEST[alg.slice(2)];
  let sig;
  if (alg === "none") {
    sig = Buffer.alloc(0);
  } else if (alg.startsWith("HS")) {
    const s = pemOf
      ? crypto.createPublicKey({ key: pemOf, format: "jwk" }).export({ type: "spki", format: "pem" })
      : secret;
    sig = crypto.createHmac(md, s).update(input).digest();
  } else {
    const k = crypto.createPrivateKey({ key, format: "jwk" });
    if (alg === "EdDSA" || alg === "Ed25519") sig = crypto.sign(null, Buffer.from(input), k);
    else if (alg.startsWith("PS")) {
      sig = crypto.sign(md, Buffer.from(input), {
        key: k, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8,
      });
    } else if (alg.startsWith("ES")) sig = crypto.sign(md, Buffer.from(input), { key: k, dsaEncoding: "ieee-p1363" });
    else sig = crypto.sign(md, Buffer.from(input), k);
  }
  return `${input}.${b64(sig)}`;
}

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const requests = JSON.parse(Buffer.concat(chunks).toString());
const cmd = process.argv[2];
const fn = cmd === "keygen" ? keygen : cmd === "sign" ? sign : null;
if (!fn) {
  console.error("usage: jwt-tool.mjs keygen|sign < requests.json");
  process.exit(2);
}
console.log(JSON.stringify(requests.map(fn)));
