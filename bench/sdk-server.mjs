// The peer: an MCP server written with the official TypeScript SDK the way
// its README shows (Express, Streamable HTTP, a session per initialize,
// JSON responses), serving the same greet tool. PORT from the environment.
// STATELESS=1 serves without sessions the way the SDK's README does: a
// server and a transport with no session id generator for each request.
// With JWKS_FILE, ISSUER and AUDIENCE, every /mcp request needs an RS256
// JWT checked by the SDK's requireBearerAuth middleware with a verifier
// that does what mcpd's jwt plugin does (signature, iss, aud, exp).
import express from "express";
import { createPublicKey, randomUUID, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { requireBearerAuth } from "@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js";
import { InvalidTokenError } from "@modelcontextprotocol/sdk/server/auth/errors.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

const app = express();
app.use(express.json());
const transports = {};

if (process.env.JWKS_FILE) {
  const keys = new Map();
  for (const jwk of JSON.parse(readFileSync(process.env.JWKS_FILE, "utf8")).keys)
    keys.set(jwk.kid, createPublicKey({ key: jwk, format: "jwk" }));
  const verifier = {
    async verifyAccessToken(token) {
      const parts = token.split(".");
      if (parts.length !== 3) throw new InvalidTokenError("not a JWT");
      const header = JSON.parse(Buffer.from(parts[0], "base64url"));
      const key = keys.get(header.kid);
      if (header.alg !== "RS256" || !key) throw new InvalidTokenError("unknown key");
      if (!verify("sha256", Buffer.from(parts[0] + "." + parts[1]), key, Buffer.from(parts[2], "base64url")))
        throw new InvalidTokenError("bad signature");
      const claims = JSON.parse(Buffer.from(parts[1], "base64url"));
      const aud = [].concat(claims.aud);
      if (claims.iss !== process.env.ISSUER || !aud.includes(process.env.AUDIENCE) ||
          !(claims.exp > Date.now() / 1000))
        throw new InvalidTokenError("issuer, audience or expiry");
      return { token, clientId: claims.client_id ?? "", scopes: (claims.scope ?? "").split(" ").filter(Boolean),
               expiresAt: claims.exp };
    },
  };
  app.use("/mcp", requireBearerAuth({ verifier }));
}

function greetServer() {
  const server = new McpServer({ name: "sdk-bench", version: "1.0.0" });
  server.registerTool("greet", {
    description: "Greets someone by name",
    inputSchema: { name: z.string() },
  }, async ({ name }) => ({ content: [{ type: "text", text: `Hello, ${name}!` }] }));
  return server;
}

if (process.env.STATELESS === "1") app.post("/mcp", async (req, res) => {
  const server = greetServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on("close", () => { transport.close(); server.close(); });
  await server.connect(transport);
  await transport.handleRequest(req, res, req.body);
});
else app.post("/mcp", async (req, res) => {
  const sessionId = req.headers["mcp-session-id"];
  let transport;
  if (sessionId && transports[sessionId]) {
    transport = transports[sessionId];
  } else if (!sessionId && isInitializeRequest(req.body)) {
    transport = new StreamableHTTPServerTransport({
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

const handleSessionRequest = async (req, res) => {
  const sessionId = req.headers["mcp-session-id"];
  if (!sessionId || !transports[sessionId]) {
    res.status(400).send("Invalid or missing session ID");
    return;
  }
  await transports[sessionId].handleRequest(req, res);
};
app.get("/mcp", handleSessionRequest);
app.delete("/mcp", handleSessionRequest);

app.listen(Number(process.env.PORT || 3000), "127.0.0.1");
