/**
 * Reads a V8 `.cpuprofile` (node --cpu-prof) and summarises where the time went: the top
 * functions by self time, grouped by file:function (all closures and line numbers of one
 * function name in one file together), and the top files.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { table } from "./report.js";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One row of the summary. */
export interface SelfTimeRow {
  file: string;
  fn: string;
  /** 1-based line of the first node seen for this function. */
  line: number;
  selfMs: number;
}

const ROOT = resolve(import.meta.dirname, "../..");

function shortFile(url: string): string {
  if (!url) return "";
  let f = url.replace(/^file:\/\//, "");
  if (f.startsWith(`${ROOT}/`)) f = f.slice(ROOT.length + 1);
  f = f.replace(/^.*\/node_modules\//, "node_modules/");
  return f;
}

/**
 * Self time per file:function, largest first, and the total and idle time (ms). With
 * `startAt`, samples before the first one whose own frame is in a file containing `startAt`
 * are left out (process start-up and module loading), and their time is `skippedMs`.
 */
export function selfTimes(
  path: string,
  startAt?: string,
): { rows: SelfTimeRow[]; totalMs: number; idleMs: number; skippedMs: number } {
  const p = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let first = 0;
  let skippedUs = 0;
  if (startAt) {
    first = p.samples.findIndex((id) => byId.get(id)?.callFrame.url.includes(startAt));
    if (first < 0) first = 0;
    for (let i = 1; i <= first; i++) skippedUs += p.timeDeltas[i];
  }
  // Sample i lasts until sample i+1 (timeDeltas[i+1]); the last one is given nothing.
  for (let i = first; i < p.samples.length - 1; i++) {
    const id = p.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + p.timeDeltas[i + 1]);
  }
  const groups = new Map<string, SelfTimeRow>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    totalUs += us;
    const file = shortFile(n.callFrame.url);
    const name = n.callFrame.functionName || "(anonymous)";
    const fn = name.length > 60 ? `${name.slice(0, 57)}...` : name;
    if (fn === "(idle)") idleUs += us;
    const key = `${file}\0${fn}`;
    const g = groups.get(key);
    if (g) g.selfMs += us / 1000;
    else groups.set(key, { file, fn, line: n.callFrame.lineNumber + 1, selfMs: us / 1000 });
  }
  const rows = [...groups.values()].sort((a, b) => b.selfMs - a.selfMs);
  return { rows, totalMs: totalUs / 1000, idleMs: idleUs / 1000, skippedMs: skippedUs / 1000 };
}

