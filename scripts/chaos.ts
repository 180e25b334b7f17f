/**
 * The chaos scenario of `tests/chaos/` at full size, as a report: for our broker and mosquitto, MQTT 5 and
 * 3.1.1, each pairing of publisher and subscriber (ours or MQTT.js), lost / QoS 2 duplicates / QoS 1
 * duplicates / rejected publishes / reconnects, in one run on this runtime. Not a test: it asserts nothing.
 *
 * Run from the repository root (node_modules installed, `PATH=node_modules/.bin:$PATH`, mosquitto on the
 * PATH for its rows):
 *
 *     node scripts/chaos.ts [--count 10000] [--seeds 3] [--profile fast|default] [--only ours|mosquitto]
 *     deno run -A scripts/chaos.ts [...]
 *     bun scripts/chaos.ts [...]
 *
 * The fast profile resets every connection every 50-200 ms with an unpaced publisher (at most 32 publishes
 * unsettled); the default one every 300-900 ms at 250 publishes/s. Each row sums `--seeds` runs.
 */

import process from "node:process";
import { Broker } from "../src/broker/broker.ts";
import { mosquittoMissing, startMosquitto } from "../tests/_mosquitto.ts";
import { type ChaosReport, type Peer, runChaos } from "../tests/chaos/_scenario.ts";

const args = process.argv.slice(2);
function option(name: string, fallback: string): string {
  const index = args.indexOf(`--${name}`);
  return index === -1 ? fallback : args[index + 1] ?? fallback;
}
const count = Number(option("count", "10000"));
const seeds = Number(option("seeds", "3"));
const fast = option("profile", "fast") === "fast";
const only = option("only", "");
const profile = fast
  ? { paceMs: 0, cutMinMs: 50, cutMaxMs: 200 }
  : { paceMs: 4, cutMinMs: 300, cutMaxMs: 900 };

interface Target {
  name: string;
  start(): Promise<{ port: number; stop(): Promise<void> }>;
}

const targets: Target[] = [];
if (only === "" || only === "ours") {
  targets.push({
    name: "our broker",
    async start() {
      const broker = new Broker({ sysInterval: 0 });
      const { port } = await broker.listen({ port: 0 });
      return { port, stop: () => broker.close() };
    },
  });
}
if ((only === "" || only === "mosquitto") && mosquittoMissing() === undefined) {
  targets.push({
    name: "mosquitto",
    async start() {
      const server = await startMosquitto(["max_queued_messages 0"]);
      return { port: server.port, stop: () => server.stop() };
    },
  });
}

const pairs: [Peer, Peer][] = [["ours", "ours"], ["ours", "mqttjs"], ["mqttjs", "ours"], [
  "mqttjs",
  "mqttjs",
]];
const rows: string[][] = [[
  "broker",
  "MQTT",
  "publisher / subscriber",
  "lost",
  "QoS 2 dup",
  "QoS 1 dup",
  "rejected",
  "unsettled",
  "reconnects",
  "cuts",
]];
let run = 0;
for (const target of targets) {
  for (const version of [5, 4] as const) {
    for (const [publisher, subscriber] of pairs) {
      const sum: ChaosReport[] = [];
      for (let seed = 1; seed <= seeds; seed++) {
        const broker = await target.start();
        try {
          sum.push(
            await runChaos({
              brokerPort: broker.port,
              version,
              publisher,
              subscriber,
              count,
              ...profile,
              seed,
              name: `chaos-report-${process.pid}-${run++}`,
            }),
          );
        } finally {
          await broker.stop();
        }
      }
      const total = (pick: (r: ChaosReport) => number) => String(sum.reduce((n, r) => n + pick(r), 0));
      const row = [
        target.name,
        version === 5 ? "5" : "3.1.1",
        `${publisher} / ${subscriber}`,
        total((r) => r.lost.length),
        total((r) => r.qos2Duplicates),
        total((r) => r.qos1Duplicates),
        total((r) => r.rejected),
        total((r) => r.unsettled),
        total((r) => r.publisherReconnects + r.subscriberReconnects),
        total((r) => r.cuts),
      ];
      rows.push(row);
      console.error(row.join(" | "));
    }
  }
}
console.log(
  `\n${seeds} runs of ${count} messages per row, ${fast ? "fast" : "default"} profile, on ${
    "Deno" in globalThis ? "Deno" : "Bun" in globalThis ? "Bun" : "Node"
  }\n`,
);
for (const [i, row] of rows.entries()) {
  console.log(`| ${row.join(" | ")} |`);
  if (i === 0) console.log(`|${row.map(() => "---").join("|")}|`);
}
process.exit(0);
