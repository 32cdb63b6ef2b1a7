/**
 * A deterministic in-process network for sans-IO endpoints, on a virtual clock.
 *
 * Nodes are anything with the sans-IO surface (`receive`, `pollTransmit`, `pollTimeout`,
 * `handleTimeout`). Links between addresses apply latency, jitter, loss, duplication,
 * reordering, corruption and a bandwidth limit, all drawn from one seeded RNG, so a run is a
 * pure function of its seed and a failing seed can be replayed. A `filter` hook lets a test
 * drop specific datagrams (for example "the client's first Initial").
 */
import { SeededRng } from "../../src/crypto/random.js";

/** The sans-IO surface the simulator drives. Time is in milliseconds. */
export interface SimNode {
  readonly address: string;
  receive(now: number, from: string, data: Uint8Array): void;
  pollTransmit(now: number): { to: string; data: Uint8Array } | undefined;
  /** Absolute virtual time of the next timer, or undefined. */
  pollTimeout(): number | undefined;
  handleTimeout(now: number): void;
}

/** Impairments of one direction of a link. All probabilities are in [0, 1]. */
export interface LinkConfig {
  /** One-way delay in ms. */
  latency: number;
  /** Uniform extra delay in [0, jitter) ms per datagram (reorders when larger than the gap between sends). */
  jitter: number;
  loss: number;
  duplicate: number;
  /** Probability a datagram is held back by an extra `reorderDelay` ms. */
  reorder: number;
  reorderDelay: number;
  /** Probability one random byte is flipped. */
  corrupt: number;
  /** Bytes per second; 0 = unlimited. Datagrams queue behind each other (serialization delay). */
  bandwidth: number;
  /** Datagrams larger than this are dropped. */
  mtu: number;
  /** Bound of the bottleneck queue in bytes (tail drop); 0 = unbounded. */
  queueBytes: number;
}

export const perfectLink: LinkConfig = {
  latency: 10,
  jitter: 0,
  loss: 0,
  duplicate: 0,
  reorder: 0,
  reorderDelay: 0,
  corrupt: 0,
  bandwidth: 0,
  mtu: 1500,
  queueBytes: 0,
};

/** A datagram on its way, as seen by filters and traces. */
export interface SimDatagram {
  readonly from: string;
  readonly to: string;
  readonly data: Uint8Array;
  /** Index of this datagram among those sent from `from` to `to` (0-based). */
  readonly index: number;
  readonly sentAt: number;
}

/** What happened to a datagram (for traces and assertions). */
export type SimTrace = SimDatagram & {
  fate: "delivered" | "lost" | "filtered" | "duplicated" | "corrupted" | "too-big" | "queue-full";
  at: number;
};

interface Pending {
  at: number;
  seq: number;
  from: string;
  to: string;
  data: Uint8Array;
  /** The directed link it travels ("from>to" of the sending node, before NAT). */
  link: string;
}

/** Min-heap on (at, seq) so simultaneous events keep insertion order. */
class EventQueue {
  private heap: Pending[] = [];
  get size(): number {
    return this.heap.length;
  }
  peek(): Pending | undefined {
    return this.heap[0];
  }
  push(e: Pending): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): Pending | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
const less = (a: Pending, b: Pending): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/** A seeded, virtual-time network of sans-IO nodes. */
export class SimNetwork {
  readonly rng: SeededRng;
  readonly seed: number;
  now = 0;
  private readonly nodes = new Map<string, SimNode>();
  private readonly links = new Map<string, LinkConfig>();
  private readonly queue = new EventQueue();
  private seq = 0;
  private readonly counters = new Map<string, number>();
  /** Time at which each directed link's bottleneck is free again (bandwidth model). */
  private readonly linkBusyUntil = new Map<string, number>();
  private readonly linkQueued = new Map<string, number>();
  /** Drop a datagram when this returns true (applied before random impairments). */
  filter: ((d: SimDatagram) => boolean) | undefined;
  /** Every datagram's fate, when `traceEnabled`. */
  readonly trace: SimTrace[] = [];
  traceEnabled = false;
  /** Bytes and datagrams sent per directed link "from>to". */
  readonly sent = new Map<string, { datagrams: number; bytes: number }>();
  /** NAT mappings: node address → the source address its datagrams carry, and back. */
  private readonly natOut = new Map<string, string>();
  private readonly natIn = new Map<string, string>();

  constructor(
    seed: number,
    readonly defaultLink: LinkConfig = perfectLink,
  ) {
    this.seed = seed >>> 0;
    this.rng = new SeededRng(seed);
  }

  add(node: SimNode): this {
    this.nodes.set(node.address, node);
    return this;
  }

  /** Sets the impairments of the directed link from `from` to `to` (both directions when `symmetric`). */
  setLink(from: string, to: string, cfg: Partial<LinkConfig>, symmetric = true): this {
    this.links.set(`${from}>${to}`, { ...this.linkOf(from, to), ...cfg });
    if (symmetric) this.links.set(`${to}>${from}`, { ...this.linkOf(to, from), ...cfg });
    return this;
  }

  /**
   * Puts node `inside` behind a NAT from now on: its datagrams carry the source address
   * `outside`, and datagrams to `outside` reach it. A new mapping replaces the previous one, whose
   * outside address then reaches nobody (a NAT rebinding). Links stay configured by node address.
   */
  nat(inside: string, outside: string): this {
    const old = this.natOut.get(inside);
    if (old !== undefined) this.natIn.delete(old);
    this.natOut.set(inside, outside);
    this.natIn.set(outside, inside);
    return this;
  }

