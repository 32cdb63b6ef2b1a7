/**
 * The project's Broker for end-to-end client tests: TCP through `broker.listenTcp`, QUIC through a
 * small test adapter from `QuicEndpoint` connections to the broker's `MqttTransport` (until the
 * broker has a QUIC listener of its own).
 */
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { nodeProvider } from "../../../src/crypto/node.js";
import { Broker, type BrokerOptions } from "../../../src/mqtt/index.js";
import type { MqttTransport, StreamInfo } from "../../../src/mqtt/transport.js";
import { type QuicConnection, QuicEndpoint, type QuicStream } from "../../../src/net/quic.js";
import { testCerts } from "../../quic/harness.js";

class QuicTestTransport extends EventEmitter implements MqttTransport {
  readonly kind = "quic" as const;
  readonly remoteAddress: string;
  private gone = false;

  constructor(
    private readonly conn: QuicConnection,
    readonly control: QuicStream,
  ) {
    super();
    this.remoteAddress = conn.remoteAddress;
    control.on("error", () => {});
    conn.once("close", () => {
      this.gone = true;
      this.emit("close");
    });
  }

  resetStream(stream: Duplex, code: number): void {
    const s = stream as QuicStream;
    s.reset(code);
    s.stopSending(code);
  }

  close(code: number, reason: string): void {
    if (this.gone) return;
    this.control.end();
    // Give the flushed packets (CONNACK, DISCONNECT) a moment before CONNECTION_CLOSE.
    setTimeout(() => void this.conn.close(code, reason).catch(() => {}), 50).unref();
  }

  /** @internal */
  addStream(s: QuicStream): void {
    s.on("error", () => {});
    this.emit("stream", s, { bidi: s.bidi, id: s.id } satisfies StreamInfo);
  }
}

/** A Broker listening on TCP and (through the adapter) QUIC on loopback. */
export interface RealBroker {
  broker: Broker;
  tcpUrl: string;
  quicUrl: string;
  /** Transports of live QUIC connections (to cut them in tests). */
  quicConnections: QuicConnection[];
  close(): Promise<void>;
}

export async function startBroker(opts: BrokerOptions = {}): Promise<RealBroker> {
  const broker = new Broker(opts);
  const tcp = await broker.listenTcp({ port: 0, host: "127.0.0.1" });
  const { leaf } = testCerts(nodeProvider);
  const endpoint = await QuicEndpoint.listen({
    port: 0,
    host: "127.0.0.1",
    alpn: ["mqtt"],
    cert: [leaf.der],
    key: leaf.key,
    crypto: nodeProvider,
  });
  const quicConnections: QuicConnection[] = [];
  endpoint.on("connection", (conn: QuicConnection) => {
    quicConnections.push(conn);
    let transport: QuicTestTransport | undefined;
    conn.on("stream", (s: QuicStream) => {
      if (!transport) {
        transport = new QuicTestTransport(conn, s);
        broker.handle(transport);
      } else transport.addStream(s);
    });
  });
  return {
    broker,
    tcpUrl: `mqtt://127.0.0.1:${tcp.port}`,
    quicUrl: `mqtt+quic://127.0.0.1:${endpoint.address().port}`,
    quicConnections,
    async close() {
      await broker.close();
      await endpoint.close();
    },
  };
}

/** Client options for the test broker's QUIC listener. */
export const quicClientOptions = {
  ca: [testCerts(nodeProvider).ca.der],
  serverName: "localhost",
  quic: { crypto: nodeProvider },
};
