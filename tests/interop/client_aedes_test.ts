/**
 * The client against aedes, a Node broker, over WebSocket (Debian's mosquitto has no WebSocket listener) and
 * TCP, in-process with the `ws` package.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { Aedes } from "aedes";
import { createWebSocketStream, WebSocketServer } from "ws";
import { connect } from "../../src/client/connect.ts";
import { take } from "../_helpers.ts";

describe("the client against aedes", () => {
  let broker: Aedes;
  let tcp: Server;
  let http: HttpServer;
  let wss: WebSocketServer;
  let tcpPort = 0;
  let wsPort = 0;

  before(async () => {
    broker = await Aedes.createBroker();
    tcp = createServer(broker.handle);
    await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
    tcpPort = (tcp.address() as { port: number }).port;
    http = createHttpServer();
    wss = new WebSocketServer({
      server: http,
      handleProtocols: (protocols) => protocols.has("mqtt") ? "mqtt" : false,
    });
    wss.on("connection", (socket) => broker.handle(createWebSocketStream(socket) as never));
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    wsPort = (http.address() as { port: number }).port;
  });

  after(async () => {
    for (const client of wss.clients) client.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    await new Promise<void>((resolve) => http.close(() => resolve()));
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  });

  for (const scheme of ["ws", "mqtt"] as const) {
    test(`${scheme}://: QoS 0, 1 and 2 publish and subscribe with MQTT 3.1.1`, async () => {
      const url = scheme === "ws" ? `ws://127.0.0.1:${wsPort}/mqtt` : `mqtt://127.0.0.1:${tcpPort}`;
      const client = await connect(url, { protocolVersion: 4, reconnect: false });
      const subscription = await client.subscribe(`aedes/${scheme}/#`, { qos: 2 });
      for (const qos of [0, 1, 2] as const) {
        await client.publish(`aedes/${scheme}/${qos}`, `q${qos}`, { qos });
      }
      const messages = await take(subscription, 3);
      assert.deepEqual(messages.map((m) => m.text()).sort(), ["q0", "q1", "q2"]);
      await client.close();
    });
  }
});
