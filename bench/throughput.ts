/**
 * Throughput (issue 6, benchmark 2): publish → deliver messages per second through one broker.
 *
 * Scenarios (every subscriber subscribes to every publisher's topic, one SUBSCRIBE per topic):
 *
 *   1x1      1 publisher → 1 subscriber: each publish is delivered once
 *   10x100   10 publishers (one topic each, own connection) → 100 subscribers (own connection,
 *            each subscribed to all 10 topics): each publish is delivered 100 times, so
 *            delivered/s = 100 × published/s when nothing is lost
 *
 * Payloads 64 B and 4 KB, QoS 0/1/2 (subscriptions at the same QoS), MQTT 3.1.1 everywhere, and
 * these systems, all in the same run on loopback:
 *
 *   quic-per-topic  mquictt broker over QUIC, our client, every topic on its own stream
 *   quic-single     mquictt broker over QUIC, our client, one stream per connection
 *   tcp-ours        mquictt broker's TCP listener, MQTT.js clients
 *   aedes           aedes 1.2.0 over TCP (node:net, TCP_NODELAY), MQTT.js clients
 *   mosquitto       Debian mosquitto over TCP (set_tcp_nodelay), MQTT.js clients; skipped with a
 *                   note when `mosquitto` is not on PATH, and an error under CI=true
 *
 * Processes: the broker runs alone in its own process; all publishers and subscribers of a cell
 * run in one load-generator process (spawned per cell). On a 2-core machine that is one core
 * each. The load generator reads the broker's CPU time from /proc/<pid>/stat at the start and
 * end of the measured window, and its own from process.cpuUsage(), so msgs per broker
 * CPU-second is reported, and the table says how busy each side was (a load generator near
 * 100 % means the clients, not the broker, set the pace).
 *
 * Measuring: connect and subscribe everything, then publish as fast as the flow control allows
 * for `--warmup` s (not counted), then `--seconds` s (counted), then stop and drain.
 *  - QoS 0: a publisher writes while its stream/socket does not need draining (Node's
 *    writableNeedDrain on the QUIC stream or TCP socket it writes to) and waits for 'drain'
 *    otherwise. Messages never delivered are reported as QoS 0 loss.
 *  - QoS 1/2: each publisher keeps `--window` messages in flight (PUBACK / PUBCOMP frees a slot);
 *    published/s counts acknowledged publishes. After the run every acknowledged message must
 *    have reached every subscriber: anything missing is reported as lost, and fails the cell.
 *  - All QoS: at most `--e2e-window` deliveries per subscriber (default 1000) may be published and
 *    not yet received. MQTT has no end-to-end flow control (a broker acknowledges a publish before
 *    it delivers it), so without this bound a fast publisher fills the broker's queues: unbounded
 *    in aedes and in mosquitto as configured here, 1000 messages per session in ours (then it
 *    drops). With it, delivered/s is the rate the subscribers sustain.
 *  - Each payload carries its publisher's index and a sequence number; subscribers count
 *    duplicates (a sequence number seen before from that publisher) and reordered deliveries (a
 *    new one below the highest seen: MQTT 3.1.1 §4.6 wants each topic delivered in order).
 *  - Our broker's own drop counters (Broker.metrics.dropped: QoS 0 dropped when a subscriber's
 *    streams hold more than maxPendingBytes, §4.3.1 allows it) are read before and after each
 *    cell (SIGUSR2 → a METRICS line) and reported with the loss.
 *
 *   npx tsx bench/throughput.ts                 everything: 2 scenarios × 2 payloads × 3 QoS × 5 systems
 *   npx tsx bench/throughput.ts --quick         CI smoke (< 45 s): 1x1, 64 B, QoS 0 and 1, 1 s cells,
 *                                               quic-per-topic, aedes and mosquitto
 *   npx tsx bench/throughput.ts --systems quic-per-topic,aedes --scenarios 1x1 --payloads 64
 *       --qos 0 --seconds 5 --warmup 1 --window 64 --e2e-window 1000
 *   --profile DIR   run the mquictt broker under --cpu-prof and print the top costs of its main thread
 *   --replot        redraw the SVG from bench/results/throughput[-quick].json
 *   --out NAME      write throughput-NAME.json/.svg/.md instead (targeted re-runs keep the full result)
 *
 * Writes bench/results/throughput.json, throughput.svg (grouped bars of delivered msgs/s),
 * throughput.md and throughput.targets.json (the `-quick` variants for --quick).
 *
 * Internally `bench/throughput.ts broker-mquictt|broker-aedes|load ...` are the child roles.
 */
import { spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import { makeCertificates } from "../src/cli/cert.js";
import type { StreamMode } from "../src/mqtt/client/options.js";
import { Broker, type MqttClient, connect as mqConnect } from "../src/mqtt/index.js";
import { readPemFile } from "../src/net/cert-files.js";
import { findOnPath } from "./lib/child-output.js";
import { summariseProfile } from "./lib/cpu-profile.js";
import { startMosquitto } from "./lib/mosquitto.js";
import { type Child, cpuSecondsOf, mainThreadProfile, spawnProgram, udpBufferDrops } from "./lib/procs.js";
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

const SELF = join(import.meta.dirname, "throughput.ts");
const REPO = resolve(import.meta.dirname, "..");

/**
 * The broker-mquictt role for the compiled broker (`node --input-type=module -e`): argv is
 * [module of dist/mqtt/index.js, --cert, PEM, --key, PEM]; same lines and signals as the role.
 */
const DIST_BROKER = `
import { readFileSync } from "node:fs";
const [mod, , certFile, , keyFile] = process.argv.slice(1);
const { Broker } = await import(mod);
// Queues as deep as mosquitto's here (max_queued_messages 0 = unlimited; aedes has no limit):
// a subscriber that falls behind gets every QoS 1/2 message late instead of losing the oldest.
const broker = new Broker({ maxQueuedMessages: 10_000_000 });
const cert = readFileSync(certFile, "utf8");
const key = readFileSync(keyFile, "utf8");
const quic = await broker.listenQuic({ port: 0, host: "127.0.0.1", cert, key });
const tcp = await broker.listenTcp({ port: 0, host: "127.0.0.1" });
let n = 0;
process.on("SIGUSR2", () => process.stdout.write("METRICS " + ++n + " " + JSON.stringify(broker.metrics) + "\\n"));
const stop = () => Promise.race([broker.close(), new Promise((r) => setTimeout(r, 3000))]).finally(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
process.stdout.write("READY quic=" + quic.port + " tcp=" + tcp.port + "\\n");
`;

type System = "quic-per-topic" | "quic-single" | "tcp-ours" | "aedes" | "mosquitto";
const ALL_SYSTEMS: System[] = ["quic-per-topic", "quic-single", "tcp-ours", "aedes", "mosquitto"];
type Qos = 0 | 1 | 2;

interface Scenario {
  name: string;
  pubs: number;
  subs: number;
}
const SCENARIOS: Scenario[] = [
  { name: "1x1", pubs: 1, subs: 1 },
  { name: "10x100", pubs: 10, subs: 100 },
];

function num(argv: string[], name: string, dflt: number): number {
  const v = flag(argv, name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}: not a number: ${v}`);
  return n;
}

function tsxArgs(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--cpu-prof")) continue;
    out.push(argv[i]);
  }
  return out.some((a) => a.includes("tsx")) ? out : ["--import", "tsx", ...out];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Broker roles. Each prints `READY quic=<port> tcp=<port>` and exits cleanly on SIGTERM (so that
// --cpu-prof writes its profile).

function exitOnTerm(close: () => Promise<void>): void {
  const h = (): void => {
    void Promise.race([close(), sleep(3000)]).finally(() => process.exit(0));
  };
  process.once("SIGTERM", h);
  process.once("SIGINT", h);
}

async function brokerMquictt(argv: string[]): Promise<void> {
  const cert = readFileSync(flag(argv, "--cert") ?? "", "utf8");
  const key = readFileSync(flag(argv, "--key") ?? "", "utf8");
  const broker = new Broker({ maxQueuedMessages: 10_000_000 }); // as in DIST_BROKER
  const quic = await broker.listenQuic({ port: 0, host: "127.0.0.1", cert, key });
  const tcp = await broker.listenTcp({ port: 0, host: "127.0.0.1" });
  let n = 0;
  process.on("SIGUSR2", () => {
    process.stdout.write(`METRICS ${++n} ${JSON.stringify(broker.metrics)}\n`);
  });
  process.stdout.write(`READY quic=${quic.port} tcp=${tcp.port}\n`);
  exitOnTerm(() => broker.close());
}

async function brokerAedes(): Promise<void> {
  const { Aedes } = await import("aedes");
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    // Like our broker (and mosquitto's set_tcp_nodelay below): no Nagle delay on small packets.
    s.setNoDelay(true);
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    broker.handle(s);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  process.stdout.write(`READY quic=0 tcp=${port}\n`);
  exitOnTerm(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => broker.close(() => r()));
  });
}

// ---------------------------------------------------------------------------------------------
// The load generator: all publishers and subscribers of one cell.

/** What the load generator reports. */
interface LoadResult {
  /** Seconds of the measured window. */
  seconds: number;
  /** Publishes in the window (QoS 0: written; QoS 1/2: acknowledged). */
  published: number;
  /** Deliveries (sum over subscribers) in the window. */
  delivered: number;
  /** Broker CPU seconds (user + system) in the window; undefined without /proc. */
  brokerCpu?: number;
  /** Load generator CPU seconds in the window. */
  loadCpu: number;
  /** Over the whole run (warm-up, window, drain): */
  totalPublished: number;
  expectedDeliveries: number;
  totalDelivered: number;
  duplicates: number;
  /** New messages that arrived after a later one of the same publisher (topic order broken). */
  reordered: number;
  lost: number;
  /** Publishers writing off undelivered messages after a 250 ms stall at the end-to-end bound. */
  stalls: number;
  /** Times a QoS 0 publisher waited for 'drain' (stream/socket backpressure). */
  drainWaits: number;
  /** Publishes that failed (rejected promise). */
  errors: number;
  firstError?: string;
  connectMs: number;
  /** Client-side QUIC counters over the whole run, all connections (QUIC systems only). */
  quic?: QuicCounters;
}

/** One client connection as the load generator sees it. */
interface LoadClient {
  /** Publishes; resolves when sent (QoS 0) or acknowledged (QoS 1/2). */
  publish(topic: string, payload: Buffer, qos: Qos): Promise<unknown>;
  /** The stream or socket a QoS 0 publish to `topic` is written to, if known. */
  sink(topic: string): Duplex | undefined;
  subscribe(topics: string[], qos: Qos): Promise<void>;
  onMessage(cb: (topic: string, payload: Buffer) => void): void;
  /** QUIC connection counters of this client (undefined over TCP). */
  quicStats(): QuicCounters | undefined;
  end(): Promise<void>;
}

/** Client-side QUIC counters, summed over a cell's connections. */
interface QuicCounters {
  packetsSent: number;
  packetsReceived: number;
  packetsLost: number;
  ptoCount: number;
}

/** The QUIC connection behind a client's control stream (a QuicStream's connection). */
function quicStatsOf(stream: Duplex | undefined): QuicCounters | undefined {
  const conn = (stream as unknown as { conn?: { core?: { stats?: QuicCounters } } } | undefined)?.conn;
  const st = conn?.core?.stats;
  if (!st) return undefined;
  return {
    packetsSent: st.packetsSent,
    packetsReceived: st.packetsReceived,
    packetsLost: st.packetsLost,
    ptoCount: st.ptoCount,
  };
}

async function ourClient(
  url: string,
  id: string,
  ca: string | undefined,
  streamMode: StreamMode,
): Promise<LoadClient> {
  const c: MqttClient = await mqConnect(url, {
    clientId: id,
    ca,
    serverName: "localhost",
    streamMode,
    protocolVersion: 4,
    reconnect: false,
    keepalive: 0,
  });
  c.on("error", (e) => process.stderr.write(`${id}: ${e.message}\n`));
  const pubs = new Map<string, Awaited<ReturnType<MqttClient["publisher"]>>>();
  return {
    async publish(topic, payload, qos) {
      let p = pubs.get(topic);
      if (!p) {
        p = await c.publisher(topic);
        pubs.set(topic, p);
      }
      return p.publish(payload, { qos });
    },
    sink(topic) {
      const p = pubs.get(topic);
      // The publisher's own data stream (per-topic), or the control stream (single, TCP).
      return p ? c.currentLink?.channel(p.streamKey).duplex : undefined;
    },
    async subscribe(topics, qos) {
      // One call per topic: in per-topic mode each gets its own data stream.
      for (const t of topics) await c.subscribe(t, { qos });
    },
    onMessage(cb) {
      c.on("message", (t, payload) => cb(t, payload));
    },
    quicStats() {
      return quicStatsOf(c.currentLink?.control.duplex);
    },
    async end() {
      await c.end(true);
    },
  };
}

async function mqttJsClient(url: string, id: string): Promise<LoadClient> {
  const mqtt = await import("mqtt");
  const c = await mqtt.connectAsync(url, {
    clientId: id,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 0,
    keepalive: 0,
  });
  c.on("error", (e) => process.stderr.write(`${id}: ${e.message}\n`));
  return {
    publish(topic, payload, qos) {
      return c.publishAsync(topic, payload, { qos });
    },
    sink() {
      return c.stream as unknown as Duplex;
    },
    async subscribe(topics, qos) {
      for (const t of topics) await c.subscribeAsync(t, { qos });
    },
    onMessage(cb) {
      c.on("message", (t, payload) => cb(t, payload));
    },
    quicStats() {
      return undefined;
    },
    async end() {
      await c.endAsync(true);
    },
  };
}

async function runLoad(argv: string[]): Promise<void> {
  const system = flag(argv, "--system") as System;
  const url = flag(argv, "--url") ?? "";
  const caFile = flag(argv, "--ca");
  const ca = caFile !== undefined ? await readPemFile(caFile) : undefined;
  const nPubs = num(argv, "--pubs", 1);
  const nSubs = num(argv, "--subs", 1);
  const size = Math.max(16, num(argv, "--payload", 64));
  const qos = num(argv, "--qos", 0) as Qos;
  const warmup = num(argv, "--warmup", 1);
  const seconds = num(argv, "--seconds", 5);
  const window = num(argv, "--window", 64);
  const e2eWindow = num(argv, "--e2e-window", 1000);
  const drainMax = num(argv, "--drain", 10);
  const brokerPid = num(argv, "--broker-pid", 0) || undefined;
  const prefix = flag(argv, "--prefix") ?? `tp/${process.pid}`;

  const make = (id: string): Promise<LoadClient> =>
    system === "quic-per-topic" || system === "quic-single"
      ? ourClient(url, id, ca, system === "quic-per-topic" ? "per-topic" : "single")
      : mqttJsClient(url, id);

  const topics = Array.from({ length: nPubs }, (_, i) => `${prefix}/t${i}`);
  const t0 = performance.now();
  // Subscribers first (a few at a time), so that nothing published is missed.
  const subs: LoadClient[] = [];
  for (let i = 0; i < nSubs; i += 10) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(10, nSubs - i) }, (_, k) => make(`tp-sub-${process.pid}-${i + k}`)),
    );
    await Promise.all(batch.map((s) => s.subscribe(topics, qos)));
    subs.push(...batch);
  }
  const pubs = await Promise.all(topics.map((_, i) => make(`tp-pub-${process.pid}-${i}`)));
  const connectMs = performance.now() - t0;

  // Counting deliveries: per (subscriber, publisher) a bitmap of the sequence numbers seen (a
  // second copy is a duplicate) and the highest one (a new number below it arrived out of order).
  let delivered = 0;
  let duplicates = 0;
  let reordered = 0;
  const deliveredBy = new Float64Array(subs.length);
  const highest = subs.map(() => new Int32Array(nPubs).fill(-1));
  const seen = subs.map(() => Array.from({ length: nPubs }, () => new Uint8Array(1024)));
  const waiters: Array<() => void> = [];
  subs.forEach((s, si) => {
    const hi = highest[si];
    const maps = seen[si];
    s.onMessage((_t, payload) => {
      if (payload.length < 8) return;
      const pi = payload.readUInt32BE(0);
      const seq = payload.readUInt32BE(4);
      if (pi >= nPubs) return;
      let map = maps[pi];
      if (seq >> 3 >= map.length) {
        const bigger = new Uint8Array(Math.max(map.length * 2, (seq >> 3) + 1));
        bigger.set(map);
        maps[pi] = map = bigger;
      }
      const bit = 1 << (seq & 7);
      if (map[seq >> 3] & bit) {
        duplicates++;
        return;
      }
      map[seq >> 3] |= bit;
      if (seq < hi[pi]) reordered++;
      else hi[pi] = seq;
      delivered++;
      deliveredBy[si]++;
      if (waiters.length > 0) for (const w of waiters.splice(0)) w();
    });
  });
  const waitDelivery = (ms: number): Promise<void> =>
    new Promise((r) => {
      const t = setTimeout(r, ms);
      waiters.push(() => {
        clearTimeout(t);
        r();
      });
    });

  let stop = false;
  let published = 0; // QoS 0: written; QoS 1/2: acknowledged
  let attempted = 0; // publish calls
  let errors = 0;
  let firstError: string | undefined;
  let stalls = 0;
  let drainWaits = 0;
  let writtenOff = 0; // messages per subscriber given up after a stall at the end-to-end bound
  const inflight: Promise<unknown>[] = [];
  const onErr = (e: unknown): void => {
    errors++;
    firstError ??= e instanceof Error ? e.message : String(e);
  };

  const payloadFor = (pi: number, seq: number): Buffer => {
    const b = Buffer.alloc(size);
    b.writeUInt32BE(pi, 0);
    b.writeUInt32BE(seq, 4);
    return b;
  };

  /**
   * End to end: at most e2eWindow messages published and not yet received by the slowest subscriber, so
   * that no broker buffers without bound (MQTT has no end-to-end flow control: a broker
   * acknowledges a QoS 1/2 publish before it delivers it). Waits when the bound is reached; after
   * 250 ms without a delivery the outstanding ones are written off (a broker may drop; the loss
   * is counted at the end) so that the run goes on.
   */
  const e2eFull = async (): Promise<boolean> => {
    // The slowest subscriber decides: a broker queues per subscriber session.
    let slowest = Number.POSITIVE_INFINITY;
    for (const d of deliveredBy) if (d < slowest) slowest = d;
    const outstanding = attempted - errors - slowest - writtenOff;
    if (outstanding < e2eWindow) return false;
    const before = delivered;
    await waitDelivery(250);
    if (delivered === before && !stop) {
      stalls++;
      writtenOff = attempted - errors - slowest;
    }
    return true;
  };

  const publisher = async (pi: number): Promise<void> => {
    const c = pubs[pi];
    const topic = topics[pi];
    let seq = 0;
    if (qos === 0) {
      // Open the publisher's stream first, so that the sink is known from the first message on.
      await c.publish(topic, payloadFor(pi, seq++), 0).then(() => published++, onErr);
      attempted++;
      let sinceYield = 0;
      while (!stop) {
        if (await e2eFull()) continue;
        const sink = c.sink(topic);
        if (sink?.writableNeedDrain) {
          drainWaits++;
          await Promise.race([once(sink, "drain"), sleep(1000)]);
          continue;
        }
        attempted++;
        c.publish(topic, payloadFor(pi, seq++), 0).then(() => published++, onErr);
        if (++sinceYield >= 64) {
          // Let the event loop run (sockets, timers, deliveries) between bursts.
          sinceYield = 0;
          await new Promise((r) => setImmediate(r));
        }
      }
      return;
    }
    // QoS 1/2: a window of in-flight messages (and the same end-to-end bound as QoS 0).
    let open = 0;
    let slot: (() => void) | undefined;
    while (!stop) {
      if (await e2eFull()) continue;
      if (open >= window) {
        await new Promise<void>((r) => {
          slot = r;
        });
        continue;
      }
      open++;
      attempted++;
      const p = c
        .publish(topic, payloadFor(pi, seq++), qos)
        .then(() => published++, onErr)
        .finally(() => {
          open--;
          const s = slot;
          slot = undefined;
          s?.();
        });
      inflight.push(p);
      if (inflight.length > 4096) inflight.splice(0, 2048);
    }
    // Let the last window complete.
    while (open > 0) await new Promise<void>((r) => (slot = r));
  };

  const runners = pubs.map((_, i) => publisher(i));
  await sleep(warmup * 1000);
  const cpu0 = process.cpuUsage();
  const b0 = cpuSecondsOf(brokerPid);
  const p0 = published;
  const d0 = delivered;
  const w0 = performance.now();
  process.stderr.write("MEASURING\n");
  await sleep(seconds * 1000);
  const p1 = published;
  const d1 = delivered;
  const w1 = performance.now();
  const b1 = cpuSecondsOf(brokerPid);
  const cpu1 = process.cpuUsage(cpu0);
  stop = true;
  // Wake publishers blocked on deliveries or slots.
  for (const w of waiters.splice(0)) w();
  await Promise.race([Promise.all(runners), sleep(drainMax * 1000)]);

  // Drain: until every expected delivery arrived, or no progress for 1 s (QoS 0) / drainMax s
  // (QoS 1/2: a broker may still be working through a backlog).
  const okPublished = qos === 0 ? attempted - errors : published;
  const expected = okPublished * nSubs;
  let lastProgress = performance.now();
  while (delivered < expected) {
    const before = delivered;
    await waitDelivery(1000);
    if (delivered > before) lastProgress = performance.now();
    else if (qos === 0 || performance.now() - lastProgress > drainMax * 1000) break;
  }
  let quic: QuicCounters | undefined;
  for (const c of [...pubs, ...subs]) {
    const st = c.quicStats();
    if (!st) continue;
    quic ??= { packetsSent: 0, packetsReceived: 0, packetsLost: 0, ptoCount: 0 };
    quic.packetsSent += st.packetsSent;
    quic.packetsReceived += st.packetsReceived;
    quic.packetsLost += st.packetsLost;
    quic.ptoCount += st.ptoCount;
  }
  const result: LoadResult = {
    seconds: (w1 - w0) / 1000,
    published: p1 - p0,
    delivered: d1 - d0,
    brokerCpu: b0 !== undefined && b1 !== undefined ? b1 - b0 : undefined,
    loadCpu: (cpu1.user + cpu1.system) / 1e6,
    totalPublished: okPublished,
    expectedDeliveries: expected,
    totalDelivered: delivered,
    duplicates,
    reordered,
    lost: Math.max(0, expected - delivered),
    stalls,
    drainWaits,
    errors,
    firstError,
    connectMs: Math.round(connectMs),
    quic,
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  await Promise.race([Promise.allSettled([...pubs, ...subs].map((c) => c.end())), sleep(2000)]);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Orchestration.

interface CellResult {
  system: System;
  scenario: string;
  pubs: number;
  subs: number;
  payload: number;
  qos: Qos;
  publishedPerSec?: number;
  deliveredPerSec?: number;
  /** Deliveries per broker CPU-second. */
  deliveredPerBrokerCpuSec?: number;
  /** Broker CPU utilisation in the window (1 = one core). */
  brokerCpuUtil?: number;
  loadCpuUtil?: number;
  lost?: number;
  lossPct?: number;
  duplicates?: number;
  reordered?: number;
  /** Messages our broker reports it dropped for a session during the cell (mquictt only). */
  brokerDropped?: number;
  /**
   * UDP datagrams the kernel dropped for full socket buffers during the cell (RcvbufErrors +
   * SndbufErrors, system-wide: other processes on the machine count too). QUIC recovers them by
   * retransmission, TCP on loopback never loses.
   */
  udpBufferDrops?: number;
  raw?: LoadResult;
  error?: string;
}

interface RunParams {
  seconds: number;
  warmup: number;
  window: number;
  e2eWindow: number;
  systems: System[];
  scenarios: string[];
  payloads: number[];
  qos: Qos[];
  quick: boolean;
  /** --out NAME: results go to throughput-NAME.* (targeted re-runs keep the full result). */
  out?: string;
  /** How the mquictt broker runs: compiled by tsc under plain node, or from source under tsx. */
  brokerFrom: "dist" | "tsx";
}

/** A running broker. */
interface BrokerHandle {
  child: Child;
  url: string;
  pid: number | undefined;
  /** Our broker's drop counters (total over reasons), via SIGUSR2; undefined for the others. */
  dropped?: () => Promise<number | undefined>;
}

async function startBroker(
  system: System,
  certDir: string,
  mosquittoBin: string | undefined,
  profileDir: string | undefined,
  distDir: string | undefined,
): Promise<BrokerHandle> {
  if (system === "mosquitto") {
    if (!mosquittoBin) throw new Error("mosquitto is not on PATH");
    // set_tcp_nodelay: mosquitto leaves Nagle on by default; our broker and aedes (above) set
    // TCP_NODELAY, so all three compare brokers, not Nagle. No logging per message.
    const {
      handle: child,
      ports: [port],
    } = await startMosquitto({
      configure: ([p]) => {
        const conf = join(certDir, `mosquitto-${p}.conf`);
        writeFileSync(
          conf,
          `listener ${p} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\nlog_type error\nmax_queued_messages 0\nmax_inflight_messages 0\n${
            process.getuid?.() === 0 ? "user root\n" : ""
          }`,
        );
        return conf;
      },
      start: (conf) => {
        const c = spawnProgram(mosquittoBin, ["-c", conf]);
        return { handle: c, proc: c.proc, output: c.output };
      },
    });
    return { child, url: `mqtt://127.0.0.1:${port}`, pid: child.proc.pid };
  }
  const role = system === "aedes" ? "broker-aedes" : "broker-mquictt";
  const prof = profileDir && role === "broker-mquictt" ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const certArgs = ["--cert", join(certDir, "server.pem"), "--key", join(certDir, "server-key.pem")];
  const child =
    role === "broker-mquictt" && distDir !== undefined
      ? // The compiled broker under plain node, as users run it (no tsx transform in the hot path).
        spawnProgram(process.execPath, [
          ...prof,
          "--input-type=module",
          "-e",
          DIST_BROKER,
          join(distDir, "mqtt", "index.js"),
          ...certArgs,
        ])
      : spawnProgram(process.execPath, [...tsxArgs(), ...prof, SELF, role, ...certArgs]);
  const m = await child.waitFor(/^READY quic=(\d+) tcp=(\d+)/, 60_000);
  const url =
    system === "quic-per-topic" || system === "quic-single"
      ? `mqtt+quic://127.0.0.1:${m[1]}`
      : `mqtt://127.0.0.1:${m[2]}`;
  let n = 0;
  const dropped =
    role === "broker-mquictt"
      ? async (): Promise<number | undefined> => {
          n++;
          child.proc.kill("SIGUSR2");
          try {
            const mm = await child.waitFor(new RegExp(`^METRICS ${n} (.*)$`), 10_000);
            const metrics = JSON.parse(mm[1]) as { dropped: Record<string, number> };
            return Object.values(metrics.dropped).reduce((a, b) => a + b, 0);
          } catch {
            return undefined;
          }
        }
      : undefined;
  return { child, url, pid: child.proc.pid, dropped };
}

