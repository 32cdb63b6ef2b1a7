/**
 * Network connections for the client: QUIC (`mqtt+quic://`, ALPN "mqtt"), TCP (`mqtt://`) and
 * TLS over TCP (`mqtts://`), behind one small interface. This is the only client file that
 * touches sockets; everything above it sees byte streams.
 */
import { createHash } from "node:crypto";
import { lookup } from "node:dns/promises";
import { once } from "node:events";
import { isIP, connect as netConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import { type QuicConnectOptions, QuicEndpoint, type QuicStream } from "../../net/quic.js";
import type { CloseInfo } from "../../quic/connection.js";
import type { SessionTicket } from "../../tls/handshake-common.js";
import { MqttConnectionError } from "./errors.js";
import type { BrokerAddress } from "./url.js";

/** ALPN of MQTT over QUIC (EMQX-style bidi data streams). */
export const ALPN_MQTT = "mqtt";
/**
 * ALPN of the mqtt.ai "simple multistreams" dialect (the Rust `mqtt5` crate): client data on uni
 * streams with flow headers, deliveries on server-opened streams.
 */
export const ALPN_MQTT_NEXT = "MQTT-next";

/** A network connection to a broker as the client uses it. */
export interface ClientTransport {
  /** What it runs on. */
  readonly kind: string;
  /** The ALPN protocol the broker chose (QUIC), e.g. "mqtt" or "MQTT-next". */
  readonly alpn?: string;
  /** The first stream (QUIC: the first client-opened bidi stream; TCP: the socket). */
  readonly control: Duplex;
  /** Whether `openStream` can open more streams (QUIC); TCP has only the control stream. */
  readonly multiStream: boolean;
  /** Opens a client bidi data stream. */
  openStream(): Promise<Duplex>;
  /** Opens a client unidirectional (write-only) data stream, where the transport has them (QUIC). */
  openUniStream?(): Promise<Duplex>;
  /** Registers the handler of server-opened streams (QUIC). */
  onServerStream(listener: (stream: Duplex, bidi: boolean) => void): void;
  /**
   * Registers the handler of QUIC DATAGRAM frames (RFC 9221), which some brokers use for QoS 0
   * PUBLISH when both sides advertise max_datagram_frame_size (`quic.transport`).
   */
  onDatagram?(listener: (data: Uint8Array) => void): void;
  /** Registers the handler called once when the connection is gone (`err` when it failed). */
  onClose(listener: (err: Error | undefined) => void): void;
  /**
   * Ends the connection after what was written: FIN on the control stream, then (QUIC) waiting up
   * to `graceMs` for the broker to close before closing ourselves.
   */
  close(graceMs: number): Promise<void>;
  /** Drops the connection now (a lost network, a keepalive timeout). */
  destroy(err?: Error): void;
  /** QUIC: moves the connection to a new local UDP socket (see `MqttClient.migrate`). */
  migrate?(opts: MigrateOptions): Promise<void>;
}

/** Where `MqttClient.migrate` moves the connection. */
export interface MigrateOptions {
  /** Local address to send from (e.g. the new network interface's); default: any. */
  host?: string;
  /** Local UDP port; default: a new ephemeral one. */
  port?: number;
}

/** Builds a transport to a broker; inject one (`ConnectOptions.dial`) to test without sockets. */
export type Dialer = (address: BrokerAddress, opts: DialOptions) => Promise<ClientTransport>;

/** TLS and QUIC settings passed to the dialer. */
export interface DialOptions {
  /** Trusted CA certificates (PEM text, or DER list for QUIC). Default: the system roots. */
  ca?: string | Uint8Array[];
  /** Skip certificate verification (tests only; never the default). */
  insecure?: boolean;
  /** Name for SNI and certificate verification (default: the URL's host). */
  serverName?: string;
  /** Client certificate and key, PEM (mqtts:// only). */
  cert?: string;
  key?: string;
  /** ALPN protocols to offer over QUIC, in our order of preference (default ["mqtt"]). */
  alpn?: string[];
  /** Extra QUIC settings (crypto provider, transport parameters, keylog...). */
  quic?: Partial<Omit<QuicConnectOptions, "alpn" | "ca" | "insecure" | "serverName">>;
  /** Give up on the network handshake after this many ms. */
  timeout: number;
}

/** The default dialer: picks QUIC, TCP or TLS from the URL. */
export const defaultDialer: Dialer = (address, opts) => {
  switch (address.kind) {
    case "quic":
      return dialQuic(address, opts);
    case "tls":
      return dialTls(address, opts);
    default:
      return dialTcp(address, opts);
  }
};

/** Most brokers whose latest session ticket is kept (least recently used forgotten first). */
const TICKET_CACHE_SIZE = 256;

/**
 * The latest session ticket per broker (server name, address, ALPN list) and trust settings in
 * this process, so that every reconnect resumes the TLS session: the broker skips its certificate
 * chain and signature. A resumed session is authenticated by the certificate check of the session
 * that issued the ticket, so a ticket is only reused under the same trust settings (CA, insecure).
 * Tickets are secrets; they never leave the process.
 */
const ticketCache = new Map<string, SessionTicket>();

/** Names the certificate trust of a connection: who vouched for the broker of a ticket. */
function trustKey(opts: DialOptions): string | undefined {
  if (opts.insecure) return "insecure";
  if (opts.quic?.verifier) return undefined; // a custom check we cannot compare: no cache
  if (opts.ca === undefined) return "system-roots";
  const h = createHash("sha256");
  for (const c of typeof opts.ca === "string" ? [opts.ca] : opts.ca) h.update(c);
  return h.digest("hex");
}

function rememberTicket(key: string, ticket: SessionTicket): void {
  ticketCache.delete(key);
  ticketCache.set(key, ticket);
  if (ticketCache.size > TICKET_CACHE_SIZE) ticketCache.delete(ticketCache.keys().next().value as string);
}

/**
 * QUIC: one client endpoint per connection, ALPN "mqtt" (or `opts.alpn`), the first bidi stream
 * as control stream. A ticket from an earlier connection to the same broker is offered for
 * resumption (`opts.quic.sessionTicket` overrides it, and `sessionTicket: undefined` given
 * explicitly asks for a full handshake); with `opts.quic.earlyData` the CONNECT
 * and what follows it go out in 0-RTT when the ticket allows.
 */
export async function dialQuic(address: BrokerAddress, opts: DialOptions): Promise<ClientTransport> {
  let host = address.host;
  if (isIP(host) === 0) {
    try {
      host = (await lookup(host)).address;
    } catch (e) {
      throw new MqttConnectionError(`cannot resolve ${address.host}: ${(e as Error).message}`, { cause: e });
    }
  }
  const endpoint = await QuicEndpoint.open({
    host: isIP(host) === 6 ? "::" : "0.0.0.0",
    ...(opts.quic?.crypto ? { crypto: opts.quic.crypto } : {}),
    ...(opts.quic?.rng ? { rng: opts.quic.rng } : {}),
  });
  const alpn = opts.alpn ?? [ALPN_MQTT];
  const serverName = opts.serverName ?? address.host;
  const trust = trustKey(opts);
  const ticketKey =
    trust === undefined ? undefined : `${serverName}|${host}:${address.port}|${alpn.join(",")}|${trust}`;
  try {
    const conn = await endpoint.connect(host, address.port, {
      ...opts.quic,
      sessionTicket:
        opts.quic && "sessionTicket" in opts.quic
          ? opts.quic.sessionTicket
          : ticketKey
            ? ticketCache.get(ticketKey)
            : undefined,
      alpn,
      serverName,
      handshakeTimeout: opts.quic?.handshakeTimeout ?? opts.timeout,
      ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
      ...(opts.insecure ? { insecure: true } : {}),
    });
    if (ticketKey) {
      if (conn.sessionTicket) rememberTicket(ticketKey, conn.sessionTicket);
      conn.on("sessionTicket", (t: SessionTicket) => rememberTicket(ticketKey, t));
    }
    const control = await conn.openStream({ bidi: true });
    let closeListener: ((err: Error | undefined) => void) | undefined;
    let closed: Error | undefined | null = null;
    const closeEndpoint = () => {
      endpoint.close().catch(() => {});
    };
    conn.once("close", (info: CloseInfo) => {
      const normal = info.application && info.errorCode === 0;
      closed = normal
        ? undefined
        : new MqttConnectionError(
            `QUIC connection closed (${info.initiator === "local" ? "by us" : info.initiator === "remote" ? "by the broker" : info.initiator}): ${info.reason || `error 0x${info.errorCode.toString(16)}`}`,
          );
      closeListener?.(closed);
      closeEndpoint();
    });
    return {
      kind: "quic",
      ...(conn.alpn !== undefined ? { alpn: conn.alpn } : {}),
      control,
      multiStream: true,
      openStream: () => conn.openStream({ bidi: true }),
      openUniStream: () => conn.openStream({ bidi: false }),
      onServerStream(listener) {
        conn.on("stream", (s: QuicStream) => listener(s, s.bidi));
      },
      onDatagram(listener) {
        conn.on("datagram", (d: Uint8Array) => listener(d));
      },
      onClose(listener) {
        if (closed !== null) queueMicrotask(() => listener(closed ?? undefined));
        else closeListener = listener;
      },
      async close(graceMs) {
        if (closed !== null) return;
        control.end();
        const t = setTimeout(() => void conn.close(0, "").catch(() => {}), graceMs);
        await conn.closed();
        clearTimeout(t);
      },
      destroy(err) {
        if (closed !== null) return;
        void conn.close(1, err?.message ?? "").catch(() => {});
      },
      migrate: (o) => endpoint.rebind(o),
    };
  } catch (e) {
    await endpoint.close().catch(() => {});
    throw e;
  }
}

function socketTransport(kind: string, socket: Socket): ClientTransport {
  let closeListener: ((err: Error | undefined) => void) | undefined;
  let closed: Error | undefined | null = null;
  let lastError: Error | undefined;
  socket.on("error", (e) => {
    lastError = e;
  });
  socket.once("close", () => {
    closed = lastError
      ? new MqttConnectionError(`${kind.toUpperCase()} connection failed: ${lastError.message}`, {
          cause: lastError,
        })
      : undefined;
    closeListener?.(closed);
  });
  return {
    kind,
    control: socket,
    multiStream: false,
    openStream: () => Promise.reject(new MqttConnectionError(`${kind} has a single stream`)),
    onServerStream() {},
    onClose(listener) {
      if (closed !== null) queueMicrotask(() => listener(closed ?? undefined));
      else closeListener = listener;
    },
    async close(graceMs) {
      if (closed !== null || socket.destroyed) return;
      const done = once(socket, "close");
      socket.end();
      const t = setTimeout(() => socket.destroy(), graceMs);
      await done;
      clearTimeout(t);
    },
    destroy(err) {
      if (err) lastError = err;
      socket.destroy();
    },
  };
}

async function connected(socket: Socket, event: string, what: string, timeout: number): Promise<void> {
  const t = setTimeout(() => socket.destroy(new Error(`no connection within ${timeout} ms`)), timeout);
  try {
    await once(socket, event);
  } catch (e) {
    throw new MqttConnectionError(`cannot connect to ${what}: ${(e as Error).message}`, { cause: e });
  } finally {
    clearTimeout(t);
  }
}

/** Plain TCP (`mqtt://`). */
export async function dialTcp(address: BrokerAddress, opts: DialOptions): Promise<ClientTransport> {
  const socket = netConnect({ host: address.host, port: address.port });
  socket.setNoDelay(true);
  await connected(socket, "connect", `${address.host}:${address.port}`, opts.timeout);
  return socketTransport("tcp", socket);
}

/** TLS over TCP (`mqtts://`). */
export async function dialTls(address: BrokerAddress, opts: DialOptions): Promise<ClientTransport> {
  const ca = typeof opts.ca === "string" ? opts.ca : opts.ca?.map((d) => derToPem(d));
  const socket = tlsConnect({
    host: address.host,
    port: address.port,
    servername: opts.serverName ?? (isIP(address.host) ? undefined : address.host),
    rejectUnauthorized: !opts.insecure,
    ALPNProtocols: ["mqtt"],
    ...(ca ? { ca } : {}),
    ...(opts.cert ? { cert: opts.cert } : {}),
    ...(opts.key ? { key: opts.key } : {}),
  });
  socket.setNoDelay(true);
  await connected(socket, "secureConnect", `${address.host}:${address.port} (TLS)`, opts.timeout);
  return socketTransport("tls", socket);
}

function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64");
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/(.{64})/g, "$1\n")}\n-----END CERTIFICATE-----\n`;
}
