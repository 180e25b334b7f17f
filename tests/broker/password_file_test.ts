import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashPassword, parsePasswordFile, verifyPassword } from "../../src/broker/password_file.ts";
import { mosquittoMissing, startMosquitto } from "../_mosquitto.ts";
import { connect } from "../../src/client/connect.ts";
import { MqttError, ReasonCode } from "../../src/errors.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

// Written by `mosquitto_passwd -b` (2.0.11): PBKDF2-SHA512 with 101 iterations.
const MOSQUITTO_LINES = `
# a comment
ada:$7$101$RJ6VmqK8jouGS69u$vtT77GimjGO9Ihd6WuoGKw5fXVtRIbM02V4ggdyqvD/Kth2OYeREU/fPtQNfY6WN5P7VU/RlDZTCIN4tuK2f5A==
bob:$7$101$WqV/TtHQ3DuUXRPG$hMyk5px6R4EALlwFprTP74RlbQ84wZa5ypEK5OYjy89TpqmI8QU7D8EnAs2Y4LnMX5g7MJIbj50+jQHtwdGmPw==
`;

test("lines written by mosquitto_passwd verify with WebCrypto", async () => {
  const users = parsePasswordFile(MOSQUITTO_LINES);
  assert.deepEqual([...users.keys()], ["ada", "bob"]);
  assert.equal(await verifyPassword(users.get("ada")!, bytes("secret pw")), true);
  assert.equal(await verifyPassword(users.get("bob")!, bytes("hunter2")), true);
  assert.equal(await verifyPassword(users.get("ada")!, bytes("secret pw ")), false);
  assert.equal(await verifyPassword(users.get("bob")!, bytes("")), false);
});

test("$6$ (SHA-512, mosquitto 1.6) lines verify too", async () => {
  const salt = bytes("0123456789ab");
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-512", new Uint8Array([...bytes("pw"), ...salt])),
  );
  const b64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));
  const users = parsePasswordFile(`old:$6$${b64(salt)}$${b64(digest)}`);
  assert.equal(await verifyPassword(users.get("old")!, bytes("pw")), true);
  assert.equal(await verifyPassword(users.get("old")!, bytes("px")), false);
});

test("bad lines are refused with their line number", () => {
  assert.throws(() => parsePasswordFile("\nnocolon\n"), /line 2/);
  assert.throws(() => parsePasswordFile("u:plaintext"), /line 1 for "u"/);
  assert.throws(() => parsePasswordFile("u:$7$x$AAAA$AAAA"), /iteration count/);
  assert.throws(() => parsePasswordFile("u:$7$101$!!$AAAA"), /not base64/);
});

test("hashPassword writes $7$ lines that verify", async () => {
  const line = await hashPassword("correct horse");
  assert.match(line, /^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/);
  const users = parsePasswordFile(`me:${line}`);
  assert.equal(await verifyPassword(users.get("me")!, bytes("correct horse")), true);
});

test("mosquitto accepts a password file written by hashPassword", { skip: mosquittoMissing() }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-"));
  const file = join(dir, "passwords");
  writeFileSync(file, `ada:${await hashPassword("from x/mqtt")}\n`);
  const broker = await startMosquitto(["allow_anonymous false", `password_file ${file}`]);
  try {
    const client = await connect(`mqtt://ada:${encodeURIComponent("from x/mqtt")}@127.0.0.1:${broker.port}`, {
      reconnect: false,
      protocolVersion: 4,
    });
    await client.close();
    await assert.rejects(
      connect(`mqtt://ada:wrong@127.0.0.1:${broker.port}`, { reconnect: false, protocolVersion: 4 }),
      // mosquitto 2.0 answers a wrong password with return code 5, "not authorized".
      (e) => e instanceof MqttError && e.reasonCode === ReasonCode.NotAuthorized,
    );
  } finally {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a file written by mosquitto_passwd here verifies", { skip: mosquittoMissing() }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-"));
  const file = join(dir, "passwords");
  const result = spawnSync("mosquitto_passwd", ["-c", "-b", file, "carol", "p@ss word"]);
  assert.equal(result.status, 0, String(result.stderr));
  const users = parsePasswordFile(readFileSync(file, "utf8"));
  assert.equal(await verifyPassword(users.get("carol")!, bytes("p@ss word")), true);
  rmSync(dir, { recursive: true, force: true });
});
