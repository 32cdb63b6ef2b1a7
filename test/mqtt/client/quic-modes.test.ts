import { generate, type IPublishPacket } from "mqtt-packet";
import { afterEach, describe, expect, it } from "vitest";
import { nodeProvider } from "../../../src/crypto/node.js";
import {
  type ConnectOptions,
  connect,
  createClient,
  type MqttClient,
  type MqttMessage,
} from "../../../src/mqtt/client/index.js";
import { FakeQuicBroker } from "./fake-quic-broker.js";
import { delay, waitFor } from "./helpers.js";

const brokers: FakeQuicBroker[] = [];
const clients: MqttClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end(true)));
  await Promise.all(brokers.splice(0).map((b) => b.close()));
});

async function setup(
  opts: ConnectOptions = {},
  fakeOpts: Parameters<typeof FakeQuicBroker.start>[0] = {},
): Promise<{ broker: FakeQuicBroker; client: MqttClient }> {
  const broker = await FakeQuicBroker.start(fakeOpts);
  brokers.push(broker);
  const client = await connect(broker.url, quicOpts(opts));
  clients.push(client);
  return { broker, client };
}

function quicOpts(opts: ConnectOptions): ConnectOptions {
  return {
    ca: FakeQuicBroker.ca(),
    serverName: "localhost",
    quic: { crypto: nodeProvider },
    reconnect: false,
    ...opts,
  };
}

