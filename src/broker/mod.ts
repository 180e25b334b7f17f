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
  type EnhancedAuthResult,
  type EnhancedAuthStep,
  type ListenOptions,
  type LogFields,
  type LogLevel,
} from "./broker.ts";
export type { BridgeOptions, BridgeTopic } from "./bridge_options.ts";
export { Bridge, type BridgeHost, type BridgeState, type BridgeStats } from "./bridge.ts";
export type { ClusterHost, ClusterLink } from "./cluster_link.ts";
export { hashPassword, parsePasswordFile, type PasswordEntry, verifyPassword } from "./password_file.ts";
export {
  type Access,
  type AclFile,
  canPublish,
  canRead,
  canSubscribe,
  parseAclFile,
  type Rule,
} from "./acl_file.ts";
export { type BrokerStore, openSqliteStore, type SqliteStoreOptions } from "./store.ts";
