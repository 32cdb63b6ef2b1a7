/**
 * An in-memory network for client tests: `MemoryNet.dial` hands the client a `ClientTransport`
 * whose streams are in-process pipes, and the test drives the broker side packet by packet
 * (`ServerLink`). With a manual scheduler this makes keepalive, backoff and flow-control tests
 * exact and instant.
 */
import { Duplex, PassThrough } from "node:stream";
import {
  parser as createParser,
  generate,
  type IConnackPacket,
  type IConnectPacket,
  type Packet,
} from "mqtt-packet";
import type { ClientTransport, Dialer } from "../../../src/mqtt/client/index.js";

/** Two connected Duplex ends. */
function pipePair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  const a = Duplex.from({ readable: ba, writable: ab });
  const b = Duplex.from({ readable: ab, writable: ba });
  return [a, b];
}

/** A stream on the broker side. */
export interface ServerStream {
  index: number;
  /** Opened by the server? */
  serverOpened: boolean;
  bidi: boolean;
  duplex: Duplex;
  packets: Packet[];
  ended: boolean;
}

/** The broker side of one connection. */
export class ServerLink {
  readonly streams: ServerStream[] = [];
  readonly log: { stream: number; packet: Packet }[] = [];
  version: 4 | 5 = 4;
  connect: IConnectPacket | undefined;
  closed = false;
  /** Answer CONNECT automatically with this (undefined: the test answers). */
  autoConnack: Partial<IConnackPacket> | undefined = {};
  /** Answer PINGREQ automatically. */
  autoPingresp = true;
  private serverStreamListener: ((s: Duplex, bidi: boolean) => void) | undefined;
  private closeListener: ((err: Error | undefined) => void) | undefined;
  readonly transport: ClientTransport;

  constructor(multiStream: boolean) {
    const [clientControl, serverControl] = pipePair();
    this.addStream(serverControl, false, true);
    const self = this;
    this.transport = {
      kind: "memory",
      control: clientControl,
      multiStream,
      async openStream() {
        if (self.closed) throw new Error("closed");
        const [c, s] = pipePair();
        self.addStream(s, false, true);
        return c;
      },
      onServerStream(listener) {
        self.serverStreamListener = listener;
      },
      onClose(listener) {
        self.closeListener = listener;
      },
      async close() {
        clientControl.end();
        self.drop(null);
      },
      destroy(err) {
        self.drop(err ?? null);
      },
    };
  }

  private addStream(duplex: Duplex, serverOpened: boolean, bidi: boolean): ServerStream {
    const st: ServerStream = {
      index: this.streams.length,
      serverOpened,
      bidi,
      duplex,
      packets: [],
      ended: false,
    };
    this.streams.push(st);
    duplex.on("error", () => {});
    if (!serverOpened) {
      const parser = createParser(st.index === 0 ? {} : { protocolVersion: this.version });
      parser.on("packet", (p: Packet) => this.onPacket(st, p));
      duplex.on("data", (b: Buffer) => parser.parse(b));
      duplex.on("end", () => {
        st.ended = true;
      });
    }
    return st;
  }

  private onPacket(st: ServerStream, p: Packet): void {
    st.packets.push(p);
    this.log.push({ stream: st.index, packet: p });
    if (p.cmd === "connect") {
      this.connect = p;
      this.version = p.protocolVersion === 5 ? 5 : 4;
      if (this.autoConnack) this.connack(this.autoConnack);
    }
    if (p.cmd === "pingreq" && this.autoPingresp) this.send(0, { cmd: "pingresp" });
  }

  /** Sends CONNACK (success unless overridden). */
  connack(extra: Partial<IConnackPacket> = {}): void {
    this.send(0, {
      cmd: "connack",
      sessionPresent: false,
      ...(this.version === 5 ? { reasonCode: 0 } : { returnCode: 0 }),
      ...extra,
    } as IConnackPacket);
  }

  /** Writes a packet on stream `index`. */
  send(index: number, p: Packet): void {
    this.streams[index].duplex.write(generate(p, { protocolVersion: this.version }));
  }

  /** Opens a server stream towards the client (write-only when `bidi` is false). */
  openStream(bidi: boolean): ServerStream {
    const [c, s] = pipePair();
    const st = this.addStream(s, true, bidi);
    if (bidi) {
      const parser = createParser({ protocolVersion: this.version });
      parser.on("packet", (p: Packet) => this.onPacket(st, p));
      s.on("data", (b: Buffer) => parser.parse(b));
    } else c.end();
    this.serverStreamListener?.(c, bidi);
    return st;
  }

  /** Packets the client sent, optionally of one type. */
  received(cmd?: string): { stream: number; packet: Packet }[] {
    return this.log.filter((e) => cmd === undefined || e.packet.cmd === cmd);
  }

  /** The connection is lost (network failure), or closed normally with `null`. */
  drop(err: Error | null = new Error("network lost")): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams) s.duplex.destroy();
    this.closeListener?.(err ?? undefined);
  }
}

/** A dialer over in-memory links. */
export class MemoryNet {
  readonly links: ServerLink[] = [];
  /** Set to make the next dials fail. */
  refuse: Error | undefined;
  /** Called with each new link before the client uses it (to configure its answers). */
  onLink: ((l: ServerLink) => void) | undefined;

  constructor(private readonly multiStream = true) {}

  readonly dial: Dialer = async () => {
    if (this.refuse) throw this.refuse;
    const l = new ServerLink(this.multiStream);
    this.onLink?.(l);
    this.links.push(l);
    return l.transport;
  };

  get last(): ServerLink {
    const l = this.links.at(-1);
    if (!l) throw new Error("no link yet");
    return l;
  }
}

/** Lets in-process streams deliver what was written (a few event-loop turns). */
export async function flush(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}
