/** v5 Subscription Identifiers [MQTT-3.3.4-3] [MQTT-3.3.4-4] [MQTT-3.3.4-6]. */
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import { connect, makeBroker, subscribe } from "./helpers.js";

describe("v5 Subscription Identifiers", () => {
  it("deliveries carry the identifiers of all matching subscriptions", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "a/+", 0, { subscriptionIdentifier: 1, messageId: 1 });
    await subscribe(s.ctl, "a/#", 1, { subscriptionIdentifier: 2, messageId: 2 });
    await subscribe(s.ctl, "a/b", 0, { messageId: 3 });
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send({
      cmd: "publish",
      topic: "a/b",
      payload: Buffer.from("x"),
      qos: 1,
      retain: false,
      dup: false,
      messageId: 1,
    });
    const m = await s.ctl.expect("publish");
    expect(m.qos).toBe(1); // the maximum of the matches [MQTT-3.3.4-2]
    expect([m.properties?.subscriptionIdentifier].flat().sort()).toEqual([1, 2]);
    await s.ctl.expectNothing(); // one copy
    p.ctl.send({
      cmd: "publish",
      topic: "a/c/d",
      payload: Buffer.from("y"),
      qos: 0,
      retain: false,
      dup: false,
    });
    expect((await s.ctl.expect("publish")).properties?.subscriptionIdentifier).toBe(2);
  });

  it("retained messages sent on subscribe carry the subscription's identifier", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send({ cmd: "publish", topic: "r", payload: Buffer.from("x"), qos: 0, retain: true, dup: false });
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "r", 0, { subscriptionIdentifier: 77 });
    expect((await s.ctl.expect("publish")).properties?.subscriptionIdentifier).toBe(77);
  });

  it("a PUBLISH from a client with a Subscription Identifier is a Protocol Error", async () => {
    const { broker } = makeBroker();
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send({
      cmd: "publish",
      topic: "t",
      payload: Buffer.from("x"),
      qos: 0,
      retain: false,
      dup: false,
      properties: { subscriptionIdentifier: 5 },
    });
    expect((await p.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.ProtocolError);
  });
});
