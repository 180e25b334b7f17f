/**
 * What clients may publish, subscribe to and read: topic and rate limits, the ACL file and the
 * `authorizePublish`, `authorizeSubscribe` and `authorizeRead` hooks, then routing what they allowed. It
 * decides and routes; connecting and the write path are not its business.
 *
 * @module
 */

import type { PublishPacket, QoS, Subscription } from "../codec/packet.ts";
import { reasonCodeAllowed } from "../codec/reason_codes.ts";
import { ReasonCode } from "../errors.ts";
import type { BrokerMachine, BrokerMachineOptions } from "../machine/broker_machine.ts";
import type { SessionEvent } from "../machine/session_machine.ts";
import { aclReadCheck, canPublish, canSubscribe } from "./acl_file.ts";
import type { Backpressure } from "./backpressure.ts";
import { type BrokerOptions, type ClientInfo, type Decision, decisionCode, log } from "./broker_options.ts";
import type { Connection } from "./connection.ts";
import { type ClusterLink, publishSnapshot } from "./cluster_link.ts";
import type { SysCounters } from "./sys_topics.ts";

/** The number of levels of a topic, counting no further than one past `limit` (no array per publish). */
function levelCount(topic: string, limit: number): number {
  let levels = 1;
  for (let i = topic.indexOf("/"); i !== -1 && levels <= limit; i = topic.indexOf("/", i + 1)) levels++;
  return levels;
}

/**
 * The machine's check of each delivery: the ACL's read rules, `authorizeRead` and `authorizeDelivery`, all
 * of which must allow; none at all when none is set, so that deliveries then cost nothing more.
 */
export function deliveryCheck(
  options: BrokerOptions,
  trusted: ReadonlySet<string> = new Set(),
): BrokerMachineOptions["authorizeDelivery"] {
  const checks: NonNullable<BrokerMachineOptions["authorizeDelivery"]>[] = [];
  if (options.acl !== undefined) {
    const canRead = aclReadCheck(options.acl);
    checks.push((session, message) => canRead(session, message.topic));
  }
  const hook = options.authorizeRead;
  if (hook !== undefined) {
    checks.push((session, message) => {
      try {
        return hook(session, message) === true;
      } catch (error) {
        log(options, "warn", `authorizeRead threw for "${session.clientId}" on "${message.topic}": ${error}`);
        return false;
      }
    });
  }
  if (options.authorizeDelivery !== undefined) checks.push(options.authorizeDelivery);
  if (checks.length === 0) return undefined;
  // The broker's own clients (a bridge's side here) read what they subscribed to; their identifiers are
  // refused to anyone else (`ConnectAuth`).
  if (checks.length === 1) {
    const check = checks[0];
    return (session, message) => trusted.has(session.clientId) || check(session, message);
  }
  return (session, message) =>
    trusted.has(session.clientId) || checks.every((check) => check(session, message));
}

/** Decides and routes the PUBLISH and SUBSCRIBE packets of one broker's clients. */
export class PublishPolicy {
  readonly #options: BrokerOptions;
  readonly #machine: BrokerMachine;
  readonly #counters: SysCounters;
  readonly #pressure: Backpressure;
  readonly #flushAll: (connection: Connection) => void;
  /** Per connection, the last of its PUBLISH packets waiting for the cluster, which keeps them in order. */
  readonly #waiting = new Map<Connection, Promise<void>>();

  /**
   * Keeps what the policy needs.
   *
   * @param options The broker's options: limits, ACL and hooks.
   * @param machine The routing machine.
   * @param counters The `$SYS` counters of messages received.
   * @param pressure Whose `source` is the publisher while its message is routed.
   * @param flushAll The broker's flush of a connection and of all it fed.
   */
  constructor(
    options: BrokerOptions,
    machine: BrokerMachine,
    counters: SysCounters,
    pressure: Backpressure,
    flushAll: (connection: Connection) => void,
  ) {
    this.#options = options;
    this.#machine = machine;
    this.#counters = counters;
    this.#pressure = pressure;
    this.#flushAll = flushAll;
  }

