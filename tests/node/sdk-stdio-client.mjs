// Drives `mcpd --stdio` with the official TypeScript SDK's
// StdioClientTransport, through every tool, resource and prompt of
// conf/mcpd.yaml: node sdk-stdio-client.mjs MCPD CONFIG STDERR_LOG.
// mcpd's stderr is appended to STDERR_LOG (the test reads it for the log
// and sanitizer reports). Prints one JSON object with what it saw;
// tests/integration/test_stdio.py checks it.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

const [mcpd, config, stderrLog] = process.argv.slice(2);
const out = {};
const client = new Client(
  { name: "mcpd-stdio-test", version: "1.0.0" },
  { capabilities: { elicitation: {} } },
);
const asked = [];
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  asked.push(req.params.message);
  return { action: "accept", content: { name: "Ada" } };
});
const logs = [];
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));

const transport = new StdioClientTransport({
  command: "/bin/sh",
  args: ["-c", 'exec "$0" --stdio -c "$1" 2>>"$2"', mcpd, config, stderrLog],
});
const errors = [];
await client.connect(transport);
client.onerror = (e) => errors.push(String(e));
const child = transport._process;
const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));

out.server = client.getServerVersion();
out.instructions = client.getInstructions();
out.ping = await client.ping();
await client.setLoggingLevel("info");
out.tools = (await client.listTools()).tools.map((t) => t.name);
out.calls = {};
out.calls.greet = await client.callTool({ name: "greet", arguments: { name: "Ada", times: 2 } });
out.calls["disk-free"] = await client.callTool({ name: "disk-free", arguments: { path: "/" } });
out.calls.stats = await client.callTool({ name: "stats", arguments: {} });
const progress = [];
out.calls.countdown = await client.callTool(
  { name: "countdown", arguments: { seconds: 2 } },
  undefined,
  { onprogress: (p) => progress.push(p) },
);
out.progress = progress;
out.calls["ask-name"] = await client.callTool({ name: "ask-name", arguments: {} });
out.asked = asked;
out.calls.wordstats = await client.callTool({
  name: "wordstats", arguments: { text: "the cat and the hat and the cat", top: 2 },
});
out.calls.add = await client.callTool({ name: "add", arguments: { a: 2, b: 3 } });
out.calls.count = await client.callTool({ name: "count", arguments: { steps: 3, interval_ms: 10 } });
out.invalid = await client.callTool({ name: "greet", arguments: {} }).catch((e) => ({ thrown: String(e) }));
out.logs = logs;

out.resources = (await client.listResources()).resources.map((r) => r.uri);
out.reads = {};
for (const uri of out.resources)
  out.reads[uri] = await client.readResource({ uri });
out.templates = (await client.listResourceTemplates()).resourceTemplates.map((r) => r.uriTemplate);
out.reads["env://HOME"] = await client.readResource({ uri: "env://HOME" });
out.templateCompletion = await client.complete({
  ref: { type: "ref/resource", uri: "env://{name}" },
  argument: { name: "name", value: "PA" },
});

out.prompts = (await client.listPrompts()).prompts.map((p) => p.name);
out.prompt = await client.getPrompt({ name: "summarize", arguments: { text: "A long text.", style: "brief" } });
out.promptCompletion = await client.complete({
  ref: { type: "ref/prompt", name: "summarize" },
  argument: { name: "style", value: "b" },
});

// A long countdown cancelled by the client: the SDK sends
// notifications/cancelled; mcpd stops the command and the session goes on.
const ac = new AbortController();
setTimeout(() => ac.abort("the test cancels"), 700);
const t0 = Date.now();
try {
  await client.callTool({ name: "countdown", arguments: { seconds: 30 } }, undefined, { signal: ac.signal });
  out.cancelled = "not cancelled";
} catch (e) {
  out.cancelled = String(e);
}
out.cancelMs = Date.now() - t0;
out.afterCancel = await client.callTool({ name: "greet", arguments: { name: "again" } });

const t1 = Date.now();
await client.close();
out.exit = await exited;
out.closeMs = Date.now() - t1;
out.errors = errors;
console.log(JSON.stringify(out));
