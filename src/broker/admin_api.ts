/**
 * The admin API of an HTTP listener, as JSON under `/api/`: the connected clients (and disconnecting one),
 * the sessions and the retained messages. Every request needs HTTP Basic credentials of a user of the broker's
 * password file named in `adminUsers`; without them it gets 401 (403 when no admin user is configured at all).
 * Nothing it answers holds a password or a hash.
 *
 * @module
 */

import { ReasonCode } from "../errors.ts";
import type { BrokerMachine, SessionSummary } from "../machine/broker_machine.ts";
import type { SessionMachine } from "../machine/session_machine.ts";
import { type BrokerOptions, log } from "./broker_options.ts";
import type { Connection } from "./connection.ts";
import type { PasswordEntry } from "./password_file.ts";
import { verifyPassword } from "./password_file.ts";

/** A connected client, as `GET /api/clients` lists it. */
export interface AdminClient {
  clientId: string;
  /** The peer's address, when known. */
  address?: string;
  username?: string;
  protocolVersion?: number;
  keepAlive?: number;
  /** Its subscriptions' topic filters. */
  subscriptions: string[];
  /** Deliveries waiting in its queue, and in flight. */
  queued: number;
  inflight: number;
}

/** A session, as `GET /api/sessions` lists it. */
export interface AdminSession {
  clientId: string;
  connected: boolean;
  /** Seconds it outlives its connection. */
  expiryInterval: number;
  subscriptions: string[];
  queued: number;
  inflight: number;
}

/** A retained message, as `GET /api/retained` lists it: the payload as text when it is UTF-8, else base64. */
export interface AdminRetained {
  topic: string;
  qos: number;
  size: number;
  payload?: string;
  payloadBase64?: string;
  /** Set when the payload above is only its first bytes (`?preview=`). */
  truncated?: boolean;
}

/** What the API reads and does on its broker. */
export interface AdminHost {
  /** At most `limit` connected clients, in the order they connected. */
  clients(limit: number): AdminClient[];
  /** How many clients are connected. */
  clientCount(): number;
  /** One connected client. */
  client(clientId: string): AdminClient | undefined;
  /** At most `limit` sessions, connected or not. */
  sessions(limit: number): AdminSession[];
  /** How many sessions there are. */
  sessionCount(): number;
  /** At most `limit` retained messages, payloads cut to `preview` bytes. */
  retained(limit: number, preview: number): AdminRetained[];
  /** How many retained messages there are. */
  retainedCount(): number;
  /** Disconnects a connected client; whether there was one. */
  disconnect(clientId: string): boolean;
  /** The broker's password file and the users of it that may use the API. */
  passwords: ReadonlyMap<string, PasswordEntry> | undefined;
  adminUsers: readonly string[];
}

const JSON_TYPE = { "content-type": "application/json; charset=utf-8" };

/**
 * Answers a request under `/api/`.
 *
 * @param request The request.
 * @param host The broker's side.
 * @returns The answer.
 */
export async function adminApi(request: Request, host: AdminHost): Promise<Response> {
  if (host.adminUsers.length === 0 || host.passwords === undefined) {
    return json({ error: "the admin API is off: no admin user is configured" }, 403);
  }
  if (!await authorized(request.headers.get("authorization"), host)) {
    // A script that asks for credentials itself (the dashboard page, which sends `x-requested-with`) gets no
    // challenge: with one, the browser would put up its own prompt and hold the request until it is answered.
    const challenge: Record<string, string> = request.headers.has("x-requested-with")
      ? {}
      : { "www-authenticate": 'Basic realm="mqtt admin", charset="UTF-8"' };
    return new Response(JSON.stringify({ error: "credentials of an admin user are required" }), {
      status: 401,
      headers: { ...JSON_TYPE, ...challenge },
    });
  }
  const { pathname, searchParams } = new URL(request.url);
  const method = request.method;
  if (method === "GET" && pathname === "/api/clients") {
    return listing(searchParams, [], (limit) => host.clients(limit), host.clientCount());
  }
  if (method === "GET" && pathname === "/api/sessions") {
    return listing(searchParams, [], (limit) => host.sessions(limit), host.sessionCount());
  }
  if (method === "GET" && pathname === "/api/retained") {
    return listing(
      searchParams,
      ["preview"],
      (limit, numbers) => host.retained(limit, numbers.preview),
      host.retainedCount(),
    );
  }
  const client = /^\/api\/clients\/([^/]+)$/.exec(pathname);
  if (client !== null) {
    if (method !== "DELETE" && method !== "GET") return json({ error: `${method} is not allowed here` }, 405);
    let clientId: string;
    try {
      clientId = decodeURIComponent(client[1]);
    } catch {
      return json({ error: "the client identifier is not well-formed" }, 400);
    }
    if (method === "GET") {
      const found = host.client(clientId);
      return found === undefined ? json({ error: `no client "${clientId}" is connected` }, 404) : json(found);
    }
    return host.disconnect(clientId)
      ? new Response(null, { status: 204 })
      : json({ error: `no client "${clientId}" is connected` }, 404);
  }
  return json({ error: "not found" }, 404);
}

