/**
 * Our client and our broker in the "MQTT-next" dialect, over real QUIC on loopback: a broker that
 * prefers ALPN "MQTT-next" makes the client's "auto" speak the uni dialect (client uni data
 * streams with flow headers); the broker answers and delivers on the control stream. QoS 0, 1, 2
 * both ways in every stream mode, and a QoS 0 PUBLISH followed at once by end().
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeProvider } from "../../../src/crypto/node.js";
import { connect, type MqttClient, type StreamMode } from "../../../src/mqtt/client/index.js";
import { Broker } from "../../../src/mqtt/index.js";
import { testCerts } from "../../quic/harness.js";
import { waitFor } from "./helpers.js";
import { quicClientOptions } from "./real-broker.js";

describe('our client against our broker preferring ALPN "MQTT-next"', () => {
  let broker: Broker;
  let url = "";
  const alpnOf = new Map<string, string | undefined>();

  beforeAll(async () => {
    broker = new Broker();
    const { leaf } = testCerts(nodeProvider);
    const { port } = await broker.listenQuic({
      port: 0,
      host: "127.0.0.1",
      cert: [leaf.der],
      key: leaf.key,
      crypto: nodeProvider,
      alpn: ["MQTT-next", "mqtt"],
    });
    url = `mqtt+quic://127.0.0.1:${port}`;
    broker.on("clientConnect", (c) => alpnOf.set(c.clientId, c.transport.alpn));
  });
  afterAll(async () => {
    await broker.close();
  });

  const open = (streamMode: StreamMode, clientId: string) =>
    connect(url, { ...quicClientOptions, reconnect: false, protocolVersion: 5, streamMode, clientId });

  for (const mode of ["per-topic", "multi", "single"] as const) {
    it(`${mode}: QoS 0, 1, 2 published and received; the broker saw ALPN MQTT-next`, async () => {
      const clients: MqttClient[] = [];
      try {
        const sub = await open(mode, `next-sub-${mode}`);
        clients.push(sub);
        const got: string[] = [];
        sub.on("message", (t, p, packet) => got.push(`${t}=${p}@${packet.qos}`));
        await sub.subscribe(`next/${mode}/#`, { qos: 2 });
        const pub = await open(mode, `next-pub-${mode}`);
        clients.push(pub);
        expect(pub.quicDialect).toEqual({
          alpn: "MQTT-next",
          dataStreams: mode === "single" ? "none" : "uni",
        });
        expect(alpnOf.get(`next-pub-${mode}`)).toBe("MQTT-next");
        for (const qos of [0, 1, 2] as const) await pub.publish(`next/${mode}/q${qos}`, `m${qos}`, { qos });
        await waitFor(() => got.length === 3, 5000, "three messages");
        expect(got.sort()).toEqual([`next/${mode}/q0=m0@0`, `next/${mode}/q1=m1@1`, `next/${mode}/q2=m2@2`]);
        // a QoS 0 PUBLISH on a fresh data stream, then end() at once: still delivered
        const last = await open(mode, `next-last-${mode}`);
        void last.publish(`next/${mode}/last`, "bye", { qos: 0 });
        await last.end();
        await waitFor(() => got.length === 4, 5000, "the last message");
        expect(got).toContain(`next/${mode}/last=bye@0`);
      } finally {
        await Promise.all(clients.map((c) => c.end(true)));
      }
    });
  }
});
