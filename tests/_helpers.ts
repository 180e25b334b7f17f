/**
 * Small helpers shared by the tests.
 */

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
