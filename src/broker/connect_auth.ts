/**
 * The broker's CONNECT and AUTH pipeline: identifier length, anonymous access, the password file, the
 * `authenticate` and `enhancedAuthenticate` hooks and `maxKeepAlive`, ending in the CONNACK (attach or reject).
 * It decides connections only; publishing, subscribing and the write path are not its business.
 *
 * @module
 */

import type { ConnAckProperties, ConnectPacket } from "../codec/packet.ts";
import { ReasonCode } from "../errors.ts";
import type { BrokerMachine } from "../machine/broker_machine.ts";
import {
  type BrokerOptions,
  type ClientInfo,
  decisionCode,
  type EnhancedAuthResult,
  log,
} from "./broker_options.ts";
import type { Connection } from "./connection.ts";
import { verifyPassword } from "./password_file.ts";
import type { SysCounters } from "./sys_topics.ts";
import type { ClusterLink } from "./cluster_link.ts";

/** Authenticates the connections of one broker. */
export class ConnectAuth {
  readonly #options: BrokerOptions;
  readonly #machine: BrokerMachine;
  readonly #counters: SysCounters;
  readonly #flushAll: (connection: Connection) => void;
  readonly #reserved: ReadonlySet<string>;

  /**
   * Keeps what the pipeline needs.
   *
   * @param options The broker's options: limits and hooks.
   * @param machine The routing machine a connected session is attached to.
   * @param counters The `$SYS` counters of connected clients.
   * @param flushAll The broker's flush of a connection and of all it fed.
   * @param reserved Client identifiers of the broker's own clients, refused to any other connection.
   */
  constructor(
    options: BrokerOptions,
    machine: BrokerMachine,
    counters: SysCounters,
    flushAll: (connection: Connection) => void,
    reserved: ReadonlySet<string> = new Set(),
  ) {
    this.#options = options;
    this.#machine = machine;
    this.#counters = counters;
    this.#flushAll = flushAll;
    this.#reserved = reserved;
  }

  /**
   * Decides a CONNECT: identifier length, anonymous, password file, `authenticate`, then enhanced
   * authentication or the CONNACK.
   */
  async onConnect(connection: Connection, packet: ConnectPacket): Promise<void> {
    const info: ClientInfo = { clientId: packet.clientId, protocolVersion: packet.protocolVersion };
    if (packet.username !== undefined) info.username = packet.username;
    if (connection.remote !== undefined) info.remote = connection.remote;
    let code: ReasonCode = ReasonCode.Success;
    /** Whether the credentials were refused (not the identifier, nor a hook that failed). */
    let refused = false;
    const passwords = this.#options.passwords;
    const maxIdLength = this.#options.maxClientIdLength ?? 256;
    if (connection.trusted) {
      // The broker's own client: nothing to check.
    } else if (this.#reserved.has(packet.clientId)) {
      // The identifier of the broker's own client (a bridge's side): taking over its session would take what
      // it carries.
      code = ReasonCode.ClientIdentifierNotValid;
    } else if (new TextEncoder().encode(packet.clientId).length > maxIdLength) {
      code = ReasonCode.ClientIdentifierNotValid;
    } else if (packet.clientId === "" && this.#options.allowZeroLengthClientId === false) {
      // mosquitto's allow_zero_length_clientid false: no identifier is assigned.
      code = ReasonCode.ClientIdentifierNotValid;
    } else if (packet.username === undefined && this.#options.allowAnonymous === false) {
      code = ReasonCode.NotAuthorized;
      refused = true;
    } else if (packet.username !== undefined && passwords !== undefined) {
      const entry = passwords.get(packet.username);
      const ok = entry !== undefined && packet.password !== undefined &&
        await verifyPassword(entry, packet.password);
      if (!ok) {
        code = ReasonCode.BadUserNameOrPassword;
        refused = true;
      }
    }
    if (code === ReasonCode.Success && this.#options.authenticate !== undefined && !connection.trusted) {
      try {
        code = decisionCode(
          await this.#options.authenticate(info, packet.password),
          ReasonCode.BadUserNameOrPassword,
        );
        refused = code !== ReasonCode.Success;
      } catch (error) {
        log(
          this.#options,
          "error",
          `authenticate hook failed for "${packet.clientId}": ${(error as Error).message}`,
        );
        code = ReasonCode.UnspecifiedError;
      }
    }
    const method = packet.properties?.authenticationMethod;
    if (code === ReasonCode.Success && method !== undefined) {
      if (this.#options.enhancedAuthenticate === undefined) {
        code = ReasonCode.BadAuthenticationMethod;
        refused = true;
      } else {
        connection.authenticating = info;
        return this.onAuth(connection, packet.properties?.authenticationData);
      }
    }
    if (connection.closed) return;
    if (refused) this.#counters.authenticationFailures++;
    this.#finishConnect(connection, info, packet.protocolVersion, code);
  }

