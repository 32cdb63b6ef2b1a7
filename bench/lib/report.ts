/**
 * Shared output helpers for the benchmarks: an aligned text table, progress lines on stderr,
 * number formatting and the JSON result file under bench/results/.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** bench/results/ */
export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "results");

/** The first `leftColumns` columns left-aligned (default 1), the others right-aligned. */
export function table(header: string[], rows: string[][], leftColumns = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** A progress line on stderr (rewritten in place on a terminal). */
export function progress(msg: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${msg}`);
  else process.stderr.write(`${msg}\n`);
}

/** Clears the progress line on a terminal. */
export function progressDone(): void {
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
}

/** Where and on what the benchmark ran. */
export function machine(): { node: string; platform: string; cpu: string; cores: number } {
  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: cpus()[0]?.model ?? "unknown CPU",
    cores: cpus().length,
  };
}

/** Writes `bench/results/<name>` as pretty JSON and returns its path. */
export function writeResult(name: string, json: unknown): string {
  const out = join(RESULTS_DIR, name);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(json, null, 2)}\n`);
  return out;
}

/** The median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A percentile (0-100) by nearest rank of a non-empty list. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** A value of `--name V` or `--name=V` in argv. */
export function flag(argv: string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === name) return argv[i + 1];
    if (argv[i].startsWith(`${name}=`)) return argv[i].slice(name.length + 1);
  }
  return undefined;
}

/** Fixed decimals, or "-" for a missing value. */
export function fmt(x: number | undefined, digits = 1): string {
  return x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits);
}

/** One target of issue 6, held against a measured value (for the summary in bench/RESULTS.md). */
export interface TargetResult {
  /** The target as the issue states it, e.g. "p99 per-topic ≤ 1/3 of MQTT over TCP (2 % loss, 50 ms)". */
  target: string;
  /** What was measured, in words and numbers, e.g. "0.71 (111 ms vs 157 ms)". */
  measured: string;
  met: boolean;
}

/** A markdown table: the first `leftColumns` columns left-aligned, the others right-aligned. */
export function mdTable(header: string[], rows: string[][], leftColumns = 1): string {
  const align = header.map((_, i) => (i < leftColumns ? ":--" : "--:"));
  const line = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`;
  return [line(header), `| ${align.join(" | ")} |`, ...rows.map(line)].join("\n");
}

/**
 * Writes `bench/results/<name>.md`, this benchmark's section of bench/RESULTS.md, and
 * `bench/results/<name>.targets.json` with its targets. `md` starts with a `### ` heading and
 * holds the command that produced it, the tables and links to plots relative to bench/
 * (`![latency CDF](results/hol-cdf.svg)`). `npm run bench` (bench/run.ts) assembles the sections.
 */
export function writeMarkdown(name: string, md: string, targets: TargetResult[] = []): string {
  const out = join(RESULTS_DIR, `${name}.md`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${md.trimEnd()}\n`);
  writeFileSync(join(RESULTS_DIR, `${name}.targets.json`), `${JSON.stringify(targets, null, 2)}\n`);
  return out;
}
