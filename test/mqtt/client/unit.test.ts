import { describe, expect, it } from "vitest";
import * as root from "../../../src/index.js";
import { backoffDelay } from "../../../src/mqtt/client/backoff.js";
import { MqttConnackError } from "../../../src/mqtt/client/errors.js";
import { buildConnect, readConnack } from "../../../src/mqtt/client/handshake.js";
import {
  formatReasonCode,
  MemoryClientSessionStore,
  MqttUrlError,
  parseBrokerUrl,
  reasonCodeName,
} from "../../../src/mqtt/client/index.js";
import { resolveOptions } from "../../../src/mqtt/client/options.js";
import { PacketIdAllocator } from "../../../src/mqtt/client/packet-id.js";
import { StreamKeys } from "../../../src/mqtt/client/stream-keys.js";

describe("broker URLs", () => {
  it("parses schemes, default ports and IPv6 literals", () => {
    expect(parseBrokerUrl("mqtt+quic://localhost")).toEqual({ kind: "quic", host: "localhost", port: 14567 });
    expect(parseBrokerUrl("mqtt+quic://broker.example:1234")).toEqual({
      kind: "quic",
      host: "broker.example",
      port: 1234,
    });
    expect(parseBrokerUrl("mqtt://127.0.0.1")).toEqual({ kind: "tcp", host: "127.0.0.1", port: 1883 });
    expect(parseBrokerUrl("mqtts://h")).toEqual({ kind: "tls", host: "h", port: 8883 });
    expect(parseBrokerUrl("mqtt+quic://[::1]:9")).toEqual({ kind: "quic", host: "::1", port: 9 });
  });

  it("explains what it does not accept", () => {
    expect(() => parseBrokerUrl("http://x")).toThrow(MqttUrlError);
    expect(() => parseBrokerUrl("http://x")).toThrow(/unsupported scheme http: .*mqtt\+quic:\/\//);
    expect(() => parseBrokerUrl("not a url")).toThrow(/not a URL/);
  });
});

describe("reconnect backoff", () => {
  const policy = { minDelay: 100, maxDelay: 1000 };
  it("doubles from minDelay up to maxDelay, with half of it jittered", () => {
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, policy, () => 0))).toEqual([
      50, 100, 200, 400, 500, 500,
    ]);
    expect([0, 1, 2, 3, 4].map((a) => backoffDelay(a, policy, () => 0.999999))).toEqual([
      100, 200, 400, 800, 1000,
    ]);
  });
  it("never overflows for large attempt counts", () => {
    expect(backoffDelay(10_000, policy, () => 0.5)).toBe(750);
  });
});

describe("reason codes and CONNACK", () => {
  const o5 = resolveOptions({ protocolVersion: 5, clientId: "c" });
  const o4 = resolveOptions({ protocolVersion: 4, clientId: "c" });
  it("names reason codes", () => {
    expect(formatReasonCode(0x87)).toBe("0x87 Not authorized");
    expect(reasonCodeName(0x9f)).toBe("Connection rate exceeded");
    expect(reasonCodeName(0x7e)).toBe("Unknown reason code");
  });
  it("turns refusals into actionable errors (v5 and v3.1.1)", () => {
    const e5 = (() => {
      try {
        readConnack(
          {
            cmd: "connack",
            sessionPresent: false,
            reasonCode: 0x8a,
            properties: { reasonString: "go away" },
          },
          o5,
        );
      } catch (e) {
        return e as MqttConnackError;
      }
    })();
    expect(e5).toBeInstanceOf(MqttConnackError);
    expect(e5?.message).toBe("broker refused the connection: 0x8a Banned (go away)");
    expect(e5?.reasonName).toBe("Banned");
    expect(() => readConnack({ cmd: "connack", sessionPresent: false, returnCode: 5 }, o4)).toThrow(
      "broker refused the connection: 0x87 Not authorized [MQTT 3.1.1 return code 5]",
    );
  });
  it("reads the broker's limits", () => {
    const info = readConnack(
      {
        cmd: "connack",
        sessionPresent: true,
        reasonCode: 0,
        properties: {
          receiveMaximum: 5,
          maximumQoS: 1,
          serverKeepAlive: 7,
          subscriptionIdentifiersAvailable: false,
        },
      },
      o5,
    );
    expect(info).toMatchObject({
      sessionPresent: true,
      receiveMaximum: 5,
      maximumQoS: 1,
      keepalive: 7,
      subscriptionIdentifiersAvailable: false,
    });
    expect(readConnack({ cmd: "connack", sessionPresent: false, returnCode: 0 }, o4)).toMatchObject({
      maximumQoS: 2,
      keepalive: 60,
      subscriptionIdentifiersAvailable: false,
    });
  });
  it("builds CONNECT: 3.1.1 carries no properties, v5 an explicit session expiry", () => {
    expect(
      buildConnect(resolveOptions({ protocolVersion: 4, clientId: "a", clean: false })).properties,
    ).toBeUndefined();
    expect(
      buildConnect(resolveOptions({ protocolVersion: 5, clientId: "a", sessionExpiryInterval: 30 }))
        .properties,
    ).toEqual({ sessionExpiryInterval: 30 });
    expect(buildConnect(resolveOptions({ clientId: "a" })).properties).toBeUndefined();
  });
  it("generates a client id when none is given", () => {
    expect(resolveOptions({}).clientId).toMatch(/^mquictt_[0-9a-f]{16}$/);
  });
});

