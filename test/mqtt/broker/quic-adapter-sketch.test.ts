/**
 * The MqttTransport contract against the real QUIC stack: a minimal adapter (the production one
 * belongs in src/net, written separately) shows the broker serving a real QuicConnection with a
 * control stream, data streams, acks on the PUBLISH's stream, deliveries on the SUBSCRIBE's
 * stream and a per-stream reset that leaves the connection up.
 */
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { afterEach, expect, it } from "vitest";
import { nodeProvider } from "../../../src/crypto/node.js";
import { Broker } from "../../../src/mqtt/broker/broker.js";
import type { MqttTransport } from "../../../src/mqtt/transport.js";
import { type QuicConnection, QuicEndpoint, type QuicStream } from "../../../src/net/quic.js";
import { testCerts } from "../../quic/harness.js";
import { PacketStream, subscribe } from "./helpers.js";

class QuicTransport extends EventEmitter implements MqttTransport {
  readonly kind = "quic" as const;
  readonly remoteAddress: string;
  constructor(
    private readonly conn: QuicConnection,
    readonly control: QuicStream,
  ) {
    super();
    this.remoteAddress = conn.remoteAddress;
    conn.on("stream", (s: QuicStream) => this.emit("stream", s, { bidi: s.bidi, id: s.id }));
    conn.on("datagram", (d: Uint8Array) => this.emit("datagram", d));
    conn.once("close", () => this.emit("close"));
  }
  resetStream(stream: Duplex, code: number): void {
    const s = stream as QuicStream;
    if (s.bidi) s.reset(code);
    s.stopSending(code);
  }
  close(code: number, reason: string): void {
    this.control.end(() => void this.conn.close(code, reason));
  }
}

const opened: QuicEndpoint[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((e) => e.close()));
});

it("the broker serves a real QUIC connection through a 25-line adapter", async () => {
  const broker = new Broker();
  const { ca, leaf } = testCerts(nodeProvider);
  const server = await QuicEndpoint.listen({
    port: 0,
    host: "127.0.0.1",
    alpn: ["mqtt"],
    cert: [leaf.der],
    key: leaf.key,
    crypto: nodeProvider,
  });
  opened.push(server);
  server.on("connection", (conn: QuicConnection) => {
    conn.once("stream", (first: QuicStream) => broker.handle(new QuicTransport(conn, first)));
  });
  const client = await QuicEndpoint.open({ host: "127.0.0.1", crypto: nodeProvider });
  opened.push(client);
  const conn = await client.connect("127.0.0.1", server.address().port, {
    alpn: ["mqtt"],
    ca: [ca.der],
    serverName: "localhost",
  });
  const ctl = new PacketStream(await conn.openStream(), 5);
  ctl.send({
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: 5,
    clientId: "q",
    clean: true,
    keepalive: 0,
  });
  expect((await ctl.expect("connack")).reasonCode).toBe(0);
  const d1 = new PacketStream(await conn.openStream(), 5);
  await subscribe(d1, "t", 1);
  const d2 = new PacketStream(await conn.openStream(), 5);
  d2.send({
    cmd: "publish",
    topic: "t",
    payload: Buffer.from("over quic"),
    qos: 1,
    retain: false,
    dup: false,
    messageId: 1,
  });
  expect((await d2.expect("puback")).messageId).toBe(1);
  const m = await d1.expect("publish");
  expect(m.payload.toString()).toBe("over quic");
  const bad = new PacketStream(await conn.openStream(), 5);
  bad.sendRaw([0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x00]);
  await bad.closed;
  ctl.send({ cmd: "pingreq" });
  await ctl.expect("pingresp", 5000);
  ctl.send({ cmd: "disconnect", reasonCode: 0 });
  await ctl.closed;
  await broker.close();
}, 20000);
