/** Test harness: certificates and an in-memory client/server handshake driver. */

import { nobleProvider } from "../../src/crypto/noble.js";
import type { CryptoProvider } from "../../src/crypto/provider.js";
import { SeededRng } from "../../src/crypto/random.js";
import {
  type CertKeyType,
  type GeneratedCertificate,
  generateTestCA,
  issueLeaf,
} from "../../src/tls/certgen.js";
import { TlsClient, type TlsClientConfig } from "../../src/tls/client.js";
import type { EncryptionLevel, TlsEvent, TlsOutput } from "../../src/tls/handshake-common.js";
import { TlsServer, type TlsServerConfig } from "../../src/tls/server.js";
import { createPeerVerifier } from "../../src/tls/verify.js";

/** The fixed clock of the tests: 2026-01-01. */
export const NOW = Date.UTC(2026, 0, 1);

/** A test CA and a leaf for "localhost" of each key type, made once. */
export interface TestPki {
  readonly ca: GeneratedCertificate;
  readonly leaf: GeneratedCertificate;
}

const pkiCache = new Map<CertKeyType, TestPki>();

/** A CA and a leaf with a key of `keyType`, signed with noble (deterministic seed). */
export function testPki(keyType: CertKeyType): TestPki {
  let pki = pkiCache.get(keyType);
  if (!pki) {
    const ctx = {
      provider: nobleProvider,
      rng: new SeededRng(keyType === "ed25519" ? 25519 : 256),
      now: NOW,
    };
    const ca = generateTestCA({ ...ctx, commonName: "mquictt test CA", keyType });
    const leaf = issueLeaf(ca, { ...ctx, commonName: "localhost", dns: ["localhost"], keyType });
    pki = { ca, leaf };
    pkiCache.set(keyType, pki);
  }
  return pki;
}

/** Options of {@link makePair}. */
export interface PairOptions {
  readonly keyType?: CertKeyType;
  readonly client?: Partial<TlsClientConfig>;
  readonly server?: Partial<TlsServerConfig>;
  readonly seed?: number;
}

/** A client and server configured for each other (QUIC mode, ALPN "mqtt", verified chain). */
export function makePair(
  provider: CryptoProvider,
  opts: PairOptions = {},
): { client: TlsClient; server: TlsServer } {
  const pki = testPki(opts.keyType ?? "ecdsa-p256");
  const seed = opts.seed ?? 1;
  const client = new TlsClient({
    provider,
    rng: new SeededRng(seed),
    serverName: "localhost",
    alpn: ["mqtt"],
    transportParameters: new Uint8Array([0x01, 0x02, 0x03]),
    verifier: createPeerVerifier({ roots: [pki.ca.der], now: () => NOW, provider }),
    ...opts.client,
  });
  const server = new TlsServer({
    provider,
    rng: new SeededRng(seed + 1000),
    certificateChain: [pki.leaf.der, pki.ca.der],
    privateKey: pki.leaf.key,
    alpn: ["mqtt"],
    transportParameters: new Uint8Array([0x0a, 0x0b]),
    ...opts.server,
  });
  return { client, server };
}

/** Everything a driven handshake produced. */
export interface HandshakeRun {
  readonly clientEvents: TlsEvent[];
  readonly serverEvents: TlsEvent[];
  /** Every chunk sent, in order, per sender. */
  readonly clientSent: TlsOutput[];
  readonly serverSent: TlsOutput[];
}

/** Options of {@link runHandshake}. */
export interface RunOptions {
  /** Deliver input in pieces of at most this many bytes (default: whole chunks). */
  readonly fragment?: number;
  /** Rewrites (or drops, by returning undefined) a chunk in flight. */
  readonly tamper?: (from: "client" | "server", out: TlsOutput) => Uint8Array | undefined;
  /** Clock value passed to every call. */
  readonly now?: number;
}

function deliver(
  to: TlsClient | TlsServer,
  level: EncryptionLevel,
  data: Uint8Array,
  fragment: number | undefined,
  now: number,
): void {
  if (!fragment) {
    to.receive(level, data, now);
    return;
  }
  for (let i = 0; i < data.length; i += fragment) to.receive(level, data.subarray(i, i + fragment), now);
}

/** Starts the client and shuttles bytes both ways until neither side has anything to send. */
export function runHandshake(client: TlsClient, server: TlsServer, opts: RunOptions = {}): HandshakeRun {
  const now = opts.now ?? NOW;
  const run: HandshakeRun = { clientEvents: [], serverEvents: [], clientSent: [], serverSent: [] };
  const collect = (): void => {
    for (let e = client.pollEvent(); e; e = client.pollEvent()) run.clientEvents.push(e);
    for (let e = server.pollEvent(); e; e = server.pollEvent()) run.serverEvents.push(e);
  };
  client.start(now);
  for (let progress = true; progress; ) {
    progress = false;
    collect();
    for (let out = client.pollOutput(); out; out = client.pollOutput()) {
      progress = true;
      run.clientSent.push(out);
      const data = opts.tamper ? opts.tamper("client", out) : out.data;
      if (data) deliver(server, out.level, data, opts.fragment, now);
      collect();
    }
    for (let out = server.pollOutput(); out; out = server.pollOutput()) {
      progress = true;
      run.serverSent.push(out);
      const data = opts.tamper ? opts.tamper("server", out) : out.data;
      if (data) deliver(client, out.level, data, opts.fragment, now);
      collect();
    }
  }
  collect();
  return run;
}

/** The secret events of a run as "level/direction" → hex. */
export function secretsOf(events: readonly TlsEvent[]): Map<string, Uint8Array> {
  const m = new Map<string, Uint8Array>();
  for (const e of events) if (e.type === "secret") m.set(`${e.level}/${e.direction}`, e.secret);
  return m;
}
