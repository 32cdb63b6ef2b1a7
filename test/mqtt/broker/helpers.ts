/**
 * Test helpers: a broker on a manual clock, and raw MQTT packet clients (so tests see and send
 * every byte: malformed packets, stream choices, DUP flags...).
 *
 * The clients run on in-memory transports, or, with MQUICTT_BROKER_TRANSPORT=quic or =tcp, over
 * real loopback connections to the broker's own QUIC or TCP listener: vitest.config.ts runs the
 * broker's feature suites a second and a third time that way, so every feature is tested over
 * QUIC and over TCP as well as in memory.
 */
import { once } from "node:events";
import { createConnection } from "node:net";
import { Duplex } from "node:stream";
import type { IConnackPacket, IConnectPacket, Packet } from "mqtt-packet";
import mqttPacket from "mqtt-packet";
import { afterAll } from "vitest";
import { nodeProvider } from "../../../src/crypto/node.js";
import { Broker } from "../../../src/mqtt/broker/broker.js";
import type { BrokerOptions } from "../../../src/mqtt/broker/options.js";
import { ManualScheduler } from "../../../src/mqtt/broker/scheduler.js";
import { type MemoryClient, type MemoryStream, memoryTransportPair } from "../../../src/mqtt/transport.js";
import { QuicEndpoint } from "../../../src/net/quic.js";
import { testCerts } from "../../quic/harness.js";

/** The network of raw clients that do not ask for a specific one (see the file comment). */
export const TRANSPORT: "memory" | "quic" | "tcp" = ((): "memory" | "quic" | "tcp" => {
  const t = process.env.MQUICTT_BROKER_TRANSPORT ?? "memory";
  if (t !== "memory" && t !== "quic" && t !== "tcp") throw new Error(`MQUICTT_BROKER_TRANSPORT=${t}?`);
  return t;
})();

/** Each broker's loopback listener port, opened on first use. */
const listenerPorts = new WeakMap<Broker, Promise<number>>();
/** What the real-network clients hold, closed after the file. */
const openEndpoints: QuicEndpoint[] = [];
const brokersWithListeners: Broker[] = [];
if (TRANSPORT !== "memory") {
  afterAll(async () => {
    await Promise.all(openEndpoints.splice(0).map((e) => e.close().catch(() => {})));
    await Promise.all(brokersWithListeners.splice(0).map((b) => b.close().catch(() => {})));
  });
}

function listenerPort(broker: Broker, kind: "quic" | "tcp"): Promise<number> {
  let p = listenerPorts.get(broker);
  if (!p) {
    brokersWithListeners.push(broker);
    const { leaf } = testCerts(nodeProvider);
    p =
      kind === "tcp"
        ? broker.listenTcp({ port: 0, host: "127.0.0.1" }).then((l) => l.port)
        : broker
            .listenQuic({ port: 0, host: "127.0.0.1", cert: [leaf.der], key: leaf.key, crypto: nodeProvider })
            .then((l) => l.port);
    listenerPorts.set(broker, p);
  }
  return p;
}

/**
 * A stream usable at once whose QUIC stream opens asynchronously: writes wait for it (so tests
 * keep the synchronous `client.stream()` of the in-memory transport).
 */
class OpeningStream extends Duplex {
  private inner: Duplex | undefined;
  private readonly waiting: (() => void)[] = [];

  constructor(open: Promise<Duplex>) {
    super();
    open.then(
      (s) => {
        this.inner = s;
        s.on("data", (d: Buffer) => this.push(d));
        s.on("end", () => this.push(null));
        s.on("error", (e: Error) => this.destroy(e));
        for (const w of this.waiting.splice(0)) w();
      },
      (e: Error) => this.destroy(e),
    );
  }

  private whenOpen(f: () => void): void {
    if (this.inner) f();
    else this.waiting.push(f);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.whenOpen(() => (this.inner as Duplex).write(chunk, cb));
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.whenOpen(() => (this.inner as Duplex).end(cb));
  }

