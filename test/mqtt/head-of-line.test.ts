/**
 * The head-of-line claim (issue 5), measured in virtual time on the simulated network.
 *
 * A "broker" (the server connection of a sans-IO Pair) publishes MQTT PUBLISH packets (QoS 0,
 * framed by mqtt-packet) on two topics to one subscribing client, alternately, every
 * PERIOD/2 ms: topic A at t0 + i·PERIOD, topic B at t0 + i·PERIOD + PERIOD/2.
 *
 *   per-topic  every topic on its own server-initiated unidirectional stream (SA, SB)
 *   single     both topics on one stream S (what MQTT over TCP gets)
 *
 * For OUTAGE ms, every datagram that carries topic A's bytes is dropped at the sender (the
 * `faultInjection.dropOutgoing` seam of src/quic/config.ts: encrypted datagrams cannot be told
 * apart on the wire). In per-topic mode that is every datagram with a STREAM frame of SA; in
 * single mode every datagram with a STREAM frame of S overlapping the byte range of an A PUBLISH
 * (B's bytes get through). Dropped datagrams count as sent, so loss recovery retransmits them
 * exactly as after wire loss; retransmissions inside the window are dropped too.
 *
 * The client reads every stream at the virtual time a datagram is delivered and records each
 * message's latency (arrival − publish time). Claims: per-topic, B never waits (latency = the
 * one-way delay) while A arrives late, complete and in order; single-stream, B's messages
 * published during the outage wait for A's retransmission.
 */
import mqttPacket from "mqtt-packet";
import { describe, expect, it } from "vitest";
import type { OutgoingPacketInfo } from "../../src/quic/config.js";
import { Pair } from "../quic/harness.js";
import { closedInfo, provider } from "../quic/sim/helpers.js";
import { withSeed } from "../sim/network.js";

const ONE_WAY = 20; // ms, link delay each way (RTT 40 ms)
const PERIOD = 20; // ms between two messages of one topic
const COUNT = 40; // messages per topic (800 ms of publishing)
const OUTAGE_FROM = 200; // ms after the first publish
const OUTAGE = 200; // ms during which A's datagrams are dropped

type Mode = "per-topic" | "single";
type Topic = "a" | "b";

interface Delivery {
  seq: number;
  sentAt: number;
  arrivedAt: number;
  latency: number;
}

interface Run {
  a: Delivery[];
  b: Delivery[];
  t0: number;
  outageStart: number;
  outageEnd: number;
  dropped: number;
}

