/**
 * DISCONNECT on the control stream while packets are still on their way on other streams (MQTT
 * over QUIC: streams are not ordered with each other). `mqttv5 pub --quic-stream-strategy
 * per-publish` writes a QoS 0 PUBLISH on a fresh uni stream and DISCONNECT on the control stream
 * at once; the broker used to act on the DISCONNECT first and drop the PUBLISH. Now it keeps
 * reading the other streams until they end, the client leaves, or `disconnectDrainTimeout`
 * passes, and takes nothing more from the control stream [MQTT-3.14.4-1].
 */
import type { IPublishPacket } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import type { DisconnectInfo } from "../../../src/mqtt/broker/connection.js";
import { encodeFlowHeader, FlowType } from "../../../src/mqtt/flow-header.js";
import { connect, makeBroker, PacketStream, settle, subscribe } from "./helpers.js";

function pub(topic: string, payload: string, qos: 0 | 1 | 2 = 0, messageId?: number): IPublishPacket {
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

describe("DISCONNECT with packets still arriving on other streams", () => {
  it("a QoS 0 PUBLISH on a fresh uni stream, read after the DISCONNECT, is delivered", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "d/#", 0);
    const p = await connect(broker, { clientId: "p" });
    const ends: DisconnectInfo[] = [];
    broker.on("clientDisconnect", (c, info) => {
      if (c.clientId === "p") ends.push(info);
    });
    // The DISCONNECT is read first: the uni stream's bytes come a tick later.
    p.ctl.send({ cmd: "disconnect", reasonCode: 0 });
    const u = p.conn.openStream({ bidi: false });
    u.write(encodeFlowHeader({ type: FlowType.ClientData, flowId: 2n }));
    new PacketStream(u, 5).send(pub("d/1", "late but sent"));
    u.end();
    const msg = await s.ctl.expect("publish");
    expect([msg.topic, msg.payload.toString(), msg.qos]).toEqual(["d/1", "late but sent", 0]);
    // Every data stream ended: the connection closes without waiting for the bound.
    await p.conn.closed();
    expect(ends).toEqual([{ initiator: "client", reasonCode: 0, reason: "client disconnected" }]);
  });

  it("an open data stream is read until disconnectDrainTimeout, then the connection closes", async () => {
    const { broker, clock } = makeBroker({ disconnectDrainTimeout: 400 });
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "d/#", 1);
    const p = await connect(broker, {
      clientId: "p",
      will: { topic: "d/will", payload: Buffer.from("w"), qos: 0, retain: false },
    });
    const d = p.stream();
    d.send(pub("d/before", "1"));
    expect((await s.ctl.expect("publish")).topic).toBe("d/before");
    p.ctl.send({ cmd: "disconnect", reasonCode: 0 });
    await settle();
    // Still draining: the data stream is read, and a QoS 1 PUBLISH on it is acknowledged there.
    d.send(pub("d/during", "2", 1, 7));
    expect((await d.expect("puback")).messageId).toBe(7);
    expect((await s.ctl.expect("publish")).topic).toBe("d/during");
    // Nothing after DISCONNECT on the control stream counts [MQTT-3.14.4-1].
    p.ctl.send(pub("d/after-disconnect", "x"));
    await settle();
    expect(p.conn.closeInfo).toBeUndefined();
    clock.advance(399);
    await settle();
    expect(p.conn.closeInfo).toBeUndefined();
    clock.advance(1);
    const info = await p.conn.closed();
    expect(info.code).toBe(0);
    // A normal DISCONNECT: no will, and the late control-stream PUBLISH went nowhere.
    await s.ctl.expectNothing();
  });

  it("the client closing the connection ends the drain; what arrived before still counts", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "d/#", 0);
    const p = await connect(broker, { clientId: "p" });
    const d = p.stream();
    await settle();
    p.ctl.send({ cmd: "disconnect", reasonCode: 0 });
    d.send(pub("d/x", "in flight"));
    p.conn.close(0, "bye");
    expect((await s.ctl.expect("publish")).payload.toString()).toBe("in flight");
    await p.conn.closed();
    await settle();
    expect(broker.session("p")).toBeUndefined();
  });

  it("DISCONNECT 0x04 (with will) still sends the will, after the drain", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "d/#", 0);
    const p = await connect(broker, {
      clientId: "p",
      will: { topic: "d/will", payload: Buffer.from("gone"), qos: 0, retain: false },
    });
    p.ctl.send({ cmd: "disconnect", reasonCode: 0x04 });
    const u = new PacketStream(p.conn.openStream({ bidi: false }), 5);
    u.send(pub("d/last", "last"));
    u.stream.end();
    expect((await s.ctl.expect("publish")).topic).toBe("d/last");
    expect((await s.ctl.expect("publish")).topic).toBe("d/will");
  });
});
