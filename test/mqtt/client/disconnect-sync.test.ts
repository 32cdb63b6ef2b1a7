/**
 * `end()` after a QoS 0 PUBLISH on a data stream: QUIC does not order streams, so a broker that
 * acts on DISCONNECT at once (the `mqtt5` broker behind `mqttv5 broker`) could see it before the
 * PUBLISH and drop it. The client ends its data streams, then makes one PINGREQ/PINGRESP round
 * trip on the control stream (bounded by the close grace, 1 s) before the DISCONNECT. On an in-memory network with a
 * manual clock.
 */
import { afterEach, describe, expect, it } from "vitest";
import { connect, type MqttClient, type StreamMode } from "../../../src/mqtt/client/index.js";
import { ManualScheduler } from "./helpers.js";
import { flush, MemoryNet } from "./memory-transport.js";

const clients: MqttClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end(true)));
});

async function start(streamMode: StreamMode) {
  const net = new MemoryNet();
  const clock = new ManualScheduler();
  const client = await connect("mqtt+quic://memory", {
    dial: net.dial,
    scheduler: clock,
    random: () => 0.5,
    protocolVersion: 5,
    reconnect: false,
    streamMode,
  });
  clients.push(client);
  return { client, link: net.last, clock };
}

/** The client's packets after CONNECT: `cmd@stream` (0 is the control stream). */
const order = (l: MemoryNet["last"]) =>
  l.log
    .filter((e) => e.packet.cmd !== "connect")
    .map((e) => `${e.packet.cmd}@${e.stream === 0 ? "control" : "data"}`);

describe("DISCONNECT after QoS 0 on a data stream", () => {
  it("a PINGREQ round trip comes between the data stream's PUBLISH and the DISCONNECT", async () => {
    const { client, link } = await start("per-topic");
    await client.publish("t/a", "x", { qos: 0 });
    await client.end();
    await flush();
    expect(order(link)).toEqual(["publish@data", "pingreq@control", "disconnect@control"]);
    // the data stream was ended (FIN) before the round trip
    const data = link.streams.find((s) => s.index > 0)!;
    expect(data.ended).toBe(true);
  });

  it("without an answer the DISCONNECT goes after the close grace (1 s) at most", async () => {
    const { client, link, clock } = await start("multi");
    link.autoPingresp = false;
    await client.publish("t/a", "x", { qos: 0 });
    const ended = client.end();
    await flush();
    expect(order(link)).toEqual(["publish@data", "pingreq@control"]);
    clock.advance(999);
    await flush();
    expect(order(link)).toEqual(["publish@data", "pingreq@control"]);
    clock.advance(1);
    await ended;
    expect(order(link)).toEqual(["publish@data", "pingreq@control", "disconnect@control"]);
  });

  it("no round trip when nothing at QoS 0 went on a data stream, nor in single-stream mode", async () => {
    const a = await start("per-topic");
    await a.client.end();
    await flush();
    expect(order(a.link)).toEqual(["disconnect@control"]);
    const b = await start("single");
    await b.client.publish("t/a", "x", { qos: 0 });
    await b.client.end();
    await flush();
    expect(order(b.link)).toEqual(["publish@control", "disconnect@control"]);
  });
});
