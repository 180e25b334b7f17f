/**
 * Byte and text encodings that the cluster's names ({@linkcode "./subjects.ts"}) and envelopes
 * ({@linkcode "./envelope.ts"}) share: base64url without padding, UTF-8 that keeps lone surrogates (WTF-8), and
 * the 64-bit FNV-1a hash. Web standards only; private to `src/cluster/`.
 *
 * @module
 */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/** The ASCII code of each base64url digit. */
const DIGITS = new Uint8Array(64);
/** The value of each ASCII code as a base64url digit, or -1. */
const VALUES = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) {
  DIGITS[i] = ALPHABET.charCodeAt(i);
  VALUES[DIGITS[i]] = i;
}

const asciiDecoder = new TextDecoder();

/** Makes a string of ASCII codes: `String.fromCharCode` for short ones, the platform's decoder for long ones. */
function asciiString(codes: Uint8Array): string {
  if (codes.length <= 64) return String.fromCharCode.apply(null, codes as unknown as number[]);
  return asciiDecoder.decode(codes);
}

/**
 * Encodes bytes as base64url (RFC 4648 §5) without padding: digits `A-Z a-z 0-9 - _` only.
 *
 * @param bytes The bytes.
 * @returns Their base64url text, `ceil(4 * length / 3)` characters.
 */
export function toBase64Url(bytes: Uint8Array): string {
  const length = bytes.length;
  const whole = length - (length % 3);
  const out = new Uint8Array(Math.ceil((length * 4) / 3));
  let o = 0;
  for (let i = 0; i < whole; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out[o] = DIGITS[n >>> 18];
    out[o + 1] = DIGITS[(n >>> 12) & 63];
    out[o + 2] = DIGITS[(n >>> 6) & 63];
    out[o + 3] = DIGITS[n & 63];
    o += 4;
  }
  if (length - whole === 1) {
    const n = bytes[whole];
    out[o] = DIGITS[n >>> 2];
    out[o + 1] = DIGITS[(n & 3) << 4];
  } else if (length - whole === 2) {
    const n = (bytes[whole] << 8) | bytes[whole + 1];
    out[o] = DIGITS[n >>> 10];
    out[o + 1] = DIGITS[(n >>> 4) & 63];
    out[o + 2] = DIGITS[(n & 15) << 2];
  }
  return asciiString(out);
}

function digit(text: string, index: number): number {
  const c = text.charCodeAt(index);
  return c < 128 ? VALUES[c] : -1;
}

/**
 * Decodes base64url without padding, strictly: only the 64 digits, no length of the form 4n + 1, and the unused
 * low bits of the last digit zero, so that every byte string has exactly one text that decodes to it.
 *
 * @param text The text.
 * @param start Where the digits start in `text`.
 * @returns The bytes, or `undefined` when `text` is not canonical base64url.
 */
export function fromBase64Url(text: string, start = 0): Uint8Array | undefined {
  const length = text.length - start;
  const rest = length & 3;
  if (rest === 1) return undefined;
  const out = new Uint8Array((length >> 2) * 3 + (rest === 0 ? 0 : rest - 1));
  const whole = text.length - rest;
  let o = 0;
  for (let i = start; i < whole; i += 4) {
    const a = digit(text, i);
    const b = digit(text, i + 1);
    const c = digit(text, i + 2);
    const d = digit(text, i + 3);
    if ((a | b | c | d) < 0) return undefined;
    out[o] = (a << 2) | (b >> 4);
    out[o + 1] = ((b & 15) << 4) | (c >> 2);
    out[o + 2] = ((c & 3) << 6) | d;
    o += 3;
  }
  if (rest === 2) {
    const a = digit(text, whole);
    const b = digit(text, whole + 1);
    if ((a | b) < 0 || (b & 15) !== 0) return undefined;
    out[o] = (a << 2) | (b >> 4);
  } else if (rest === 3) {
    const a = digit(text, whole);
    const b = digit(text, whole + 1);
    const c = digit(text, whole + 2);
    if ((a | b | c) < 0 || (c & 3) !== 0) return undefined;
    out[o] = (a << 2) | (b >> 4);
    out[o + 1] = ((b & 15) << 4) | (c >> 2);
  }
  return out;
}

/**
 * Encodes any JavaScript string as UTF-8, a lone surrogate included (as the three bytes of its code point, the
 * WTF-8 rule), so that distinct strings always give distinct bytes. Well-formed strings get plain UTF-8.
 *
 * @param text The string.
 * @returns Its bytes.
 */
