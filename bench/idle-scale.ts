/**
 * Benchmark 4 of issue 6, "Scale and memory": many idle MQTT connections to one broker, and
 * what each costs the broker in resident memory and in CPU while only keepalives flow.
 *
 * Brokers (each in its own process, pinned to CPU 1 when possible; the load on CPU 0):
 *   quic-ours      our Broker with listenQuic (MQTT over QUIC, one control stream per connection)
 *   tcp-ours       our Broker with listenTcp (the same broker core without QUIC)
 *   tcp-aedes      aedes (npm) on a node:net server
 *   tcp-mosquitto  mosquitto (Debian), when `mosquitto` is on PATH (said so when not)
 *
 * For each, the load process opens connections in steps (1,000 then 10,000; `--quick`: 150),
 * each sending MQTT CONNECT (3.1.1, clean session, keepalive `--keepalive` s) and then only
 * PINGREQ every keepalive interval. QUIC connections share a few UDP sockets (`--sockets`, one
 * QuicEndpoint each); TCP connections are raw node:net sockets. At each step, once the broker
 * reports every client connected, the broker is asked to garbage-collect (node brokers run with
 * --expose-gc) and report `process.memoryUsage()`; mosquitto's RSS comes from /proc. Per
 * connection = (sample - baseline) / (connections - warm), the baseline taken after `--warm`
 * (50) connections so one-time costs are not charged to connections (see warmUp). Then broker CPU
 * (user + system, /proc/<pid>/stat) over an idle window of `--window` s.
 *
 * Finally a separate pass on quic-ours takes a heap snapshot before and after `--analyse`
 * connections and lists the classes that grew most, per connection (bench/lib/heap-summary.ts).
 *
 * ```sh
 * npm run bench:scale                      # 1,000 and 10,000 connections, 20 s windows
 * npm run bench:scale -- --quick           # CI smoke: 150 connections, 3 s windows
 * npm run bench:scale -- --steps 1000 --cases quic-ours --out scale-try
 * ```
 *
 * Writes bench/results/scale.json (scale-quick.json with --quick), and scale.md / scale.targets.json
 * for bench/RESULTS.md. The markdown compares quic-ours with a run before the memory reductions:
 * bench/results/scale-before.json when present (`--out scale-before` at an earlier commit), else
 * bench/lib/scale-before.json, kept in git (measured at the commit it names).
 *
 * Internally `bench/idle-scale.ts broker ...` and `bench/idle-scale.ts load ...` are the child
 * processes; they take commands on stdin and answer on stdout.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { getHeapStatistics, writeHeapSnapshot } from "node:v8";
import mqttPacket from "mqtt-packet";
import { makeCertificates } from "../src/cli/cert.js";
import { Broker } from "../src/mqtt/index.js";
import { QuicEndpoint } from "../src/net/quic.js";
import { loadCertificateChain } from "../src/tls/pem.js";
import { findOnPath } from "./lib/child-output.js";
import {
  type HeapGrowth,
  heapGrowth,
  type RetainedOwner,
  retainedByOwner,
  summariseHeapSnapshot,
} from "./lib/heap-summary.js";
import { startMosquitto } from "./lib/mosquitto.js";
import { canPin, cpuSecondsOf } from "./lib/procs.js";
import {
  flag,
  fmt,
  machine,
  mdTable,
  progress,
  progressDone,
  RESULTS_DIR,
  type TargetResult,
  table,
  writeMarkdown,
  writeResult,
} from "./lib/report.js";

const REPO = resolve(import.meta.dirname, "..");
const SELF = join(import.meta.dirname, "idle-scale.ts");

type CaseName = "quic-ours" | "tcp-ours" | "tcp-aedes" | "tcp-mosquitto";
const ALL_CASES: CaseName[] = ["quic-ours", "tcp-ours", "tcp-aedes", "tcp-mosquitto"];

/** The target of issue 6 this benchmark is held against. */
const TARGET_BYTES_PER_CONN = 8 * 1024;

/** What a broker child reports when asked to `sample`. */
interface BrokerSample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** Connected MQTT clients as the broker counts them. */
  clients: number;
}

/** One step: `connections` idle connections held. */
interface StepResult {
  connections: number;
  /** Connected clients the broker counted before the memory sample (node brokers). */
  brokerClients: number;
  /** Connections the memory per connection is divided over (+ warm-up): held at the sample. */
  heldAtSample: number;
  /** Connections the load still held at the end of the CPU window. */
  alive: number;
  /** Why connections closed after CONNACK (close reason -> count); empty when none did. */
  closes?: Record<string, number>;
  openFailures: number;
  openSeconds: number;
  rss: number;
  heapUsed?: number;
  external?: number;
  arrayBuffers?: number;
  rssPerConnBytes: number;
  heapPerConnBytes?: number;
  /** external (ArrayBuffers and other off-heap allocations V8 knows about) per connection. */
  externalPerConnBytes?: number;
  cpuWindowSeconds: number;
  cpuSeconds?: number;
  /** Broker CPU as a percentage of one core during the idle window. */
  cpuPercent?: number;
  /** Broker CPU microseconds per connection per second of idling. */
  cpuUsPerConnPerSec?: number;
  /** PINGREQs the load sent (and PINGRESPs it got) during the window. */
  pings: number;
  pongs: number;
}

interface CaseResult {
  name: CaseName;
  baseline: { rss: number; heapUsed?: number; external?: number };
  steps: StepResult[];
}

