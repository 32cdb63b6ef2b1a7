/**
 * Self-test of the emulated link (bench/netem/link.ts): configures impairments, measures them
 * with real traffic between the two namespaces (bench/netem/probe.ts on both sides), prints a
 * table and exits non-zero when a measurement falls outside its tolerance.
 *
 *   npx tsx bench/netem/selftest.ts [--quick] [--require]
 *
 * --quick   shorter runs (CI); the tolerances scale with the sample sizes
 * --require fail (exit 1) instead of falling back to loopback when namespaces are unavailable
 *
 * Writes bench/results/netem-selftest.json and its bench/RESULTS.md section netem.md
 * (netem-selftest-quick.json / netem-quick.md for --quick, so a smoke run never overwrites a full one).
 */
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { mdTable, writeMarkdown, writeResult } from "../lib/report.js";
import { EmulatedLink, ensureBuilt, type LinkParams, type NetLink } from "./link.js";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const requireEmulation = argv.includes("--require");
const PROBE = join(import.meta.dirname, "probe.ts");

interface Row {
  check: string;
  configured: string;
  measured: string;
  accept: string;
  /** undefined: informational only */
  ok: boolean | undefined;
}
const rows: Row[] = [];

function row(
  check: string,
  configured: string,
  measured: string,
  accept: string,
  ok: boolean | undefined,
): void {
  rows.push({ check, configured, measured, accept, ok });
  const mark = ok === undefined ? "info" : ok ? "ok" : "FAIL";
  process.stderr.write(
    `  ${mark.padEnd(4)} ${check}: ${measured} (configured ${configured}; accept ${accept})\n`,
  );
}

function progress(msg: string): void {
  process.stderr.write(`netem selftest: ${msg}\n`);
}

/** Node flags for probe children: the tsx loader the parent runs under. */
function nodeArgs(): string[] {
  const args = [...process.execArgv];
  if (!args.some((a) => a.includes("tsx"))) args.unshift("--import", "tsx");
  return args;
}

/** A probe process whose stdout is a stream of JSON lines. */
class Probe {
  private readonly queue: unknown[] = [];
  private readonly waiters: ((v: unknown) => void)[] = [];
  private exitError: Error | undefined;
  readonly child: ChildProcess;

  constructor(link: NetLink, side: "A" | "B", args: readonly string[]) {
    const node = [process.execPath, ...nodeArgs(), PROBE, ...args];
    // nice -10 in the namespaces (we are root there): on a busy machine the endpoints' own
    // scheduling is the noise in what they measure
    const [cmd, ...full] = link.emulated ? ["nice", "-n", "-10", ...node] : node;
    const opts = { stdio: ["pipe", "pipe", "inherit"] as ("pipe" | "inherit")[] };
    this.child = side === "A" ? link.spawnInA(cmd, full, opts) : link.spawnInB(cmd, full, opts);
    if (!this.child.stdout) throw new Error("probe has no stdout");
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        process.stderr.write(`probe: ${line}\n`);
        return;
      }
      const w = this.waiters.shift();
      if (w) w(v);
      else this.queue.push(v);
    });
    this.child.once("exit", (code, signal) => {
      this.exitError = new Error(`probe ${args[0]} exited (${code ?? signal})`);
    });
  }

  next<T>(timeoutMs = 30_000): Promise<T> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued as T);
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(this.exitError ?? new Error("probe timed out")), timeoutMs);
      const check = setInterval(() => {
        if (this.exitError && this.queue.length === 0) {
          clearTimeout(t);
          clearInterval(check);
          reject(this.exitError);
        }
      }, 100);
      this.waiters.push((v) => {
        clearTimeout(t);
        clearInterval(check);
        resolve(v as T);
      });
    });
  }

  send(line: string): void {
    this.child.stdin?.write(`${line}\n`);
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
  }
}

