// Drives mcpd with the official TypeScript SDK client (Streamable HTTP):
// node sdk-client.mjs URL PIDFILE. Prints one JSON object with what it saw;
// tests/integration/test_clients.py checks it.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const [url, pidfile] = process.argv.slice(2);
const out = {};
const client = new Client(
  { name: "mcpd-sdk-test", version: "1.0.0" },
  { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } },
);
client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
  model: "test-model",
  role: "assistant",
  content: { type: "text", text: "sampled: " + req.params.messages[0].content.text },
}));
client.setRequestHandler(ElicitRequestSchema, async (req) => ({
  action: "accept",
  content: { response: "yes: " + req.params.message },
}));
client.setRequestHandler(ListRootsRequestSchema, async () => ({
  roots: [{ uri: "file:///srv/project", name: "project" }],
}));
const logs = [];
client.setNotificationHandler(
  (await import("@modelcontextprotocol/sdk/types.js")).LoggingMessageNotificationSchema,
  (n) => logs.push(n.params),
);

const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
out.server = client.getServerVersion();
out.protocol = transport.protocolVersion;
out.sessionId = transport.sessionId;
out.tools = (await client.listTools()).tools.map((t) => t.name);
out.simple = await client.callTool({ name: "test_simple_text", arguments: {} });
const progress = [];
out.progressResult = await client.callTool(
  { name: "test_tool_with_progress", arguments: {} },
  undefined,
  { onprogress: (p) => progress.push(p) },
);
out.progress = progress;
await client.setLoggingLevel("debug");
out.logging = await client.callTool({ name: "test_tool_with_logging", arguments: {} });
out.logs = logs;
out.sampling = await client.callTool({ name: "test_sampling", arguments: { prompt: "What is 2+2?" } });
out.elicitation = await client.callTool({ name: "test_elicitation", arguments: { message: "Proceed?" } });
out.roots = await client.callTool({ name: "list_roots", arguments: {} });
out.error = await client.callTool({ name: "test_error_handling", arguments: {} });
out.resources = (await client.listResources()).resources.map((r) => r.uri);
out.resource = await client.readResource({ uri: "test://static-text" });
out.template = await client.readResource({ uri: "test://template/42/data" });
out.prompt = await client.getPrompt({
  name: "test_prompt_with_arguments",
  arguments: { arg1: "alpha", arg2: "beta" },
});
out.completion = await client.complete({
  ref: { type: "ref/prompt", name: "test_prompt_with_arguments" },
  argument: { name: "arg1", value: "test-" },
});

// Cancel a long call: the SDK sends notifications/cancelled when the
// request is aborted; mcpd must stop the command.
const ac = new AbortController();
setTimeout(() => ac.abort("the test cancels"), 700);
const t0 = Date.now();
try {
  await client.callTool({ name: "slow", arguments: { pidfile } }, undefined, { signal: ac.signal });
  out.cancelled = "not cancelled";
} catch (e) {
  out.cancelled = String(e);
}
out.cancelMs = Date.now() - t0;
await new Promise((r) => setTimeout(r, 500));

await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
