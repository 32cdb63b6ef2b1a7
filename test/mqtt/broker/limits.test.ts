/** Bounded buffering: a subscriber that does not read cannot make the broker buffer without bound. */
import { describe, expect, it } from "vitest";
import { memoryTransportPair } from "../../../src/mqtt/transport.js";
import { connect, makeBroker, PacketStream, sleep, subscribe } from "./helpers.js";

describe("limits", () => {
  it("a slow consumer: QoS 0 beyond maxPendingBytes is dropped, QoS 1 waits in the queue, all resumes on drain", async () => {
    const { broker } = makeBroker({ maxPendingBytes: 8 * 1024 });
    const { server, client } = memoryTransportPair({ highWaterMark: 1024 });
    broker.handle(server);
    const s = new PacketStream(client.control, 5);
    s.send({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 5,
      clientId: "slow",
      clean: true,
      keepalive: 0,
    });
    await s.expect("connack");
    await subscribe(s, "t", 1);
    client.control.pause(); // stop reading
    const p = await connect(broker, { clientId: "p" });
    const payload = Buffer.alloc(1000, 0x61);
    for (let i = 0; i < 40; i++)
      p.ctl.send({ cmd: "publish", topic: "t", payload, qos: 0, retain: false, dup: false });
    for (let i = 1; i <= 20; i++) {
      p.ctl.send({ cmd: "publish", topic: "t", payload, qos: 1, retain: false, dup: false, messageId: i });
    }
    for (let i = 1; i <= 20; i++) await p.ctl.expect("puback");
    await sleep(20);
    const dropped = broker.metrics.dropped.congestion;
    expect(dropped).toBeGreaterThan(20);
    const queued = broker.session("slow")!.queue.length;
    expect(queued).toBeGreaterThan(0);
    // Read again: every QoS 1 message arrives, in order.
    client.control.resume();
    const qos1: string[] = [];
    let zero = 0;
    while (qos1.length < 20) {
      const m = await s.expect("publish");
      if (m.qos === 0) zero++;
      else {
        qos1.push(String(m.messageId));
        s.send({ cmd: "puback", messageId: m.messageId! });
      }
    }
    expect(zero + dropped).toBe(40);
    expect(broker.session("slow")!.queue.length).toBe(0);
  });

  it("a client that never sends CONNECT costs only the connect timeout", async () => {
    const { broker, clock } = makeBroker({ connectTimeout: 1000 });
    const pairs = Array.from({ length: 20 }, () => memoryTransportPair());
    for (const { server } of pairs) broker.handle(server);
    expect(broker.metrics.connections).toBe(20);
    clock.advance(1000);
    await Promise.all(pairs.map(({ client }) => client.closed()));
    expect(broker.metrics.connections).toBe(0);
  });
});
