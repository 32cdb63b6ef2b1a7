/**
 * Client logic on an in-memory network with a manual clock: keepalive, backoff, receive maximum,
 * session handling, uni-stream deliveries, protocol errors. Every timing is exact.
 */
import type { IPublishPacket, Packet } from "mqtt-packet";
import { afterEach, describe, expect, it } from "vitest";
import {
  type ConnectOptions,
  connect,
  MemoryClientSessionStore,
  type MqttClient,
  MqttConnectTimeoutError,
} from "../../../src/mqtt/client/index.js";
import { ManualScheduler } from "./helpers.js";
import { flush, MemoryNet } from "./memory-transport.js";

const clients: MqttClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end(true)));
});

async function start(
  opts: ConnectOptions = {},
  net = new MemoryNet(),
): Promise<{ client: MqttClient; net: MemoryNet; clock: ManualScheduler }> {
  const clock = (opts.scheduler as ManualScheduler | undefined) ?? new ManualScheduler();
  const client = await connect("mqtt+quic://memory", {
    dial: net.dial,
    scheduler: clock,
    random: () => 0.5,
    ...opts,
  });
  clients.push(client);
  return { client, net, clock };
}

describe("keepalive", () => {
  it("sends PINGREQ after keepalive seconds without traffic on any stream, on the control stream", async () => {
    const { client, net, clock } = await start({ keepalive: 10 });
    const l = net.last;
    clock.advance(9_999);
    await flush();
    expect(l.received("pingreq")).toEqual([]);
    clock.advance(1);
    await flush();
    expect(l.received("pingreq").map((e) => e.stream)).toEqual([0]);
    // Traffic on a data stream at t=15 s postpones the next PINGREQ to t=25 s.
    clock.advance(5_000);
    await client.publish("ka/t", "x");
    await flush();
    expect(l.received("publish")[0].stream).toBeGreaterThan(0);
    clock.advance(9_999);
    await flush();
    expect(l.received("pingreq").length).toBe(1);
    clock.advance(1);
    await flush();
    expect(l.received("pingreq").length).toBe(2);
  });

  it("a missing PINGRESP ends the connection and reconnects with exponential backoff", async () => {
    const net = new MemoryNet();
    const { client, clock } = await start(
      { keepalive: 5, reconnect: { minDelay: 1000, maxDelay: 4000 } },
      net,
    );
    net.last.autoPingresp = false;
    const events: string[] = [];
    const errors: Error[] = [];
    for (const e of ["close", "offline", "reconnect", "connect"] as const) client.on(e, () => events.push(e));
    client.on("error", (e) => errors.push(e));
    clock.advance(5_000);
    await flush();
    expect(net.last.received("pingreq").length).toBe(1);
    clock.advance(4_999);
    await flush();
    expect(client.connected).toBe(true);
    clock.advance(1);
    await flush();
    expect(client.connected).toBe(false);
    expect(errors.map((e) => (e as { code?: string }).code)).toEqual(["ERR_MQTT_KEEPALIVE_TIMEOUT"]);
    expect(events).toEqual(["close", "offline"]);

    // Backoff with equal jitter at random = 0.5: 0.75 x (1000, 2000, 4000, 4000).
    net.refuse = new Error("connection refused");
    const dialsAt: number[] = [];
    client.on("reconnect", () => dialsAt.push(clock.now()));
    const t0 = clock.now();
    for (let i = 0; i < 4; i++) {
      clock.advance(clock.pending[0] - clock.now());
      await flush();
    }
    expect(dialsAt.map((t) => t - t0)).toEqual([
      750,
      750 + 1500,
      750 + 1500 + 3000,
      750 + 1500 + 3000 + 3000,
    ]);
    net.refuse = undefined;
    clock.advance(clock.pending[0] - clock.now());
    await flush();
    expect(client.connected).toBe(true);
    expect(events.at(-1)).toBe("connect");
  });

  it("uses the broker's Server Keep Alive (MQTT 5)", async () => {
    const net = new MemoryNet();
    net.onLink = (l) => {
      l.autoConnack = { properties: { serverKeepAlive: 3 } };
    };
    const { net: n, clock } = await start({ keepalive: 60, protocolVersion: 5 }, net);
    clock.advance(3_000);
    await flush();
    expect(n.last.received("pingreq").length).toBe(1);
  });
});

