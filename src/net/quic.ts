/**
 * The Node.js face of the QUIC stack: one `node:dgram` socket per endpoint driving the sans-IO
 * `Endpoint`, the real clock and timers, and streams as Node `Duplex` objects.
 *
 * Why `Duplex` rather than Web Streams: the MQTT layer and its users live in Node (mqtt-packet's
 * parser, aedes-style `handle(stream)`, `pipeline()`), where Duplex is the common currency and
 * brings backpressure (`write()` returning false, `'drain'`) that maps directly onto QUIC flow
 * control: a write the connection cannot buffer stays pending until the stream is writable again.
 *
 * This file is the only place (with the TCP listener) that touches sockets and timers.
 */
import { createHash } from "node:crypto";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { lookup as dnsLookup, type LookupOneOptions } from "node:dns";
import { EventEmitter, once } from "node:events";
import { appendFileSync, mkdirSync } from "node:fs";
import { isIP, isIPv6 } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Duplex } from "node:stream";
import type { CryptoChoice, CryptoProvider, PrivateKey, Rng } from "../crypto/provider.js";
import { systemRng } from "../crypto/random.js";
import { getCryptoProvider } from "../crypto/select.js";
import { MquicttError } from "../errors.js";
import { checkTransportSettings, type TransportSettings } from "../quic/config.js";
import type { CloseInfo, Connection, ConnectionEvent } from "../quic/connection.js";
import { Endpoint } from "../quic/endpoint.js";
import type { PeerVerifier, SessionTicket } from "../tls/handshake-common.js";
import { loadCertificateChain, loadPrivateKey } from "../tls/pem.js";
import type { CipherSuiteName } from "../tls/suites.js";
import { createPeerVerifier } from "../tls/verify.js";

import { loadSystemRoots } from "./cert-files.js";

/** Options shared by servers and clients. */
export interface QuicCommonOptions {
  /** ALPN protocols in preference order. */
  alpn: string[];
  /** Crypto provider: "auto" (default), "noble", "node", or a provider object. */
  crypto?: CryptoChoice | CryptoProvider;
  /**
   * Transport settings (windows, limits, idle timeout...). `maxUdpPayloadSize` (1200..65527)
   * bounds the datagram size DPLPMTUD may reach on every path when set. Unset, it is
   * {@link LOOPBACK_MAX_UDP_PAYLOAD} towards a loopback address and 1452 otherwise: Node cannot
   * set IP_DONTFRAG, so on other paths a probe above the link MTU could pass through IP
   * fragmentation and "succeed"; set it only when the path is known to carry more (jumbo frames).
   */
  transport?: Partial<TransportSettings>;
  cipherSuites?: CipherSuiteName[];
  /** Write TLS secrets in NSS key log format (default: the SSLKEYLOGFILE environment variable). */
  keylogFile?: string;
  /** Write one qlog (JSON-SEQ) file per connection into this directory (default: QLOGDIR). */
  qlogDir?: string;
  /** Randomness (tests only). */
  rng?: Rng;
}

/** Options of `QuicEndpoint.listen`. */
export interface QuicListenOptions extends QuicCommonOptions {
  /** UDP port (0 = any). */
  port: number;
  /** Address to bind (default "::" when IPv6 is available, else "0.0.0.0"). */
  host?: string;
  /** Certificate chain: PEM text or DER list, leaf first. */
  cert: string | Uint8Array[];
  /** Private key: PEM text or a parsed key. */
  key: string | PrivateKey;
  /** Address validation with Retry. */
  retry?: boolean;
  maxConnections?: number;
  /**
   * Accept 0-RTT from clients resuming with a ticket of ours (RFC 9001 §4.6): their first
   * flight's stream data is read half a round trip after they start. Such data can be replayed
   * by an attacker to another server instance; a replay to this endpoint is refused. Off by default.
   */
  earlyData?: boolean;
}

/** Options of `QuicEndpoint.connect`. */
export interface QuicConnectOptions extends QuicCommonOptions {
  /** Name for SNI and certificate verification (default: the host). */
  serverName?: string;
  /** Trusted CA certificates (PEM text or DER list). Default: the system roots. */
  ca?: string | Uint8Array[];
  /** Skip certificate verification. Only for tests; never the default. */
  insecure?: boolean;
  /** A custom verifier (overrides `ca`). */
  verifier?: PeerVerifier;
  /** Give up after this many ms without a completed handshake (default 10 s). */
  handshakeTimeout?: number;
  /**
   * A ticket from an earlier connection to this server (a connection's `sessionTicket` event),
   * offered for TLS resumption: the server skips its certificate chain and signature. An expired
   * or foreign ticket is ignored and the handshake is a full one; `QuicConnection.resumed` tells.
   */
  sessionTicket?: SessionTicket;
  /**
   * With a `sessionTicket` that allows it, send in 0-RTT: `connect()` resolves at once instead of
   * after the handshake, and what is written to streams goes out with the first flight
   * (`QuicConnection.earlyData` tells what the server made of it; rejected data is resent after
   * the handshake, transparently). Only for data that is safe to replay. Off by default.
   */
  earlyData?: boolean;
}