  override _read(): void {}
}

/** Reads and writes MQTT packets on one stream. */
export class PacketStream {
  readonly received: Packet[] = [];
  private readonly queue: Packet[] = [];
  private waiters: Array<(p: Packet | undefined) => void> = [];
  private readonly parser: ReturnType<typeof mqttPacket.parser>;
  ended = false;
  parseError: Error | undefined;
  readonly closed: Promise<void>;

  constructor(
    readonly stream: Duplex,
    readonly version = 5,
  ) {
    this.parser = mqttPacket.parser({ protocolVersion: version });
    this.parser.on("packet", (p: Packet) => {
      this.received.push(p);
      const w = this.waiters.shift();
      if (w) w(p);
      else this.queue.push(p);
    });
    this.parser.on("error", (e: Error) => {
      this.parseError = e;
    });
    stream.on("data", (chunk: Buffer) => this.parser.parse(chunk));
    this.closed = new Promise((resolve) => {
      const done = (): void => {
        if (this.ended) return;
        this.ended = true;
        for (const w of this.waiters.splice(0)) w(undefined);
        resolve();
      };
      stream.on("end", done);
      stream.on("close", done);
      stream.on("error", done);
    });
  }

  /** Encodes and writes a packet. */
  send(p: Packet): void {
    this.stream.write(mqttPacket.generate(p, { protocolVersion: this.version }));
  }

  /** Writes raw bytes. */
  sendRaw(bytes: Uint8Array | number[]): void {
    this.stream.write(Buffer.from(bytes as Uint8Array));
  }

