/**
 * Bulk goodput over loopback: one connection, one stream, N MB from server to client (an
 * hq-interop `GET /bench/<N>`), for mquictt and quinn in every pairing, against two ceilings
 * measured in the same run:
 *
 *   A  raw node:dgram: 1200-byte datagrams through a plain socket pair with a simple window
 *      (the sender keeps 64 datagrams unacknowledged; the receiver acks every 16 with its
 *      running total). No crypto. The most any QUIC on node:dgram could move.
 *   B  A plus AES-128-GCM seal/open and AES header protection of every packet with the node
 *      provider: the ceiling of this runtime for any QUIC.
 *   A and B are also measured at 1452 bytes, the datagram size mquictt and quinn use on
 *   loopback, for context; the ratios are to the 1200-byte ceilings.
 *
 * Every endpoint runs in its own process (sender and receiver each get a core; the
 * orchestrating process only waits). Times run from the stream's opening to its FIN, the
 * handshake excluded (quinn-peer's `--bench-bytes` measures the same way). Goodput counts
 * application bytes only; MB = 10^6 bytes. Each case runs `--runs` times, in rounds (every case
 * once per round, so background load on a shared machine touches all alike); the median is shown.
 *
 *   npx tsx bench/quic-goodput.ts                   100 MB, 3 runs per case (a few minutes)
 *   npx tsx bench/quic-goodput.ts --quick           CI smoke: 5 MB, 1 run, node crypto only
 *   npx tsx bench/quic-goodput.ts --mb 20 --runs 1 --only ceiling-a,mq-mq-node
 *   npx tsx bench/quic-goodput.ts --profile DIR     CPU-profile mquictt→mquictt (node crypto): runs
 *       both ends under `node --import tsx --cpu-prof`, profiles in DIR/sender/ and DIR/receiver/,
 *       summary (top 20 self time by file:function) in bench/results/goodput-profile.txt
 *
 * Prints a table on stdout, progress on stderr, writes bench/results/goodput.json (or
 * goodput-quick.json for --quick, so a CI smoke run never overwrites a full result).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { summariseProfile } from "./lib/cpu-profile.js";
import {
  type Child,
  mainThreadProfile,
  resultOf,
  spawnPeer,
  spawnProgram,
  udpBufferDrops,
} from "./lib/procs.js";
import { quinnPeerBinary } from "./lib/quinn-peer.js";
import {
  flag,
  fmt,
  machine,
  median,
  progress,
  progressDone,
  RESULTS_DIR,
  table,
  writeResult,
} from "./lib/report.js";

type Impl = "mquictt" | "quinn";
type Provider = "node" | "noble";

interface Case {
  id: string;
  label: string;
  kind: "ceiling" | "quic";
  /** Ceilings: datagram size and whether packets are sealed. */
  size?: number;
  aead?: boolean;
  /** QUIC: who serves (sends) and who downloads (receives), and mquictt's crypto provider. */
  server?: Impl;
  client?: Impl;
  crypto?: Provider;
}

interface Run {
  seconds: number;
  mbPerSec: number;
  detail?: Record<string, unknown>;
}

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const profileDir = flag(argv, "--profile");
const MB = Number(flag(argv, "--mb") ?? (quick ? 5 : 100));
const BYTES = Math.round(MB * 1e6);
const RUNS = Number(flag(argv, "--runs") ?? (quick || profileDir ? 1 : 3));
const only = flag(argv, "--only")?.split(",");

