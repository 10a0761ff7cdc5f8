#!/usr/bin/env node
// The Cosmos DB emulator of the cosmos plugin's tests: @vercel/cosmosdb-server
// (pinned in package.json) on 127.0.0.1, over HTTPS with the test's
// certificate (--cert, --key; without them the package's own self-signed
// one), connections kept alive.
//
//   node cosmos-server.mjs --port N [--cert cert.pem --key key.pem] [--no-ssl]
//
// One difference from the package as it is: a point read of an item that
// does not exist answers 500 in 1.0.1 (its partition-key check reads the
// missing item's fields); the launcher marks point reads so that the
// package skips that check and answers 404, as Cosmos DB does. The item is
// still looked up by its id and partition key. Everything else is the
// package's own behaviour (see the README for what it does not implement).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const { createHttpsServer, createHttpServer } = require("@vercel/cosmosdb-server");

const args = { port: 0, cert: null, key: null, ssl: true };
const argv = process.argv.slice(2);
while (argv.length) {
  const a = argv.shift();
  if (a === "--port") args.port = parseInt(argv.shift(), 10);
  else if (a === "--cert") args.cert = argv.shift();
  else if (a === "--key") args.key = argv.shift();
  else if (a === "--no-ssl") args.ssl = false;
  else {
    console.error(`unknown argument ${a}`);
    process.exit(2);
  }
}

const opts = { keepAlive: true };
if (args.cert) opts.cert = readFileSync(args.cert);
if (args.key) opts.key = readFileSync(args.key);
const server = args.ssl ? createHttpsServer(opts) : createHttpServer(opts);
server.keepAliveTimeout = 60000;

const pointRead = /^\/+dbs\/[^/]+\/colls\/[^/]+\/docs\/[^/?]+\/?(\?.*)?$/;
const handlers = server.listeners("request");
server.removeAllListeners("request");
server.on("request", (req, res) => {
  if (req.method === "GET" && pointRead.test(req.url))
    req.headers["x-ms-documentdb-query-enablecrosspartition"] = "true";
  for (const h of handlers) h.call(server, req, res);
});

server.listen(args.port, "127.0.0.1", () => {
  console.log(`cosmosdb-server listening on 127.0.0.1:${server.address().port} (${args.ssl ? "https" : "http"})`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
