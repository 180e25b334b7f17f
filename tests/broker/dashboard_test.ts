/**
 * The dashboard page of an HTTP listener, in headless Chromium (Debian's; the test says it skips without it):
 * the page loads our browser bundle from the broker, connects back over `/mqtt`, asks for an admin user's
 * credentials, then shows the connected clients, the message rates as a plot, the retained messages' topic
 * tree and the `$SYS` values, every second, while clients publish at a known rate. Its screenshot goes to a
 * temporary directory, whose path the test prints.
 */

import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Broker } from "../../src/broker/broker.ts";
import { CLIENT_BUNDLE } from "../../src/broker/dashboard/client_bundle.ts";
import { hashPassword, parsePasswordFile } from "../../src/broker/password_file.ts";
import { connect } from "../../src/client/connect.ts";
import type { MqttClient } from "../../src/client/mqtt_client.ts";
import { type BrowserPage, chromiumPath, openPage } from "../_chromium.ts";
import { sleep } from "../_helpers.ts";

/** Publishes QoS 1 messages at about `perSecond` until stopped; how many it published. */
function publishAt(client: MqttClient, topic: string, perSecond: number) {
  let stopped = false;
  let sent = 0;
  const done = (async () => {
    const start = performance.now();
    while (!stopped) {
      await client.publish(topic, String(sent), { qos: 1 });
      sent++;
      const due = start + (sent * 1000) / perSecond;
      await sleep(Math.max(0, due - performance.now()));
    }
  })();
  return async () => {
    stopped = true;
    await done;
    return sent;
  };
}

