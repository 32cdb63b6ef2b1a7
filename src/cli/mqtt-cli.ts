/**
 * `mquictt broker`, `mquictt pub` and `mquictt sub`: a development broker on QUIC and TCP, and
 * mosquitto_pub / mosquitto_sub style clients. Flag parsing is pure (see the `parse*Args`
 * functions); the runners take an output sink so tests can run them in-process.
 */
import { mkdtemp } from "node:fs/promises";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Broker, connect, type MqttClient } from "../mqtt/index.js";
import { isValidTopicFilter, isValidTopicName } from "../mqtt/topic.js";
import { readPemFile } from "../net/cert-files.js";
import { clearQuicSocketError, lastQuicSocketError } from "../net/quic.js";
import { makeCertificates } from "./cert.js";

/** A bad command line (exit code 2). */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** Where the runners write: `out` for results (stdout), `err` for diagnostics (stderr). */
export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Called once `sub` holds its subscriptions (tests publish after it). */
  ready?: () => void;
}

const consoleIo: CliIo = { out: (l) => console.log(l), err: (l) => console.error(l) };

function parsePort(flag: string, v: string, allowZero = true): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535 || (!allowZero && n === 0)) {
    throw new UsageError(`${flag}: not a port number: "${v}"`);
  }
  return n;
}

function takeValue(argv: string[], i: number, flag: string): string {
  const v = argv[i + 1];
  if (v === undefined || (v.startsWith("-") && v.length > 1 && flag !== "-m")) {
    throw new UsageError(`${flag} needs a value`);
  }
  return v;
}

// -------------------------------------------------------------------------------------------------
// broker

/** Options of `mquictt broker`. */
export interface BrokerCliOptions {
  /** UDP port for MQTT over QUIC (0: any free port). */
  quicPort: number;
  /** TCP port for plain MQTT (0: any free port; undefined: no TCP listener). */
  tcpPort: number | undefined;
  /** TCP port for MQTT over TLS (0: any free port; undefined, the default: no TLS listener). */
  tlsPort?: number;
  host: string;
  /** Certificate chain and key files (PEM); both or neither. */
  cert?: string;
  key?: string;
  /** Where to write generated test certificates (default: a fresh temporary directory). */
  certDir?: string;
  /** Accept 0-RTT from resuming QUIC clients (replayable early data; off by default). */
  earlyData?: boolean;
}

/** Parses `mquictt broker` flags. */
export function parseBrokerArgs(argv: string[]): BrokerCliOptions {
  const opts: BrokerCliOptions = { quicPort: 14567, tcpPort: 1883, host: "::" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    switch (a) {
      case "--quic-port":
        opts.quicPort = parsePort(a, takeValue(argv, i++, a));
        break;
      case "--tcp-port":
        opts.tcpPort = parsePort(a, takeValue(argv, i++, a));
        break;
      case "--tls-port":
        opts.tlsPort = parsePort(a, takeValue(argv, i++, a));
        break;
      case "--no-tcp":
        opts.tcpPort = undefined;
        break;
      case "--early-data":
        opts.earlyData = true;
        break;
      case "--host":
        opts.host = takeValue(argv, i++, a);
        break;
      case "--cert":
        opts.cert = takeValue(argv, i++, a);
        break;
      case "--key":
        opts.key = takeValue(argv, i++, a);
        break;
      case "--cert-dir":
        opts.certDir = takeValue(argv, i++, a);
        break;
      default:
        throw new UsageError(`unknown flag "${a}"`);
    }
  }
  if ((opts.cert === undefined) !== (opts.key === undefined)) {
    throw new UsageError("--cert and --key go together");
  }
  if (opts.cert !== undefined && opts.certDir !== undefined) {
    throw new UsageError("--cert-dir is for generated certificates; it does not go with --cert");
  }
  return opts;
}

/** A running `mquictt broker`. */
export interface RunningBroker {
  broker: Broker;
  quicPort: number;
  tcpPort: number | undefined;
  /** The MQTT-over-TLS port, when `--tls-port` was given. */
  tlsPort: number | undefined;
  /** The generated CA file clients should trust (when no --cert was given). */
  caFile: string | undefined;
  close(): Promise<void>;
}

function hostForUrl(host: string): string {
  const h = host === "::" || host === "0.0.0.0" ? "localhost" : host;
  return isIP(h) === 6 ? `[${h}]` : h;
}