function stats(xs: readonly number[]): {
  mean: number;
  sd: number;
  min: number;
  max: number;
  median: number;
} {
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const sd = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, s.length - 1));
  return { mean, sd, min: s[0], max: s[s.length - 1], median: s[Math.floor(s.length / 2)] };
}

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** The forwarder's own timing: how many packets it delivered late (when the machine is busy). */
async function lateness(link: NetLink, label: string): Promise<void> {
  const st = await link.stats();
  if (!st) return;
  const delivered = st.aToB.delivered + st.bToA.delivered;
  const late = st.aToB.late1ms + st.bToA.late1ms;
  const worst = Math.max(st.aToB.lateMaxUs, st.bToA.lateMaxUs);
  row(
    `forwarder timing (${label})`,
    "on time",
    `${late} of ${delivered} packets > 1 ms late, worst ${f2(worst / 1000)} ms`,
    "≤ 1% > 1 ms late",
    late <= delivered * 0.01,
  );
}

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

const UDP_PORT = 9000;
const TCP_PORT = 9001;

interface PingResult {
  sent: number;
  rtts: number[];
}
interface SendResult {
  sent: number;
  seconds: number;
}
interface SinkReport {
  received: number;
  duplicates: number;
  late: number;
  missing: number;
  runs: number;
  meanRun: number;
}

async function ping(link: NetLink, count: number, intervalMs: number): Promise<PingResult> {
  const p = new Probe(link, "A", [
    "udp-ping",
    link.bAddr,
    String(UDP_PORT),
    String(count),
    String(intervalMs),
  ]);
  return p.next<PingResult>();
}

async function sendAndReport(
  link: NetLink,
  server: Probe,
  count: number,
  pps: number,
  size = 64,
): Promise<{ sent: SendResult; report: SinkReport }> {
  const p = new Probe(link, "A", [
    "udp-send",
    link.bAddr,
    String(UDP_PORT),
    String(count),
    String(pps),
    String(size),
  ]);
  const sent = await p.next<SendResult>();
  await new Promise((r) => setTimeout(r, 300)); // let the link drain
  server.send(`report ${count}`);
  const report = await server.next<SinkReport>();
  return { sent, report };
}

/** Binomial tolerance: |measured - p| <= k standard deviations of a proportion over n trials. */
function binomialBand(p: number, n: number, k = 4): [number, number] {
  const sd = Math.sqrt((p * (1 - p)) / n);
  return [Math.max(0, p - k * sd), p + k * sd];
}

/**
 * Runs one measurement; if one of its checks fails, runs it once more and keeps the second
 * result, noting the first. A loaded machine delays the Node endpoints (never the link: see the
 * "forwarder timing" rows), and one retry tells a busy moment from a broken emulator.
 */
async function section(fn: () => Promise<void>): Promise<void> {
  const before = rows.length;
  await fn();
  const first = rows.slice(before);
  if (!first.some((r) => r.ok === false)) return;
  rows.splice(before);
  progress(
    `retrying once: ${first
      .filter((r) => r.ok === false)
      .map((r) => r.check)
      .join(", ")} failed`,
  );
  await fn();
  for (const [i, r] of rows.slice(before).entries()) {
    if (first[i]?.ok === false) r.measured += ` [retried; 1st try: ${first[i].measured}]`;
  }
}

