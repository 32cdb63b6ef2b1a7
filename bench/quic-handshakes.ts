/**
 * Handshakes per second for a QUIC server on one core, and time to first byte.
 *
 * The server runs in its own process, pinned to CPU 1 with taskset (when there are 2+ CPUs and
 * taskset exists), so "one core" is literal: its event loop, GC and libuv threads share that
 * core. The load comes from a second process pinned to CPU 0:
 *
 *   - mquictt clients (node crypto, one UDP socket): each connection does the handshake,
 *     `GET /bench/1` on a bidi stream, reads the byte and the FIN, and closes without waiting
 *     out the closing period; `--concurrency C` connections are in flight at once
 *     (1 = sequential). Handshake time and time to first byte (connect() called → first
 *     response byte) are measured per connection.
 *   - quinn clients (Rust, cheaper per connection, so they can saturate a slower server):
 *     P quinn-peer processes in parallel, each doing M connections one after another
 *     (`--connections M`). Only the aggregate rate is known for these (process wall time,
 *     including quinn's start-up and its final wait for the endpoint to go idle).
 *
 * The server's CPU time during the measured phase comes from /proc/<pid>/stat, so
 * "server CPU ms per handshake" and "capacity of one core" (1 / that) hold even when the load
 * generator, not the server, is the bottleneck. The load always uses node crypto; the server
 * runs with the node and the noble provider (and quinn, for reference). Each case warms up first.
 *
 *   npx tsx bench/quic-handshakes.ts           full run (~1-2 min)
 *   npx tsx bench/quic-handshakes.ts --quick   CI smoke run (a few seconds)
 *   npx tsx bench/quic-handshakes.ts --profile DIR   CPU-profile the mquictt server (node crypto)
 *       under quinn load; profiles in DIR, a top-20 self-time summary on stdout
 *
 * Prints a table on stdout, progress on stderr, writes bench/results/handshakes.json and its
 * bench/RESULTS.md section handshakes.md (handshakes-quick.* for --quick).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { summariseProfile } from "./lib/cpu-profile.js";
import {
  type Child,
  canPin,
  cpuSecondsOf,
  mainThreadProfile,
  resultOf,
  spawnPeer,
  spawnProgram,
} from "./lib/procs.js";
import { quinnPeerBinary } from "./lib/quinn-peer.js";
import {
  flag,
  fmt,
  machine,
  mdTable,
  median,
  percentile,
  progress,
  progressDone,
  table,
  writeMarkdown,
  writeResult,
} from "./lib/report.js";

type Server = "mquictt-node" | "mquictt-noble" | "quinn";
type Load = { kind: "mquictt"; concurrency: number } | { kind: "quinn"; processes: number };

interface Case {
  id: string;
  server: Server;
  load: Load;
}

interface Outcome {
  count: number;
  failures: number;
  seconds: number;
  perSec: number;
  serverCpuSeconds: number | undefined;
  serverCpuMsPerHandshake: number | undefined;
  serverCpuUtil: number | undefined;
  handshakeMs?: { p50: number; p99: number };
  ttfbMs?: { p50: number; p99: number };
}

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const COUNT = Number(flag(argv, "--count") ?? (quick ? 30 : 400));
const WARMUP = Number(flag(argv, "--warmup") ?? (quick ? 10 : 50));
const CONCURRENCY = Number(flag(argv, "--concurrency") ?? 8);
const QUINN_PROCS = Number(flag(argv, "--quinn-clients") ?? 4);
const profileDir = flag(argv, "--profile");
const pin = canPin(cpus().length) && !argv.includes("--no-pin");
const SERVER_CPU = pin ? "1" : undefined;
const LOAD_CPU = pin ? "0" : undefined;

function cases(): Case[] {
  if (profileDir)
    return [
      { id: "mquictt-node/quinn", server: "mquictt-node", load: { kind: "quinn", processes: QUINN_PROCS } },
    ];
  const list: Case[] = [];
  const servers: Server[] = quick ? ["mquictt-node"] : ["mquictt-node", "mquictt-noble", "quinn"];
  for (const server of servers) {
    list.push({ id: `${server}/seq`, server, load: { kind: "mquictt", concurrency: 1 } });
    list.push({
      id: `${server}/c${CONCURRENCY}`,
      server,
      load: { kind: "mquictt", concurrency: CONCURRENCY },
    });
    if (!quick) list.push({ id: `${server}/quinn`, server, load: { kind: "quinn", processes: QUINN_PROCS } });
  }
  return list;
}

function loadLabel(l: Load): string {
  return l.kind === "mquictt"
    ? l.concurrency === 1
      ? "mquictt client, sequential"
      : `mquictt client, ${l.concurrency} concurrent`
    : `${l.processes} quinn clients in parallel`;
}

const www = mkdtempSync(join(tmpdir(), "mquictt-bench-hs-"));

async function startServer(s: Server): Promise<{ child: Child; port: number }> {
  const child =
    s === "quinn"
      ? spawnProgram(quinnPeerBinary(), ["server", "--listen", "127.0.0.1:0", "--www", www], {
          cpus: SERVER_CPU,
        })
      : spawnPeer("mquictt-server", ["--crypto", s === "mquictt-node" ? "node" : "noble"], {
          cpus: SERVER_CPU,
          cpuProfile: profileDir,
        });
  const port = Number((await child.waitFor(/listening on .*:(\d+)/, 60_000))[1]);
  return { child, port };
}

async function quinnLoad(port: number, processes: number, perProcess: number): Promise<number> {
  const t0 = performance.now();
  const clients = Array.from({ length: processes }, () =>
    spawnProgram(
      quinnPeerBinary(),
      [
        "client",
        "--insecure",
        "--downloads",
        www,
        "--connections",
        String(perProcess),
        `https://127.0.0.1:${port}/bench/1`,
      ],
      { cpus: LOAD_CPU },
    ),
  );
  const codes = await Promise.all(clients.map((c) => c.exited()));
  const bad = codes.findIndex((c) => c !== 0);
  if (bad >= 0) throw new Error(`quinn client exited with ${codes[bad]}:\n${clients[bad].output()}`);
  return (performance.now() - t0) / 1000;
}

async function runCase(c: Case): Promise<Outcome> {
  const { child: server, port } = await startServer(c.server);
  const pid = server.proc.pid;
  try {
    if (c.load.kind === "mquictt") {
      const load = spawnPeer(
        "mquictt-handshakes",
        [
          "--port",
          String(port),
          "--count",
          String(COUNT),
          "--warmup",
          String(WARMUP),
          "--concurrency",
          String(c.load.concurrency),
          "--crypto",
          "node",
        ],
        { cpus: LOAD_CPU },
      );
      await load.waitFor(/^MEASURING$/, 120_000);
      const cpu0 = cpuSecondsOf(pid);
      const r = await resultOf<{
        count: number;
        failures: number;
        seconds: number;
        handshakeMs: number[];
        ttfbMs: number[];
      }>(load, 600_000);
      const cpu1 = cpuSecondsOf(pid);
      await load.exited();
      const cpu = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined;
      return {
        count: r.count,
        failures: r.failures,
        seconds: r.seconds,
        perSec: r.count / r.seconds,
        serverCpuSeconds: cpu,
        serverCpuMsPerHandshake: cpu === undefined ? undefined : (cpu * 1000) / r.count,
        serverCpuUtil: cpu === undefined ? undefined : cpu / r.seconds,
        handshakeMs: { p50: median(r.handshakeMs), p99: percentile(r.handshakeMs, 99) },
        ttfbMs: { p50: median(r.ttfbMs), p99: percentile(r.ttfbMs, 99) },
      };
    }
    const per = Math.max(1, Math.round(COUNT / c.load.processes));
    await quinnLoad(port, c.load.processes, Math.max(1, Math.round(WARMUP / c.load.processes)));
    const cpu0 = cpuSecondsOf(pid);
    const seconds = await quinnLoad(port, c.load.processes, per);
    const cpu1 = cpuSecondsOf(pid);
    const count = per * c.load.processes;
    const cpu = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined;
    return {
      count,
      failures: 0,
      seconds,
      perSec: count / seconds,
      serverCpuSeconds: cpu,
      serverCpuMsPerHandshake: cpu === undefined ? undefined : (cpu * 1000) / count,
      serverCpuUtil: cpu === undefined ? undefined : cpu / seconds,
    };
  } finally {
    await server.stop();
  }
}

function gitDescribe(): string {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src"], { encoding: "utf8" }).trim();
    return dirty ? `${head} + uncommitted changes in src/` : head;
  } catch {
    return "unknown";
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  if (profileDir) {
    rmSync(profileDir, { recursive: true, force: true });
    mkdirSync(profileDir, { recursive: true });
  }
  const list = cases();
  if (list.some((c) => c.server === "quinn" || c.load.kind === "quinn")) {
    progress("locating (or building) the quinn peer...");
    quinnPeerBinary();
  }
  const results: Array<{ c: Case; o: Outcome }> = [];
  for (const [i, c] of list.entries()) {
    progress(`[${i + 1}/${list.length}] ${c.server} ← ${loadLabel(c.load)}: ${WARMUP} warm-up + ${COUNT}...`);
    const o = await runCase(c);
    results.push({ c, o });
    progress(
      `[${i + 1}/${list.length}] ${c.server} ← ${loadLabel(c.load)}: ${o.perSec.toFixed(0)} handshakes/s, ` +
        `server CPU ${fmt(o.serverCpuMsPerHandshake, 2)} ms each`,
    );
  }
  progressDone();

  const m = machine();
  console.log(
    `QUIC handshakes (each: handshake + GET /bench/1 + close), ${COUNT} per case after ${WARMUP} warm-up` +
      `${quick ? ", QUICK smoke run" : ""}`,
  );
  console.log(
    `${m.cpu} (${m.cores} cores), node ${m.node}, mquictt ${gitDescribe()}; ` +
      (pin ? "server pinned to CPU 1, load to CPU 0" : "not pinned") +
      "; server and load in separate processes\n",
  );
  const header = [
    "server",
    "load",
    "hs/s",
    "server CPU",
    "CPU ms/hs",
    "1-core capacity hs/s",
    "handshake p50/p99 ms",
    "TTFB p50/p99 ms",
  ];
  const rows = results.map(({ c, o }) => [
    c.server,
    loadLabel(c.load),
    o.perSec.toFixed(0),
    o.serverCpuUtil === undefined ? "-" : `${(o.serverCpuUtil * 100).toFixed(0)}%`,
    fmt(o.serverCpuMsPerHandshake, 2),
    o.serverCpuMsPerHandshake ? (1000 / o.serverCpuMsPerHandshake).toFixed(0) : "-",
    o.handshakeMs ? `${fmt(o.handshakeMs.p50, 2)} / ${fmt(o.handshakeMs.p99, 2)}` : "-",
    o.ttfbMs ? `${fmt(o.ttfbMs.p50, 2)} / ${fmt(o.ttfbMs.p99, 2)}` : "-",
  ]);
  console.log(table(header, rows, 2));
  // One-core capacity of each mquictt server against the quinn server, same load, same run.
  const capacity = (server: Server, kind: Load["kind"]): number | undefined => {
    const ms = results.find((r) => r.c.server === server && r.c.load.kind === kind)?.o
      .serverCpuMsPerHandshake;
    return ms ? 1000 / ms : undefined;
  };
  const quinnCap = capacity("quinn", "quinn");
  const ratioLines: string[] = [];
  for (const s of ["mquictt-node", "mquictt-noble"] as const) {
    const cap = capacity(s, "quinn");
    if (cap !== undefined && quinnCap !== undefined)
      ratioLines.push(
        `- ${s}: ${(cap / quinnCap).toFixed(2)}x quinn's one-core handshake capacity (${cap.toFixed(0)} vs ${quinnCap.toFixed(0)} handshakes/s, quinn load)`,
      );
  }
  if (ratioLines.length > 0) console.log(`\n${ratioLines.map((l) => l.slice(2)).join("\n")}`);
  const failures = results.reduce((n, r) => n + r.o.failures, 0);
  if (failures > 0) console.log(`\n${failures} connection(s) failed (see stderr)`);

  if (profileDir) {
    rmSync(www, { recursive: true, force: true });
    console.log(`\n${summariseProfile(mainThreadProfile(profileDir), 20, "src/quic/")}`);
    return;
  }
  const out = writeResult(quick ? "handshakes-quick.json" : "handshakes.json", {
    date: new Date().toISOString(),
    quick,
    ...m,
    mquictt: gitDescribe(),
    loadavg: loadavg(),
    pinned: pin,
    method:
      "server in its own process (pinned to CPU 1 when possible), load in another (CPU 0); each connection: " +
      "handshake, GET /bench/1, read to FIN, close without waiting for the closing period; server CPU from " +
      "/proc/<pid>/stat during the measured phase; load uses node crypto",
    countPerCase: COUNT,
    warmup: WARMUP,
    cases: results.map(({ c, o }) => ({ id: c.id, server: c.server, load: c.load, ...o })),
  });
  const name = quick ? "handshakes-quick" : "handshakes";
  const md = [
    `### QUIC handshakes per second${quick ? " (quick smoke run, rough numbers)" : ""}`,
    "",
    `\`npm run bench:handshakes${quick ? " -- --quick" : ""}\` — each connection: handshake, \`GET /bench/1\` on a bidi stream, read to FIN, close. ` +
      `${COUNT} connections per case after ${WARMUP} warm-up; ` +
      (pin ? "server pinned to CPU 1, load to CPU 0" : "server and load not pinned") +
      "; server CPU from /proc/<pid>/stat during the measured phase, so the one-core capacity holds even when the load generator is the bottleneck. " +
      `Raw data: \`bench/results/${name}.json\`.`,
    "",
    mdTable(header, rows, 2),
    ...(ratioLines.length > 0 ? ["", "Against quinn, measured in the same run:", "", ...ratioLines] : []),
    ...(failures > 0 ? ["", `${failures} connection(s) failed.`] : []),
  ].join("\n");
  // Issue 6 names "handshakes per second the broker sustains" as a measurement, not a target.
  const mdOut = writeMarkdown(name, md, []);
  rmSync(www, { recursive: true, force: true });
  console.log(`\nwrote ${out} and ${mdOut} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  if (failures > 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  progressDone();
  console.error(e instanceof Error ? e.message : String(e));
  rmSync(www, { recursive: true, force: true });
  process.exitCode = 1;
});
