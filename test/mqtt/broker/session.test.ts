/** Sessions: Clean Start, Session Expiry, offline queueing with bounds, Session Present. */
import type { IPublishPacket } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import type { DropInfo } from "../../../src/mqtt/broker/broker.js";
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

describe("sessions", () => {
  it("v5: Session Expiry 0 ends the session at disconnect; Clean Start 0 then finds nothing", async () => {
    const { broker } = makeBroker();
    const a = await connect(broker, { clientId: "a" });
    await subscribe(a.ctl, "t", 1);
    a.ctl.send({ cmd: "disconnect", reasonCode: 0 });
    await a.ctl.closed;
    await settle();
    expect(broker.session("a")).toBeUndefined();
    const b = await connect(broker, { clientId: "a", clean: false });
    expect(b.connack?.sessionPresent).toBe(false); // [MQTT-3.2.2-3]
  });

  it("v5: a session with expiry survives the connection, queues QoS 1/2 and expires on time", async () => {
    const { broker, clock } = makeBroker();
    const s = await connect(broker, {
      clientId: "s",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    await subscribe(s.ctl, "t", 2);
    s.ctl.send({ cmd: "disconnect", reasonCode: 0 });
    await s.ctl.closed;
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(pub("t", "q0", 0));
    p.ctl.send(pub("t", "q1", 1, 1));
    p.ctl.send(pub("t", "q2", 2, 2));
    await p.ctl.expect("puback");
    expect((await p.ctl.expect("pubrec")).reasonCode).toBe(0);
    expect(broker.session("s")?.queue.map((r) => r.message.payload.toString())).toEqual(["q1", "q2"]);
    expect(broker.metrics.dropped.offline).toBe(1); // QoS 0 not queued by default
    clock.advance(59_000);
    const back = await connect(broker, {
      clientId: "s",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    expect(back.connack?.sessionPresent).toBe(true);
    const m1 = await back.ctl.expect("publish");
    const m2 = await back.ctl.expect("publish");
    expect([m1.payload.toString(), m2.payload.toString()]).toEqual(["q1", "q2"]);
    back.ctl.send({ cmd: "disconnect", reasonCode: 0 });
    await back.ctl.closed;
    await settle();
    clock.advance(59_999);
    expect(broker.session("s")).toBeDefined();
    clock.advance(1);
    expect(broker.session("s")).toBeUndefined(); // [MQTT-4.1.0-2]
    expect(broker.metrics.subscriptions).toBe(0);
  });

  it("Clean Start 1 discards an existing session [MQTT-3.1.2-4]", async () => {
    const { broker } = makeBroker();
    const a = await connect(broker, {
      clientId: "a",
      clean: false,
      properties: { sessionExpiryInterval: 100 },
    });
    await subscribe(a.ctl, "t", 1);
    a.ctl.send({ cmd: "disconnect", reasonCode: 0 });
    await a.ctl.closed;
    const b = await connect(broker, {
      clientId: "a",
      clean: true,
      properties: { sessionExpiryInterval: 100 },
    });
    expect(b.connack?.sessionPresent).toBe(false); // [MQTT-3.2.2-2]
    expect(broker.session("a")?.subscriptions.size).toBe(0);
  });

  it("3.1.1: clean session 0 persists subscriptions and queued messages", async () => {
    const { broker } = makeBroker();
    const a = await connect(broker, { version: 4, clientId: "a", clean: false });
    expect(a.connack?.sessionPresent).toBe(false);
    await subscribe(a.ctl, "t", 1);
    a.ctl.send({ cmd: "disconnect" });
    await a.ctl.closed;
    const p = await connect(broker, { version: 4, clientId: "p" });
    p.ctl.send(pub("t", "while away", 1, 1));
    await p.ctl.expect("puback");
    const b = await connect(broker, { version: 4, clientId: "a", clean: false });
    expect(b.connack?.sessionPresent).toBe(true);
    expect((await b.ctl.expect("publish")).payload.toString()).toBe("while away");
  });

  it("bounds the offline queue: drop oldest by default, counted and reported", async () => {
    const { broker } = makeBroker({ maxQueuedMessages: 3 });
    const drops: DropInfo[] = [];
    broker.on("drop", (d) => drops.push(d));
    const s = await connect(broker, {
      clientId: "s",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    await subscribe(s.ctl, "t", 1);
    s.kill();
    await s.ctl.closed;
    await settle();
    const p = await connect(broker, { clientId: "p" });
    for (let i = 1; i <= 5; i++) p.ctl.send(pub("t", `m${i}`, 1, i));
    for (let i = 1; i <= 5; i++) await p.ctl.expect("puback");
    expect(broker.session("s")?.queue.map((r) => r.message.payload.toString())).toEqual(["m3", "m4", "m5"]);
    expect(broker.metrics.dropped["queue-full"]).toBe(2);
    expect(drops.map((d) => [d.reason, d.clientId, d.message.payload.toString()])).toEqual([
      ["queue-full", "s", "m1"],
      ["queue-full", "s", "m2"],
    ]);
  });

  it("drop policy 'newest' keeps the oldest messages", async () => {
    const { broker } = makeBroker({ maxQueuedMessages: 2, queueDropPolicy: "newest" });
    const s = await connect(broker, {
      clientId: "s",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    await subscribe(s.ctl, "t", 1);
    s.kill();
    await s.ctl.closed;
    await settle();
    const p = await connect(broker, { clientId: "p" });
    for (let i = 1; i <= 4; i++) p.ctl.send(pub("t", `m${i}`, 1, i));
    for (let i = 1; i <= 4; i++) await p.ctl.expect("puback");
    expect(broker.session("s")?.queue.map((r) => r.message.payload.toString())).toEqual(["m1", "m2"]);
  });

  it("queueQos0 keeps QoS 0 messages for offline sessions", async () => {
    const { broker } = makeBroker({ queueQos0: true });
    const s = await connect(broker, {
      clientId: "s",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    await subscribe(s.ctl, "t", 0);
    s.kill();
    await s.ctl.closed;
    await settle();
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(pub("t", "zero", 0));
    await settle();
    const b = await connect(broker, {
      clientId: "s",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    const m = await b.ctl.expect("publish");
    expect(m.qos).toBe(0);
    expect(m.payload.toString()).toBe("zero");
  });

  it("DISCONNECT may change Session Expiry, but not from 0 (DISCONNECT 0x82)", async () => {
    const { broker, clock } = makeBroker();
    const a = await connect(broker, { clientId: "a", properties: { sessionExpiryInterval: 10 } });
    a.ctl.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 100 } });
    await a.ctl.closed;
    await settle();
    clock.advance(50_000);
    expect(broker.session("a")).toBeDefined();
    const b = await connect(broker, { clientId: "b" });
    b.ctl.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 100 } });
    expect((await b.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.ProtocolError);
  });

  it("caps Session Expiry at maxSessionExpiryInterval and says so in CONNACK", async () => {
    const { broker } = makeBroker({ maxSessionExpiryInterval: 30 });
    const a = await connect(broker, { clientId: "a", properties: { sessionExpiryInterval: 3600 } });
    expect(a.connack?.properties?.sessionExpiryInterval).toBe(30);
    expect(broker.session("a")?.expiryInterval).toBe(30);
  });

  it("the in-flight window is min(client Receive Maximum, maxInflight); the rest waits in the queue", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s", properties: { receiveMaximum: 2 } });
    await subscribe(s.ctl, "t", 1);
    const p = await connect(broker, { clientId: "p" });
    for (let i = 1; i <= 4; i++) p.ctl.send(pub("t", `m${i}`, 1, i));
    const a = await s.ctl.expect("publish");
    await s.ctl.expect("publish");
    await s.ctl.expectNothing(30); // [MQTT-3.3.4-9]
    expect(broker.session("s")?.queue.length).toBe(2);
    s.ctl.send({ cmd: "puback", messageId: a.messageId! });
    expect((await s.ctl.expect("publish")).payload.toString()).toBe("m3");
  });
});