/** Starts the broker's listeners and prints where it listens. */
export async function startBrokerCli(opts: BrokerCliOptions, io: CliIo = consoleIo): Promise<RunningBroker> {
  let certPem: string;
  let keyPem: string;
  let caFile: string | undefined;
  if (opts.cert !== undefined && opts.key !== undefined) {
    certPem = await readPemFile(opts.cert);
    keyPem = await readPemFile(opts.key);
  } else {
    const dir = opts.certDir ?? (await mkdtemp(join(tmpdir(), "mquictt-broker-")));
    const files = await makeCertificates({
      out: dir,
      names: ["localhost", "127.0.0.1", "::1"],
      days: 30,
      keyType: "ecdsa-p256",
      force: true,
    });
    const find = (name: string): string => files.find((f) => f.endsWith(`/${name}`)) ?? join(dir, name);
    caFile = find("ca.pem");
    certPem = await readPemFile(find("server.pem"));
    keyPem = await readPemFile(find("server-key.pem"));
    io.err("warning: no --cert/--key given: using a generated TEST certificate (localhost, 127.0.0.1, ::1)");
    io.err(`         clients trust its CA with --cafile ${caFile}`);
  }
  const broker = new Broker();
  let quicPort: number;
  let tcpPort: number | undefined;
  let tlsPort: number | undefined;
  try {
    quicPort = (
      await broker.listenQuic({
        port: opts.quicPort,
        host: opts.host,
        cert: certPem,
        key: keyPem,
        earlyData: opts.earlyData === true,
      })
    ).port;
    if (opts.tcpPort !== undefined) {
      tcpPort = (await broker.listenTcp({ port: opts.tcpPort, host: opts.host })).port;
    }
    if (opts.tlsPort !== undefined) {
      tlsPort = (await broker.listenTls({ port: opts.tlsPort, host: opts.host, cert: certPem, key: keyPem }))
        .port;
    }
  } catch (e) {
    await broker.close().catch(() => {});
    throw e;
  }
  const h = hostForUrl(opts.host);
  io.out(`listening on mqtt+quic://${h}:${quicPort} (UDP ${opts.host})`);
  if (tcpPort !== undefined) io.out(`listening on mqtt://${h}:${tcpPort} (TCP ${opts.host})`);
  if (tlsPort !== undefined) io.out(`listening on mqtts://${h}:${tlsPort} (TLS over TCP ${opts.host})`);
  return { broker, quicPort, tcpPort, tlsPort, caFile, close: () => broker.close() };
}

/** `mquictt broker`: runs until SIGINT/SIGTERM (or `stop` resolves), then closes cleanly. */
export async function runBroker(
  opts: BrokerCliOptions,
  io: CliIo = consoleIo,
  stop: Promise<unknown> = signalled(),
): Promise<number> {
  const running = await startBrokerCli(opts, io);
  await stop;
  io.err("shutting down");
  await running.close();
  return 0;
}

function signalled(): Promise<string> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
}

// -------------------------------------------------------------------------------------------------
// pub / sub

/** Connection flags shared by pub and sub. */
export interface ClientCliOptions {
  url: string;
  cafile?: string;
  insecure: boolean;
  clientId?: string;
  clean: boolean;
  username?: string;
  password?: string;
  protocolVersion: 4 | 5;
  qos: 0 | 1 | 2;
  /** Connect timeout in seconds. */
  connectTimeout: number;
}

/** Options of `mquictt pub`. */
export interface PubCliOptions extends ClientCliOptions {
  topic: string;
  message: string;
  retain: boolean;
}

/** Options of `mquictt sub`. */
export interface SubCliOptions extends ClientCliOptions {
  filters: string[];
  verbose: boolean;
  /** Exit after this many messages. */
  count?: number;
  /** Give up after this many seconds. */
  timeout?: number;
}

interface RawClientFlags {
  host: string;
  port?: number;
  url?: string;
  tcp: boolean;
  common: ClientCliOptions;
}

