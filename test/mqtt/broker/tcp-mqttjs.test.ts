/**
 * MQTT.js (the `mqtt` package) against the broker over real TCP: the ordinary-client interop the
 * issue asks for, on the real clock.
 */
import { connectAsync, type IClientOptions, type MqttClient, connect as mqttConnect } from "mqtt";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Broker } from "../../../src/mqtt/broker/broker.js";
import { type PacketStream, connect as rawConnect, subscribe as rawSubscribe, sleep } from "./helpers.js";

let broker: Broker;
let url: string;
const clients: MqttClient[] = [];

beforeEach(async () => {
  broker = new Broker();
  const { port } = await broker.listenTcp({ port: 0, host: "127.0.0.1" });
  url = `mqtt://127.0.0.1:${port}`;
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => {})));
  await broker.close();
});

async function client(opts: IClientOptions = {}): Promise<MqttClient> {
  const c = await connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  clients.push(c);
  return c;
}

function nextMessage(
  c: MqttClient,
): Promise<{ topic: string; payload: string; packet: import("mqtt").IPublishPacket }> {
  return new Promise((resolve) => {
    c.once("message", (topic, payload, packet) => resolve({ topic, payload: payload.toString(), packet }));
  });
}

for (const protocolVersion of [4, 5] as const) {
  describe(`MQTT.js over TCP, protocol ${protocolVersion}`, () => {
    it("publishes and subscribes at QoS 0, 1 and 2", async () => {
      const sub = await client({ protocolVersion, clientId: "sub" });
      const pub = await client({ protocolVersion, clientId: "pub" });
      for (const qos of [0, 1, 2] as const) {
        await sub.subscribeAsync(`q/${qos}`, { qos });
        const got = nextMessage(sub);
        await pub.publishAsync(`q/${qos}`, `qos${qos}`, { qos });
        const m = await got;
        expect(m.topic).toBe(`q/${qos}`);
        expect(m.payload).toBe(`qos${qos}`);
        expect(m.packet.qos).toBe(qos);
      }
      expect(broker.metrics.clients).toBe(2);
    });

    it("wildcards, retained messages and unsubscribe", async () => {
      const pub = await client({ protocolVersion, clientId: "pub" });
      await pub.publishAsync("home/kitchen/temp", "21", { qos: 1, retain: true });
      const sub = await client({ protocolVersion, clientId: "sub" });
      const retained = nextMessage(sub);
      const granted = await sub.subscribeAsync("home/+/temp", { qos: 1 });
      expect(granted[0]?.qos).toBe(1);
      const r = await retained;
      expect([r.topic, r.payload, r.packet.retain]).toEqual(["home/kitchen/temp", "21", true]);
      const live = nextMessage(sub);
      await pub.publishAsync("home/hall/temp", "19", { qos: 1 });
      expect((await live).packet.retain).toBe(false);
      await sub.unsubscribeAsync("home/+/temp");
      let extra = 0;
      sub.on("message", () => extra++);
      await pub.publishAsync("home/hall/temp", "18", { qos: 1 });
      await sleep(50);
      expect(extra).toBe(0);
    });

    it("a persistent session gets what was published while it was away", async () => {
      const opts: IClientOptions = {
        protocolVersion,
        clientId: "durable",
        clean: false,
        ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
      };
      const a = await client(opts);
      await a.subscribeAsync("inbox", { qos: 1 });
      await a.endAsync();
      const pub = await client({ protocolVersion, clientId: "pub" });
      await pub.publishAsync("inbox", "while you were out", { qos: 1 });
      // Listen before the CONNACK: the queued message follows it immediately.
      const b = mqttConnect(url, { ...opts, reconnectPeriod: 0 });
      clients.push(b);
      const got = nextMessage(b);
      const connack = await new Promise<import("mqtt").IConnackPacket>((r) => b.once("connect", r));
      expect(connack.sessionPresent).toBe(true);
      expect((await got).payload).toBe("while you were out");
    });

    it("the will of a client whose socket dies is published", async () => {
      const watcher = await client({ protocolVersion, clientId: "watcher" });
      await watcher.subscribeAsync("status/#", { qos: 1 });
      const dev = await client({
        protocolVersion,
        clientId: "dev",
        will: { topic: "status/dev", payload: Buffer.from("offline"), qos: 1, retain: false },
      });
      const got = nextMessage(watcher);
      (dev as unknown as { stream: { destroy(): void } }).stream.destroy();
      expect((await got).payload).toBe("offline");
    });

    it("a second connection with the same client id takes over", async () => {
      const first = await client({ protocolVersion, clientId: "same" });
      const closed = new Promise<void>((r) => first.once("close", () => r()));
      await client({ protocolVersion, clientId: "same" });
      await closed;
      expect(broker.clients.map((c) => c.clientId)).toEqual(["same"]);
    });

    it("keepalive: pings keep an idle client connected", async () => {
      const c = await client({ protocolVersion, clientId: "idle", keepalive: 1 });
      const before = broker.metrics.bytesIn;
      await sleep(2200);
      expect(c.connected).toBe(true);
      expect(broker.metrics.bytesIn).toBeGreaterThan(before);
    });
  });
}