describe("connection setup", () => {
  it("gives up after connectTimeout without CONNACK", async () => {
    const net = new MemoryNet();
    net.onLink = (l) => {
      l.autoConnack = undefined;
    };
    const clock = new ManualScheduler();
    const p = connect("mqtt+quic://memory", { dial: net.dial, scheduler: clock, connectTimeout: 2000 });
    await flush();
    clock.advance(2000);
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MqttConnectTimeoutError);
    expect((err as Error).message).toBe("no CONNACK from the broker within 2000 ms");
  });

  it("rejects a broker that sends something other than CONNACK first", async () => {
    const net = new MemoryNet();
    net.onLink = (l) => {
      l.autoConnack = undefined;
    };
    const p = connect("mqtt+quic://memory", { dial: net.dial, scheduler: new ManualScheduler() });
    await flush();
    net.last.send(0, { cmd: "pingresp" });
    await expect(p).rejects.toMatchObject({
      code: "ERR_MQTT_PROTOCOL",
      message: "broker sent PINGRESP before CONNACK",
    });
  });

  it("sends MQTT 5 CONNECT properties; clean: false means a session that never expires", async () => {
    const { net } = await start({
      protocolVersion: 5,
      clean: false,
      clientId: "props",
      receiveMaximum: 10,
      username: "u",
      password: "p",
      will: { topic: "w", payload: "bye", qos: 1, properties: { willDelayInterval: 5 } },
      properties: { userProperties: { app: "test" } },
    });
    const c = net.last.connect!;
    expect(c).toMatchObject({ clientId: "props", clean: false, protocolVersion: 5, username: "u" });
    expect(c.password?.toString()).toBe("p");
    expect(c.properties).toMatchObject({ sessionExpiryInterval: 0xffffffff, receiveMaximum: 10 });
    expect(c.properties?.userProperties).toEqual({ app: "test" });
    expect(c.will).toMatchObject({ topic: "w", qos: 1, properties: { willDelayInterval: 5 } });
  });
});