async function runEmulated(link: NetLink): Promise<void> {
  const server = new Probe(link, "B", ["udp-server", link.bAddr, String(UDP_PORT)]);
  await server.next();
  const sink = new Probe(link, "B", ["tcp-sink", link.bAddr, String(TCP_PORT), "1"]);
  await sink.next();

  // 0. the path's own round trip (two Node processes, two TUN hops, the forwarder)
  await section(async () => {
    await link.update({});
    progress("RTT without impairment");
    const r = await ping(link, 50, 10);
    const s = stats(r.rtts);
    row(
      "RTT, no delay (overhead)",
      "0 ms",
      `median ${f2(s.median)} ms, max ${f2(s.max)} ms`,
      "< 5 ms",
      s.median < 5,
    );
  });

  // 1. delay: 25 ms each way -> RTT 50 ms
  await section(async () => {
    await link.update({ delayMs: 25 });
    await link.resetStats();
    progress("RTT with 25 ms each way");
    const n = quick ? 100 : 300;
    const r = await ping(link, n, 20);
    const s = stats(r.rtts);
    row(
      "RTT, 25 ms each way",
      "2×25 ms = 50 ms",
      `median ${f2(s.median)}, min ${f2(s.min)}, p95 ${f2(quantile(r.rtts, 0.95))}, max ${f1(s.max)} ms; ${r.rtts.length}/${n} replies`,
      "median 50–53, min ≥ 49.9, all replies",
      s.median >= 49.9 && s.median <= 53 && s.min >= 49.9 && r.rtts.length === n,
    );
    await lateness(link, "RTT");
  });

  // 2. jitter: 25 ± 5 ms each way -> RTT 50 ms ± a triangular spread on [-10, 10] ms:
  //    sd sqrt(2 * 10^2 / 12) = 4.08 ms, interquartile range 2 * (10 - sqrt(50)) = 5.86 ms
  await section(async () => {
    await link.update({ delayMs: 25, jitterMs: 5 });
    await link.resetStats();
    progress("jitter ±5 ms each way");
    const n = quick ? 200 : 500;
    const r = await ping(link, n, 25);
    const s = stats(r.rtts);
    const iqr = quantile(r.rtts, 0.75) - quantile(r.rtts, 0.25);
    const early = r.rtts.filter((x) => x < 39.9).length;
    const inside = r.rtts.filter((x) => x >= 39.9 && x <= 61).length / r.rtts.length;
    row(
      "RTT, 25±5 ms each way",
      "50 ms, IQR 5.86 ms, sd 4.08 ms, 40–60 ms",
      `median ${f2(s.median)}, IQR ${f2(iqr)}, sd ${f2(s.sd)} ms; ${pct(inside)} in 40–61 ms, ${early} early`,
      "median 49–52, IQR 4.4–7.5, ≥ 95% in range, none < 40",
      s.median >= 49 && s.median <= 52 && iqr >= 4.4 && iqr <= 7.5 && inside >= 0.95 && early === 0,
    );
    await lateness(link, "jitter");
  });

  // 3. random loss 2% on A->B
  await section(async () => {
    await link.update({ aToB: { loss: 0.02 } });
    await link.resetStats();
    progress("random loss 2% a→b");
    const n = quick ? 5000 : 20000;
    const { sent, report } = await sendAndReport(link, server, n, 10000);
    const st = await link.stats();
    const loss = 1 - report.received / sent.sent;
    const [lo, hi] = binomialBand(0.02, n);
    row(
      "random loss a→b",
      "2%",
      `${pct(loss)} of ${sent.sent}`,
      `${pct(lo)}–${pct(hi)} (4σ)`,
      loss >= lo && loss <= hi,
    );
    const emulatorLost = st ? st.aToB.lostRandom : 0;
    const outside = sent.sent - report.received - emulatorLost;
    row(
      "no other drops, no reordering",
      "0",
      `${outside} lost outside the emulator, ${report.late} late, ${report.duplicates} dup`,
      "0, 0, 0",
      outside === 0 && report.late === 0 && report.duplicates === 0,
    );
  });

  // 4. burst loss, Gilbert-Elliott p=0.5%, r=20%: loss p/(p+r) = 2.44%, mean burst 1/r = 5
  await section(async () => {
    const p = 0.005;
    const r = 0.2;
    await link.update({ aToB: { burst: { p, r } } });
    progress("burst loss (Gilbert-Elliott) a→b");
    const n = 20000;
    const { sent, report } = await sendAndReport(link, server, n, 20000);
    const loss = 1 - report.received / sent.sent;
    const expected = p / (p + r);
    row(
      "burst loss rate a→b",
      `${pct(expected)} (p=${p}, r=${r})`,
      `${pct(loss)} of ${sent.sent}`,
      `±40%: ${pct(expected * 0.6)}–${pct(expected * 1.4)}`,
      loss >= expected * 0.6 && loss <= expected * 1.4,
    );
    row(
      "burst length",
      `mean ${f1(1 / r)} packets`,
      `mean ${f2(report.meanRun)} over ${report.runs} bursts`,
      "3.5–6.5 (random loss: ≈1)",
      report.meanRun >= 3.5 && report.meanRun <= 6.5,
    );
  });

  // 5. reordering 10% on A->B, held back 5 ms, packets 0.5 ms apart
  await section(async () => {
    await link.update({ delayMs: 5, aToB: { reorder: 0.1, reorderExtraMs: 5 } });
    progress("reordering 10% a→b");
    const n = quick ? 2000 : 10000;
    const { sent, report } = await sendAndReport(link, server, n, 2000);
    const late = report.late / sent.sent;
    const [lo, hi] = binomialBand(0.1, n);
    row(
      "reordering a→b",
      "10% held back 5 ms",
      `${pct(late)} arrived after a later packet; ${report.missing} lost`,
      `${pct(lo)}–${pct(hi)} (4σ), none lost`,
      late >= lo && late <= hi && report.missing === 0,
    );
  });

  // 6. rate limit, TCP: 20 Mbit/s, RTT 20 ms, queue 100 packets
  await section(async () => {
    await link.update({ delayMs: 10, rateMbit: 20, queuePackets: 100 });
    await link.resetStats();
    progress("TCP throughput over 20 Mbit/s");
    const seconds = quick ? 3 : 6;
    const src = new Probe(link, "A", ["tcp-source", link.bAddr, String(TCP_PORT), String(seconds)]);
    const result = await sink.next<{ bytes: number; seconds: number; goodputMbit: number }>(60_000);
    await src.next();
    const st = await link.stats();
    // TCP payload per 1500-byte IP packet: 1448 bytes with timestamps
    const expected = (20 * 1448) / 1500;
    const wire = st ? (st.aToB.deliveredBytes * 8) / (result.seconds * 1e6) : 0;
    row(
      "TCP goodput, 20 Mbit/s link",
      `${f2(expected)} Mbit/s (20 Mbit/s of 1500 B packets)`,
      `${f2(result.goodputMbit)} Mbit/s (IP ${f1(wire)} Mbit/s over ${f1(result.seconds)} s; max queue ${st?.aToB.maxQueue})`,
      "±15%",
      Math.abs(result.goodputMbit / expected - 1) <= 0.15,
    );
  });

  // 7. rate limit, UDP: 30 Mbit/s offered into 20 Mbit/s with a 50-packet queue
  await section(async () => {
    await link.update({ rateMbit: 20, queuePackets: 50 });
    await link.resetStats();
    progress("UDP 30 Mbit/s offered into 20 Mbit/s");
    const size = 1200;
    const ipBytes = size + 28;
    const pps = Math.round(30e6 / 8 / ipBytes);
    const n = pps * (quick ? 1 : 3);
    const { sent, report } = await sendAndReport(link, server, n, pps, size);
    const st = await link.stats();
    const rate = (report.received * ipBytes * 8) / (sent.seconds * 1e6);
    row(
      "UDP rate limit",
      "20 Mbit/s, queue 50",
      `${f2(rate)} Mbit/s delivered of ${f1((sent.sent * ipBytes * 8) / (sent.seconds * 1e6))} offered; ${st?.aToB.queueDrops} queue drops`,
      "±15%, queue drops > 0",
      Math.abs(rate / 20 - 1) <= 0.15 && (st?.aToB.queueDrops ?? 0) > 0,
    );
  });

  server.stop();
  sink.stop();

  // 8. the forwarder's packet-rate ceiling: a sendmmsg blaster in A, nothing listening in B
  const blast = join(ensureBuilt(), "netem-blast");
  const capacity = async (cfg: LinkParams, size: number, label: string, floorPps: number) => {
    await link.update(cfg);
    await new Promise((r) => setTimeout(r, 100));
    await link.resetStats();
    const secs = quick ? 1 : 3;
    const r = await link.runInA(blast, [link.bAddr, "9", String(secs), String(size)]);
    await new Promise((res) => setTimeout(res, 200 + (cfg.delayMs ?? 0) * 2));
    const st = await link.stats();
    const sent = JSON.parse(r.stdout) as { sent: number; seconds: number };
    const fwdPps = (st?.aToB.delivered ?? 0) / sent.seconds;
    const mbit = (fwdPps * (size + 28) * 8) / 1e6;
    row(
      `forwarder ceiling, ${label}`,
      `offered ${Math.round(sent.sent / sent.seconds / 1000)}k pkt/s of ${size + 28} B`,
      `${Math.round(fwdPps / 1000)}k pkt/s (${f1(mbit)} Mbit/s) forwarded`,
      `≥ ${floorPps / 1000}k pkt/s`,
      fwdPps >= floorPps,
    );
  };
  progress("forwarder packet-rate ceiling");
  await section(() => capacity({}, 64, "64 B, no impairment", 50_000));
  await section(() =>
    capacity({ delayMs: 25, jitterMs: 5, loss: 0.01 }, 64, "64 B, 25±5 ms, 1% loss", 50_000),
  );
  await section(() => capacity({}, 1200, "1200 B, no impairment", 30_000));
}

