/**
 * Connection setup (issue 6, benchmark 3): the time from connect() to the first PUBLISH
 * delivered, at RTT 10/50/200 ms over the emulated link (bench/netem), for
 *
 *   quic            MQTT over QUIC, full 1-RTT handshake (mquictt client → mquictt broker, per-topic)
 *   quic-resumed    the same, resuming the TLS session with the ticket of the previous connection
 *   quic-0rtt       resumed, with CONNECT sent in 0-RTT
 *   tls-ours        MQTT over TCP + TLS 1.3 (MQTT.js mqtts:// → the mquictt broker's TLS listener)
 *   tls-mosquitto   MQTT over TCP + TLS 1.3 (MQTT.js mqtts:// → mosquitto, same certificate)
 *   tcp-ours        plain MQTT over TCP, for reference (MQTT.js mqtt:// → mquictt broker)
 *   (tls-ours-mquictt, our client over mqtts://, with --modes)
 *
 * and the handshakes per second the broker sustains (MQTT connect + CONNACK + end, QUIC vs
 * TCP+TLS vs TCP, on loopback, broker in its own process), with the broker's CPU per connect.
 *
 * Our broker is bench/lib/setup-broker.ts (one QUIC port per QUIC mode, counting resumed
 * handshakes and accepted 0-RTT per mode, so the table says what really happened).
 * Setup latency: brokers (ours and mosquitto) in namespace B; the subscriber and the measured
 * clients in ONE process in namespace A, so both timestamps come from one clock. Per mode a
 * subscriber is connected (`setup/<mode>/#`, QoS 1) before any measured client starts. Each
 * repetition opens a fresh connection (new socket, full handshake, no TLS session reuse),
 * publishes one message (QoS 0 or QoS 1) as soon as connect() resolves at CONNACK, and times
 * connect()→CONNACK and connect()→delivery at the subscriber; then ends the connection before
 * the next one. Modes and QoS levels are interleaved repetition by repetition, so slow drifts
 * of the machine hit every mode alike. Results are also given in RTTs (ms / RTT), next to the
 * protocol's model: handshake RTTs + 1 (CONNECT/CONNACK) + 1 (PUBLISH to the broker and on to
 * the subscriber across the same link).
 *
 *   npx tsx bench/connect-setup.ts                 RTT 10,50,200 ms, 30 repetitions per mode and QoS
 *   npx tsx bench/connect-setup.ts --quick         CI smoke (< 45 s): RTT 50 ms, 3 repetitions, 0.5 s rate runs
 *   --rtt 10,50 --reps 50 --warmup 2 --modes quic,tls-ours --rate-seconds 8 --concurrency 16
 *   --no-rate / --no-setup   skip one part; --link-name N: netns prefix (default mqs), for a second run at once
 *
 * Writes bench/results/setup.json, the plot bench/results/setup.svg (time to first PUBLISH vs
 * RTT per mode), the RESULTS.md section setup.md and setup.targets.json (`-quick` variants for
 * --quick). Internally `bench/connect-setup.ts client ...` is the measuring process in namespace A.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { makeCertificates } from "../src/cli/cert.js";
import { findOnPath, tsxExecArgs, watchOutput } from "./lib/child-output.js";
import { type StartedMosquitto, startMosquitto } from "./lib/mosquitto.js";
import { cpuSecondsOf } from "./lib/procs.js";
import {
  fmt,
  machine,
  mdTable,
  percentile,
  progress,
  progressDone,
  RESULTS_DIR,
  type TargetResult,
  table,
  writeMarkdown,
  writeResult,
} from "./lib/report.js";
import { DEFAULT_MODES, modeById, now, type SetupConn, type SetupEnv } from "./lib/setup-modes.js";
import { EmulatedLink, type NetLink } from "./netem/link.js";

const REPO = resolve(import.meta.dirname, "..");
const SELF = join(import.meta.dirname, "connect-setup.ts");
const BROKER = join(import.meta.dirname, "lib", "setup-broker.ts");

/** One measured connection. */
interface Sample {
  mode: string;
  qos: 0 | 1;
  /** connect() → CONNACK (connect() resolved), ms. */
  connackMs: number;
  /** connect() → the PUBLISH delivered to the subscriber, ms. */
  deliverMs: number;
  /** connect() → PUBACK (QoS 1), ms. */
  pubackMs?: number;
  /** CPU time of the measuring process (client + subscriber) from connect() to delivery, ms. */
  cpuMs: number;
}

/** What the measuring process reports for one RTT. */
interface ClientResult {
  samples: Sample[];
  failures: Array<{ mode: string; qos: number; error: string }>;
  tlsVersions: Record<string, string>;
}

interface Stat {
  n: number;
  p50: number;
  p90: number;
  min: number;
  max: number;
}

