/**
 * The key of the slot where a {@linkcode BrokerMachine} keeps its record of a session it attached, on the
 * {@linkcode SessionMachine} itself instead of in a map from session to record: one map entry fewer per
 * connection. Not exported from the package.
 *
 * @module
 */

/** The key of a session's slot for its broker machine's record. */
export const OWNER: unique symbol = Symbol("owner");