describe("MQTT.js v5 features over TCP", () => {
  it("user properties, subscription identifiers and No Local", async () => {
    const c = await client({ protocolVersion: 5, clientId: "c" });
    await c.subscribeAsync("echo", { qos: 1, nl: true });
    await c.subscribeAsync("props", { qos: 1, properties: { subscriptionIdentifier: 42 } });
    const got = nextMessage(c);
    await c.publishAsync("echo", "not to me", { qos: 1 });
    await c.publishAsync("props", "x", {
      qos: 1,
      properties: { userProperties: { k: "v" }, contentType: "text/plain" },
    });
    const m = await got;
    expect(m.topic).toBe("props");
    expect(m.packet.properties?.userProperties).toEqual({ k: "v" });
    expect(m.packet.properties?.contentType).toBe("text/plain");
    expect(m.packet.properties?.subscriptionIdentifier).toBe(42);
  });

  it("shared subscriptions balance between MQTT.js clients", async () => {
    const a = await client({ protocolVersion: 5, clientId: "a" });
    const b = await client({ protocolVersion: 5, clientId: "b" });
    await a.subscribeAsync("$share/g/work", { qos: 1 });
    await b.subscribeAsync("$share/g/work", { qos: 1 });
    const seen = { a: 0, b: 0 };
    a.on("message", () => seen.a++);
    b.on("message", () => seen.b++);
    const pub = await client({ protocolVersion: 5, clientId: "p" });
    for (let i = 0; i < 10; i++) await pub.publishAsync("work", String(i), { qos: 1 });
    await sleep(50);
    expect(seen).toEqual({ a: 5, b: 5 });
  });

  it("topic aliases from MQTT.js are resolved", async () => {
    const sub = await client({ protocolVersion: 5, clientId: "sub" });
    await sub.subscribeAsync("aliased/topic", { qos: 0 });
    const pub = await client({ protocolVersion: 5, clientId: "pub", autoUseTopicAlias: true });
    const payloads: string[] = [];
    sub.on("message", (_t, p) => payloads.push(p.toString()));
    for (let i = 0; i < 3; i++) await pub.publishAsync("aliased/topic", String(i), { qos: 1 });
    await sleep(50);
    expect(payloads).toEqual(["0", "1", "2"]);
  });

  it("a refused login gets CONNACK 0x86", async () => {
    await broker.close();
    broker = new Broker({ authenticate: ({ password }) => password?.toString() === "pw" });
    const { port } = await broker.listenTcp({ port: 0, host: "127.0.0.1" });
    url = `mqtt://127.0.0.1:${port}`;
    await expect(client({ protocolVersion: 5, username: "u", password: "bad" })).rejects.toMatchObject({
      code: 0x86,
    });
    const ok = await client({ protocolVersion: 5, username: "u", password: "pw" });
    expect(ok.connected).toBe(true);
  });
});

describe("mixed transports", () => {
  it("a TCP publisher reaches a multi-stream (QUIC-style) subscriber and back", async () => {
    const quicLike = await rawConnect(broker, { clientId: "q", kind: "quic" });
    const data: PacketStream = quicLike.stream();
    await rawSubscribe(data, "to/quic", 1);
    const tcp = await client({ protocolVersion: 5, clientId: "t" });
    await tcp.subscribeAsync("to/tcp", { qos: 1 });
    await tcp.publishAsync("to/quic", "hello quic", { qos: 1 });
    const m = await data.expect("publish");
    expect(m.payload.toString()).toBe("hello quic");
    data.send({ cmd: "puback", messageId: m.messageId! });
    const back = nextMessage(tcp);
    data.send({
      cmd: "publish",
      topic: "to/tcp",
      payload: Buffer.from("hello tcp"),
      qos: 1,
      retain: false,
      dup: false,
      messageId: 1,
    });
    await data.expect("puback");
    expect((await back).payload).toBe("hello tcp");
  });
});