describe("flow control and session state", () => {
  it("honours the broker's Receive Maximum", async () => {
    const net = new MemoryNet();
    net.onLink = (l) => {
      l.autoConnack = { properties: { receiveMaximum: 2 } };
    };
    const { client } = await start({ protocolVersion: 5, streamMode: "multi" }, net);
    const l = net.last;
    const results = [1, 2, 3, 4, 5].map((i) => client.publish("rm", `m${i}`, { qos: i % 2 === 0 ? 2 : 1 }));
    await flush();
    const pubs = () => l.received("publish").map((e) => (e.packet as IPublishPacket).payload.toString());
    expect(pubs()).toEqual(["m1", "m2"]);
    const [p1, p2] = l.received("publish").map((e) => e.packet as IPublishPacket);
    l.send(p1 && l.received("publish")[0].stream, { cmd: "puback", messageId: p1.messageId });
    await flush();
    expect(pubs()).toEqual(["m1", "m2", "m3"]);
    // PUBREC does not free the quota; PUBCOMP does. [MQTT-4.9.0-2]
    const s = l.received("publish")[1].stream;
    l.send(s, { cmd: "pubrec", messageId: p2.messageId });
    await flush();
    expect(pubs().length).toBe(3);
    expect(l.received("pubrel").length).toBe(1);
    l.send(s, { cmd: "pubcomp", messageId: p2.messageId });
    await flush();
    expect(pubs()).toEqual(["m1", "m2", "m3", "m4"]);
    await expect(results[0]).resolves.toMatchObject({ reasonCode: 0 });
    await expect(results[1]).resolves.toMatchObject({ reasonCode: 0 });
  });

  it("a PUBACK with a failure reason code rejects the publish with the reason", async () => {
    const { client, net } = await start({ protocolVersion: 5 });
    const p = client.publish("denied", "x", { qos: 1 });
    await flush();
    const e = net.last.received("publish")[0];
    net.last.send(e.stream, {
      cmd: "puback",
      messageId: e.packet.messageId,
      reasonCode: 0x87,
      properties: { reasonString: "no publishing here" },
    });
    await expect(p).rejects.toMatchObject({
      code: "ERR_MQTT_PUBLISH_REFUSED",
      reasonCode: 0x87,
      message: "broker refused the publish to denied: 0x87 Not authorized (no publishing here)",
    });
  });

  it("PUBCOMP 0x92 for a resent PUBREL still completes the publish (the broker owned it since PUBREC)", async () => {
    const { client, net } = await start({ protocolVersion: 5 });
    const p = client.publish("q2", "x", { qos: 2 });
    await flush();
    const l = net.last;
    const e = l.received("publish")[0];
    l.send(e.stream, { cmd: "pubrec", messageId: e.packet.messageId });
    await flush();
    l.send(e.stream, { cmd: "pubcomp", messageId: e.packet.messageId, reasonCode: 0x92 });
    await expect(p).resolves.toEqual({ messageId: e.packet.messageId, reasonCode: 0x92 });
  });

  it("refuses QoS above the broker's Maximum QoS and retain when unavailable", async () => {
    const net = new MemoryNet();
    net.onLink = (l) => {
      l.autoConnack = { properties: { maximumQoS: 1, retainAvailable: false } };
    };
    const { client } = await start({ protocolVersion: 5 }, net);
    await expect(client.publish("q", "x", { qos: 2 })).rejects.toMatchObject({
      code: "ERR_MQTT_UNSUPPORTED",
    });
    await expect(client.publish("q", "x", { retain: true })).rejects.toMatchObject({
      code: "ERR_MQTT_UNSUPPORTED",
    });
  });

  it("refuses a PUBLISH larger than the broker's Maximum Packet Size", async () => {
    const net = new MemoryNet();
    net.onLink = (l) => {
      l.autoConnack = { properties: { maximumPacketSize: 64 } };
    };
    const { client } = await start({ protocolVersion: 5 }, net);
    void client.publish("small", "x".repeat(40), { qos: 1 }).catch(() => {});
    await flush();
    const err = await client.publish("big", "x".repeat(100), { qos: 1 }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: "ERR_MQTT_UNSUPPORTED" });
    expect((err as Error).message).toMatch(
      /^the PUBLISH to big would be \d+ bytes; the broker accepts packets up to 64 bytes$/,
    );
    expect(net.last.received("publish").length).toBe(1);
  });

  it("resumes a stored session in a new client: PUBLISH with DUP, PUBREL resent, on the original stream keys", async () => {
    const store = new MemoryClientSessionStore();
    const net = new MemoryNet();
    const first = await start({ clientId: "resume", clean: false, store, reconnect: false }, net);
    void first.client.publish("s/1", "one", { qos: 1 }).catch(() => {});
    void first.client.publish("s/2", "two", { qos: 2 }).catch(() => {});
    await flush();
    const l1 = net.last;
    const two = l1.received("publish")[1];
    l1.send(two.stream, { cmd: "pubrec", messageId: two.packet.messageId });
    await flush();
    expect(l1.received("pubrel").length).toBe(1);
    l1.drop();
    await flush();
    expect(store.load("resume")?.outgoing.map((m) => [m.topic, m.phase])).toEqual([
      ["s/1", "publish"],
      ["s/2", "pubrel"],
    ]);

    net.onLink = (l) => {
      l.autoConnack = { sessionPresent: true };
    };
    const second = await start({ clientId: "resume", clean: false, store }, net);
    await flush();
    const l2 = net.last;
    const sent = l2.log.filter((e) => e.stream > 0).map((e) => e.packet);
    expect(sent.map((p) => [p.cmd, p.messageId, p.cmd === "publish" ? p.dup : undefined])).toEqual([
      ["publish", 1, true],
      ["pubrel", 2, undefined],
    ]);
    // Per-topic keys survive: the two messages went out on two different streams.
    const streams = l2.log.filter((e) => e.stream > 0).map((e) => e.stream);
    expect(new Set(streams).size).toBe(2);
    l2.send(streams[0], { cmd: "puback", messageId: 1 });
    l2.send(streams[1], { cmd: "pubcomp", messageId: 2 });
    await flush();
    expect(store.load("resume")?.outgoing).toEqual([]);
    expect(second.client.outbox.inflightCount).toBe(0);
  });

  it("without a session on the broker: PUBREC'd messages are done, the rest are sent again as new", async () => {
    const store = new MemoryClientSessionStore();
    const net = new MemoryNet();
    const { client } = await start(
      { clientId: "lost", clean: false, store, reconnect: { minDelay: 10, maxDelay: 10 } },
      net,
    );
    const clock = client.options.scheduler as ManualScheduler;
    const q1 = client.publish("n/1", "one", { qos: 1 });
    const q2 = client.publish("n/2", "two", { qos: 2 });
    await flush();
    const l1 = net.last;
    const two = l1.received("publish")[1];
    l1.send(two.stream, { cmd: "pubrec", messageId: two.packet.messageId });
    await flush();
    l1.drop();
    await flush();
    clock.advance(10);
    await flush();
    const l2 = net.last;
    expect(l2).not.toBe(l1);
    await expect(q2).resolves.toMatchObject({ messageId: two.packet.messageId });
    const again = l2.received("publish").map((e) => e.packet as IPublishPacket);
    expect(again.map((p) => [p.topic, p.dup])).toEqual([["n/1", false]]);
    l2.send(l2.received("publish")[0].stream, { cmd: "puback", messageId: again[0].messageId });
    await expect(q1).resolves.toMatchObject({ reasonCode: 0 });
  });
});

