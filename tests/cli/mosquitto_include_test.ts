/**
 * mosquitto.conf's `include_dir` (`src/cli/mosquitto_include.ts`): the files of the directory that end in
 * `.conf`, in mosquitto's order, spliced in place of the line, and messages naming each line by its own file;
 * then `broker.ts -c` with a main file that includes, as Debian's default mosquitto.conf does.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { readMosquittoConf } from "../../src/cli/mosquitto_include.ts";
import { parseMosquittoConf } from "../../src/cli/mosquitto_conf.ts";
import { ReasonCode } from "../../src/errors.ts";
import { startBroker } from "../_broker_process.ts";
import { freePort } from "../_mosquitto.ts";
import { rawConnect } from "../_raw_client.ts";

/** A file system of a few files, for `readMosquittoConf`. */
function files(tree: Record<string, string>) {
  const encoder = new TextEncoder();
  return {
    readDir: (dir: string) => {
      const names = Object.keys(tree).filter((path) => path.startsWith(`${dir}/`)).map((path) =>
        path.slice(dir.length + 1)
      );
      return names.length > 0 ? Promise.resolve(names) : Promise.reject(new Error("No such directory"));
    },
    readFile: (path: string) =>
      path in tree ? Promise.resolve(encoder.encode(tree[path])) : Promise.reject(new Error("No such file")),
  };
}

test("readMosquittoConf() splices the directory's .conf files in, capitals first, and names lines by file", async () => {
  const conf = await readMosquittoConf(
    "main.conf",
    "listener 1883\ninclude_dir conf.d\nsys_interval 5",
    files({
      "conf.d/b.conf": "max_keepalive 30\n",
      "conf.d/B.conf": "# capitals first\n",
      "conf.d/a.conf": "max_queued_messages 10",
      "conf.d/notes.txt": "not read",
    }),
  );
  assert.deepEqual(conf.text.split("\n"), [
    "listener 1883",
    "# capitals first",
    "",
    "max_queued_messages 10",
    "max_keepalive 30",
    "",
    "sys_interval 5",
  ]);
  const parsed = parseMosquittoConf(conf.text, { hostname: "h" });
  assert.equal(parsed.limits.maxKeepAlive, 30);
  assert.equal(parsed.limits.maxQueuedMessages, 10);
  assert.equal(parsed.sysInterval, 5);
  assert.equal(conf.locate("line 5: x (line 7)"), "conf.d/b.conf, line 1: x (main.conf, line 3)");
  // A key given twice across files is named in both.
  const twice = await readMosquittoConf(
    "main.conf",
    "sys_interval 5\ninclude_dir d",
    files({ "d/x.conf": "\nsys_interval 6" }),
  );
  assert.throws(
    () => parseMosquittoConf(twice.text, { hostname: "h" }),
    (error: Error) => /^d\/x\.conf, line 2: sys_interval is given twice/.test(twice.locate(error.message)),
  );
});

test("readMosquittoConf() refuses an include_dir in an included file, and a directory it cannot read", async () => {
  await assert.rejects(
    readMosquittoConf("main.conf", "include_dir d", files({ "d/x.conf": "include_dir e" })),
    /^Error: d\/x\.conf, line 1: include_dir is read in the main configuration file only/,
  );
  await assert.rejects(
    readMosquittoConf("main.conf", "\ninclude_dir missing", files({})),
    /^Error: main\.conf, line 2: cannot read include_dir "missing": No such directory/,
  );
});

test("broker.ts -c mosquitto.conf reads the files of its include_dir, and names an included file's bad line", async () => {
  const dir = mkdtempSync(join(tmpdir(), "include-"));
  try {
    const port = await freePort();
    mkdirSync(join(dir, "conf.d"));
    writeFileSync(join(dir, "conf.d", "limits.conf"), "max_keepalive 30\n");
    writeFileSync(join(dir, "conf.d", "README"), "not a configuration file\n");
    const main = join(dir, "mosquitto.conf");
    writeFileSync(
      main,
      `listener ${port} 127.0.0.1\nallow_anonymous true\ninclude_dir ${join(dir, "conf.d")}\n`,
    );
    const broker = await startBroker(["-c", main]);
    try {
      const v5 = await rawConnect(port, { clientId: "v5", keepAlive: 60 }, 5);
      assert.equal(v5.connack.reasonCode, ReasonCode.Success, broker.log());
      assert.equal(v5.connack.properties?.serverKeepAlive, 30, broker.log());
      v5.close();
    } finally {
      broker.child.kill("SIGTERM");
      await broker.exited;
    }

    writeFileSync(join(dir, "conf.d", "zz.conf"), "\nsys_interval soon\n");
    const script = new URL("../../broker.ts", import.meta.url).pathname;
    const prefix = "Deno" in globalThis ? ["run", "-A", script] : [script];
    const result = spawnSync(process.execPath, [...prefix, "-c", main], {
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(result.status, 1);
    assert.ok(
      result.stderr.includes(`${join(dir, "conf.d", "zz.conf")}, line 2: sys_interval takes a whole number`),
      result.stderr,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
