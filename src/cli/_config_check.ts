/**
 * The value checks that the JSON configuration's readers share (`broker_config.ts`, `bridge_config.ts`): each
 * returns the value it checked, or throws `Invalid configuration at "KEY": …`.
 *
 * @module
 */

/** Throws `Invalid configuration at "KEY": MESSAGE`. */
export function fail(key: string, message: string): never {
  throw new Error(`Invalid configuration at "${key}": ${message}`);
}

/** A whole number from `minimum` to `maximum`. */
export function integer(value: unknown, key: string, minimum: number, maximum: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < minimum || value > maximum) {
    fail(key, `expected a whole number from ${minimum} to ${maximum}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A non-empty string. */
export function text(value: unknown, key: string): string {
  if (typeof value !== "string" || value === "") {
    fail(key, `expected a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Throws on the first key of `object` that `allowed` does not list, naming it under `where`. */
export function unknownKeys(
  object: Record<string, unknown>,
  allowed: readonly string[],
  where: string,
): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) fail(where === "" ? key : `${where}.${key}`, "unknown key");
  }
}

/** `true` or `false`. */
export function boolean(value: unknown, key: string): boolean {
  if (typeof value !== "boolean") fail(key, `expected true or false, got ${JSON.stringify(value)}`);
  return value;
}

/** An object (not `null`, not an array). */
export function record(value: unknown, key: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(key, "expected an object");
  return value as Record<string, unknown>;
}
