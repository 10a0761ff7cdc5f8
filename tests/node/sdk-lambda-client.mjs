// The official TypeScript SDK client against mcpd --lambda behind the
// tests' function URL front (tests/integration/test_lambda.py):
// node sdk-lambda-client.mjs URL. Prints one JSON object with what it saw.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [url] = process.argv.slice(2);
const out = { elicitations: 0 };
const client = new Client({ name: "mcpd-lambda-test", version: "1.0.0" }, { capabilities: { elicitation: {} } });
client.setRequestHandler(ElicitRequestSchema, async () => {
  out.elicitations++;
  return { action: "accept", content: { name: "never" } };
});
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
out.protocol = transport.protocolVersion;
out.sessionId = transport.sessionId;
out.tools = (await client.listTools()).tools.map((t) => t.name);
out.hello = await client.callTool({ name: "hello", arguments: { who: "sdk" } });
const progress = [];
const t0 = Date.now();
out.slow = await client.callTool({ name: "slow_progress", arguments: {} }, undefined,
  { onprogress: (p) => progress.push({ ...p, at: Date.now() - t0 }) });
out.resultAt = Date.now() - t0;
out.progress = progress;
out.ask = await client.callTool({ name: "ask", arguments: {} });
await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
