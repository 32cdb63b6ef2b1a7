/**
 * MQTT over QUIC stream rules (DESIGN.md) over the in-memory multi-stream transport: deliveries
 * on the SUBSCRIBE's stream, acks on the PUBLISH's stream, per-stream errors, uni streams with
 * flow headers, streams held until CONNACK.
 */
import type { IPublishPacket } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { encodeFlowHeader, FlowType } from "../../../src/mqtt/broker/flow-header.js";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import { type MemoryStream, memoryTransportPair } from "../../../src/mqtt/transport.js";
import { connect, makeBroker, PacketStream, settle, subscribe } from "./helpers.js";

function pub(topic: string, payload: string, qos: 0 | 1 | 2 = 0, messageId?: number): IPublishPacket {
  return {
    cmd: "publish",
    topic,
    payload: Buffer.from(payload),
    qos,
    retain: false,
    dup: false,
    ...(messageId ? { messageId } : {}),
  };
}

const resetCode = (ps: PacketStream): number | undefined => (ps.stream as MemoryStream).resetCode;

describe("multi-stream (EMQX-style bidi data streams)", () => {
  it("SUBACK and deliveries go on the stream that carried the SUBSCRIBE", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    const d1 = s.stream();
    const d2 = s.stream();
    expect(await subscribe(d1, "a", 1)).toEqual([1]);
    expect(await subscribe(d2, "b", 0)).toEqual([0]);
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(pub("a", "to d1", 1, 1));
    p.ctl.send(pub("b", "to d2"));
    const m1 = await d1.expect("publish");
    expect(m1.payload.toString()).toBe("to d1");
    d1.send({ cmd: "puback", messageId: m1.messageId! });
    expect((await d2.expect("publish")).payload.toString()).toBe("to d2");
    await s.ctl.expectNothing();
    await settle();
    expect(broker.session("s")?.inflight.size).toBe(0);
  });

  it("overlapping subscriptions on different streams each get their copy with their identifier", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    const d1 = s.stream();
    const d2 = s.stream();
    await subscribe(d1, "x/#", 0, { subscriptionIdentifier: 1 });
    await subscribe(d2, "x/+", 0, { subscriptionIdentifier: 2 });
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(pub("x/y", "both"));
    expect((await d1.expect("publish")).properties?.subscriptionIdentifier).toBe(1); // [MQTT-3.3.4-5]
    expect((await d2.expect("publish")).properties?.subscriptionIdentifier).toBe(2);
  });

  it("a PUBLISH on a data stream is acknowledged on that stream (QoS 1 and 2)", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    const d = p.stream();
    d.send(pub("t", "x", 1, 1));
    expect((await d.expect("puback")).messageId).toBe(1);
    d.send(pub("t", "y", 2, 2));
    expect((await d.expect("pubrec")).messageId).toBe(2);
    d.send({ cmd: "pubrel", messageId: 2 });
    expect((await d.expect("pubcomp")).messageId).toBe(2);
    await p.ctl.expectNothing();
  });

  it("a single-stream client keeps everything on the control stream", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s", kind: "quic" });
    await subscribe(s.ctl, "t", 1);
    s.ctl.send(pub("t", "self", 1, 1));
    const got = [await s.ctl.next(), await s.ctl.next()].map((p) => p?.cmd).sort();
    expect(got).toEqual(["puback", "publish"]);
  });

  it("a malformed packet on a data stream resets that stream only (code 0x81)", async () => {
    const { broker } = makeBroker();
    const errors: string[] = [];
    broker.on("clientError", (e) => errors.push(e.code));
    const s = await connect(broker, { clientId: "s" });
    const good = s.stream();
    await subscribe(good, "t", 0);
    const bad = s.stream();
    bad.sendRaw([0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x00]);
    await bad.closed;
    expect(resetCode(bad)).toBe(ReasonCode.MalformedPacket);
    expect(errors).toEqual(["ERR_MQTT_MALFORMED_PACKET"]);
    expect(broker.metrics.streamResets).toBe(1);
    // The connection and the other stream are fine.
    s.ctl.send({ cmd: "pingreq" });
    await s.ctl.expect("pingresp");
    s.ctl.send(pub("t", "still here"));
    expect((await good.expect("publish")).payload.toString()).toBe("still here");
  });

  it("an oversize packet on a data stream resets that stream with 0x95", async () => {
    const { broker } = makeBroker({ maxPacketSize: 100 });
    const s = await connect(broker, { clientId: "s" });
    const d = s.stream();
    d.send(pub("t", "x".repeat(200)));
    await d.closed;
    expect(resetCode(d)).toBe(ReasonCode.PacketTooLarge);
    s.ctl.send({ cmd: "pingreq" });
    await s.ctl.expect("pingresp");
  });

  for (const [name, packet] of [
    ["PINGREQ", { cmd: "pingreq" }],
    ["DISCONNECT", { cmd: "disconnect", reasonCode: 0 }],
    [
      "CONNECT",
      { cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clientId: "s", clean: true, keepalive: 0 },
    ],
  ] as const) {
    it(`a control-class packet (${name}) on a data stream is a protocol error: stream reset 0x82`, async () => {
      const { broker } = makeBroker();
      const s = await connect(broker, { clientId: "s" });
      const d = s.stream();
      d.send(packet as never);
      await d.closed;
      expect(resetCode(d)).toBe(ReasonCode.ProtocolError);
      s.ctl.send({ cmd: "pingreq" });
      await s.ctl.expect("pingresp");
      expect(broker.metrics.clients).toBe(1);
    });
  }

  it("a session-wide violation on a data stream (Receive Maximum) ends the connection", async () => {
    const { broker } = makeBroker({ receiveMaximum: 1 });
    const s = await connect(broker, { clientId: "s" });
    const d = s.stream();
    d.send(pub("t", "1", 2, 1));
    await d.expect("pubrec");
    d.send(pub("t", "2", 2, 2));
    expect((await s.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.ReceiveMaximumExceeded);
  });

  it("data streams opened before CONNACK are held and served after it", async () => {
    const { broker } = makeBroker({
      authenticate: () => new Promise((r) => setTimeout(() => r(true), 20)),
    });
    const { server, client } = memoryTransportPair();
    broker.handle(server);
    const ctl = new PacketStream(client.control, 5);
    ctl.send({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 5,
      clientId: "early",
      clean: true,
      keepalive: 0,
    });
    const d = new PacketStream(client.openStream(), 5);
    d.send({
      cmd: "subscribe",
      messageId: 1,
      subscriptions: [{ topic: "t", qos: 0, nl: false, rap: false, rh: 0 }],
    });
    await ctl.expect("connack");
    expect((await d.expect("suback")).granted).toEqual([0]);
  });

  it("when a subscription's stream goes away, its deliveries fall back to the control stream", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    const d = s.stream();
    await subscribe(d, "t", 0);
    s.conn.resetStream(d.stream as MemoryStream, 0);
    await settle();
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(pub("t", "fallback"));
    expect((await s.ctl.expect("publish")).payload.toString()).toBe("fallback");
  });

  it("a data stream the client finished is ended by the broker once nothing is routed to it", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    const d = s.stream();
    await subscribe(d, "t", 0);
    d.send({ cmd: "unsubscribe", messageId: 2, unsubscriptions: ["t"] });
    await d.expect("unsuback");
    d.stream.end();
    await d.closed;
    expect(d.ended).toBe(true);
    s.ctl.send({ cmd: "pingreq" });
    await s.ctl.expect("pingresp");
  });

  it("closing the control stream ends the connection (and the will goes out)", async () => {
    const { broker } = makeBroker();
    const w = await connect(broker, { clientId: "w" });
    await subscribe(w.ctl, "will", 0);
    const s = await connect(broker, {
      clientId: "s",
      will: { topic: "will", payload: Buffer.from("bye"), qos: 0, retain: false },
    });
    const d = s.stream();
    await subscribe(d, "x", 0);
    s.ctl.stream.end();
    expect((await w.ctl.expect("publish")).payload.toString()).toBe("bye");
    await d.closed;
  });

  it("limits the number of streams per connection (extra streams reset with 0x97)", async () => {
    const { broker } = makeBroker({ maxStreamsPerConnection: 2 });
    const s = await connect(broker, { clientId: "s" });
    const a = s.stream();
    const b = s.stream();
    const c = s.stream();
    await c.closed;
    expect(resetCode(c)).toBe(ReasonCode.QuotaExceeded);
    await subscribe(a, "a", 0);
    await subscribe(b, "b", 0);
  });

  it("outbound topic aliases use the short form only on the stream that set them", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s", properties: { topicAliasMaximum: 5 } });
    const d1 = s.stream();
    const d2 = s.stream();
    await subscribe(d1, "t", 0);
    await subscribe(d2, "+", 0);
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(pub("t", "1"));
    p.ctl.send(pub("t", "2"));
    const a1 = await d1.expect("publish");
    const a2 = await d1.expect("publish");
    const b1 = await d2.expect("publish");
    const b2 = await d2.expect("publish");
    expect([a1.topic, a1.properties?.topicAlias, a2.topic, a2.properties?.topicAlias]).toEqual([
      "t",
      1,
      "",
      1,
    ]);
    expect([b1.topic, b2.topic]).toEqual(["t", "t"]);
  });
});

