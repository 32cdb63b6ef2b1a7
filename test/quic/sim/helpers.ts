/**
 * Shared helpers of the simulated-network QUIC tests: deterministic payloads, a driver that
 * interleaves application work with the virtual network, and a bulk stream transfer that checks
 * the bytes with SHA-256.
 */
import { createHash } from "node:crypto";
import { nodeProvider } from "../../../src/crypto/node.js";
import { SeededRng } from "../../../src/crypto/random.js";
import type { CloseInfo, ConnectionEvent } from "../../../src/quic/connection.js";
import { Endpoint } from "../../../src/quic/endpoint.js";
import { splitCoalesced } from "../../../src/quic/packet.js";
import { type Pair, testCerts } from "../harness.js";

/** The crypto provider of the simulation tests (OpenSSL-backed: fast enough for 10 MB runs). */
export const provider = nodeProvider;

/** Deterministic pseudo-random bytes (xorshift32), so that payloads differ per seed. */
export function makeData(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, size >>> 2);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = i & 0xff;
  return out;
}

/** Hex SHA-256 of some bytes. */
export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Runs the network of `p`, calling `work()` whenever something happened; `work` performs
 * application calls and returns how many it made (the driver then polls both connections at
 * the same virtual time). `wakeAt` is a virtual time at which the application wants to run
 * even if the network is quiet (a timer of its own). Stops when `finished()` holds, the network
 * goes idle, or `deadline` ms of virtual time pass. Returns `finished()`.
 */
export function drive(
  p: Pair,
  work: () => number,
  finished: () => boolean,
  deadline = 120_000,
  wakeAt?: number,
): boolean {
  const end = p.net.now + deadline;
  for (;;) {
    if (finished()) return true;
    const stop = wakeAt !== undefined && p.net.now < wakeAt ? Math.min(end, wakeAt) : end;
    let acted = false;
    const ok = p.net.run(() => {
      if (work() > 0) {
        acted = true;
        p.touch(p.clientConn);
        if (p.serverConn) p.touch(p.serverConn);
        return true;
      }
      return finished();
    }, stop);
    if (acted) continue;
    if (ok || finished()) return true;
    if (stop >= end) return false;
    p.net.now = Math.max(p.net.now, stop);
  }
}

/** The `closed` event's info among `events`, if any. */
export function closedInfo(events: readonly ConnectionEvent[]): CloseInfo | undefined {
  for (const e of events) if (e.type === "closed") return e.info;
  return undefined;
}

/** Options of {@link Transfer}. */
export interface TransferOptions {
  /** Receiver does not read before this virtual time (ms). */
  readFrom?: number;
  /** Called after every driver step (for invariants). */
  onStep?: () => void;
}

/**
 * One client-to-server bidirectional stream carrying `data`, with FIN. The client writes as
 * much as the stream accepts at every step; the server reads everything readable and hashes it.
 */
export class Transfer {
  readonly streamId: number;
  written = 0;
  received = 0;
  fin = false;
  finAt: number | undefined;
  private readonly hash = createHash("sha256");
  private digest: string | undefined;
  private finished = false;
  private opened = false;

  constructor(
    readonly p: Pair,
    readonly data: Uint8Array,
    readonly opts: TransferOptions = {},
  ) {
    const id = p.clientConn.openStream(true);
    if (id === undefined) throw new Error("no stream credit");
    this.streamId = id;
  }

  /** One step of application work; returns the number of calls that made progress. */
  step(): number {
    let n = 0;
    const c = this.p.clientConn;
    if (!c.isClosing && this.written < this.data.length) {
      const w = c.write(this.streamId, this.data.subarray(this.written));
      this.written += w;
      if (w > 0) n++;
    }
    if (!c.isClosing && this.written === this.data.length && !this.finished) {
      c.finish(this.streamId);
      this.finished = true;
      n++;
    }
    const s = this.p.serverConn;
    if (!this.opened)
      this.opened = this.p.serverEvents.some(
        (e) => e.type === "stream_opened" && e.streamId === this.streamId,
      );
    if (
      s &&
      this.opened &&
      !this.fin &&
      (this.opts.readFrom === undefined || this.p.net.now >= this.opts.readFrom)
    ) {
      for (;;) {
        const r = s.read(this.p.net.now, this.streamId);
        if (!r) break;
        if (r.data.length > 0) {
          this.hash.update(r.data);
          this.received += r.data.length;
          n++;
        }
        if (r.fin) {
          this.fin = true;
          this.finAt = this.p.net.now;
          n++;
          break;
        }
      }
    }
    this.opts.onStep?.();
    return n;
  }

  /** Runs until the server read the FIN (or `deadline` ms pass). */
  run(deadline = 300_000): boolean {
    return drive(
      this.p,
      () => this.step(),
      () => this.fin,
      deadline,
      this.opts.readFrom,
    );
  }

  /** SHA-256 of what the server read. */
  receivedHash(): string {
    this.digest ??= this.hash.digest("hex");
    return this.digest;
  }
}

/** The packet types of a datagram, in order ("1rtt" for a short header), for filters. */
export function packetTypes(data: Uint8Array, cidLength = 8): string[] {
  return splitCoalesced(data, cidLength).packets.map((h) => h.type);
}

/** Puts a fresh server endpoint (no connections) at the server's address. */
export function restartServer(p: Pair, seed: number, staticKey: Uint8Array | undefined): Endpoint {
  const { leaf } = testCerts(provider);
  const ep = new Endpoint({
    provider,
    rng: new SeededRng(seed + 1000),
    server: { alpn: ["test"], certificateChain: [leaf.der], privateKey: leaf.key },
    staticKey,
  });
  p.net.add({
    address: "server",
    receive: (t, from, d) => ep.receive(t, from, d),
    pollTransmit: (t) => ep.pollTransmit(t),
    pollTimeout: () => ep.pollTimeout(),
    handleTimeout: (t) => ep.handleTimeout(t),
  });
  return ep;
}
