/**
 * A tiny timing helper shared by the benchmark scripts in `scripts/bench/`: time a closure for a while and get
 * operations per second, then print the results as an aligned table. It times with `performance.now()` and runs
 * unchanged under Deno, Bun and Node.
 *
 * @module
 */

import process from "node:process";

/** Options of {@linkcode measure} and {@linkcode measureEach}. */
export interface MeasureOptions {
  /** Milliseconds of timed running per closure, split over the rounds. @default 1000 */
  durationMs?: number;
  /** Milliseconds of untimed running first, so the JIT settles; it also picks the batch size. @default 300 */
  warmupMs?: number;
  /** Timed rounds; the result is the median round, so a short disturbance does not skew it. @default 5 */
  rounds?: number;
  /** Operations one call of the closure performs (for example packets decoded from one chunk). @default 1 */
  opsPerCall?: number;
}

/** Every value the measured closures returned, summed; print it so no closure's work can be optimized away. */
let sink = 0;

/**
 * Returns the sum of every value the closures given to {@linkcode measure} have returned so far.
 *
 * @returns The running sum; print it after the benchmarks.
 */
export function sinkValue(): number {
  return sink;
}

/**
 * Calls `fn` for `warmupMs`, then for `durationMs`, and returns how many operations per second it performed.
 *
 * The closure is called in batches and the clock is read once per batch; during warm-up the batch grows until one
 * batch takes at least a millisecond, so reading the clock costs nothing measurable. What `fn` returns is added
 * to a sink (see {@linkcode sinkValue}), so make it depend on the work, for example a sum of output lengths.
 *
 * @param fn The operation; returns a number derived from its result.
 * @param options Durations, rounds and how many operations one call performs.
 * @returns Operations per second (calls per second times `opsPerCall`), the median of the rounds.
 */
export function measure(fn: () => number, options: MeasureOptions = {}): number {
  return measureEach([fn], options)[0];
}

/**
 * Like {@linkcode measure} for several closures that are to be compared: all are warmed up first, then the
 * timed rounds alternate between them, so a disturbance of the machine hits all of them alike.
 *
 * @param fns The operations, each returning a number derived from its result.
 * @param options Durations (per closure), rounds and how many operations one call performs.
 * @returns Operations per second of each closure, in order, each the median of its rounds.
 */
export function measureEach(fns: readonly (() => number)[], options: MeasureOptions = {}): number[] {
  const { durationMs = 1000, warmupMs = 300, rounds = 5, opsPerCall = 1 } = options;
  const batches = fns.map((fn) => warmUp(fn, warmupMs));
  const samples: number[][] = fns.map(() => []);
  for (let round = 0; round < rounds; round++) {
    fns.forEach((fn, i) => samples[i].push(run(fn, batches[i], durationMs / rounds) * opsPerCall));
  }
  return samples.map(median);
}

/** Runs `fn` for `ms` and returns the batch size that takes at least a millisecond (at most 2^24 calls). */
function warmUp(fn: () => number, ms: number): number {
  let acc = 0;
  let batch = 1;
  const end = performance.now() + ms;
  for (;;) {
    const before = performance.now();
    for (let i = 0; i < batch; i++) acc += fn();
    const after = performance.now();
    if (after - before < 1 && batch < 1 << 24) batch *= 2;
    if (after >= end) break;
  }
  sink += acc;
  return batch;
}

/** Calls `fn` in batches for at least `ms` and returns calls per second. */
function run(fn: () => number, batch: number, ms: number): number {
  let acc = 0;
  let calls = 0;
  const start = performance.now();
  const end = start + ms;
  let now = start;
  while (now < end) {
    for (let i = 0; i < batch; i++) acc += fn();
    calls += batch;
    now = performance.now();
  }
  sink += acc;
  return (calls * 1000) / (now - start);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Formats a rate with thousands separators and no decimals, such as `1,234,567`.
 *
 * @param perSecond Operations per second.
 * @returns The rounded number as text.
 */
export function formatRate(perSecond: number): string {
  return Math.round(perSecond).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/**
 * Lays out rows as a plain-text table: the first column left-aligned, every other column right-aligned.
 *
 * @param header The column titles.
 * @param rows The cells, one array per row, as many cells as `header`.
 * @returns The table, one line per row after the header, joined with `\n` (no trailing newline).
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? "").length)));
  return all
    .map((row) =>
      row
        .map((cell, column) => column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))
        .join("   ")
        .trimEnd()
    )
    .join("\n");
}

/**
 * Names the JavaScript runtime, its version and its engine, such as `Deno 2.1.4 (V8 13.0.245.12)`.
 *
 * @returns A one-line description taken from `process.versions`.
 */
export function runtimeName(): string {
  const versions: Record<string, string | undefined> = { ...process.versions };
  if (versions.bun) return `Bun ${versions.bun} (JavaScriptCore)`; // its `v8` entry is only for compatibility
  const name = versions.deno ? `Deno ${versions.deno}` : `Node.js ${versions.node}`;
  return versions.v8 ? `${name} (V8 ${versions.v8})` : name;
}