/**
 * A list (`/api/clients`, `/api/sessions`, `/api/retained`): all of it by default; `?limit=N` keeps the first N
 * (the retained messages also take `&preview=BYTES`, which cuts their payloads). The header `x-total-count`
 * tells how many there are in all.
 *
 * @param query The request's query.
 * @param names The list's own numeric parameters besides `limit`.
 * @param list The first `limit` entries, given the parameters (`Infinity` for one not given).
 * @param total How many entries there are.
 */
function listing(
  query: URLSearchParams,
  names: readonly string[],
  list: (limit: number, numbers: Record<string, number>) => unknown[],
  total: number,
): Response {
  const numbers: Record<string, number> = {};
  for (const name of ["limit", ...names]) {
    const text = query.get(name);
    if (text !== null && !/^\d{1,9}$/.test(text)) {
      return json({ error: `${["limit", ...names].join(" and ")} must be whole numbers` }, 400);
    }
    numbers[name] = text === null ? Infinity : Number(text);
  }
  const response = json(list(numbers.limit, numbers));
  response.headers.set("x-total-count", String(total));
  return response;
}

async function authorized(header: string | null, host: AdminHost): Promise<boolean> {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header ?? "");
  if (match === null) return false;
  let decoded: string;
  try {
    decoded = new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(atob(match[1]), (c) => c.charCodeAt(0)),
    );
  } catch {
    return false;
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return false;
  const user = decoded.slice(0, colon);
  const entry = host.passwords?.get(user);
  if (entry === undefined || !host.adminUsers.includes(user)) return false;
  return await verifyPassword(entry, new TextEncoder().encode(decoded.slice(colon + 1)));
}

function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value), { status, headers: JSON_TYPE });
}

/** A retained message's payload for the API: text when it is well-formed UTF-8, else base64. */
export function payloadFields(payload: Uint8Array): Pick<AdminRetained, "payload" | "payloadBase64"> {
  try {
    return { payload: new TextDecoder("utf-8", { fatal: true }).decode(payload) };
  } catch {
    let binary = "";
    for (const byte of payload) binary += String.fromCharCode(byte);
    return { payloadBase64: btoa(binary) };
  }
}

/** What {@linkcode adminHost} reads and acts on: a broker's parts. */
export interface AdminParts {
  machine: BrokerMachine;
  connections: ReadonlyMap<SessionMachine, Connection>;
  options: BrokerOptions;
  flushAll(connection: Connection): void;
}

/** The admin API's view of a broker. It reads the machine in place: cheap enough for a page asking every second. */
export function adminHost(parts: AdminParts): AdminHost {
  const { machine, options } = parts;
  const counts = (session: SessionSummary) => ({
    subscriptions: session.subscriptions,
    queued: session.queued,
    inflight: session.inflight,
  });
  /** The connections whose client was accepted and is still there. */
  function* connected(): IterableIterator<Connection> {
    for (const connection of parts.connections.values()) {
      if (connection.info !== undefined && !connection.closed) yield connection;
    }
  }
  const client = (connection: Connection): AdminClient => {
    const session = machine.views.sessionSummary(connection.session.clientId);
    return {
      clientId: connection.session.clientId,
      address: connection.remote,
      username: connection.info?.username,
      protocolVersion: connection.info?.protocolVersion,
      keepAlive: connection.session.keepAlive,
      ...session === undefined || !session.connected
        ? { subscriptions: [], queued: 0, inflight: 0 }
        : counts(session),
    };
  };
  return {
    passwords: options.passwords,
    adminUsers: options.adminUsers ?? [],
    clients: (limit) => {
      const clients: AdminClient[] = [];
      for (const connection of connected()) {
        if (clients.length >= limit) break;
        clients.push(client(connection));
      }
      return clients;
    },
    clientCount: () => {
      let count = 0;
      for (const _ of connected()) count++;
      return count;
    },
    client: (clientId) => {
      for (const connection of connected()) {
        if (connection.session.clientId === clientId) return client(connection);
      }
      return undefined;
    },
    sessions: (limit) => {
      const sessions: AdminSession[] = [];
      for (const session of machine.views.sessionSummaries()) {
        if (sessions.length >= limit) break;
        sessions.push({
          clientId: session.clientId,
          connected: session.connected,
          expiryInterval: session.expiryInterval,
          ...counts(session),
        });
      }
      return sessions;
    },
    sessionCount: () => machine.views.sessionCount,
    retainedCount: () => machine.retainedCount,
    retained: (limit, preview) => {
      const retained: AdminRetained[] = [];
      for (const message of machine.views.retainedMessages()) {
        if (retained.length >= limit) break;
        const size = message.payload.length;
        retained.push({
          topic: message.topic,
          qos: message.qos,
          size,
          ...payloadFields(size > preview ? message.payload.subarray(0, preview) : message.payload),
          ...size > preview ? { truncated: true } : {},
        });
      }
      return retained;
    },
    disconnect: (clientId) => {
      for (const connection of connected()) {
        if (connection.session.clientId !== clientId) continue;
        log(options, "info", `Disconnecting "${clientId}": asked through the admin API`, {
          client: clientId,
          event: "disconnected_by_admin",
        });
        connection.session.disconnect(performance.now(), ReasonCode.AdministrativeAction);
        parts.flushAll(connection);
        return true;
      }
      return false;
    },
  };
}