async function runLoopback(link: NetLink): Promise<void> {
  // No namespaces: check only that the probes (and so a benchmark's processes) talk over loopback.
  const server = new Probe(link, "B", ["udp-server", link.bAddr, String(UDP_PORT)]);
  await server.next();
  const r = await ping(link, 20, 5);
  server.stop();
  const s = stats(r.rtts);
  row(
    "loopback echo (fallback)",
    "no impairment",
    `${r.rtts.length}/20 echoes, median ${f2(s.median)} ms`,
    "20/20",
    r.rtts.length === 20,
  );
}

const HEADER = ["check", "configured", "measured", "accept", "result"];
const cellsOf = (r: Row): string[] => [
  r.check,
  r.configured,
  r.measured,
  r.accept,
  r.ok === undefined ? "info" : r.ok ? "ok" : "FAIL",
];

function printTable(title: string): void {
  const all = [HEADER, ...rows.map(cellsOf)];
  const widths = all[0].map((_, i) => Math.max(...all.map((c) => c[i].length)));
  console.log(`\n${title}`);
  for (const [i, c] of all.entries()) {
    console.log(c.map((x, j) => x.padEnd(widths[j])).join("  "));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

async function main(): Promise<number> {
  const t0 = Date.now();
  const link = await EmulatedLink.create({ required: requireEmulation });
  let title: string;
  try {
    if (link.emulated) {
      title = `netem selftest${quick ? " (quick)" : ""}: namespaces ${link.nsA} (${link.aAddr}) ⇄ ${link.nsB} (${link.bAddr}) through bench/netem/forwarder.c`;
      await runEmulated(link);
    } else {
      title = `netem selftest: NOT EMULATED (${link.reason}); loopback fallback only`;
      await runLoopback(link);
    }
  } finally {
    await link.close();
  }
  printTable(title);
  const failed = rows.filter((r) => r.ok === false);
  console.log(
    failed.length === 0
      ? `\nall ${rows.length} checks passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`
      : `\n${failed.length} of ${rows.length} checks FAILED: ${failed.map((r) => r.check).join(", ")}`,
  );
  const verdict =
    failed.length === 0
      ? `All ${rows.length} checks passed.`
      : `${failed.length} of ${rows.length} checks FAILED: ${failed.map((r) => r.check).join(", ")}.`;
  const json = writeResult(quick ? "netem-selftest-quick.json" : "netem-selftest.json", {
    date: new Date().toISOString(),
    quick,
    emulated: link.emulated,
    title,
    rows,
  });
  const md = [
    `### Emulated link self-test${quick ? " (quick smoke run)" : ""}`,
    "",
    `\`npm run bench:netem-selftest${quick ? " -- --quick" : ""}\` — the packet-level link every lossy benchmark runs on (bench/netem: two network namespaces joined by a TUN forwarder that delays, drops, reorders and rate-limits every IP packet, TCP and UDP alike), configured and then measured with real traffic. Link: ${title.replace(/^netem selftest( \(quick\))?: /, "")}. Raw data: \`bench/results/${quick ? "netem-selftest-quick" : "netem-selftest"}.json\`.`,
    "",
    mdTable(HEADER, rows.map(cellsOf), HEADER.length),
    "",
    verdict,
  ].join("\n");
  // No issue 6 target: the self-test vouches for the link the targets are measured on.
  const mdOut = writeMarkdown(quick ? "netem-quick" : "netem", md, []);
  console.log(`wrote ${json} and ${mdOut}`);
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
