// The peer: an MCP server written with FastMCP (TypeScript), its httpStream
// transport with JSON answers, serving the same greet tool as mcpd's greet
// plugin tool. PORT from the environment; STATELESS=1 starts it with
// FastMCP's stateless option (no session: a temporary one per request),
// otherwise a session per initialize. Its log at warn, as mcpd's in the
// bench (by default FastMCP writes a debug line for every stateless request).
import { FastMCP } from "fastmcp";
import { z } from "zod";

const quiet = () => {};
const logger = { debug: quiet, info: quiet, log: quiet, warn: console.warn, error: console.error };
const server = new FastMCP({ name: "fastmcp-bench", version: "1.0.0", logger });
server.addTool({
  name: "greet",
  description: "Greets someone by name",
  parameters: z.object({ name: z.string() }),
  execute: async ({ name }) => `Hello, ${name}!`,
});
await server.start({
  transportType: "httpStream",
  httpStream: {
    host: "127.0.0.1",
    port: Number(process.env.PORT || 3000),
    endpoint: "/mcp",
    enableJsonResponse: true,
    stateless: process.env.STATELESS === "1",
  },
});
