/** Maximum Packet Size both ways: 0x95 inbound, silent drop outbound [MQTT-3.1.2-24] [MQTT-3.1.2-25]. */
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import { connect, makeBroker, subscribe } from "./helpers.js";

describe("maximum packet size", () => {
  it("inbound: a packet over our maximum is DISCONNECT 0x95 (v5), detected from the header alone", async () => {
    const { broker } = makeBroker({ maxPacketSize: 1024 });
    const c = await connect(broker, { clientId: "big" });
    expect(c.connack?.properties?.maximumPacketSize).toBe(1024);
    // Header announcing a 100 MB PUBLISH; no payload follows.
    c.ctl.sendRaw([0x30, 0x80, 0x80, 0x80, 0x30]);
    expect((await c.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.PacketTooLarge);
    await c.ctl.closed;
  });

  it("inbound 3.1.1: the connection is closed", async () => {
    const { broker } = makeBroker({ maxPacketSize: 100 });
    const c = await connect(broker, { version: 4, clientId: "big" });
    c.ctl.send({ cmd: "publish", topic: "t", payload: Buffer.alloc(200), qos: 0, retain: false, dup: false });
    await c.ctl.closed;
    expect(c.ctl.received.map((p) => p.cmd)).toEqual(["connack"]);
  });

  it("outbound: a message larger than the client's maximum is dropped, later ones flow", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s", properties: { maximumPacketSize: 100 } });
    await subscribe(s.ctl, "t", 1);
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send({
      cmd: "publish",
      topic: "t",
      payload: Buffer.alloc(500),
      qos: 1,
      retain: false,
      dup: false,
      messageId: 1,
    });
    p.ctl.send({
      cmd: "publish",
      topic: "t",
      payload: Buffer.from("small"),
      qos: 1,
      retain: false,
      dup: false,
      messageId: 2,
    });
    const m = await s.ctl.expect("publish");
    expect(m.payload.toString()).toBe("small");
    expect(broker.metrics.dropped["too-large"]).toBe(1);
    expect(broker.session("s")?.inflight.size).toBe(1); // only "small", the big one counts as done
  });
});