/** A QUIC error surfaced to the application. */
export class QuicError extends MquicttError {
  readonly info: CloseInfo | undefined;
  constructor(code: string, message: string, info?: CloseInfo) {
    super(code, message);
    this.info = info;
  }
}

/** The stream was reset by the peer (RESET_STREAM) with an application error code. */
export class StreamResetError extends MquicttError {
  constructor(
    readonly streamId: number,
    readonly errorCode: number,
  ) {
    super("ERR_QUIC_STREAM_RESET", `stream ${streamId} reset by peer with code ${errorCode}`);
  }
}

const now = (): number => performance.now();

let lastSocketErrorAnywhere: Error | undefined;

/** The last UDP socket error any endpoint of this process saw (for CLI diagnostics). */
export function lastQuicSocketError(): Error | undefined {
  return lastSocketErrorAnywhere;
}

/** Forgets `lastQuicSocketError()`. */
export function clearQuicSocketError(): void {
  lastSocketErrorAnywhere = undefined;
}

/**
 * Socket buffers: the kernel default (~208 KB) overflows on a fast path and every drop costs a
 * congestion-window halving. The kernel caps these at net.core.[rw]mem_max.
 */
const SOCKET_BUFFERS = { recvBufferSize: 2 << 20, sendBufferSize: 2 << 20 } as const;

/** isIP() of the addresses seen by `literalLookup` (its regular expressions, once per address). */
const literalFamily = new Map<string, number>();

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

/**
 * The `lookup` of our sockets. node:dgram resolves the address of every unconnected `send()`
 * with `dns.lookup`, which answers even an IP literal on the next tick: a closure, a
 * `process.nextTick` and a deferred send per datagram (a server sends every datagram that way).
 * We only ever send to addresses taken from received datagrams or resolved at connect time, all
 * IP literals, so those are answered synchronously and the datagram leaves within `send()`;
 * anything else still goes to `dns.lookup`.
 */
function literalLookup(hostname: string, options: LookupOneOptions | number, callback: LookupCallback): void {
  let family = literalFamily.get(hostname);
  if (family === undefined) {
    family = isIP(hostname);
    if (literalFamily.size >= 10_000) literalFamily.clear();
    literalFamily.set(hostname, family);
  }
  if (family !== 0) {
    callback(null, hostname, family);
    return;
  }
  // node:dgram passes the family as a number (Node 20) or in an options object (later Nodes).
  dnsLookup(hostname, typeof options === "number" ? { family: options } : options, callback);
}

/** Socket options shared by servers and clients. */
const SOCKET_OPTIONS = { ...SOCKET_BUFFERS, lookup: literalLookup } as const;

/**
 * The largest UDP payload probed towards a loopback address when `maxUdpPayloadSize` is not set
 * (DPLPMTUD confirms it before use, RFC 9000 §14.3). Every packet costs an AEAD pass and a
 * sendmsg/recvmsg whatever its size (node:dgram has no GSO/GRO), so larger is cheaper per byte;
 * but each loss then costs more, and the minimum congestion window (2 datagrams, RFC 9002 §7.2)
 * of many connections into one socket grows with it. Measured with 4 KB MQTT messages (bench/
 * throughput.ts, QoS 0): 16 KB datagrams gave 2-5x the deliveries per broker CPU-second of 1452;
 * 64 KB ones more again for one connection, but socket-buffer drops and stalls in the 10x100
 * fan-out (one run left 84 % of the messages undelivered). 16 KB
 * less IPv6 headers fits the loopback MTU of Linux (65536) and macOS (16384) for IPv4 and IPv6.
 * node:dgram (libuv) reads every datagram into a 64 KB buffer, so any size we advertise arrives
 * whole.
 */
export const LOOPBACK_MAX_UDP_PAYLOAD = 16384 - 48;

/** Whether an address is loopback: 127.0.0.0/8, ::1, or an IPv4-mapped 127.x address. */
export function isLoopbackAddress(address: string): boolean {
  const a = address.startsWith("::ffff:") ? address.slice(7) : address;
  return a === "::1" || (a.startsWith("127.") && isIP(a) === 4);
}

/** The `pathMaxUdpPayloadSize` of our endpoints (see `QuicCommonOptions.transport`). */
function pathMaxUdpPayloadSize(remote: string): number | undefined {
  return isLoopbackAddress(parseAddressKey(remote).address) ? LOOPBACK_MAX_UDP_PAYLOAD : undefined;
}

/** "host:port", IPv6 in brackets. `v6` may be passed when known (a datagram's `rinfo.family`). */
function addressKey(address: string, port: number, v6 = isIPv6(address)): string {
  return v6 ? `[${address}]:${port}` : `${address}:${port}`;
}

function parseAddressKey(key: string): { address: string; port: number } {
  const i = key.lastIndexOf(":");
  let address = key.slice(0, i);
  if (address.startsWith("[")) address = address.slice(1, -1);
  return { address, port: Number(key.slice(i + 1)) };
}

function resolveProvider(c: CryptoChoice | CryptoProvider | undefined): CryptoProvider {
  return typeof c === "object" ? c : getCryptoProvider(c);
}

