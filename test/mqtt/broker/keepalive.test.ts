/** Keepalive: 1.5x the interval [MQTT-3.1.2-22], PINGREQ/PINGRESP, traffic on any stream counts. */
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import { connect, makeBroker, settle, TRANSPORT } from "./helpers.js";

describe("keepalive", () => {
  it("v5: closes after 1.5 x keepalive of silence with DISCONNECT 0x8D", async () => {
    const { broker, clock } = makeBroker();
    const c = await connect(broker, { clientId: "k", keepalive: 10 });
    clock.advance(14_999);
    await settle();
    expect(c.ctl.ended).toBe(false);
    clock.advance(1);
    expect((await c.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.KeepAliveTimeout);
    await c.ctl.closed;
    expect(broker.metrics.clients).toBe(0);
  });

  it("3.1.1: closes silently after 1.5 x keepalive", async () => {
    const { broker, clock } = makeBroker();
    const c = await connect(broker, { version: 4, clientId: "k", keepalive: 2 });
    clock.advance(3_000);
    await c.ctl.closed;
    expect(c.ctl.received.map((p) => p.cmd)).toEqual(["connack"]);
  });

  it("PINGREQ gets PINGRESP on the control stream and keeps the connection alive", async () => {
    const { broker, clock } = makeBroker();
    const c = await connect(broker, { clientId: "k", keepalive: 10 });
    for (let i = 0; i < 5; i++) {
      clock.advance(9_000);
      c.ctl.send({ cmd: "pingreq" });
      await c.ctl.expect("pingresp"); // [MQTT-3.12.4-1]
    }
    expect(c.ctl.ended).toBe(false);
  });

  // (TCP has one stream: no data streams.)
  it.runIf(TRANSPORT !== "tcp")("traffic on a data stream counts as activity", async () => {
    const { broker, clock } = makeBroker();
    const c = await connect(broker, { clientId: "k", keepalive: 10 });
    const data = c.stream();
    for (let i = 1; i <= 3; i++) {
      clock.advance(14_000);
      data.send({
        cmd: "publish",
        topic: "t",
        payload: Buffer.from("x"),
        qos: 1,
        retain: false,
        dup: false,
        messageId: i,
      });
      await data.expect("puback");
    }
    expect(c.ctl.ended).toBe(false);
    clock.advance(15_000);
    await c.ctl.closed;
  });

  it("keepalive 0 disables the timeout", async () => {
    const { broker, clock } = makeBroker();
    const c = await connect(broker, { clientId: "k", keepalive: 0 });
    clock.advance(86_400_000);
    await settle();
    expect(c.ctl.ended).toBe(false);
  });

  it("server keep alive replaces the client's value", async () => {
    const { broker, clock } = makeBroker({ serverKeepAlive: 4 });
    const c = await connect(broker, { clientId: "k", keepalive: 0 });
    clock.advance(6_000);
    expect((await c.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.KeepAliveTimeout);
  });
});