const ALL_CASES: Case[] = [
  { id: "ceiling-a", label: "ceiling A: raw dgram, 1200 B", kind: "ceiling", size: 1200, aead: false },
  {
    id: "ceiling-b",
    label: "ceiling B: + AES-128-GCM + HP, 1200 B",
    kind: "ceiling",
    size: 1200,
    aead: true,
  },
  { id: "ceiling-a-1452", label: "ceiling A at 1452 B", kind: "ceiling", size: 1452, aead: false },
  { id: "ceiling-b-1452", label: "ceiling B at 1452 B", kind: "ceiling", size: 1452, aead: true },
];
for (const crypto of ["node", "noble"] as const) {
  ALL_CASES.push(
    {
      id: `mq-mq-${crypto}`,
      label: `mquictt → mquictt (${crypto})`,
      kind: "quic",
      server: "mquictt",
      client: "mquictt",
      crypto,
    },
    {
      id: `mq-quinn-${crypto}`,
      label: `mquictt server → quinn client (${crypto})`,
      kind: "quic",
      server: "mquictt",
      client: "quinn",
      crypto,
    },
    {
      id: `quinn-mq-${crypto}`,
      label: `quinn server → mquictt client (${crypto})`,
      kind: "quic",
      server: "quinn",
      client: "mquictt",
      crypto,
    },
  );
}
ALL_CASES.push({
  id: "quinn-quinn",
  label: "quinn → quinn (ring)",
  kind: "quic",
  server: "quinn",
  client: "quinn",
});

function selectedCases(): Case[] {
  if (profileDir) return ALL_CASES.filter((c) => c.id === "mq-mq-node");
  if (only) {
    const unknown = only.filter((id) => !ALL_CASES.some((c) => c.id === id));
    if (unknown.length > 0) {
      throw new Error(
        `unknown case(s) ${unknown.join(", ")}; known: ${ALL_CASES.map((c) => c.id).join(", ")}`,
      );
    }
    return ALL_CASES.filter((c) => only.includes(c.id));
  }
  // The smoke run keeps one of each kind so that none of the harnesses can rot.
  if (quick) return ALL_CASES.filter((c) => !c.id.endsWith("-1452") && !c.id.endsWith("-noble"));
  return ALL_CASES;
}

async function runCeiling(c: Case): Promise<Run> {
  const aead = c.aead ? ["--aead"] : [];
  const sink = spawnPeer("udp-sink", ["--bytes", String(BYTES), ...aead]);
  try {
    const port = (await sink.waitFor(/^READY (\d+)/))[1];
    const src = spawnPeer("udp-source", [
      "--port",
      port,
      "--bytes",
      String(BYTES),
      "--size",
      String(c.size),
      ...aead,
    ]);
    const r = await resultOf<{ bytes: number; seconds: number; lostDatagrams: number; stalls: number }>(src);
    await src.exited();
    return {
      seconds: r.seconds,
      mbPerSec: r.bytes / r.seconds / 1e6,
      detail: { lostDatagrams: r.lostDatagrams, stalls: r.stalls },
    };
  } finally {
    await sink.stop();
  }
}

const quinnWww = mkdtempSync(join(tmpdir(), "mquictt-bench-qwww-"));

async function startServer(c: Case, profile?: string): Promise<{ child: Child; port: number }> {
  if (c.server === "mquictt") {
    const child = spawnPeer("mquictt-server", ["--crypto", c.crypto ?? "auto", "--stats"], {
      cpuProfile: profile,
    });
    const port = Number((await child.waitFor(/listening on .*:(\d+)/, 60_000))[1]);
    return { child, port };
  }
  const child = spawnProgram(quinnPeerBinary(), ["server", "--listen", "127.0.0.1:0", "--www", quinnWww]);
  const port = Number((await child.waitFor(/listening on .*:(\d+)/, 60_000))[1]);
  return { child, port };
}

/** Transport counters of a mquictt connection (Connection.stats). */
interface Stats {
  packetsSent: number;
  packetsReceived: number;
  packetsLost: number;
  ptoCount: number;
}

/** The last `STATS {json}` line a mquictt server printed (one per closed connection). */
function serverStats(server: Child): Stats | undefined {
  const lines = server
    .output()
    .split("\n")
    .filter((l) => l.startsWith("STATS "));
  const last = lines.at(-1);
  return last ? (JSON.parse(last.slice(6)) as Stats) : undefined;
}