/** One UDP socket and its QUIC connections. */
export class QuicEndpoint extends EventEmitter {
  /** The UDP socket (a client's changes with `rebind`). */
  socket: Socket;
  private readonly core: Endpoint;
  private readonly provider: CryptoProvider;
  private readonly wrappers = new Map<Connection, QuicConnection>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private serviceScheduled = false;
  private closed = false;
  private readonly keylogFile: string | undefined;
  private readonly qlogDir: string | undefined;
  /** Parsed "host:port" keys, so the per-datagram send path does no string work. */
  private readonly addressCache = new Map<string, { address: string; port: number }>();
  /** A client-only socket connect()ed to its one peer sends without per-datagram address lookups. */
  private connectedTo: string | undefined;
  private socketConnecting: Promise<void> | undefined;
  /** Once a client socket served two peers it stays unconnected. */
  private socketShared = false;
  private readonly isServer: boolean;
  /** The last error the UDP socket reported (e.g. ECONNREFUSED), if any. */
  lastSocketError: Error | undefined;
  /** The sender of the last datagram and its "host:port" key. */
  private lastFrom: { address: string; port: number; key: string } | undefined;

  private constructor(
    socket: Socket,
    core: Endpoint,
    provider: CryptoProvider,
    opts: QuicCommonOptions | undefined,
  ) {
    super();
    this.socket = socket;
    this.core = core;
    this.provider = provider;
    this.isServer = opts !== undefined && "cert" in opts;
    this.keylogFile = opts?.keylogFile ?? (process.env.SSLKEYLOGFILE || undefined);
    this.qlogDir = opts?.qlogDir ?? (process.env.QLOGDIR || undefined);
    socket.on("message", (msg: Buffer, rinfo: RemoteInfo) => {
      if (this.closed) return;
      // The "host:port" key of the sender: a bulk peer sends datagram after datagram from the
      // same address, so the last key is reused (no regular expression and no string building
      // per datagram, and the same string object makes the endpoint's address checks cheap).
      let from = this.lastFrom;
      if (from === undefined || rinfo.port !== from.port || rinfo.address !== from.address) {
        // rinfo.family, not isIPv6(): its regular expression per datagram from a new peer showed in
        // a broker's profile under many short connections.
        from = {
          address: rinfo.address,
          port: rinfo.port,
          key: addressKey(rinfo.address, rinfo.port, rinfo.family === "IPv6"),
        };
        this.lastFrom = from;
      }
      this.core.receive(now(), from.key, new Uint8Array(msg.buffer, msg.byteOffset, msg.length));
      // Process every datagram libuv read in this poll phase before answering: one service pass
      // (and one ACK) per batch instead of per datagram. The ack tracker still asks for an ACK
      // after every second ack-eliciting packet; it goes out at the end of the batch.
      this.scheduleService();
    });
    socket.on("error", (err) => {
      // ICMP errors (ECONNREFUSED for a closed port) are not fatal to QUIC, which retries until
      // its handshake or idle timeout; they are remembered for the timeout message and only
      // re-emitted to a listener, never thrown at a process that did not ask for them.
      this.lastSocketError = err;
      lastSocketErrorAnywhere = err;
      if (this.listenerCount("error") > 0) this.emit("error", err);
    });
  }

  /** A server endpoint listening on `port`. Emits `connection` for each accepted connection. */
  static async listen(opts: QuicListenOptions): Promise<QuicEndpoint> {
    const provider = resolveProvider(opts.crypto);
    const rng = opts.rng ?? systemRng;
    const chain =
      typeof opts.cert === "string" ? loadCertificateChain(opts.cert, "the certificate") : opts.cert;
    const key = typeof opts.key === "string" ? loadPrivateKey(opts.key, "the private key") : opts.key;
    checkTransportSettings(opts.transport);
    const host = opts.host ?? "::";
    const socket = createSocket({
      type: isIPv6(host) ? "udp6" : "udp4",
      reuseAddr: false,
      ...SOCKET_OPTIONS,
    });
    await bindSocket(socket, opts.port, host);
    let ep: QuicEndpoint | undefined;
    const core = new Endpoint({
      provider,
      rng,
      pathMaxUdpPayloadSize,
      server: {
        alpn: opts.alpn,
        certificateChain: chain,
        privateKey: key,
        transport: opts.transport,
        cipherSuites: opts.cipherSuites,
        retry: opts.retry,
        maxConnections: opts.maxConnections,
        earlyData: opts.earlyData,
        // Only with a key log file: otherwise each handshake would format its secrets for nothing.
        keylog: (opts.keylogFile ?? process.env.SSLKEYLOGFILE) ? (line) => ep?.keylog(line) : undefined,
      },
    });
    ep = new QuicEndpoint(socket, core, provider, opts);
    return ep;
  }

  /** A client-only endpoint on an ephemeral port. */
  static async open(
    opts: { host?: string; port?: number; crypto?: CryptoChoice | CryptoProvider; rng?: Rng } = {},
  ): Promise<QuicEndpoint> {
    const provider = resolveProvider(opts.crypto);
    const host = opts.host ?? "::";
    const socket = createSocket({ type: isIPv6(host) ? "udp6" : "udp4", ...SOCKET_OPTIONS });
    await bindSocket(socket, opts.port ?? 0, host);
    const core = new Endpoint({ provider, rng: opts.rng ?? systemRng, pathMaxUdpPayloadSize });
    return new QuicEndpoint(socket, core, provider, undefined);
  }

