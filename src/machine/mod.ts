/**
 * The sans-IO MQTT state machines: bytes, commands and the time in; bytes, events and the next deadline out.
 *
 * - {@linkcode ClientMachine}: the client side of a connection and its session.
 * - {@linkcode SessionMachine}: the broker side of one connection.
 * - {@linkcode BrokerMachine}: the routing state shared by a broker's sessions.
 *
 * @example A client machine's first bytes
 * ```ts
 * import { ClientMachine } from "@x/mqtt/machine";
 * const client = new ClientMachine({ clientId: "a" });
 * client.connect(0);
 * console.log(client.pollTransmit()?.[0]); // 16: a CONNECT
 * ```
 *
 * @module
 */

export * from "./client_machine.ts";
export * from "./session_machine.ts";
export * from "./broker_machine.ts";
export type { BrokerClusterSide } from "./broker_cluster.ts";
export * from "./session_state.ts";
export { TopicTree } from "./topic_tree.ts";
export { BrokerViews } from "./broker_views.ts";
export { PacketIdPool } from "./packet_ids.ts";