  /**
   * Puts a datagram on the wire as if sent from `from` (any address: an attacker forwarding a
   * copy of a genuine packet, or spoofing), delivered to `to` after `delay` ms, without impairments.
   */
  inject(from: string, to: string, data: Uint8Array, delay = 0): void {
    this.queue.push({
      at: this.now + delay,
      seq: this.seq++,
      from,
      to,
      data: data.slice(),
      link: `${from}>${to}`,
    });
  }

  linkOf(from: string, to: string): LinkConfig {
    return this.links.get(`${from}>${to}`) ?? this.defaultLink;
  }

  private note(d: SimDatagram, fate: SimTrace["fate"], at = this.now): void {
    if (this.traceEnabled) this.trace.push({ ...d, fate, at });
  }

  private send(from: string, to: string, data: Uint8Array): void {
    const key = `${from}>${this.natIn.get(to) ?? to}`;
    const index = this.counters.get(key) ?? 0;
    this.counters.set(key, index + 1);
    const stats = this.sent.get(key) ?? { datagrams: 0, bytes: 0 };
    stats.datagrams++;
    stats.bytes += data.length;
    this.sent.set(key, stats);
    const d: SimDatagram = { from: this.natOut.get(from) ?? from, to, data, index, sentAt: this.now };
    const cfg = this.links.get(key) ?? this.defaultLink;
    if (data.length > cfg.mtu) {
      this.note(d, "too-big");
      return;
    }
    if (this.filter?.(d)) {
      this.note(d, "filtered");
      return;
    }
    if (this.rng.next() < cfg.loss) {
      this.note(d, "lost");
      return;
    }
    let departure = this.now;
    if (cfg.bandwidth > 0) {
      const busy = Math.max(this.linkBusyUntil.get(key) ?? 0, this.now);
      const queued = this.linkQueued.get(key) ?? 0;
      const backlog = (busy - this.now) * (cfg.bandwidth / 1000);
      if (cfg.queueBytes > 0 && backlog + data.length > cfg.queueBytes) {
        this.note(d, "queue-full");
        return;
      }
      departure = busy + (data.length * 1000) / cfg.bandwidth;
      this.linkBusyUntil.set(key, departure);
      this.linkQueued.set(key, queued + data.length);
    }
    let payload = data;
    if (this.rng.next() < cfg.corrupt && data.length > 0) {
      payload = data.slice();
      payload[Math.floor(this.rng.next() * payload.length)] ^= 1 << Math.floor(this.rng.next() * 8);
      this.note(d, "corrupted");
    }
    const copies = this.rng.next() < cfg.duplicate ? 2 : 1;
    if (copies === 2) this.note(d, "duplicated");
    for (let c = 0; c < copies; c++) {
      let at = departure + cfg.latency + (cfg.jitter > 0 ? this.rng.next() * cfg.jitter : 0);
      if (this.rng.next() < cfg.reorder) at += cfg.reorderDelay;
      this.queue.push({
        at,
        seq: this.seq++,
        from: d.from,
        to,
        data: c === 0 ? payload : payload.slice(),
        link: key,
      });
    }
  }

  /** Collects every datagram every node wants to send now. */
  private flush(): void {
    for (const node of this.nodes.values()) {
      for (let guard = 0; guard < 100_000; guard++) {
        const t = node.pollTransmit(this.now);
        if (!t) break;
        this.send(node.address, t.to, t.data);
      }
    }
  }

  /** The next virtual time anything happens, or undefined when the network is idle. */
  nextEventTime(): number | undefined {
    let next = this.queue.peek()?.at;
    for (const node of this.nodes.values()) {
      const t = node.pollTimeout();
      if (t !== undefined && (next === undefined || t < next)) next = t;
    }
    return next;
  }

  /**
   * Runs until `done()` holds, the network goes idle, or virtual time passes `deadline` (ms).
   * Returns true when `done()` held.
   */
  run(done: () => boolean = () => false, deadline = 60_000): boolean {
    this.flush();
    for (;;) {
      if (done()) return true;
      const next = this.nextEventTime();
      if (next === undefined || next > deadline) {
        if (next !== undefined) this.now = Math.max(this.now, deadline);
        return done();
      }
      this.now = Math.max(this.now, next);
      while (this.queue.size > 0 && this.queue.peek()!.at <= this.now) {
        const e = this.queue.pop()!;
        if (this.linkQueued.has(e.link)) {
          this.linkQueued.set(e.link, Math.max(0, (this.linkQueued.get(e.link) ?? 0) - e.data.length));
        }
        const node = this.nodes.get(this.natIn.get(e.to) ?? e.to);
        if (node) {
          this.note({ from: e.from, to: e.to, data: e.data, index: -1, sentAt: -1 }, "delivered");
          node.receive(this.now, e.from, e.data);
        }
      }
      for (const node of this.nodes.values()) {
        const t = node.pollTimeout();
        if (t !== undefined && t <= this.now) node.handleTimeout(this.now);
      }
      this.flush();
    }
  }

  /** Advances virtual time by `ms`, processing everything due on the way. */
  advance(ms: number): void {
    const until = this.now + ms;
    this.run(() => false, until);
    this.now = Math.max(this.now, until);
  }
}

/**
 * Runs `body` with a seed and, if it throws, rethrows with the seed in the message so the run
 * can be replayed with `SIM_SEED=<seed>`.
 */
export function withSeed<T>(defaultSeed: number, body: (seed: number) => T): T {
  const env = process.env.SIM_SEED;
  const seed = env !== undefined ? Number(env) : defaultSeed;
  try {
    return body(seed);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    err.message = `[replay with SIM_SEED=${seed}] ${err.message}`;
    throw err;
  }
}
