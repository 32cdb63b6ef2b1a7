import { once } from "node:events";
import { createServer as createTlsServer } from "node:tls";
import type { IPublishPacket, Packet } from "mqtt-packet";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { nodeProvider } from "../../../src/crypto/node.js";
import {
  connect,
  createClient,
  MqttAckError,
  type MqttClient,
  MqttConnackError,
  MqttInvalidTopicError,
  type MqttMessage,
} from "../../../src/mqtt/client/index.js";
import { testCerts } from "../../quic/harness.js";
import { type AedesHandle, CuttableDialer, startAedes, waitFor } from "./helpers.js";

let broker: AedesHandle;
const clients: MqttClient[] = [];

beforeEach(async () => {
  broker = await startAedes();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end(true)));
  await broker.close();
});

async function client(opts: Parameters<typeof connect>[1] = {}): Promise<MqttClient> {
  const c = await connect(broker.url, { protocolVersion: 4, reconnect: false, ...opts });
  clients.push(c);
  return c;
}

describe("MQTT client over TCP against aedes", () => {
  it("connects with MQTT 3.1.1 and reports the transport", async () => {
    const c = await client({ clientId: "c1", keepalive: 30 });
    expect(c.connected).toBe(true);
    expect(c.transportKind).toBe("tcp");
    expect(c.connackInfo?.sessionPresent).toBe(false);
  });

  it("explains a refused CONNACK with the reason (bad credentials)", async () => {
    broker.broker.authenticate = (_c, username, _p, done) => {
      if (username === "alice") done(null, true);
      else {
        const err = Object.assign(new Error("nope"), { returnCode: 4 as const });
        done(err, null);
      }
    };
    const err = await connect(broker.url, { protocolVersion: 4, username: "mallory", password: "x" }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MqttConnackError);
    const e = err as MqttConnackError;
    expect(e.code).toBe("ERR_MQTT_CONNACK");
    expect(e.reasonCode).toBe(0x86);
    expect(e.returnCode).toBe(4);
    expect(e.message).toMatch(/^broker refused the connection: 0x86 Bad User Name or Password/);
    await client({ username: "alice", password: "pw" });
  });

  it("explains a 3.1.1-only broker answering an MQTT 5 CONNECT", async () => {
    const err = (await connect(broker.url, { protocolVersion: 5 }).catch(
      (e: unknown) => e,
    )) as MqttConnackError;
    expect(err).toBeInstanceOf(MqttConnackError);
    expect(err.reasonCode).toBe(0x84);
    expect(err.message).toContain("0x84 Unsupported Protocol Version");
    expect(err.message).toContain("protocolVersion: 4");
  });

  for (const qos of [0, 1, 2] as const) {
    it(`publishes and receives at QoS ${qos} with the MQTT.js-shaped API`, async () => {
      const sub = await client({ clientId: `sub${qos}` });
      const got: [string, string, IPublishPacket][] = [];
      sub.on("message", (t, p, pkt) => got.push([t, p.toString(), pkt]));
      const grants = await sub.subscribe("a/+", { qos });
      expect(grants).toEqual([{ topic: "a/+", qos }]);
      const pub = await client({ clientId: `pub${qos}` });
      const r = await pub.publish("a/b", "hello", { qos });
      if (qos === 0) expect(r).toBeUndefined();
      else expect(r).toMatchObject({ reasonCode: 0 });
      await waitFor(() => got.length === 1);
      expect(got[0][0]).toBe("a/b");
      expect(got[0][1]).toBe("hello");
      expect(got[0][2].qos).toBe(qos);
    });
  }

  it("QoS 2 delivery runs PUBREC/PUBREL/PUBCOMP both ways", async () => {
    const sub = await client({ clientId: "s" });
    const recv: string[] = [];
    const sent: string[] = [];
    sub.on("packetreceive", (p: Packet) => recv.push(p.cmd));
    sub.on("packetsend", (p: Packet) => sent.push(p.cmd));
    await sub.subscribe("q2", { qos: 2 });
    const pub = await client({ clientId: "p" });
    const pubSent: string[] = [];
    pub.on("packetsend", (p: Packet) => pubSent.push(p.cmd));
    await pub.publish("q2", "x", { qos: 2 });
    expect(pubSent).toEqual(["publish", "pubrel"]);
    await waitFor(() => sent.includes("pubcomp"));
    expect(recv).toEqual(["suback", "publish", "pubrel"]);
    expect(sent).toEqual(["subscribe", "pubrec", "pubcomp"]);
  });

  it("subscribes to several filters at once, with callbacks, and unsubscribes", async () => {
    const c = await client();
    const grants = await new Promise((resolve, reject) =>
      c.subscribe({ "x/1": { qos: 1 }, "x/2": { qos: 0 } }, (err, g) => (err ? reject(err) : resolve(g))),
    );
    expect(grants).toEqual([
      { topic: "x/1", qos: 1 },
      { topic: "x/2", qos: 0 },
    ]);
    const got: string[] = [];
    c.on("message", (t) => got.push(t));
    await c.publish("x/1", "a", { qos: 1 });
    await waitFor(() => got.length === 1);
    await new Promise<void>((resolve, reject) =>
      c.unsubscribe("x/1", (err) => (err ? reject(err) : resolve())),
    );
    await c.publish("x/1", "b", { qos: 1 });
    await c.publish("x/2", "c", { qos: 1 });
    await waitFor(() => got.length === 2);
    expect(got).toEqual(["x/1", "x/2"]);
  });

  it("keeps and replaces retained messages, clears them with an empty payload", async () => {
    const pub = await client();
    await pub.publish("r/t", "first", { qos: 1, retain: true });
    await pub.publish("r/t", "second", { qos: 1, retain: true });
    const s1 = await client();
    const sub1 = await s1.subscriber("r/#", { qos: 1 });
    const m = await sub1.next();
    expect(m.done).toBe(false);
    const msg = m.value as MqttMessage;
    expect(msg.payload.toString()).toBe("second");
    expect(msg.retain).toBe(true);
    await pub.publish("r/t", "", { qos: 1, retain: true });
    const s2 = await client();
    const got: string[] = [];
    s2.on("message", (t) => got.push(t));
    await s2.subscribe("r/#", { qos: 1 });
    await pub.publish("r/other", "live", { qos: 1 });
    await waitFor(() => got.length === 1);
    expect(got).toEqual(["r/other"]);
  });

  it("has the broker publish the will when the connection is lost, not after end()", async () => {
    const watcher = await client();
    const wills: string[] = [];
    watcher.on("message", (t, p) => wills.push(`${t}:${p}`));
    await watcher.subscribe("will/#", { qos: 1 });

    const dialer = new CuttableDialer();
    const dying = await client({ will: { topic: "will/a", payload: "gone", qos: 1 }, dial: dialer.dial });
    const polite = await client({ will: { topic: "will/b", payload: "gone", qos: 1 } });
    await polite.end();
    dialer.cut();
    await waitFor(() => wills.length === 1);
    expect(wills).toEqual(["will/a:gone"]);
    expect(dying.connected).toBe(false);
  });

  it("subscriber(): async iteration, break unsubscribes", async () => {
    const c = await client();
    const sub = await c.subscriber("it/#", { qos: 1 });
    expect(sub.grantedQos).toBe(1);
    const pub = await client();
    for (let i = 0; i < 3; i++) await pub.publish(`it/${i}`, `m${i}`, { qos: 1 });
    const seen: string[] = [];
    for await (const m of sub) {
      seen.push(m.payload.toString());
      if (seen.length === 3) break;
    }
    expect(seen).toEqual(["m0", "m1", "m2"]);
    expect(sub.closed).toBe(true);
    const all: string[] = [];
    c.on("message", (t) => all.push(t));
    await pub.publish("it/4", "late", { qos: 1 });
    await new Promise((r) => setTimeout(r, 100));
    expect(all).toEqual([]);
  });

  it("publisher(): initial payload and later publishes", async () => {
    const c = await client();
    const sub = await c.subscriber("pp", { qos: 2 });
    const p = await c.publisher("pp", "hello", { qos: 1 });
    await p.publish("again", { qos: 2 });
    const a = await sub.next();
    const b = await sub.next();
    expect([a.value?.payload.toString(), b.value?.payload.toString()]).toEqual(["hello", "again"]);
    await p.close();
    await expect(p.publish("x")).rejects.toMatchObject({ code: "ERR_MQTT_HANDLE_CLOSED" });
  });

  it("rejects invalid topics with typed errors", async () => {
    const c = await client();
    await expect(c.publish("a/+", "x")).rejects.toBeInstanceOf(MqttInvalidTopicError);
    await expect(c.publish("", "x")).rejects.toMatchObject({ code: "ERR_MQTT_INVALID_TOPIC" });
    await expect(c.subscribe("a/#/b")).rejects.toMatchObject({ code: "ERR_MQTT_INVALID_TOPIC" });
    await expect(c.subscriber("a+")).rejects.toMatchObject({ code: "ERR_MQTT_INVALID_TOPIC" });
  });

  it("reports a subscription the broker refuses", async () => {
    broker.broker.authorizeSubscribe = (_c, sub, cb) => {
      if (sub.topic.startsWith("secret")) cb(null, null);
      else cb(null, sub);
    };
    const c = await client();
    const grants = await c.subscribe(["ok", "secret/x"]);
    expect(grants).toEqual([
      { topic: "ok", qos: 0 },
      { topic: "secret/x", qos: 0x80 },
    ]);
    const err = await c.subscriber("secret/y").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MqttAckError);
    expect((err as MqttAckError).code).toBe("ERR_MQTT_SUBSCRIBE_REFUSED");
  });

  it("createClient(): MQTT.js style, publishes before connect are queued", async () => {
    const watcher = await client();
    const got: string[] = [];
    watcher.on("message", (_t, p) => got.push(p.toString()));
    await watcher.subscribe("early", { qos: 1 });
    const c = createClient(broker.url, { protocolVersion: 4 });
    clients.push(c);
    const connected = new Promise<void>((r) => c.once("connect", () => r()));
    expect(c.connected).toBe(false);
    const done = c.publish("early", "before connect", { qos: 1 });
    await connected;
    await done;
    await waitFor(() => got.length === 1);
    expect(got).toEqual(["before connect"]);
  });

  it("end() waits for in-flight messages and emits close then end", async () => {
    const c = await client();
    const events: string[] = [];
    c.on("close", () => events.push("close"));
    c.on("end", () => events.push("end"));
    const p = c.publish("e", "x", { qos: 2 });
    await c.end();
    await expect(p).resolves.toMatchObject({ reasonCode: 0 });
    expect(events).toEqual(["close", "end"]);
    await expect(c.publish("e", "y")).rejects.toMatchObject({ code: "ERR_MQTT_CLIENT_CLOSED" });
  });

  it("mqtts:// connects over TLS, verifying the broker against the given CA", async () => {
    const { ca, leaf } = testCerts(nodeProvider);
    const server = createTlsServer({ cert: leaf.pem, key: leaf.keyPem }, (s) => broker.broker.handle(s));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    try {
      const secure = await connect(`mqtts://127.0.0.1:${port}`, {
        protocolVersion: 4,
        ca: ca.pem,
        serverName: "localhost",
        reconnect: false,
      });
      clients.push(secure);
      expect(secure.transportKind).toBe("tls");
      const got: string[] = [];
      secure.on("message", (_t, p) => got.push(p.toString()));
      await secure.subscribe("tls/t", { qos: 1 });
      await secure.publish("tls/t", "over tls", { qos: 1 });
      await waitFor(() => got.length === 1);
      const untrusted = await connect(`mqtts://127.0.0.1:${port}`, {
        protocolVersion: 4,
        serverName: "localhost",
      }).catch((e: Error) => e);
      expect(untrusted).toMatchObject({ code: "ERR_MQTT_CONNECTION" });
      expect((untrusted as Error).message).toMatch(/cannot connect to 127.0.0.1:\d+ \(TLS\): .*certificate/);
    } finally {
      for (const c of clients.splice(0)) await c.end(true);
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