  /** One step of enhanced authentication: a new connection's, or a re-authentication's. */
  async onAuth(connection: Connection, data: Uint8Array | undefined): Promise<void> {
    const session = connection.session;
    const hook = this.#options.enhancedAuthenticate;
    const client = connection.authenticating ?? connection.info;
    const method = session.authenticationMethod;
    if (hook === undefined || client === undefined || method === undefined) {
      if (connection.info === undefined) {
        session.reject(performance.now(), ReasonCode.BadAuthenticationMethod);
      } else session.disconnect(performance.now(), ReasonCode.ProtocolError);
      this.#flushAll(connection);
      return;
    }
    const reauthenticating = connection.authenticating === undefined;
    let result: EnhancedAuthResult;
    /** Whether the hook threw: not a refusal of the client's credentials. */
    let failed = false;
    try {
      result = await hook(client, { method, data: data?.slice(), reauthenticating });
    } catch (error) {
      log(
        this.#options,
        "error",
        `enhancedAuthenticate hook failed for "${client.clientId}": ${(error as Error).message}`,
      );
      result = ReasonCode.UnspecifiedError;
      failed = true;
    }
    if (connection.closed) return;
    const now = performance.now();

    if (typeof result === "object" && "challenge" in result) {
      session.authenticate(now, ReasonCode.ContinueAuthentication, { authenticationData: result.challenge });
    } else if (typeof result === "object" || result === true) {
      const final = typeof result === "object" ? result.data : undefined;
      if (reauthenticating) {
        session.authenticate(
          now,
          ReasonCode.Success,
          final === undefined ? {} : { authenticationData: final },
        );
      } else {
        connection.authenticating = undefined;
        const properties = final === undefined
          ? { authenticationMethod: method }
          : { authenticationMethod: method, authenticationData: final };
        this.#finishConnect(connection, client, client.protocolVersion, ReasonCode.Success, properties);
        return;
      }
    } else {
      const code = decisionCode(result, ReasonCode.NotAuthorized);
      if (code !== ReasonCode.Success && !failed) this.#counters.authenticationFailures++;
      if (reauthenticating) {
        session.disconnect(now, code);
      } else {
        connection.authenticating = undefined;
        this.#finishConnect(connection, client, client.protocolVersion, code);
        return;
      }
    }
    this.#flushAll(connection);
  }

  #finishConnect(
    connection: Connection,
    info: ClientInfo,
    protocolVersion: number,
    code: ReasonCode,
    properties?: ConnAckProperties,
    claimed = false,
  ): void {
    const session = connection.session;
    const cluster = this.#options.cluster;
    if (cluster !== undefined && code === ReasonCode.Success && !claimed) {
      void this.#claim(connection, info, protocolVersion, properties, cluster);
      return;
    }
    const packet = { clientId: info.clientId, protocolVersion };
    const now = performance.now();
    const maxKeepAlive = this.#options.maxKeepAlive ?? 0;
    const keepAlive = session.connectPacket?.keepAlive ?? 0;
    if (code === ReasonCode.Success && maxKeepAlive > 0 && (keepAlive === 0 || keepAlive > maxKeepAlive)) {
      // As mosquitto's max_keepalive, decided once the client is authenticated: MQTT 5 is told the value to use
      // [MQTT-3.2.2-21] (the session then enforces 1.5 times it [MQTT-3.1.2-22]); 3.x cannot be told, so it is
      // refused with 0x85, sent as return code 0x02 identifier rejected.
      if (protocolVersion === 5) {
        properties = { ...properties, serverKeepAlive: maxKeepAlive };
      } else {
        code = ReasonCode.ClientIdentifierNotValid;
        log(
          this.#options,
          "info",
          `Client "${info.clientId}" asked for keep-alive ${keepAlive}, not 1 to maxKeepAlive ${maxKeepAlive}`,
        );
      }
    }
    if (code !== ReasonCode.Success) {
      log(
        this.#options,
        "warn",
        `Refused "${packet.clientId}"${info.username ? ` (user "${info.username}")` : ""}${
          connection.remote ? ` from ${connection.remote}` : ""
        }: 0x${code.toString(16)}`,
        { client: packet.clientId, event: "refused" },
      );
      this.#counters.refused.set(code, (this.#counters.refused.get(code) ?? 0) + 1);
      session.reject(now, code);
    } else {
      this.#machine.attach(now, session, properties === undefined ? {} : { properties });
      this.#counters.connected++;
      this.#counters.maximum = Math.max(this.#counters.maximum, this.#counters.connected);
      connection.info = { ...info, clientId: session.clientId };
      log(
        this.#options,
        "info",
        `Client "${session.clientId}" connected (MQTT level ${packet.protocolVersion})${
          connection.remote ? ` from ${connection.remote}` : ""
        }`,
        { client: session.clientId, event: "connected" },
      );
    }
    this.#flushAll(connection);
  }

  /**
   * On a node of a cluster, claims the client's session before accepting it: another node that holds it gives
   * it up (its connection taken over) and it is restored here. A client without an identifier gets one no other
   * node gives. While the cluster is unreachable a clean session is accepted here alone, and a persistent one
   * is refused with 0x88 server unavailable (3.1.1: return code 3), since it could not move between nodes.
   */
  async #claim(
    connection: Connection,
    info: ClientInfo,
    protocolVersion: number,
    properties: ConnAckProperties | undefined,
    cluster: ClusterLink,
  ): Promise<void> {
    const connect = connection.session.connectPacket;
    if (connect === undefined) return;
    let code: ReasonCode = ReasonCode.Success;
    if (connect.clientId === "") {
      const prefix = this.#options.autoIdPrefix ?? "auto-";
      properties = {
        ...properties,
        assignedClientIdentifier: `${prefix}${cluster.node}-${crypto.randomUUID()}`,
      };
    } else {
      const persistent = connect.protocolVersion === 5
        ? (connect.properties?.sessionExpiryInterval ?? 0) > 0
        : !connect.cleanStart;
      if (cluster.available || persistent) {
        try {
          await cluster.claim(connect.clientId, connect.cleanStart);
        } catch (error) {
          log(
            this.#options,
            "warn",
            `Cannot claim the session of "${connect.clientId}": ${(error as Error).message}`,
          );
          code = ReasonCode.ServerUnavailable;
        }
      } else {
        log(
          this.#options,
          "warn",
          `Client "${connect.clientId}" connects while the cluster is unreachable: accepted on this node alone`,
        );
      }
    }
    if (connection.closed) return;
    this.#finishConnect(connection, info, protocolVersion, code, properties, true);
  }
}