  /**
   * Client: moves this endpoint's connections to a new UDP socket, on a new port or a new local
   * address (`host`), as a device changing networks would: active connection migration (RFC 9000
   * §9.2). Each connection switches to a spare connection ID of the server's (§9.5) and sends a
   * PING from the new address; the server validates the path and follows. Datagrams still on
   * their way to the old socket are lost and recovered. Rejects with `ERR_QUIC_MIGRATION` when a
   * connection cannot migrate (handshake not confirmed, the server disabled active migration, or
   * it gave no spare connection ID); nothing is changed then.
   */
  async rebind(opts: { host?: string; port?: number } = {}): Promise<void> {
    if (this.isServer) throw new QuicError("ERR_QUIC_MIGRATION", "a server endpoint does not migrate");
    if (this.socketConnecting) await this.socketConnecting;
    const conns = [...this.wrappers.keys()].filter((c) => !c.isClosing);
    for (const c of conns) {
      // §9.2: not before the handshake is confirmed, nor against disable_active_migration.
      const why = !c.isHandshakeConfirmed
        ? "the handshake is not confirmed yet"
        : c.peerTransportParameters?.disableActiveMigration
          ? "the server disabled active migration"
          : !c.hasSpareDestinationCid
            ? "the server gave no spare connection ID"
            : undefined;
      if (why) throw new QuicError("ERR_QUIC_MIGRATION", `cannot migrate to a new address: ${why}`);
    }
    const family = this.socket.address().family === "IPv6" ? "::" : "0.0.0.0";
    const host = opts.host ?? family;
    const socket = createSocket({ type: isIPv6(host) ? "udp6" : "udp4", ...SOCKET_OPTIONS });
    await bindSocket(socket, opts.port ?? 0, host);
    if (this.connectedTo !== undefined) {
      const peer = parseAddressKey(this.connectedTo);
      await new Promise<void>((resolve) => socket.connect(peer.port, peer.address, () => resolve()));
    }
    const old = this.socket;
    for (const event of ["message", "error"] as const)
      for (const l of old.listeners(event)) socket.on(event, l as (...args: unknown[]) => void);
    old.removeAllListeners("message");
    this.socket = socket;
    old.close();
    for (const c of conns) {
      c.rotateDestinationCid(); // §9.5: a new CID on a new path
      c.ping(); // a non-probing packet from the new address moves the server (§9.3)
      this.core.touch(c);
    }
    this.service();
  }

  /** Local address of the socket. */
  address(): { address: string; port: number; family: string } {
    return this.socket.address();
  }

  /** Every live connection. */
  get connections(): QuicConnection[] {
    return [...this.wrappers.values()];
  }

  /**
   * The verifier for trusted roots `ca` (the system roots when undefined), parsed once per process
   * and crypto provider: parsing the roots and importing their keys cost more per connection than
   * the rest of a client's handshake.
   */
  private async caVerifier(ca: string | Uint8Array[] | undefined): Promise<PeerVerifier> {
    const h = createHash("sha256");
    if (typeof ca === "string") h.update("pem\0").update(ca);
    else if (ca !== undefined) for (const der of ca) h.update("der\0").update(der);
    const key = `${this.provider.name}|${ca === undefined ? "system" : h.digest("hex")}`;
    let v = verifierCache.get(key);
    if (v === undefined) {
      const roots =
        ca === undefined
          ? (await systemRoots()).roots
          : typeof ca === "string"
            ? loadCertificateChain(ca, "the CA file")
            : ca;
      v = createPeerVerifier({ roots, now: () => Date.now(), provider: this.provider });
      if (verifierCache.size >= VERIFIER_CACHE_SIZE)
        verifierCache.delete(verifierCache.keys().next().value as string);
    } else verifierCache.delete(key);
    verifierCache.set(key, v);
    return v;
  }

