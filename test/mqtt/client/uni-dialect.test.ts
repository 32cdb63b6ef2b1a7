/**
 * The client's QUIC data stream dialects against the fake broker over real QUIC on loopback:
 * ALPN "mqtt" with EMQX-style bidi data streams, ALPN "MQTT-next" with uni data streams that begin
 * with a client-data flow header (what `mqttv5 broker` accepts), the explicit "uni" option, and
 * the fallback after a broker refuses a bidi data stream with 0xB5.
 */
import type { IPublishPacket } from "mqtt-packet";
import { afterEach, describe, expect, it } from "vitest";
import { nodeProvider } from "../../../src/crypto/node.js";
import {
  type ConnectOptions,
  connect,
  type MqttClient,
  MqttStreamRefusedError,
} from "../../../src/mqtt/client/index.js";
import { FlowType } from "../../../src/mqtt/flow-header.js";
import { FakeQuicBroker } from "./fake-quic-broker.js";
import { waitFor } from "./helpers.js";

const brokers: FakeQuicBroker[] = [];
const clients: MqttClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end(true)));
  await Promise.all(brokers.splice(0).map((b) => b.close()));
});

async function setup(
  opts: ConnectOptions,
  fakeOpts: Parameters<typeof FakeQuicBroker.start>[0],
): Promise<{ broker: FakeQuicBroker; client: MqttClient }> {
  const broker = await FakeQuicBroker.start(fakeOpts);
  brokers.push(broker);
  const client = await connect(broker.url, {
    ca: FakeQuicBroker.ca(),
    serverName: "localhost",
    quic: { crypto: nodeProvider },
    reconnect: false,
    protocolVersion: 5,
    ...opts,
  });
  clients.push(client);
  return { broker, client };
}

const payloadOf = (e: { packet: unknown }) => (e.packet as IPublishPacket).payload.toString();

describe("QUIC data stream dialects", () => {
  it('"auto" against a broker preferring MQTT-next: uni data streams, each with its own client flow header', async () => {
    const { broker, client } = await setup({}, { alpn: ["MQTT-next", "mqtt"] });
    expect(client.quicDialect).toEqual({ alpn: "MQTT-next", dataStreams: "uni" });
    const conn = broker.last;
    const a = await client.publisher("t/a");
    await a.publish("a1", { qos: 1 });
    await client.publish("t/b", "b1", { qos: 2 });
    await client.publish("t/c", "c0", { qos: 0 });
    const got: string[] = [];
    client.on("message", (t, p) => got.push(`${t}=${p}`));
    await client.subscribe("back/#", { qos: 1 });
    await waitFor(() => conn.received("publish").length === 3, 3000, "three PUBLISHes");
    expect(conn.violations).toEqual([]);
    // every PUBLISH and the SUBSCRIBE rode a client uni stream; their answers came on control
    const dataStreams = conn.streams.filter((s) => s.index > 0 && !s.serverOpened);
    expect(dataStreams.length).toBeGreaterThanOrEqual(4);
    for (const s of dataStreams) {
      expect(s.bidi).toBe(false);
      expect(s.flow).toMatchObject({ type: FlowType.ClientData, expiryInterval: 0n });
      expect(Number(s.flow!.flowId) % 2).toBe(0); // client flows are even
    }
    const ids = dataStreams.map((s) => s.flow!.flowId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const e of conn.received("publish")) expect(conn.streams[e.stream]!.bidi).toBe(false);
    expect(conn.received("pubrel").map((e) => e.stream)).toEqual([0]);
    expect(conn.received("subscribe").map((e) => conn.streams[e.stream]!.bidi)).toEqual([false]);
    // deliveries for a uni-stream subscription come on the control stream, acked there
    broker.route({
      cmd: "publish",
      topic: "back/x",
      payload: Buffer.from("hi"),
      qos: 1,
      dup: false,
      retain: false,
    });
    await waitFor(() => got.length === 1, 3000, "the delivery");
    expect(got).toEqual(["back/x=hi"]);
    await waitFor(() => conn.received("puback").length === 1, 3000, "the PUBACK");
    expect(conn.received("puback")[0]!.stream).toBe(0);
    expect(conn.received("publish").map(payloadOf).sort()).toEqual(["a1", "b1", "c0"]);
  });

  it('"auto" against a broker offering only "mqtt": EMQX-style bidi data streams as before', async () => {
    const { broker, client } = await setup({}, { alpn: ["mqtt"] });
    expect(client.quicDialect).toEqual({ alpn: "mqtt", dataStreams: "bidi" });
    await client.publish("t/a", "x", { qos: 1 });
    const conn = broker.last;
    expect(conn.violations).toEqual([]);
    const [e] = conn.received("publish");
    expect(conn.streams[e!.stream]!.bidi).toBe(true);
    expect(conn.streams[e!.stream]!.flow).toBeUndefined();
    expect(conn.received("puback")).toEqual([]);
  });

  it('"uni" under ALPN "mqtt": uni data streams without flow headers; single mode has none', async () => {
    const { broker, client } = await setup({ quicDataStreams: "uni" }, { alpn: ["mqtt"] });
    expect(client.quicDialect).toEqual({ alpn: "mqtt", dataStreams: "uni" });
    await client.publish("t/u", "x", { qos: 1 });
    const conn = broker.last;
    const [e] = conn.received("publish");
    expect(conn.streams[e!.stream]!.bidi).toBe(false);
    expect(conn.streams[e!.stream]!.flow).toBeUndefined();
    const single = await connect(broker.url, {
      ca: FakeQuicBroker.ca(),
      serverName: "localhost",
      quic: { crypto: nodeProvider },
      reconnect: false,
      streamMode: "single",
    });
    clients.push(single);
    expect(single.quicDialect?.dataStreams).toBe("none");
  });

  it('a 0xB5 refusal of a bidi data stream is MqttStreamRefusedError; "auto" reconnects in the uni dialect and resends', async () => {
    const { broker, client } = await setup(
      { reconnect: { minDelay: 10, maxDelay: 10 }, clean: false, clientId: "refused" },
      { alpn: ["mqtt"], refuseBidi: true },
    );
    const errors: Error[] = [];
    client.on("error", (e) => errors.push(e));
    const done = client.publish("t/r", "kept", { qos: 1 });
    await expect(done).resolves.toMatchObject({ reasonCode: 0 });
    const refused = errors.find((e) => e instanceof MqttStreamRefusedError) as MqttStreamRefusedError;
    expect(refused.errorCode).toBe(0xb5);
    expect(client.quicDialect).toEqual({ alpn: "mqtt", dataStreams: "uni" });
    const last = broker.last;
    // resent on the new connection, now on a uni stream, and acknowledged there (on control)
    expect(broker.conns.length).toBe(2);
    expect(last.received("publish").map(payloadOf)).toEqual(["kept"]);
    expect(last.streams[last.received("publish")[0]!.stream]!.bidi).toBe(false);
  });
});
