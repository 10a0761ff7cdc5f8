// A real OpenID provider (oidc-provider) for the tests of mcpd's jwt auth
// plugin, on a loopback port: issuer http://127.0.0.1:PORT, or https with
// --tls CERT KEY.
//
//   node oidc-server.mjs --port PORT [--keys FILE] [--tls CERT KEY]
//
// Clients use the client_credentials grant with resource indicators
// (RFC 8707): each access token is a JWT whose aud is the resource asked
// for. There is one client per signing algorithm, named after it in lower
// case (rs256, ps256, es256, eddsa), secret "secret", allowed the scopes
// tools.read and tools.admin. Its signing keys are made at start; --keys
// FILE gets them (private, as a JWKS) so that a test can sign tokens of
// its own with the provider's keys.
//
// For the introspection plugin (RFC 7662): the client "opaque" (secret
// "secret") gets opaque access tokens, whose aud is the resource asked
// for; they are introspected at /token/introspection by the client "mcpd"
// (secret "mcpd-secret", HTTP Basic) or "mcpd-post" (secret "mcpd-secret",
// in the form), and revoked at /token/revocation (RFC 7009) by "opaque".
//
// POST /_rotate makes new signing keys and signs with them from then on;
// the old ones stay published (as a provider rotating its keys does).
// POST /_hold makes introspection requests wait (unanswered) until POST
// /_release, which answers them all.
// Prints "ready ISSUER" when it listens, then a line per request.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import Provider from "oidc-provider";

const args = process.argv.slice(2);
const opt = (name, n = 1) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args.slice(i + 1, i + 1 + n);
};
const port = Number(opt("--port")?.[0]);
const keysFile = opt("--keys")?.[0];
const tls = opt("--tls", 2);
if (!port) {
  console.error("usage: oidc-server.mjs --port PORT [--keys FILE] [--tls CERT KEY]");
  process.exit(2);
}
const issuer = `${tls ? "https" : "http"}://127.0.0.1:${port}`;
const ALGS = ["RS256", "PS256", "ES256", "EdDSA"];

let generation = 0;
function makeKey(alg) {
  const { privateKey } =
    alg === "ES256" ? crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
      : alg === "EdDSA" ? crypto.generateKeyPairSync("ed25519")
        : crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { ...privateKey.export({ format: "jwk" }), alg, use: "sig", kid: `${alg.toLowerCase()}-${generation}` };
}

function makeProvider(keys) {
  const provider = new Provider(issuer, {
    jwks: { keys },
    scopes: ["openid", "offline_access", "tools.read", "tools.admin"],
    clients: [
      ...[...ALGS.map((alg) => alg.toLowerCase()), "opaque"].map((id) => ({
        client_id: id,
        client_secret: "secret",
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: "client_secret_post",
        scope: "tools.read tools.admin",
      })),
      ...[["mcpd", "client_secret_basic"], ["mcpd-post", "client_secret_post"]].map(([id, method]) => ({
        client_id: id,
        client_secret: "mcpd-secret",
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: method,
      })),
    ],
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        async getResourceServerInfo(ctx, resource, client) {
          const alg = ALGS.find((a) => a.toLowerCase() === client.clientId);
          if (!alg) {
            return { scope: "tools.read tools.admin", audience: resource, accessTokenFormat: "opaque",
              accessTokenTTL: 300 };
          }
          return {
            scope: "tools.read tools.admin",
            audience: resource,
            accessTokenFormat: "jwt",
            accessTokenTTL: 300,
            jwt: { sign: { alg } },
          };
        },
      },
    },
  });
  provider.on("server_error", (ctx, err) => console.log("server_error", err && err.stack));
  return provider.callback();
}

let keys = [];
function rotate() {
  generation++;
  keys = [...ALGS.map(makeKey), ...keys];
  if (keysFile) fs.writeFileSync(keysFile, JSON.stringify({ keys }));
  return makeProvider(keys);
}
let handler = rotate();
let held = null;         // introspection requests waiting for /_release

function serve(req, res) {
  console.log(`${req.method} ${req.url}`);
  if (req.method === "POST" && req.url === "/_rotate") {
    handler = rotate();
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ kids: keys.map((k) => k.kid) }));
    return;
  }
  if (req.method === "POST" && (req.url === "/_hold" || req.url === "/_release")) {
    const waiting = held ? held.length : 0;
    if (req.url === "/_release" && held) held.forEach((go) => go());
    held = req.url === "/_hold" ? held || [] : null;
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ released: req.url === "/_release" ? waiting : 0 }));
    return;
  }
  if (held && req.url === "/token/introspection") {
    held.push(() => handler(req, res));
    return;
  }
  handler(req, res);
}

const server = tls
  ? https.createServer({ cert: fs.readFileSync(tls[0]), key: fs.readFileSync(tls[1]) }, serve)
  : http.createServer(serve);
server.listen(port, "127.0.0.1", () => console.log(`ready ${issuer}`));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.close(() => process.exit(0)));
