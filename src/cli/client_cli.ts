/**
 * `client.ts pub|sub`: publish and subscribe from the command line, like mosquitto_pub and mosquitto_sub, with
 * the same exit codes (0 success, 1 failure, 27 when `-W` times out).
 *
 * @module
 */

import { concat } from "../bytes.ts";
import type { ConnectOptions } from "../client/connect.ts";
import { describePacket } from "../codec/describe.ts";
import type { MqttClient } from "../client/mqtt_client.ts";
import { MqttError } from "../errors.ts";
import { CLIENT_USAGE, type ClientArgs, parseClientArgs, UsageError } from "./client_args.ts";

/** What the commands need from the runtime; `src/runtime` provides one per runtime, tests provide fakes. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Standard input, for `-l` and `-s`. */
  stdin(): ReadableStream<Uint8Array>;
  readFile(path: string): Promise<Uint8Array>;
  /** Fires when the user interrupts (Ctrl-C); returns a function that stops listening. */
  onInterrupt(listener: () => void): () => void;
}

/** Exit code of a `-W` timeout, as mosquitto_sub's. */
export const EXIT_TIMEOUT = 27;

const decoder = new TextDecoder();

async function connectOptions(args: ClientArgs, io: CliIo): Promise<ConnectOptions> {
  const options: ConnectOptions = {
    url: args.url,
    protocolVersion: args.protocolVersion,
    keepAlive: args.keepAlive,
    cleanStart: args.cleanStart,
    reconnect: false,
  };
  if (args.debug) {
    options.onPacket = (direction, packet) =>
      io.stderr(`Client ${direction === "out" ? "sending" : "received"} ${describePacket(packet)}\n`);
  }
  if (args.clientId !== undefined) options.clientId = args.clientId;
  if (args.username !== undefined) options.username = args.username;
  if (args.password !== undefined) options.password = args.password;
  if (args.will !== undefined) options.will = args.will;
  if (Object.keys(args.connectProperties).length > 0) options.properties = args.connectProperties;
  const { cafile, cert, key, insecure } = args.tls;
  if (cafile !== undefined || cert !== undefined || insecure) {
    options.tls = { insecure };
    if (cafile !== undefined) options.tls.caCerts = [decoder.decode(await io.readFile(cafile))];
    if (cert !== undefined) options.tls.cert = decoder.decode(await io.readFile(cert));
    if (key !== undefined) options.tls.key = decoder.decode(await io.readFile(key));
  }
  return options;
}

/** Reads lines from a stream of bytes. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const textDecoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += textDecoder.decode(chunk, { stream: true });
    let newline = pending.indexOf("\n");
    while (newline !== -1) {
      yield pending.slice(0, newline).replace(/\r$/, "");
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
    }
  }
  pending += textDecoder.decode();
  if (pending !== "") yield pending;
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return concat(parts);
}

async function publish(client: MqttClient, args: ClientArgs, io: CliIo): Promise<void> {
  const topic = args.topics[0];
  const options = { qos: args.qos, retain: args.retain, properties: args.publishProperties };
  const payload = args.payload;
  switch (payload?.kind) {
    case "message":
      return await client.publish(topic, payload.text, options);
    case "null":
      return await client.publish(topic, new Uint8Array(0), options);
    case "file":
      return await client.publish(topic, await io.readFile(payload.path), options);
    case "stdin-whole":
      return await client.publish(topic, await readAll(io.stdin()), options);
    case "stdin-lines":
      for await (const line of lines(io.stdin())) await client.publish(topic, line, options);
      return;
    case undefined:
      return;
    default: {
      const unreachable: never = payload;
      throw new Error(`Unknown payload source ${(unreachable as { kind: string }).kind}`);
    }
  }
}

async function subscribe(client: MqttClient, args: ClientArgs, io: CliIo): Promise<number> {
  const subscription = await client.subscribe(args.topics, {
    qos: args.qos,
    userProperties: args.subscribeUserProperties.length > 0 ? args.subscribeUserProperties : undefined,
  });
  const refused = subscription.reasonCodes.findIndex((code) => code >= 0x80);
  if (refused !== -1) {
    io.stderr(
      `Warning: subscription to "${args.topics[refused]}" refused (0x${
        subscription.reasonCodes[refused].toString(16)
      })\n`,
    );
  }
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (args.timeoutSeconds !== undefined) {
    timer = setTimeout(() => {
      timedOut = true;
      void subscription.unsubscribe().catch(() => {});
    }, args.timeoutSeconds * 1000);
  }
  const stop = io.onInterrupt(() => void subscription.unsubscribe().catch(() => {}));
  let received = 0;
  try {
    for await (const message of subscription) {
      const text = decoder.decode(message.payload);
      const end = args.noNewline ? "" : "\n";
      io.stdout(args.verbose ? `${message.topic} ${text}${end}` : `${text}${end}`);
      if (args.count !== undefined && ++received >= args.count) break;
    }
  } finally {
    clearTimeout(timer);
    stop();
  }
  if (timedOut) {
    io.stderr("Timed out\n");
    return EXIT_TIMEOUT;
  }
  return 0;
}

/**
 * Runs `pub` or `sub` with the arguments after the command name.
 *
 * @param command `pub` or `sub`.
 * @param argv Its arguments.
 * @param io Standard streams and files.
 * @param connect Connects a client (the real `connect()`; tests pass another).
 * @returns The exit code: 0 success, 1 failure, 27 when `-W` timed out.
 */
export async function runClientCommand(
  command: "pub" | "sub",
  argv: readonly string[],
  io: CliIo,
  connect: (options: ConnectOptions) => Promise<MqttClient>,
): Promise<number> {
  if (argv.includes("--help")) {
    io.stdout(CLIENT_USAGE + "\n");
    return 0;
  }
  let args: ClientArgs;
  try {
    args = parseClientArgs(command, argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`Error: ${error.message}\n\n${CLIENT_USAGE}\n`);
    return 1;
  }
  let client: MqttClient | undefined;
  try {
    const options = await connectOptions(args, io);
    if (args.debug) {
      io.stderr(
        `Connecting to ${args.url.replace(/\/\/[^@/]*@/, "//")} as MQTT ${
          ["3.1", "3.1.1", "5"][args.protocolVersion - 3]
        }\n`,
      );
    }
    client = await connect(options);
    if (args.debug) io.stderr(`Connected as ${client.clientId}\n`);
    const code = command === "pub" ? (await publish(client, args, io), 0) : await subscribe(client, args, io);
    await client.close();
    return code;
  } catch (error) {
    await client?.close().catch(() => {});
    io.stderr(`Error: ${describe(error)}\n`);
    return 1;
  }
}

function describe(error: unknown): string {
  if (error instanceof MqttError) {
    const cause = error.cause instanceof Error && !error.message.includes(error.cause.message)
      ? `: ${error.cause.message}`
      : "";
    return `${error.message}${cause}`;
  }
  return error instanceof Error ? error.message : String(error);
}
