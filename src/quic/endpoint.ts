/**
 * A QUIC endpoint, sans-IO: one UDP socket's worth of connections, routed by connection ID
 * (RFC 9000 §5.2), plus what an endpoint answers without a connection: Version Negotiation
 * (§6), Retry (§8.1.2) and stateless resets (§10.3).
 *
 * Driven like a connection: `receive(now, from, datagram)`, `pollTransmit(now)` until undefined,
 * `pollTimeout()` / `handleTimeout(now)`, and `pollEvent()` for accepted connections. Addresses
 * are opaque strings chosen by the owner (the UDP driver uses "host:port").
 */
import type { Aead, CryptoProvider, Rng } from "../crypto/provider.js";
import { TicketKeys } from "../tls/ticket.js";
import { bytesEqual, Reader, Writer } from "../util/bytes.js";
import type { ConnectionConfig } from "./config.js";
import { Connection } from "./connection.js";
import { DeadlineHeap } from "./deadline-heap.js";
import {
  buildRetry,
  buildVersionNegotiation,
  type LongHeader,
  PacketDecodeError,
  parsePacketHeader,
} from "./packet.js";
import { isSupportedVersion, SUPPORTED_VERSIONS } from "./version.js";

/** Server side of an endpoint: accepts connections with this configuration. */
export interface ServerConfig extends Omit<ConnectionConfig, "provider" | "rng"> {
  /** Validate client addresses with a Retry round trip before creating state (RFC 9000 §8.1.2). */
  retry?: boolean;
  /** Refuse new connections beyond this many (CONNECTION_REFUSED). Default 10,000. */
  maxConnections?: number;
}

/** Endpoint configuration. */
export interface EndpointConfig {
  provider: CryptoProvider;
  rng: Rng;
  /** When set, the endpoint accepts incoming connections. */
  server?: ServerConfig;
  /** Length of the connection IDs we issue (default 8). */
  cidLength?: number;
  /** Static key for stateless reset tokens and Retry tokens (32 random bytes by default). */
  staticKey?: Uint8Array;
  /**
   * The owner's knowledge of a path: the largest UDP payload worth probing towards `remote`
   * (e.g. the UDP driver's larger size on loopback), or undefined for the default. It applies
   * to connections whose `transport.maxUdpPayloadSize` is not set explicitly.
   */
  pathMaxUdpPayloadSize?: (remote: string) => number | undefined;
}

/** What an endpoint reports. */
export type EndpointEvent = { type: "accepted"; connection: Connection };

/**
 * The `routes` key of a connection ID: one UTF-16 code unit per byte. Cheaper than hex (no
 * Buffer object and no native call per datagram) and as unambiguous: CIDs are at most 20 bytes
 * (RFC 9000 §17.2), so equal keys mean equal bytes.
 */
function cidKey(cid: Uint8Array): string {
  let key = "";
  for (let i = 0; i < cid.length; i++) key += String.fromCharCode(cid[i]);
  return key;
}

/** Lifetime of a Retry token (ms). */
const RETRY_TOKEN_LIFETIME = 10_000;

/** A sans-IO QUIC endpoint. */
export class Endpoint {
  private readonly config: EndpointConfig;
  private readonly cidLength: number;
  private readonly staticKey: Uint8Array;
  private readonly routes = new Map<string, Connection>();
  /** Each connection's keys in `routes`: a few (at most MAX_ISSUED_CIDS + 1), so an array, not a Set. */
  private readonly routeKeys = new Map<Connection, string[]>();
  /** The last successful route lookup (see `route`); cleared whenever `routes` changes. */
  private lastRoute: { cid: Uint8Array; conn: Connection } | undefined;
  /** Every live connection. */
  readonly connections = new Set<Connection>();
  /** Connections that may have something to send. */
  private readonly active = new Set<Connection>();
  /** Connections that may have events to report (drained by `takeActive`). */
  private readonly touched = new Set<Connection>();
  /**
   * Every connection's next timer. It is refreshed whenever the endpoint calls into a connection
   * or the application touches it, so finding the next timer never scans all connections.
   */
  private readonly timers = new DeadlineHeap<Connection>();
  private readonly stateless: { to: string; data: Uint8Array }[] = [];
  private readonly events: EndpointEvent[] = [];
  private tokenAeadValue: Aead | undefined;
  /** One session-ticket key for every connection of this endpoint (RFC 8446 §4.6.1). */
  private ticketKeysValue: TicketKeys | undefined;
  /** See `serverConnectionConfig`. */
  private serverConfig: { from: ServerConfig; byPathMax: Map<number, ConnectionConfig> } | undefined;
  /** Stateless reset tokens of our connection IDs, one function for all connections. */
  private readonly resetTokenFor = (cid: Uint8Array): Uint8Array => this.resetToken(cid);