async function runQuic(c: Case, profile?: { sender: string; receiver: string }): Promise<Run> {
  const { child: server, port } = await startServer(c, profile?.sender);
  try {
    const run = await transfer(c, port, profile);
    if (c.server === "mquictt") {
      // The server prints its counters when the client's CONNECTION_CLOSE arrives.
      await server.waitFor(/^STATS /, 5000).catch(() => undefined);
      run.detail = { ...run.detail, serverStats: serverStats(server) };
    }
    return run;
  } finally {
    await server.stop();
  }
}

async function transfer(c: Case, port: number, profile?: { sender: string; receiver: string }): Promise<Run> {
  if (c.client === "mquictt") {
    const client = spawnPeer(
      "mquictt-get",
      ["--port", String(port), "--bytes", String(BYTES), "--crypto", c.crypto ?? "auto"],
      { cpuProfile: profile?.receiver },
    );
    const r = await resultOf<{ bytes: number; seconds: number; handshakeMs: number; stats: Stats }>(client);
    const code = await client.exited();
    if (code !== 0) throw new Error(`mquictt client exited with ${code}:\n${client.output()}`);
    return {
      seconds: r.seconds,
      mbPerSec: r.bytes / r.seconds / 1e6,
      detail: { handshakeMs: r.handshakeMs, clientStats: r.stats },
    };
  }
  const client = spawnProgram(quinnPeerBinary(), [
    "client",
    "--insecure",
    "--downloads",
    quinnWww,
    "--bench-bytes",
    String(BYTES),
    `https://127.0.0.1:${port}/bench/${BYTES}`,
  ]);
  const m = await client.waitFor(/bytes=(\d+) seconds=([\d.]+) mbps=([\d.]+)/);
  await client.exited();
  if (Number(m[1]) !== BYTES) throw new Error(`quinn received ${m[1]} bytes, expected ${BYTES}`);
  // seconds has 3 decimals, mbps (Mbit/s) 1: the latter is the precise one for fast runs.
  const mbPerSec = Number(m[3]) / 8;
  return { seconds: BYTES / 1e6 / mbPerSec, mbPerSec };
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
  const cases = selectedCases();
  if (cases.some((c) => c.server === "quinn" || c.client === "quinn")) {
    progress("locating (or building) the quinn peer...");
    quinnPeerBinary();
  }
  let prof: { sender: string; receiver: string } | undefined;
  if (profileDir) {
    const dir = resolve(profileDir);
    prof = { sender: join(dir, "sender"), receiver: join(dir, "receiver") };
    for (const d of [prof.sender, prof.receiver]) {
      rmSync(d, { recursive: true, force: true });
      mkdirSync(d, { recursive: true });
    }
  }
  // Rounds: every case once per round, so a change in background load touches all cases alike.
  const runsOf = new Map<Case, Run[]>(cases.map((c) => [c, []]));
  for (let r = 0; r < RUNS; r++) {
    for (const [i, c] of cases.entries()) {
      const tag = `[round ${r + 1}/${RUNS}, ${i + 1}/${cases.length}] ${c.label}`;
      progress(`${tag} (${MB} MB)...`);
      const drops0 = udpBufferDrops();
      const run = c.kind === "ceiling" ? await runCeiling(c) : await runQuic(c, prof);
      const drops1 = udpBufferDrops();
      if (drops0 !== undefined && drops1 !== undefined)
        run.detail = { ...run.detail, kernelDrops: drops1 - drops0 };
      runsOf.get(c)?.push(run);
      progress(`${tag}: ${run.mbPerSec.toFixed(1)} MB/s in ${run.seconds.toFixed(2)} s`);
    }
  }
  const results = cases.map((c) => {
    const runs = runsOf.get(c) ?? [];
    return { c, runs, mbPerSec: median(runs.map((x) => x.mbPerSec)) };
  });
  progressDone();

  const ceilA = results.find((r) => r.c.id === "ceiling-a")?.mbPerSec;
  const ceilB = results.find((r) => r.c.id === "ceiling-b")?.mbPerSec;
  const m = machine();
  console.log(
    `bulk goodput, ${MB} MB, one connection, one stream, loopback; median of ${RUNS} run(s)${quick ? ", QUICK smoke run" : ""}`,
  );
  console.log(`${m.cpu} (${m.cores} cores), node ${m.node}, mquictt ${gitDescribe()}\n`);
  console.log(
    table(
      [
        "case",
        "MB/s",
        "Mbit/s",
        "vs A (raw dgram)",
        "vs B (dgram+AES-GCM)",
        "runs MB/s",
        "sender lost",
        "kernel drops",
        "receiver pkts out/in",
      ],
      results.map(({ c, runs, mbPerSec }) => {
        const last = runs.at(-1)?.detail;
        const sender = last?.serverStats as Stats | undefined;
        const receiver = last?.clientStats as Stats | undefined;
        const lost = c.kind === "ceiling" ? (last?.lostDatagrams as number | undefined) : sender?.packetsLost;
        return [
          c.label,
          fmt(mbPerSec),
          fmt(mbPerSec * 8, 0),
          ceilA ? `${((mbPerSec / ceilA) * 100).toFixed(0)}%` : "-",
          ceilB ? `${((mbPerSec / ceilB) * 100).toFixed(0)}%` : "-",
          runs.map((r) => r.mbPerSec.toFixed(0)).join(" "),
          lost === undefined ? "-" : String(lost),
          last?.kernelDrops === undefined ? "-" : String(last.kernelDrops),
          receiver ? (receiver.packetsSent / receiver.packetsReceived).toFixed(2) : "-",
        ];
      }),
    ),
  );
  console.log(
    "\nLast run of each case: sender lost = packets the sender declared lost (mquictt servers; " +
      "datagrams for the ceilings); kernel drops = UDP datagrams the kernel dropped for full socket " +
      "buffers (RcvbufErrors + SndbufErrors, system-wide); receiver pkts out/in = packets a mquictt " +
      "client sent (ACKs) per packet it received.",
  );

  const json = {
    date: new Date().toISOString(),
    quick,
    ...m,
    mquictt: gitDescribe(),
    loadavg: loadavg(),
    bytes: BYTES,
    runsPerCase: RUNS,
    method:
      "each endpoint in its own process; server sends GET /bench/<N> to the client over one stream; " +
      "seconds from stream open to FIN (handshake excluded); MB = 1e6 bytes; median of runs",
    ceilings: { aMbPerSec: ceilA ?? null, bMbPerSec: ceilB ?? null },
    cases: results.map(({ c, runs, mbPerSec }) => ({
      id: c.id,
      label: c.label,
      server: c.server ?? null,
      client: c.client ?? null,
      crypto: c.crypto ?? null,
      datagramSize: c.size ?? null,
      mbPerSec,
      ratioToCeilingA: ceilA ? mbPerSec / ceilA : null,
      ratioToCeilingB: ceilB ? mbPerSec / ceilB : null,
      runs,
    })),
  };
  const out = profileDir ? undefined : writeResult(quick ? "goodput-quick.json" : "goodput.json", json);
  if (prof) {
    const text = [
      `CPU profile of mquictt → mquictt goodput (node crypto, ${MB} MB, ${results[0].mbPerSec.toFixed(1)} MB/s under the profiler)`,
      `${m.cpu} (${m.cores} cores), node ${m.node}, mquictt ${gitDescribe()}`,
      "",
      "== sender (the server: reads /bench/N, packetises, seals, sends)",
      summariseProfile(mainThreadProfile(prof.sender), 20, "src/quic/"),
      "",
      "== receiver (the client: receives, opens, reassembles, acks)",
      summariseProfile(mainThreadProfile(prof.receiver), 20, "src/quic/"),
      "",
    ].join("\n");
    const file = join(RESULTS_DIR, "goodput-profile.txt");
    writeFileSync(file, text);
    console.log(`\n${text}`);
    console.log(`wrote ${file}`);
  }
  rmSync(quinnWww, { recursive: true, force: true });
  if (out) console.log(`\nwrote ${out} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

main().catch((e: unknown) => {
  progressDone();
  console.error(e instanceof Error ? e.message : String(e));
  rmSync(quinnWww, { recursive: true, force: true });
  process.exitCode = 1;
});
