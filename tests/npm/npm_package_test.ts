/**
 * The npm package as a Node user meets it: built, packed with `npm pack`, installed into a scratch project
 * from the tarball; its ESM entry points run a broker and a client, its `x-mqtt` command serves and
 * publishes, and its declarations type-check a user's TypeScript (and reject a wrong call).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { freePort } from "../_mosquitto.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const isNode = !("Deno" in globalThis) && !("Bun" in globalThis);

function sh(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: "utf8" });
  assert.equal(result.status, 0, `${command} ${args.join(" ")}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

test("npm package: pack, install, ESM import, x-mqtt command and types", {
  skip: isNode ? false : "the npm package is Node's (this runs under Node in the same suite)",
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-npm-"));
  try {
    const build = join(dir, "build");
    sh(process.execPath, [join(root, "scripts", "build_npm.ts"), "--out", build], root);
    sh("npm", ["pack", "--pack-destination", dir], build);
    const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
    assert.ok(tarball, "npm pack made a tarball");
    const app = join(dir, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    sh("npm", ["install", "--no-audit", "--no-fund", "--offline", join(dir, tarball)], app);

    // ESM: a broker and a client from the package talk.
    writeFileSync(
      join(app, "main.js"),
      `import { connect } from "@x/mqtt";
import { Broker } from "@x/mqtt/broker";
import { encode } from "@x/mqtt/codec";
const broker = new Broker({ sysInterval: 0 });
const { port } = await broker.listen({ port: 0 });
const client = await connect("mqtt://127.0.0.1:" + port, { reconnect: false });
const subscription = await client.subscribe("npm/#", { qos: 1 });
await client.publish("npm/test", "from the package", { qos: 1 });
for await (const message of subscription) { console.log(message.topic + " " + message.text()); break; }
console.log(encode({ type: "pingreq" }, 5).length);
await client.close();
await broker.close();
`,
    );
    assert.equal(sh(process.execPath, ["main.js"], app), "npm/test from the package\n2\n");

    // The command: a broker, and pub / sub against it.
    const port = await freePort();
    const bin = join(app, "node_modules", ".bin", "x-mqtt");
    const broker = spawn(bin, ["broker", "--port", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    broker.stderr.on("data", (d) => log += d);
    const exited = new Promise((resolve) => broker.once("close", resolve));
    try {
      for (let i = 0; i < 100 && !log.includes("listening on"); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(log, /listening on mqtt:\/\/127\.0\.0\.1/);
      const sub = new Promise<string>((resolve) => {
        const child = spawn(bin, ["sub", "-p", String(port), "-t", "cli/#", "-C", "1", "-W", "10"]);
        let out = "";
        child.stdout.on("data", (d) => out += d);
        child.once("close", () => resolve(out));
      });
      await new Promise((r) => setTimeout(r, 500));
      sh(bin, ["pub", "-p", String(port), "-t", "cli/x", "-m", "via x-mqtt", "-q", "1"], app);
      assert.equal(await sub, "via x-mqtt\n");
    } finally {
      broker.kill("SIGTERM");
      await exited;
    }
    assert.match(sh(bin, ["--help"], app), /x-mqtt <command>/);

    // Types: a user's TypeScript checks against the declarations; a wrong call does not.
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    const options = [
      "--noEmit",
      "--strict",
      "--module",
      "nodenext",
      "--moduleResolution",
      "nodenext",
      "--target",
      "es2022",
      "--lib",
      "es2023,dom,esnext.disposable",
    ];
    writeFileSync(
      join(app, "good.ts"),
      `import { connect, type MqttClient, ReasonCode } from "@x/mqtt";
import { Broker, type BrokerOptions } from "@x/mqtt/broker";
import { PacketDecoder, type Packet } from "@x/mqtt/codec";
const options: BrokerOptions = { maxConnections: 10, authenticate: (client) => client.username === "ada" };
export const broker: Broker = new Broker(options);
export async function go(): Promise<number> {
  const client: MqttClient = await connect("mqtt://127.0.0.1", { protocolVersion: 5, keepAlive: 30 });
  await client.publish("t", "x", { qos: 1 });
  const packet: Packet | undefined = new PacketDecoder({ version: 5 }).next();
  return packet === undefined ? ReasonCode.Success : 1;
}
`,
    );
    sh(process.execPath, [tsc, ...options, "good.ts"], app);
    writeFileSync(join(app, "bad.ts"), `import { connect } from "@x/mqtt";\nawait connect(42);\n`);
    const bad = spawnSync(process.execPath, [tsc, ...options, "bad.ts"], { cwd: app, encoding: "utf8" });
    assert.notEqual(bad.status, 0, "a wrong call is a type error");
    assert.match(bad.stdout, /bad\.ts.*TS2345/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