function stat(xs: number[]): Stat | undefined {
  if (xs.length === 0) return undefined;
  return {
    n: xs.length,
    p50: round2(percentile(xs, 50)),
    p90: round2(percentile(xs, 90)),
    min: round2(Math.min(...xs)),
    max: round2(Math.max(...xs)),
  };
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

function arg(argv: string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === name) return argv[i + 1];
    if (argv[i].startsWith(`${name}=`)) return argv[i].slice(name.length + 1);
  }
  return undefined;
}

function num(argv: string[], name: string, dflt: number): number {
  const v = arg(argv, name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: not a non-negative number: ${v}`);
  return n;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The measuring process (namespace A).

async function runClient(argv: string[]): Promise<void> {
  const envArg = arg(argv, "--env");
  if (envArg === undefined) throw new Error("client: --env is required");
  const env = JSON.parse(Buffer.from(envArg, "base64url").toString()) as SetupEnv;
  const modes = (arg(argv, "--modes") ?? DEFAULT_MODES.join(",")).split(",").map(modeById);
  const reps = num(argv, "--reps", 30);
  const warmup = num(argv, "--warmup", 2);
  const rtt = num(argv, "--rtt", 50);
  const perRepTimeout = 10_000 + 30 * rtt;

  for (const m of modes) await m.prepare?.(env);

  // Subscribers first: connected and subscribed before any measured client starts.
  const waiting = new Map<string, (t: number) => void>();
  const subs: SetupConn[] = [];
  const tlsVersions: Record<string, string> = {};
  for (const m of modes) {
    const sub = await m.open(env, `setup-sub-${m.id}-${process.pid}`);
    sub.onMessage((topic) => {
      const t = now();
      const w = waiting.get(topic);
      if (w) {
        waiting.delete(topic);
        w(t);
      }
    });
    await sub.subscribe(`setup/${m.id}/#`, 1);
    if (sub.tlsVersion) tlsVersions[m.id] = sub.tlsVersion;
    subs.push(sub);
  }

  const samples: Sample[] = [];
  const failures: ClientResult["failures"] = [];
  const payload = Buffer.alloc(16, 0x61);
  let seq = 0;
  const total = (warmup + reps) * 2 * modes.length;
  for (let rep = 0; rep < warmup + reps; rep++) {
    for (const qos of [0, 1] as const) {
      // Rotate the order of the modes so that none always goes first after a pause.
      for (let k = 0; k < modes.length; k++) {
        const m = modes[(k + rep) % modes.length];
        const topic = `setup/${m.id}/${seq++}`;
        const measured = rep >= warmup;
        progress(
          `RTT ${rtt} ms: ${measured ? `rep ${rep - warmup + 1}/${reps}` : `warm-up ${rep + 1}/${warmup}`}, ${m.id}, QoS ${qos} (${seq}/${total})`,
        );
        let conn: SetupConn | undefined;
        let timer: NodeJS.Timeout | undefined;
        try {
          const delivered = new Promise<number>((resolveDelivery, reject) => {
            waiting.set(topic, resolveDelivery);
            timer = setTimeout(
              () => reject(new Error(`not delivered within ${perRepTimeout} ms`)),
              perRepTimeout,
            );
          });
          delivered.catch(() => {});
          const cpu0 = process.cpuUsage();
          const t0 = now();
          conn = await m.open(env, `setup-${m.id}-${process.pid}-${seq}`);
          const tConnack = now();
          let tPuback: number | undefined;
          const acked = conn.publish(topic, payload, qos).then(() => {
            tPuback = now();
          });
          const tDeliver = await delivered;
          const cpu = process.cpuUsage(cpu0);
          await acked;
          if (measured) {
            samples.push({
              mode: m.id,
              qos,
              connackMs: round2(tConnack - t0),
              deliverMs: round2(tDeliver - t0),
              cpuMs: round2((cpu.user + cpu.system) / 1000),
              ...(qos === 1 && tPuback !== undefined ? { pubackMs: round2(tPuback - t0) } : {}),
            });
          }
        } catch (e) {
          waiting.delete(topic);
          if (measured) failures.push({ mode: m.id, qos, error: (e as Error).message });
          process.stderr.write(`${m.id} QoS ${qos}: ${(e as Error).message}\n`);
        } finally {
          clearTimeout(timer);
          await conn?.end();
        }
      }
    }
  }
  const result: ClientResult = { samples, failures, tlsVersions };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  await Promise.all(subs.map((s) => s.end()));
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Handshakes per second (loopback, broker in its own process, load generated here).

interface RateResult {
  mode: string;
  concurrency: number;
  seconds: number;
  connects: number;
  failures: number;
  connectsPerSec: number;
  /** Broker process CPU seconds per connect, in ms. */
  brokerCpuMsPerConnect?: number;
  /** Broker CPU use over the run, in cores (1.0 = one core busy). */
  brokerCores?: number;
  /** This (load generating) process's CPU per connect, ms. */
  clientCpuMsPerConnect: number;
  latency?: Stat;
  firstError?: string;
  /** QUIC modes: what the broker saw (includes the warm-up connects). */
  handshakes?: HandshakeCounts[string];
}

async function rateRun(
  modeId: string,
  env: SetupEnv,
  brokerPid: number | undefined,
  seconds: number,
  concurrency: number,
): Promise<RateResult> {
  const mode = modeById(modeId);
  // Warm-up (JIT, session tables): a few sequential connects, not counted.
  let firstError: string | undefined;
  for (let i = 0; i < 3; i++) {
    try {
      await (await mode.open(env, `rate-warm-${modeId}-${i}`)).end();
    } catch (e) {
      firstError ??= `warm-up: ${(e as Error).message}`;
    }
  }
  const cpu0 = cpuSecondsOf(brokerPid);
  const self0 = process.cpuUsage();
  const t0 = now();
  const end = t0 + seconds * 1000;
  let connects = 0;
  let failures = 0;
  let id = 0;
  const lat: number[] = [];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (now() < end) {
        const t = now();
        try {
          const c = await mode.open(env, `rate-${modeId}-${id++}`);
          await c.end();
          connects++;
          lat.push(now() - t);
        } catch (e) {
          failures++;
          firstError ??= (e as Error).message;
          await sleep(10);
        }
      }
    }),
  );
  const elapsed = (now() - t0) / 1000;
  const cpu1 = cpuSecondsOf(brokerPid);
  const self = process.cpuUsage(self0);
  const brokerCpu = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined;
  return {
    mode: modeId,
    concurrency,
    seconds: round2(elapsed),
    connects,
    failures,
    connectsPerSec: round2(connects / elapsed),
    ...(brokerCpu !== undefined && connects > 0
      ? {
          brokerCpuMsPerConnect: round2((brokerCpu * 1000) / connects),
          brokerCores: round2(brokerCpu / elapsed),
        }
      : {}),
    clientCpuMsPerConnect: connects > 0 ? round2((self.user + self.system) / 1000 / connects) : 0,
    ...(lat.length > 0 ? { latency: stat(lat) } : {}),
    ...(firstError ? { firstError } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Orchestration.

interface Certs {
  ca: string;
  cert: string;
  key: string;
  caPem: string;
}

function brokerArgs(host: string, certs: Certs, quicModes: string[]): string[] {
  return [
    ...tsxExecArgs(),
    BROKER,
    "--host",
    host,
    "--cert",
    certs.cert,
    "--key",
    certs.key,
    "--quic-modes",
    quicModes.join(","),
  ];
}

/** Per QUIC mode, what the broker saw: connections closed, resumed, 0-RTT accepted/rejected. */
type HandshakeCounts = Record<
  string,
  { connections: number; resumed: number; earlyAccepted: number; earlyRejected: number }
>;

/** The broker process (bench/lib/setup-broker.ts): its ports, and its handshake counters on demand. */
interface BrokerProc {
  ports: { tcpPort: number; tlsPort: number; quicPorts: Record<string, number> };
  /** Counters since the last call. */
  stats(): Promise<HandshakeCounts>;
}

async function startBroker(proc: ChildProcess): Promise<BrokerProc> {
  const w = watchOutput(proc);
  const m = await w.waitFor(/^PORTS (.*)$/, 60_000);
  const p = JSON.parse(m[1]) as { tcp: number; tls: number; quic: Record<string, number> };
  let asked = 0;
  return {
    ports: { tcpPort: p.tcp, tlsPort: p.tls, quicPorts: p.quic },
    async stats() {
      // Closes are counted when the broker sees them; give the last ones a moment.
      await sleep(500);
      asked++;
      proc.stdin?.write("stats\n");
      const lines = await w.waitFor(/^STATS (.*)$/, 10_000, asked);
      return JSON.parse(lines[1]) as HandshakeCounts;
    },
  };
}

/** mosquitto with a TLS listener and a plain one on free ports; ready once it logs "running". */
function startMosquittoWith(
  dir: string,
  host: string,
  certs: Certs,
  spawnIt: (conf: string) => ChildProcess,
): Promise<StartedMosquitto<ChildProcess>> {
  return startMosquitto({
    portCount: 2,
    configure: ([tlsPort, tcpPort]) => mosquittoConf(dir, host, tlsPort, tcpPort, certs),
    start: (conf) => {
      const proc = spawnIt(conf);
      return { handle: proc, proc, output: watchOutput(proc).output };
    },
    probe: (_port, output) => /mosquitto version .* running/.test(output),
  });
}

/** mosquitto with a TLS listener (our certificate) and a plain one. */
function mosquittoConf(dir: string, host: string, tlsPort: number, tcpPort: number, certs: Certs): string {
  const conf = join(dir, `mosquitto-${tlsPort}.conf`);
  writeFileSync(
    conf,
    [
      "per_listener_settings false",
      "allow_anonymous true",
      "persistence false",
      // mosquitto leaves Nagle on by default; our broker and the clients here set TCP_NODELAY.
      "set_tcp_nodelay true",
      "max_connections -1",
      `listener ${tlsPort} ${host}`,
      `cafile ${certs.ca}`,
      `certfile ${certs.cert}`,
      `keyfile ${certs.key}`,
      `listener ${tcpPort} ${host}`,
      ...(process.getuid?.() === 0 ? ["user root"] : []),
      "",
    ].join("\n"),
  );
  return conf;
}

interface SetupCell {
  rttMs: number;
  mode: string;
  qos: 0 | 1;
  connack?: Stat;
  deliver?: Stat;
  puback?: Stat;
  failures: number;
  /** QUIC modes: what the broker saw during this RTT's run (all QoS, warm-up and subscriber included). */
  handshakes?: HandshakeCounts[string];
  /** CPU of the measuring process per connection (client side + subscriber), ms. */
  clientCpu?: Stat;
  /** deliver p50 / RTT. */
  deliverRtts?: number;
  connackRtts?: number;
  modelRtts: number;
}

interface SetupResult {
  benchmark: "connect-setup";
  date: string;
  command: string;
  machine: ReturnType<typeof machine>;
  loadavg: number[];
  link: { emulated: boolean; description: string };
  params: {
    rtts: number[];
    reps: number;
    warmup: number;
    modes: string[];
    rateSeconds: number;
    concurrency: number;
  };
  modes: Array<{ id: string; label: string; modelRtts: number; tlsVersion?: string }>;
  notes: string[];
  setup: SetupCell[];
  failures: ClientResult["failures"];
  rate: RateResult[];
  rateNotes: string[];
  /** Per RTT, the broker's handshake counters per QUIC mode. */
  handshakes: Array<{ rttMs: number; counts: HandshakeCounts }>;
}

async function main(argv: string[]): Promise<void> {
  const quick = argv.includes("--quick");
  const rtts = (arg(argv, "--rtt") ?? (quick ? "50" : "10,50,200")).split(",").map(Number);
  const reps = num(argv, "--reps", quick ? 3 : 30);
  const warmup = num(argv, "--warmup", quick ? 1 : 2);
  const rateSeconds = num(argv, "--rate-seconds", quick ? 0.5 : 8);
  const concurrency = num(argv, "--concurrency", quick ? 8 : 16);
  const doSetup = !argv.includes("--no-setup");
  const doRate = !argv.includes("--no-rate");
  const notes: string[] = [];
  const mosquittoBin = findOnPath("mosquitto");
  let modes = (arg(argv, "--modes") ?? DEFAULT_MODES.join(",")).split(",");
  for (const m of modes) modeById(m);
  if (!mosquittoBin && modes.includes("tls-mosquitto")) {
    modes = modes.filter((m) => m !== "tls-mosquitto");
    notes.push("mosquitto is not installed: the tls-mosquitto mode is skipped");
  }

  const tmp = mkdtempSync(join(tmpdir(), "mquictt-setup-"));
  const files = await makeCertificates({
    out: tmp,
    names: ["localhost", "127.0.0.1", "10.77.0.2"],
    days: 2,
    keyType: "ecdsa-p256",
    force: true,
  });
  const find = (name: string): string => files.find((f) => f.endsWith(`/${name}`)) ?? join(tmp, name);
  const certs: Certs = {
    ca: find("ca.pem"),
    cert: find("server.pem"),
    key: find("server-key.pem"),
    caPem: readFileSync(find("ca.pem"), "utf8"),
  };

  const setup: SetupCell[] = [];
  const failures: ClientResult["failures"] = [];
  const tlsVersions: Record<string, string> = {};
  let linkInfo = { emulated: false, description: "not run" };
  const rate: RateResult[] = [];
  const rateNotes: string[] = [];
  const handshakes: SetupResult["handshakes"] = [];
  const quicModes = modes.filter((m) => modeById(m).transport === "quic");
  try {
    if (doSetup) {
      const link: NetLink = await EmulatedLink.create({
        name: arg(argv, "--link-name") ?? "mqs",
        delayMs: rtts[0] / 2,
      });
      linkInfo = {
        emulated: link.emulated,
        // describe() names the delay at creation; the delay is set per RTT below.
        description: link.emulated
          ? `${link.describe().replace(/: .*$/, "")}: RTT/2 delay each way, set per RTT, no loss`
          : link.reason,
      };
      try {
        if (!link.emulated) notes.push(`NOT EMULATED (${link.reason}): loopback without delay`);
        progress(link.emulated ? link.describe() : `loopback: ${link.reason}`);
        const brokerProc = link.spawnInB(process.execPath, brokerArgs(link.bAddr, certs, quicModes), {
          cwd: REPO,
          stdio: ["pipe", "pipe", "pipe"],
        });
        const broker = await startBroker(brokerProc);
        const env: SetupEnv = {
          host: link.bAddr,
          ...broker.ports,
          caPem: certs.caPem,
          serverName: "localhost",
        };
        if (mosquittoBin && modes.includes("tls-mosquitto")) {
          const { ports } = await startMosquittoWith(tmp, link.bAddr, certs, (conf) =>
            link.spawnInB(mosquittoBin, ["-c", conf, "-v"], { stdio: ["ignore", "pipe", "pipe"] }),
          );
          [env.mosquittoTlsPort, env.mosquittoTcpPort] = ports;
        }
        for (const rttMs of rtts) {
          await link.update({ delayMs: rttMs / 2 });
          const child = link.spawnInA(
            process.execPath,
            [
              ...tsxExecArgs(),
              SELF,
              "client",
              "--env",
              Buffer.from(JSON.stringify(env)).toString("base64url"),
              "--modes",
              modes.join(","),
              "--reps",
              String(reps),
              "--warmup",
              String(warmup),
              "--rtt",
              String(rttMs),
            ],
            { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] },
          );
          const cw = watchOutput(child);
          const perConn = 1000 + 8 * rttMs;
          const m = await cw.waitFor(/^RESULT (.*)$/, 120_000 + (reps + warmup) * 2 * modes.length * perConn);
          const r = JSON.parse(m[1]) as ClientResult;
          await new Promise<void>((r2) => {
            if (child.exitCode !== null) r2();
            else child.once("exit", () => r2());
            setTimeout(() => {
              if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
              r2();
            }, 5000).unref();
          });
          const hs = await broker.stats();
          handshakes.push({ rttMs, counts: hs });
          Object.assign(tlsVersions, r.tlsVersions);
          failures.push(...r.failures.map((f) => ({ ...f, error: `RTT ${rttMs} ms: ${f.error}` })));
          for (const mode of modes) {
            for (const qos of [0, 1] as const) {
              const ss = r.samples.filter((s) => s.mode === mode && s.qos === qos);
              const deliver = stat(ss.map((s) => s.deliverMs));
              const connack = stat(ss.map((s) => s.connackMs));
              const clientCpu = stat(ss.map((s) => s.cpuMs));
              const puback =
                qos === 1
                  ? stat(ss.flatMap((s) => (s.pubackMs === undefined ? [] : [s.pubackMs])))
                  : undefined;
              setup.push({
                rttMs,
                mode,
                qos,
                ...(connack ? { connack, connackRtts: round2(connack.p50 / rttMs) } : {}),
                ...(deliver ? { deliver, deliverRtts: round2(deliver.p50 / rttMs) } : {}),
                ...(puback ? { puback } : {}),
                ...(clientCpu ? { clientCpu } : {}),
                failures: r.failures.filter((f) => f.mode === mode && f.qos === qos).length,
                modelRtts: modeById(mode).modelRtts,
                ...(hs[mode] ? { handshakes: hs[mode] } : {}),
              });
            }
          }
        }
      } finally {
        await link.close();
      }
    }

    if (doRate) {
      // Handshakes per second on loopback: the broker alone in its process, this process
      // generating the load with `concurrency` connect loops. On a 2-core machine the client
      // side competes for the CPU too; the broker CPU per connect is the number to compare.
      const brokerProc = spawn(process.execPath, brokerArgs("127.0.0.1", certs, quicModes), {
        cwd: REPO,
        stdio: ["pipe", "pipe", "pipe"],
      });
      const children: ChildProcess[] = [brokerProc];
      try {
        const broker = await startBroker(brokerProc);
        const env: SetupEnv = {
          host: "127.0.0.1",
          ...broker.ports,
          caPem: certs.caPem,
          serverName: "localhost",
        };
        let mosquittoPid: number | undefined;
        if (mosquittoBin && modes.includes("tls-mosquitto")) {
          const { handle: mq, ports } = await startMosquittoWith(tmp, "127.0.0.1", certs, (conf) => {
            const p = spawn(mosquittoBin, ["-c", conf, "-v"], { stdio: ["ignore", "pipe", "pipe"] });
            children.push(p);
            return p;
          });
          [env.mosquittoTlsPort, env.mosquittoTcpPort] = ports;
          mosquittoPid = mq.pid;
        }
        for (const mode of modes) {
          progress(
            `handshakes/s on loopback: ${mode}, ${concurrency} concurrent connect loops, ${rateSeconds} s`,
          );
          const pid = modeById(mode).broker === "mosquitto" ? mosquittoPid : brokerProc.pid;
          if (quicModes.includes(mode)) await broker.stats(); // reset the counters
          const rr = await rateRun(mode, env, pid, rateSeconds, concurrency);
          if (quicModes.includes(mode)) {
            const hs = (await broker.stats())[mode];
            if (hs) rr.handshakes = hs;
          }
          rate.push(rr);
        }
      } finally {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
        await sleep(200);
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
      }
      rateNotes.push(
        `Loopback (no emulated delay), ${concurrency} concurrent connect → CONNACK → DISCONNECT loops in one Node process for ${rateSeconds} s per mode, after 3 warm-up connects; the broker runs alone in its own process (mquictt: Node; mosquitto: C, single-threaded).`,
        "The load generator shares the 2 cores: when its own CPU per connect is the larger, connects/s is bounded by the client, and the broker CPU per connect is the comparison that holds.",
      );
      const used = rate.map(
        (x) =>
          `${x.mode} ${fmt((x.brokerCores ?? 0) + (x.clientCpuMsPerConnect * x.connectsPerSec) / 1000, 2)}`,
      );
      rateNotes.push(
        `Cores used by broker + load generator together, per mode: ${used.join(", ")} of ${machine().cores} (load average ${loadavg()
          .map((l) => l.toFixed(1))
          .join(
            " / ",
          )}); well below ${machine().cores} means other processes on the machine held the CPU and connects/s is bounded by contention, not by the broker.`,
      );
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    progressDone();
  }

  const result: SetupResult = {
    benchmark: "connect-setup",
    date: new Date().toISOString(),
    command:
      argv.filter((a) => a !== "--quick").length === 0
        ? `npm run bench:setup${quick ? " -- --quick" : ""}`
        : `npx tsx bench/connect-setup.ts ${argv.join(" ")}`,
    machine: machine(),
    loadavg: loadavg(),
    link: linkInfo,
    params: { rtts, reps, warmup, modes, rateSeconds, concurrency },
    modes: modes.map((id) => {
      const m = modeById(id);
      return {
        id,
        label: m.label,
        modelRtts: m.modelRtts,
        ...(tlsVersions[id] ? { tlsVersion: tlsVersions[id] } : {}),
      };
    }),
    notes,
    setup,
    failures,
    rate,
    rateNotes,
    handshakes,
  };
  report(result, quick ? "-quick" : "", quick);
}

// ---------------------------------------------------------------------------------------------
// Output: table, JSON, SVG, markdown section and targets.

/**
 * The target per RTT and QUIC mode: the mode's median time to first PUBLISH (QoS 0) against the
 * faster TCP+TLS 1.3 mode in the same run.
 */
function targets(r: SetupResult): TargetResult[] {
  const out: TargetResult[] = [];
  const quicModes = r.params.modes.filter((m) => modeById(m).transport === "quic");
  for (const rttMs of r.params.rtts) {
    const cell = (mode: string): SetupCell | undefined =>
      r.setup.find((c) => c.rttMs === rttMs && c.mode === mode && c.qos === 0);
    const tls = r.params.modes
      .filter((m) => modeById(m).transport === "tls")
      .map((m) => ({ m, p50: cell(m)?.deliver?.p50 }))
      .filter((x): x is { m: string; p50: number } => x.p50 !== undefined)
      .sort((a, b) => a.p50 - b.p50)[0];
    for (const qm of quicModes) {
      const target = `Time to first PUBLISH (QoS 0, median), ${qm}: one RTT fewer than TCP+TLS 1.3 at RTT ${rttMs} ms (the faster TLS mode; met when the gap is ≥ 0.9 RTT)`;
      if (!r.link.emulated) {
        out.push({ target, measured: `not measured: no emulated link (${r.link.description})`, met: false });
        continue;
      }
      const quic = cell(qm)?.deliver?.p50;
      if (quic === undefined || tls === undefined) {
        out.push({ target, measured: "not measured (a mode failed or was not run)", met: false });
        continue;
      }
      const gap = (tls.p50 - quic) / rttMs;
      out.push({
        target,
        measured: `${qm} ${fmt(quic)} ms (${fmt(quic / rttMs, 2)} RTT) vs ${tls.m} ${fmt(tls.p50)} ms (${fmt(tls.p50 / rttMs, 2)} RTT): ${fmt(gap, 2)} RTT fewer`,
        met: gap >= 0.9,
      });
    }
  }
  return out;
}

/** "resumed 31/33, 0-RTT 30 (1 rejected)" for a QUIC mode's broker counters. */
function hsText(h: HandshakeCounts[string] | undefined): string {
  if (!h) return "";
  const early =
    h.earlyAccepted + h.earlyRejected > 0
      ? `, 0-RTT ${h.earlyAccepted}${h.earlyRejected > 0 ? ` (${h.earlyRejected} rejected)` : ""}`
      : "";
  return `resumed ${h.resumed}/${h.connections}${early}`;
}

function report(r: SetupResult, suffix: string, quick: boolean): void {
  const header = [
    "RTT ms",
    "mode",
    "QoS",
    "n",
    "CONNACK p50",
    "p90",
    "1st PUBLISH p50",
    "p90",
    "min",
    "in RTTs",
    "model",
    "over model ms",
    "client CPU ms",
    "vs quic",
    "handshakes (broker)",
    "fail",
  ];
  const rows: string[][] = [];
  // Without the emulated link there is no RTT: the columns in RTTs would be meaningless.
  const rttCols = r.link.emulated;
  for (const c of r.setup) {
    const quic = r.setup.find((x) => x.rttMs === c.rttMs && x.qos === c.qos && x.mode === "quic")?.deliver
      ?.p50;
    rows.push([
      String(c.rttMs),
      c.mode,
      String(c.qos),
      String(c.deliver?.n ?? 0),
      fmt(c.connack?.p50),
      fmt(c.connack?.p90),
      fmt(c.deliver?.p50),
      fmt(c.deliver?.p90),
      fmt(c.deliver?.min),
      rttCols ? fmt(c.deliverRtts, 2) : "-",
      String(c.modelRtts),
      rttCols ? fmt(c.deliver === undefined ? undefined : c.deliver.p50 - c.modelRtts * c.rttMs) : "-",
      fmt(c.clientCpu?.p50),
      c.mode === "quic" || quic === undefined || c.deliver === undefined
        ? ""
        : rttCols
          ? `${fmt(c.deliver.p50 / quic, 2)}x, ${c.deliver.p50 - quic >= 0 ? "+" : ""}${fmt((c.deliver.p50 - quic) / c.rttMs, 2)} RTT`
          : `${fmt(c.deliver.p50 / quic, 2)}x`,
      c.qos === 0 ? hsText(c.handshakes) : "",
      String(c.failures),
    ]);
  }
  const rateHeader = [
    "mode",
    "connects/s",
    "vs quic",
    "broker CPU ms/connect",
    "broker cores",
    "client CPU ms/connect",
    "latency p50",
    "p90",
    "handshakes (broker)",
    "failures",
  ];
  const quicRate = r.rate.find((x) => x.mode === "quic");
  const rateRows = r.rate.map((x) => [
    x.mode,
    fmt(x.connectsPerSec),
    x.mode === "quic" || !quicRate ? "" : `${fmt(x.connectsPerSec / quicRate.connectsPerSec, 2)}x`,
    fmt(x.brokerCpuMsPerConnect, 2),
    fmt(x.brokerCores, 2),
    fmt(x.clientCpuMsPerConnect, 2),
    fmt(x.latency?.p50),
    fmt(x.latency?.p90),
    hsText(x.handshakes),
    String(x.failures),
  ]);
  const tg = targets(r);

  console.log(`\nConnection setup: connect() → first PUBLISH delivered (ms), ${r.link.description}`);
  for (const m of r.modes)
    console.log(`  ${m.id.padEnd(16)} ${m.label}${m.tlsVersion ? ` [${m.tlsVersion}]` : ""}`);
  if (r.setup.length > 0) console.log(`\n${table(header, rows, 2)}`);
  if (r.rate.length > 0) console.log(`\nHandshakes per second (loopback)\n${table(rateHeader, rateRows)}`);
  for (const n of [
    ...r.notes,
    ...r.failures.slice(0, 5).map((f) => `failure: ${f.mode} QoS ${f.qos}: ${f.error}`),
  ])
    console.log(`note: ${n}`);
  for (const t of tg) console.log(`target: ${t.met ? "MET" : "NOT MET"} — ${t.target}: ${t.measured}`);

  const json = writeResult(`setup${suffix}.json`, r);
  const svgName = `setup${suffix}.svg`;
  if (r.setup.length > 0) writeFileSync(join(RESULTS_DIR, svgName), setupSvg(r));
  console.log(`\nwrote ${json}${r.setup.length > 0 ? ` and ${join(RESULTS_DIR, svgName)}` : ""}`);

  const md: string[] = [];
  md.push(`### Connection setup${quick ? " (quick smoke run: one RTT, few repetitions)" : ""}`);
  md.push("");
  md.push(
    `\`${r.command}\` — time from \`connect()\` to the first PUBLISH delivered to a subscriber that was connected beforehand, and \`connect()\` → CONNACK, in ms; each repetition is a fresh connection (new socket) publishing as soon as CONNACK arrives: TCP+TLS without session reuse; QUIC with a full handshake (\`quic\`), resumed from the ticket of the previous connection (\`quic-resumed\`), or resumed with CONNECT in 0-RTT (\`quic-0rtt\`); "handshakes (broker)" is what the broker counted per QUIC mode (subscriber and warm-up connections included). Broker(s) in namespace B, the subscriber and the measured clients in one process in namespace A (one clock). ${r.params.reps} repetitions per mode, QoS and RTT after ${r.params.warmup} warm-up rounds, modes interleaved. Link: ${r.link.description}. "model": round trips by protocol design (handshake + CONNECT/CONNACK + PUBLISH across the link twice, ½ RTT each). Raw data: \`bench/results/setup${suffix}.json\`.`,
  );
  md.push("");
  for (const m of r.modes)
    md.push(`- \`${m.id}\`: ${m.label}${m.tlsVersion ? ` (negotiated ${m.tlsVersion})` : ""}`);
  md.push("");
  if (r.setup.length > 0) {
    md.push(mdTable(header, rows, 2));
    md.push("");
    md.push(`![time to first PUBLISH vs RTT](results/${svgName})`);
    md.push("");
  }
  if (r.rate.length > 0) {
    md.push("Handshakes per second the broker sustains (MQTT connect + CONNACK + DISCONNECT):");
    md.push("");
    md.push(mdTable(rateHeader, rateRows));
    md.push("");
    for (const n of r.rateNotes) md.push(`${n}`);
    md.push("");
  }
  md.push(
    `Machine: ${r.machine.cpu}, ${r.machine.cores} cores, Node ${r.machine.node}; load average at the end ${r.loadavg.map((x) => x.toFixed(1)).join(" / ")} (the machine is shared: CPU contention adds to every handshake's computing time, most where the handshake costs the most CPU). "over model ms": the median minus model × RTT, i.e. the time not explained by round trips (computing, scheduling). "client CPU ms": median CPU time the measuring process (client and subscriber) spent from connect() to the delivery.`,
  );
  md.push("");
  for (const n of r.notes) md.push(`Note: ${n}`);
  if (r.failures.length > 0)
    md.push(`Failures: ${r.failures.length} (first: ${r.failures[0].mode}: ${r.failures[0].error}).`);
  for (const t of tg) md.push(`**Target:** ${t.target}: ${t.met ? "MET" : "NOT MET"} — ${t.measured}.`);
  writeMarkdown(`setup${suffix}`, md.join("\n"), tg);
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#7f7f7f", "#9467bd", "#ff7f0e"];

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Median time to first PUBLISH (QoS 0) vs RTT per mode, p90 as whiskers, the model as dashes. */
function setupSvg(r: SetupResult): string {
  const W = 760;
  const H = 480;
  const L = 70;
  const R = 220;
  const T = 50;
  const B = 60;
  const cells = r.setup.filter((c) => c.qos === 0 && c.deliver);
  const rtts = [...r.params.rtts].sort((a, b) => a - b);
  const xMax = Math.max(...rtts) * 1.05 || 1;
  const yMaxData = Math.max(...cells.map((c) => c.deliver?.p90 ?? 0), ...rtts.map((t) => t * 4));
  const step = niceStep(yMaxData / 6);
  const yMax = Math.ceil(yMaxData / step) * step || 1;
  const x = (v: number): number => L + (v / xMax) * (W - L - R);
  const y = (v: number): number => H - B - (v / yMax) * (H - T - B);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">Time from connect() to first PUBLISH delivered (QoS 0, median, p90 whiskers)</text>`,
  );
  out.push(
    `<text x="${W / 2}" y="37" text-anchor="middle" fill="#555">${escapeXml(r.link.emulated ? "emulated link, RTT set by the link" : "NOT emulated: loopback")}; dashed: 2, 3 and 4 RTT (protocol models)</text>`,
  );
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
    out.push(`<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  for (const t of rtts) {
    out.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`);
    out.push(`<text x="${x(t)}" y="${H - B + 16}" text-anchor="middle">${t}</text>`);
  }
  out.push(`<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#333"/>`);
  out.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#333"/>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 18}" text-anchor="middle">RTT (ms)</text>`);
  out.push(
    `<text x="18" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(T + H - B) / 2})">ms</text>`,
  );
  for (const k of [2, 3, 4]) {
    out.push(
      `<line x1="${x(0)}" y1="${y(0)}" x2="${x(xMax)}" y2="${y(k * xMax)}" stroke="#bbb" stroke-dasharray="5 4"/>`,
    );
  }
  r.params.modes.forEach((mode, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = rtts
      .map((t) => cells.find((c) => c.mode === mode && c.rttMs === t))
      .filter((c): c is SetupCell => c?.deliver !== undefined);
    if (pts.length === 0) return;
    const d = pts.map((c) => `${x(c.rttMs).toFixed(1)},${y(c.deliver?.p50 ?? 0).toFixed(1)}`).join(" ");
    out.push(`<polyline points="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const c of pts) {
      const cx = x(c.rttMs) + (i - 1.5) * 3;
      out.push(
        `<line x1="${cx}" x2="${cx}" y1="${y(c.deliver?.p50 ?? 0)}" y2="${y(c.deliver?.p90 ?? 0)}" stroke="${color}"/>`,
      );
      out.push(`<circle cx="${x(c.rttMs)}" cy="${y(c.deliver?.p50 ?? 0)}" r="3.5" fill="${color}"/>`);
    }
    const ly = T + 10 + i * 20;
    out.push(
      `<line x1="${W - R + 15}" x2="${W - R + 40}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
    );
    out.push(`<text x="${W - R + 46}" y="${ly + 4}">${escapeXml(mode)}</text>`);
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

const [sub, ...rest] = process.argv.slice(2);
const run = sub === "client" ? runClient(rest) : main(process.argv.slice(2));
run.catch((e: unknown) => {
  progressDone();
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
