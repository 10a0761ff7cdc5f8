// The official TypeScript SDK client against an mcpd that wants a bearer
// token: node sdk-auth-client.mjs URL, the token in MCPD_TOKEN. Prints one
// JSON object: what a client without the token saw, then with it.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url] = process.argv.slice(2);
const out = {};

try {
  const anon = new Client({ name: "mcpd-sdk-anon", version: "1.0.0" });
  await anon.connect(new StreamableHTTPClientTransport(new URL(url)));
  out.anonymous = "connected";
} catch (e) {
  out.anonymous = String(e && e.message ? e.message : e);
}

const client = new Client({ name: "mcpd-sdk-auth", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: "Bearer " + process.env.MCPD_TOKEN } },
});
await client.connect(transport);
out.sessionId = transport.sessionId;
out.tools = (await client.listTools()).tools.map((t) => t.name);
out.hello = await client.callTool({ name: "hello", arguments: {} });
try {
  out.secret = await client.callTool({ name: "secret", arguments: {} });
} catch (e) {
  out.secret = { error: String(e && e.message ? e.message : e) };
}
await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
