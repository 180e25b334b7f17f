/**
 * The broker's figures for Prometheus: the text exposition format (version 0.0.4) that `GET /metrics` of an
 * HTTP listener serves. Names follow Prometheus' conventions: an `mqtt_` prefix, base units (`_bytes`,
 * `_seconds`), `_total` on counters, a `# HELP` and a `# TYPE` line per metric; a node of a cluster labels
 * every sample with `node`.
 *
 * @module
 */

import { ReasonCode } from "../errors.ts";

/** One metric: its samples by label set (`""` when it has none). */
export interface Metric {
  name: string;
  type: "counter" | "gauge";
  help: string;
  /** Label sets (`{key: value}`) and their values. */
  samples: [Record<string, string>, number][];
}

/** The content type of the text exposition format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Reason code names by value, in snake case, for labels: 0x86 is `bad_user_name_or_password`. */
const REASONS = new Map<number, string>(
  Object.entries(ReasonCode).map(([name, code]) => [
    code,
    name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase(),
  ]),
);

/** The label of a reason code: its name, or its hexadecimal value when it has none. */
export function reasonLabel(code: number): string {
  return REASONS.get(code) ?? `0x${code.toString(16).padStart(2, "0")}`;
}

/**
 * Writes metrics in the text exposition format.
 *
 * @param metrics The metrics.
 * @param labels Labels added to every sample (a cluster node's `node`).
 * @returns The text, ending with a newline.
 *
 * @example One counter
 * ```ts
 * import assert from "node:assert/strict";
 * import { exposition } from "./metrics.ts";
 * const text = exposition([
 *   { name: "mqtt_messages_received_total", type: "counter", help: "PUBLISH packets received.", samples: [[{ qos: "1" }, 3]] },
 * ]);
 * assert.equal(text, [
 *   "# HELP mqtt_messages_received_total PUBLISH packets received.",
 *   "# TYPE mqtt_messages_received_total counter",
 *   'mqtt_messages_received_total{qos="1"} 3',
 *   "",
 * ].join("\n"));
 * ```
 */
export function exposition(metrics: readonly Metric[], labels: Record<string, string> = {}): string {
  const lines: string[] = [];
  for (const metric of metrics) {
    lines.push(`# HELP ${metric.name} ${escapeHelp(metric.help)}`, `# TYPE ${metric.name} ${metric.type}`);
    for (const [own, value] of metric.samples) {
      const all = Object.entries({ ...labels, ...own });
      const set = all.length === 0 ? "" : `{${all.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
      lines.push(`${metric.name}${set} ${formatValue(value)}`);
    }
  }
  lines.push("");
  return lines.join("\n");
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function escapeLabel(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