interface Analysis {
  connections: number;
  heapUsedPerConnBytes: number;
  snapshotBytesPerConn: number;
  top: HeapGrowth[];
  /** Retained size (dominator tree) of each per-connection object and its biggest fields. */
  retained?: RetainedOwner[];
}

/** The per-connection objects whose retained sizes the analysis reports, outermost first. */
const OWNERS = [
  "Connection",
  "TlsServer",
  "Space",
  "StreamManager",
  "QuicConnection",
  "QuicStream",
  "QuicMqttTransport",
  "ClientConnection",
  "Session",
];

// ------------------------------------------------------------------------------ child: broker

async function brokerMain(argv: string[]): Promise<void> {
  const impl = flag(argv, "--impl") ?? "quic-ours";
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("the broker child needs --expose-gc");
  let clients: () => number;
  let port: number;
  if (impl === "quic-ours" || impl === "tcp-ours") {
    const broker = new Broker();
    if (impl === "quic-ours") {
      const cert = readFileSync(flag(argv, "--cert") ?? "", "utf8");
      const key = readFileSync(flag(argv, "--key") ?? "", "utf8");
      port = (await broker.listenQuic({ port: 0, host: "127.0.0.1", cert, key, maxConnections: 50_000 }))
        .port;
    } else {
      port = (await broker.listenTcp({ port: 0, host: "127.0.0.1" })).port;
    }
    clients = () => broker.metrics.clients;
  } else if (impl === "tcp-aedes") {
    const { Aedes } = await import("aedes");
    const aedes = await Aedes.createBroker();
    const server = createServer(aedes.handle);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
    clients = () => aedes.connectedClients;
  } else throw new Error(`unknown --impl ${impl}`);

  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const [cmd, arg] = line.trim().split(/\s+/);
    void (async () => {
      if (cmd === "sample") {
        // Several passes so weak references and finalizers settle; a turn of the loop between.
        for (let i = 0; i < 4; i++) {
          gc();
          await new Promise((r) => setImmediate(r));
        }
        const m = process.memoryUsage();
        const s: BrokerSample = {
          rss: m.rss,
          heapUsed: m.heapUsed,
          heapTotal: m.heapTotal,
          external: m.external,
          arrayBuffers: m.arrayBuffers,
          clients: clients(),
        };
        console.log(`SAMPLE ${JSON.stringify(s)}`);
      } else if (cmd === "clients") {
        console.log(`CLIENTS ${clients()}`);
      } else if (cmd === "snapshot") {
        gc();
        writeHeapSnapshot(arg);
        console.log(`SNAPSHOT ${arg}`);
      } else if (cmd === "exit") {
        process.exit(0);
      }
    })();
  });
  rl.on("close", () => process.exit(0));
  console.log(`READY ${port} heap-limit=${getHeapStatistics().heap_size_limit}`);
}

// -------------------------------------------------------------------------------- child: load

interface LoadConn {
  ping(): void;
}

