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
export { hashPassword, parsePasswordFile, type PasswordEntry, verifyPassword } from "./password_file.ts";
