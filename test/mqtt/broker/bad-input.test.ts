/**
 * Bad input: malformed packets, oversize, invalid topics and UTF-8, packets out of order, floods.
 * Each gets the reason code the spec requires and the broker keeps serving everyone else.
 */
import fc from "fast-check";
import mqttPacket from "mqtt-packet";
import { describe, expect, it } from "vitest";
import type { Broker } from "../../../src/mqtt/broker/broker.js";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import { memoryTransportPair } from "../../../src/mqtt/transport.js";
import { connect, makeBroker, PacketStream, settle, subscribe } from "./helpers.js";

/** A publisher and a subscriber that must keep working whatever else happens. */
async function bystanders(broker: Broker): Promise<() => Promise<void>> {
  const s = await connect(broker, { clientId: "bystander-sub" });
  await subscribe(s.ctl, "health", 1);
  const p = await connect(broker, { clientId: "bystander-pub", version: 4 });
  let n = 0;
  return async () => {
    n++;
    p.ctl.send({
      cmd: "publish",
      topic: "health",
      payload: Buffer.from(`ok${n}`),
      qos: 1,
      retain: false,
      dup: false,
      messageId: n,
    });
    await p.ctl.expect("puback");
    const m = await s.ctl.expect("publish");
    expect(m.payload.toString()).toBe(`ok${n}`);
    s.ctl.send({ cmd: "puback", messageId: m.messageId! });
  };
}

async function expectDisconnect(ctl: PacketStream, code: number): Promise<void> {
  const d = await ctl.expect("disconnect");
  expect(d.reasonCode).toBe(code);
  await ctl.closed;
}

describe("bad input (v5: DISCONNECT with the reason code, then close)", () => {
  const cases: Array<[string, number[], number]> = [
    [
      "remaining length longer than 4 bytes",
      [0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
      ReasonCode.MalformedPacket,
    ],
    [
      "SUBSCRIBE with reserved flags 0000 [MQTT-3.8.1-1]",
      [0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61],
      ReasonCode.MalformedPacket,
    ],
    [
      "PUBLISH with QoS 3 [MQTT-3.3.1-4]",
      [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01],
      ReasonCode.MalformedPacket,
    ],
    [
      "PUBLISH topic with invalid UTF-8 [MQTT-1.5.4-1]",
      [0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x00],
      ReasonCode.MalformedPacket,
    ],
    [
      "PUBLISH topic with an encoded surrogate",
      [0x30, 0x06, 0x00, 0x03, 0xed, 0xa0, 0x80, 0x00],
      ReasonCode.MalformedPacket,
    ],
    [
      "PUBLISH topic with U+0000 [MQTT-1.5.4-2]",
      [0x30, 0x05, 0x00, 0x02, 0x61, 0x00, 0x00],
      ReasonCode.MalformedPacket,
    ],
    [
      "PUBLISH topic with a wildcard [MQTT-3.3.2-2]",
      [0x30, 0x05, 0x00, 0x02, 0x61, 0x23, 0x00],
      ReasonCode.TopicNameInvalid,
    ],
    ["PUBLISH with an empty topic and no alias", [0x30, 0x03, 0x00, 0x00, 0x00], ReasonCode.ProtocolError],
    [
      "QoS 1 PUBLISH with packet identifier 0 [MQTT-2.2.1-3]",
      [0x32, 0x06, 0x00, 0x01, 0x61, 0x00, 0x00, 0x00],
      ReasonCode.ProtocolError,
    ],
    [
      "SUBSCRIBE filter with invalid UTF-8",
      [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0xff, 0x00],
      ReasonCode.MalformedPacket,
    ],
    ["a CONNACK from the client", [0x20, 0x03, 0x00, 0x00, 0x00], ReasonCode.ProtocolError],
    ["a PINGRESP from the client", [0xd0, 0x00], ReasonCode.ProtocolError],
    ["AUTH without an authentication method", [0xf0, 0x02, 0x18, 0x00], ReasonCode.ProtocolError],
    ["an unknown packet type 0", [0x00, 0x00], ReasonCode.MalformedPacket],
  ];
  for (const [name, bytes, code] of cases) {
    it(`${name} -> 0x${code.toString(16)}`, async () => {
      const { broker } = makeBroker();
      const check = await bystanders(broker);
      const bad = await connect(broker, { clientId: "bad" });
      bad.ctl.sendRaw(bytes);
      await expectDisconnect(bad.ctl, code);
      await check();
      expect(broker.metrics.clientErrors).toBe(1);
    });
  }

  it("3.1.1: malformed input closes the connection without a DISCONNECT", async () => {
    const { broker } = makeBroker();
    const check = await bystanders(broker);
    const bad = await connect(broker, { version: 4, clientId: "bad" });
    bad.ctl.sendRaw([0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x00]);
    await bad.ctl.closed;
    expect(bad.ctl.received.map((p) => p.cmd)).toEqual(["connack"]);
    await check();
  });

  it("a CONNECT with an invalid UTF-8 client identifier gets CONNACK 0x81 (v5)", async () => {
    const { broker } = makeBroker();
    const { server, client } = memoryTransportPair();
    broker.handle(server);
    const ctl = new PacketStream(client.control, 5);
    const good = mqttPacket.generate(
      { cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clientId: "ab", clean: true, keepalive: 0 },
      { protocolVersion: 5 },
    );
    good[good.length - 1] = 0xff; // "a\xff"
    ctl.sendRaw(good);
    expect((await ctl.expect("connack")).reasonCode).toBe(ReasonCode.MalformedPacket);
    await ctl.closed;
  });

  it("PUBLISH before CONNECT: closed, no CONNACK, others unaffected [MQTT-3.1.0-1]", async () => {
    const { broker } = makeBroker();
    const check = await bystanders(broker);
    const { server, client } = memoryTransportPair();
    broker.handle(server);
    const ctl = new PacketStream(client.control, 5);
    ctl.send({
      cmd: "publish",
      topic: "health",
      payload: Buffer.from("sneaky"),
      qos: 0,
      retain: false,
      dup: false,
    });
    await ctl.closed;
    expect(ctl.received).toEqual([]);
    await check(); // and "sneaky" was not delivered: check() expects ok1 next
  });

  it("a packet split byte by byte is reassembled", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "t", 0);
    const p = await connect(broker, { clientId: "p" });
    const bytes = mqttPacket.generate(
      { cmd: "publish", topic: "t", payload: Buffer.from("slow"), qos: 0, retain: false, dup: false },
      { protocolVersion: 5 },
    );
    for (const b of bytes) {
      p.ctl.sendRaw([b]);
      await settle(1);
    }
    expect((await s.ctl.expect("publish")).payload.toString()).toBe("slow");
  });

  it("random bytes after CONNECT never crash the broker (property)", async () => {
    const { broker } = makeBroker({ maxPacketSize: 4096 });
    const check = await bystanders(broker);
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.constantFrom(4, 5),
        async (bytes, version) => {
          const c = await connect(broker, { version: version as 4 | 5, clientId: "fuzz" });
          c.ctl.sendRaw(bytes);
          await settle(3);
          c.kill();
          await c.ctl.closed;
          await settle(2);
        },
      ),
      { numRuns: 150, seed: 42 },
    );
    await check();
    expect(broker.metrics.clients).toBe(2);
  });
});