describe(
  "the dashboard page",
  { skip: chromiumPath === undefined ? "Chromium is not installed" : false },
  () => {
    const brokers: Broker[] = [];
    const clients: MqttClient[] = [];
    const pages: BrowserPage[] = [];
    after(async () => {
      await Promise.all(pages.map((page) => page.close()));
      await Promise.all(clients.map((client) => client.close().catch(() => {})));
      await Promise.all(brokers.map((broker) => broker.close()));
    });

    it("serves the page and the bundle, with headers that keep the page to its own listener", async () => {
      const broker = new Broker({ sysInterval: 0 });
      brokers.push(broker);
      const http = await broker.listen({ hostname: "127.0.0.1", port: 0, http: true });
      const page = await fetch(`http://127.0.0.1:${http.port}/`);
      assert.equal(page.status, 200);
      assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
      assert.match(page.headers.get("content-security-policy") ?? "", /connect-src 'self'/);
      assert.match(await page.text(), /import \{ connect \} from "\/mqtt\.min\.js"/);
      const bundle = await fetch(`http://127.0.0.1:${http.port}/mqtt.min.js`);
      assert.equal(bundle.headers.get("content-type"), "text/javascript; charset=utf-8");
      assert.equal(await bundle.text(), CLIENT_BUNDLE);
      const post = await fetch(`http://127.0.0.1:${http.port}/`, { method: "POST" });
      assert.equal(post.status, 405);
      await post.body?.cancel();
    });

    it("shows its bridges with their state and what they carried, from /metrics (no sign-in)", async () => {
      const remote = new Broker({ sysInterval: 0 });
      brokers.push(remote);
      const { port } = await remote.listen({ hostname: "127.0.0.1", port: 0 });
      const broker = new Broker({
        sysInterval: 0,
        bridges: [{
          name: "cloud",
          urls: [`mqtt://127.0.0.1:${port}`],
          topics: [{ pattern: "up/#", direction: "out", qos: 1 }],
        }],
      });
      brokers.push(broker);
      const mqtt = await broker.listen({ hostname: "127.0.0.1", port: 0 });
      const http = await broker.listen({ hostname: "127.0.0.1", port: 0, http: true });
      const publisher = await connect(`mqtt://127.0.0.1:${mqtt.port}`, { reconnect: false });
      clients.push(publisher);
      const page = await openPage(`http://127.0.0.1:${http.port}/`);
      pages.push(page);
      for (let n = 0; n < 3; n++) await publisher.publish(`up/${n}`, "x", { qos: 1 });
      await page.waitFor(
        `document.querySelector('#bridges tr[data-bridge="cloud"] td:nth-child(3)')?.textContent === "3"`,
        "the bridge's row with 3 sent",
      );
      const row = await page.evaluate<string[]>(
        `[...document.querySelector('#bridges tr[data-bridge="cloud"]').cells].map((td) => td.textContent)`,
      );
      assert.deepEqual(row, ["cloud", "connected", "3", "0", "0", "0"]);
      assert.equal(await page.evaluate(`document.getElementById("bridges-section").hidden`), false);
    });

    it("shows the clients, the rates, the retained messages and $SYS live, to an admin user", async () => {
      const passwords = parsePasswordFile(
        `admin:${await hashPassword("s3cret")}\nada:${await hashPassword("ada-pw")}\n`,
      );
      const broker = new Broker({ sysInterval: 1, passwords, adminUsers: ["admin"] });
      brokers.push(broker);
      const mqtt = await broker.listen({ hostname: "127.0.0.1", port: 0 });
      const http = await broker.listen({ hostname: "127.0.0.1", port: 0, http: true });
      const url = `mqtt://127.0.0.1:${mqtt.port}`;
      const as = { username: "ada", password: "ada-pw", reconnect: false };

      const five = await connect(url, { ...as, clientId: "ada-v5", keepAlive: 42 });
      const four = await connect(url, { ...as, clientId: "bob-v311", protocolVersion: 4, keepAlive: 17 });
      const publisher = await connect(url, { ...as, clientId: "publisher" });
      clients.push(five, four, publisher);
      const subscriptions = [
        await five.subscribe("plant/#", { qos: 1 }),
        await four.subscribe("plant/+/temp", { qos: 1 }),
      ];
      // Both read all they get, so nothing queues; each loop ends with its client's connection.
      const drained = subscriptions.map(async (subscription) => {
        try {
          for await (const _ of subscription);
        } catch { /* the connection was closed */ }
      });
      await publisher.publish("plant/1/temp", "21.5", { retain: true, qos: 1 });
      await publisher.publish("plant/2/humidity", "48 %", { retain: true });
      await publisher.publish("status", new Uint8Array([0xff, 0x00]), { retain: true });
      // What clients send is shown as text, never run as markup.
      await publisher.publish("x/<img src=x onerror=window.pwned=1>", "<b onclick=window.pwned=2>", {
        retain: true,
      });
      // 40 messages a second, each delivered to both subscribers: about 40 in and 80 out per second, plus the
      // page's own $SYS deliveries.
      const stop = publishAt(publisher, "plant/3/temp", 40);

      try {
        const page = await openPage(`http://127.0.0.1:${http.port}/`);
        pages.push(page);

        // Without credentials, the page gets nothing from the API and asks for them.
        await page.waitFor(`!document.getElementById("login").hidden`, "the sign-in form");
        assert.equal(await page.evaluate(`document.querySelectorAll("#clients tbody tr").length`), 0);
        assert.match(
          await page.evaluate<string>(`document.getElementById("login-why").textContent`),
          /MQTT|admin/,
        );

        await page.evaluate(`(() => {
        document.getElementById("user").value = "admin";
        document.getElementById("password").value = "s3cret";
        document.getElementById("login").requestSubmit();
      })()`);
        await page.waitFor(`window.dashboard.mqtt === "connected"`, "the page's MQTT connection");
        await page.waitFor(
          `document.querySelectorAll("#clients tbody tr").length === 4`,
          "four clients listed",
        );
        // Signed in for good: the connection it replaced ended without a word of it on the page.
        assert.equal(await page.evaluate(`document.getElementById("login").hidden`), true);
        assert.equal(await page.evaluate(`document.getElementById("mqtt").textContent`), "MQTT connected");
        // Five seconds of rates at least.
        await page.waitFor(`window.dashboard.rates.in.length >= 5`, "five seconds of rates");

        // The clients table.
        const rows = await page.evaluate<string[][]>(`[...document.querySelectorAll("#clients tbody tr")]
        .map((tr) => [...tr.cells].slice(0, 8).map((td) => td.textContent))`);
        const byId = new Map(rows.map((row) => [row[0].replace(/ \(this page\)$/, ""), row]));
        const pageId = await page.evaluate<string>(`window.dashboard.clientId`);
        assert.deepEqual([...byId.keys()].sort(), ["ada-v5", "bob-v311", pageId, "publisher"].sort());
        const [, address, user, protocol, keepAlive, filters, queued] = byId.get("ada-v5")!;
        assert.match(address, /^127\.0\.0\.1:\d+$/);
        assert.deepEqual([user, protocol, keepAlive, filters, queued], [
          "ada",
          "5.0",
          "42 s",
          "plant/#",
          "0",
        ]);
        assert.deepEqual(byId.get("bob-v311")!.slice(2, 6), ["ada", "3.1.1", "17 s", "plant/+/temp"]);
        assert.deepEqual(byId.get(pageId)!.slice(2, 6), ["admin", "5.0", "30 s", "$SYS/#"]);
        assert.equal(byId.get(pageId)![0], `${pageId} (this page)`);

        // The plot: its data is the rates, and its lines are drawn from that data.
        const plot = await page.evaluate<{ in: string; out: string; max: string; inPoints: string }>(`({
        in: document.getElementById("rate-in").dataset.values,
        out: document.getElementById("rate-out").dataset.values,
        max: document.getElementById("plot").dataset.max,
        inPoints: document.getElementById("rate-in").getAttribute("points"),
      })`);
        const rates = (text: string) => text.split(",").map(Number);
        // The first second may be partial (the page opened mid-way); the ones after it are whole.
        const inRates = rates(plot.in).slice(1);
        const outRates = rates(plot.out).slice(1);
        assert.ok(inRates.length >= 3, plot.in);
        for (const rate of inRates) assert.ok(rate >= 20 && rate <= 60, `in: ${plot.in}`);
        // Each second's deliveries: two per message, and the few $SYS values that changed, to the page.
        outRates.forEach((rate, i) =>
          assert.ok(
            rate >= 1.6 * inRates[i] && rate <= 2 * inRates[i] + 30,
            `in: ${plot.in}, out: ${plot.out}`,
          )
        );
        const points = plot.inPoints.split(" ").map((p) => p.split(",").map(Number));
        assert.equal(points.length, rates(plot.in).length);
        const lastValue = rates(plot.in).at(-1)!;
        // y = 190 - value / max × 180 (the SVG is 200 high with a 10 margin), to within rounding.
        assert.ok(
          Math.abs(points.at(-1)![1] - (190 - (lastValue / Number(plot.max)) * 180)) <= 1,
          plot.inPoints,
        );
        assert.equal(points.at(-1)![0], 900);

        // The topic tree of retained messages.
        const tree = await page.evaluate<Record<string, string>>(`Object.fromEntries(
        [...document.querySelectorAll("#tree [data-topic]")].map((n) => [n.dataset.topic,
          (n.matches("details") ? n.querySelector("summary") : n).textContent]))`);
        assert.match(tree["plant/1/temp"], /^temp 21\.5 QoS 1, 4 B$/);
        assert.match(tree["plant/2/humidity"], /^humidity 48 % QoS 0, 4 B$/);
        assert.match(tree["status"], /^status base64:\/wA= QoS 0, 2 B$/);
        assert.equal(tree["plant"], "plant");
        assert.equal(
          tree["x/<img src=x onerror=window.pwned=1>"],
          "<img src=x onerror=window.pwned=1> <b onclick=window.pwned=2> QoS 0, 26 B",
        );
        assert.equal(
          await page.evaluate(`window.pwned ?? document.querySelectorAll("#tree img, #tree b").length`),
          0,
        );

        // $SYS, over MQTT.
        await page.waitFor(
          `window.dashboard.sys["$SYS/broker/clients/connected"] === "4"`,
          "$SYS clients/connected 4",
        );
        const sys = await page.evaluate<string[][]>(`[...document.querySelectorAll("#sys tr")]
        .map((tr) => [...tr.cells].map((td) => td.textContent))`);
        assert.ok(
          sys.some(([topic, value]) => topic === "clients/connected" && value === "4"),
          JSON.stringify(sys),
        );

        const dir = mkdtempSync(join(tmpdir(), "mqtt-dashboard-"));
        const png = await page.screenshot();
        assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
        assert.ok(png.length > 20_000, `a screenshot of ${png.length} bytes`);
        writeFileSync(join(dir, "dashboard.png"), png);
        console.log(`dashboard screenshot: ${join(dir, "dashboard.png")}`);

        // Disconnecting a client from its row.
        await page.evaluate(`(() => {
        window.confirm = () => true;
        document.querySelector('#clients tr[data-client="bob-v311"] button').click();
      })()`);
        await drained[1];
        await page.waitFor(
          `document.querySelector('#clients tr[data-client="bob-v311"]') === null`,
          "bob-v311 gone from the table",
        );
      } finally {
        await stop();
      }
    });
  },
);
