/**
 * Password files in mosquitto_passwd's format, verified with WebCrypto:
 * `user:$7$iterations$salt$hash` (PBKDF2-HMAC-SHA512, mosquitto 2's default) and `user:$6$salt$hash`
 * (SHA-512 of password and salt, mosquitto 1.6's). Salts and hashes are base64.
 *
 * @module
 */

const encoder = new TextEncoder();

/** One user's hashed password. */
export type PasswordEntry =
  | {
    kind: "pbkdf2-sha512";
    iterations: number;
    salt: Uint8Array<ArrayBuffer>;
    hash: Uint8Array<ArrayBuffer>;
  }
  | { kind: "sha512"; salt: Uint8Array<ArrayBuffer>; hash: Uint8Array<ArrayBuffer> };

function fromBase64(text: string, what: string): Uint8Array<ArrayBuffer> {
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    throw new SyntaxError(`Cannot read ${what}: not base64`);
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/**
 * Parses a password file. Blank lines and lines starting with `#` are skipped.
 *
 * @param text The file's contents.
 * @returns The entries by user name.
 * @throws {SyntaxError} Naming the line that is not `user:$7$…` or `user:$6$…`.
 *
 * @example Read a line written by mosquitto_passwd
 * ```ts
 * import { parsePasswordFile } from "@x/mqtt/broker";
 * const users = parsePasswordFile("ada:$7$101$RJ6VmqK8jouGS69u$" + "A".repeat(86) + "==\n");
 * console.log(users.get("ada")?.kind); // "pbkdf2-sha512"
 * ```
 */
export function parsePasswordFile(text: string): Map<string, PasswordEntry> {
  const users = new Map<string, PasswordEntry>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    const where = `password file line ${i + 1}`;
    if (colon <= 0) throw new SyntaxError(`Cannot read ${where}: expected "user:hash"`);
    const user = line.slice(0, colon);
    const parts = line.slice(colon + 1).split("$");
    if (parts[0] !== "") {
      throw new SyntaxError(`Cannot read ${where} for "${user}": the hash is not $6$ or $7$`);
    }
    if (parts[1] === "7" && parts.length === 5) {
      const iterations = Number(parts[2]);
      if (!Number.isInteger(iterations) || iterations < 1) {
        throw new SyntaxError(`Cannot read ${where} for "${user}": bad iteration count "${parts[2]}"`);
      }
      users.set(user, {
        kind: "pbkdf2-sha512",
        iterations,
        salt: fromBase64(parts[3], where),
        hash: fromBase64(parts[4], where),
      });
    } else if (parts[1] === "6" && parts.length === 4) {
      users.set(user, {
        kind: "sha512",
        salt: fromBase64(parts[2], where),
        hash: fromBase64(parts[3], where),
      });
    } else {
      throw new SyntaxError(`Cannot read ${where} for "${user}": the hash is not $6$ or $7$`);
    }
  }
  return users;
}

async function derive(entry: PasswordEntry, password: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  if (entry.kind === "sha512") {
    const input = new Uint8Array(password.length + entry.salt.length);
    input.set(password);
    input.set(entry.salt, password.length);
    return new Uint8Array(await crypto.subtle.digest("SHA-512", input));
  }
  const key = await crypto.subtle.importKey("raw", password, "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-512", salt: entry.salt, iterations: entry.iterations },
    key,
    entry.hash.length * 8,
  );
  return new Uint8Array(bits);
}

/**
 * Checks a password against an entry, in time that does not depend on where they differ.
 *
 * @param entry The user's entry.
 * @param password The password the client sent.
 * @returns `true` when it matches.
 *
 * @example Verify a password
 * ```ts
 * import { hashPassword, parsePasswordFile, verifyPassword } from "@x/mqtt/broker";
 * const users = parsePasswordFile(`ada:${await hashPassword("secret")}`);
 * console.log(await verifyPassword(users.get("ada")!, new TextEncoder().encode("secret"))); // true
 * ```
 */
export async function verifyPassword(entry: PasswordEntry, password: Uint8Array): Promise<boolean> {
  const derived = await derive(entry, Uint8Array.from(password));
  if (derived.length !== entry.hash.length) return false;
  let difference = 0;
  for (let i = 0; i < derived.length; i++) difference |= derived[i] ^ entry.hash[i];
  return difference === 0;
}

/**
 * Hashes a password as mosquitto_passwd does by default: PBKDF2-HMAC-SHA512, 101 iterations, a 12-byte random
 * salt, a 64-byte hash.
 *
 * @param password The password.
 * @param options The iteration count.
 * @returns The `$7$iterations$salt$hash` part of a password file line.
 *
 * @example Write a password file line
 * ```ts
 * import { hashPassword } from "@x/mqtt/broker";
 * console.log(`ada:${await hashPassword("secret")}`); // ada:$7$101$…$…
 * ```
 */
export async function hashPassword(password: string, options: { iterations?: number } = {}): Promise<string> {
  const iterations = options.iterations ?? 101;
  const salt = crypto.getRandomValues(new Uint8Array(12));
  const hash = await derive(
    { kind: "pbkdf2-sha512", iterations, salt, hash: new Uint8Array(64) },
    encoder.encode(password),
  );
  return `$7$${iterations}$${toBase64(salt)}$${toBase64(hash)}`;
}
