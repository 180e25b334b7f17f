/**
 * Small helpers shared by the tests.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { concat } from "../src/bytes.ts";
import type { Message } from "../src/client/message.ts";
import type { Subscription } from "../src/client/subscription.ts";

/** Rejects when `promise` has not settled after `ms` milliseconds, naming `what`. */
export async function within<T>(promise: Promise<T>, ms = 5000, what = "the operation"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Takes `count` messages from a subscription, failing after `ms` milliseconds. */
export function take(subscription: Subscription, count: number, ms = 5000): Promise<Message[]> {
  const messages: Message[] = [];
  if (count === 0) return Promise.resolve(messages);
  return within(
    (async () => {
      for await (const message of subscription) {
        messages.push(message);
        if (messages.length === count) break;
      }
      return messages;
    })(),
    ms,
    `waiting for ${count} messages`,
  );
}

/** Resolves once `promise` settled or `ms` milliseconds passed, whichever comes first; never rejects. */
export function settledWithin(promise: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (promise === undefined) return Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.then(() => {}, () => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
  ]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Deterministic bytes: `length` bytes starting at `seed`. */
export function pattern(length: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

/** Reads until done; `pauseEvery` chunks, sleeps `pauseMs` (a slow reader). */
export async function readAll(
  readable: ReadableStream<Uint8Array>,
  slow?: { pauseEvery: number; pauseMs: number },
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const reader = readable.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    // Chunks are plain Uint8Array, never Buffer.
    assert.equal(Object.getPrototypeOf(r.value), Uint8Array.prototype);
    chunks.push(r.value);
    if (slow !== undefined && chunks.length % slow.pauseEvery === 0) await sleep(slow.pauseMs);
  }
  return concat(chunks);
}

/** Runs a command to its end, giving it `stdin` as its input when set. */
export function run(
  command: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk) => stdout += chunk);
    child.stderr?.on("data", (chunk) => stderr += chunk);
    child.once("error", reject);
    child.once("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    // A command that does not read its input may close it first: EPIPE then says nothing about the test.
    child.stdin?.on("error", () => {});
    child.stdin?.end(stdin);
  });
}
