/**
 * The admin API of an HTTP listener (`/api/clients`, `/api/clients/:id`, `/api/sessions`, `/api/retained`):
 * refused without an admin user's credentials, JSON that tells what clients and sessions the broker holds and
 * never a password or a hash, and a client disconnected on request.
 */

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { Broker } from "../../src/broker/broker.ts";
import { hashPassword, parsePasswordFile } from "../../src/broker/password_file.ts";
import { connect } from "../../src/client/connect.ts";
import { startBroker } from "../_broker_process.ts";
import { sleep } from "../_helpers.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const basic = (user: string, password: string) => `Basic ${btoa(`${user}:${password}`)}`;

describe("the admin API", () => {
  const brokers: Broker[] = [];
  after(async () => {
    await Promise.all(brokers.map((broker) => broker.close()));
  });

  it("answers only an admin user, tells the clients, sessions and retained messages, and disconnects", async () => {
    const passwords = parsePasswordFile(
      `admin:${await hashPassword("s3cret")}\nada:${await hashPassword("ada-pw")}\n`,
    );
    const broker = new Broker({ sysInterval: 0, passwords, adminUsers: ["admin"] });
    brokers.push(broker);
    const mqtt = await broker.listen({ hostname: "127.0.0.1", port: 0 });
    const http = await broker.listen({ hostname: "127.0.0.1", port: 0, http: true });
    const api = (path: string, auth?: string, method = "GET") =>
      fetch(`http://127.0.0.1:${http.port}${path}`, {
        method,
        headers: auth === undefined ? {} : { authorization: auth },
      });

    // Refused: no credentials, a wrong password, a user who is no admin, garbage.
    for (
      const auth of [undefined, basic("admin", "wrong"), basic("ada", "ada-pw"), "Basic !!!", "Bearer x"]
    ) {
      for (const path of ["/api/clients", "/api/sessions", "/api/retained", "/api/clients/x"]) {
        const response = await api(path, auth, path.endsWith("/x") ? "DELETE" : "GET");
        assert.equal(response.status, 401, `${path} with ${auth}`);
        assert.match(response.headers.get("www-authenticate") ?? "", /^Basic realm=/);
        await response.body?.cancel();
      }
    }
    // A script that asks for credentials itself gets no challenge, so the browser does not prompt.
    const scripted = await fetch(`http://127.0.0.1:${http.port}/api/clients`, {
      headers: { "x-requested-with": "dashboard" },
    });
    assert.equal(scripted.status, 401);
    assert.equal(scripted.headers.get("www-authenticate"), null);
    await scripted.body?.cancel();

    const admin = basic("admin", "s3cret");
    let reason: number | undefined;
    let disconnected!: () => void;
    const closed = new Promise<void>((resolve) => disconnected = resolve);
    const client = await connect(`mqtt://ada@127.0.0.1:${mqtt.port}`, {
      clientId: "ada-1",
      password: "ada-pw",
      keepAlive: 30,
      reconnect: false,
      onStateChange: (event) => {
        if (event.type !== "disconnected") return;
        reason = event.error?.reasonCode;
        disconnected();
      },
    });
    await client.subscribe("a/#", { qos: 1 });
    const persistent = await connect(`mqtt://ada@127.0.0.1:${mqtt.port}`, {
      clientId: "away",
      password: "ada-pw",
      cleanStart: false,
      sessionExpiryInterval: 600,
      reconnect: false,
    });
    await persistent.subscribe("away/#", { qos: 1 });
    await persistent.close();
    await client.publish("away/1", "for later", { qos: 1 });
    await client.publish("kept/text", "hello", { qos: 1, retain: true });
    await client.publish("kept/binary", Uint8Array.of(0xff, 0, 1), { qos: 0, retain: true });
    await sleep(50);

    const clientsResponse = await api("/api/clients", admin);
    assert.equal(clientsResponse.status, 200);
    assert.match(clientsResponse.headers.get("content-type") ?? "", /^application\/json/);
    const clientsText = await clientsResponse.text();
    const clients = JSON.parse(clientsText);
    assert.equal(clients.length, 1);
    assert.equal(clients[0].clientId, "ada-1");
    assert.equal(clients[0].username, "ada");
    assert.equal(clients[0].protocolVersion, 5);
    assert.equal(clients[0].keepAlive, 30);
    assert.deepEqual(clients[0].subscriptions, ["a/#"]);
    assert.match(clients[0].address, /^127\.0\.0\.1:\d+$/);
    const one = await api("/api/clients/ada-1", admin);
    assert.deepEqual(await one.json(), clients[0]);
    const noOne = await api("/api/clients/nobody", admin);
    assert.equal(noOne.status, 404);
    await noOne.body?.cancel();
    // A broker with many clients answers a page with a few, and says how many there are.
    const second = await connect(`mqtt://ada@127.0.0.1:${mqtt.port}`, {
      clientId: "ada-2",
      password: "ada-pw",
    });
    const firstClients = await api("/api/clients?limit=1", admin);
    assert.equal(firstClients.headers.get("x-total-count"), "2");
    assert.deepEqual(await firstClients.json(), clients);
    const firstSessions = await api("/api/sessions?limit=2", admin);
    assert.equal(firstSessions.headers.get("x-total-count"), "3");
    assert.equal((await firstSessions.json()).length, 2);
    await second.close();
    const badLimit = await api("/api/clients?limit=-1", admin);
    assert.equal(badLimit.status, 400);
    await badLimit.body?.cancel();

    const sessions = await (await api("/api/sessions", admin)).json();
    const away = sessions.find((s: { clientId: string }) => s.clientId === "away");
    assert.deepEqual(away, {
      clientId: "away",
      connected: false,
      expiryInterval: 600,
      subscriptions: ["away/#"],
      queued: 1,
      inflight: 0,
    });
    assert.equal(sessions.find((s: { clientId: string }) => s.clientId === "ada-1").connected, true);

    const retained = await (await api("/api/retained", admin)).json();
    assert.deepEqual(
      retained.sort((x: { topic: string }, y: { topic: string }) => x.topic.localeCompare(y.topic)),
      [
        { topic: "kept/binary", qos: 0, size: 3, payloadBase64: "/wAB" },
        { topic: "kept/text", qos: 1, size: 5, payload: "hello" },
      ],
    );
    // A page asking every second takes a few, their payloads cut short; the header tells how many there are.
    const first = await api("/api/retained?limit=1&preview=2", admin);
    assert.equal(first.headers.get("x-total-count"), "2");
    const [cut] = await first.json();
    assert.deepEqual(
      cut,
      cut.topic === "kept/text"
        ? { topic: "kept/text", qos: 1, size: 5, payload: "he", truncated: true }
        : { topic: "kept/binary", qos: 0, size: 3, payloadBase64: "/wA=", truncated: true },
    );
    const bad = await api("/api/retained?limit=many", admin);
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    // Nothing holds a password or a hash.
    for (const text of [clientsText, JSON.stringify(sessions), JSON.stringify(retained)]) {
      assert.ok(!text.includes("ada-pw") && !text.includes("s3cret") && !text.includes("$7$"), text);
    }

    // Disconnecting a client: MQTT 5 clients are told 0x98, administrative action.
    const deleted = await api("/api/clients/ada-1", admin, "DELETE");
    assert.equal(deleted.status, 204);
    await closed;
    assert.equal(reason, 0x98);
    const gone = await api("/api/clients/ada-1", admin, "DELETE");
    assert.equal(gone.status, 404);
    await gone.body?.cancel();
    assert.deepEqual(await (await api("/api/clients", admin)).json(), []);
    const unknown = await api("/api/nothing", admin);
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
  });

  it("is off (403) without an admin user", async () => {
    const broker = new Broker({ sysInterval: 0 });
    brokers.push(broker);
    const http = await broker.listen({ hostname: "127.0.0.1", port: 0, http: true });
    const response = await fetch(`http://127.0.0.1:${http.port}/api/clients`, {
      headers: { authorization: basic("admin", "anything") },
    });
    assert.equal(response.status, 403);
    await response.body?.cancel();
  });

  it("broker.ts --admin-user names a user of the password file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "admin-"));
    try {
      const file = join(dir, "passwords");
      writeFileSync(file, `root:${await hashPassword("pw")}\n`);
      const running = await startBroker([
        "--port",
        "0",
        "--http-port",
        "0",
        "--password-file",
        file,
        "--admin-user",
        "root",
      ]);
      try {
        const port = Number(/http:\/\/127\.0\.0\.1:(\d+)/.exec(running.log())?.[1]);
        const refused = await fetch(`http://127.0.0.1:${port}/api/clients`);
        assert.equal(refused.status, 401);
        await refused.body?.cancel();
        const answered = await fetch(`http://127.0.0.1:${port}/api/clients`, {
          headers: { authorization: basic("root", "pw") },
        });
        assert.deepEqual(await answered.json(), []);
      } finally {
        running.child.kill("SIGTERM");
        await running.exited;
      }
      await assert.rejects(
        startBroker(["--port", "0", "--password-file", file, "--admin-user", "nobody"], 5000),
        /the admin user "nobody" is not in the password file/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
