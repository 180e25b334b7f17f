/**
 * Bridge throughput: a broker on the edge bridges `bench/#` out to a central mosquitto; a publisher on the edge
 * sends 64-byte messages (at most 1,000 unacknowledged at QoS 1), a subscriber on the central broker counts
 * them. The edge broker is ours (`broker.ts` on Deno, a JSON bridge) or mosquitto (a `connection` section),
 * both MQTT 3.1.1 to the central broker. Reports messages per second end to end, what arrived, and ours as a
 * ratio of mosquitto's.
 *
 *     node scripts/bench/bridge.ts [--quick] [--messages N]
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { connect } from "../../src/client/connect.ts";
import type { QoS } from "../../src/codec/packet.ts";
import { formatRate, formatTable } from "./_bench.ts";
import { canConnect, freePort, ROOT } from "./_broker_procs.ts";

const quick = process.argv.includes("--quick");
const flag = process.argv.indexOf("--messages");
const MESSAGES = flag === -1 ? (quick ? 10_000 : 50_000) : Number(process.argv[flag + 1]);
const WINDOW = 1000;
const PASSES = quick ? 1 : 3;

interface Running {
  port: number;
  stop(): Promise<void>;
}

async function start(argv: string[], port: number, dir: string): Promise<Running> {
  const child: ChildProcess = spawn(argv[0], argv.slice(1), {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr?.on("data", (chunk) => log = (log + chunk).slice(-4000));
  for (let i = 0; i < 300 && !(await canConnect(port)); i++) await new Promise((r) => setTimeout(r, 50));
  if (!(await canConnect(port))) {
    child.kill("SIGKILL");
    throw new Error(`${argv.join(" ")} did not start:\n${log}`);
  }
  return {
    port,
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function mosquitto(lines: string[]): Promise<Running> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "bench-bridge-"));
  const file = join(dir, "mosquitto.conf");
  writeFileSync(
    file,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "persistence false",
      "max_queued_messages 100000",
      ...(process.getuid?.() === 0 ? ["user root"] : []),
      ...lines,
      "",
    ].join("\n"),
  );
  return start(["mosquitto", "-c", file], port, dir);
}

async function ours(centralPort: number): Promise<Running> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "bench-bridge-"));
  const file = join(dir, "edge.json");
  writeFileSync(
    file,
    JSON.stringify({
      listeners: [{ type: "tcp", host: "127.0.0.1", port }],
      sysInterval: 0,
      logLevel: "warn",
      limits: { maxQueuedMessages: 100_000 },
      bridges: [{
        name: "central",
        url: `mqtt://127.0.0.1:${centralPort}`,
        protocolVersion: 4,
        topics: [{ pattern: "bench/#", direction: "out", qos: 1 }],
      }],
    }),
  );
  const deno = join(ROOT, "node_modules", ".bin", "deno");
  return start([deno, "run", "-A", join(ROOT, "broker.ts"), "-c", file], port, dir);
}

/** One pass: publishes MESSAGES at `qos` on the edge, counts them on the central broker. */
async function pass(edgePort: number, centralPort: number, qos: QoS): Promise<{ rate: number; got: number }> {
  const subscriber = await connect(`mqtt://127.0.0.1:${centralPort}`, {
    reconnect: false,
    protocolVersion: 4,
  });
  const subscription = await subscriber.subscribe("bench/#", { qos: 1 });
  const publisher = await connect(`mqtt://127.0.0.1:${edgePort}`, { reconnect: false, protocolVersion: 4 });
  // The bridge is up once a probe crosses.
  for (let n = 0;; n++) {
    await publisher.publish("bench/probe", "p", { qos: 1 });
    const seen = await Promise.race([
      (async () => {
        for await (const _ of subscription) return true;
        return false;
      })(),
      new Promise<boolean>((r) => setTimeout(() => r(false), 200)),
    ]);
    if (seen) break;
    if (n > 100) throw new Error("the bridge did not come up");
  }
  let got = 0;
  let last = performance.now();
  const payload = new Uint8Array(64);
  const counted = (async () => {
    for await (const message of subscription) {
      if (message.topic !== "bench/load") continue;
      got++;
      last = performance.now();
      if (got === MESSAGES) return;
    }
  })();
  const began = performance.now();
  const pending = new Set<Promise<void>>();
  for (let i = 0; i < MESSAGES; i++) {
    const p = publisher.publish("bench/load", payload, { qos });
    if (qos > 0) {
      pending.add(p);
      void p.finally(() => pending.delete(p));
      if (pending.size >= WINDOW) await Promise.race(pending);
    } else if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 0));
  }
  await Promise.all(pending);
  // Whatever was going to arrive has, once nothing came for 2 s.
  await Promise.race([
    counted,
    (async () => {
      while (performance.now() - last < 2000) await new Promise((r) => setTimeout(r, 200));
    })(),
  ]);
  await publisher.close();
  await subscriber.close();
  return { rate: got / ((last - began) / 1000), got };
}

const rows: string[][] = [];
for (const qos of [1, 0] as const) {
  const results = new Map<string, { rate: number; got: number }[]>();
  for (let p = 0; p < PASSES; p++) {
    for (const edge of ["ours", "mosquitto"] as const) {
      const central = await mosquitto([]);
      const bridge = edge === "ours" ? await ours(central.port) : await mosquitto([
        "connection central",
        `address 127.0.0.1:${central.port}`,
        "topic bench/# out 1",
        "bridge_protocol_version mqttv311",
        "notifications false",
        "cleansession false",
        "max_queued_messages 100000",
      ]);
      try {
        const result = await pass(bridge.port, central.port, qos);
        results.set(edge, [...results.get(edge) ?? [], result]);
      } finally {
        await bridge.stop();
        await central.stop();
      }
    }
  }
  const best = (edge: string) => results.get(edge)!.reduce((a, b) => a.rate > b.rate ? a : b);
  const o = best("ours");
  const m = best("mosquitto");
  rows.push([
    `QoS ${qos} out, 64 B`,
    `${formatRate(o.rate)} (${o.got}/${MESSAGES})`,
    `${formatRate(m.rate)} (${m.got}/${MESSAGES})`,
    `${(o.rate / m.rate).toFixed(2)}x`,
  ]);
}
console.log(`${MESSAGES} messages a pass, best of ${PASSES}; edge broker bridging to a central mosquitto`);
console.log(formatTable(["case", "ours (Deno)", "mosquitto", "ours / mosquitto"], rows));
