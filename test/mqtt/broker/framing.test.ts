/** Packet framing and decoding (bounded), and the flow header codec. */
import fc from "fast-check";
import mqttPacket from "mqtt-packet";
import { describe, expect, it } from "vitest";
import {
  decodeFlowHeader,
  encodeFlowHeader,
  FlowType,
  isFlowHeaderStart,
} from "../../../src/mqtt/broker/flow-header.js";
import { PacketDecoder, PacketFramer } from "../../../src/mqtt/broker/framing.js";
import { MqttError, ReasonCode } from "../../../src/mqtt/errors.js";

const publish = (payload: Buffer) =>
  mqttPacket.generate({ cmd: "publish", topic: "a/b", payload, qos: 0, retain: false, dup: false });

describe("PacketFramer", () => {
  it("splits a stream into packets whatever the chunking (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
        (payloads, cuts) => {
          const frames = payloads.map((p) => publish(Buffer.from(p)));
          const all = Buffer.concat(frames);
          const framer = new PacketFramer(10_000);
          const out: Buffer[] = [];
          let pos = 0;
          let k = 0;
          while (pos < all.length) {
            const n = cuts[k++ % cuts.length]!;
            framer.push(all.subarray(pos, pos + n));
            pos += n;
            for (let f = framer.next(); f; f = framer.next()) out.push(Buffer.from(f));
          }
          expect(out).toEqual(frames);
          expect(framer.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 200, seed: 7 },
    );
  });

  it("refuses an oversize packet from its header, before buffering it", () => {
    const framer = new PacketFramer(1000);
    framer.push(Buffer.from([0x30, 0xe8, 0x07])); // remaining length 1000 -> 1003 bytes
    expect(() => framer.next()).toThrow(expect.objectContaining({ reasonCode: ReasonCode.PacketTooLarge }));
  });

  it("rejects a five-byte remaining length as malformed", () => {
    const framer = new PacketFramer(1 << 30);
    framer.push(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]));
    expect(() => framer.next()).toThrow(expect.objectContaining({ reasonCode: ReasonCode.MalformedPacket }));
  });

  it("waits for more bytes on a partial header", () => {
    const framer = new PacketFramer(1000);
    framer.push(Buffer.from([0x30]));
    expect(framer.next()).toBeUndefined();
    framer.push(Buffer.from([0x80]));
    expect(framer.next()).toBeUndefined();
  });
});

