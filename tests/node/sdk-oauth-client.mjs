// The official TypeScript SDK client with its OAuth client provider,
// against mcpd's internal authorization server:
//
//   node sdk-oauth-client.mjs URL USER PASSWORD [none|client_secret_basic|client_secret_post]
//
// The SDK does the OAuth work itself: the 401, the protected resource
// and authorization server metadata, dynamic registration, PKCE, the
// token exchange, and later the refresh when the access token expires.
// This script only plays the user: redirectToAuthorization hands it the
// authorization URL; it GETs the sign-in page, fills the form, POSTs it,
// takes the code from the redirect and gives it to finishAuth. Prints one
// JSON object with what happened.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [url, user, password, method = "none"] = process.argv.slice(2);
const REDIRECT = "http://127.0.0.1:9/callback";
const STATE = "sdk-state-" + Math.random().toString(36).slice(2);
const out = { saves: 0 };

class Provider {
  constructor() {
    this.client = undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.authUrl = undefined;
  }
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: "mcpd-sdk-oauth",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: method,
    };
  }
  state() {
    return STATE;
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info) {
    this.client = info;
    out.clientId = info.client_id;
    out.hasSecret = info.client_secret !== undefined;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
    out.saves++;
  }
  redirectToAuthorization(authUrl) {
    this.authUrl = authUrl;
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
}

function fail(msg) {
  throw new Error(msg);
}

// The user in the browser: sign in and allow.
async function playUser(authUrl) {
  const page = await fetch(authUrl, { redirect: "manual" });
  const html = await page.text();
  if (page.status !== 200) fail(`sign-in page: HTTP ${page.status}: ${html.slice(0, 300)}`);
  const cookie = (page.headers.get("set-cookie") || "").split(";")[0];
  const field = (name) => {
    const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
    if (!m) fail(`no ${name} in the sign-in page`);
    return m[1];
  };
  const body = new URLSearchParams({
    request_id: field("request_id"),
    csrf: field("csrf"),
    username: user,
    password,
    action: "allow",
  });
  const res = await fetch(new URL("/oauth/authorize", authUrl), {
    method: "POST",
    body,
    headers: { cookie },
    redirect: "manual",
  });
  const location = res.headers.get("location");
  if (res.status !== 303 || !location) fail(`sign-in: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const back = new URL(location);
  if (back.origin + back.pathname !== REDIRECT) fail(`redirected to ${location}`);
  if (back.searchParams.get("state") !== STATE) fail("the state did not come back");
  out.iss = back.searchParams.get("iss");
  return back.searchParams.get("code");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const provider = new Provider();

// 1. No token: the SDK discovers, registers, and asks to redirect the user.
let transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
let client = new Client({ name: "mcpd-sdk-oauth", version: "1.0.0" });
try {
  await client.connect(transport);
  out.first = "connected";
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
  out.first = "unauthorized";
}
if (!provider.authUrl) fail("the SDK did not ask for the user's authorization");
const au = new URL(provider.authUrl);
out.authorize = {
  path: au.pathname,
  code_challenge_method: au.searchParams.get("code_challenge_method"),
  resource: au.searchParams.get("resource"),
  scope: au.searchParams.get("scope"),
};

// 2. The user signs in; the SDK exchanges the code.
const code = await playUser(provider.authUrl);
await transport.finishAuth(code);
const first = provider.saved;
out.tokenType = first.token_type;
out.scope = first.scope;
out.expiresIn = first.expires_in;

// 3. Connected with the token.
transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
client = new Client({ name: "mcpd-sdk-oauth", version: "1.0.0" });
await client.connect(transport);
out.tools = (await client.listTools()).tools.map((t) => t.name);
out.hello = await client.callTool({ name: "hello", arguments: {} });
out.secret = await client.callTool({ name: "secret", arguments: {} });

// 4. The access token expires; the next call gets 401, the SDK refreshes
//    and retries on its own.
await sleep((first.expires_in || 1) * 1000 + 1500);
out.afterExpiry = await client.callTool({ name: "hello", arguments: {} });
const second = provider.saved;
out.refreshed = second.access_token !== first.access_token;
out.rotated = second.refresh_token !== undefined && second.refresh_token !== first.refresh_token;

await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
