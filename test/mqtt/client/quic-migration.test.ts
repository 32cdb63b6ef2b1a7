/**
 * MQTT over QUIC through a NAT that rebinds (RFC 9000 §9.3): the subscriber's address changes
 * twice (a new port, then a new host) while its subscriptions stay on their streams; the broker
 * follows the connection, and every QoS 1 message arrives once, in order, without a reconnect.
 */
import { afterEach, describe, expect, it } from "vitest";
import { connect, type MqttClient } from "../../../src/mqtt/client/index.js";
import { UdpRelay } from "../../interop/udp-relay.js";
import { quicClientOptions, type RealBroker, startBroker } from "./real-broker.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe("MQTT over QUIC: NAT rebinding", () => {
  it("keeps the session, its streams and every message while the subscriber's address changes", async () => {
    const b: RealBroker = await startBroker();
    cleanup.push(() => b.close());
    const relay = await UdpRelay.start({ serverPort: Number(b.quicUrl.split(":").pop()) });
    cleanup.push(() => relay.close());

    const sub: MqttClient = await connect(`mqtt+quic://127.0.0.1:${relay.port}`, {
      ...quicClientOptions,
      clientId: "behind-nat",
    });
    cleanup.push(() => sub.end(true));
    const pub: MqttClient = await connect(b.quicUrl, quicClientOptions);
    cleanup.push(() => pub.end(true));
    const events: string[] = [];
    sub.on("reconnect", () => events.push("reconnect"));
    sub.on("offline", () => events.push("offline"));
    sub.on("close", () => events.push("close"));

    const got: string[] = [];
    const topics = ["nat/a", "nat/b"];
    const subs = await Promise.all(topics.map((t) => sub.subscriber(t, { qos: 1 })));
    const readers = subs.map(async (s) => {
      for await (const m of s) got.push(`${m.topic} ${String(m.payload)}`);
    });
    const sent: string[] = [];
    const publishRound = async (round: number) => {
      for (let i = 0; i < 10; i++)
        for (const t of topics) {
          await pub.publish(t, `${round}-${i}`, { qos: 1 });
          sent.push(`${t} ${round}-${i}`);
        }
    };
    const waitFor = async (n: number) => {
      for (let i = 0; i < 500 && got.length < n; i++) await new Promise((r) => setTimeout(r, 10));
      expect(got.length).toBe(n);
    };

    await publishRound(0);
    await waitFor(20);
    const serverSide = b.quicConnections.find((c) => c.remoteAddress.endsWith(`:${relay.upstreamPort}`));
    expect(serverSide).toBeDefined();

    // A new port, then a new host. A NAT mapping changes when the client sends after a pause:
    // the subscriber's own PUBLISH leaves from the new address, and the broker follows it.
    for (const [round, host] of [
      [1, "127.0.0.1"],
      [2, "127.0.0.2"],
    ] as const) {
      await relay.rebind(host);
      await sub.publish("nat/self", `moved ${round}`, { qos: 1 });
      await publishRound(round);
      await waitFor(20 * (round + 1));
      expect(serverSide?.remoteAddress).toBe(`${host}:${relay.upstreamPort}`);
    }
    await Promise.all(subs.map((s) => s.close()));
    await Promise.all(readers);
    for (const t of topics)
      expect(got.filter((g) => g.startsWith(t))).toEqual(sent.filter((s) => s.startsWith(t)));
    expect(serverSide?.core.stats.migrations).toBe(2);
    expect(serverSide?.core.stats.pathsValidated).toBe(2);
    expect(events).toEqual([]);
  }, 30_000);

  it("migrate() moves the client to a new local address without a reconnect; TCP refuses it", async () => {
    const b: RealBroker = await startBroker();
    cleanup.push(() => b.close());
    const sub: MqttClient = await connect(b.quicUrl, { ...quicClientOptions, clientId: "mobile" });
    cleanup.push(() => sub.end(true));
    const pub: MqttClient = await connect(b.quicUrl, quicClientOptions);
    cleanup.push(() => pub.end(true));
    let reconnects = 0;
    sub.on("reconnect", () => reconnects++);
    const s = await sub.subscriber("mobile/t", { qos: 1 });
    const got: string[] = [];
    const reader = (async () => {
      for await (const m of s) got.push(String(m.payload));
    })();
    const serverSide = b.quicConnections.at(-2);
    const waitFor = async (n: number) => {
      for (let i = 0; i < 500 && got.length < n; i++) await new Promise((r) => setTimeout(r, 10));
      expect(got.length).toBe(n);
    };
    await pub.publish("mobile/t", "before", { qos: 1 });
    await waitFor(1);
    // Wi-Fi to cellular, as far as loopback can show it: a new local address.
    await sub.migrate({ host: "127.0.0.2" });
    await pub.publish("mobile/t", "after", { qos: 1 });
    await sub.publish("mobile/echo", "from the new address", { qos: 1 });
    await waitFor(2);
    expect(got).toEqual(["before", "after"]);
    expect(serverSide?.remoteAddress).toMatch(/^127\.0\.0\.2:\d+$/);
    expect(reconnects).toBe(0);
    await s.close();
    await reader;

    const tcp: MqttClient = await connect(b.tcpUrl);
    cleanup.push(() => tcp.end(true));
    await expect(tcp.migrate()).rejects.toMatchObject({ code: "ERR_MQTT_MIGRATION" });
  }, 30_000);
});
