import type { IPublishPacket, Packet } from "mqtt-packet";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  connect,
  MemoryClientSessionStore,
  type MqttClient,
  MqttOfflineQueueFullError,
} from "../../../src/mqtt/client/index.js";
import { type AedesHandle, CuttableDialer, delay, startAedes, waitFor } from "./helpers.js";

let broker: AedesHandle;
const clients: MqttClient[] = [];
const fast = { minDelay: 20, maxDelay: 100 };

beforeEach(async () => {
  broker = await startAedes();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end(true)));
  await broker.close();
});

async function client(opts: Parameters<typeof connect>[1] = {}): Promise<MqttClient> {
  const c = await connect(broker.url, { protocolVersion: 4, reconnect: fast, ...opts });
  clients.push(c);
  return c;
}

function published(c: MqttClient): IPublishPacket[] {
  const out: IPublishPacket[] = [];
  c.on("packetsend", (p: Packet) => {
    if (p.cmd === "publish") out.push({ ...p });
  });
  return out;
}

describe("reconnect and session resumption against aedes", () => {
  it("reconnects with backoff after the connection drops and resubscribes a clean session", async () => {
    const dialer = new CuttableDialer();
    const c = await client({ dial: dialer.dial });
    const events: string[] = [];
    for (const e of ["close", "offline", "reconnect", "connect"] as const) c.on(e, () => events.push(e));
    await c.subscribe("rc/#", { qos: 1 });
    dialer.cut();
    await waitFor(() => events.includes("connect"), 5000, "reconnect");
    expect(events).toEqual(["close", "offline", "reconnect", "connect"]);
    expect(dialer.transports.length).toBe(2);
    const got: string[] = [];
    c.on("message", (t) => got.push(t));
    const pub = await client();
    await pub.publish("rc/1", "x", { qos: 1 });
    await waitFor(() => got.length === 1, 5000, "delivery after resubscribe");
  });

  it("resends an unacknowledged QoS 1 PUBLISH with DUP after reconnecting to a persistent session", async () => {
    const watcher = await client();
    const got: string[] = [];
    watcher.on("message", (_t, p) => got.push(p.toString()));
    await watcher.subscribe("dup/1", { qos: 1 });

    let hold = true;
    broker.broker.authorizePublish = (_c, packet, cb) => {
      if (packet.topic === "dup/1" && hold) return; // swallow: no PUBACK
      cb(null);
    };
    const dialer = new CuttableDialer();
    const c = await client({ clientId: "dup-client", clean: false, dial: dialer.dial });
    // aedes reports a session present only for a client with subscriptions.
    await c.subscribe("keep/session", { qos: 1 });
    const sent = published(c);
    const result = c.publish("dup/1", "once", { qos: 1 });
    await waitFor(() => sent.length === 1);
    expect(sent[0].dup).toBe(false);
    expect(c.outbox.inflightCount).toBe(1);
    hold = false;
    dialer.cut();
    await expect(result).resolves.toMatchObject({ reasonCode: 0 });
    expect(sent.length).toBe(2);
    expect(sent[1]).toMatchObject({ dup: true, messageId: sent[0].messageId, topic: "dup/1", qos: 1 });
    await waitFor(() => got.length >= 1);
    expect(got[0]).toBe("once");
    expect(c.connackInfo?.sessionPresent).toBe(true);
  });

  for (const killAt of ["publish", "pubrec"] as const) {
    it(`outgoing QoS 2 is delivered exactly once when the connection dies after ${killAt.toUpperCase()}`, async () => {
      const watcher = await client();
      const got: string[] = [];
      watcher.on("message", (_t, p) => got.push(p.toString()));
      await watcher.subscribe("eo/out", { qos: 2 });

      const dialer = new CuttableDialer();
      const c = await client({ clientId: `eo-out-${killAt}`, clean: false, dial: dialer.dial });
      await c.subscribe("keep/session", { qos: 1 });
      const sent: Packet[] = [];
      c.on("packetsend", (p: Packet) => sent.push({ ...p }));
      let killed = false;
      const trigger = killAt === "publish" ? "packetsend" : "packetreceive";
      c.on(trigger, (p: Packet) => {
        if (!killed && p.cmd === killAt) {
          killed = true;
          dialer.cut();
        }
      });
      await expect(c.publish("eo/out", "exactly-once", { qos: 2 })).resolves.toMatchObject({ reasonCode: 0 });
      expect(killed).toBe(true);
      expect(dialer.transports.length).toBe(2);
      const cmds = sent.map((p) => (p.cmd === "publish" ? `publish${p.dup ? "(dup)" : ""}` : p.cmd));
      if (killAt === "publish")
        expect(cmds.filter((x) => x.startsWith("publish"))).toEqual(["publish", "publish(dup)"]);
      else expect(cmds.filter((x) => x === "pubrel").length).toBeGreaterThanOrEqual(1);
      await delay(100);
      expect(got).toEqual(["exactly-once"]);
    });
  }

  for (const killAt of ["publish", "pubrec"] as const) {
    it(`incoming QoS 2 is delivered exactly once when the connection dies at ${killAt.toUpperCase()}`, async () => {
      const store = new MemoryClientSessionStore();
      const dialer = new CuttableDialer();
      const c = await client({ clientId: `eo-in-${killAt}`, clean: false, dial: dialer.dial, store });
      const got: IPublishPacket[] = [];
      c.on("message", (_t, _p, pkt) => got.push(pkt));
      await c.subscribe("eo/in", { qos: 2 });
      let killed = false;
      const trigger = killAt === "publish" ? "packetreceive" : "packetsend";
      c.on(trigger, (p: Packet) => {
        if (!killed && p.cmd === killAt) {
          killed = true;
          dialer.cut();
        }
      });
      const sent: string[] = [];
      c.on("packetsend", (p: Packet) => sent.push(p.cmd));
      const pub = await client();
      await pub.publish("eo/in", "only-once", { qos: 2 });
      await waitFor(() => sent.includes("pubcomp"), 5000, "PUBCOMP after reconnect");
      await delay(100);
      expect(killed).toBe(true);
      expect(got.map((p) => p.payload.toString())).toEqual(["only-once"]);
      expect(c.inbox.pendingQos2).toEqual([]);
      expect(store.load(c.clientId)?.incoming).toEqual([]);
    });
  }

  it("queues publishes while offline up to offlineQueueLimit, then rejects with a typed error", async () => {
    const port = broker.port;
    const c = await client({ offlineQueueLimit: 3, clientId: "offline" });
    const offline = new Promise<void>((r) => c.once("offline", () => r()));
    await broker.close();
    await offline;
    expect(c.connected).toBe(false);
    const queued = [1, 2, 3].map((i) => c.publish("off/q", `m${i}`, { qos: 1 }));
    const err = await c.publish("off/q", "m4", { qos: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MqttOfflineQueueFullError);
    expect((err as MqttOfflineQueueFullError).code).toBe("ERR_MQTT_OFFLINE_QUEUE_FULL");
    expect((err as Error).message).toContain("3 messages");

    broker = await startAedes({}, port);
    const watcher = await client();
    const got: string[] = [];
    watcher.on("message", (_t, p) => got.push(p.toString()));
    await watcher.subscribe("off/q", { qos: 1 });
    // The offline client reconnects with backoff and sends its queue in order.
    await Promise.all(queued);
    await waitFor(() => got.length === 3);
    expect(got).toEqual(["m1", "m2", "m3"]);
  });

  it("without reconnect, a lost connection makes publish fail with ERR_MQTT_NOT_CONNECTED", async () => {
    const dialer = new CuttableDialer();
    const c = await client({ reconnect: false, dial: dialer.dial });
    const closed = new Promise<void>((r) => c.once("close", () => r()));
    dialer.cut();
    await closed;
    await expect(c.publish("x", "y")).rejects.toMatchObject({ code: "ERR_MQTT_NOT_CONNECTED" });
  });

  it("a permanent refusal on reconnect stops retrying", async () => {
    const dialer = new CuttableDialer();
    const c = await client({ dial: dialer.dial, username: "u" });
    const errors: Error[] = [];
    c.on("error", (e) => errors.push(e));
    broker.broker.authenticate = (_c, _u, _p, done) =>
      done(Object.assign(new Error("banned"), { returnCode: 5 as const }), null);
    dialer.cut();
    await waitFor(() => errors.some((e) => "reasonCode" in e));
    const refused = errors.find((e) => "reasonCode" in e)!;
    expect(refused.message).toContain("0x87 Not authorized");
    await delay(300);
    expect(dialer.transports.length).toBe(2);
    expect(c.reconnecting).toBe(false);
    const err = (await c.publish("x", "y").catch((e: Error) => e)) as Error;
    expect(err).toMatchObject({ code: "ERR_MQTT_NOT_CONNECTED" });
    expect(err.message).toContain("0x87 Not authorized");
  });
});