describe("packet identifiers", () => {
  it("allocates unused non-zero ids, wraps around and skips ids in use [MQTT-2.2.1-3]", () => {
    const ids = new PacketIdAllocator();
    ids.reserve(2);
    expect([ids.allocate(), ids.allocate()]).toEqual([1, 3]);
    ids.release(1);
    for (let i = 0; i < 65532; i++) ids.allocate();
    expect(ids.size).toBe(65534);
    expect(ids.allocate()).toBe(1);
    expect(ids.allocate()).toBeUndefined();
  });
});

describe("memory session store", () => {
  it("keeps outgoing messages in first-send order across phase updates, per client id", () => {
    const s = new MemoryClientSessionStore();
    const m = (packetId: number) => ({
      packetId,
      topic: "t",
      payload: Buffer.from("x"),
      qos: 2 as const,
      retain: false,
      phase: "publish" as const,
    });
    s.putOutgoing("a", m(5));
    s.putOutgoing("a", m(3));
    s.putOutgoing("a", { ...m(5), phase: "pubrel" });
    s.putIncoming("a", 9);
    s.putOutgoing("b", m(1));
    expect(s.load("a")?.outgoing.map((x) => [x.packetId, x.phase])).toEqual([
      [5, "pubrel"],
      [3, "publish"],
    ]);
    expect(s.load("a")?.incoming).toEqual([9]);
    s.deleteOutgoing("a", 5);
    s.deleteIncoming("a", 9);
    expect(s.load("a")).toMatchObject({ outgoing: [{ packetId: 3 }], incoming: [] });
    s.clear("a");
    expect(s.load("a")).toBeUndefined();
    expect(s.load("b")?.outgoing.length).toBe(1);
  });
});

describe("stream keys per mode", () => {
  it("per-topic: a stream per topic up to the limit, then the shared one", () => {
    const k = new StreamKeys("per-topic", 2);
    expect([k.forTopic("a"), k.forTopic("b"), k.forTopic("a"), k.forTopic("c")]).toEqual([
      "topic:a",
      "topic:b",
      "topic:a",
      "data",
    ]);
    expect(k.forPublisher()).toBe("pub:1");
    expect(k.subscribeCallsOwnStreams).toBe(true);
  });
  it("multi shares one data stream; single uses the control stream", () => {
    const m = new StreamKeys("multi", 64);
    expect([m.forTopic("a"), m.forTopic("b"), m.forSubscription(false).key]).toEqual([
      "data",
      "data",
      "data",
    ]);
    expect(m.subscribeCallsOwnStreams).toBe(false);
    const s = new StreamKeys("single", 64);
    expect([s.forTopic("a"), s.forPublisher(), s.forSubscription(true).key]).toEqual([
      "control",
      "control",
      "control",
    ]);
  });
});

describe("package root", () => {
  it("exports the client, the broker and the QUIC transport", () => {
    for (const name of [
      "connect",
      "createClient",
      "MqttClient",
      "Broker",
      "QuicEndpoint",
      "MquicttError",
      "Subscriber",
      "Publisher",
    ])
      expect(root).toHaveProperty(name);
  });
});
