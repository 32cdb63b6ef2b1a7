/**
 * End to end against the project's Broker, over TCP and over QUIC in each stream mode.
 */
import type { IPublishPacket, Packet } from "mqtt-packet";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type ConnectOptions,
  connect,
  type MqttClient,
  type StreamMode,
} from "../../../src/mqtt/client/index.js";
import { CuttableDialer, delay, waitFor } from "./helpers.js";
import { quicClientOptions, type RealBroker, startBroker } from "./real-broker.js";

let rb: RealBroker;
const clients: MqttClient[] = [];

beforeEach(async () => {
  rb = await startBroker();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end(true)));
  await rb.close();
});

type Transport = "tcp" | `quic/${StreamMode}`;
const transports: Transport[] = ["tcp", "quic/per-topic", "quic/multi", "quic/single"];

async function client(t: Transport, opts: ConnectOptions = {}): Promise<MqttClient> {
  const base: ConnectOptions = { reconnect: { minDelay: 20, maxDelay: 100 } };
  const c =
    t === "tcp"
      ? await connect(rb.tcpUrl, { ...base, ...opts })
      : await connect(rb.quicUrl, {
          ...base,
          ...quicClientOptions,
          streamMode: t.slice(5) as StreamMode,
          ...opts,
        });
  clients.push(c);
  return c;
}

