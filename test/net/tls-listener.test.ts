/**
 * The broker's MQTT-over-TLS listener (src/net/tls.ts, `Broker.listenTls`, `mquictt broker
 * --tls-port`) on loopback: MQTT.js over mqtts://, our client over mqtts://, a TLS publisher
 * reaching a plain-TCP subscriber, client certificates, and certificates that must be refused.
 */
import type { TLSSocket } from "node:tls";
import { connectAsync, type IClientOptions, type MqttClient as MqttJsClient } from "mqtt";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseBrokerArgs, startBrokerCli } from "../../src/cli/mqtt-cli.js";
import { nodeProvider } from "../../src/crypto/node.js";
import { SeededRng } from "../../src/crypto/random.js";
import { Broker } from "../../src/mqtt/broker/broker.js";
import type { AuthenticateContext } from "../../src/mqtt/broker/options.js";
import { connect, type MqttClient } from "../../src/mqtt/index.js";
import { TlsListenError } from "../../src/net/tls.js";
import { type GeneratedCertificate, generateTestCA, issueLeaf } from "../../src/tls/certgen.js";

interface Pki {
  ca: GeneratedCertificate;
  server: GeneratedCertificate;
  client: GeneratedCertificate;
}

function makePki(seed: number, name: string): Pki {
  const rng = new SeededRng(seed);
  const now = Date.now();
  const ctx = { provider: nodeProvider, rng, now };
  const ca = generateTestCA({ ...ctx, commonName: `${name} CA` });
  const server = issueLeaf(ca, { ...ctx, commonName: "localhost", dns: ["localhost"], ips: ["127.0.0.1"] });
  const client = issueLeaf(ca, { ...ctx, commonName: `${name} client`, extKeyUsage: ["clientAuth"] });
  return { ca, server, client };
}

let pki: Pki;
let other: Pki;
beforeAll(() => {
  pki = makePki(31, "tls test");
  other = makePki(32, "stranger");
});

let broker: Broker;
const mqttJs: MqttJsClient[] = [];
const ours: MqttClient[] = [];

beforeEach(() => {
  broker = new Broker();
});

afterEach(async () => {
  await Promise.all(mqttJs.splice(0).map((c) => c.endAsync(true).catch(() => {})));
  await Promise.all(ours.splice(0).map((c) => c.end(true).catch(() => {})));
  await broker.close();
});

async function listen(extra: Partial<Parameters<Broker["listenTls"]>[0]> = {}): Promise<number> {
  const { port } = await broker.listenTls({
    port: 0,
    host: "127.0.0.1",
    cert: pki.server.pem,
    key: pki.server.keyPem,
    ...extra,
  });
  return port;
}

async function mqttjs(url: string, opts: IClientOptions): Promise<MqttJsClient> {
  const c = await connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  mqttJs.push(c);
  return c;
}

async function ourClient(url: string, opts: Parameters<typeof connect>[1]): Promise<MqttClient> {
  const c = await connect(url, { reconnect: false, connectTimeout: 5000, ...opts });
  ours.push(c);
  return c;
}

function nextMessage(c: MqttJsClient | MqttClient): Promise<{ topic: string; payload: string; qos: number }> {
  return new Promise((resolve) => {
    (c as MqttJsClient).once("message", (topic: string, payload: Buffer, packet: { qos: number }) =>
      resolve({ topic, payload: payload.toString(), qos: packet.qos }),
    );
  });
}

