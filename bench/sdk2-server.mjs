// The peer: an MCP server written with the official TypeScript SDK v2
// (@modelcontextprotocol/server with its express and node adapters) the way
// its packages' READMEs show, serving the same greet tool as mcpd's greet
// plugin tool, JSON answers. PORT from the environment. STATELESS=1 serves
// through createMcpHandler (v2's stateless entry: the 2026-07-28 revision,
// and 2025-era requests by a fresh server per request); otherwise a session
// per initialize, as v1's README does it.
import { randomUUID } from "node:crypto";
import { createMcpExpressApp } from "@modelcontextprotocol/express";
import { NodeStreamableHTTPServerTransport, toNodeHandler } from "@modelcontextprotocol/node";
import { createMcpHandler, isInitializeRequest, McpServer } from "@modelcontextprotocol/server";
import { z } from "zod";

function greetServer() {
  const server = new McpServer({ name: "sdk2-bench", version: "1.0.0" });
  server.registerTool("greet", {
    description: "Greets someone by name",
    inputSchema: z.object({ name: z.string() }),
  }, async ({ name }) => ({ content: [{ type: "text", text: `Hello, ${name}!` }] }));
  return server;
}

const app = createMcpExpressApp();

if (process.env.STATELESS === "1") {
  const handler = toNodeHandler(createMcpHandler(() => greetServer(), { responseMode: "json" }));
  app.all("/mcp", (req, res) => handler(req, res, req.body));
} else {
  const transports = {};
  app.post("/mcp", async (req, res) => {
    const sessionId = req.headers["mcp-session-id"];
    let transport;
    if (sessionId && transports[sessionId]) {
      transport = transports[sessionId];
    } else if (!sessionId && isInitializeRequest(req.body)) {
      transport = new NodeStreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: true,
        onsessioninitialized: (sid) => { transports[sid] = transport; },
      });
      transport.onclose = () => { if (transport.sessionId) delete transports[transport.sessionId]; };
      await greetServer().connect(transport);
    } else {
      res.status(400).json({ jsonrpc: "2.0", error: { code: -32000, message: "Bad Request: No valid session ID provided" }, id: null });
      return;
    }
    await transport.handleRequest(req, res, req.body);
  });
  const sessionRequest = async (req, res) => {
    const sessionId = req.headers["mcp-session-id"];
    if (!sessionId || !transports[sessionId]) {
      res.status(400).send("Invalid or missing session ID");
      return;
    }
    await transports[sessionId].handleRequest(req, res);
  };
  app.get("/mcp", sessionRequest);
  app.delete("/mcp", sessionRequest);
}

app.listen(Number(process.env.PORT || 3000), "127.0.0.1");
