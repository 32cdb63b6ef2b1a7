/**
 * A UDP impairment relay on loopback: forwards datagrams between one client and one server,
 * dropping and reordering them by a seeded RNG. Used for the transferloss / handshakeloss
 * interop cases (netem is not available in this kernel). It also plays a NAT: the server sees
 * the client at the relay's upstream socket, and `rebind()` moves that to a new port (the
 * quic-interop-runner's rebind-port case: RFC 9000 §9.3 NAT rebinding).
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { SeededRng } from "../../src/crypto/random.js";

export interface RelayOptions {
  /** Where the server listens. */
  serverPort: number;
  serverHost?: string;
  /** Drop probability for every datagram. */
  loss?: number;
  /** Drop probability for datagrams carrying long-header (handshake) packets only. */
  handshakeLoss?: number;
  /** Probability that a datagram is held back by `reorderDelay` ms. */
  reorder?: number;
  reorderDelay?: number;
  seed?: number;
  /** NAT rebinding: move the client's outside socket to a new port after every this many bytes from the server. */
  rebindEvery?: number;
  /** With `rebindEvery`: alternate the outside address between 127.0.0.1 and 127.0.0.2 too. */
  rebindAddress?: boolean;
}

export class UdpRelay {
  private readonly sock: Socket;
  /** The "NAT"'s outside socket: what the server sees as the client's address. */
  private up: Socket;
  private client: RemoteInfo | undefined;
  private closed = false;
  private readonly rng: SeededRng;
  readonly stats = { forwarded: 0, dropped: 0, delayed: 0, rebinds: 0 };
  private fromServerBytes = 0;
  private rebinding = false;

  private constructor(
    sock: Socket,
    up: Socket,
    private readonly opts: RelayOptions,
  ) {
    this.sock = sock;
    this.up = up;
    this.rng = new SeededRng(opts.seed ?? 1);
    sock.on("message", (msg, rinfo) => this.onMessage(msg, rinfo, false));
    this.listenUp(up);
  }

  static async start(opts: RelayOptions): Promise<UdpRelay> {
    return new UdpRelay(await bound(), await bound(), opts);
  }

  /** The port clients send to. */
  get port(): number {
    return this.sock.address().port;
  }

  /** The port the server sees the client at (changes with `rebind`). */
  get upstreamPort(): number {
    return this.up.address().port;
  }

  /**
   * A NAT rebinding: the client's datagrams leave from a new port from now on, and datagrams
   * to the old one are lost (its socket is closed).
   */
  async rebind(host = "127.0.0.1"): Promise<void> {
    const old = this.up;
    this.up = await bound(host);
    this.listenUp(this.up);
    old.close();
    this.stats.rebinds++;
  }

  private listenUp(up: Socket): void {
    up.on("message", (msg, rinfo) => {
      // Only the server's datagrams, on the current mapping, come back in.
      if (up === this.up && rinfo.port === this.opts.serverPort) this.onMessage(msg, rinfo, true);
    });
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo, fromServer: boolean): void {
    if (!fromServer) this.client = rinfo;
    const every = this.opts.rebindEvery;
    if (fromServer && every !== undefined && !this.rebinding) {
      this.fromServerBytes += msg.length;
      if (this.fromServerBytes >= every * (this.stats.rebinds + 1)) {
        this.rebinding = true;
        const host = this.opts.rebindAddress && this.stats.rebinds % 2 === 0 ? "127.0.0.2" : "127.0.0.1";
        void this.rebind(host).finally(() => {
          this.rebinding = false;
        });
      }
    }
    const to = fromServer
      ? this.client
      : { address: this.opts.serverHost ?? "127.0.0.1", port: this.opts.serverPort };
    if (!to) return;
    const long = (msg[0] & 0x80) !== 0;
    if (
      this.rng.next() < (this.opts.loss ?? 0) ||
      (long && this.rng.next() < (this.opts.handshakeLoss ?? 0))
    ) {
      this.stats.dropped++;
      return;
    }
    const send = () => {
      if (this.closed) return;
      this.stats.forwarded++;
      (fromServer ? this.sock : this.up).send(msg, to.port, to.address);
    };
    if (this.rng.next() < (this.opts.reorder ?? 0)) {
      this.stats.delayed++;
      setTimeout(send, this.opts.reorderDelay ?? 5);
    } else send();
  }

  close(): void {
    this.closed = true;
    this.sock.close();
    this.up.close();
  }
}

async function bound(host = "127.0.0.1"): Promise<Socket> {
  const sock = createSocket("udp4");
  await new Promise<void>((r) => sock.bind(0, host, () => r()));
  return sock;
}