describe("deliveries", () => {
  it("acknowledges a delivery on a server-opened uni stream on the control stream", async () => {
    const { client, net } = await start({ protocolVersion: 5 });
    const got: string[] = [];
    client.on("message", (t, p) => got.push(`${t}=${p}`));
    const l = net.last;
    const uni = l.openStream(false);
    l.send(uni.index, {
      cmd: "publish",
      topic: "u/1",
      payload: Buffer.from("x"),
      qos: 1,
      messageId: 3,
      dup: false,
      retain: false,
    });
    l.send(uni.index, {
      cmd: "publish",
      topic: "u/2",
      payload: Buffer.from("y"),
      qos: 2,
      messageId: 4,
      dup: false,
      retain: false,
    });
    await flush();
    expect(got).toEqual(["u/1=x", "u/2=y"]);
    expect(l.received("puback")).toEqual([{ stream: 0, packet: expect.objectContaining({ messageId: 3 }) }]);
    expect(l.received("pubrec")).toEqual([{ stream: 0, packet: expect.objectContaining({ messageId: 4 }) }]);
    l.send(0, { cmd: "pubrel", messageId: 4 });
    await flush();
    expect(l.received("pubcomp")).toEqual([{ stream: 0, packet: expect.objectContaining({ messageId: 4 }) }]);
  });

  it("does not deliver a resent QoS 2 PUBLISH twice", async () => {
    const { client, net } = await start({ protocolVersion: 4 });
    const got: string[] = [];
    client.on("message", (_t, p) => got.push(p.toString()));
    const l = net.last;
    const bidi = l.openStream(true);
    const p: Packet = {
      cmd: "publish",
      topic: "d",
      payload: Buffer.from("z"),
      qos: 2,
      messageId: 9,
      dup: false,
      retain: false,
    };
    l.send(bidi.index, p);
    l.send(bidi.index, { ...p, dup: true });
    await flush();
    expect(got).toEqual(["z"]);
    expect(l.received("pubrec").length).toBe(2);
  });

  it("resolves incoming topic aliases (MQTT 5) and rejects unknown ones with 0x82", async () => {
    const { client, net } = await start({ protocolVersion: 5, topicAliasMaximum: 4 });
    const topics: string[] = [];
    client.on("message", (t) => topics.push(t));
    const l = net.last;
    const bidi = l.openStream(true);
    const base = {
      cmd: "publish" as const,
      payload: Buffer.from("a"),
      qos: 0 as const,
      dup: false,
      retain: false,
    };
    l.send(bidi.index, { ...base, topic: "long/topic/name", properties: { topicAlias: 2 } });
    l.send(bidi.index, { ...base, topic: "", properties: { topicAlias: 2 } });
    await flush();
    expect(topics).toEqual(["long/topic/name", "long/topic/name"]);
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.message));
    l.send(bidi.index, { ...base, topic: "", properties: { topicAlias: 3 } });
    await flush();
    expect(errors).toEqual(["broker used unknown topic alias 3"]);
    expect(l.received("disconnect")[0].packet).toMatchObject({ reasonCode: 0x82 });
  });

  it("closing a subscriber while offline returns at once; the UNSUBSCRIBE goes out on reconnect", async () => {
    const net = new MemoryNet();
    const { client, clock } = await start(
      { protocolVersion: 5, reconnect: { minDelay: 100, maxDelay: 100 } },
      net,
    );
    const subP = client.subscriber("off/#", { qos: 1 });
    await flush();
    const l1 = net.last;
    const sub = l1.received("subscribe")[0];
    l1.send(sub.stream, { cmd: "suback", messageId: sub.packet.messageId, granted: [1] });
    const s = await subP;
    l1.drop();
    await flush();
    expect(client.connected).toBe(false);
    await s.close();
    expect(s.closed).toBe(true);
    clock.advance(100);
    await flush();
    const l2 = net.last;
    expect(l2).not.toBe(l1);
    expect(l2.received("subscribe")).toEqual([]);
    expect(l2.received("unsubscribe")[0].packet).toMatchObject({ unsubscriptions: ["off/#"] });
  });

  it("a broker DISCONNECT 0x8E (session taken over) ends reconnecting", async () => {
    const { client, net, clock } = await start({ protocolVersion: 5 });
    const disconnects: number[] = [];
    client.on("disconnect", (p) => disconnects.push(p.reasonCode ?? 0));
    net.last.send(0, { cmd: "disconnect", reasonCode: 0x8e });
    await flush();
    expect(disconnects).toEqual([0x8e]);
    expect(client.connected).toBe(false);
    clock.advance(60_000);
    await flush();
    expect(net.links.length).toBe(1);
    await expect(client.publish("x", "y")).rejects.toMatchObject({ code: "ERR_MQTT_NOT_CONNECTED" });
  });
});