export function encodeWtf8(text: string): Uint8Array {
  const length = text.length;
  let size = length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      size += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      size += 2; // four bytes for two UTF-16 units
      i++;
    } else {
      size += 2;
    }
  }
  const out = new Uint8Array(size);
  let p = 0;
  for (let i = 0; i < length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out[p++] = c;
    } else if (c < 0x800) {
      out[p++] = 0xc0 | (c >> 6);
      out[p++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      c = 0x10000 + ((c - 0xd800) << 10) + (text.charCodeAt(++i) - 0xdc00);
      out[p++] = 0xf0 | (c >> 18);
      out[p++] = 0x80 | ((c >> 12) & 0x3f);
      out[p++] = 0x80 | ((c >> 6) & 0x3f);
      out[p++] = 0x80 | (c & 0x3f);
    } else {
      out[p++] = 0xe0 | (c >> 12);
      out[p++] = 0x80 | ((c >> 6) & 0x3f);
      out[p++] = 0x80 | (c & 0x3f);
    }
  }
  return out;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/**
 * Decodes what {@linkcode encodeWtf8} makes: UTF-8 in shortest form, where a surrogate code point may appear
 * alone but a high surrogate followed by a low one (which `encodeWtf8` writes as one four-byte sequence) may not.
 *
 * @param bytes The bytes.
 * @returns The string, or `undefined` when the bytes are not in that form.
 */
export function decodeWtf8(bytes: Uint8Array): string | undefined {
  const length = bytes.length;
  const units: number[] = [];
  let afterHigh = false;
  for (let i = 0; i < length;) {
    const b = bytes[i];
    let c: number;
    if (b < 0x80) {
      c = b;
      i += 1;
    } else if (b >= 0xc2 && b <= 0xdf) {
      if (i + 1 >= length || (bytes[i + 1] & 0xc0) !== 0x80) return undefined;
      c = ((b & 0x1f) << 6) | (bytes[i + 1] & 0x3f);
      i += 2;
    } else if (b >= 0xe0 && b <= 0xef) {
      if (i + 2 >= length || (bytes[i + 1] & 0xc0) !== 0x80 || (bytes[i + 2] & 0xc0) !== 0x80) {
        return undefined;
      }
      c = ((b & 0x0f) << 12) | ((bytes[i + 1] & 0x3f) << 6) | (bytes[i + 2] & 0x3f);
      if (c < 0x800) return undefined; // overlong
      if (afterHigh && isLowSurrogate(c)) return undefined; // a pair must be one four-byte sequence
      i += 3;
    } else if (b >= 0xf0 && b <= 0xf4) {
      if (
        i + 3 >= length || (bytes[i + 1] & 0xc0) !== 0x80 || (bytes[i + 2] & 0xc0) !== 0x80 ||
        (bytes[i + 3] & 0xc0) !== 0x80
      ) {
        return undefined;
      }
      c = ((b & 0x07) << 18) | ((bytes[i + 1] & 0x3f) << 12) | ((bytes[i + 2] & 0x3f) << 6) |
        (bytes[i + 3] & 0x3f);
      if (c < 0x10000 || c > 0x10ffff) return undefined; // overlong or beyond Unicode
      i += 4;
      c -= 0x10000;
      units.push(0xd800 + (c >> 10));
      c = 0xdc00 + (c & 0x3ff);
    } else {
      return undefined;
    }
    units.push(c);
    afterHigh = c >= 0xd800 && c <= 0xdbff;
  }
  let text = "";
  for (let i = 0; i < units.length; i += 8192) {
    text += String.fromCharCode.apply(null, units.slice(i, i + 8192));
  }
  return text;
}

/**
 * The 64-bit FNV-1a hash of some bytes, as 16 lowercase hexadecimal digits. Fast and well spread, but not a
 * cryptographic hash: collisions can be constructed on purpose.
 *
 * @param bytes The bytes.
 * @returns The hash in hexadecimal.
 */
export function fnv1a64(bytes: Uint8Array): string {
  // The state as two 32-bit halves; the prime is 2^40 + 0x1b3.
  let high = 0xcbf29ce4;
  let low = 0x84222325;
  for (let i = 0; i < bytes.length; i++) {
    low ^= bytes[i];
    low >>>= 0;
    const product = low * 0x1b3; // below 2^41: exact
    const carry = Math.floor(product / 0x1_0000_0000);
    high = (high * 0x1b3 + carry + ((low << 8) >>> 0)) >>> 0;
    low = product >>> 0;
  }
  return high.toString(16).padStart(8, "0") + low.toString(16).padStart(8, "0");
}