async function loadMain(argv: string[]): Promise<void> {
  const proto = flag(argv, "--proto") ?? "quic";
  const port = Number(flag(argv, "--port"));
  const keepalive = Number(flag(argv, "--keepalive") ?? 10);
  const sockets = Number(flag(argv, "--sockets") ?? 4);
  const concurrency = Number(flag(argv, "--concurrency") ?? (proto === "quic" ? 16 : 64));
  const host = "127.0.0.1";
  const conns: LoadConn[] = [];
  let alive = 0;
  let failures = 0;
  let pings = 0;
  let pongs = 0;
  /** Why connections closed after CONNACK, with counts (a healthy run has none). */
  const closes = new Map<string, number>();
  let lastError = "";

  const connectPacket = (id: number): Buffer =>
    mqttPacket.generate({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: true,
      clientId: `idle-${process.pid}-${id}`,
      keepalive,
    });
  const PINGREQ = Buffer.from([0xc0, 0x00]);

  /**
   * Reads the CONNACK (4 bytes: 0x20 0x02 flags rc), then counts PINGRESPs (0xd0 0x00): the
   * broker sends nothing else to an idle client that subscribed to nothing.
   */
  const reader = (onConnack: (ok: boolean) => void): ((d: Buffer) => void) => {
    let got = 0;
    let rc = -1;
    let first = 0;
    return (d: Buffer) => {
      for (const b of d) {
        if (got < 4) {
          if (got === 0) first = b;
          if (got === 3) rc = b;
          if (++got === 4) onConnack(first === 0x20 && rc === 0);
        } else if (b === 0xd0) pongs++;
      }
    };
  };

  let endpoints: QuicEndpoint[] = [];
  let caDer: Uint8Array[] = [];
  if (proto === "quic") {
    caDer = loadCertificateChain(readFileSync(flag(argv, "--ca") ?? "", "utf8"), "the CA file");
    endpoints = await Promise.all(
      Array.from({ length: sockets }, () => QuicEndpoint.open({ host, crypto: "node" })),
    );
  }

  const openQuic = async (i: number): Promise<LoadConn> => {
    const ep = endpoints[i % endpoints.length];
    const conn = await ep.connect(host, port, {
      alpn: ["mqtt"],
      ca: caDer,
      serverName: "localhost",
      handshakeTimeout: 30_000,
    });
    const s = await conn.openStream();
    s.on("error", () => {});
    const ok = await new Promise<boolean>((res) => {
      s.on("data", reader(res));
      s.write(connectPacket(i));
      conn.once("close", () => res(false));
    });
    if (!ok) throw new Error("no CONNACK");
    alive++;
    conn.once("close", () => {
      alive--;
      const why = conn.closeReason;
      const key = why ? `${why.initiator} 0x${why.errorCode.toString(16)} ${why.reason}` : "?";
      closes.set(key, (closes.get(key) ?? 0) + 1);
    });
    return { ping: () => s.write(PINGREQ) };
  };

  const openTcp = (i: number): Promise<LoadConn> =>
    new Promise((res, rej) => {
      const s: Socket = createConnection({ host, port });
      s.setNoDelay(true);
      s.on("error", rej);
      s.once("connect", () => s.write(connectPacket(i)));
      s.once("close", () => rej(new Error("closed before CONNACK")));
      s.on(
        "data",
        reader((ok) => {
          if (!ok) return rej(new Error("CONNACK refused"));
          alive++;
          s.removeAllListeners("close");
          s.removeAllListeners("error");
          s.on("error", () => {});
          s.once("close", () => alive--);
          res({ ping: () => s.write(PINGREQ) });
        }),
      );
    });

  // PINGREQ every keepalive interval per connection, spread evenly: a 100 ms tick pings the
  // slices of connections whose turn came since the last tick (one timer for all, not one per
  // connection). Turns follow the wall clock, so a late tick catches up instead of stretching
  // every connection's ping period past the broker's 1.5 x keepalive deadline.
  const TICK = 100;
  const slices = Math.max(1, Math.round((keepalive * 1000) / TICK));
  let done = Math.floor(performance.now() / TICK);
  setInterval(() => {
    const now = Math.floor(performance.now() / TICK);
    for (let turn = Math.max(done + 1, now - slices + 1); turn <= now; turn++) {
      for (let i = turn % slices; i < conns.length; i += slices) {
        conns[i].ping();
        pings++;
      }
    }
    done = now;
  }, TICK);

  const grow = async (target: number): Promise<void> => {
    const t0 = performance.now();
    let next = conns.length + failures;
    const open = proto === "quic" ? openQuic : openTcp;
    const worker = async (): Promise<void> => {
      while (conns.length < target && next < target + failures) {
        const i = next++;
        try {
          conns.push(await open(i));
        } catch (e) {
          failures++;
          lastError = (e as Error).message;
          if (failures > 50 + target / 100) throw new Error(`too many failed connections (${failures})`);
        }
        if (conns.length % 250 === 0) console.log(`PROGRESS ${conns.length}`);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    console.log(
      `GROWN ${JSON.stringify({ connections: conns.length, failures, seconds: (performance.now() - t0) / 1000 })}`,
    );
  };

  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (cmd === "grow")
      grow(Number(arg)).catch((e: Error) => {
        console.log(`FAILED ${e.message}`);
      });
    else if (cmd === "stats")
      console.log(
        `STATS ${JSON.stringify({ alive, pings, pongs, failures, lastError, closes: Object.fromEntries(closes) })}`,
      );
    else if (cmd === "exit") process.exit(0);
  });
  rl.on("close", () => process.exit(0));
  console.log("READY");
}

// ------------------------------------------------------------------------------- orchestrator

/** A child process we talk to over stdin/stdout lines. */
class Proc {
  private out = "";
  private lines: string[] = [];
  private seen = 0;
  private waiters = new Set<() => void>();
  private buf = "";
  readonly exited: Promise<number | null>;

