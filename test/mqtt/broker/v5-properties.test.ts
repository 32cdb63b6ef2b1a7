/** v5 properties passthrough and reason codes on every acknowledgement. */
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import { connect, makeBroker, subscribe } from "./helpers.js";

describe("v5 properties and reason codes", () => {
  it("forwards user properties (in order), content type, response topic, correlation data, payload format", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "req", 0);
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send({
      cmd: "publish",
      topic: "req",
      payload: Buffer.from("{}"),
      qos: 0,
      retain: false,
      dup: false,
      properties: {
        payloadFormatIndicator: true,
        contentType: "application/json",
        responseTopic: "resp/p",
        correlationData: Buffer.from([1, 2, 3]),
        userProperties: { z: "last", a: ["1", "2"] },
      },
    });
    const m = await s.ctl.expect("publish");
    expect(m.properties).toMatchObject({
      payloadFormatIndicator: true, // [MQTT-3.3.2-4]
      contentType: "application/json", // [MQTT-3.3.2-20]
      responseTopic: "resp/p", // [MQTT-3.3.2-15]
      correlationData: Buffer.from([1, 2, 3]), // [MQTT-3.3.2-16]
    });
    expect(Object.entries(m.properties?.userProperties ?? {})).toEqual([
      ["z", "last"],
      ["a", ["1", "2"]],
    ]); // [MQTT-3.3.2-17] [MQTT-3.3.2-18]
  });

  it("authorizePublish: QoS 1 gets PUBACK 0x87, QoS 2 PUBREC 0x87, QoS 0 is dropped", async () => {
    const { broker } = makeBroker({ authorizePublish: (_c, topic) => !topic.startsWith("secret") });
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "#", 0);
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send({
      cmd: "publish",
      topic: "secret/0",
      payload: Buffer.from("x"),
      qos: 0,
      retain: false,
      dup: false,
    });
    p.ctl.send({
      cmd: "publish",
      topic: "secret/1",
      payload: Buffer.from("x"),
      qos: 1,
      retain: false,
      dup: false,
      messageId: 1,
    });
    expect((await p.ctl.expect("puback")).reasonCode).toBe(ReasonCode.NotAuthorized);
    p.ctl.send({
      cmd: "publish",
      topic: "secret/2",
      payload: Buffer.from("x"),
      qos: 2,
      retain: false,
      dup: false,
      messageId: 2,
    });
    expect((await p.ctl.expect("pubrec")).reasonCode).toBe(ReasonCode.NotAuthorized);
    await s.ctl.expectNothing();
    // The refused QoS 2 identifier is free again [MQTT-4.3.3-9].
    expect(broker.session("p")?.inboundQos2.size).toBe(0);
  });

  it("authorizeSubscribe: refusals (0x87 / 3.1.1 0x80) and QoS downgrades, async", async () => {
    const { broker } = makeBroker({
      authorizeSubscribe: async (_c, filter, qos) => (filter === "no" ? false : filter === "low" ? 0 : qos),
    });
    for (const version of [4, 5] as const) {
      const s = await connect(broker, { version, clientId: `s${version}` });
      s.ctl.send({
        cmd: "subscribe",
        messageId: 5,
        subscriptions: [
          { topic: "no", qos: 1 },
          { topic: "low", qos: 2 },
          { topic: "yes", qos: 2 },
        ],
      });
      const ack = await s.ctl.expect("suback");
      expect(ack.messageId).toBe(5);
      expect(ack.granted).toEqual([version === 5 ? ReasonCode.NotAuthorized : 0x80, 0, 2]);
    }
  });

  it("UNSUBACK: Success or No subscription existed per filter, in order", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "a", 0);
    s.ctl.send({ cmd: "unsubscribe", messageId: 4, unsubscriptions: ["a", "b"] });
    const ack = await s.ctl.expect("unsuback");
    expect(ack.messageId).toBe(4);
    expect(ack.granted).toEqual([ReasonCode.Success, ReasonCode.NoSubscriptionExisted]);
    expect(broker.metrics.subscriptions).toBe(0);
  });

  it("3.1.1 UNSUBACK has no reason codes", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { version: 4, clientId: "s" });
    s.ctl.send({ cmd: "unsubscribe", messageId: 4, unsubscriptions: ["x"] });
    expect((await s.ctl.expect("unsuback")).messageId).toBe(4);
  });

  it("a refused subscriber quota is 0x97", async () => {
    const { broker } = makeBroker({ maxSubscriptionsPerClient: 1 });
    const s = await connect(broker, { clientId: "s" });
    expect(await subscribe(s.ctl, "a", 0)).toEqual([0]);
    expect(await subscribe(s.ctl, "b", 0)).toEqual([ReasonCode.QuotaExceeded]);
    expect(await subscribe(s.ctl, "a", 1)).toEqual([1]); // replacing is fine
  });
});