  /**
   * Connects to `host:port` and resolves once the handshake completes. Rejects with a
   * `QuicError` whose message says why (certificate problem, ALPN refused, timeout...).
   */
  async connect(host: string, port: number, opts: QuicConnectOptions): Promise<QuicConnection> {
    checkTransportSettings(opts.transport);
    const serverName = opts.serverName ?? host;
    let verifier: PeerVerifier | "insecure-skip-verification";
    if (opts.verifier) verifier = opts.verifier;
    else if (opts.insecure) verifier = "insecure-skip-verification";
    else verifier = await this.caVerifier(opts.ca);
    const remoteHost =
      host === "localhost" ? (this.socket.address().family === "IPv6" ? "::1" : "127.0.0.1") : host;
    const mappedHost =
      this.socket.address().family === "IPv6" && !isIPv6(remoteHost) ? `::ffff:${remoteHost}` : remoteHost;
    const remoteKey = addressKey(mappedHost, port);
    await this.connectSocket(remoteKey, mappedHost, port);
    const conn = this.core.connect(now(), remoteKey, {
      alpn: opts.alpn,
      serverName: isIpLiteral(serverName) ? undefined : serverName,
      verifier,
      transport: opts.transport,
      cipherSuites: opts.cipherSuites,
      keylog: (opts.keylogFile ?? this.keylogFile) ? (line) => this.keylog(line, opts.keylogFile) : undefined,
      qlog: this.qlogger(opts.qlogDir),
      sessionTicket: opts.sessionTicket,
      earlyData: opts.earlyData,
    });
    const qc = this.wrap(conn);
    // 0-RTT: the connection is usable now; the handshake finishes in the background.
    const early = conn.earlyDataState === "pending";
    // With 0-RTT the first flight waits one turn for what the caller writes once connect()
    // resolves, so it leaves with the Initial: sent later, a fast server's reply would already
    // have brought the 1-RTT keys, and the data would go in 1-RTT (RFC 9001 §4.9.3).
    if (early) this.scheduleService();
    else this.service();
    const timeout = opts.handshakeTimeout ?? 10_000;
    await new Promise<void>((resolve, reject) => {
      // Once settled, a later close needs no error: building one (a stack trace) per closed
      // connection is a measurable share of a short connection's CPU.
      let settled = false;
      const t = setTimeout(() => {
        conn.close(now(), 0, "handshake timeout", false);
        this.touch(conn);
        reject(
          new QuicError(
            "ERR_QUIC_HANDSHAKE_TIMEOUT",
            `no QUIC handshake with ${host}:${port} within ${timeout} ms`,
          ),
        );
      }, timeout);
      qc.once("connect", () => {
        clearTimeout(t);
        settled = true;
        resolve();
      });
      if (early) {
        qc.earlyData = "pending";
        qc.alpn = opts.sessionTicket?.alpn; // 0-RTT speaks the ticket's protocol (RFC 9001 §4.6.1)
        settled = true;
        resolve();
      }
      qc.once("close", (info: CloseInfo) => {
        clearTimeout(t);
        if (settled) return;
        reject(
          new QuicError(
            "ERR_QUIC_CONNECT",
            `QUIC connection to ${host}:${port} failed: ${info.reason || `error 0x${info.errorCode.toString(16)}`}`,
            info,
          ),
        );
      });
    });
    return qc;
  }

  /** Connects a client-only socket to its single peer (or disconnects it for a second peer). */
  private async connectSocket(key: string, address: string, port: number): Promise<void> {
    if (this.isServer) return;
    if (this.socketConnecting) await this.socketConnecting;
    if (this.connectedTo === key) return;
    if (this.connectedTo !== undefined) {
      this.socket.disconnect();
      this.connectedTo = undefined;
      this.socketShared = true;
      return;
    }
    if (this.wrappers.size > 0 || this.socketShared) return;
    this.socketConnecting = new Promise<void>((resolve) =>
      this.socket.connect(port, address, () => resolve()),
    );
    await this.socketConnecting;
    this.socketConnecting = undefined;
    this.connectedTo = key;
  }

  private wrap(conn: Connection): QuicConnection {
    const qc = new QuicConnection(this, conn);
    this.wrappers.set(conn, qc);
    return qc;
  }

  private keylog(line: string, file = this.keylogFile): void {
    if (file) appendFileSync(file, `${line}\n`);
  }

  private qlogger(
    dir = this.qlogDir,
  ): ((e: { time: number; name: string; data: Record<string, unknown> }) => void) | undefined {
    if (!dir) return undefined;
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `mquictt-${process.pid}-${Date.now()}-${Math.floor(Math.random() * 1e6)}.sqlog`);
    appendFileSync(
      file,
      `\x1e${JSON.stringify({ qlog_format: "JSON-SEQ", qlog_version: "0.3", title: "mquictt" })}\n`,
    );
    return (e) => appendFileSync(file, `\x1e${JSON.stringify(e)}\n`);
  }

  /** @internal Marks a connection as having work and schedules a service pass. */
  touch(conn: Connection): void {
    this.core.touch(conn);
    this.scheduleService();
  }

  private scheduleService(): void {
    if (this.serviceScheduled) return;
    this.serviceScheduled = true;
    setImmediate(() => {
      this.serviceScheduled = false;
      this.service();
    });
  }

  /** Drains events, sends what is due and re-arms the timer. */
  private service(): void {
    if (this.closed && this.wrappers.size === 0) return;
    const t = now();
    for (let e = this.core.pollEvent(); e; e = this.core.pollEvent()) {
      const qc = this.wrap(e.connection);
      this.emit("connection", qc);
    }
    for (let i = 0; i < 8; i++) {
      for (const conn of this.core.takeActive()) this.dispatch(conn);
      let sent = 0;
      for (let d = this.core.pollTransmit(t); d; d = this.core.pollTransmit(t)) {
        if (d.to === this.connectedTo) this.socket.send(d.data);
        else {
          let a = this.addressCache.get(d.to);
          if (!a) {
            if (this.addressCache.size > 10_000) this.addressCache.clear();
            a = parseAddressKey(d.to);
            this.addressCache.set(d.to, a);
          }
          this.socket.send(d.data, a.port, a.address);
        }
        sent++;
      }
      if (sent === 0) break;
    }
    for (const conn of this.core.takeActive()) this.dispatch(conn);
    this.armTimer();
  }

  private dispatch(conn: Connection): void {
    const qc = this.wrappers.get(conn);
    for (let ev = conn.pollEvent(); ev; ev = conn.pollEvent()) qc?.handle(ev);
    if (conn.isDrained) {
      this.wrappers.delete(conn);
      qc?.handle({ type: "drained" });
      if (this.closed && this.wrappers.size === 0) this.finalClose();
    }
  }

  private armTimer(): void {
    const next = this.core.pollTimeout();
    if (next === undefined) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      return;
    }
    // A timer already armed at or before `next` (within 0.5 ms late) stays: when it fires, the
    // pass finds nothing due and re-arms for the real deadline. On a busy connection the
    // deadline moves with every service pass (pacing, ACK delay, idle timeout), and re-arming
    // a Node timer each time (clearTimeout + setTimeout: a timer-list removal and insertion)
    // cost more than the occasional early wake-up. Only an earlier deadline re-arms it.
    if (this.timer && this.timerAt <= next + 0.5) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = next;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.core.handleTimeout(now());
        this.service();
      },
      Math.max(0, next - now()),
    );
  }

  /**
   * Closes every connection (application code `code`) and the socket once they are gone.
   * Resolves when the socket is closed.
   */
  async close(code = 0, reason = "endpoint closed"): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.core.closeAll(now(), code, reason);
    this.service();
    // Not events.once(): it would also reject on an 'error' meanwhile (an ICMP port unreachable
    // for our CONNECTION_CLOSE to a peer that is gone), and close() must not fail for that.
    const done = new Promise<void>((resolve) => this.once("closed", () => resolve()));
    // Closing connections linger for 3 PTOs; do not hold a process open for them.
    const force = setTimeout(() => this.finalClose(), 2000);
    force.unref();
    if (this.wrappers.size === 0) this.finalClose();
    await done;
  }

  private finalClose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.listenerCount("closed") === 0 && !this.socket) return;
    try {
      this.socket.close();
    } catch {
      // already closed
    }
    this.emit("closed");
  }
}