function percentile(values: readonly number[], p: number): number {
  const s = [...values].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function runMode(mode: Mode, seed: number): Run {
  const window = { start: Number.POSITIVE_INFINITY, end: Number.POSITIVE_INFINITY };
  let dropped = 0;
  // Stream ids and, in single mode, the byte ranges of A's PUBLISH packets on S.
  let streamA = -1;
  const aRanges: [number, number][] = [];
  const carriesA = (info: OutgoingPacketInfo): boolean =>
    info.streamFrames.some(
      (f) =>
        f.streamId === streamA &&
        (mode === "per-topic" || aRanges.some(([from, to]) => f.offset < to && from < f.offset + f.length)),
    );
  const p = new Pair(provider, {
    seed,
    link: { latency: ONE_WAY },
    serverFaultInjection: {
      dropOutgoing: (info) => {
        const drop = info.now >= window.start && info.now < window.end && carriesA(info);
        if (drop) dropped++;
        return drop;
      },
    },
  });
  expect(p.handshake()).toBe(true);
  const server = p.serverConn!;
  const client = p.clientConn;

  const open = (): number => {
    const id = server.openStream(false);
    if (id === undefined) throw new Error("no stream credit");
    return id;
  };
  streamA = open();
  const streamB = mode === "per-topic" ? open() : streamA;
  const written = new Map<number, number>([
    [streamA, 0],
    [streamB, 0],
  ]);

  // Client: one MQTT parser per stream; every PUBLISH is timed at the moment it is readable.
  const result: Record<Topic, Delivery[]> = { a: [], b: [] };
  const sent: Record<Topic, number[]> = { a: [], b: [] };
  const parsers = new Map<number, ReturnType<typeof mqttPacket.parser>>();
  const parserFor = (id: number) => {
    let parser = parsers.get(id);
    if (!parser) {
      const q = mqttPacket.parser({ protocolVersion: 4 });
      q.on("packet", (packet) => {
        if (packet.cmd !== "publish") throw new Error(`unexpected ${packet.cmd}`);
        const topic = packet.topic as Topic;
        const seq = Number(String(packet.payload));
        const sentAt = sent[topic][seq];
        const arrivedAt = p.net.now;
        result[topic].push({ seq, sentAt, arrivedAt, latency: arrivedAt - sentAt });
      });
      q.on("error", (e) => {
        throw e;
      });
      parsers.set(id, q);
      parser = q;
    }
    return parser;
  };
  const readClient = (): boolean => {
    let progressed = false;
    for (const e of p.clientEvents) {
      if (e.type !== "stream_opened") continue;
      for (
        let r = client.read(p.net.now, e.streamId);
        r?.data.length;
        r = client.read(p.net.now, e.streamId)
      ) {
        parserFor(e.streamId).parse(Buffer.from(r.data));
        progressed = true;
      }
    }
    if (progressed) p.touch(client);
    return result.a.length === COUNT && result.b.length === COUNT;
  };
  const runUntil = (t: number): void => {
    p.net.run(() => {
      readClient();
      return false;
    }, t);
    p.net.now = Math.max(p.net.now, t);
  };

  const publish = (topic: Topic, seq: number): void => {
    const id = topic === "a" ? streamA : streamB;
    const bytes = mqttPacket.generate({
      cmd: "publish",
      topic,
      payload: Buffer.from(String(seq)),
      qos: 0,
      retain: false,
      dup: false,
    });
    const at = written.get(id)!;
    if (topic === "a") aRanges.push([at, at + bytes.length]);
    expect(server.write(id, bytes)).toBe(bytes.length);
    written.set(id, at + bytes.length);
    sent[topic][seq] = p.net.now;
    p.touch(server);
  };

  const t0 = Math.ceil(p.net.now / 100) * 100 + 100;
  window.start = t0 + OUTAGE_FROM;
  window.end = window.start + OUTAGE;
  for (let i = 0; i < COUNT; i++) {
    runUntil(t0 + i * PERIOD);
    publish("a", i);
    runUntil(t0 + i * PERIOD + PERIOD / 2);
    publish("b", i);
  }
  expect(p.net.run(readClient, p.net.now + 10_000)).toBe(true);
  expect(closedInfo(p.clientEvents)).toBeUndefined();
  expect(closedInfo(p.serverEvents)).toBeUndefined();
  return { ...result, t0, outageStart: window.start, outageEnd: window.end, dropped };
}

function summary(mode: Mode, r: Run): string {
  const line = (topic: Topic) => {
    const l = r[topic].map((d) => d.latency);
    return `${topic.toUpperCase()} p50 ${percentile(l, 50)} ms, max ${Math.max(...l)} ms`;
  };
  return `head-of-line ${mode.padEnd(9)}: ${line("a")}; ${line("b")} (one-way ${ONE_WAY} ms, ${OUTAGE} ms outage of A, ${r.dropped} datagrams dropped)`;
}

const inOutage = (r: Run, d: Delivery) => d.sentAt >= r.outageStart && d.sentAt < r.outageEnd;

describe("head-of-line blocking (virtual time)", () => {
  it("per-topic streams: B keeps arriving after one one-way delay while A's stream is lossy", () =>
    withSeed(51, (seed) => {
      const r = runMode("per-topic", seed);
      console.log(summary("per-topic", r));
      expect(r.dropped).toBeGreaterThan(0);
      // Every message of both topics arrives, in order.
      expect(r.a.map((d) => d.seq)).toEqual([...Array(COUNT).keys()]);
      expect(r.b.map((d) => d.seq)).toEqual([...Array(COUNT).keys()]);
      // B: no added delay at all, during the outage or outside it.
      for (const d of r.b) expect(d.latency).toBe(ONE_WAY);
      // A: what was published during the outage arrives only after it, from retransmissions.
      const lateA = r.a.filter((d) => inOutage(r, d));
      expect(lateA.length).toBe(OUTAGE / PERIOD);
      for (const d of lateA) expect(d.arrivedAt).toBeGreaterThanOrEqual(r.outageEnd + ONE_WAY);
      expect(Math.max(...r.a.map((d) => d.latency))).toBeGreaterThanOrEqual(OUTAGE + ONE_WAY);
      // Outside the outage A is as fast as B.
      for (const d of r.a) if (d.sentAt < r.outageStart) expect(d.latency).toBe(ONE_WAY);
    }));

  it("single stream: B's messages wait behind A's retransmissions", () =>
    withSeed(52, (seed) => {
      const single = runMode("single", seed);
      const perTopic = runMode("per-topic", seed);
      console.log(summary("single", single));
      expect(single.dropped).toBeGreaterThan(0);
      expect(single.a.map((d) => d.seq)).toEqual([...Array(COUNT).keys()]);
      expect(single.b.map((d) => d.seq)).toEqual([...Array(COUNT).keys()]);
      // Every B published during the outage (after A's first lost message) is held until A's
      // bytes are retransmitted, which cannot happen before the outage ends.
      const blockedB = single.b.filter((d) => inOutage(single, d));
      expect(blockedB.length).toBe(OUTAGE / PERIOD);
      for (const d of blockedB) expect(d.arrivedAt).toBeGreaterThanOrEqual(single.outageEnd + ONE_WAY);
      const maxB = Math.max(...single.b.map((d) => d.latency));
      expect(maxB).toBeGreaterThanOrEqual(OUTAGE - PERIOD / 2 + ONE_WAY);
      // Before the outage B is not delayed: the difference is the lost bytes of A, nothing else.
      for (const d of single.b) if (d.sentAt < single.outageStart) expect(d.latency).toBe(ONE_WAY);
      // The same run with a stream per topic: B's worst case is the one-way delay.
      expect(Math.max(...perTopic.b.map((d) => d.latency))).toBe(ONE_WAY);
      expect(maxB).toBeGreaterThan(10 * ONE_WAY);
    }));
});