  constructor(config: EndpointConfig) {
    this.config = config;
    this.cidLength = config.cidLength ?? config.server?.transport?.cidLength ?? 8;
    if (this.cidLength < 4 && config.server) {
      throw new RangeError("a server endpoint needs connection IDs of at least 4 bytes to route packets");
    }
    this.staticKey = config.staticKey ?? config.rng.fill(new Uint8Array(32));
  }

  /** Retry token key, derived on first use: a client endpoint (one per dial) never needs it. */
  private get tokenAead(): Aead {
    this.tokenAeadValue ??= this.config.provider.aead(
      "aes-256-gcm",
      this.config.provider.hkdfExpand(
        "sha256",
        this.staticKey,
        new TextEncoder().encode("mquictt retry token"),
        32,
      ),
    );
    return this.tokenAeadValue;
  }

  /** Session ticket keys, derived on first use (servers only). */
  private get ticketKeys(): TicketKeys {
    this.ticketKeysValue ??= new TicketKeys(
      this.config.provider,
      this.config.provider.hkdfExpand(
        "sha256",
        this.staticKey,
        new TextEncoder().encode("mquictt ticket key"),
        32,
      ),
    );
    return this.ticketKeysValue;
  }

  /** Opens a client connection to `remote`. */
  connect(now: number, remote: string, config: Omit<ConnectionConfig, "provider" | "rng">): Connection {
    const conn = Connection.client(
      {
        ...config,
        provider: this.config.provider,
        rng: this.config.rng,
        transport: this.transportFor(remote, config.transport),
      },
      remote,
      now,
    );
    this.adopt(conn);
    return conn;
  }

  /** A new connection's transport settings: the configured ones, the path's size, our CID length. */
  private transportFor(remote: string, t: ConnectionConfig["transport"]): ConnectionConfig["transport"] {
    const pathMax =
      t?.maxUdpPayloadSize === undefined ? this.config.pathMaxUdpPayloadSize?.(remote) : undefined;
    return {
      ...t,
      ...(pathMax === undefined ? {} : { maxUdpPayloadSize: pathMax }),
      cidLength: this.cidLength,
    };
  }

  /** Marks a connection as having application work (after `write`, `close`, ...). */
  touch(conn: Connection): void {
    if (!this.connections.has(conn)) return;
    this.active.add(conn);
    this.touched.add(conn);
    this.timers.schedule(conn, conn.pollTimeout());
  }

  /** Connections touched since the last call (drain their events with `pollEvent`). */
  takeActive(): Connection[] {
    const out = [...this.touched];
    this.touched.clear();
    return out;
  }

  /** Processes a datagram from `from`. Never throws for bad input. */
  receive(now: number, from: string, datagram: Uint8Array): void {
    if (datagram.length === 0) return;
    const dcid = this.dcidOf(datagram);
    if (dcid === undefined) return;
    const conn = this.route(dcid);
    if (conn) {
      // From another address: the connection decides (migration, path probes; RFC 9000 §9).
      conn.receive(now, datagram, from);
      this.afterConnection(conn);
      return;
    }
    if ((datagram[0] & 0x80) === 0) {
      // RFC 9000 §10.3.1: a short-header datagram we cannot route may be a stateless reset for
      // one of our connections to that peer (a reset's DCID is random): check their tokens.
      for (const c of this.connections) {
        if (c.remote === from && c.handleStatelessReset(now, datagram)) {
          this.afterConnection(c);
          return;
        }
      }
      this.maybeStatelessReset(from, dcid, datagram);
      return;
    }
    this.acceptInitial(now, from, datagram);
  }

  /**
   * The connection a DCID routes to. A bulk peer sends datagram after datagram to the same CID,
   * so the last hit is remembered and compared byte for byte before the map is consulted (a
   * map key costs a string built from the bytes). Any change to the routes forgets it.
   */
  private route(dcid: Uint8Array): Connection | undefined {
    const last = this.lastRoute;
    if (last !== undefined && bytesEqual(last.cid, dcid)) return last.conn;
    const conn = this.routes.get(cidKey(dcid));
    if (conn !== undefined) this.lastRoute = { cid: dcid.slice(), conn };
    return conn;
  }

  private dcidOf(datagram: Uint8Array): Uint8Array | undefined {
    if ((datagram[0] & 0x80) !== 0) {
      if (datagram.length < 6) return undefined;
      const len = datagram[5];
      if (datagram.length < 6 + len) return undefined;
      return datagram.subarray(6, 6 + len);
    }
    if (datagram.length < 1 + this.cidLength) return undefined;
    return datagram.subarray(1, 1 + this.cidLength);
  }

