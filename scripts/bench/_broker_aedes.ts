/**
 * A bare aedes broker for `scripts/bench/broker.ts`: aedes with its default (in-memory) persistence behind a
 * `node:net` server on 127.0.0.1. It prints "listening on" to stderr when ready and stops on SIGTERM or
 * SIGINT.
 *
 * Run from the repository root (node_modules installed):
 *
 *     node scripts/bench/_broker_aedes.ts --port 1883
 *
 * @module
 */

import { Aedes } from "aedes";
import { createServer } from "node:net";
import process from "node:process";

const index = process.argv.indexOf("--port");
const port = index === -1 ? 1883 : Number(process.argv[index + 1]);

const aedes = await Aedes.createBroker();
const server = createServer(aedes.handle);
server.listen(port, "127.0.0.1", () => {
  process.stderr.write(`aedes (Node.js ${process.version}) listening on 127.0.0.1:${port}\n`);
});
aedes.on("clientError", (client, error) => {
  process.stderr.write(`error: client ${client?.id}: ${error.message}\n`);
});
aedes.on("connectionError", (_client, error) => {
  process.stderr.write(`error: connection: ${error.message}\n`);
});

function stop(): void {
  server.close();
  aedes.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