/** Handles a connection flag at argv[i]; returns how many extra arguments it consumed, or -1. */
function clientFlag(argv: string[], i: number, raw: RawClientFlags): number {
  const a = argv[i] ?? "";
  const c = raw.common;
  switch (a) {
    case "-h":
    case "--host":
      raw.host = takeValue(argv, i, a);
      return 1;
    case "-p":
    case "--port":
      raw.port = parsePort(a, takeValue(argv, i, a), false);
      return 1;
    case "-L":
    case "--url":
      raw.url = takeValue(argv, i, a);
      return 1;
    case "--tcp":
      raw.tcp = true;
      return 0;
    case "--cafile":
      c.cafile = takeValue(argv, i, a);
      return 1;
    case "--insecure":
      c.insecure = true;
      return 0;
    case "-i":
    case "--id":
      c.clientId = takeValue(argv, i, a);
      return 1;
    case "-c":
    case "--disable-clean-session":
      c.clean = false;
      return 0;
    case "-u":
    case "--username":
      c.username = takeValue(argv, i, a);
      return 1;
    case "-P":
    case "--pw":
      c.password = takeValue(argv, i, a);
      return 1;
    case "-V":
    case "--protocol-version": {
      const v = takeValue(argv, i, a);
      if (v === "311" || v === "mqttv311" || v === "4") c.protocolVersion = 4;
      else if (v === "5" || v === "mqttv5") c.protocolVersion = 5;
      else throw new UsageError(`${a}: unsupported protocol version "${v}" (311 or 5)`);
      return 1;
    }
    case "-q":
    case "--qos": {
      const v = takeValue(argv, i, a);
      if (v !== "0" && v !== "1" && v !== "2")
        throw new UsageError(`${a}: QoS must be 0, 1 or 2, not "${v}"`);
      c.qos = Number(v) as 0 | 1 | 2;
      return 1;
    }
    case "--connect-timeout": {
      const v = Number(takeValue(argv, i, a));
      if (!(v > 0)) throw new UsageError(`${a}: not a positive number of seconds`);
      c.connectTimeout = v;
      return 1;
    }
    default:
      return -1;
  }
}

function newRaw(): RawClientFlags {
  return {
    host: "localhost",
    tcp: false,
    common: { url: "", insecure: false, clean: true, protocolVersion: 5, qos: 0, connectTimeout: 10 },
  };
}

function finishClient(raw: RawClientFlags): ClientCliOptions {
  const c = raw.common;
  if (raw.url !== undefined) {
    if (raw.port !== undefined || raw.tcp) throw new UsageError("-L goes without -p and --tcp");
    if (!/^(mqtt\+quic|mqtt|mqtts|tcp|ssl):\/\//.test(raw.url)) {
      throw new UsageError(
        `-L: not a broker URL: "${raw.url}" (expected mqtt+quic://HOST:PORT or mqtt://HOST:PORT)`,
      );
    }
    c.url = raw.url;
  } else {
    const scheme = raw.tcp ? "mqtt" : "mqtt+quic";
    const port = raw.port ?? (raw.tcp ? 1883 : 14567);
    c.url = `${scheme}://${isIP(raw.host) === 6 ? `[${raw.host}]` : raw.host}:${port}`;
  }
  if (!c.clean && c.clientId === undefined) {
    throw new UsageError("-c (persistent session) needs a client id (-i)");
  }
  if (c.password !== undefined && c.username === undefined) throw new UsageError("-P needs -u");
  if (c.cafile !== undefined && c.insecure)
    throw new UsageError("--cafile and --insecure exclude each other");
  return c;
}

/** Parses `mquictt pub` flags. */
export function parsePubArgs(argv: string[]): PubCliOptions {
  const raw = newRaw();
  let topic: string | undefined;
  let message: string | undefined;
  let retain = false;
  for (let i = 0; i < argv.length; i++) {
    const used = clientFlag(argv, i, raw);
    if (used >= 0) {
      i += used;
      continue;
    }
    const a = argv[i] ?? "";
    switch (a) {
      case "-t":
      case "--topic":
        if (topic !== undefined) throw new UsageError("pub takes one topic (-t)");
        topic = takeValue(argv, i++, a);
        break;
      case "-m":
      case "--message":
        message = takeValue(argv, i++, a);
        break;
      case "-n":
      case "--null-message":
        message = "";
        break;
      case "-r":
      case "--retain":
        retain = true;
        break;
      default:
        throw new UsageError(`unknown flag "${a}"`);
    }
  }
  if (topic === undefined) throw new UsageError("a topic is required (-t TOPIC)");
  if (!isValidTopicName(topic)) {
    throw new UsageError(`invalid topic "${topic}" (no wildcards + or #, not empty, no NUL)`);
  }
  if (message === undefined) throw new UsageError("a message is required (-m MESSAGE or -n)");
  return { ...finishClient(raw), topic, message, retain };
}