  private acceptInitial(now: number, from: string, datagram: Uint8Array): void {
    const server = this.config.server;
    if (!server) return;
    let header: ReturnType<typeof parsePacketHeader>;
    try {
      header = parsePacketHeader(datagram, this.cidLength);
    } catch (e) {
      if (e instanceof PacketDecodeError) return;
      throw e;
    }
    if (header.type === "unsupported-version") {
      // RFC 9000 §6.1: answer an unknown version with Version Negotiation, for datagrams big
      // enough to be a client's first Initial (§14.1).
      if (datagram.length >= 1200) {
        this.stateless.push({
          to: from,
          data: buildVersionNegotiation(header.scid, header.dcid, SUPPORTED_VERSIONS, this.config.rng),
        });
      }
      return;
    }
    if (header.type !== "initial" || !isSupportedVersion(header.version)) return;
    // RFC 9000 §14.1: a server discards an Initial in a datagram under 1200 bytes.
    if (datagram.length < 1200) return;
    // RFC 9000 §7.2: the client's first DCID is at least 8 bytes.
    if (header.dcid.length < 8) return;
    if (this.connections.size >= (server.maxConnections ?? 10_000)) return;

    let retry: { originalDcid: Uint8Array; retryScid: Uint8Array } | undefined;
    if (server.retry) {
      if (header.token.length === 0) {
        this.sendRetry(now, from, header);
        return;
      }
      const odcid = this.openRetryToken(now, from, header.token);
      if (!odcid) return; // RFC 9000 §8.1.3: an invalid token: drop (or INVALID_TOKEN); we drop.
      retry = { originalDcid: odcid, retryScid: header.dcid.slice() };
    }
    const scid = this.config.rng.fill(new Uint8Array(this.cidLength));
    const conn = Connection.server(
      this.serverConnectionConfig(server, from),
      from,
      now,
      header as LongHeader,
      scid,
      this.resetTokenFor,
      retry,
    );
    this.adopt(conn);
    // The client keeps sending to its original DCID until it sees our SCID.
    this.addRoute(conn, header.dcid);
    this.events.push({ type: "accepted", connection: conn });
    conn.receive(now, datagram);
    this.afterConnection(conn);
  }

  /**
   * The config of the connections we accept, derived once from `server` (per path datagram
   * ceiling) and shared by them (with the settings the connection resolves from it): a copy each
   * cost ~0.6 KB per connection.
   */
  private serverConnectionConfig(server: ServerConfig, from: string): ConnectionConfig {
    if (this.serverConfig?.from !== server) this.serverConfig = { from: server, byPathMax: new Map() };
    // One config per datagram-size ceiling of the path (loopback or not; see transportFor).
    const transport = this.transportFor(from, server.transport);
    const key = transport?.maxUdpPayloadSize ?? 0;
    let config = this.serverConfig.byPathMax.get(key);
    if (config === undefined) {
      config = {
        ...server,
        provider: this.config.provider,
        rng: this.config.rng,
        ticketKeys: this.ticketKeys,
        transport,
      };
      this.serverConfig.byPathMax.set(key, config);
    }
    return config;
  }

  private sendRetry(now: number, from: string, header: LongHeader): void {
    const retryScid = this.config.rng.fill(new Uint8Array(this.cidLength));
    const token = this.sealRetryToken(now, from, header.dcid);
    const data = buildRetry(this.config.provider, {
      version: header.version,
      dcid: header.scid,
      scid: retryScid,
      token,
      originalDcid: header.dcid,
    });
    this.stateless.push({ to: from, data });
  }

  /** A Retry token: AEAD-sealed (address, original DCID, time) under the static key. */
  private sealRetryToken(now: number, from: string, odcid: Uint8Array): Uint8Array {
    const nonce = this.config.rng.fill(new Uint8Array(12));
    const w = new Writer(64);
    w.u32(Math.floor(now / 0x100000000)).u32(now >>> 0);
    w.vec(1, odcid);
    const sealed = this.tokenAead.seal(nonce, new TextEncoder().encode(from), w.finish());
    const out = new Uint8Array(12 + sealed.length);
    out.set(nonce);
    out.set(sealed, 12);
    return out;
  }

