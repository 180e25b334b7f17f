/**
 * Debian's Chromium for tests: where it is, and a headless instance driven over the Chrome DevTools Protocol
 * (a WebSocket, which Node, Deno and Bun all have) to open a page, run script in it and take a screenshot.
 */

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { settledWithin } from "./_helpers.ts";

/** The Chromium executable, or `undefined` when there is none (`.ci/run` installs Debian's `chromium`). */
export const chromiumPath: string | undefined = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (path) => {
    try {
      return spawnSync(path, ["--version"]).status === 0;
    } catch {
      return false;
    }
  },
);

/** The flags every test's Chromium runs with: headless, no sandbox (root), nothing reaching out. */
export function chromiumFlags(profile: string): string[] {
  return [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--hide-scrollbars",
    `--user-data-dir=${profile}`,
  ];
}

/** A page of a headless Chromium. */
export interface BrowserPage {
  /** Runs an expression in the page (awaited when it is a promise) and returns its value as JSON. */
  evaluate<T = unknown>(expression: string): Promise<T>;
  /** Waits until an expression is truthy, polling; throws with `what` after `ms`. */
  waitFor(expression: string, what: string, ms?: number): Promise<void>;
  /** A PNG of the page, full length. */
  screenshot(): Promise<Uint8Array>;
  /** What the page logged and threw, for failure messages. */
  readonly console: string[];
  /** Ends the browser and removes its profile. */
  close(): Promise<void>;
}

/**
 * Starts headless Chromium on a page.
 *
 * @param url The page.
 * @param size The window's width and height.
 * @returns The page, once loaded.
 */
export async function openPage(url: string, size = { width: 1280, height: 1000 }): Promise<BrowserPage> {
  if (chromiumPath === undefined) throw new Error("Chromium is not installed");
  const profile = mkdtempSync(join(tmpdir(), "mqtt-chromium-"));
  const child = spawn(chromiumPath, [
    ...chromiumFlags(profile),
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
    `--window-size=${size.width},${size.height}`,
    "about:blank",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  const close = async () => {
    socket?.close();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await settledWithin(exited, 5000);
    }
    // Chromium's helper processes may still be writing to the profile for a moment after the main one died.
    try {
      rmSync(profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
    } catch (error) {
      console.warn(`could not remove ${profile}: ${(error as Error).message}`);
    }
  };
  let socket: WebSocket | undefined;
  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      let err = "";
      const timer = setTimeout(() => reject(new Error(`Chromium did not start within 20 s: ${err}`)), 20_000);
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (chunk: string) => {
        err += chunk;
        const found = /DevTools listening on (ws:\/\/\S+)/.exec(err);
        if (found !== null) {
          clearTimeout(timer);
          resolve(found[1]);
        }
      });
      child.once("exit", (code) => reject(new Error(`Chromium exited (${code}): ${err}`)));
    });
    socket = new WebSocket(endpoint);
    const ws = socket;
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve, { once: true });
      ws.addEventListener("error", () => reject(new Error("could not reach Chromium's DevTools")), {
        once: true,
      });
    });
    const page = await devtools(ws);
    const console: string[] = [];
    const { targetId } = await page.send<{ targetId: string }>("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await page.send<{ sessionId: string }>("Target.attachToTarget", {
      targetId,
      flatten: true,
    });
    const send = <T>(method: string, params: Record<string, unknown> = {}) =>
      page.send<T>(method, params, sessionId);
    page.onEvent((method, params) => {
      if (method === "Runtime.consoleAPICalled") {
        const args = (params.args as { value?: unknown; description?: string }[])
          .map((a) => a.value ?? a.description).join(" ");
        console.push(`${params.type}: ${args}`);
      } else if (method === "Runtime.exceptionThrown") {
        const details = params.exceptionDetails as { text: string; exception?: { description?: string } };
        console.push(`exception: ${details.exception?.description ?? details.text}`);
      }
    });
    await send("Runtime.enable");
    await send("Page.enable");
    const loaded = page.next("Page.loadEventFired");
    await send("Page.navigate", { url });
    await loaded;
    const evaluate = async <T>(expression: string): Promise<T> => {
      const result = await send<{
        result: { value?: T };
        exceptionDetails?: { text: string; exception?: { description?: string } };
      }>("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true });
      if (result.exceptionDetails !== undefined) {
        const details = result.exceptionDetails;
        throw new Error(`in the page: ${details.exception?.description ?? details.text}`);
      }
      return result.result.value as T;
    };
    return {
      console,
      evaluate,
      async waitFor(expression, what, ms = 15_000) {
        const end = Date.now() + ms;
        while (!await evaluate<boolean>(`Boolean(${expression})`)) {
          if (Date.now() > end) {
            throw new Error(`${what}: not within ${ms} ms. The page's console:\n${console.join("\n")}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      },
      async screenshot() {
        const { cssContentSize } = await send<{ cssContentSize: { width: number; height: number } }>(
          "Page.getLayoutMetrics",
        );
        const { data } = await send<{ data: string }>("Page.captureScreenshot", {
          format: "png",
          captureBeyondViewport: true,
          clip: { x: 0, y: 0, width: cssContentSize.width, height: cssContentSize.height, scale: 1 },
        });
        return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Commands and events over a DevTools WebSocket. */
function devtools(ws: WebSocket) {
  let id = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners: ((method: string, params: Record<string, unknown>) => void)[] = [];
  ws.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data));
    if (message.id !== undefined) {
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      if (message.error !== undefined) waiter?.reject(new Error(`DevTools: ${message.error.message}`));
      else waiter?.resolve(message.result);
    } else {
      for (const listener of listeners) listener(message.method, message.params ?? {});
    }
  });
  ws.addEventListener("close", () => {
    for (const waiter of pending.values()) waiter.reject(new Error("Chromium's DevTools connection closed"));
    pending.clear();
  });
  return {
    send<T>(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<T> {
      const message = { id: ++id, method, params, ...sessionId === undefined ? {} : { sessionId } };
      return new Promise<T>((resolve, reject) => {
        pending.set(message.id, { resolve: resolve as (v: unknown) => void, reject });
        ws.send(JSON.stringify(message));
      });
    },
    onEvent(listener: (method: string, params: Record<string, unknown>) => void) {
      listeners.push(listener);
    },
    next(method: string): Promise<void> {
      return new Promise((resolve) => {
        listeners.push((m) => {
          if (m === method) resolve();
        });
      });
    },
  };
}