async function main(argv: string[]): Promise<void> {
  const quick = argv.includes("--quick");
  const out = flag(argv, "--out");
  const suffix = out !== undefined ? `-${out}` : quick ? "-quick" : "";
  if (argv.includes("--replot")) {
    const saved = JSON.parse(readFileSync(join(RESULTS_DIR, `throughput${suffix}.json`), "utf8")) as {
      cells: CellResult[];
      params: RunParams;
      notes: string[];
    };
    const svgPath = join(RESULTS_DIR, `throughput${suffix}.svg`);
    writeFileSync(svgPath, barsSvg(saved.cells, saved.params, saved.notes));
    console.log(`wrote ${svgPath}`);
    return;
  }
  const params: RunParams = {
    seconds: num(argv, "--seconds", quick ? 1 : 5),
    warmup: num(argv, "--warmup", quick ? 0.5 : 2),
    window: num(argv, "--window", 64),
    e2eWindow: num(argv, "--e2e-window", 1000),
    systems: (flag(argv, "--systems")?.split(",") ??
      (quick ? ["quic-per-topic", "aedes", "mosquitto"] : ALL_SYSTEMS)) as System[],
    scenarios: flag(argv, "--scenarios")?.split(",") ?? (quick ? ["1x1"] : ["1x1", "10x100"]),
    payloads: (flag(argv, "--payloads") ?? (quick ? "64" : "64,4096")).split(",").map(Number),
    qos: (flag(argv, "--qos") ?? (quick ? "0,1" : "0,1,2")).split(",").map(Number) as Qos[],
    quick,
    out,
    brokerFrom: (flag(argv, "--broker-from") ?? (quick ? "tsx" : "dist")) as "dist" | "tsx",
  };
  if (params.brokerFrom !== "dist" && params.brokerFrom !== "tsx") throw new Error("--broker-from dist|tsx");
  for (const s of params.systems)
    if (!ALL_SYSTEMS.includes(s)) throw new Error(`unknown system ${s}; known: ${ALL_SYSTEMS}`);
  for (const s of params.scenarios)
    if (!SCENARIOS.some((x) => x.name === s)) throw new Error(`unknown scenario ${s}; known: 1x1, 10x100`);
  for (const q of params.qos) if (q !== 0 && q !== 1 && q !== 2) throw new Error(`bad --qos ${q}`);
  const profileDir = flag(argv, "--profile");

  const notes: string[] = [];
  const mosquittoBin = findOnPath("mosquitto");
  if (!mosquittoBin && params.systems.includes("mosquitto")) {
    if (process.env.CI === "true")
      throw new Error("mosquitto is not on PATH (CI=true: install the Debian package mosquitto)");
    params.systems = params.systems.filter((s) => s !== "mosquitto");
    notes.push("mosquitto is not on PATH: the mosquitto baseline is skipped");
    console.log("NOTE: mosquitto is not on PATH: the mosquitto baseline is skipped");
  }

  const load0 = loadavg()[0];
  const tmp = mkdtempSync(join(tmpdir(), "mquictt-throughput-"));
  await makeCertificates({ out: tmp, names: ["localhost"], days: 2, keyType: "ecdsa-p256", force: true });
  // The mquictt broker runs compiled (tsc, tsconfig.build.json) unless --broker-from tsx: tsx's
  // transform wraps every closure created in the hot path in a __name() call (~10 % of the
  // broker's CPU in a profile), which the published package does not pay.
  let distDir: string | undefined;
  const usesOurBroker = params.systems.some(
    (s) => s === "quic-per-topic" || s === "quic-single" || s === "tcp-ours",
  );
  if (params.brokerFrom === "dist" && usesOurBroker) {
    progress("compiling the broker (tsc -p tsconfig.build.json)");
    distDir = join(tmp, "dist");
    // The compiled modules resolve their dependencies from the repository's node_modules.
    symlinkSync(join(REPO, "node_modules"), join(tmp, "node_modules"), "dir");
    const r = spawnSync(
      process.execPath,
      [
        join(REPO, "node_modules", "typescript", "bin", "tsc"),
        "-p",
        join(REPO, "tsconfig.build.json"),
        "--outDir",
        distDir,
      ],
      { cwd: REPO, encoding: "utf8" },
    );
    if (r.status !== 0) {
      const why = `${r.stdout}${r.stderr}`.split("\n").slice(0, 3).join(" ");
      notes.push(
        `the broker did not compile (${why.slice(0, 300)}); the mquictt broker runs under tsx instead`,
      );
      params.brokerFrom = "tsx";
      distDir = undefined;
    }
  }
  if (usesOurBroker)
    notes.push(
      params.brokerFrom === "dist"
        ? "mquictt broker: compiled with tsc, run by plain node"
        : "mquictt broker: run from source under tsx (its __name() wrapping of closures costs ~10 % of broker CPU)",
    );

  const cells: CellResult[] = [];
  const totalCells =
    params.systems.length * params.scenarios.length * params.payloads.length * params.qos.length;
  const t0 = performance.now();
  try {
    for (const system of params.systems) {
      const broker = await startBroker(system, tmp, mosquittoBin, profileDir, distDir);
      try {
        for (const scName of params.scenarios) {
          const sc = SCENARIOS.find((x) => x.name === scName) as Scenario;
          for (const payload of params.payloads) {
            for (const qos of params.qos) {
              const label = `${system} ${sc.name} ${payload} B QoS ${qos}`;
              progress(
                `[${cells.length + 1}/${totalCells}, ${((performance.now() - t0) / 1000).toFixed(0)} s] ${label}`,
              );
              cells.push(await runCell(system, sc, payload, qos, broker, tmp, params));
              const c = cells[cells.length - 1];
              if (c.error) process.stderr.write(`\n${label} failed: ${c.error}\n`);
            }
          }
        }
      } finally {
        await broker.child.stop();
      }
      if (broker.child.proc.exitCode !== 0 && broker.child.proc.exitCode !== null && system !== "mosquitto")
        process.stderr.write(`\n${system} broker exited with ${broker.child.proc.exitCode}\n`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    progressDone();
  }
  const load1 = loadavg()[0];
  // Shared machines: every process gets a slice of the cores, and windowed protocols whose
  // turns wait on timers and the scheduler lose more than their CPU share; per-CPU-second is the
  // steadier comparison then.
  notes.push(
    `load average ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end, on ${machine().cores} cores${
      Math.max(load0, load1) > machine().cores
        ? ": the machine was busy with other work, so msgs/s are below what an idle machine gives; deliveries per broker CPU-second are the steadier comparison"
        : ""
    }`,
  );
  report(cells, params, notes, argv);
  if (profileDir) {
    const p = mainThreadProfile(profileDir);
    console.log(`\nbroker CPU profile (${p}):`);
    console.log(summariseProfile(p, 25, "src/"));
  }
  // Lost QoS 1/2 messages fail the run (after writing what was measured).
  // QoS 2 duplicates too (exactly once); reordering is reported, not failed.
  const bad = cells.filter(
    (c) => c.error || (c.qos > 0 && (c.lost ?? 0) > 0) || (c.qos === 2 && (c.duplicates ?? 0) > 0),
  );
  if (bad.length > 0) {
    console.error(
      `\n${bad.length} cell(s) failed, lost QoS 1/2 messages or duplicated QoS 2 ones: ${bad.map((c) => `${c.system} ${c.scenario} ${c.payload} B QoS ${c.qos}`).join("; ")}`,
    );
    process.exitCode = 1;
  }
}

async function runCell(
  system: System,
  sc: Scenario,
  payload: number,
  qos: Qos,
  broker: BrokerHandle,
  certDir: string,
  params: RunParams,
): Promise<CellResult> {
  const base: CellResult = { system, scenario: sc.name, pubs: sc.pubs, subs: sc.subs, payload, qos };
  if (broker.child.proc.exitCode !== null || broker.child.proc.signalCode !== null)
    return { ...base, error: `broker is not running:\n${broker.child.output().slice(-2000)}` };
  const drain = params.quick ? 5 : 15;
  const dropped0 = await broker.dropped?.();
  const udp0 = udpBufferDrops();
  const load = spawnProgram(process.execPath, [
    ...tsxArgs(),
    SELF,
    "load",
    "--system",
    system,
    "--url",
    broker.url,
    "--ca",
    join(certDir, "ca.pem"),
    "--pubs",
    String(sc.pubs),
    "--subs",
    String(sc.subs),
    "--payload",
    String(payload),
    "--qos",
    String(qos),
    "--warmup",
    String(params.warmup),
    "--seconds",
    String(params.seconds),
    "--window",
    String(params.window),
    "--e2e-window",
    String(params.e2eWindow),
    "--drain",
    String(drain),
    "--broker-pid",
    String(broker.pid ?? 0),
    "--prefix",
    `tp/${system}/${sc.name}/${payload}/${qos}`,
  ]);
  try {
    const m = await load.waitFor(/^RESULT (.*)$/, (params.warmup + params.seconds + 2 * drain + 90) * 1000);
    const r = JSON.parse(m[1]) as LoadResult;
    const dropped1 = await broker.dropped?.();
    const udp1 = udpBufferDrops();
    const out: CellResult = {
      ...base,
      publishedPerSec: r.published / r.seconds,
      deliveredPerSec: r.delivered / r.seconds,
      deliveredPerBrokerCpuSec: r.brokerCpu ? r.delivered / r.brokerCpu : undefined,
      brokerCpuUtil: r.brokerCpu !== undefined ? r.brokerCpu / r.seconds : undefined,
      loadCpuUtil: r.loadCpu / r.seconds,
      lost: r.lost,
      lossPct: r.expectedDeliveries > 0 ? (100 * r.lost) / r.expectedDeliveries : 0,
      duplicates: r.duplicates,
      reordered: r.reordered,
      brokerDropped: dropped0 !== undefined && dropped1 !== undefined ? dropped1 - dropped0 : undefined,
      udpBufferDrops: udp0 !== undefined && udp1 !== undefined ? udp1 - udp0 : undefined,
      raw: r,
    };
    if (r.errors > 0) out.error = `${r.errors} publish error(s), first: ${r.firstError}`;
    return out;
  } catch (e) {
    return { ...base, error: (e instanceof Error ? e.message : String(e)).slice(0, 2000) };
  } finally {
    await load.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Report: table, JSON, SVG, markdown and targets.

const k = (x: number | undefined): string =>
  x === undefined || !Number.isFinite(x) ? "-" : x >= 10_000 ? `${(x / 1000).toFixed(0)}k` : x.toFixed(0);
const pct = (x: number | undefined): string => (x === undefined ? "-" : `${(x * 100).toFixed(0)}%`);

function find(cells: CellResult[], system: System, c: CellResult): CellResult | undefined {
  return cells.find(
    (x) => x.system === system && x.scenario === c.scenario && x.payload === c.payload && x.qos === c.qos,
  );
}

function ratio(a?: number, b?: number): number | undefined {
  return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
}

function rowsOf(cells: CellResult[]): string[][] {
  return cells.map((c) => {
    const aedes = find(cells, "aedes", c);
    const mosq = find(cells, "mosquitto", c);
    return [
      c.scenario,
      c.payload >= 1024 ? `${c.payload / 1024} KB` : `${c.payload} B`,
      `${c.qos}`,
      c.system,
      c.error ? "error" : k(c.publishedPerSec),
      c.error ? "error" : k(c.deliveredPerSec),
      k(c.deliveredPerBrokerCpuSec),
      pct(c.brokerCpuUtil),
      pct(c.loadCpuUtil),
      c.lost === undefined ? "-" : c.lost === 0 ? "0" : `${c.lost} (${fmt(c.lossPct, 2)}%)`,
      c.brokerDropped === undefined ? "-" : `${c.brokerDropped}`,
      c.system.startsWith("quic") && c.udpBufferDrops !== undefined ? `${c.udpBufferDrops}` : "-",
      c.duplicates === undefined ? "-" : `${c.duplicates}`,
      c.reordered === undefined ? "-" : `${c.reordered}`,
      fmt(ratio(c.deliveredPerSec, aedes?.deliveredPerSec), 2),
      fmt(ratio(c.deliveredPerSec, mosq?.deliveredPerSec), 2),
    ];
  });
}

const HEADER = [
  "scenario",
  "payload",
  "QoS",
  "system",
  "published/s",
  "delivered/s",
  "deliv/broker-CPU-s",
  "broker CPU",
  "loadgen CPU",
  "lost",
  "broker drops",
  "UDP drops",
  "dups",
  "reord",
  "÷aedes",
  "÷mosquitto",
];

function sortCells(cells: CellResult[]): CellResult[] {
  const sIdx = (s: string): number => SCENARIOS.findIndex((x) => x.name === s);
  return [...cells].sort(
    (a, b) =>
      sIdx(a.scenario) - sIdx(b.scenario) ||
      a.payload - b.payload ||
      a.qos - b.qos ||
      ALL_SYSTEMS.indexOf(a.system) - ALL_SYSTEMS.indexOf(b.system),
  );
}

function report(unsorted: CellResult[], params: RunParams, notes: string[], argv: string[]): void {
  const cells = sortCells(unsorted);
  const title = `MQTT throughput through one broker on loopback, MQTT 3.1.1, ${params.seconds} s per cell after ${params.warmup} s warm-up; QoS 1/2 window ${params.window} per publisher, end-to-end window ${params.e2eWindow} deliveries per subscriber`;
  console.log(`\n${title}`);
  console.log(
    "1x1: 1 publisher → 1 subscriber; 10x100: 10 publishers (1 topic each) → 100 subscribers each subscribed to all 10 topics (every publish delivered 100×)",
  );
  for (const n of notes) console.log(`NOTE: ${n}`);
  const rows = rowsOf(cells);
  console.log(table(HEADER, rows, 4));

  // Target (issue 6): broker QoS 0 throughput over QUIC ≥ aedes over TCP in the same run.
  const targets: TargetResult[] = [];
  for (const c of cells) {
    if (c.qos !== 0 || c.system !== "quic-per-topic") continue;
    const a = find(cells, "aedes", c);
    if (!a) continue;
    const r = ratio(c.deliveredPerSec, a.deliveredPerSec);
    const size = c.payload >= 1024 ? `${c.payload / 1024} KB` : `${c.payload} B`;
    targets.push({
      target: `Broker QoS 0 throughput over QUIC ≥ aedes over TCP in the same run (${c.scenario}, ${size})`,
      measured:
        r === undefined
          ? `not measured (${c.error ?? a.error ?? "no result"})`
          : `${fmt(r, 2)}× (${k(c.deliveredPerSec)} vs ${k(a.deliveredPerSec)} deliveries/s; broker CPU ${pct(c.brokerCpuUtil)} vs ${pct(a.brokerCpuUtil)})`,
      met: r !== undefined && r >= 1,
    });
  }
  console.log("");
  for (const t of targets) console.log(`target ${t.met ? "MET" : "NOT MET"}: ${t.target}: ${t.measured}`);

  const suffix = params.out !== undefined ? `-${params.out}` : params.quick ? "-quick" : "";
  const svgPath = join(RESULTS_DIR, `throughput${suffix}.svg`);
  writeFileSync(svgPath, barsSvg(cells, params, notes));
  const out = writeResult(`throughput${suffix}.json`, {
    benchmark: "throughput",
    date: new Date().toISOString(),
    machine: machine(),
    loadavg: loadavg(),
    params,
    notes,
    targets,
    cells,
  });

  const cmd = `npx tsx bench/throughput.ts ${argv.filter((a) => a !== "--replot").join(" ")}`.trim();
  const md = [
    "### Throughput",
    "",
    `\`${cmd}\``,
    "",
    `${title}. Broker in its own process, all publishers and subscribers of a cell in one load-generator process (one core each on this machine); broker CPU from /proc/<pid>/stat over the measured window.`,
    "1x1: 1 publisher → 1 subscriber. 10x100: 10 publishers (one topic each, own connection) → 100 subscribers (own connection, each subscribed to all 10 topics), so each publish is delivered 100 times.",
    'Systems: quic-per-topic / quic-single = mquictt broker over QUIC with the mquictt client (per-topic streams / one stream); tcp-ours = mquictt broker over TCP with MQTT.js; aedes 1.2.0 and mosquitto over TCP with MQTT.js. QoS 0 publishers write only while their stream/socket does not need draining; QoS 1/2 publishers keep a window of in-flight messages, and published/s counts acknowledged publishes; at every QoS at most the end-to-end window of deliveries per subscriber is published and not yet received (MQTT has no end-to-end flow control, so without it publishers fill the broker queues). "loadgen CPU" near 100 % means the clients, not the broker, set the pace.',
    ...notes.map((n) => `**Note:** ${n}`),
    "",
    mdTable(HEADER, rows, 4),
    "",
    `![throughput](${relative(join(RESULTS_DIR, ".."), svgPath)})`,
  ].join("\n");
  const mdPath = writeMarkdown(`throughput${suffix}`, md, targets);
  console.log(`\nwrote ${out}, ${svgPath} and ${mdPath}`);
}

// ---------------------------------------------------------------------------------------------
// Grouped bar chart: one panel per scenario, groups = payload × QoS, bars = systems, delivered/s.

const COLORS: Record<System, string> = {
  "quic-per-topic": "#1f77b4",
  "quic-single": "#9ecae1",
  "tcp-ours": "#d62728",
  aedes: "#ff7f0e",
  mosquitto: "#2ca02c",
};

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const e = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * e >= v) return m * e;
  return 10 * e;
}

function barsSvg(cells: CellResult[], params: RunParams, notes: string[]): string {
  const systems = ALL_SYSTEMS.filter((s) => cells.some((c) => c.system === s));
  const scenarios = SCENARIOS.filter((s) => cells.some((c) => c.scenario === s.name));
  const groupsOf = (sc: string): Array<{ payload: number; qos: Qos }> => {
    const out: Array<{ payload: number; qos: Qos }> = [];
    for (const payload of [...new Set(cells.map((c) => c.payload))].sort((a, b) => a - b))
      for (const qos of [0, 1, 2] as Qos[])
        if (cells.some((c) => c.scenario === sc && c.payload === payload && c.qos === qos))
          out.push({ payload, qos });
    return out;
  };
  const W = 900;
  const L = 80;
  const R = 170;
  const panelH = 260;
  const T = 56;
  const gap = 70;
  const H = T + scenarios.length * (panelH + gap) + 10 + notes.length * 12;
  const pw = W - L - R;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="20" font-size="14" font-weight="bold">MQTT throughput through one broker: deliveries per second (higher is better)</text>`,
    `<text x="${L}" y="37" font-size="10" fill="#555">${escapeXml(`loopback, MQTT 3.1.1, ${params.seconds} s per cell after ${params.warmup} s warm-up; broker and load generator in separate processes; bars labelled with deliveries/s`)}</text>`,
  ];
  scenarios.forEach((sc, si) => {
    const top = T + si * (panelH + gap) + 14;
    const groups = groupsOf(sc.name);
    const inPanel = cells.filter((c) => c.scenario === sc.name);
    const ymax = niceMax(Math.max(0, ...inPanel.map((c) => c.deliveredPerSec ?? 0)));
    const y = (v: number): number => top + panelH - (v / ymax) * panelH;
    parts.push(
      `<text x="${L}" y="${top - 6}" font-size="12" font-weight="bold">${escapeXml(
        sc.name === "1x1"
          ? "1 publisher → 1 subscriber"
          : `${sc.pubs} publishers → ${sc.subs} subscribers (each on all ${sc.pubs} topics: every publish delivered ${sc.subs}×)`,
      )}</text>`,
    );
    for (let i = 0; i <= 4; i++) {
      const v = (ymax * i) / 4;
      parts.push(
        `<line x1="${L}" y1="${y(v).toFixed(1)}" x2="${L + pw}" y2="${y(v).toFixed(1)}" stroke="#eee"/>`,
        `<text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${k(v)}</text>`,
      );
    }
    parts.push(
      `<rect x="${L}" y="${top}" width="${pw}" height="${panelH}" fill="none" stroke="#333"/>`,
      `<text x="22" y="${top + panelH / 2}" text-anchor="middle" transform="rotate(-90 22 ${top + panelH / 2})">deliveries/s</text>`,
    );
    const gw = pw / Math.max(1, groups.length);
    const bw = (gw * 0.8) / systems.length;
    groups.forEach((g, gi) => {
      const gx = L + gi * gw + gw * 0.1;
      parts.push(
        `<text x="${(L + gi * gw + gw / 2).toFixed(1)}" y="${top + panelH + 16}" text-anchor="middle">${g.payload >= 1024 ? `${g.payload / 1024} KB` : `${g.payload} B`}, QoS ${g.qos}</text>`,
      );
      systems.forEach((s, bi) => {
        const c = inPanel.find((x) => x.system === s && x.payload === g.payload && x.qos === g.qos);
        if (!c) return;
        const x = gx + bi * bw;
        if (c.error || c.deliveredPerSec === undefined) {
          parts.push(
            `<text x="${(x + bw / 2).toFixed(1)}" y="${top + panelH - 4}" text-anchor="middle" font-size="9" fill="#a00">err</text>`,
          );
          return;
        }
        const yy = y(c.deliveredPerSec);
        parts.push(
          `<rect x="${x.toFixed(1)}" y="${yy.toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${(top + panelH - yy).toFixed(1)}" fill="${COLORS[s]}"><title>${escapeXml(`${s}: ${c.deliveredPerSec.toFixed(0)} deliveries/s, ${(c.publishedPerSec ?? 0).toFixed(0)} publishes/s`)}</title></rect>`,
          `<text x="${(x + bw / 2).toFixed(1)}" y="${(yy - 3).toFixed(1)}" text-anchor="middle" font-size="8">${k(c.deliveredPerSec)}</text>`,
        );
      });
    });
  });
  systems.forEach((s, i) => {
    parts.push(
      `<rect x="${L + pw + 15}" y="${T + 20 + i * 22}" width="14" height="14" fill="${COLORS[s]}"/>`,
      `<text x="${L + pw + 35}" y="${T + 31 + i * 22}">${escapeXml(s)}</text>`,
    );
  });
  notes.forEach((n, i) => {
    parts.push(
      `<text x="${L}" y="${H - 4 - (notes.length - 1 - i) * 12}" font-size="9" fill="#a00">${escapeXml(n)}</text>`,
    );
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------

const roles: Record<string, (argv: string[]) => Promise<void>> = {
  "broker-mquictt": brokerMquictt,
  "broker-aedes": brokerAedes,
  load: runLoad,
};
const role = roles[process.argv[2] ?? ""];
(role ? role(process.argv.slice(3)) : main(process.argv.slice(2))).catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
