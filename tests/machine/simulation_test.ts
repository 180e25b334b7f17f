/**
 * A seeded simulation: ClientMachines talk to SessionMachines attached to one BrokerMachine over a link that
 * drops connections at random points (bytes in transit are lost), and the clients reconnect and resume their
 * sessions. Whatever the seed, every QoS 1 message arrives at least once, every QoS 2 message exactly once,
 * in order per publisher and QoS, and no state is left behind once everything settles.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { ClientMachine } from "../../src/machine/client_machine.ts";
import { BrokerMachine, type BrokerMachineOptions } from "../../src/machine/broker_machine.ts";
import { type SessionEvent, SessionMachine } from "../../src/machine/session_machine.ts";
import type { ProtocolVersion, QoS } from "../../src/codec/packet.ts";
import { seededRandom } from "../_random.ts";

interface Link {
  session: SessionMachine;
  /** Chunks on their way, lost if the link drops. */
  toBroker: Uint8Array[];
  toClient: Uint8Array[];
}

interface Node {
  name: string;
  client: ClientMachine;
  link: Link | undefined;
  /** When to reconnect after a drop. */
  reconnectAt: number;
}

class Simulation {
  now = 0;
  readonly broker: BrokerMachine;
  readonly nodes: Node[] = [];
  readonly rand: () => number;
  readonly version: ProtocolVersion;
  drops = 0;

  constructor(seed: number, version: ProtocolVersion, options: BrokerMachineOptions = {}) {
    this.broker = new BrokerMachine(options);
    this.rand = seededRandom(seed);
    this.version = version;
  }

  add(name: string): Node {
    const node: Node = {
      name,
      client: new ClientMachine({ clientId: name, protocolVersion: this.version, keepAlive: 30 }),
      link: undefined,
      reconnectAt: 0,
    };
    this.nodes.push(node);
    this.open(node);
    return node;
  }

  open(node: Node): void {
    const session = new SessionMachine(this.now);
    node.link = { session, toBroker: [], toClient: [] };
    node.client.connect(this.now, {
      cleanStart: false,
      properties: this.version === 5 ? { sessionExpiryInterval: 3600 } : undefined,
    });
  }

  drop(node: Node): void {
    const link = node.link;
    if (link === undefined) return;
    this.drops++;
    node.link = undefined;
    link.toBroker = [];
    link.toClient = [];
    node.client.handleClose(this.now);
    link.session.handleClose(this.now);
    this.drainSession(node, link);
    node.reconnectAt = this.now + 1 + Math.floor(this.rand() * 50);
  }

  /** Moves output into the link queues and runs the session driver. */
  step(deliverAll = false): boolean {
    let busy = false;
    for (let s = this.broker.pollSession(); s !== undefined; s = this.broker.pollSession()) busy = true;
    for (const node of this.nodes) {
      const link = node.link;
      if (link === undefined) continue;
      for (let b = node.client.pollTransmit(); b; b = node.client.pollTransmit()) link.toBroker.push(b);
      if (this.drainSession(node, link)) busy = true;
      // Deliver some (or all) of what is in transit, in order, as TCP would.
      while (link.toBroker.length > 0 && (deliverAll || this.rand() < 0.7)) {
        busy = true;
        link.session.handleBytes(this.now, link.toBroker.shift() as Uint8Array);
        this.drainSession(node, link);
      }
      while (link.toClient.length > 0 && (deliverAll || this.rand() < 0.7)) {
        busy = true;
        node.client.handleBytes(this.now, link.toClient.shift() as Uint8Array);
      }
      if (link.toBroker.length > 0 || link.toClient.length > 0) busy = true;
    }
    return busy;
  }

  drainSession(node: Node, link: Link): boolean {
    let busy = false;
    const session = link.session;
    for (let b = session.pollTransmit(); b; b = session.pollTransmit()) {
      if (node.link === link) link.toClient.push(b);
      busy = true;
    }
    for (let e = session.pollEvent(); e; e = session.pollEvent()) {
      busy = true;
      this.dispatch(session, e);
    }
    return busy;
  }

  dispatch(session: SessionMachine, event: SessionEvent): void {
    switch (event.type) {
      case "connect":
        this.broker.attach(this.now, session);
        return;
      case "publish":
        // Routed, and acknowledged once every session it went to holds it (as the broker driver does).
        this.broker.publish(this.now, session, event.packet);
        return;
      case "subscribe":
        this.broker.subscribe(this.now, session, event.packet);
        return;
      case "unsubscribe":
        this.broker.unsubscribe(this.now, session, event.packet);
        return;
      case "auth":
        return;
      case "closed":
        this.broker.detach(this.now, session);
        return;
    }
  }

  /** Runs until nothing moves (bounded). */
  settle(deliverAll: boolean): void {
    for (let i = 0; i < 10_000; i++) {
      if (!this.step(deliverAll)) return;
    }
    throw new Error("The simulation did not settle");
  }