describe("MQTT over TLS listener", () => {
  for (const protocolVersion of [4, 5] as const) {
    it(`serves MQTT.js over mqtts:// (protocol ${protocolVersion}) at QoS 0, 1 and 2, on TLS 1.3`, async () => {
      const port = await listen();
      const url = `mqtts://localhost:${port}`;
      const opts = { protocolVersion, ca: pki.ca.pem, rejectUnauthorized: true } as const;
      const sub = await mqttjs(url, { ...opts, clientId: "js-sub" });
      const pub = await mqttjs(url, { ...opts, clientId: "js-pub" });
      expect((sub.stream as TLSSocket).getProtocol()).toBe("TLSv1.3");
      expect((sub.stream as TLSSocket).authorized).toBe(true);
      for (const qos of [0, 1, 2] as const) {
        await sub.subscribeAsync(`tls/${qos}`, { qos });
        const got = nextMessage(sub);
        await pub.publishAsync(`tls/${qos}`, `over tls ${qos}`, { qos });
        expect(await got).toEqual({ topic: `tls/${qos}`, payload: `over tls ${qos}`, qos });
      }
      expect(broker.metrics.clients).toBe(2);
    });
  }

  it("serves our client over mqtts://, and a TLS publisher reaches a plain TCP subscriber", async () => {
    const tlsPort = await listen();
    const { port: tcpPort } = await broker.listenTcp({ port: 0, host: "127.0.0.1" });
    const tcpSub = await ourClient(`mqtt://127.0.0.1:${tcpPort}`, { clientId: "tcp-sub" });
    await tcpSub.subscribe("mixed/#", { qos: 1 });
    const tlsSub = await ourClient(`mqtts://127.0.0.1:${tlsPort}`, { clientId: "tls-sub", ca: pki.ca.pem });
    await tlsSub.subscribe("mixed/#", { qos: 1 });
    const pub = await ourClient(`mqtts://localhost:${tlsPort}`, { clientId: "tls-pub", ca: pki.ca.pem });
    const viaTcp = nextMessage(tcpSub);
    const viaTls = nextMessage(tlsSub);
    await pub.publish("mixed/a", "hello", { qos: 1 });
    expect(await viaTcp).toEqual({ topic: "mixed/a", payload: "hello", qos: 1 });
    expect(await viaTls).toEqual({ topic: "mixed/a", payload: "hello", qos: 1 });
    // The broker sees a TLS connection as a TCP byte stream (single stream, no flow headers).
    expect(broker.metrics.clients).toBe(3);
  });

  it("a server certificate from an unknown CA is refused by the client, and the broker keeps serving", async () => {
    const port = await listen();
    const url = `mqtts://localhost:${port}`;
    await expect(
      connect(url, { reconnect: false, connectTimeout: 5000, ca: other.ca.pem, clientId: "wrong-ca" }),
    ).rejects.toThrow(/certificate/i);
    await expect(
      connectAsync(url, {
        reconnectPeriod: 0,
        connectTimeout: 5000,
        ca: other.ca.pem,
        rejectUnauthorized: true,
      }),
    ).rejects.toThrow(/certificate/i);
    // A name the certificate does not carry.
    await expect(
      connect(url, { reconnect: false, connectTimeout: 5000, ca: pki.ca.pem, serverName: "broker.example" }),
    ).rejects.toThrow(/broker\.example/);
    expect(broker.metrics.clients).toBe(0);
    const ok = await ourClient(url, { clientId: "right-ca", ca: pki.ca.pem });
    await ok.subscribe("still/up");
    const got = nextMessage(ok);
    await ok.publish("still/up", "yes");
    expect((await got).payload).toBe("yes");
  });

  it("passes a verified client certificate to authenticate and refuses one from another CA", async () => {
    const seen: AuthenticateContext[] = [];
    await broker.close();
    broker = new Broker({
      authenticate: (ctx) => {
        seen.push(ctx);
        return ctx.transport.peerCertificate !== undefined;
      },
    });
    const handshakeErrors: string[] = [];
    const port = await listen({
      ca: pki.ca.pem,
      onHandshakeError: (err) => handshakeErrors.push(err.message),
    });
    const url = `mqtts://localhost:${port}`;
    const withCert = await ourClient(url, {
      clientId: "mtls",
      ca: pki.ca.pem,
      cert: pki.client.pem,
      key: pki.client.keyPem,
    });
    expect(withCert.connected).toBe(true);
    expect(seen).toHaveLength(1);
    expect(Buffer.from(seen[0].transport.peerCertificate ?? []).equals(Buffer.from(pki.client.der))).toBe(
      true,
    );
    expect(seen[0].transport.kind).toBe("tcp");

    // No certificate: the TLS handshake is allowed (optional), authenticate says no.
    await expect(
      connect(url, { reconnect: false, connectTimeout: 5000, ca: pki.ca.pem, clientId: "anon" }),
    ).rejects.toThrow();
    expect(seen).toHaveLength(2);
    expect(seen[1].transport.peerCertificate).toBeUndefined();

    // A certificate from a CA the broker does not trust never reaches MQTT.
    await expect(
      connect(url, {
        reconnect: false,
        connectTimeout: 5000,
        ca: pki.ca.pem,
        cert: other.client.pem,
        key: other.client.keyPem,
        clientId: "stranger",
      }),
    ).rejects.toThrow();
    expect(seen).toHaveLength(2);
    expect(handshakeErrors.length).toBeGreaterThanOrEqual(1);
    expect(handshakeErrors.join("\n")).toMatch(/certificate/i);
  });

  it("requireClientCert refuses a client without a certificate during the handshake", async () => {
    const port = await listen({ ca: pki.ca.pem, requireClientCert: true });
    await expect(
      connectAsync(`mqtts://localhost:${port}`, {
        reconnectPeriod: 0,
        connectTimeout: 5000,
        ca: pki.ca.pem,
        rejectUnauthorized: true,
      }),
    ).rejects.toThrow();
    const ok = await mqttjs(`mqtts://localhost:${port}`, {
      ca: pki.ca.pem,
      cert: pki.client.pem,
      key: pki.client.keyPem,
      rejectUnauthorized: true,
      clientId: "with-cert",
    });
    expect(ok.connected).toBe(true);
  });

  it("a key that does not match the certificate is a TlsListenError", async () => {
    await expect(listen({ key: other.server.keyPem })).rejects.toBeInstanceOf(TlsListenError);
  });
});

describe("mquictt broker --tls-port", () => {
  it("parses the flag and listens for mqtts:// with the broker's certificate", async () => {
    expect(parseBrokerArgs(["--tls-port", "8883"]).tlsPort).toBe(8883);
    expect(() => parseBrokerArgs(["--tls-port", "x"])).toThrow();
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: () => {} };
    const running = await startBrokerCli(
      { ...parseBrokerArgs(["--quic-port", "0", "--no-tcp", "--tls-port", "0", "--host", "127.0.0.1"]) },
      io,
    );
    try {
      expect(running.tlsPort).toBeGreaterThan(0);
      expect(lines).toContain(`listening on mqtts://127.0.0.1:${running.tlsPort} (TLS over TCP 127.0.0.1)`);
      if (running.caFile === undefined) throw new Error("the CLI should have generated a test CA");
      const { readFile } = await import("node:fs/promises");
      const ca = await readFile(running.caFile, "utf8");
      const c = await mqttjs(`mqtts://localhost:${running.tlsPort}`, { ca, rejectUnauthorized: true });
      expect(c.connected).toBe(true);
      await c.endAsync();
    } finally {
      await running.close();
    }
  });
});