  /** Decides a PUBLISH: topic and rate limits, the ACL, then `authorizePublish`; routes it once allowed. */
  onPublish(connection: Connection, packet: PublishPacket): void {
    let code: ReasonCode = ReasonCode.Success;
    const hook = this.#options.authorizePublish;
    const acl = this.#options.acl;
    const limited = this.#limitPublish(connection, packet);
    if (connection.unchecked) {
      // The broker's own client (a bridge): what it was configured to carry, as it comes.
    } else if (limited !== undefined && !connection.trusted) {
      // (The broker's own client with a user name is held to that user's rules, not to the limits.)
      code = limited;
    } else if (
      acl !== undefined && connection.info !== undefined && !canPublish(acl, connection.info, packet.topic)
    ) {
      code = ReasonCode.NotAuthorized;
      this.#counters.deniedPublishes++;
      log(
        this.#options,
        "info",
        `Denied publish from "${connection.info.clientId}" to "${packet.topic}" (ACL)`,
      );
    } else if (hook !== undefined && connection.info !== undefined) {
      void this.#authorizePublish(connection, packet, connection.info, hook);
      return;
    }
    // Without a hook, at once: no promise per message.
    this.#publishDecided(connection, packet, code);
  }

  async #authorizePublish(
    connection: Connection,
    packet: PublishPacket,
    info: ClientInfo,
    hook: NonNullable<BrokerOptions["authorizePublish"]>,
  ): Promise<void> {
    let code: ReasonCode;
    try {
      code = decisionCode(await hook(info, packet), ReasonCode.NotAuthorized);
      if (code >= 0x80) this.#counters.deniedPublishes++;
    } catch {
      code = ReasonCode.UnspecifiedError;
    }
    this.#publishDecided(connection, packet, code);
  }

  /**
   * Routes an authorized PUBLISH and answers it (PUBACK or PUBREC with `code`), once every session it went to
   * holds it. Also when the connection closed while an async hook decided: the client's QoS 2 resend is then
   * answered as a duplicate, so this is the one chance to route the message [MQTT-4.3.3-10].
   */
  #publishDecided(connection: Connection, packet: PublishPacket, code: ReasonCode): void {
    const counters = this.#counters;
    counters.messagesReceived++;
    counters.receivedByQos[packet.qos]++;
    counters.receivedBytesByQos[packet.qos] += packet.payload.length;
    // A hook may answer with any reason code; PUBACK and PUBREC carry only some.
    if (packet.qos > 0 && !reasonCodeAllowed(packet.qos === 1 ? "puback" : "pubrec", code)) {
      code = code >= 0x80 ? ReasonCode.UnspecifiedError : ReasonCode.Success;
    }
    const cluster = this.#options.cluster;
    if (cluster !== undefined && (packet.qos > 0 || this.#waiting.has(connection))) {
      this.#publishClustered(connection, packet, code, cluster);
      return;
    }
    this.#route(connection, packet, code, true);
  }

  /**
   * A PUBLISH on a node of a cluster: QoS 1 and 2 are stored by the cluster before they are acknowledged and
   * routed here (refused when the cluster cannot store them: MQTT 5 gets 0x83, older clients lose the
   * connection, since their PUBACK cannot refuse); later packets of the connection wait their turn.
   */
  #publishClustered(
    connection: Connection,
    packet: PublishPacket,
    code: ReasonCode,
    cluster: ClusterLink,
  ): void {
    const store = packet.qos > 0 && code < 0x80
      ? cluster.store(publishSnapshot(packet, connection.session.clientId), packet.packetId).then(
        () => true,
        (error) => {
          log(
            this.#options,
            "warn",
            `Refused a QoS ${packet.qos} message from "${connection.session.clientId}" on "${packet.topic}": ${
              (error as Error).message
            }`,
          );
          return false;
        },
      )
      : true;
    const previous = this.#waiting.get(connection);
    const turn = (previous ?? Promise.resolve()).then(() => store).then((stored) => {
      if (this.#waiting.get(connection) === turn) this.#waiting.delete(connection);
      if (stored) {
        // A stored message reached the other nodes already; QoS 0 is forwarded as it is routed.
        this.#route(connection, packet, code, packet.qos === 0);
        return;
      }
      const session = connection.session;
      if (session.version !== 5) session.disconnect(performance.now(), ReasonCode.ServerUnavailable);
      this.#route(connection, packet, ReasonCode.ImplementationSpecificError, false);
    });
    this.#waiting.set(connection, turn);
  }

  /** Routes a decided PUBLISH and flushes what it gave output to. */
  #route(connection: Connection, packet: PublishPacket, code: ReasonCode, forward: boolean): void {
    const session = connection.session;
    const now = performance.now();
    const pressure = this.#pressure;
    const source = pressure.source;
    pressure.source = connection;
    try {
      this.#machine.publish(now, session, packet, code, forward);
      this.#flushAll(connection);
    } finally {
      pressure.source = source;
    }
  }

  /** Decides a SUBSCRIBE: the ACL, then `authorizeSubscribe`, each filter; then grants it. */
  async onSubscribe(
    connection: Connection,
    _packetId: number,
    subscriptions: Subscription[],
    event: Extract<SessionEvent, { type: "subscribe" }>,
  ): Promise<void> {
    const hook = this.#options.authorizeSubscribe;
    const acl = this.#options.acl;
    let codes: ReasonCode[] | undefined;
    if ((hook !== undefined || acl !== undefined) && connection.info !== undefined && !connection.unchecked) {
      codes = [];
      for (const subscription of subscriptions) {
        let decision: Decision | QoS = true;
        let denied = false;
        if (acl !== undefined && !canSubscribe(acl, connection.info, subscription.topicFilter)) {
          decision = false;
          denied = true;
          log(
            this.#options,
            "info",
            `Denied subscription of "${connection.info.clientId}" to "${subscription.topicFilter}" (ACL: nothing readable)`,
          );
        } else if (hook !== undefined) {
          try {
            decision = await hook(connection.info, subscription);
            denied = decision === false || (typeof decision === "number" && decision >= 0x80);
          } catch {
            decision = ReasonCode.UnspecifiedError;
          }
        }
        if (decision === true) codes.push(subscription.qos);
        else if (decision === false) codes.push(ReasonCode.NotAuthorized);
        else if (decision === 0 || decision === 1 || decision === 2) {
          codes.push(Math.min(decision, subscription.qos) as ReasonCode);
        } else codes.push(reasonCodeAllowed("suback", decision) ? decision : ReasonCode.UnspecifiedError);
        if (denied) this.#counters.deniedSubscriptions++;
      }
    }
    const cluster = this.#options.cluster;
    const filters = subscriptions.filter((_, i) => (codes?.[i] ?? 0) < 0x80).map((s) => s.topicFilter);
    if (cluster !== undefined) await cluster.prepare(filters).catch(() => {});
    if (!connection.closed) {
      this.#machine.subscribe(performance.now(), connection.session, event.packet, codes);
      this.#flushAll(connection);
    }
    cluster?.settle(filters);
  }

  /** The topic and rate limits of a PUBLISH: a refusal code, or `undefined` when it may pass. */
  #limitPublish(connection: Connection, packet: PublishPacket): ReasonCode | undefined {
    const who = connection.info?.clientId ?? "?";
    const topic = packet.topic;
    const maxLength = this.#options.maxTopicLength ?? 65_535;
    const maxLevels = this.#options.maxTopicLevels ?? 128;
    if (topic.length > maxLength || levelCount(topic, maxLevels) > maxLevels) {
      log(
        this.#options,
        "warn",
        `Refused publish from "${who}": topic longer than ${maxLength} or deeper than ${maxLevels} levels`,
      );
      return ReasonCode.TopicNameInvalid;
    }
    const rate = this.#options.maxMessagesPerSecond ?? 0;
    if (rate > 0) {
      // A token bucket per connection: up to one second's worth of burst.
      const now = performance.now();
      // Small integers until the first PUBLISH: an idle connection holds no boxed number for its bucket.
      const elapsed = connection.rateAt === 0 ? Infinity : (now - connection.rateAt) / 1000;
      connection.rateAt = now;
      connection.tokens = Math.min(rate, connection.tokens + elapsed * rate);
      if (connection.tokens < 1) {
        log(this.#options, "warn", `Refused publish from "${who}": more than ${rate} messages per second`);
        // 0x96 exists only on DISCONNECT; a PUBACK says quota exceeded.
        return ReasonCode.QuotaExceeded;
      }
      connection.tokens -= 1;
    }
    return undefined;
  }
}
