/** v5 Receive Maximum both ways [MQTT-3.3.4-7] [MQTT-3.3.4-9]; a flood gets 0x93, others go on. */
import type { IPublishPacket } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import { connect, makeBroker, subscribe } from "./helpers.js";

function pub(payload: string, qos: 1 | 2, messageId: number): IPublishPacket {
  return {
    cmd: "publish",
    topic: "t",
    payload: Buffer.from(payload),
    qos,
    retain: false,
    dup: false,
    messageId,
  };
}

describe("v5 Receive Maximum", () => {
  it("inbound: more unacknowledged QoS 2 PUBLISH than our Receive Maximum is DISCONNECT 0x93", async () => {
    const { broker } = makeBroker({ receiveMaximum: 3 });
    const bystander = await connect(broker, { clientId: "ok" });
    await subscribe(bystander.ctl, "t", 0);
    const f = await connect(broker, { clientId: "flood" });
    expect(f.connack?.properties?.receiveMaximum).toBe(3);
    for (let i = 1; i <= 3; i++) f.ctl.send(pub(`m${i}`, 2, i));
    for (let i = 1; i <= 3; i++) await f.ctl.expect("pubrec");
    f.ctl.send(pub("m4", 2, 4)); // no PUBREL sent: the fourth exceeds the quota
    expect((await f.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.ReceiveMaximumExceeded);
    await f.ctl.closed;
    // The broker keeps serving everyone else.
    for (let i = 1; i <= 3; i++)
      expect((await bystander.ctl.expect("publish")).payload.toString()).toBe(`m${i}`);
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(pub("after", 1, 1));
    await p.ctl.expect("puback");
    expect((await bystander.ctl.expect("publish")).payload.toString()).toBe("after");
  });

  it("inbound: a burst of QoS 1 beyond the maximum in one write is 0x93 too", async () => {
    const { broker } = makeBroker({ receiveMaximum: 2 });
    const f = await connect(broker, { clientId: "flood" });
    const mqtt = await import("mqtt-packet");
    const burst = Buffer.concat(
      [1, 2, 3].map((i) => mqtt.default.generate(pub(`m${i}`, 1, i), { protocolVersion: 5 })),
    );
    f.ctl.sendRaw(burst);
    const seen = [];
    for (;;) {
      const p = await f.ctl.next();
      if (!p) break;
      seen.push(p.cmd === "disconnect" ? `disconnect:${p.reasonCode}` : p.cmd);
      if (p.cmd === "disconnect") break;
    }
    expect(seen).toEqual([`disconnect:${ReasonCode.ReceiveMaximumExceeded}`]);
  });

  it("within the maximum, QoS 2 flows complete and free the quota", async () => {
    const { broker } = makeBroker({ receiveMaximum: 1 });
    const c = await connect(broker, { clientId: "c" });
    for (let i = 1; i <= 5; i++) {
      c.ctl.send(pub(`m${i}`, 2, i));
      await c.ctl.expect("pubrec");
      c.ctl.send({ cmd: "pubrel", messageId: i });
      await c.ctl.expect("pubcomp");
    }
    expect(c.ctl.ended).toBe(false);
  });

  it("outbound: respects the client's Receive Maximum", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s", properties: { receiveMaximum: 1 } });
    await subscribe(s.ctl, "t", 2);
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(pub("a", 1, 1));
    p.ctl.send(pub("b", 1, 2));
    const a = await s.ctl.expect("publish");
    await s.ctl.expectNothing();
    s.ctl.send({ cmd: "puback", messageId: a.messageId! });
    expect((await s.ctl.expect("publish")).payload.toString()).toBe("b");
  });
});