describe("MQTT over QUIC: stream modes on the wire", () => {
  it("per-topic (default): CONNECT alone on the control stream, one data stream per publisher and per topic", async () => {
    const { broker, client } = await setup();
    expect(client.transportKind).toBe("quic");
    const conn = broker.last;
    const a = await client.publisher("t/a");
    const b = await client.publisher("t/b", "first", { qos: 1 });
    await a.publish("1", { qos: 1 });
    await b.publish("2", { qos: 2 });
    await client.publish("t/c", "3", { qos: 1 });
    await client.publish("t/c", "4", { qos: 0 });
    await client.publish("t/d", "5", { qos: 1 });
    await waitFor(() => conn.received("publish").length === 6);
    expect(conn.violations).toEqual([]);
    expect(conn.control?.packets.map((p) => p.cmd)).toEqual(["connect"]);
    const streamOf = (payload: string) =>
      conn.received("publish").find((e) => (e.packet as IPublishPacket).payload.toString() === payload)!
        .stream;
    const sa = streamOf("1");
    const sb = streamOf("2");
    expect(streamOf("first")).toBe(sb);
    expect(streamOf("3")).toBe(streamOf("4"));
    const distinct = new Set([sa, sb, streamOf("3"), streamOf("5")]);
    expect(distinct.size).toBe(4);
    expect(distinct.has(0)).toBe(false);
    // The QoS 2 flow: PUBREL went on the PUBLISH's stream.
    expect(conn.received("pubrel").map((e) => e.stream)).toEqual([sb]);
  });

  it("per-topic: a subscriber's SUBSCRIBE, deliveries and acks share its stream; leaving the loop unsubscribes and ends it", async () => {
    const { broker, client } = await setup({ protocolVersion: 5 });
    const conn = broker.last;
    const sub = await client.subscriber("s/#", { qos: 1 });
    const subStream = conn.received("subscribe")[0].stream;
    expect(subStream).toBeGreaterThan(0);
    await client.publish("s/1", "hello", { qos: 1 });
    const seen: MqttMessage[] = [];
    for await (const m of sub) {
      seen.push(m);
      break;
    }
    expect(seen[0].topic).toBe("s/1");
    expect(seen[0].properties?.subscriptionIdentifier).toBeDefined();
    await waitFor(() => conn.streams[subStream].ended, 5000, "FIN of the subscriber stream");
    const onSub = conn.log.filter((e) => e.stream === subStream).map((e) => `${e.dir}:${e.packet.cmd}`);
    expect(onSub).toEqual([
      "in:subscribe",
      "out:suback",
      "out:publish",
      "in:puback",
      "in:unsubscribe",
      "out:unsuback",
    ]);
    expect(conn.violations).toEqual([]);
  });

  it("per-topic: each subscribe() call gets its own stream; QoS 2 deliveries complete on it", async () => {
    const { broker, client } = await setup({ protocolVersion: 4 });
    const conn = broker.last;
    const got: string[] = [];
    client.on("message", (t) => got.push(t));
    await client.subscribe("x/1", { qos: 2 });
    await client.subscribe("x/2", { qos: 2 });
    const [s1, s2] = conn.received("subscribe").map((e) => e.stream);
    expect(s1).not.toBe(s2);
    await client.publish("x/1", "a", { qos: 2 });
    await client.publish("x/2", "b", { qos: 2 });
    await waitFor(() => conn.received("pubcomp").length === 2);
    expect(got.sort()).toEqual(["x/1", "x/2"]);
    expect(conn.received("pubrec").map((e) => e.stream)).toEqual([s1, s2]);
    expect(conn.received("pubcomp").map((e) => e.stream)).toEqual([s1, s2]);
    await client.unsubscribe("x/1");
    await waitFor(() => conn.streams[s1].ended, 5000, "FIN after the last filter of a stream is gone");
    expect(conn.streams[s2].ended).toBe(false);
    expect(conn.violations).toEqual([]);
  });

  it("multi: publish()/subscribe() share one data stream; publisher() and subscriber() get their own", async () => {
    const { broker, client } = await setup({ streamMode: "multi" });
    const conn = broker.last;
    await client.subscribe("m/#", { qos: 1 });
    await client.publish("m/a", "1", { qos: 1 });
    await client.publish("m/b", "2", { qos: 1 });
    const pub = await client.publisher("m/p", "3", { qos: 1 });
    const sub = await client.subscriber("n/#");
    await pub.close();
    await sub.close();
    const shared = conn.received("subscribe")[0].stream;
    const pubStreams = conn.received("publish").map((e) => e.stream);
    expect(pubStreams.slice(0, 2)).toEqual([shared, shared]);
    expect(pubStreams[2]).not.toBe(shared);
    expect(conn.received("subscribe")[1].stream).not.toBe(shared);
    expect(conn.received("subscribe")[1].stream).not.toBe(pubStreams[2]);
    await waitFor(() => conn.streams[pubStreams[2]].ended, 5000, "publisher stream FIN after close()");
    expect(conn.violations).toEqual([]);
  });

  it("single: every packet on the one stream", async () => {
    const { broker, client } = await setup({ streamMode: "single", keepalive: 1 }, { mode: "single" });
    const conn = broker.last;
    const got: string[] = [];
    client.on("message", (t) => got.push(t));
    await client.subscribe("one/#", { qos: 2 });
    const pub = await client.publisher("one/p");
    await pub.publish("x", { qos: 2 });
    const sub = await client.subscriber("one/s");
    await client.publish("one/s", "y", { qos: 1 });
    await sub.next();
    // one/s matches both subscriptions: the fake broker sends one copy per subscription.
    await waitFor(() => got.length === 3);
    await waitFor(() => conn.received("pingreq").length > 0, 3000, "PINGREQ after 1 s idle");
    expect(conn.streams.length).toBe(1);
    expect(new Set(conn.log.map((e) => e.stream))).toEqual(new Set([0]));
    expect(conn.violations).toEqual([]);
  });

  it("opens no data stream before CONNACK, even with publishes queued during the handshake", async () => {
    const broker = await FakeQuicBroker.start({ connackDelay: 150 });
    brokers.push(broker);
    const client = createClient(broker.url, quicOpts({}));
    clients.push(client);
    const results = [client.publish("early/a", "1", { qos: 1 }), client.publish("early/b", "2", { qos: 1 })];
    const subscribed = client.subscribe("early/#", { qos: 1 });
    await Promise.all([...results, subscribed]);
    const conn = broker.last;
    expect(conn.violations).toEqual([]);
    expect(conn.streams.length).toBe(4);
  });

  it("accepts deliveries on a server-opened bidi stream and completes QoS 2 on it", async () => {
    const { broker, client } = await setup({ protocolVersion: 5 });
    const conn = broker.last;
    const got: string[] = [];
    client.on("message", (t, p) => got.push(`${t}=${p}`));
    const bidi = await conn.open(true);
    bidi.send({
      cmd: "publish",
      topic: "srv/bidi",
      payload: Buffer.from("b"),
      qos: 2,
      messageId: 8,
      dup: false,
      retain: false,
    });
    bidi.send({
      cmd: "publish",
      topic: "srv/bidi",
      payload: Buffer.from("c"),
      qos: 1,
      messageId: 9,
      dup: false,
      retain: false,
    });
    await waitFor(() => conn.received("pubcomp").length === 1, 5000, "QoS 2 on the server bidi stream");
    await waitFor(() => conn.received("puback").length === 1);
    expect(got).toEqual(["srv/bidi=b", "srv/bidi=c"]);
    expect(conn.received("pubrec")[0].stream).toBe(bidi.index);
    expect(conn.received("pubcomp")[0].stream).toBe(bidi.index);
    expect(conn.received("puback")[0].stream).toBe(bidi.index);
    expect(conn.violations).toEqual([]);
  });

  it("accepts deliveries on a server-opened uni stream, acknowledged on the control stream", async () => {
    const { broker, client } = await setup({ protocolVersion: 5 });
    const conn = broker.last;
    const got: string[] = [];
    client.on("message", (t, p) => got.push(`${t}=${p}`));
    const uni = await conn.open(false);
    uni.send({
      cmd: "publish",
      topic: "srv/uni",
      payload: Buffer.from("u"),
      qos: 1,
      messageId: 7,
      dup: false,
      retain: false,
    });
    await waitFor(() => conn.received("puback").length === 1, 2000, "PUBACK of the uni delivery");
    expect(got).toEqual(["srv/uni=u"]);
    const puback = conn.received("puback")[0];
    expect(puback.stream).toBe(0);
    expect(puback.packet.messageId).toBe(7);
  });

  it("accepts QoS 0 PUBLISH in QUIC DATAGRAM frames when both sides enable them", async () => {
    const transport = { maxDatagramFrameSize: 1200 };
    const { broker, client } = await setup({ quic: { crypto: nodeProvider, transport } }, { transport });
    const got: string[] = [];
    client.on("message", (t, p) => got.push(`${t}=${p}`));
    const pkt = generate(
      { cmd: "publish", topic: "dg/1", payload: Buffer.from("fast"), qos: 0, dup: false, retain: false },
      { protocolVersion: 5 },
    );
    expect(broker.last.conn.sendDatagram(pkt)).toBe(true);
    await waitFor(() => got.length === 1, 3000, "datagram delivery");
    expect(got).toEqual(["dg/1=fast"]);
  });

  it("a slow subscriber holds back only its own stream (per-stream backpressure)", async () => {
    const { broker, client } = await setup({ protocolVersion: 5 });
    const conn = broker.last;
    const slow = await client.subscriber("slow/#", { qos: 0, highWaterMark: 5 });
    const fast = await client.subscriber("fast/#", { qos: 0 });
    const slowStream = conn.subs.find((x) => x.filter === "slow/#")!.stream;
    const fastStream = conn.subs.find((x) => x.filter === "fast/#")!.stream;
    const big = Buffer.alloc(4096, 1);
    const N = 400;
    for (let i = 0; i < N; i++)
      slowStream.send({
        cmd: "publish",
        topic: `slow/${i}`,
        payload: big,
        qos: 0,
        dup: false,
        retain: false,
      });
    for (let i = 0; i < 20; i++)
      fastStream.send({
        cmd: "publish",
        topic: `fast/${i}`,
        payload: Buffer.from(`${i}`),
        qos: 0,
        dup: false,
        retain: false,
      });
    const fastGot: string[] = [];
    for await (const m of fast) {
      fastGot.push(m.topic);
      if (fastGot.length === 20) break;
    }
    expect(fastGot[19]).toBe("fast/19");
    // The slow stream was paused: far fewer than N of its 1.6 MB arrived.
    let slowArrived = 0;
    client.on("message", (t) => {
      if (t.startsWith("slow/")) slowArrived++;
    });
    await delay(200);
    expect(slow.buffered).toBeLessThan(20);
    expect(slowArrived).toBeLessThan(20); // at most what was already read when it paused
    // Consuming resumes the stream; every message arrives, in order.
    for (let i = 0; i < N; i++) {
      const m = await slow.next();
      expect(m.value?.topic).toBe(`slow/${i}`);
    }
  });

  it("routes deliveries to overlapping subscribers by subscription identifier (MQTT 5)", async () => {
    const { client } = await setup({ protocolVersion: 5 });
    const all = await client.subscriber("o/#", { qos: 1 });
    const one = await client.subscriber("o/1", { qos: 1 });
    await client.publish("o/1", "x", { qos: 1 });
    await client.publish("o/2", "y", { qos: 1 });
    const a1 = await all.next();
    const a2 = await all.next();
    const b1 = await one.next();
    expect([a1.value?.topic, a2.value?.topic].sort()).toEqual(["o/1", "o/2"]);
    expect(b1.value?.topic).toBe("o/1");
    await delay(50);
    expect(one.buffered).toBe(0);
  });

  it("reconnects over QUIC: resubscribes on new streams and resends unacknowledged QoS 1 with DUP", async () => {
    let hold = true;
    const broker = await FakeQuicBroker.start({
      connack: (_c, conn) => ({ sessionPresent: broker.conns.indexOf(conn) > 0 }),
      ackPublishes: (p) => !(hold && p.topic === "held"),
    });
    brokers.push(broker);
    const client = await connect(
      broker.url,
      quicOpts({ clean: false, clientId: "quic-resume", reconnect: { minDelay: 20, maxDelay: 50 } }),
    );
    clients.push(client);
    const sub = await client.subscriber("r/#", { qos: 1 });
    const pending = client.publish("held", "h", { qos: 1 });
    const first = broker.last;
    await waitFor(() => first.received("publish").length === 1);
    hold = false;
    const reconnected = new Promise<void>((r) => client.once("connect", () => r()));
    await first.conn.close(0, "broker restart");
    await reconnected;
    await expect(pending).resolves.toMatchObject({ reasonCode: 0 });
    const second = broker.last;
    expect(second).not.toBe(first);
    const resent = second.received("publish")[0];
    expect(resent.packet).toMatchObject({ topic: "held", dup: true });
    expect(resent.stream).toBeGreaterThan(0);
    await waitFor(() => second.received("subscribe").length === 1, 5000, "resubscribe");
    expect(second.received("subscribe")[0].stream).toBeGreaterThan(0);
    await client.publish("r/1", "after", { qos: 1 });
    const m = await sub.next();
    expect(m.value?.payload.toString()).toBe("after");
    expect(second.violations).toEqual([]);
  });
});
