/**
 * A UDP impairment relay on loopback: forwards datagrams between one client and one server,
 * dropping and reordering them by a seeded RNG. Used for the transferloss / handshakeloss
 * interop cases (netem is not available in this kernel).
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
}

export class UdpRelay {
  private readonly sock: Socket;
  private client: RemoteInfo | undefined;
  private readonly rng: SeededRng;
  readonly stats = { forwarded: 0, dropped: 0, delayed: 0 };

  private constructor(
    sock: Socket,
    private readonly opts: RelayOptions,
  ) {
    this.sock = sock;
    this.rng = new SeededRng(opts.seed ?? 1);
    sock.on("message", (msg, rinfo) => this.onMessage(msg, rinfo));
  }

  static async start(opts: RelayOptions): Promise<UdpRelay> {
    const sock = createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    return new UdpRelay(sock, opts);
  }

  get port(): number {
    return this.sock.address().port;
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const fromServer =
      rinfo.port === this.opts.serverPort && rinfo.address === (this.opts.serverHost ?? "127.0.0.1");
    if (!fromServer) this.client = rinfo;
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
      this.stats.forwarded++;
      this.sock.send(msg, to.port, to.address);
    };
    if (this.rng.next() < (this.opts.reorder ?? 0)) {
      this.stats.delayed++;
      setTimeout(send, this.opts.reorderDelay ?? 5);
    } else send();
  }

  close(): void {
    this.sock.close();
  }
}