  tick(): void {
    this.now += 1 + Math.floor(this.rand() * 5);
    for (const node of this.nodes) {
      if (node.link === undefined && node.client.state !== "connecting" && this.now >= node.reconnectAt) {
        this.open(node);
      }
      node.client.handleTimeout(this.now);
      node.link?.session.handleTimeout(this.now);
    }
    this.broker.handleTimeout(this.now);
  }
}

/**
 * One run. `burst` publishes per publisher and round at most (1 by default, with half a chance); with a small
 * `maxQueuedMessages`, the subscriber's queue passes its bounds whenever it is away, as when an unpaced
 * publisher meets a subscriber that reconnects.
 */
function run(seed: number, version: ProtocolVersion, burst = 1, options: BrokerMachineOptions = {}): void {
  const sim = new Simulation(seed, version, options);
  const subscriber = sim.add("subscriber");
  sim.settle(true);
  subscriber.client.subscribe(sim.now, [{ topicFilter: "sim/#", qos: 2 }]);
  sim.settle(true);
  const publishers = ["p1", "p2", "p3"].map((name) => sim.add(name));
  sim.settle(true);

  const sent = new Map<string, { qos: QoS }>();
  const received: string[] = [];
  const collect = () => {
    for (const node of sim.nodes) {
      for (let e = node.client.pollEvent(); e; e = node.client.pollEvent()) {
        if (e.type === "message" && node === subscriber) {
          received.push(new TextDecoder().decode(e.packet.payload));
        }
      }
    }
  };
  const counters = new Map<string, number>();
  for (let round = 0; round < 400; round++) {
    for (const node of publishers) {
      if (node.client.state !== "connected" || sim.rand() < 0.5) continue;
      const times = 1 + Math.floor(sim.rand() * burst);
      for (let i = 0; i < times; i++) {
        const qos = (1 + Math.floor(sim.rand() * 2)) as QoS;
        const n = (counters.get(node.name) ?? 0) + 1;
        counters.set(node.name, n);
        const id = `${node.name}:${qos}:${n}`;
        node.client.publish(sim.now, {
          topic: `sim/${node.name}`,
          payload: new TextEncoder().encode(id),
          qos,
        });
        sent.set(id, { qos });
      }
    }
    sim.step();
    collect();
    if (sim.rand() < 0.04) {
      const victim = sim.nodes[Math.floor(sim.rand() * sim.nodes.length)];
      sim.drop(victim);
      collect();
    }
    sim.tick();
    collect();
  }
  // Let everything reconnect and finish, with no more drops.
  for (let i = 0; i < 200; i++) {
    sim.tick();
    sim.settle(true);
    collect();
    if (sim.nodes.every((n) => n.client.state === "connected" && n.client.inFlight === 0)) break;
  }
  sim.settle(true);
  collect();

  const context =
    `seed ${seed}, MQTT level ${version}, ${sim.drops} drops, ${sent.size} sent, burst ${burst}, ${
      JSON.stringify(options)
    }`;
  assert.ok(sim.drops > 5, `the link should have dropped: ${context}`);
  const counts = new Map<string, number>();
  for (const id of received) counts.set(id, (counts.get(id) ?? 0) + 1);
  for (const [id, { qos }] of sent) {
    const count = counts.get(id) ?? 0;
    if (qos === 1) assert.ok(count >= 1, `QoS 1 message ${id} was lost (${context})`);
    else assert.equal(count, 1, `QoS 2 message ${id} arrived ${count} times (${context})`);
  }
  for (const id of counts.keys()) assert.ok(sent.has(id), `unknown message ${id}`);
  // Order per publisher and QoS, by first arrival.
  const last = new Map<string, number>();
  const seen = new Set<string>();
  for (const id of received) {
    if (seen.has(id)) continue;
    seen.add(id);
    const [name, qos, n] = id.split(":");
    const key = `${name}:${qos}`;
    const previous = last.get(key) ?? 0;
    const current = Number(n);
    // Numbers are shared across QoS levels, so each stream only has to increase.
    assert.ok(current > previous, `out of order: ${id} after ${key}:${previous} (${context})`);
    last.set(key, current);
  }
  // Nothing is left in flight anywhere.
  for (const node of sim.nodes) {
    assert.equal(node.client.state, "connected", `${node.name} (${context})`);
    assert.equal(node.client.inFlight, 0, `${node.name} still has publishes in flight (${context})`);
  }
  assert.equal(sim.broker.sessionCount, sim.nodes.length);
}

for (const version of [3, 4, 5] as const) {
  for (const seed of [1, 2, 3, 42, 1234]) {
    test(`simulation over a lossy link, MQTT level ${version}, seed ${seed}: QoS 1 at least once, QoS 2 exactly once, in order`, () => {
      run(seed, version);
    });
  }
}

for (const version of [4, 5] as const) {
  for (const seed of [7, 8, 99]) {
    test(`simulation over a lossy link with bursts past a queue bound of 4, MQTT level ${version}, seed ${seed}: nothing acknowledged is lost`, () => {
      run(seed, version, 8, { maxQueuedMessages: 4 });
    });
  }
}
