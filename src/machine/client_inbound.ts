/**
 * The receiving side of a client's QoS 1 and 2 messages: which are new, the acknowledgements that leave in
 * arrival order (held back with `manualAck` until the application acknowledges), and the QoS 2 identifiers that
 * await PUBREL, kept with the session. It emits no events: `ClientMachine` delivers the messages.
 *
 * @module
 */

import type { ProtocolVersion, QoS } from "../codec/packet.ts";
import type { ReasonCode } from "../errors.ts";
import { INBOUND_NEW, INBOUND_RECEIVED, inboundStep, pubCompCode } from "./_inbound_qos.ts";
import type { Millis } from "./client_types.ts";
import type { ClientWire } from "./client_wire.ts";

/** An inbound QoS 1 or 2 message whose acknowledgement has not left yet. */
interface PendingAck {
  packetId: number;
  qos: 1 | 2;
  acknowledged: boolean;
  reasonCode: ReasonCode;
}

/** The inbound QoS 1 and 2 state of a client. */
export class ClientInbound {
  readonly #wire: ClientWire;
  readonly #version: ProtocolVersion;
  readonly #manualAck: boolean;
  /** QoS 2 packet ids received and acknowledged with PUBREC, waiting for PUBREL [MQTT-4.3.3-10]. */
  readonly incomingQoS2 = new Set<number>();
  /** Inbound QoS 1 and 2 acknowledgements in arrival order, and by packet id. */
  #pendingAcks: PendingAck[] = [];
  /** Where the unsent part of `#pendingAcks` starts: sent ones are dropped in bulk, not one by one. */
  #pendingAcksHead = 0;
  readonly #pendingById = new Map<number, PendingAck>();
  #pendingQoS1 = 0;

  constructor(wire: ClientWire, version: ProtocolVersion, manualAck: boolean) {
    this.#wire = wire;
    this.#version = version;
    this.#manualAck = manualAck;
  }

  /**
   * Records a received QoS 1 or 2 PUBLISH; a duplicate of a message already taken is acknowledged again, not
   * delivered [MQTT-4.3.3-10]; a resend of one not acknowledged yet waits for its acknowledgement.
   *
   * @returns Whether the message is new: deliver it, then call {@linkcode ClientInbound.flush}.
   */
  receive(now: Millis, qos: QoS, packetId: number): boolean {
    const step = inboundStep(qos, packetId, this.#pendingById.has(packetId), this.incomingQoS2);
    if (step !== INBOUND_NEW) {
      if (step === INBOUND_RECEIVED) this.#wire.send(now, { type: "pubrec", packetId, reasonCode: 0 });
      return false;
    }
    // More unacknowledged QoS > 0 PUBLISH than our Receive Maximum: servers that resend after a reconnect
    // count differently (mosquitto 2.0 resends its whole in-flight window). The disconnect is a MAY (MQTT 5
    // §3.3.4), and it loops: reconnect, the same resend, disconnect. Taking the message loses nothing; the
    // packet identifiers bound what is held.
    if (qos === 2) this.incomingQoS2.add(packetId);
    else this.#pendingQoS1++;
    const pending: PendingAck = {
      packetId,
      qos: qos as 1 | 2,
      acknowledged: !this.#manualAck,
      reasonCode: 0,
    };
    this.#pendingAcks.push(pending);
    this.#pendingById.set(packetId, pending);
    return true;
  }

  /**
   * Marks a message acknowledged by the application (see `ClientMachine.acknowledge`).
   *
   * @returns Whether it was waiting: then call {@linkcode ClientInbound.flush} while connected.
   */
  acknowledge(packetId: number, reasonCode: ReasonCode): boolean {
    const pending = this.#pendingById.get(packetId);
    if (pending === undefined || pending.acknowledged) return false;
    pending.acknowledged = true;
    pending.reasonCode = reasonCode;
    return true;
  }

  /** Sends the acknowledgements that are ready, in arrival order. */
  flush(now: Millis): void {
    const queue = this.#pendingAcks;
    let head = this.#pendingAcksHead;
    for (; head < queue.length; head++) {
      const pending = queue[head];
      if (!pending.acknowledged) break;
      this.#pendingById.delete(pending.packetId);
      const reasonCode = this.#version === 5 ? pending.reasonCode : 0;
      if (pending.qos === 1) {
        this.#pendingQoS1--;
        this.#wire.send(now, { type: "puback", packetId: pending.packetId, reasonCode });
      } else {
        this.#wire.send(now, { type: "pubrec", packetId: pending.packetId, reasonCode });
        // A refused QoS 2 message ends here; its id is new again [MQTT-4.3.3-9].
        if (reasonCode >= 0x80) this.incomingQoS2.delete(pending.packetId);
      }
    }
    // Dropping the sent entries from the front costs the length of the queue, so do it only once they are
    // most of it: a backlog of thousands acknowledged one by one would otherwise cost quadratic time.
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
    } else if (head > 1024 && head * 2 > queue.length) {
      queue.splice(0, head);
      head = 0;
    }
    this.#pendingAcksHead = head;
  }

  /** Answers a PUBREL with PUBCOMP [MQTT-4.3.3-11]; the identifier is new again [MQTT-4.3.3-12]. */
  handlePubRel(now: Millis, packetId: number): void {
    const known = this.incomingQoS2.delete(packetId);
    this.#wire.send(now, { type: "pubcomp", packetId, reasonCode: pubCompCode(known, this.#version, true) });
  }

  /** Forgets inbound QoS state, as a session that is not resumed must [MQTT-3.2.2-5]. */
  drop(): void {
    this.incomingQoS2.clear();
    this.#pendingAcks = [];
    this.#pendingAcksHead = 0;
    this.#pendingById.clear();
    this.#pendingQoS1 = 0;
  }
}
