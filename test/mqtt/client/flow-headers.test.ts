/**
 * Server-opened delivery streams that begin with a flow header (mqtt.ai "simple multistreams",
 * the Rust `mqtt5` broker behind `mqttv5 broker`: a server-data header, type 0x13, on every
 * per-topic and per-publish delivery stream). The client strips it with the shared codec
 * (src/mqtt/flow-header.ts) and reads the MQTT packets after it; a stream without one works as
 * before. On an in-memory network with a manual clock.
 */
import { generate } from "mqtt-packet";
import { afterEach, describe, expect, it } from "vitest";
import { connect, type MqttClient } from "../../../src/mqtt/client/index.js";
import { encodeFlowHeader, FlowType } from "../../../src/mqtt/flow-header.js";
import { ManualScheduler } from "./helpers.js";
import { flush, MemoryNet } from "./memory-transport.js";

const clients: MqttClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end(true)));
});

async function start(): Promise<{ client: MqttClient; net: MemoryNet; got: string[] }> {
  const net = new MemoryNet();
  const client = await connect("mqtt+quic://memory", {
    dial: net.dial,
    scheduler: new ManualScheduler(),
    random: () => 0.5,
    protocolVersion: 5,
  });
  clients.push(client);
  const got: string[] = [];
  client.on("message", (t, p, packet) => got.push(`${t}=${p}@${packet.qos}`));
  return { client, net, got };
}

const publish = (topic: string, payload: string, qos: 0 | 1 | 2, messageId?: number) => ({
  cmd: "publish" as const,
  topic,
  payload: Buffer.from(payload),
  qos,
  dup: false,
  retain: false,
  ...(messageId ? { messageId } : {}),
});

describe("flow headers on server-opened streams", () => {
  it("a server bidi stream with a server-data header (split across writes): deliveries and their acks on it", async () => {
    const { net, got } = await start();
    const l = net.last;
    const st = l.openStream(true);
    const header = encodeFlowHeader({
      type: FlowType.ServerData,
      flowId: 1n,
      expiryInterval: 300n,
      flags: 0,
    });
    // One byte at a time: the client must wait for the whole header.
    for (const b of header) {
      st.duplex.write(Uint8Array.of(b));
      await flush(1);
    }
    l.send(st.index, publish("t/a", "one", 1, 5));
    l.send(st.index, publish("t/a", "two", 2, 6));
    await flush();
    expect(got).toEqual(["t/a=one@1", "t/a=two@2"]);
    expect(l.received("puback")).toEqual([
      { stream: st.index, packet: expect.objectContaining({ messageId: 5 }) },
    ]);
    expect(l.received("pubrec")).toEqual([
      { stream: st.index, packet: expect.objectContaining({ messageId: 6 }) },
    ]);
    l.send(st.index, { cmd: "pubrel", messageId: 6 });
    await flush();
    expect(l.received("pubcomp")).toEqual([
      { stream: st.index, packet: expect.objectContaining({ messageId: 6 }) },
    ]);
  });

  it("a server uni stream with a header and the packet in one write: acked on the control stream", async () => {
    const { net, got } = await start();
    const l = net.last;
    const st = l.openStream(false);
    const header = encodeFlowHeader({ type: FlowType.ServerData, flowId: 0x4001n, expiryInterval: 70000n });
    st.duplex.write(Buffer.concat([header, generate(publish("t/u", "uni", 1, 9), { protocolVersion: 5 })]));
    await flush();
    expect(got).toEqual(["t/u=uni@1"]);
    expect(l.received("puback")).toEqual([{ stream: 0, packet: expect.objectContaining({ messageId: 9 }) }]);
  });

  it("a stream without a header still works, and a PUBLISH whose first byte is not 0x11-0x14 is never taken for one", async () => {
    const { net, got } = await start();
    const l = net.last;
    const st = l.openStream(true);
    l.send(st.index, publish("t/plain", "p", 0));
    l.send(st.index, publish("t/plain", "q", 1, 2)); // first byte 0x32
    await flush();
    expect(got).toEqual(["t/plain=p@0", "t/plain=q@1"]);
  });

  it("a user-defined flow (0x14, not MQTT) drops that stream only", async () => {
    const { client, net, got } = await start();
    const l = net.last;
    const st = l.openStream(true);
    st.duplex.write(Uint8Array.of(0x14, 0x01, 0x00));
    l.send(st.index, publish("t/x", "never", 0));
    await flush();
    l.send(0, publish("t/ctl", "still here", 0));
    await flush();
    expect(got).toEqual(["t/ctl=still here@0"]);
    expect(client.connected).toBe(true);
  });
});
