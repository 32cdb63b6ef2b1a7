/**
 * TLS resumption and 0-RTT for MQTT over QUIC: the client keeps the broker's latest session
 * ticket, so a reconnect (or any later connection in the process) resumes without the broker's
 * certificate; with `quic.earlyData` the CONNECT, SUBSCRIBE and PUBLISH leave in 0-RTT.
 */
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { nodeProvider } from "../../../src/crypto/node.js";
import { SeededRng } from "../../../src/crypto/random.js";
import { Broker } from "../../../src/mqtt/broker/index.js";
import { connect, type MqttClient } from "../../../src/mqtt/client/index.js";
import { listenQuic } from "../../../src/net/mqtt-quic.js";
import type { QuicConnection, QuicEndpoint } from "../../../src/net/quic.js";
import { generateTestCA } from "../../../src/tls/certgen.js";
import { testCerts } from "../../quic/harness.js";
import { quicClientOptions } from "./real-broker.js";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function broker(earlyData: boolean): Promise<{ url: string; conns: QuicConnection[] }> {
  const b = new Broker();
  const { leaf } = testCerts(nodeProvider);
  const conns: QuicConnection[] = [];
  const ep: QuicEndpoint = await listenQuic(
    { port: 0, host: "127.0.0.1", cert: [leaf.der], key: leaf.key, crypto: nodeProvider, earlyData },
    (t) => {
      conns.push(t.connection);
      b.handle(t);
    },
  );
  cleanup.push(async () => {
    await b.close();
    await ep.close();
  });
  return { url: `mqtt+quic://127.0.0.1:${ep.address().port}`, conns };
}

async function client(url: string, earlyData = false): Promise<MqttClient> {
  const c = await connect(url, { ...quicClientOptions, quic: { crypto: nodeProvider, earlyData } });
  cleanup.push(() => c.end(true));
  return c;
}

async function settled(conn: QuicConnection): Promise<void> {
  if (conn.earlyData === "pending" || conn.alpn === undefined) await once(conn, "connect");
}

describe("MQTT over QUIC: resumption and 0-RTT", () => {
  it("a second connection to the broker resumes the TLS session", async () => {
    const { url, conns } = await broker(false);
    const first = await client(url);
    await first.end();
    const second = await client(url);
    await second.subscribe("r/t", { qos: 1 });
    const got = once(second, "message");
    await second.publish("r/t", "resumed", { qos: 1 });
    expect(String((await got)[1])).toBe("resumed");
    expect(conns.map((c) => c.resumed)).toEqual([false, true]);
  });

  it("never resumes a ticket under other trust settings: a wrong CA still fails the certificate check", async () => {
    const { url } = await broker(false);
    const first = await client(url);
    await first.end();
    // A CA that did not sign the broker's certificate.
    const otherCa = generateTestCA({
      provider: nodeProvider,
      rng: new SeededRng(99),
      now: Date.now(),
      commonName: "another CA",
    }).der;
    await expect(
      connect(url, { ...quicClientOptions, ca: [otherCa], reconnect: false, quic: { crypto: nodeProvider } }),
    ).rejects.toThrow(/certificate/i);
  });

  it("with earlyData, CONNECT and the first PUBLISH ride in 0-RTT and the broker accepts them", async () => {
    const { url, conns } = await broker(true);
    const sub = await client(url); // also fetches the ticket
    await sub.subscribe("z/t", { qos: 1 });
    const got = once(sub, "message");
    const pub = await client(url, true);
    await pub.publish("z/t", "zero", { qos: 1 });
    expect(String((await got)[1])).toBe("zero");
    expect(conns).toHaveLength(2);
    await settled(conns[1]);
    expect(conns[1].resumed).toBe(true);
    expect(conns[1].earlyData).toBe("accepted");
  });

  it("a broker without 0-RTT issues tickets that do not allow it: the client resumes and sends in 1-RTT", async () => {
    const { url, conns } = await broker(false);
    const sub = await client(url);
    await sub.subscribe("n/t", { qos: 1 });
    const messages: string[] = [];
    sub.on("message", (_t: string, p: Buffer) => messages.push(String(p)));
    const pub = await client(url, true);
    await pub.publish("n/t", "once", { qos: 1 });
    await new Promise((r) => setTimeout(r, 200));
    expect(messages).toEqual(["once"]);
    await settled(conns[1]);
    expect(conns[1].resumed).toBe(true);
    // The broker's tickets do not allow 0-RTT, so the client did not even try.
    expect(conns[1].earlyData).toBe("none");
  });
});
