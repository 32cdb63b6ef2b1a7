/**
 * Test harness: two sans-IO endpoints (client and server) on the simulated network, with a
 * test CA and a server certificate, and helpers to run streams to completion.
 */
import type { CryptoProvider } from "../../src/crypto/provider.js";
import { SeededRng } from "../../src/crypto/random.js";
import type { FaultInjection, TransportSettings } from "../../src/quic/config.js";
import type { Connection, ConnectionEvent } from "../../src/quic/connection.js";
import { Endpoint } from "../../src/quic/endpoint.js";
import { generateTestCA, issueLeaf } from "../../src/tls/certgen.js";
import type { SessionTicket } from "../../src/tls/handshake-common.js";
import { createPeerVerifier } from "../../src/tls/verify.js";
import { type LinkConfig, SimNetwork } from "../sim/network.js";

const certCache = new Map<CryptoProvider, ReturnType<typeof makeCerts>>();

function makeCerts(provider: CryptoProvider) {
  const rng = new SeededRng(1234);
  const now = Date.UTC(2026, 0, 1);
  const ca = generateTestCA({ provider, rng, now, commonName: "mquictt test CA" });
  const leaf = issueLeaf(ca, {
    provider,
    rng,
    now,
    commonName: "localhost",
    dns: ["localhost"],
    ips: ["127.0.0.1"],
  });
  return { ca, leaf, now };
}

/** A cached test CA and leaf for `provider`. */
export function testCerts(provider: CryptoProvider) {
  let c = certCache.get(provider);
  if (!c) {
    c = makeCerts(provider);
    certCache.set(provider, c);
  }
  return c;
}

export interface PairOptions {
  seed?: number;
  link?: Partial<LinkConfig>;
  transport?: Partial<TransportSettings>;
  clientTransport?: Partial<TransportSettings>;
  serverTransport?: Partial<TransportSettings>;
  alpn?: string[];
  serverAlpn?: string[];
  retry?: boolean;
  /** The server endpoint's static key (stateless reset and Retry tokens); random by default. */
  staticKey?: Uint8Array;
  /** Test seam of the server's connections (targeted packet loss). */
  serverFaultInjection?: FaultInjection;
  /** A ticket the client offers for resumption. */
  sessionTicket?: SessionTicket;
  /** Virtual time at which the client connects (default 0). */
  startAt?: number;
  /** 0-RTT on the client (with `sessionTicket`) and on the server. */
  earlyData?: boolean;
  serverEarlyData?: boolean;
  /** Called with the client connection right after connect, before anything is sent. */
  beforeStart?: (client: Connection) => void;
}

/** Client and server endpoints joined by a simulated link. */
export class Pair {
  readonly net: SimNetwork;
  readonly client: Endpoint;
  readonly server: Endpoint;
  clientConn!: Connection;
  serverConn: Connection | undefined;
  readonly clientEvents: ConnectionEvent[] = [];
  readonly serverEvents: ConnectionEvent[] = [];
  /** Virtual time of the client's connect. */
  readonly startedAt: number;

  constructor(
    readonly provider: CryptoProvider,
    opts: PairOptions = {},
  ) {
    const seed = opts.seed ?? 1;
    this.net = new SimNetwork(seed);
    const { leaf, ca, now } = testCerts(provider);
    this.server = new Endpoint({
      provider,
      rng: new SeededRng(seed * 7 + 1),
      server: {
        alpn: opts.serverAlpn ?? opts.alpn ?? ["test"],
        certificateChain: [leaf.der],
        privateKey: leaf.key,
        transport: { ...opts.transport, ...opts.serverTransport },
        retry: opts.retry,
        faultInjection: opts.serverFaultInjection,
        earlyData: opts.serverEarlyData,
      },
      staticKey: opts.staticKey,
    });
    this.client = new Endpoint({ provider, rng: new SeededRng(seed * 7 + 2) });
    const verifier = createPeerVerifier({ roots: [ca.der], now: () => now + 1000, provider });
    const wrap = (address: string, ep: Endpoint, events: ConnectionEvent[], isServer: boolean) => ({
      address,
      receive: (t: number, from: string, d: Uint8Array) => {
        ep.receive(t, from, d);
        this.drain(ep, events, isServer);
      },
      pollTransmit: (t: number) => ep.pollTransmit(t),
      pollTimeout: () => ep.pollTimeout(),
      handleTimeout: (t: number) => {
        ep.handleTimeout(t);
        this.drain(ep, events, isServer);
      },
    });
    this.net.add(wrap("client", this.client, this.clientEvents, false));
    this.net.add(wrap("server", this.server, this.serverEvents, true));
    if (opts.link) this.net.setLink("client", "server", opts.link);
    this.startedAt = opts.startAt ?? 0;
    this.net.now = this.startedAt;
    this.clientConn = this.client.connect(this.net.now, "server", {
      alpn: opts.alpn ?? ["test"],
      serverName: "localhost",
      verifier,
      transport: { ...opts.transport, ...opts.clientTransport },
      sessionTicket: opts.sessionTicket,
      earlyData: opts.earlyData,
    });
    opts.beforeStart?.(this.clientConn);
  }

  private drain(ep: Endpoint, events: ConnectionEvent[], isServer: boolean): void {
    for (let e = ep.pollEvent(); e; e = ep.pollEvent()) if (isServer) this.serverConn ??= e.connection;
    for (const c of ep.takeActive()) for (let ev = c.pollEvent(); ev; ev = c.pollEvent()) events.push(ev);
  }

  /** Lets the app touch a connection after an API call so the endpoint polls it. */
  touch(conn: Connection): void {
    (conn === this.clientConn ? this.client : this.server).touch(conn);
  }

  /** Runs the network until the handshake is confirmed on both sides (at most `deadline` ms from the start). */
  handshake(deadline = 10_000): boolean {
    return this.net.run(
      () =>
        this.clientEvents.some((e) => e.type === "handshake_confirmed") &&
        this.serverEvents.some((e) => e.type === "handshake_confirmed"),
      this.startedAt + deadline,
    );
  }

  run(done: () => boolean, deadline = 60_000): boolean {
    return this.net.run(done, this.net.now + deadline);
  }
}

/** Reads everything readable from a stream. */
export function readAll(
  conn: Connection,
  now: number,
  streamId: number,
): { bytes: Uint8Array[]; fin: boolean } {
  const bytes: Uint8Array[] = [];
  let fin = false;
  for (;;) {
    const r = conn.read(now, streamId);
    if (!r) break;
    if (r.data.length) bytes.push(r.data);
    if (r.fin) {
      fin = true;
      break;
    }
  }
  return { bytes, fin };
}
