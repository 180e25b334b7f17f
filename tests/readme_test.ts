/**
 * The README's "Install and use" program runs as written, on whichever runtime runs this file (the suite runs
 * it under Deno, Bun and Node), against our broker: only its import and the broker's port are replaced.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Broker } from "../src/broker/broker.ts";
import { within } from "./_helpers.ts";

const root = new URL("../", import.meta.url);

/** The first `ts` code block after a heading. */
function codeAfter(markdown: string, heading: string): string {
  const section = markdown.slice(markdown.indexOf(heading));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  if (match === null) throw new Error(`No ts code block after "${heading}"`);
  return match[1];
}

test("the README's program connects, subscribes, publishes and receives", async () => {
  const readme = readFileSync(new URL("README.md", root), "utf8");
  const code = codeAfter(readme, "## Install and use");
  assert.match(code, /from "@x\/mqtt"/);
  assert.match(code, /mqtt:\/\/127\.0\.0\.1:1883/);
  const broker = new Broker();
  const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
  const dir = mkdtempSync(join(tmpdir(), "readme-"));
  const logged: unknown[][] = [];
  const key = "__readmeLog";
  (globalThis as Record<string, unknown>)[key] = (...args: unknown[]) => logged.push(args);
  try {
    const file = join(dir, "example.ts");
    writeFileSync(
      file,
      code
        .replace(/from "@x\/mqtt"/, `from ${JSON.stringify(new URL("mod.ts", root).href)}`)
        .replace("mqtt://127.0.0.1:1883", `mqtt://127.0.0.1:${port}`)
        .replaceAll("console.log(", `(globalThis as any).${key}(`),
    );
    await within(import(pathToFileURL(file).href), 10_000, "the README's program");
    assert.deepEqual(logged, [["demo/1", "hello"]]);
  } finally {
    delete (globalThis as Record<string, unknown>)[key];
    rmSync(dir, { recursive: true, force: true });
    await broker.close();
  }
});

test("the README's bridge, in JSON and in mosquitto.conf, reads as the same bridge", async () => {
  const { parseBrokerConfig } = await import("../src/cli/broker_config.ts");
  const { parseMosquittoConf } = await import("../src/cli/mosquitto_conf.ts");
  const readme = readFileSync(new URL("README.md", root), "utf8");
  const section = readme.slice(readme.indexOf("## Bridges"));
  const json = /```json\n([\s\S]*?)```/.exec(section)?.[1];
  const conf = /```\n(listener[\s\S]*?)```/.exec(section)?.[1];
  assert.ok(json !== undefined && conf !== undefined, "both examples are in the Bridges section");
  const fromJson = parseBrokerConfig(json).bridges;
  const fromConf = parseMosquittoConf(conf, { hostname: "edge" }).bridges;
  assert.equal(fromJson?.length, 1);
  // The same but for the default client id, which a mosquitto.conf takes from the host name as mosquitto does.
  assert.deepEqual({ ...fromConf?.[0], clientId: undefined }, { ...fromJson?.[0], clientId: undefined });
});
