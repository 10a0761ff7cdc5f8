// The peer of bench/lambda.sh: the same ten tools served with the official
// TypeScript SDK as a Lambda function, the way the SDK's documentation
// shows a stateless server on a Web-standard runtime (a new McpServer and
// WebStandardStreamableHTTPServerTransport per request, JSON answers),
// behind a loop doing what Lambda's Node.js runtime does for a handler:
// GET the next invocation from AWS_LAMBDA_RUNTIME_API, call the handler
// with the event, POST what it returns. Started as that runtime starts a
// function (node, then the handler's module imported once).
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { z } from "zod";

function server() {
  const s = new McpServer({ name: "sdk-lambda", version: "1.0.0" });
  s.registerTool("greet", { description: "Greets in-process.", inputSchema: { name: z.string() } },
    async ({ name }) => ({ content: [{ type: "text", text: `Hello, ${name}!` }] }));
  for (let i = 1; i < 10; i++)
    s.registerTool(`tool${i}`, { description: `Tool ${i}.`, inputSchema: { x: z.string().optional() } },
      async () => ({ content: [{ type: "text", text: `tool ${i}` }] }));
  return s;
}

// The handler: a function URL's payload 2.0 event in, its answer out.
export async function handler(event) {
  const url = `https://${event.requestContext.domainName}${event.rawPath}` +
    (event.rawQueryString ? `?${event.rawQueryString}` : "");
  const body = event.body == null ? undefined :
    event.isBase64Encoded ? Buffer.from(event.body, "base64") : event.body;
  const req = new Request(url, { method: event.requestContext.http.method, headers: event.headers, body });
  const s = server();
  const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined,
    enableJsonResponse: true });
  await s.connect(transport);
  const res = await transport.handleRequest(req);
  const text = await res.text();
  await s.close();
  return { statusCode: res.status, headers: Object.fromEntries(res.headers), body: text, isBase64Encoded: false };
}

// The runtime's loop.
const api = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime`;
for (;;) {
  const next = await fetch(`${api}/invocation/next`);
  const id = next.headers.get("lambda-runtime-aws-request-id");
  const event = await next.json();
  try {
    const out = await handler(event);
    await fetch(`${api}/invocation/${id}/response`, { method: "POST", body: JSON.stringify(out) });
  } catch (e) {
    await fetch(`${api}/invocation/${id}/error`, { method: "POST",
      body: JSON.stringify({ errorMessage: String(e), errorType: "Error" }) });
  }
}
