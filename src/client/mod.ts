/**
 * The async MQTT client.
 *
 * @module
 */

export { connect, type ConnectOptions, openTransport, type TlsOptions } from "./connect.ts";
export {
  type ClientOptions,
  type ConnectionEvent,
  type ConnectOverrides,
  MemorySessionStore,
  MqttClient,
  type PublishOptions,
  type ReconnectOptions,
  type SessionStore,
  type SubscribeOptions,
  type WillOptions,
} from "./mqtt_client.ts";
export { Message } from "./message.ts";
export { Subscription, type SubscriptionOwner } from "./subscription.ts";
export { type BrokerAddress, parseBrokerUrl } from "./url.ts";