describe("PacketDecoder", () => {
  it("decodes CONNECT and learns the version; v5 packets after it decode with properties", () => {
    const d = new PacketDecoder(undefined);
    const c = d.decode(
      mqttPacket.generate({
        cmd: "connect",
        protocolId: "MQTT",
        protocolVersion: 5,
        clientId: "x",
        clean: true,
        keepalive: 5,
      }),
    );
    expect(c.cmd).toBe("connect");
    expect(d.protocolVersion).toBe(5);
    const p = d.decode(
      mqttPacket.generate(
        {
          cmd: "publish",
          topic: "t",
          payload: Buffer.from("x"),
          qos: 0,
          retain: false,
          dup: false,
          properties: { contentType: "c" },
        },
        { protocolVersion: 5 },
      ),
    );
    expect(p).toMatchObject({ cmd: "publish", properties: { contentType: "c" } });
  });

  it("reports an unsupported protocol version as 0x84", () => {
    const d = new PacketDecoder(undefined);
    const frame = Buffer.from([0x10, 0x0d, 0, 4, 0x4d, 0x51, 0x54, 0x54, 9, 2, 0, 0, 0, 1, 0x61]);
    expect(() => d.decode(frame)).toThrow(
      expect.objectContaining({ reasonCode: ReasonCode.UnsupportedProtocolVersion }),
    );
  });

  it("keeps each stream's version and bridge mode apart, and a bad frame on one stream does not disturb another", () => {
    // The decoders share one mqtt-packet parser (framing.ts); each lends it its own settings.
    const connect = (protocolVersion: 4 | 5, bridge: boolean) =>
      mqttPacket.generate({
        cmd: "connect",
        protocolId: "MQTT",
        protocolVersion,
        clientId: "x",
        clean: true,
        keepalive: 5,
        ...(bridge ? { bridgeMode: true } : {}),
      });
    const subscribe = (protocolVersion: 4 | 5) =>
      mqttPacket.generate(
        {
          cmd: "subscribe",
          messageId: 1,
          subscriptions: [{ topic: "t", qos: 1, nl: true, rap: true, rh: 0 }],
          ...(protocolVersion === 5 ? { properties: { subscriptionIdentifier: 7 } } : {}),
        },
        { protocolVersion },
      );
    const v5 = new PacketDecoder(undefined);
    const bridge = new PacketDecoder(undefined);
    const v4 = new PacketDecoder(undefined);
    v5.decode(connect(5, false));
    bridge.decode(connect(4, true));
    v4.decode(connect(4, false));
    // A truncated PUBLISH: the shared parser is left mid-packet and must not carry that over.
    expect(() => v4.decode(Buffer.from([0x30, 0x03, 0x00]))).toThrow(MqttError);
    expect(v5.decode(subscribe(5))).toMatchObject({
      cmd: "subscribe",
      properties: { subscriptionIdentifier: 7 },
      subscriptions: [{ topic: "t", qos: 1, nl: true, rap: true }],
    });
    // v3.1.1 bridge mode carries no-local and retain-as-published in the subscription options.
    expect(bridge.decode(subscribe(4))).toMatchObject({
      subscriptions: [{ topic: "t", qos: 1, nl: true, rap: true }],
    });
    const plain = v4.decode(subscribe(4));
    expect(plain).toMatchObject({ cmd: "subscribe", subscriptions: [{ topic: "t", qos: 1 }] });
    expect(plain).not.toHaveProperty("properties");
    expect((plain as { subscriptions: { nl?: boolean }[] }).subscriptions[0]!.nl).toBeUndefined();
  });

  it("turns every failure on random frames into MqttError, never another exception (property)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(4, 5),
        fc.integer({ min: 0, max: 255 }),
        fc.uint8Array({ maxLength: 64 }),
        (v, first, body) => {
          const frame = Buffer.from([first, body.length, ...body]);
          const d = new PacketDecoder(v);
          try {
            d.decode(frame);
          } catch (e) {
            expect(e).toBeInstanceOf(MqttError);
          }
        },
      ),
      { numRuns: 2000, seed: 3 },
    );
  });
});

describe("flow headers", () => {
  it("round-trips data and control headers", () => {
    for (const h of [
      { type: FlowType.ClientData, flowId: 2n, expiryInterval: 0n, flags: 0 },
      { type: FlowType.ClientData, flowId: 1234567n, expiryInterval: 86_400n, flags: 0xff },
      { type: FlowType.ServerData, flowId: 3n, expiryInterval: 2n ** 40n, flags: 1 },
      { type: FlowType.Control, flowId: 0n, expiryInterval: 0n, flags: 0x11 },
    ]) {
      const bytes = encodeFlowHeader(h);
      expect(isFlowHeaderStart(bytes[0]!)).toBe(true);
      const r = decodeFlowHeader(bytes);
      expect(r).toEqual({ kind: "header", header: { ...h, length: bytes.length } });
      for (let i = 0; i < bytes.length; i++)
        expect(decodeFlowHeader(bytes.subarray(0, i)).kind).toBe("incomplete");
    }
  });

  it("no MQTT packet starts like a flow header", () => {
    for (let b = 0; b < 256; b++) {
      const mqttFirstBytes = [
        0x10, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x3a, 0x3b, 0x3c, 0x3d, 0x40, 0x50, 0x62, 0x70,
      ];
      mqttFirstBytes.push(0x82, 0xa2, 0xc0, 0xe0, 0xf0);
      if (mqttFirstBytes.includes(b)) expect(isFlowHeaderStart(b)).toBe(false);
    }
  });

  it("refuses user-defined and unknown flow types", () => {
    expect(decodeFlowHeader(Uint8Array.of(0x14, 0, 0)).kind).toBe("invalid");
    expect(decodeFlowHeader(Uint8Array.of(0x15, 0, 0, 0)).kind).toBe("invalid");
  });
});