/** Parses `mquictt sub` flags. */
export function parseSubArgs(argv: string[]): SubCliOptions {
  const raw = newRaw();
  const filters: string[] = [];
  let verbose = false;
  let count: number | undefined;
  let timeout: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const used = clientFlag(argv, i, raw);
    if (used >= 0) {
      i += used;
      continue;
    }
    const a = argv[i] ?? "";
    switch (a) {
      case "-t":
      case "--topic": {
        const f = takeValue(argv, i++, a);
        if (!isValidTopicFilter(f)) throw new UsageError(`invalid topic filter "${f}"`);
        filters.push(f);
        break;
      }
      case "-v":
      case "--verbose":
        verbose = true;
        break;
      case "-C": {
        const v = takeValue(argv, i++, a);
        if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`-C: not a positive count: "${v}"`);
        count = Number(v);
        break;
      }
      case "-W": {
        const v = takeValue(argv, i++, a);
        const n = Number(v);
        if (v.trim() === "" || !(n > 0)) throw new UsageError(`-W: not a positive number of seconds: "${v}"`);
        timeout = n;
        break;
      }
      default:
        throw new UsageError(`unknown flag "${a}"`);
    }
  }
  if (filters.length === 0) throw new UsageError("at least one topic filter is required (-t FILTER)");
  const c = finishClient(raw);
  if (timeout !== undefined) c.connectTimeout = Math.min(c.connectTimeout, timeout);
  return {
    ...c,
    filters,
    verbose,
    ...(count !== undefined ? { count } : {}),
    ...(timeout !== undefined ? { timeout } : {}),
  };
}

const socketError = (): Error | undefined => lastQuicSocketError();

async function openClient(o: ClientCliOptions): Promise<MqttClient> {
  clearQuicSocketError();
  const ca = o.cafile !== undefined ? await readPemFile(o.cafile) : undefined;
  try {
    return await connect(o.url, {
      ...(o.clientId !== undefined ? { clientId: o.clientId } : {}),
      clean: o.clean,
      protocolVersion: o.protocolVersion,
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
      ...(ca !== undefined ? { ca } : {}),
      insecure: o.insecure,
      reconnect: false,
      connectTimeout: Math.round(o.connectTimeout * 1000),
      endTimeout: 2000,
    });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const code = (e as { code?: unknown }).code;
    const udp = socketError();
    const socket = udp ? `; UDP: ${udp.message}` : "";
    const hint =
      code === "ERR_MQTT_CONNECT_TIMEOUT" || socket !== ""
        ? `${socket} (is the broker running and reachable? for TCP use mqtt:// or --tcp)`
        : "";
    throw new Error(`cannot connect to ${o.url}: ${msg}${hint}`, { cause: e });
  }
}

/** `mquictt pub`: connects, publishes one message, disconnects. */
export async function runPub(o: PubCliOptions, _io: CliIo = consoleIo): Promise<number> {
  const client = await openClient(o);
  try {
    await client.publish(o.topic, o.message, { qos: o.qos, retain: o.retain });
  } finally {
    await client.end().catch(() => {});
  }
  return 0;
}

/**
 * `mquictt sub`: prints each message ("topic payload" with -v, else the payload) until COUNT
 * messages (-C), SECONDS pass (-W: error), or `stop` resolves (SIGINT/SIGTERM by default).
 */
export async function runSub(
  o: SubCliOptions,
  io: CliIo = consoleIo,
  stop: Promise<unknown> = signalled(),
): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  let client: MqttClient | undefined;
  const deadline =
    o.timeout !== undefined
      ? new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => {
              const why = client
                ? "waiting for messages"
                : `connecting to ${o.url}${socketError() ? ` (UDP: ${socketError()?.message})` : ""}`;
              reject(new Error(`timed out after ${o.timeout} s ${why}`));
            },
            (o.timeout ?? 0) * 1000,
          );
        })
      : undefined;
  deadline?.catch(() => {});
  const race = <T>(p: Promise<T>): Promise<T> => (deadline ? Promise.race([p, deadline]) : p);
  try {
    const connecting = openClient(o);
    connecting.then((c) => (client = c)).catch(() => {});
    client = await race(connecting);
    const c = client;
    let received = 0;
    const done = new Promise<void>((resolve, reject) => {
      c.on("message", (topic, payload) => {
        if (o.count !== undefined && received >= o.count) return;
        received++;
        const text = Buffer.from(payload).toString("utf8");
        io.out(o.verbose ? `${topic} ${text}` : text);
        if (o.count !== undefined && received >= o.count) resolve();
      });
      c.on("error", (e) => reject(new Error(`connection lost: ${e.message}`)));
      c.on("close", () => {
        if (!c.disconnecting) reject(new Error("connection closed by the broker"));
      });
    });
    done.catch(() => {});
    const grants = await race(c.subscribe(o.filters, { qos: o.qos }));
    const refused = grants.filter((g) => g.qos >= 0x80);
    if (refused.length > 0) {
      throw new Error(
        `subscription refused: ${refused.map((g) => `${g.topic} (0x${g.qos.toString(16)})`).join(", ")}`,
      );
    }
    io.ready?.();
    await race(Promise.race([done, stop]));
    return 0;
  } finally {
    if (timer) clearTimeout(timer);
    await client?.end(true).catch(() => {});
  }
}
