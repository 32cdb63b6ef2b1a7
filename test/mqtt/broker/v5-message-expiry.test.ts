/** v5 Message Expiry [MQTT-3.3.2-5] [MQTT-3.3.2-6]. */
import { describe, expect, it } from "vitest";
import { connect, makeBroker, settle, subscribe } from "./helpers.js";

describe("v5 message expiry", () => {
  it("queued messages expire while the subscriber is away; fresh ones carry the remaining time", async () => {
    const { broker, clock } = makeBroker();
    const s = await connect(broker, {
      clientId: "s",
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    await subscribe(s.ctl, "t", 1);
    s.kill();
    await s.ctl.closed;
    await settle();
    const p = await connect(broker, { clientId: "p" });
    const send = (payload: string, expiry: number, id: number) =>
      p.ctl.send({
        cmd: "publish",
        topic: "t",
        payload: Buffer.from(payload),
        qos: 1,
        retain: false,
        dup: false,
        messageId: id,
        properties: { messageExpiryInterval: expiry },
      });
    send("short", 5, 1);
    send("long", 100, 2);
    await p.ctl.expect("puback");
    await p.ctl.expect("puback");
    clock.advance(30_000);
    const back = await connect(broker, {
      clientId: "s",
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    const m = await back.ctl.expect("publish");
    expect(m.payload.toString()).toBe("long");
    expect(m.properties?.messageExpiryInterval).toBe(70);
    await back.ctl.expectNothing();
    expect(broker.metrics.dropped.expired).toBe(1);
  });

  it("messages without expiry are forwarded without the property", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "t", 0);
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send({ cmd: "publish", topic: "t", payload: Buffer.from("x"), qos: 0, retain: false, dup: false });
    expect((await s.ctl.expect("publish")).properties?.messageExpiryInterval).toBeUndefined();
  });
});