  /** The next packet (undefined if the stream ended first); fails after `ms`. */
  next(ms = 2000): Promise<Packet | undefined> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no packet within ${ms} ms`));
      }, ms);
      const waiter = (p: Packet | undefined): void => {
        clearTimeout(t);
        resolve(p);
      };
      this.waiters.push(waiter);
    });
  }

  /** The next packet, asserting its type. */
  async expect<C extends Packet["cmd"]>(cmd: C, ms = 2000): Promise<Extract<Packet, { cmd: C }>> {
    const p = await this.next(ms);
    if (!p) throw new Error(`stream ended while waiting for ${cmd}`);
    if (p.cmd !== cmd) throw new Error(`expected ${cmd}, got ${p.cmd} ${JSON.stringify(p)}`);
    return p as Extract<Packet, { cmd: C }>;
  }

  /** Asserts that nothing arrives for `ms` (real time). */
  async expectNothing(ms = 30): Promise<void> {
    await sleep(ms);
    const q = this.queue.shift();
    if (q) throw new Error(`unexpected ${q.cmd} ${JSON.stringify(q)}`);
  }

  /** Packets received and not yet taken. */
  get pending(): number {
    return this.queue.length;
  }
}

/** Resolves after `ms` real milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Lets queued I/O (nextTick/immediate chains of the memory transport) run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** A broker on a manual clock. */
export function makeBroker(opts: BrokerOptions = {}): { broker: Broker; clock: ManualScheduler } {
  const clock = new ManualScheduler(1_000_000);
  const broker = new Broker({ scheduler: clock, ...opts });
  return { broker, clock };
}

/** Options of {@link connect}. */
export interface ConnectOptions extends Partial<Omit<IConnectPacket, "cmd">> {
  version?: 3 | 4 | 5;
  kind?: "tcp" | "quic" | "memory";
  /** Connect over real TCP to this port instead of an in-memory pair. */
  tcpPort?: number;
  /** Don't wait for CONNACK. */
  noWait?: boolean;
}

/** A raw client on an in-memory transport (or a TCP socket). */
export interface RawClient {
  /** The in-memory connection (throws for TCP and QUIC clients). */
  conn: MemoryClient;
  /** The network this client uses. */
  transport: "memory" | "quic" | "tcp";
  ctl: PacketStream;
  connack: IConnackPacket | undefined;
  /** Opens a data stream (bidi by default) speaking the same protocol version. */
  stream(bidi?: boolean): PacketStream;
  /** Kills the connection abruptly (network loss). */
  kill(): void;
}

/** Connects a raw client and waits for CONNACK. */
export async function connect(broker: Broker, o: ConnectOptions = {}): Promise<RawClient> {
  const version = o.version ?? 5;
  let ctl: PacketStream;
  let client: MemoryClient | undefined;
  let kill: () => void;
  let openStream: ((bidi: boolean) => Duplex) | undefined;
  const transport = o.tcpPort !== undefined ? "tcp" : o.kind !== undefined ? "memory" : TRANSPORT;
  if (transport === "tcp") {
    const port = o.tcpPort ?? (await listenerPort(broker, "tcp"));
    const socket = createConnection({ port, host: "127.0.0.1" });
    socket.setNoDelay(true);
    await once(socket, "connect");
    ctl = new PacketStream(socket, version);
    kill = () => socket.destroy();
  } else if (transport === "quic") {
    const port = await listenerPort(broker, "quic");
    const ep = await QuicEndpoint.open({ host: "127.0.0.1", crypto: nodeProvider });
    openEndpoints.push(ep);
    const conn = await ep.connect("127.0.0.1", port, {
      alpn: ["mqtt"],
      ca: [testCerts(nodeProvider).ca.der],
      serverName: "localhost",
    });
    ctl = new PacketStream(await conn.openStream({ bidi: true }), version);
    // The network is lost: like a reset TCP socket after its last write left, what the test
    // wrote is sent, then the connection ends with an error code (not "no error").
    kill = () => setImmediate(() => void conn.close(0x101, "killed by the test").catch(() => {}));
    openStream = (bidi) => new OpeningStream(conn.openStream({ bidi }));
  } else {
    const pair = memoryTransportPair({ kind: o.kind ?? "quic" });
    broker.handle(pair.server);
    client = pair.client;
    ctl = new PacketStream(client.control, version);
    kill = () => pair.client.destroy();
  }
  const { version: _v, kind: _k, noWait: _n, tcpPort: _t, ...fields } = o;
  ctl.send({
    cmd: "connect",
    protocolId: version === 3 ? "MQIsdp" : "MQTT",
    protocolVersion: version,
    clientId: o.clientId ?? "",
    clean: o.clean ?? true,
    keepalive: o.keepalive ?? 0,
    ...fields,
  } as IConnectPacket);
  let connack: IConnackPacket | undefined;
  if (!o.noWait) connack = await ctl.expect("connack");
  return {
    get conn(): MemoryClient {
      if (!client) throw new Error("not an in-memory client");
      return client;
    },
    transport,
    ctl,
    connack,
    stream(bidi = true) {
      if (openStream) return new PacketStream(openStream(bidi), version);
      if (!client) throw new Error("a TCP client has one stream only");
      const s: MemoryStream = client.openStream({ bidi });
      return new PacketStream(s, version);
    },
    kill,
  };
}

/** Subscribes on a stream and waits for SUBACK. */
export async function subscribe(
  ps: PacketStream,
  filter: string,
  qos: 0 | 1 | 2 = 0,
  extra: {
    messageId?: number;
    nl?: boolean;
    rap?: boolean;
    rh?: number;
    subscriptionIdentifier?: number;
  } = {},
): Promise<number[]> {
  ps.send({
    cmd: "subscribe",
    messageId: extra.messageId ?? 1,
    subscriptions: [
      {
        topic: filter,
        qos,
        ...(ps.version === 5 ? { nl: extra.nl ?? false, rap: extra.rap ?? false, rh: extra.rh ?? 0 } : {}),
      },
    ],
    ...(extra.subscriptionIdentifier
      ? { properties: { subscriptionIdentifier: extra.subscriptionIdentifier } }
      : {}),
  });
  const suback = await ps.expect("suback");
  return suback.granted as number[];
}