let systemRootsPromise: ReturnType<typeof loadSystemRoots> | undefined;

/** Most sets of trusted roots whose verifier is kept (least recently used forgotten first). */
const VERIFIER_CACHE_SIZE = 32;
/** Verifiers by provider and trusted roots (see `QuicEndpoint.caVerifier`). */
const verifierCache = new Map<string, PeerVerifier>();

/** The system roots, loaded and parsed once per process. */
function systemRoots(): ReturnType<typeof loadSystemRoots> {
  systemRootsPromise ??= loadSystemRoots();
  systemRootsPromise.catch(() => {
    systemRootsPromise = undefined;
  });
  return systemRootsPromise;
}

function isIpLiteral(name: string): boolean {
  return /^[0-9.]+$/.test(name) || name.includes(":");
}

async function bindSocket(socket: Socket, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    socket.once("error", onError);
    socket.bind(port, host, () => {
      socket.off("error", onError);
      resolve();
    });
  });
}

/**
 * One QUIC connection. Emits `connect`, `stream` (peer-opened `QuicStream`), `datagram`,
 * `sessionTicket` (client: a `SessionTicket` to resume with later), `peerAddressChanged`
 * (server: `(remoteAddress, validated)` when the client migrated or its NAT rebound, and again
 * once the new address is validated; RFC 9000 §9.3), `close`.
 */
export class QuicConnection extends EventEmitter {
  private readonly streams = new Map<number, QuicStream>();
  private readonly waitingOpen: {
    bidi: boolean;
    resolve: (s: QuicStream) => void;
    reject: (e: Error) => void;
  }[] = [];
  private closeInfo: CloseInfo | undefined;
  private drained = false;
  /** The negotiated ALPN protocol. */
  alpn: string | undefined;
  /** True once connected when the TLS session was resumed from a ticket. */
  resumed = false;
  /**
   * Client: the latest session ticket the server sent (also emitted as `sessionTicket`); kept
   * because a server may send it with its first flight, before code after `connect()` runs.
   */
  sessionTicket: SessionTicket | undefined;
  /**
   * 0-RTT: "pending" while data may go out in 0-RTT before the handshake completes, then
   * "accepted" or "rejected" (the rejected data was resent in 1-RTT); "none" when not attempted.
   */
  earlyData: "none" | "pending" | "accepted" | "rejected" = "none";

  constructor(
    private readonly endpoint: QuicEndpoint,
    /** The sans-IO connection (for inspection and stats). */
    readonly core: Connection,
  ) {
    super();
  }

  /** The peer's address as "host:port". */
  get remoteAddress(): string {
    return this.core.remote;
  }

  /** Why the connection closed, once it did. */
  get closeReason(): CloseInfo | undefined {
    return this.closeInfo;
  }