describe("unidirectional streams (mqtt.ai style)", () => {
  it("PUBLISH on a uni stream with a flow header is acknowledged on the control stream", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "u/#", 0);
    const p = await connect(broker, { clientId: "p" });
    const u = p.conn.openStream({ bidi: false });
    u.write(encodeFlowHeader({ type: FlowType.ClientData, flowId: 2n, expiryInterval: 3600n, flags: 0x10 }));
    const w = new PacketStream(u, 5);
    w.send(pub("u/1", "one", 1, 1));
    w.send(pub("u/2", "two", 2, 2));
    expect((await p.ctl.expect("puback")).messageId).toBe(1);
    expect((await p.ctl.expect("pubrec")).messageId).toBe(2);
    p.ctl.send({ cmd: "pubrel", messageId: 2 });
    expect((await p.ctl.expect("pubcomp")).messageId).toBe(2);
    expect((await s.ctl.expect("publish")).payload.toString()).toBe("one");
    expect((await s.ctl.expect("publish")).payload.toString()).toBe("two");
  });

  it("a uni stream without a flow header works too; the header may arrive in pieces", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "u", 0);
    const p = await connect(broker, { clientId: "p" });
    const plain = new PacketStream(p.conn.openStream({ bidi: false }), 5);
    plain.send(pub("u", "plain"));
    expect((await s.ctl.expect("publish")).payload.toString()).toBe("plain");
    const u = p.conn.openStream({ bidi: false });
    const header = encodeFlowHeader({ type: FlowType.ClientData, flowId: 300n, expiryInterval: 70000n });
    for (const b of header) {
      u.write(Uint8Array.of(b));
      await settle(1);
    }
    new PacketStream(u, 5).send(pub("u", "split"));
    expect((await s.ctl.expect("publish")).payload.toString()).toBe("split");
  });

  it("SUBSCRIBE on a uni stream (mqttv5 per-topic) is answered, and delivered, on the control stream", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    const u = p.conn.openStream({ bidi: false });
    new PacketStream(u, 5).send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "x", qos: 0 }] });
    const suback = await p.ctl.expect("suback");
    expect(suback.messageId).toBe(1);
    p.ctl.send({ cmd: "publish", topic: "x", payload: Buffer.from("hi"), qos: 0, dup: false, retain: false });
    const msg = await p.ctl.expect("publish");
    expect(msg.topic).toBe("x");
  });

  it("a control-class packet on a uni stream resets it", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    const u = p.conn.openStream({ bidi: false });
    new PacketStream(u, 5).send({ cmd: "pingreq" });
    await new Promise((r) => u.once("close", r));
    expect(u.resetCode).toBe(ReasonCode.ProtocolError);
    p.ctl.send({ cmd: "pingreq" });
    await p.ctl.expect("pingresp");
  });

  it("a user-defined (0x14) or unknown flow type resets the stream", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    const u = p.conn.openStream({ bidi: false });
    u.write(Uint8Array.of(0x14, 0x00, 0x00));
    await new Promise((r) => u.once("close", r));
    expect(u.resetCode).toBe(ReasonCode.ProtocolError);
  });

  it("a control flow header at the start of the QUIC control stream is skipped", async () => {
    const { broker } = makeBroker();
    const { server, client } = memoryTransportPair({ kind: "quic" });
    broker.handle(server);
    client.control.write(encodeFlowHeader({ type: FlowType.Control, flowId: 0n, flags: 0 }));
    const ctl = new PacketStream(client.control, 5);
    ctl.send({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 5,
      clientId: "fh",
      clean: true,
      keepalive: 0,
    });
    expect((await ctl.expect("connack")).reasonCode).toBe(0);
  });
});