  constructor(readonly proc: ChildProcess) {
    this.exited = new Promise((r) => proc.once("exit", (c) => r(c)));
    proc.stdout?.on("data", (d: Buffer) => {
      this.out += d;
      this.buf += d;
      let i = this.buf.indexOf("\n");
      while (i >= 0) {
        this.lines.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
        i = this.buf.indexOf("\n");
      }
      for (const w of this.waiters) w();
    });
    proc.stderr?.on("data", (d: Buffer) => {
      this.out += d;
    });
    void this.exited.then(() => {
      for (const w of this.waiters) w();
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  output(): string {
    return this.out;
  }

  send(line: string): void {
    this.proc.stdin?.write(`${line}\n`);
  }

  /** The next line (after those already consumed) matching `re`; `onOther` sees the others. */
  waitFor(re: RegExp, timeoutMs: number, onOther?: (line: string) => void): Promise<RegExpExecArray> {
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        rej(new Error(`timed out waiting for ${re}:\n${this.out.slice(-2000)}`));
      }, timeoutMs);
      const check = (): void => {
        for (; this.seen < this.lines.length; this.seen++) {
          const m = re.exec(this.lines[this.seen]);
          if (m) {
            this.seen++;
            clearTimeout(timer);
            this.waiters.delete(check);
            res(m);
            return;
          }
          onOther?.(this.lines[this.seen]);
        }
        if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
          clearTimeout(timer);
          this.waiters.delete(check);
          rej(
            new Error(
              `process exited (${this.proc.exitCode ?? this.proc.signalCode}):\n${this.out.slice(-2000)}`,
            ),
          );
        }
      };
      this.waiters.add(check);
      check();
    });
  }

  async ask(cmd: string, re: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
    const p = this.waitFor(re, timeoutMs);
    this.send(cmd);
    return p;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const t = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

function nodeChild(args: string[], cpu: string | undefined, extra: string[] = []): Proc {
  const argv = [...extra, "--import", "tsx", SELF, ...args];
  const [cmd, a] =
    cpu === undefined ? [process.execPath, argv] : ["taskset", ["-c", cpu, process.execPath, ...argv]];
  return new Proc(spawn(cmd, a, { cwd: REPO, stdio: ["pipe", "pipe", "pipe"] }));
}

/** VmRSS of a process in bytes (Linux /proc). */
function rssOf(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface RunOptions {
  steps: number[];
  keepalive: number;
  windowS: number;
  sockets: number;
  pin: boolean;
  tmp: string;
  cert: string;
  key: string;
  ca: string;
  mosquitto?: string;
  /** Connections opened before the baseline sample (see warmUp). */
  warm: number;
  /** Keep the heap snapshots of the analysis here instead of deleting them. */
  keepSnapshots?: string;
}

/** The broker's memory now: after GC for node brokers, RSS from /proc for mosquitto. */
async function sampleBroker(broker: Proc, isNode: boolean): Promise<BrokerSample | { rss: number }> {
  if (!isNode) return { rss: rssOf(broker.pid) };
  const m = await broker.ask("sample", /^SAMPLE (.*)$/);
  return JSON.parse(m[1]) as BrokerSample;
}

async function startBroker(name: CaseName, o: RunOptions): Promise<{ broker: Proc; port: number }> {
  const cpu = o.pin ? "1" : undefined;
  if (name === "tcp-mosquitto") {
    const bin = o.mosquitto ?? "mosquitto";
    const { handle: broker, ports } = await startMosquitto({
      configure: ([port]) => {
        const conf = join(o.tmp, `mosquitto-${port}.conf`);
        writeFileSync(
          conf,
          `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\n`,
        );
        return conf;
      },
      start: (conf) => {
        const [cmd, a] = cpu === undefined ? [bin, ["-c", conf]] : ["taskset", ["-c", cpu, bin, "-c", conf]];
        const p = new Proc(spawn(cmd, a, { stdio: ["pipe", "pipe", "pipe"] }));
        return { handle: p, proc: p.proc, output: () => p.output() };
      },
    });
    return { broker, port: ports[0] };
  }
  const broker = nodeChild(["broker", "--impl", name, "--cert", o.cert, "--key", o.key], cpu, [
    "--expose-gc",
    "--max-old-space-size=8192",
  ]);
  const m = await broker.waitFor(/^READY (\d+)/, 60_000);
  return { broker, port: Number(m[1]) };
}

function startLoad(name: CaseName, port: number, o: RunOptions): Proc {
  return nodeChild(
    [
      "load",
      "--proto",
      name === "quic-ours" ? "quic" : "tcp",
      "--port",
      String(port),
      "--keepalive",
      String(o.keepalive),
      "--sockets",
      String(o.sockets),
      "--ca",
      o.ca,
    ],
    o.pin ? "0" : undefined,
    ["--max-old-space-size=8192"],
  );
}

async function grow(
  load: Proc,
  target: number,
  label: string,
): Promise<{ failures: number; seconds: number }> {
  load.send(`grow ${target}`);
  const m = await load.waitFor(/^(GROWN|FAILED) (.*)$/, 900_000, (line) => {
    const p = /^PROGRESS (\d+)/.exec(line);
    if (p) progress(`${label}: ${p[1]} / ${target} connections`);
  });
  if (m[1] === "FAILED") throw new Error(`${label}: ${m[2]}`);
  return JSON.parse(m[2]) as { failures: number; seconds: number };
}

/**
 * Waits until the broker counts `n` connected clients (CONNACKs are sent before the count
 * settles), or until the count stops moving for 20 s: a broker that lost connections on the way
 * (keepalive or idle timeouts under load) is measured with what it holds, and the step says so.
 * Returns the count.
 */
async function waitClients(broker: Proc, n: number): Promise<number> {
  let last = -1;
  let since = Date.now();
  for (;;) {
    const c = Number((await broker.ask("clients", /^CLIENTS (\d+)/, 300_000))[1]);
    if (c >= n) return c;
    if (c !== last) {
      last = c;
      since = Date.now();
    } else if (Date.now() - since > 20_000) return c;
    await sleep(500);
  }
}

/**
 * The broker's baseline is taken after `warm` connections, not before the first: one-time costs
 * of the first connections (JIT-compiled code, mqtt-packet's cache of 65,536 encoded numbers,
 * crypto tables) are the broker's, not each connection's. Per connection = growth / (n - warm).
 */
async function warmUp(load: Proc, broker: Proc, isNode: boolean, warm: number, label: string): Promise<void> {
  if (warm > 0) {
    await grow(load, warm, `${label} warm-up`);
    if (isNode) await waitClients(broker, warm);
  }
  await sleep(1000);
}

async function runCase(name: CaseName, o: RunOptions): Promise<CaseResult> {
  const isNode = name !== "tcp-mosquitto";
  const { broker, port } = await startBroker(name, o);
  const load = startLoad(name, port, o);
  try {
    await load.waitFor(/^READY/, 60_000);
    await warmUp(load, broker, isNode, o.warm, name);
    const base = await sampleBroker(broker, isNode);
    const steps: StepResult[] = [];
    for (const n of o.steps) {
      const g = await grow(load, n, name);
      const clients = isNode ? await waitClients(broker, n) : n;
      await sleep(2000);
      const s = await sampleBroker(broker, isNode);
      const st = JSON.parse((await load.ask("stats", /^STATS (.*)$/))[1]) as { alive: number };
      // Per connection over what is held now (all n, unless some were lost on the way).
      const held = Math.min(st.alive, clients) - o.warm;
      progress(`${name}: ${n} connections held; idle CPU window ${o.windowS} s`);
      const st0 = JSON.parse((await load.ask("stats", /^STATS (.*)$/))[1]) as {
        pings: number;
        pongs: number;
      };
      const c0 = cpuSecondsOf(broker.pid);
      const t0 = performance.now();
      await sleep(o.windowS * 1000);
      const c1 = cpuSecondsOf(broker.pid);
      const secs = (performance.now() - t0) / 1000;
      const st1 = JSON.parse((await load.ask("stats", /^STATS (.*)$/))[1]) as {
        alive: number;
        pings: number;
        pongs: number;
        closes: Record<string, number>;
      };
      const cpu = c0 !== undefined && c1 !== undefined ? c1 - c0 : undefined;
      const heap = "heapUsed" in s && "heapUsed" in base;
      steps.push({
        connections: n,
        brokerClients: clients,
        heldAtSample: held + o.warm,
        alive: st1.alive,
        closes: st1.closes,
        openFailures: g.failures,
        openSeconds: g.seconds,
        rss: s.rss,
        heapUsed: "heapUsed" in s ? s.heapUsed : undefined,
        external: "external" in s ? s.external : undefined,
        arrayBuffers: "arrayBuffers" in s ? s.arrayBuffers : undefined,
        rssPerConnBytes: (s.rss - base.rss) / held,
        heapPerConnBytes: heap ? (s.heapUsed - base.heapUsed) / held : undefined,
        externalPerConnBytes: heap ? (s.external - base.external) / held : undefined,
        cpuWindowSeconds: secs,
        cpuSeconds: cpu,
        cpuPercent: cpu === undefined ? undefined : (100 * cpu) / secs,
        cpuUsPerConnPerSec: cpu === undefined ? undefined : (cpu * 1e6) / secs / Math.max(1, st1.alive),
        pings: st1.pings - st0.pings,
        pongs: st1.pongs - st0.pongs,
      });
    }
    return {
      name,
      baseline: {
        rss: base.rss,
        heapUsed: "heapUsed" in base ? base.heapUsed : undefined,
        external: "external" in base ? base.external : undefined,
      },
      steps,
    };
  } finally {
    load.send("exit");
    await load.stop();
    if (isNode) broker.send("exit");
    await broker.stop();
  }
}

/** Heap snapshots of quic-ours before and after `n` connections, summarised by class. */
async function analyse(n: number, o: RunOptions): Promise<Analysis> {
  const { broker, port } = await startBroker("quic-ours", o);
  // Writing a snapshot stops the broker for seconds: a keepalive of 20 s (deadline 30 s, pings
  // well within QUIC's 30 s idle timeout) keeps the connections through it.
  const load = startLoad("quic-ours", port, { ...o, keepalive: Math.max(o.keepalive, 20) });
  try {
    await load.waitFor(/^READY/, 60_000);
    await warmUp(load, broker, true, o.warm, "heap analysis");
    const before = join(o.tmp, "before.heapsnapshot");
    const after = join(o.tmp, "after.heapsnapshot");
    const s0 = (await sampleBroker(broker, true)) as BrokerSample;
    await broker.ask(`snapshot ${before}`, /^SNAPSHOT/, 300_000);
    await grow(load, n, "heap analysis");
    await waitClients(broker, n);
    await sleep(2000);
    const s1 = (await sampleBroker(broker, true)) as BrokerSample;
    progress(`heap analysis: snapshot with ${n} connections`);
    await broker.ask(`snapshot ${after}`, /^SNAPSHOT/, 300_000);
    progress("heap analysis: summarising the snapshots");
    const g = heapGrowth(summariseHeapSnapshot(before), summariseHeapSnapshot(after), n - o.warm, 20);
    progress("heap analysis: dominator tree (retained sizes)");
    const retained = retainedByOwner(after, OWNERS, 6);
    if (o.keepSnapshots) {
      renameSync(before, join(o.keepSnapshots, "scale-before.heapsnapshot"));
      renameSync(after, join(o.keepSnapshots, "scale-after.heapsnapshot"));
    } else {
      rmSync(before, { force: true });
      rmSync(after, { force: true });
    }
    return {
      connections: n,
      heapUsedPerConnBytes: (s1.heapUsed - s0.heapUsed) / (n - o.warm),
      snapshotBytesPerConn: g.totalBytesPerConn,
      top: g.top,
      retained,
    };
  } finally {
    load.send("exit");
    await load.stop();
    broker.send("exit");
    await broker.stop();
  }
}

const kb = (b: number | undefined): string => (b === undefined ? "-" : fmt(b / 1024, 2));
const mb = (b: number | undefined): string => (b === undefined ? "-" : fmt(b / 1048576, 1));

function gitDescribe(): string {
  try {
    return execFileSync("git", ["describe", "--always", "--dirty"], { cwd: REPO, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

async function main(argv: string[]): Promise<void> {
  const quick = argv.includes("--quick");
  if (argv.includes("--analyse-only")) {
    // Re-runs only the heap analysis and puts it into bench/results/<out>.json and .md.
    const name = flag(argv, "--out") ?? (quick ? "scale-quick" : "scale");
    const file = join(RESULTS_DIR, `${name}.json`);
    const json = JSON.parse(readFileSync(file, "utf8")) as Parameters<typeof writeScaleMarkdown>[2] & {
      argv?: string[];
      cases: CaseResult[];
      analysis?: Analysis;
      analysisMquictt?: string;
    };
    const tmp = mkdtempSync(join(tmpdir(), "mquictt-scale-"));
    try {
      const files = await makeCertificates({
        out: tmp,
        names: ["localhost"],
        days: 2,
        keyType: "ecdsa-p256",
        force: true,
      });
      const find = (f: string): string => files.find((p) => p.endsWith(`/${f}`)) ?? join(tmp, f);
      json.analysis = await analyse(Number(flag(argv, "--analyse") ?? (quick ? 150 : 1000)), {
        steps: [],
        keepalive: json.keepaliveSeconds,
        windowS: json.windowSeconds,
        sockets: 4,
        pin: canPin(machine().cores),
        tmp,
        cert: find("server.pem"),
        key: find("server-key.pem"),
        ca: find("ca.pem"),
        warm: json.warm,
        keepSnapshots: flag(argv, "--keep-snapshots"),
      });
      json.analysisMquictt = gitDescribe();
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    progressDone();
    writeResult(`${name}.json`, json);
    writeScaleMarkdown(name, json.argv ?? [], json, json.cases, json.analysis);
    console.log(`wrote ${file} and ${name}.md`);
    return;
  }
  if (argv.includes("--markdown-only")) {
    // Re-renders bench/results/<out>.md from <out>.json (no measurement).
    const name = flag(argv, "--out") ?? (quick ? "scale-quick" : "scale");
    const json = JSON.parse(readFileSync(join(RESULTS_DIR, `${name}.json`), "utf8")) as Parameters<
      typeof writeScaleMarkdown
    >[2] & { argv?: string[]; cases: CaseResult[]; analysis?: Analysis };
    writeScaleMarkdown(name, json.argv ?? [], json, json.cases, json.analysis);
    console.log(`wrote ${join(RESULTS_DIR, `${name}.md`)}`);
    return;
  }
  const steps = (flag(argv, "--steps") ?? (quick ? "150" : "1000,10000")).split(",").map(Number);
  // Full runs: 25 s, the order of real deployments, below QUIC's 30 s idle timeout.
  const keepalive = Number(flag(argv, "--keepalive") ?? (quick ? 5 : 25));
  const windowS = Number(flag(argv, "--window") ?? (quick ? 3 : 20));
  const analyseN = Number(flag(argv, "--analyse") ?? (quick ? 150 : 1000));
  const out = flag(argv, "--out") ?? (quick ? "scale-quick" : "scale");
  const mosquitto =
    findOnPath("mosquitto") ?? (existsSync("/usr/sbin/mosquitto") ? "/usr/sbin/mosquitto" : undefined);
  const notes: string[] = [];
  let cases = (flag(argv, "--cases")?.split(",") as CaseName[] | undefined) ?? ALL_CASES;
  for (const c of cases)
    if (!ALL_CASES.includes(c)) throw new Error(`unknown case ${c} (${ALL_CASES.join(", ")})`);
  if (!mosquitto && cases.includes("tcp-mosquitto")) {
    cases = cases.filter((c) => c !== "tcp-mosquitto");
    notes.push("mosquitto is not on PATH: the tcp-mosquitto case is skipped");
  }
  const cores = machine().cores;
  const pin = canPin(cores);
  if (!pin) notes.push("not pinned: broker and load share the CPUs");

  const tmp = mkdtempSync(join(tmpdir(), "mquictt-scale-"));
  const files = await makeCertificates({
    out: tmp,
    names: ["localhost"],
    days: 2,
    keyType: "ecdsa-p256",
    force: true,
  });
  const find = (f: string): string => files.find((p) => p.endsWith(`/${f}`)) ?? join(tmp, f);
  const o: RunOptions = {
    steps,
    keepalive,
    windowS,
    sockets: Number(flag(argv, "--sockets") ?? 4),
    pin,
    tmp,
    cert: find("server.pem"),
    key: find("server-key.pem"),
    ca: find("ca.pem"),
    mosquitto,
    keepSnapshots: flag(argv, "--keep-snapshots"),
    warm: Number(flag(argv, "--warm") ?? (quick ? 30 : 50)),
  };
  const results: CaseResult[] = [];
  let analysis: Analysis | undefined;
  const started = Date.now();
  try {
    for (const c of cases) {
      progress(`${c}: starting`);
      results.push(await runCase(c, o));
    }
    if (analyseN > 0 && !argv.includes("--no-analyse")) analysis = await analyse(analyseN, o);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  progressDone();

  // ---- report
  const rows: string[][] = [];
  for (const r of results)
    for (const s of r.steps)
      rows.push([
        r.name,
        String(s.connections),
        `${s.alive}`,
        mb(s.rss),
        kb(s.rssPerConnBytes),
        kb(s.heapPerConnBytes),
        kb(s.externalPerConnBytes),
        fmt(s.cpuPercent, 2),
        fmt(s.cpuUsPerConnPerSec, 2),
        fmt(s.openSeconds, 1),
      ]);
  const header = [
    "broker",
    "conns",
    "alive",
    "RSS MB",
    "RSS KB/conn",
    "heap KB/conn",
    "external KB/conn",
    "idle CPU %",
    "CPU µs/conn/s",
    "open s",
  ];
  console.log(table(header, rows));
  const stepOf = (name: CaseName, n: number): StepResult | undefined =>
    results.find((r) => r.name === name)?.steps.find((s) => s.connections === n);
  const biggest = comparedStep(results);
  const ours = stepOf("quic-ours", biggest);
  const ratios: Record<string, number | undefined> = {};
  for (const base of ["tcp-ours", "tcp-aedes", "tcp-mosquitto"] as CaseName[]) {
    const b = stepOf(base, biggest);
    if (ours && b) {
      ratios[`rssPerConn quic-ours/${base}`] = ours.rssPerConnBytes / b.rssPerConnBytes;
      if (ours.cpuSeconds !== undefined && b.cpuSeconds)
        ratios[`idleCpu quic-ours/${base}`] = ours.cpuSeconds / b.cpuSeconds;
    }
  }
  console.log(`\nratios at ${biggest} connections (quic-ours / baseline, same run):`);
  for (const [k, v] of Object.entries(ratios)) console.log(`  ${k}: ${fmt(v, 2)}`);
  if (analysis) {
    console.log(
      `\nheap growth per QUIC connection (${analysis.connections} connections; heapUsed ${kb(analysis.heapUsedPerConnBytes)} KB, snapshot ${kb(analysis.snapshotBytesPerConn)} KB):`,
    );
    console.log(
      table(
        ["class", "objects/conn", "bytes/conn"],
        analysis.top.map((t) => [t.name.slice(0, 60), fmt(t.countPerConn, 2), fmt(t.bytesPerConn, 0)]),
      ),
    );
  }
  for (const n of notes) console.log(`note: ${n}`);

  const json = {
    date: new Date().toISOString(),
    quick,
    ...machine(),
    mquictt: gitDescribe(),
    pinned: pin,
    seconds: (Date.now() - started) / 1000,
    method:
      "broker in its own process (CPU 1), load in another (CPU 0); MQTT 3.1.1 CONNECT clean session, then PINGREQ every keepalive; memory after gc() (node brokers: process.memoryUsage; mosquitto: VmRSS); per connection = (sample - baseline) / (connections - warm), the baseline sampled after `warm` warm-up connections (one-time costs: JIT code, mqtt-packet's number cache); CPU = broker user+system from /proc over the idle window",
    argv,
    keepaliveSeconds: keepalive,
    windowSeconds: windowS,
    warm: o.warm,
    sockets: o.sockets,
    notes,
    cases: results,
    ratios,
    analysis,
  };
  const path = writeResult(`${out}.json`, json);
  console.log(`\nwrote ${path}`);
  if (out === "scale" || out === "scale-quick") writeScaleMarkdown(out, argv, json, results, analysis);
}

/**
 * The step quic-ours is compared and held against the target at: the largest at which it still
 * held every connection (a step where the broker lost most of them says more about that than
 * about memory per connection; the table shows it anyway).
 */
function comparedStep(results: CaseResult[]): number {
  const all = results.flatMap((r) => r.steps.map((s) => s.connections));
  const ours = results.find((r) => r.name === "quic-ours");
  const full = ours?.steps.filter((s) => s.alive >= s.connections).map((s) => s.connections) ?? [];
  return full.length > 0 ? Math.max(...full) : Math.max(...all);
}

function writeScaleMarkdown(
  out: string,
  argv: string[],
  json: { keepaliveSeconds: number; windowSeconds: number; mquictt: string; notes: string[]; warm: number },
  results: CaseResult[],
  analysis: Analysis | undefined,
): void {
  const biggest = comparedStep(results);
  const shown = argv.filter((a) => a !== "--markdown-only");
  const cmd = `npm run bench:scale${shown.length ? ` -- ${shown.join(" ")}` : ""}`;
  const md: string[] = [
    "### Scale and memory: idle connections",
    "",
    `\`${cmd}\` (at ${json.mquictt})`,
    "",
    `Each broker in its own process; the load opens idle MQTT 3.1.1 connections (QUIC: over a few shared UDP sockets) and then sends only PINGREQ every ${json.keepaliveSeconds} s. Memory after a forced GC, per connection beyond the broker's baseline (sampled after ${json.warm} warm-up connections, so one-time costs such as JIT code and mqtt-packet's 65,536-entry number cache are not charged to connections); CPU of the broker over a ${json.windowSeconds} s idle window.`,
    "",
    mdTable(
      [
        "broker",
        "connections",
        "RSS MB",
        "RSS KB/conn",
        "V8 heap KB/conn",
        "external KB/conn",
        "idle CPU % of a core",
        "CPU µs/conn/s",
      ],
      results.flatMap((r) =>
        r.steps.map((s) => [
          r.name,
          s.alive < s.connections ? `${s.connections} (${s.alive} held at the end)` : String(s.connections),
          mb(s.rss),
          kb(s.rssPerConnBytes),
          kb(s.heapPerConnBytes),
          kb(s.externalPerConnBytes),
          fmt(s.cpuPercent, 2),
          fmt(s.cpuUsPerConnPerSec, 2),
        ]),
      ),
    ),
  ];
  const ours = results.find((r) => r.name === "quic-ours")?.steps.find((s) => s.connections === biggest);
  const base = results.filter((r) => r.name !== "quic-ours");
  if (ours && base.length) {
    md.push("", `Ratios at ${biggest} connections, quic-ours / baseline, measured in the same run:`, "");
    md.push(
      mdTable(
        ["baseline", "RSS per connection", "idle CPU"],
        base.flatMap((r) => {
          const b = r.steps.find((s) => s.connections === biggest);
          if (!b) return [];
          return [
            [
              r.name,
              `${fmt(ours.rssPerConnBytes / b.rssPerConnBytes, 2)}x`,
              ours.cpuSeconds !== undefined && b.cpuSeconds
                ? `${fmt(ours.cpuSeconds / b.cpuSeconds, 2)}x`
                : "-",
            ],
          ];
        }),
      ),
    );
  }
  if (analysis) {
    md.push(
      "",
      `What an idle QUIC connection holds on the broker's V8 heap (heap snapshots before and after ${analysis.connections} connections, shallow size by class, per connection; total ${kb(analysis.snapshotBytesPerConn)} KB, heapUsed grew ${kb(analysis.heapUsedPerConnBytes)} KB):`,
      "",
      mdTable(
        ["class", "objects/conn", "bytes/conn"],
        analysis.top.map((t) => [t.name.slice(0, 70), fmt(t.countPerConn, 2), fmt(t.bytesPerConn, 0)]),
      ),
    );
    if (analysis.retained?.length)
      md.push(
        "",
        "The top retained-memory items per connection (retained size: what would be freed with the object, from the dominator tree of the same snapshot; each object's biggest fields below it):",
        "",
        mdTable(
          ["object / field", "bytes per connection"],
          analysis.retained.flatMap((r) => [
            [
              `**${r.owner}** (${r.count} objects)`,
              `**${fmt(r.bytesPerOwner * (r.count / analysis.connections), 0)}**`,
            ],
            ...r.fields.map((f) => [
              `  ${f.name}`,
              fmt(f.bytesPerOwner * (r.count / analysis.connections), 0),
            ]),
          ]),
        ),
      );
  }
  // The "before" run: a fresh one under bench/results/ if there is one, else the one kept in
  // bench/lib/scale-before.json (measured at the commit it names, before the memory reductions).
  const fresh = join(RESULTS_DIR, "scale-before.json");
  const beforePath = existsSync(fresh) ? fresh : join(import.meta.dirname, "lib", "scale-before.json");
  if (out === "scale" && existsSync(beforePath)) {
    const before = JSON.parse(readFileSync(beforePath, "utf8")) as {
      mquictt: string;
      cases: CaseResult[];
      analysis?: Analysis;
    };
    const rowsBA: string[][] = [];
    const b = before.cases.find((c) => c.name === "quic-ours");
    const a = results.find((c) => c.name === "quic-ours");
    for (const sb of b?.steps ?? []) {
      const sa = a?.steps.find((s) => s.connections === sb.connections);
      if (!sa) continue;
      rowsBA.push([
        String(sb.connections),
        `${kb(sb.rssPerConnBytes)} → ${kb(sa.rssPerConnBytes)}`,
        `${kb(sb.heapPerConnBytes)} → ${kb(sa.heapPerConnBytes)}`,
        `${fmt(sb.cpuUsPerConnPerSec, 2)} → ${fmt(sa.cpuUsPerConnPerSec, 2)}`,
      ]);
    }
    if (before.analysis && analysis)
      rowsBA.push([
        `heap snapshot, ${analysis.connections}`,
        "",
        `${kb(before.analysis.snapshotBytesPerConn)} → ${kb(analysis.snapshotBytesPerConn)}`,
        "",
      ]);
    if (rowsBA.length)
      md.push(
        "",
        `Before/after the memory reductions (quic-ours; before = bench/results/scale-before.json at ${before.mquictt}, after = this run):`,
        "",
        mdTable(["connections", "RSS KB/conn", "V8 heap KB/conn", "CPU µs/conn/s"], rowsBA),
      );
  }
  for (const r of results)
    for (const s of r.steps)
      if (s.closes && Object.keys(s.closes).length > 0)
        md.push(
          "",
          `${r.name}, ${s.connections} connections: ${s.connections - s.alive} of them were lost after CONNACK, by the load's close reasons: ${Object.entries(
            s.closes,
          )
            .map(
              ([k, v]) =>
                `${v} × ${k.replace(/^remote /, "closed by the broker: ").replace(/^idle /, "QUIC idle timeout (no packet from the broker for 30 s): ")}`,
            )
            .join(
              ", ",
            )}. Memory per connection of that row is over the ${s.heldAtSample} still held at the sample (what the dead ones left behind included), so it is no measure of a healthy connection; ratios and the target use ${comparedStep(results)} connections.`,
        );
  for (const n of json.notes) md.push("", `Note: ${n}`);
  const targets: TargetResult[] = [];
  const lost = results
    .find((r) => r.name === "quic-ours")
    ?.steps.filter((s) => s.alive < s.connections)
    .map((s) => `${s.alive} of ${s.connections}`);
  const lostNote = lost?.length
    ? `; at a larger step the broker kept only ${lost.join(", ")} connections`
    : "";
  if (ours)
    targets.push({
      target: "Memory per idle connection: at most 8 KB beyond Node's baseline",
      measured: `${kb(ours.rssPerConnBytes)} KB RSS per QUIC connection at ${biggest} connections (V8 heap ${kb(ours.heapPerConnBytes)} KB, external ${kb(ours.externalPerConnBytes)} KB)${lostNote}`,
      met: ours.rssPerConnBytes <= TARGET_BYTES_PER_CONN,
    });
  writeMarkdown(out, md.join("\n"), targets);
}

const [role, ...rest] = process.argv.slice(2);
const run =
  role === "broker" ? brokerMain(rest) : role === "load" ? loadMain(rest) : main(process.argv.slice(2));
run.catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
