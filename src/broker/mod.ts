/**
 * The MQTT broker.
 *
 * @module
 */

export {
  Broker,
  type BrokerOptions,
  type ClientInfo,
  type Decision,
  type ListenOptions,
  type LogLevel,
} from "./broker.ts";
