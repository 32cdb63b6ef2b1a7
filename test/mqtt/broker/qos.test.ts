/** QoS 0/1/2 in both directions, MQTT 3.1.1 and 5.0. */
import type { IPublishPacket } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import { connect, makeBroker, settle, subscribe } from "./helpers.js";

function pub(topic: string, payload: string, qos: 0 | 1 | 2, messageId?: number): IPublishPacket {
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

for (const version of [4, 5] as const) {
  describe(`QoS (MQTT ${version === 4 ? "3.1.1" : "5.0"})`, () => {
    it("delivers at min(published, granted) QoS", async () => {
      const { broker } = makeBroker();
      const s0 = await connect(broker, { version, clientId: "s0" });
      const s2 = await connect(broker, { version, clientId: "s2" });
      const p = await connect(broker, { version, clientId: "p" });
      await subscribe(s0.ctl, "t", 0);
      await subscribe(s2.ctl, "t", 2);
      p.ctl.send(pub("t", "one", 1, 1));
      await p.ctl.expect("puback");
      const a = await s0.ctl.expect("publish");
      expect(a.qos).toBe(0);
      expect(a.messageId).toBeUndefined();
      const b = await s2.ctl.expect("publish");
      expect(b.qos).toBe(1);
      expect(b.dup).toBe(false);
      expect(b.payload.toString()).toBe("one");
    });

    it("QoS 1 outbound: the message stays in flight until PUBACK", async () => {
      const { broker } = makeBroker();
      const s = await connect(broker, { version, clientId: "s" });
      const p = await connect(broker, { version, clientId: "p" });
      await subscribe(s.ctl, "t", 1);
      p.ctl.send(pub("t", "m", 1, 9));
      const d = await s.ctl.expect("publish");
      expect(broker.session("s")?.inflight.size).toBe(1);
      s.ctl.send({ cmd: "puback", messageId: d.messageId! });
      await settle();
      expect(broker.session("s")?.inflight.size).toBe(0);
    });

    it("QoS 2 inbound: delivered once, even when the PUBLISH is resent before PUBREL", async () => {
      const { broker } = makeBroker();
      const s = await connect(broker, { version, clientId: "s" });
      const p = await connect(broker, { version, clientId: "p" });
      await subscribe(s.ctl, "t", 0);
      p.ctl.send(pub("t", "once", 2, 5));
      expect((await p.ctl.expect("pubrec")).messageId).toBe(5);
      p.ctl.send({ ...pub("t", "once", 2, 5), dup: true });
      expect((await p.ctl.expect("pubrec")).messageId).toBe(5);
      p.ctl.send({ cmd: "pubrel", messageId: 5 });
      expect((await p.ctl.expect("pubcomp")).messageId).toBe(5);
      await s.ctl.expect("publish");
      await s.ctl.expectNothing();
      // After PUBCOMP the identifier is new again [MQTT-4.3.3-12].
      p.ctl.send(pub("t", "again", 2, 5));
      await p.ctl.expect("pubrec");
      expect((await s.ctl.expect("publish")).payload.toString()).toBe("again");
    });

    it("QoS 2 outbound: PUBLISH, PUBREC -> PUBREL, PUBCOMP", async () => {
      const { broker } = makeBroker();
      const s = await connect(broker, { version, clientId: "s" });
      const p = await connect(broker, { version, clientId: "p" });
      await subscribe(s.ctl, "t", 2);
      p.ctl.send(pub("t", "x", 2, 1));
      await p.ctl.expect("pubrec");
      const d = await s.ctl.expect("publish");
      expect(d.qos).toBe(2);
      s.ctl.send({ cmd: "pubrec", messageId: d.messageId! });
      expect((await s.ctl.expect("pubrel")).messageId).toBe(d.messageId);
      expect(broker.session("s")?.inflight.get(d.messageId!)?.state).toBe("pubrel");
      s.ctl.send({ cmd: "pubcomp", messageId: d.messageId! });
      await settle();
      expect(broker.session("s")?.inflight.size).toBe(0);
    });

    it("PUBREL for an unknown identifier still gets PUBCOMP", async () => {
      const { broker } = makeBroker();
      const p = await connect(broker, { version, clientId: "p" });
      p.ctl.send({ cmd: "pubrel", messageId: 77 });
      const c = await p.ctl.expect("pubcomp");
      expect(c.messageId).toBe(77);
      if (version === 5) expect(c.reasonCode).toBe(ReasonCode.PacketIdentifierNotFound);
    });

    it("packet identifiers of outbound messages are unique among those in flight", async () => {
      const { broker } = makeBroker();
      const s = await connect(broker, { version, clientId: "s" });
      const p = await connect(broker, { version, clientId: "p" });
      await subscribe(s.ctl, "t", 1);
      for (let i = 1; i <= 20; i++) p.ctl.send(pub("t", String(i), 1, i));
      const ids = new Set<number>();
      for (let i = 1; i <= 20; i++) {
        const d = await s.ctl.expect("publish");
        expect(d.payload.toString()).toBe(String(i)); // order kept [MQTT-4.6.0-6]
        ids.add(d.messageId!);
      }
      expect(ids.size).toBe(20);
      expect(ids.has(0)).toBe(false);
    });
  });
}

describe("QoS reason codes (v5)", () => {
  it("PUBACK/PUBREC say 0x10 when nobody is subscribed", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(pub("nobody", "x", 1, 1));
    expect((await p.ctl.expect("puback")).reasonCode).toBe(ReasonCode.NoMatchingSubscribers);
    p.ctl.send(pub("nobody", "x", 2, 2));
    expect((await p.ctl.expect("pubrec")).reasonCode).toBe(ReasonCode.NoMatchingSubscribers);
  });

  it("a PUBREC error from the subscriber ends the exchange (no PUBREL, not resent)", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    const p = await connect(broker, { clientId: "p" });
    await subscribe(s.ctl, "t", 2);
    p.ctl.send(pub("t", "x", 2, 1));
    const d = await s.ctl.expect("publish");
    s.ctl.send({ cmd: "pubrec", messageId: d.messageId!, reasonCode: 0x80 });
    await s.ctl.expectNothing();
    expect(broker.session("s")?.inflight.size).toBe(0);
  });
});
