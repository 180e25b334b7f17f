/**
 * The browser bundle in a real browser: headless Chromium loads a page served on 127.0.0.1 that imports the
 * bundle, connects to our broker's WebSocket listener, subscribes, publishes, receives its own message and one
 * from a Node client, and reports back to the test.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Broker } from "../../src/broker/broker.ts";
import { settledWithin } from "../_helpers.ts";
import { connect } from "../../src/client/connect.ts";
import { CLIENT_BUNDLE } from "../../src/broker/dashboard/client_bundle.ts";
import { browserBundle } from "../../scripts/_browser_bundle.ts";
import { chromiumFlags, chromiumPath } from "../_chromium.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const isNode = !("Deno" in globalThis) && !("Bun" in globalThis);
const chromium = chromiumPath;

function skipReason(): string | false {
  if (!isNode) return "run once, under Node";
  if (chromium === undefined) return "Chromium is not installed (.ci/run installs Debian's chromium)";
  return false;
}

test("browser bundle: headless Chromium connects over WebSocket, subscribes, publishes and receives", {
  skip: skipReason(),
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-browser-"));
  const broker = new Broker({ sysInterval: 0 });
  const ws = await broker.listen({ port: 0, websocket: true });
  let report!: (value: Record<string, unknown>) => void;
  const reported = new Promise<Record<string, unknown>>((resolve) => report = resolve);
  let browser: ReturnType<typeof spawn> | undefined;
  const server = createServer((request, response) => {
    if (request.url === "/mqtt.min.js") {
      response.writeHead(200, { "content-type": "text/javascript" });
      response.end(readFileSync(join(dir, "mqtt.min.js")));
    } else if (request.url === "/report" && request.method === "POST") {
      let body = "";
      request.on("data", (chunk) => body += chunk);
      request.on("end", () => {
        report(JSON.parse(body));
        response.end("ok");
      });
    } else if (request.url === "/") {
      response.writeHead(200, { "content-type": "text/html" });
      response.end(`<!doctype html><title>mqtt</title><script type="module">
import { connect } from "/mqtt.min.js";
const send = (body) => fetch("/report", { method: "POST", body: JSON.stringify(body) });
try {
  const client = await connect("ws://127.0.0.1:${ws.port}/mqtt", { clientId: "browser", reconnect: false });
  const subscription = await client.subscribe("browser/#", { qos: 1 });
  await client.publish("browser/self", "from chromium", { qos: 1 });
  await fetch("/ready", { method: "POST" });
  const got = [];
  for await (const message of subscription) {
    got.push(message.topic + "=" + message.text());
    if (got.length === 2) break;
  }
  await client.close();
  await send({ ok: true, got, agent: navigator.userAgent });
} catch (error) {
  await send({ ok: false, error: String(error) });
}
</script>`);
    } else if (request.url === "/ready") {
      // The page is subscribed: a Node client publishes to it.
      void (async () => {
        const node = await connect(`ws://127.0.0.1:${ws.port}/mqtt`, { reconnect: false });
        await node.publish("browser/node", "from node", { qos: 1 });
        await node.close();
      })();
      response.end("ok");
    } else {
      response.writeHead(404).end();
    }
  });
  try {
    const built = spawnSync(process.execPath, [
      join(root, "scripts", "build_browser.ts"),
      "--out",
      join(dir, "mqtt.min.js"),
    ], {
      encoding: "utf8",
    });
    assert.equal(built.status, 0, built.stderr);
    assert.match(built.stdout, /KiB gzipped/);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    browser = spawn(
      chromium as string,
      [...chromiumFlags(join(dir, "profile")), `http://127.0.0.1:${port}/`],
      {
        stdio: "ignore",
      },
    );
    const timeout = setTimeout(
      () => report({ ok: false, error: "no report from the page within 30 s" }),
      30_000,
    );
    const result = await reported;
    clearTimeout(timeout);
    assert.equal(result.ok, true, String(result.error));
    assert.deepEqual((result.got as string[]).sort(), [
      "browser/node=from node",
      "browser/self=from chromium",
    ]);
    assert.match(String(result.agent), /Chrome/);
  } finally {
    if (browser !== undefined && browser.exitCode === null && browser.signalCode === null) {
      const exited = new Promise((resolve) => browser?.once("exit", resolve));
      browser.kill("SIGKILL");
      await settledWithin(exited, 5000);
    }
    server.close();
    await broker.close();
    // Chromium's helper processes may still be writing to the profile for a moment after the main one died.
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
    } catch (error) {
      console.warn(`could not remove ${dir}: ${(error as Error).message}`);
    }
  }
});

test(
  "the broker's copy of the browser bundle (its dashboard's /mqtt.min.js) is the client's current bundle",
  {
    skip: isNode ? false : "run once, under Node",
  },
  async () => {
    assert.ok(
      CLIENT_BUNDLE === await browserBundle(),
      "src/broker/dashboard/client_bundle.ts is behind the client's sources: run `node scripts/build_browser.ts --embed`",
    );
  },
);