/** A text summary: top `n` functions by self time, then the top files (see `selfTimes`). */
export function summariseProfile(path: string, n = 20, startAt?: string): string {
  const { rows, totalMs, idleMs, skippedMs } = selfTimes(path, startAt);
  const busy = totalMs - idleMs;
  const pct = (ms: number): string => `${((ms / busy) * 100).toFixed(1)}%`;
  const top = rows.filter((r) => r.fn !== "(idle)").slice(0, n);
  const byFile = new Map<string, number>();
  for (const r of rows) {
    if (r.fn === "(idle)") continue;
    const f = r.file || `(${r.fn.replace(/[()]/g, "")})`;
    byFile.set(f, (byFile.get(f) ?? 0) + r.selfMs);
  }
  const files = [...byFile.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
  const skipped = startAt
    ? `${skippedMs.toFixed(0)} ms of start-up before the first sample in ${startAt} left out; `
    : "";
  return [
    `${path}:`,
    `${skipped}${totalMs.toFixed(0)} ms sampled, ${idleMs.toFixed(0)} ms idle, ${busy.toFixed(0)} ms busy (percentages are of busy time)`,
    "",
    table(
      ["#", "self ms", "self %", "function", "file:line"],
      top.map((r, i) => [
        String(i + 1),
        r.selfMs.toFixed(0),
        pct(r.selfMs),
        r.fn,
        // Lines of transpiled TypeScript (tsx) are not source lines: only the file is shown.
        !r.file ? "(native / VM)" : r.file.endsWith(".ts") ? r.file : `${r.file}:${r.line}`,
      ]),
    ),
    "",
    table(
      ["file (self time of all its functions)", "self ms", "self %"],
      files.map(([f, ms]) => [f, ms.toFixed(0), pct(ms)]),
    ),
  ].join("\n");
}

/** Where a profile's busy time went, by kind of work (see `costBreakdown`). */
export interface CostBreakdown {
  /** AEAD and header protection: node:crypto internals and src/crypto. */
  cryptoMs: number;
  /** Datagram I/O: node:dgram (send path and the sendmsg/recvmsg syscalls it wraps). */
  syscallsMs: number;
  /** Our protocol code: src/quic, src/net, src/util, src/tls (framing, ACKs, recovery, streams...). */
  protocolMs: number;
  /** The garbage collector. */
  gcMs: number;
  /** Everything else: Node internals (timers, events, streams, task queues), V8 "(program)". */
  runtimeMs: number;
  /** Busy time (all of the above). */
  busyMs: number;
}

/** The kind of work a profile row is (see `CostBreakdown`). */
function kindOf(row: SelfTimeRow): keyof Omit<CostBreakdown, "busyMs"> {
  const f = row.file;
  if (f.startsWith("node:internal/crypto") || f.startsWith("src/crypto/")) return "cryptoMs";
  if (f === "node:dgram" || f.startsWith("node:internal/dgram")) return "syscallsMs";
  if (/^src\/(quic|net|util|tls)\//.test(f)) return "protocolMs";
  if (row.fn === "(garbage collector)") return "gcMs";
  return "runtimeMs";
}

/**
 * Busy time of a profile split into crypto, datagram syscalls, our protocol code, GC and the
 * rest of the runtime (idle excluded; `startAt` as in `selfTimes`).
 */
export function costBreakdown(path: string, startAt?: string): CostBreakdown {
  const { rows } = selfTimes(path, startAt);
  const out: CostBreakdown = { cryptoMs: 0, syscallsMs: 0, protocolMs: 0, gcMs: 0, runtimeMs: 0, busyMs: 0 };
  for (const r of rows) {
    if (r.fn === "(idle)") continue;
    out[kindOf(r)] += r.selfMs;
    out.busyMs += r.selfMs;
  }
  return out;
}

/**
 * The breakdown as a table of µs per packet (`packets`: what that end sent or received) and
 * share of busy time, with the overhead on top of crypto and syscalls: protocol code alone, and
 * everything that is neither (protocol + GC + runtime).
 */
export function breakdownTable(b: CostBreakdown, packets: number): string {
  const us = (ms: number): string => ((ms * 1000) / packets).toFixed(2);
  const pct = (ms: number): string => `${((ms / b.busyMs) * 100).toFixed(1)}%`;
  const base = b.cryptoMs + b.syscallsMs;
  const rows: [string, number][] = [
    ["crypto (AEAD + header protection)", b.cryptoMs],
    ["datagram syscalls (node:dgram)", b.syscallsMs],
    ["protocol (src/quic, src/net, src/util, src/tls)", b.protocolMs],
    ["garbage collector", b.gcMs],
    ["other runtime (timers, events, streams, V8)", b.runtimeMs],
    ["busy total", b.busyMs],
  ];
  return [
    table(
      ["kind of work", "ms", "µs/packet", "% of busy"],
      rows.map(([k, ms]) => [k, ms.toFixed(0), us(ms), pct(ms)]),
    ),
    `on top of crypto + syscalls (${us(base)} µs/packet): protocol code ${((b.protocolMs / base) * 100).toFixed(0)}%, ` +
      `everything else (protocol + GC + runtime) ${(((b.busyMs - base) / base) * 100).toFixed(0)}%`,
  ].join("\n");
}
