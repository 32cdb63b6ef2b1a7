/**
 * The project's Broker for end-to-end client tests: TCP through `broker.listenTcp`, QUIC through a
 * `listenQuic`, the broker's own QUIC listener.
 */
import { nodeProvider } from "../../../src/crypto/node.js";
import { Broker, type BrokerOptions } from "../../../src/mqtt/index.js";
import { listenQuic } from "../../../src/net/mqtt-quic.js";
import type { QuicConnection } from "../../../src/net/quic.js";
import { testCerts } from "../../quic/harness.js";

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
  const quicConnections: QuicConnection[] = [];
  const endpoint = await listenQuic(
    { port: 0, host: "127.0.0.1", cert: [leaf.der], key: leaf.key, crypto: nodeProvider },
    (t) => {
      quicConnections.push(t.connection);
      broker.handle(t);
    },
  );
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