  private openRetryToken(now: number, from: string, token: Uint8Array): Uint8Array | undefined {
    if (token.length < 12 + 16 + 9) return undefined;
    const plain = this.tokenAead.open(
      token.subarray(0, 12),
      new TextEncoder().encode(from),
      token.subarray(12),
    );
    if (!plain) return undefined;
    try {
      const r = new Reader(plain);
      const issued = r.u32() * 0x100000000 + r.u32();
      const odcid = r.vec(1).slice();
      if (now - issued > RETRY_TOKEN_LIFETIME || issued - now > 1000) return undefined;
      return odcid;
    } catch {
      return undefined;
    }
  }

  /** Stateless reset token for one of our CIDs: HMAC of the CID under the static key (RFC 9000 §10.3.2). */
  private resetToken(cid: Uint8Array): Uint8Array {
    return this.config.provider.hmac("sha256", this.staticKey, cid).subarray(0, 16);
  }

  private maybeStatelessReset(from: string, dcid: Uint8Array, datagram: Uint8Array): void {
    // RFC 9000 §10.3: smaller than what triggered it (no loops), at least 21 bytes... and
    // indistinguishable from a short-header packet.
    if (datagram.length < 43 || this.stateless.length > 64) return;
    const size = Math.min(datagram.length - 1, 64);
    const out = this.config.rng.fill(new Uint8Array(size));
    out[0] = 0x40 | (out[0] & 0x3f);
    out.set(this.resetToken(dcid), size - 16);
    this.stateless.push({ to: from, data: out });
  }

  private adopt(conn: Connection): void {
    this.connections.add(conn);
    this.touch(conn);
    this.syncRoutes(conn);
  }

  private addRoute(conn: Connection, cid: Uint8Array): void {
    if (cid.length === 0) return;
    const key = cidKey(cid);
    this.lastRoute = undefined;
    this.routes.set(key, conn);
    const keys = this.routeKeys.get(conn);
    if (!keys) this.routeKeys.set(conn, [key]);
    else if (!keys.includes(key)) keys.push(key);
  }

  private syncRoutes(conn: Connection): void {
    const { added, removed } = conn.localCids.drainChanges();
    for (const e of added) this.addRoute(conn, e.cid);
    if (removed.length > 0) this.lastRoute = undefined;
    for (const e of removed) {
      const key = cidKey(e.cid);
      if (this.routes.get(key) === conn) this.routes.delete(key);
      const keys = this.routeKeys.get(conn);
      const i = keys?.indexOf(key) ?? -1;
      if (keys && i >= 0) keys.splice(i, 1);
    }
  }

  private afterConnection(conn: Connection): void {
    this.touch(conn);
    this.syncRoutes(conn);
    if (conn.isDrained) this.forget(conn);
  }

  private forget(conn: Connection): void {
    this.lastRoute = undefined;
    for (const key of this.routeKeys.get(conn) ?? [])
      if (this.routes.get(key) === conn) this.routes.delete(key);
    this.routeKeys.delete(conn);
    this.connections.delete(conn);
    this.timers.remove(conn);
  }

  /** The next datagram to send, or undefined. */
  pollTransmit(now: number): { to: string; data: Uint8Array } | undefined {
    const s = this.stateless.shift();
    if (s) return s;
    for (const conn of this.active) {
      const data = conn.pollTransmit(now);
      this.timers.schedule(conn, conn.pollTimeout());
      if (data) {
        // Round robin: move it to the back (nothing to reorder for a single active connection).
        if (this.active.size > 1) {
          this.active.delete(conn);
          this.active.add(conn);
        }
        this.syncRoutes(conn);
        return { to: conn.transmitDestination, data };
      }
      this.active.delete(conn);
      this.syncRoutes(conn);
      if (conn.isDrained) this.forget(conn);
    }
    return undefined;
  }

  /** Earliest timer of any connection. */
  pollTimeout(): number | undefined {
    return this.timers.peek();
  }

  /** Fires every connection timer due at `now`. */
  handleTimeout(now: number): void {
    // Collect first: a connection whose timer stays due (a pacing timer cleared only when it
    // sends) is handled once per call, as before, not in a loop.
    const due: Connection[] = [];
    for (let conn = this.timers.popDue(now); conn; conn = this.timers.popDue(now)) due.push(conn);
    for (const conn of due) {
      conn.handleTimeout(now);
      this.touched.add(conn);
      this.active.add(conn);
      if (conn.isDrained) this.forget(conn);
      else this.timers.schedule(conn, conn.pollTimeout());
    }
  }

  /** The next endpoint event (accepted connections). */
  pollEvent(): EndpointEvent | undefined {
    return this.events.shift();
  }

  /** Closes every connection with an application code. */
  closeAll(now: number, errorCode = 0, reason = "endpoint closing"): void {
    for (const conn of this.connections) {
      conn.close(now, errorCode, reason);
      this.touch(conn);
    }
  }
}