describe("QUIC DATAGRAM frames", () => {
  it("a QoS 0 PUBLISH in a datagram (with or without flow header) is delivered", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "d", 0);
    const p = await connect(broker, { clientId: "p" });
    const mqtt = (await import("mqtt-packet")).default;
    const packet = mqtt.generate(pub("d", "dgram"), { protocolVersion: 5 });
    p.conn.sendDatagram(packet);
    expect((await s.ctl.expect("publish")).payload.toString()).toBe("dgram");
    const header = encodeFlowHeader({ type: FlowType.ClientData, flowId: 4n, expiryInterval: 0n });
    p.conn.sendDatagram(
      Buffer.concat([header, mqtt.generate(pub("d", "with header"), { protocolVersion: 5 })]),
    );
    expect((await s.ctl.expect("publish")).payload.toString()).toBe("with header");
  });

  it("anything else in a datagram is dropped without touching the connection", async () => {
    const { broker } = makeBroker();
    const errors: string[] = [];
    broker.on("clientError", (e) => errors.push(e.code));
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "d", 0);
    const mqtt = (await import("mqtt-packet")).default;
    s.conn.sendDatagram(mqtt.generate(pub("d", "q1", 1, 1), { protocolVersion: 5 }));
    s.conn.sendDatagram(Uint8Array.of(0x30, 0x09, 0x00));
    s.conn.sendDatagram(
      Buffer.concat([mqtt.generate(pub("d", "a"), { protocolVersion: 5 }), Buffer.from([0xc0, 0x00])]),
    );
    await settle();
    expect(errors).toEqual([
      "ERR_MQTT_PROTOCOL_ERROR",
      "ERR_MQTT_MALFORMED_PACKET",
      "ERR_MQTT_MALFORMED_PACKET",
    ]);
    s.ctl.send({ cmd: "pingreq" });
    await s.ctl.expect("pingresp");
    await s.ctl.expectNothing();
  });
});
