import { describe, expect, it } from "vitest";
import { connect, makeBroker, subscribe } from "./helpers.js";

describe("smoke", () => {
  it("connects, subscribes, publishes QoS 0/1/2", async () => {
    const { broker } = makeBroker();
    const sub = await connect(broker, { clientId: "sub" });
    expect(sub.connack?.reasonCode).toBe(0);
    const pub = await connect(broker, { clientId: "pub" });
    expect(await subscribe(sub.ctl, "a/#", 2)).toEqual([2]);
    pub.ctl.send({
      cmd: "publish",
      topic: "a/b",
      payload: Buffer.from("x"),
      qos: 0,
      retain: false,
      dup: false,
    });
    const m0 = await sub.ctl.expect("publish");
    expect(m0.topic).toBe("a/b");
    pub.ctl.send({
      cmd: "publish",
      topic: "a/c",
      payload: Buffer.from("y"),
      qos: 1,
      retain: false,
      dup: false,
      messageId: 7,
    });
    const ack = await pub.ctl.expect("puback");
    expect(ack.messageId).toBe(7);
    const m1 = await sub.ctl.expect("publish");
    expect(m1.qos).toBe(1);
    sub.ctl.send({ cmd: "puback", messageId: m1.messageId! });
    pub.ctl.send({
      cmd: "publish",
      topic: "a/d",
      payload: Buffer.from("z"),
      qos: 2,
      retain: false,
      dup: false,
      messageId: 8,
    });
    expect((await pub.ctl.expect("pubrec")).messageId).toBe(8);
    pub.ctl.send({ cmd: "pubrel", messageId: 8 });
    expect((await pub.ctl.expect("pubcomp")).messageId).toBe(8);
    const m2 = await sub.ctl.expect("publish");
    expect(m2.qos).toBe(2);
    sub.ctl.send({ cmd: "pubrec", messageId: m2.messageId! });
    expect((await sub.ctl.expect("pubrel")).messageId).toBe(m2.messageId);
    sub.ctl.send({ cmd: "pubcomp", messageId: m2.messageId! });
    await new Promise((r) => setTimeout(r, 10));
    expect(broker.session("sub")?.inflight.size).toBe(0);
    expect(broker.metrics.clients).toBe(2);
    await broker.close();
  });
});