for (const t of transports) {
  describe(`client <-> Broker over ${t}`, () => {
    it("publishes and receives at QoS 0, 1 and 2 (MQTT 5 and 3.1.1)", async () => {
      for (const protocolVersion of [5, 4] as const) {
        const sub = await client(t, { protocolVersion });
        const got: string[] = [];
        sub.on("message", (topic, p, pkt) => got.push(`${topic}:${p}:${pkt.qos}`));
        await sub.subscribe("e2e/#", { qos: 2 });
        const pub = await client(t, { protocolVersion });
        for (const qos of [0, 1, 2] as const)
          await pub.publish(`e2e/q${qos}`, `v${protocolVersion}`, { qos });
        await waitFor(() => got.length === 3);
        expect(got.sort()).toEqual([
          `e2e/q0:v${protocolVersion}:0`,
          `e2e/q1:v${protocolVersion}:1`,
          `e2e/q2:v${protocolVersion}:2`,
        ]);
        await sub.end();
        await pub.end();
      }
    });

    it("publisher() and subscriber(): per-subscriber deliveries, retained on subscribe, unsubscribe on break", async () => {
      const c = await client(t, { protocolVersion: 5 });
      const pa = await c.publisher("room/a", "retained-a", { qos: 1, retain: true });
      const pb = await c.publisher("room/b");
      const subA = await c.subscriber("room/a", { qos: 1 });
      const subAll = await c.subscriber("room/+", { qos: 2 });
      const first = await subA.next();
      expect(first.value).toMatchObject({ topic: "room/a", retain: true });
      expect(first.value?.payload.toString()).toBe("retained-a");
      await pa.publish("a1", { qos: 1 });
      await pb.publish("b1", { qos: 2 });
      const seenAll: string[] = [];
      for await (const m of subAll) {
        seenAll.push(`${m.topic}=${m.payload}`);
        if (seenAll.length === 3) break;
      }
      expect(seenAll).toEqual(["room/a=retained-a", "room/a=a1", "room/b=b1"]);
      const a = await subA.next();
      expect(a.value?.payload.toString()).toBe("a1");
      await delay(30);
      expect(subA.buffered).toBe(0);
      // subAll is unsubscribed: only subA still gets room/a.
      const all: string[] = [];
      c.on("message", (topic) => all.push(topic));
      await pb.publish("b2", { qos: 1 });
      await pa.publish("a2", { qos: 1 });
      await waitFor(() => all.length === 1);
      await delay(50);
      expect(all).toEqual(["room/a"]);
    });

    it("the will is published when the connection is lost, not after end()", async () => {
      const watcher = await client(t);
      const wills: string[] = [];
      watcher.on("message", (topic, p) => wills.push(`${topic}=${p}`));
      await watcher.subscribe("will/#", { qos: 1 });
      const dialer = new CuttableDialer();
      await client(t, {
        will: { topic: "will/lost", payload: "x", qos: 1 },
        dial: dialer.dial,
        reconnect: false,
      });
      const polite = await client(t, { will: { topic: "will/polite", payload: "x", qos: 1 } });
      await polite.end();
      dialer.cut();
      await waitFor(() => wills.length === 1);
      await delay(50);
      expect(wills).toEqual(["will/lost=x"]);
    });

    it("QoS 2 exactly once both ways when the connection is cut mid-flow, then resumed", async () => {
      for (const killAt of ["publish", "pubrec", "pubrel"] as const) {
        const watcherDialer = new CuttableDialer();
        const watcher = await client(t, {
          clientId: `w-${killAt}`,
          clean: false,
          protocolVersion: 5,
          dial: watcherDialer.dial,
        });
        const got: IPublishPacket[] = [];
        watcher.on("message", (_t, _p, pkt) => got.push(pkt));
        await watcher.subscribe(`x/${killAt}`, { qos: 2 });
        const pubDialer = new CuttableDialer();
        const pub = await client(t, {
          clientId: `p-${killAt}`,
          clean: false,
          protocolVersion: 5,
          dial: pubDialer.dial,
        });
        // Cut the publisher when it sends `killAt` (publish, pubrel) or receives it (pubrec),
        // and the subscriber when it receives the same step of its own flow.
        let pubCut = false;
        const onPub = (p: Packet) => {
          if (!pubCut && p.cmd === killAt) {
            pubCut = true;
            pubDialer.cut();
          }
        };
        pub.on("packetsend", onPub);
        pub.on("packetreceive", onPub);
        let subCut = false;
        watcher.on("packetreceive", (p: Packet) => {
          if (!subCut && (p.cmd === killAt || (killAt === "pubrec" && p.cmd === "publish"))) {
            subCut = true;
            watcherDialer.cut();
          }
        });
        await pub.publish(`x/${killAt}`, "once", { qos: 2 });
        await waitFor(() => got.length >= 1 && watcher.connected, 5000, "delivery");
        await waitFor(() => watcher.inbox.pendingQos2.length === 0, 5000, "subscriber flow complete");
        await delay(100);
        expect(pubCut).toBe(true);
        expect(got.map((p) => p.payload.toString())).toEqual(["once"]);
      }
    });

    it("resends an unacknowledged QoS 1 PUBLISH with DUP after a reconnect", async () => {
      const watcher = await client(t);
      const got: string[] = [];
      watcher.on("message", (_t, p) => got.push(p.toString()));
      await watcher.subscribe("dup/x", { qos: 1 });
      const dialer = new CuttableDialer();
      const c = await client(t, { clientId: "dup-e2e", clean: false, dial: dialer.dial });
      const sent: IPublishPacket[] = [];
      c.on("packetsend", (p: Packet) => {
        if (p.cmd === "publish") {
          sent.push({ ...p });
          if (sent.length === 1) dialer.cut();
        }
      });
      await c.publish("dup/x", "m", { qos: 1 });
      expect(sent.length).toBeGreaterThanOrEqual(2);
      expect(sent[1]).toMatchObject({ dup: true, messageId: sent[0].messageId });
      await waitFor(() => got.length >= 1);
      expect(got[0]).toBe("m");
    });
  });
}

describe("TCP and QUIC clients share one broker", () => {
  it("a TCP publisher reaches a per-topic QUIC subscriber and back", async () => {
    const q = await client("quic/per-topic", { protocolVersion: 5 });
    const tcp = await client("tcp", { protocolVersion: 4 });
    const qSub = await q.subscriber("bridge/to-quic", { qos: 1 });
    const tGot: string[] = [];
    tcp.on("message", (_t, p) => tGot.push(p.toString()));
    await tcp.subscribe("bridge/to-tcp", { qos: 1 });
    await tcp.publish("bridge/to-quic", "hello quic", { qos: 1 });
    const m = await qSub.next();
    expect(m.value?.payload.toString()).toBe("hello quic");
    await q.publish("bridge/to-tcp", "hello tcp", { qos: 2 });
    await waitFor(() => tGot.length === 1);
    expect(tGot).toEqual(["hello tcp"]);
  });
});