  /** @internal */
  handle(ev: ConnectionEvent | { type: "drained" }): void {
    switch (ev.type) {
      case "connected":
        this.alpn = ev.alpn;
        this.resumed = ev.resumed;
        this.earlyData = ev.earlyData;
        this.emit("connect");
        return;
      case "stream_opened": {
        const s = this.streamFor(ev.streamId, ev.bidi, false);
        this.emit("stream", s);
        s.onReadable();
        return;
      }
      case "stream_readable":
        this.streams.get(ev.streamId)?.onReadable();
        return;
      case "stream_writable":
        this.streams.get(ev.streamId)?.onWritable();
        return;
      case "stream_reset":
        this.streams.get(ev.streamId)?.onReset(ev.errorCode);
        return;
      case "stream_stop_sending":
        this.streams.get(ev.streamId)?.onStopSending(ev.errorCode);
        return;
      case "streams_available":
        this.retryOpens();
        return;
      case "datagram":
        this.emit("datagram", ev.data);
        return;
      case "peer_address_changed":
        this.emit("peerAddressChanged", ev.remote, ev.validated);
        return;
      case "session_ticket":
        this.sessionTicket = ev.ticket;
        this.emit("sessionTicket", ev.ticket);
        return;
      case "closed": {
        this.closeInfo = ev.info;
        // A normal close (ours, or the peer's application code 0) ends streams quietly; anything
        // else destroys them with the error, as a reset TCP socket would. The error is only
        // built when someone receives it.
        const quiet = ev.info.initiator === "local" || (ev.info.application && ev.info.errorCode === 0);
        let err: QuicError | undefined;
        if (this.waitingOpen.length > 0 || (!quiet && this.streams.size > 0)) {
          err = new QuicError(
            "ERR_QUIC_CLOSED",
            `connection closed: ${ev.info.reason || ev.info.errorCode}`,
            ev.info,
          );
        }
        for (const w of this.waitingOpen.splice(0)) w.reject(err as QuicError); // set when any wait
        for (const s of this.streams.values()) s.onConnectionClosed(quiet ? undefined : err);
        this.emit("close", ev.info);
        return;
      }
      case "drained":
        if (this.drained) return;
        this.drained = true;
        this.emit("drained");
        return;
      default:
        return;
    }
  }

  private streamFor(id: number, bidi: boolean, local: boolean): QuicStream {
    let s = this.streams.get(id);
    if (!s) {
      s = new QuicStream(this, id, bidi, local);
      this.streams.set(id, s);
      // `on`: a stream emits "close" once; once() would keep a bound wrapper per stream.
      s.on("close", () => this.streams.delete(id));
    }
    return s;
  }

  /** Opens a stream, waiting while the peer's stream limit is reached. */
  openStream(opts: { bidi?: boolean } = {}): Promise<QuicStream> {
    const bidi = opts.bidi ?? true;
    if (this.closeInfo)
      return Promise.reject(new QuicError("ERR_QUIC_CLOSED", "connection is closed", this.closeInfo));
    const id = this.core.openStream(bidi);
    if (id !== undefined) {
      this.touch();
      return Promise.resolve(this.streamFor(id, bidi, true));
    }
    return new Promise((resolve, reject) => this.waitingOpen.push({ bidi, resolve, reject }));
  }

  private retryOpens(): void {
    while (this.waitingOpen.length > 0) {
      const w = this.waitingOpen[0];
      const id = this.core.openStream(w.bidi);
      if (id === undefined) return;
      this.waitingOpen.shift();
      w.resolve(this.streamFor(id, w.bidi, true));
    }
    this.touch();
  }

  /** Sends an unreliable datagram (RFC 9221); false if the peer does not accept it. */
  sendDatagram(data: Uint8Array): boolean {
    const ok = this.core.sendDatagram(data);
    if (ok) this.touch();
    return ok;
  }

  /** Closes with an application error code; resolves when the connection is gone. */
  async close(code = 0, reason = ""): Promise<void> {
    if (!this.closeInfo) {
      this.core.close(now(), code, reason);
      this.touch();
    }
    if (!this.drained) await once(this, "drained");
  }

  /**
   * Closes once everything written to the streams is sent and acknowledged, or after `maxWaitMs`
   * at the latest: CONNECTION_CLOSE discards what is unsent or unacknowledged (RFC 9000 §10.2),
   * such as a last MQTT DISCONNECT or CONNACK. Resolves when the connection is closed.
   */
  async closeWhenFlushed(code: number, reason: string, maxWaitMs: number): Promise<void> {
    const deadline = Date.now() + maxWaitMs;
    const pending = (): boolean => {
      for (const s of this.streams.values()) if (s.writableLength > 0) return true;
      return !this.core.flushed;
    };
    // Checked at 2, 4, 8 ... 64 ms intervals: one RTT on a fast path costs little waiting, and a
    // broker closing thousands of connections to dead peers does not spin.
    for (let wait = 2; !this.closeInfo && pending() && Date.now() < deadline; wait = Math.min(64, wait * 2))
      await new Promise<void>((r) => setTimeout(r, wait).unref());
    await this.close(code, reason);
  }

  /** Resolves with the close reason when the connection ends. */
  closed(): Promise<CloseInfo> {
    if (this.closeInfo) return Promise.resolve(this.closeInfo);
    return once(this, "close").then(([info]) => info as CloseInfo);
  }

  /** @internal */
  touch(): void {
    this.endpoint.touch(this.core);
  }

  /** Async iterator over peer-opened streams. */
  async *incomingStreams(): AsyncGenerator<QuicStream> {
    const queue: QuicStream[] = [];
    let wake: (() => void) | undefined;
    const onStream = (s: QuicStream) => {
      queue.push(s);
      wake?.();
    };
    const onClose = () => wake?.();
    this.on("stream", onStream);
    this.on("close", onClose);
    try {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (this.closeInfo) return;
        await new Promise<void>((r) => {
          wake = r;
        });
        wake = undefined;
      }
    } finally {
      this.off("stream", onStream);
      this.off("close", onClose);
    }
  }
}

