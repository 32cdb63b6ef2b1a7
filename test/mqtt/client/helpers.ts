/**
 * Test helpers for the MQTT client: an aedes broker on a loopback TCP port, a dialer wrapper
 * that lets a test cut the connection, a manual scheduler, and small waiting utilities.
 */
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { Aedes, type AedesOptions } from "aedes";
import type {
  ClientScheduler,
  ClientTimerHandle,
  ClientTransport,
  Dialer,
} from "../../../src/mqtt/client/index.js";
import { defaultDialer } from "../../../src/mqtt/client/index.js";

/** An aedes broker listening on 127.0.0.1:<random port>. */
export interface AedesHandle {
  broker: Aedes;
  server: Server;
  port: number;
  url: string;
  /** Server-side sockets (to cut connections from the broker's side). */
  sockets: Set<Socket>;
  close(): Promise<void>;
}

export async function startAedes(opts: AedesOptions = {}, port = 0): Promise<AedesHandle> {
  const broker = await Aedes.createBroker(opts);
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    broker.handle(s);
  });
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  const addr = server.address();
  const p = typeof addr === "object" && addr ? addr.port : 0;
  return {
    broker,
    server,
    port: p,
    url: `mqtt://127.0.0.1:${p}`,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
}

/** A dialer that records its transports so a test can drop the connection like a lost network. */
export class CuttableDialer {
  readonly transports: ClientTransport[] = [];
  /** When set, dialing fails with this error. */
  refuse: Error | undefined;

  constructor(private readonly inner: Dialer = defaultDialer) {}

  readonly dial: Dialer = async (address, opts) => {
    if (this.refuse) throw this.refuse;
    const t = await this.inner(address, opts);
    this.transports.push(t);
    return t;
  };

  /** Drops the newest connection abruptly (no DISCONNECT: the broker publishes the will). */
  cut(): void {
    const t = this.transports.at(-1);
    t?.control.destroy();
  }
}

/** Resolves when `cond()` is true, polling every 5 ms; rejects after `ms`. */
export async function waitFor(cond: () => boolean, ms = 10_000, what = "condition"): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Sleeps `ms` of real time. */
export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A scheduler whose time moves only with `advance(ms)`, running due timers in deadline order
 * (ties in creation order), including timers armed by those timers.
 */
export class ManualScheduler implements ClientScheduler {
  private time = 0;
  private seq = 0;
  private timers: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];

  now(): number {
    return this.time;
  }

  setTimer(ms: number, fn: () => void): ClientTimerHandle {
    const t = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(t);
    return {
      cancel: () => {
        t.cancelled = true;
      },
    };
  }

  /** Pending (not cancelled) timers' deadlines. */
  get pending(): number[] {
    return this.timers.filter((t) => !t.cancelled).map((t) => t.at);
  }

  /** Moves time forward by `ms`, running what falls due. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const t = this.timers[0];
      if (!t || t.at > end) break;
      this.timers.shift();
      this.time = t.at;
      t.fn();
    }
    this.time = end;
  }
}
