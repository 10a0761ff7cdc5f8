// The official TypeScript SDK client against a server made by mcpd init,
// calling its example tools:
//
//   node sdk-init-client.mjs URL none
//   node sdk-init-client.mjs URL bearer            (the key in MCPD_TOKEN)
//   node sdk-init-client.mjs URL oauth USER PASSWORD
//
// oauth goes through mcpd's internal authorization server the way
// sdk-oauth-client.mjs does (the SDK discovers, registers and exchanges
// the code; this script plays the user at the sign-in page). Prints one
// JSON object: the tools listed and what each call gave.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, mode, user, password] = process.argv.slice(2);
const REDIRECT = "http://127.0.0.1:9/callback";
const STATE = "init-state-" + Math.random().toString(36).slice(2);
const out = {};

class Provider {
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: "mcpd-init-test",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
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
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
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
async function signIn(authUrl) {
  const page = await fetch(authUrl, { redirect: "manual" });
  const html = await page.text();
  if (page.status !== 200) fail(`sign-in page: HTTP ${page.status}: ${html.slice(0, 300)}`);
  const cookie = (page.headers.get("set-cookie") || "").split(";")[0];
  const field = (name) => {
    const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
    if (!m) fail(`no ${name} in the sign-in page`);
    return m[1];
  };
  const res = await fetch(new URL("/oauth/authorize", authUrl), {
    method: "POST",
    body: new URLSearchParams({
      request_id: field("request_id"),
      csrf: field("csrf"),
      username: user,
      password,
      action: "allow",
    }),
    headers: { cookie },
    redirect: "manual",
  });
  const location = res.headers.get("location");
  if (res.status !== 303 || !location) fail(`sign-in: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return new URL(location).searchParams.get("code");
}

function newClient() {
  const client = new Client(
    { name: "mcpd-init-test", version: "1.0.0" },
    { capabilities: { elicitation: {} } },
  );
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    out.question = req.params.message;
    return { action: "accept", content: { name: "Ada" } };
  });
  return client;
}

let options = {};
if (mode === "bearer") {
  options = { requestInit: { headers: { Authorization: "Bearer " + process.env.MCPD_TOKEN } } };
} else if (mode === "oauth") {
  const provider = new Provider();
  options = { authProvider: provider };
  try {
    await newClient().connect(new StreamableHTTPClientTransport(new URL(url), options));
    fail("connected without signing in");
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  if (!provider.authUrl) fail("the SDK did not ask for the user's authorization");
  const first = new StreamableHTTPClientTransport(new URL(url), options);
  await first.finishAuth(await signIn(provider.authUrl));
  out.signedIn = provider.saved !== undefined;
}

const client = newClient();
const transport = new StreamableHTTPClientTransport(new URL(url), options);
await client.connect(transport);
out.server = client.getServerVersion();
out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
if (out.tools.includes("hello")) out.hello = await client.callTool({ name: "hello", arguments: { name: "Ada" } });
if (out.tools.includes("countdown")) {
  const progress = [];
  out.countdown = await client.callTool(
    { name: "countdown", arguments: { seconds: 2 } },
    undefined,
    { onprogress: (p) => progress.push(p) },
  );
  out.progress = progress;
}
if (out.tools.includes("ask-name")) out.askName = await client.callTool({ name: "ask-name", arguments: {} });
await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