/**
 * A QUIC stream as a Node Duplex. Unidirectional streams are read-only (peer-opened) or
 * write-only (local). `reset(code)` and `stopSending(code)` end a direction abruptly.
 */
export class QuicStream extends Duplex {
  private pendingWrite: { data: Uint8Array; cb: (err?: Error | null) => void } | undefined;
  private pendingFinal: ((err?: Error | null) => void) | undefined;
  private reading = false;
  private readEnded = false;

  constructor(
    private readonly conn: QuicConnection,
    /** QUIC stream ID. */
    readonly id: number,
    /** Bidirectional? */
    readonly bidi: boolean,
    /** Opened by us? */
    readonly local: boolean,
  ) {
    super({ allowHalfOpen: true, highWaterMark: 64 * 1024 });
    if (!bidi && local) {
      this.readEnded = true;
      this.push(null);
    }
    if (!bidi && !local) this.end();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const data = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
    this.pendingWrite = { data, cb };
    this.flushWrite();
  }

  private flushWrite(): void {
    const p = this.pendingWrite;
    if (!p) return;
    let n: number;
    try {
      n = this.conn.core.write(this.id, p.data);
    } catch (e) {
      this.pendingWrite = undefined;
      p.cb(e as Error);
      return;
    }
    if (n > 0) this.conn.touch();
    if (n === p.data.length) {
      this.pendingWrite = undefined;
      p.cb();
      if (this.pendingFinal) this.doFinal();
    } else {
      p.data = p.data.subarray(n);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.pendingFinal = cb;
    if (!this.pendingWrite) this.doFinal();
  }

  private doFinal(): void {
    const cb = this.pendingFinal;
    if (!cb) return;
    this.pendingFinal = undefined;
    try {
      // A peer-opened unidirectional stream is receive-only: there is nothing of ours to finish.
      if (this.bidi || this.local) {
        this.conn.core.finish(this.id);
        this.conn.touch();
      }
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _read(): void {
    this.reading = true;
    this.onReadable();
  }

  /** @internal */
  onReadable(): void {
    if (!this.reading || this.readEnded) return;
    for (;;) {
      let r: { data: Uint8Array; fin: boolean } | undefined;
      try {
        r = this.conn.core.read(now(), this.id);
      } catch {
        return;
      }
      if (!r) return;
      this.conn.touch();
      if (r.data.length > 0 && !this.push(Buffer.from(r.data.buffer, r.data.byteOffset, r.data.length))) {
        this.reading = false;
        if (r.fin) this.endRead();
        return;
      }
      if (r.fin) {
        this.endRead();
        return;
      }
    }
  }

  private endRead(): void {
    if (this.readEnded) return;
    this.readEnded = true;
    this.push(null);
  }

  /** @internal */
  onWritable(): void {
    this.flushWrite();
  }

  /** @internal */
  onReset(errorCode: number): void {
    this.destroy(new StreamResetError(this.id, errorCode));
  }

  /** @internal */
  onStopSending(errorCode: number): void {
    this.emit("stopSending", errorCode);
    const p = this.pendingWrite;
    this.pendingWrite = undefined;
    p?.cb(new StreamResetError(this.id, errorCode));
  }

  /** @internal */
  onConnectionClosed(err: Error | undefined): void {
    if (this.destroyed || (this.readEnded && this.writableFinished)) return;
    if (!this.readEnded) {
      // What already arrived stays readable, also on a stream the application has not started
      // reading yet (a PUBLISH sent on a fresh stream just before DISCONNECT and the close), as
      // a TCP socket delivers what it received before the peer's FIN. After it, the stream ends:
      // quietly on a graceful close (ours, or the peer's application code 0), else with `err`.
      this.drainOnClose();
      this.endRead();
      if (this.readableLength > 0) {
        this.once("end", () => this.destroy(err));
        return;
      }
    }
    this.destroy(err);
  }

  /** Moves everything the connection still holds for this stream into the readable buffer. */
  private drainOnClose(): void {
    for (;;) {
      let r: { data: Uint8Array; fin: boolean } | undefined;
      try {
        r = this.conn.core.read(now(), this.id);
      } catch {
        return; // a send-only stream, or nothing left
      }
      if (!r) return;
      if (r.data.length > 0) this.push(Buffer.from(r.data.buffer, r.data.byteOffset, r.data.length));
      if (r.fin) return;
    }
  }

  /** Abruptly ends our sending direction (RESET_STREAM) with an application error code. */
  reset(code = 0): void {
    this.conn.core.resetStream(this.id, code);
    this.conn.touch();
  }

  /** Asks the peer to stop sending (STOP_SENDING) with an application error code. */
  stopSending(code = 0): void {
    this.conn.core.stopSending(this.id, code);
    this.conn.touch();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.conn.core.isClosing) {
      try {
        if (!this.writableFinished && (this.bidi || this.local)) this.conn.core.resetStream(this.id, 0);
        if (!this.readEnded && (this.bidi || !this.local)) this.conn.core.stopSending(this.id, 0);
        this.conn.touch();
      } catch {
        // the stream is already gone
      }
    }
    cb(err);
  }
}
