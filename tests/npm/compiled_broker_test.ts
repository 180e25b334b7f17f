/**
 * The single-file broker (`bun build --compile`): compiled by scripts/compile_broker.ts, it starts with nothing
 * installed beside it, serves a client, keeps state in SQLite across a restart, and stops on SIGTERM.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { connect } from "../../src/client/connect.ts";
import { CLIENT_BUNDLE } from "../../src/broker/dashboard/client_bundle.ts";
import { freePort } from "../_mosquitto.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

async function start(binary: string, args: string[], cwd: string) {
  const child = spawn(binary, args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr.on("data", (d) => log += d);
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  for (let i = 0; i < 100 && !log.includes("listening on"); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(
    log,
    /listening on mqtt:\/\/127\.0\.0\.1:\d+ and http:\/\/127\.0\.0\.1:\d+ \(state in sqlite:/,
  );
  return { child, exited, log: () => log };
}

test(
  "bun build --compile: a single-file broker that serves clients, keeps retained messages in SQLite and serves its dashboard",
  {
    skip: "Bun" in globalThis ? false : "compiled once, under Bun (whose executable it is)",
  },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "mqtt-compiled-"));
    try {
      const binary = join(dir, "x-mqtt-broker");
      const compiled = spawnSync(process.execPath, [
        join(root, "scripts", "compile_broker.ts"),
        "--out",
        binary,
      ], {
        encoding: "utf8",
      });
      assert.equal(compiled.status, 0, compiled.stderr);
      const port = await freePort();
      // Run from an empty directory: nothing of the repository is needed.
      const httpPort = await freePort();
      const args = [
        "--port",
        String(port),
        "--persistence",
        "sqlite:state.db",
        "--http-port",
        String(httpPort),
      ];
      let broker = await start(binary, args, dir);
      const url = `mqtt://127.0.0.1:${port}`;
      const client = await connect(url, { reconnect: false });
      await client.publish("compiled/kept", "retained through a restart", { qos: 1, retain: true });
      await client.close();
      broker.child.kill("SIGTERM");
      await broker.exited;
      broker = await start(binary, args, dir);
      try {
        const again = await connect(url, { reconnect: false });
        const subscription = await again.subscribe("compiled/#");
        for await (const message of subscription) {
          assert.equal(message.text(), "retained through a restart");
          break;
        }
        await again.close();
        // The dashboard and the browser bundle it loads are inside the executable.
        const page = await fetch(`http://127.0.0.1:${httpPort}/`);
        assert.match(await page.text(), /from "\/mqtt\.min\.js"/);
        const bundle = await fetch(`http://127.0.0.1:${httpPort}/mqtt.min.js`);
        assert.equal(await bundle.text(), CLIENT_BUNDLE);
      } finally {
        broker.child.kill("SIGTERM");
        await broker.exited;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
