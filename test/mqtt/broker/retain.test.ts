/** Retained messages: set, replace, clear, delivery on subscribe, Retain Handling, Retain As Published. */
import type { IPublishPacket } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { connect, makeBroker, settle, subscribe } from "./helpers.js";

function retained(topic: string, payload: string, qos: 0 | 1 | 2 = 0, messageId?: number): IPublishPacket {
  return {
    cmd: "publish",
    topic,
    payload: Buffer.from(payload),
    qos,
    retain: true,
    dup: false,
    ...(messageId ? { messageId } : {}),
  };
}

describe("retained messages", () => {
  it("set, replace, and clear with an empty payload [MQTT-3.3.1-5] [MQTT-3.3.1-6]", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(retained("r/a", "1"));
    p.ctl.send(retained("r/a", "2"));
    p.ctl.send(retained("r/b", "b"));
    await settle();
    expect(broker.metrics.retained).toBe(2);
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "r/+", 1);
    const got = [await s.ctl.expect("publish"), await s.ctl.expect("publish")];
    expect(got.map((m) => [m.topic, m.payload.toString(), m.retain]).sort()).toEqual([
      ["r/a", "2", true],
      ["r/b", "b", true],
    ]);
    p.ctl.send(retained("r/a", ""));
    await s.ctl.expect("publish"); // the empty message is still forwarded, with RETAIN 0
    await settle();
    expect(broker.metrics.retained).toBe(1);
    const s2 = await connect(broker, { clientId: "s2" });
    await subscribe(s2.ctl, "r/#", 0);
    const only = await s2.ctl.expect("publish");
    expect(only.topic).toBe("r/b");
    await s2.ctl.expectNothing();
  });

  it("live deliveries carry RETAIN 0 unless Retain As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13]", async () => {
    const { broker } = makeBroker();
    const plain = await connect(broker, { clientId: "plain" });
    const rap = await connect(broker, { clientId: "rap" });
    await subscribe(plain.ctl, "t", 0);
    await subscribe(rap.ctl, "t", 0, { rap: true });
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(retained("t", "x"));
    expect((await plain.ctl.expect("publish")).retain).toBe(false);
    expect((await rap.ctl.expect("publish")).retain).toBe(true);
  });

  it("3.1.1 subscribers get retained messages with RETAIN 1 and live ones with RETAIN 0", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { version: 4, clientId: "p" });
    p.ctl.send(retained("t", "old"));
    await settle();
    const s = await connect(broker, { version: 4, clientId: "s" });
    await subscribe(s.ctl, "t", 0);
    expect((await s.ctl.expect("publish")).retain).toBe(true);
    p.ctl.send(retained("t", "new"));
    expect((await s.ctl.expect("publish")).retain).toBe(false);
  });

  it("Retain Handling 0 sends on every subscribe, 1 only for a new subscription, 2 never", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(retained("t", "r"));
    await settle();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "t", 0, { rh: 0 });
    await s.ctl.expect("publish");
    await subscribe(s.ctl, "t", 0, { rh: 0 });
    await s.ctl.expect("publish"); // [MQTT-3.8.4-4]
    await subscribe(s.ctl, "t", 0, { rh: 1 });
    await s.ctl.expectNothing(); // existed [MQTT-3.3.1-10]
    await subscribe(s.ctl, "t/..", 0, { rh: 1 });
    await subscribe(s.ctl, "+", 0, { rh: 1 });
    expect((await s.ctl.expect("publish")).topic).toBe("t");
    await subscribe(s.ctl, "#", 0, { rh: 2 });
    await s.ctl.expectNothing(); // [MQTT-3.3.1-11]
  });

  it("delivers retained at min(retained QoS, granted QoS)", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(retained("t", "q2", 2, 1));
    await p.ctl.expect("pubrec");
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "t", 1);
    const m = await s.ctl.expect("publish");
    expect(m.qos).toBe(1);
    expect(m.retain).toBe(true);
  });

  it("shared subscriptions receive no retained messages", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(retained("t", "r"));
    await settle();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "$share/g/t", 0);
    await s.ctl.expectNothing();
  });

  it("leading wildcards do not return $-topics; explicit filters do [MQTT-4.7.2-1]", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(retained("$SYS/x", "sys"));
    p.ctl.send(retained("a/b", "ab"));
    await settle();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "#", 0);
    expect((await s.ctl.expect("publish")).topic).toBe("a/b");
    await s.ctl.expectNothing();
    await subscribe(s.ctl, "+/x", 0);
    await s.ctl.expectNothing();
    await subscribe(s.ctl, "$SYS/#", 0);
    expect((await s.ctl.expect("publish")).topic).toBe("$SYS/x");
  });

  it("retained messages expire (v5 Message Expiry) and are sent with the remaining interval", async () => {
    const { broker, clock } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send({ ...retained("e", "soon"), properties: { messageExpiryInterval: 10 } });
    await settle();
    clock.advance(4_000);
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "e", 0);
    expect((await s.ctl.expect("publish")).properties?.messageExpiryInterval).toBe(6);
    clock.advance(6_000);
    const s2 = await connect(broker, { clientId: "s2" });
    await subscribe(s2.ctl, "e", 0);
    await s2.ctl.expectNothing();
  });

  it("maxRetainedMessages: new topics beyond the bound are not retained, existing ones still replace", async () => {
    const { broker } = makeBroker({ maxRetainedMessages: 1 });
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(retained("one", "1"));
    p.ctl.send(retained("two", "2"));
    p.ctl.send(retained("one", "1b"));
    await settle();
    expect(broker.metrics.retained).toBe(1);
    expect(broker.metrics.retainedRejected).toBe(1);
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "#", 0);
    expect((await s.ctl.expect("publish")).payload.toString()).toBe("1b");
  });
});
