/**
 * `mquictt demo`: shows the stack working, step by step.
 * 1. A QUIC + TLS 1.3 handshake between two in-memory sans-IO endpoints on a virtual clock,
 *    every datagram and event printed.
 * 2. The same over real UDP sockets on loopback: a server, a client verifying its certificate
 *    against a freshly made test CA, and a message echoed on a stream.
 * 3. The MQTT broker and a per-topic client over QUIC: two subscriptions and two publishers, each
 *    on its own QUIC stream.
 */
import { systemRng } from "../crypto/random.js";
import { describeCryptoChoice, getCryptoProvider } from "../crypto/select.js";
import { Broker, connect } from "../mqtt/index.js";
import { QuicEndpoint, type QuicStream } from "../net/quic.js";
import type { Connection } from "../quic/connection.js";
import { Endpoint } from "../quic/endpoint.js";
import { splitCoalesced } from "../quic/packet.js";
import { generateTestCA, issueLeaf } from "../tls/certgen.js";
import { createPeerVerifier } from "../tls/verify.js";

type Print = (line: string) => void;

const NAMES: Record<string, string> = {
  initial: "Initial",
  handshake: "Handshake",
  "0rtt": "0-RTT",
  "1rtt": "1-RTT",
};

function describePacket(data: Uint8Array): string {
  const { packets } = splitCoalesced(data, 8);
  const parts = packets.map((p) => `${NAMES[p.type] ?? p.type}(${p.packetLength}B)`);
  return `${data.length}B datagram: ${parts.join(" + ")}`;
}

/** Part 1: in-memory handshake on a virtual clock with 20 ms one-way latency. */
export function inMemoryHandshake(print: Print): void {
  const provider = getCryptoProvider("auto");
  const now0 = Date.now();
  const ca = generateTestCA({ provider, rng: systemRng, now: now0, commonName: "mquictt demo CA" });
  const leaf = issueLeaf(ca, {
    provider,
    rng: systemRng,
    now: now0,
    commonName: "localhost",
    dns: ["localhost"],
  });
  print(`test CA "${ca.certificate.subject}" issued "${leaf.certificate.subject}" (ECDSA P-256)`);
  const server = new Endpoint({
    provider,
    rng: systemRng,
    server: { alpn: ["demo"], certificateChain: [leaf.der], privateKey: leaf.key },
  });
  const client = new Endpoint({ provider, rng: systemRng });
  let now = 0;
  const latency = 20;
  const conn = client.connect(now, "server", {
    alpn: ["demo"],
    serverName: "localhost",
    verifier: createPeerVerifier({ roots: [ca.der], now: () => now0, provider }),
  });
  let serverConn: Connection | undefined;
  const inflight: { at: number; to: "client" | "server"; from: string; data: Uint8Array }[] = [];
  const pump = () => {
    for (let d = client.pollTransmit(now); d; d = client.pollTransmit(now)) {
      print(`t=${now.toFixed(0).padStart(3)}ms client -> server  ${describePacket(d.data)}`);
      inflight.push({ at: now + latency, to: "server", from: "client", data: d.data });
    }
    for (let d = server.pollTransmit(now); d; d = server.pollTransmit(now)) {
      print(`t=${now.toFixed(0).padStart(3)}ms server -> client  ${describePacket(d.data)}`);
      inflight.push({ at: now + latency, to: "client", from: "server", data: d.data });
    }
    for (const [who, ep] of [
      ["client", client],
      ["server", server],
    ] as const) {
      for (let e = ep.pollEvent(); e; e = ep.pollEvent()) serverConn = e.connection;
      for (const c of ep.takeActive()) {
        for (let ev = c.pollEvent(); ev; ev = c.pollEvent()) {
          if (ev.type === "connected")
            print(
              `t=${now.toFixed(0).padStart(3)}ms ${who}: handshake complete, ALPN ${ev.alpn}, ${ev.suite}`,
            );
          else if (ev.type === "handshake_confirmed")
            print(`t=${now.toFixed(0).padStart(3)}ms ${who}: handshake confirmed`);
          else if (ev.type === "stream_readable" || ev.type === "stream_opened") {
            const r = c.read(now, ev.streamId);
            if (r?.data.length)
              print(
                `t=${now.toFixed(0).padStart(3)}ms ${who}: stream ${ev.streamId} says "${new TextDecoder().decode(r.data)}"`,
              );
          }
        }
      }
    }
  };
  let sentMessage = false;
  for (let step = 0; step < 200; step++) {
    pump();
    if (!sentMessage && conn.isEstablished) {
      const id = conn.openStream(true)!;
      conn.write(id, new TextEncoder().encode("hello from a sans-IO client"));
      conn.finish(id);
      client.touch(conn);
      sentMessage = true;
      continue;
    }
    inflight.sort((a, b) => a.at - b.at);
    const next = inflight[0]?.at;
    const timers = [client.pollTimeout(), server.pollTimeout()].filter((t): t is number => t !== undefined);
    const t = Math.min(next ?? Number.POSITIVE_INFINITY, ...timers);
    if (!Number.isFinite(t) || (sentMessage && inflight.length === 0 && t > now + 100)) break;
    now = Math.max(now, t);
    while (inflight.length > 0 && inflight[0].at <= now) {
      const d = inflight.shift()!;
      (d.to === "server" ? server : client).receive(now, d.from, d.data);
    }
    client.handleTimeout(now);
    server.handleTimeout(now);
  }
  print(
    `client RTT estimate ${conn.rtt.toFixed(1)} ms; server saw ${serverConn?.stats.packetsReceived ?? 0} packets`,
  );
}

/** Part 2: over UDP on loopback. */
export async function loopbackEcho(print: Print): Promise<void> {
  const provider = getCryptoProvider("auto");
  const now = Date.now();
  const ca = generateTestCA({ provider, rng: systemRng, now, commonName: "mquictt demo CA" });
  const leaf = issueLeaf(ca, {
    provider,
    rng: systemRng,
    now,
    commonName: "localhost",
    dns: ["localhost"],
    ips: ["127.0.0.1"],
  });
  const server = await QuicEndpoint.listen({
    port: 0,
    host: "127.0.0.1",
    alpn: ["demo"],
    cert: [leaf.der],
    key: leaf.key,
  });
  server.on("connection", (c) => c.on("stream", (s: QuicStream) => s.pipe(s)));
  const port = server.address().port;
  print(`server listening on udp://127.0.0.1:${port}`);
  const client = await QuicEndpoint.open({ host: "127.0.0.1" });
  const t0 = performance.now();
  const conn = await client.connect("127.0.0.1", port, {
    alpn: ["demo"],
    ca: [ca.der],
    serverName: "localhost",
  });
  print(`connected in ${(performance.now() - t0).toFixed(1)} ms (certificate verified against the test CA)`);
  const s = await conn.openStream();
  s.end("ping over real UDP");
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  print(`echo: "${Buffer.concat(parts).toString()}"`);
  await conn.close(0, "bye");
  await client.close();
  await server.close();
  print(
    `crypto provider choice: ${describeCryptoChoice({ measure: false })
      .filter((r) => r.chosen)
      .map((r) => `${r.primitive}=${r.chosen}`)
      .join(" ")}`,
  );
}

/** Part 3: the MQTT broker and a per-topic client over QUIC on loopback. */
export async function mqttOverQuic(print: Print): Promise<void> {
  const provider = getCryptoProvider("auto");
  const now = Date.now();
  const ca = generateTestCA({ provider, rng: systemRng, now, commonName: "mquictt demo CA" });
  const leaf = issueLeaf(ca, {
    provider,
    rng: systemRng,
    now,
    commonName: "localhost",
    dns: ["localhost"],
    ips: ["127.0.0.1"],
  });
  const broker = new Broker();
  const { port } = await broker.listenQuic({ port: 0, host: "127.0.0.1", cert: [leaf.der], key: leaf.key });
  print(`broker listening on mqtt+quic://127.0.0.1:${port} (ALPN mqtt)`);
  const client = await connect(`mqtt+quic://127.0.0.1:${port}`, {
    ca: [ca.der],
    serverName: "localhost",
    clientId: "demo-client",
    streamMode: "per-topic",
  });
  print("client connected (per-topic mode: control stream + one QUIC stream per topic)");
  const sensors = await client.subscriber("sensors/#", { qos: 1 });
  const alerts = await client.subscriber("alerts/+", { qos: 2 });
  print("subscribed to sensors/# (QoS 1) and alerts/+ (QoS 2), each on its own stream");
  const temp = await client.publisher("sensors/temperature");
  const alarm = await client.publisher("alerts/fire");
  await temp.publish("21.5 C", { qos: 1 });
  await alarm.publish("smoke in the kitchen", { qos: 2 });
  await temp.publish("21.7 C", { qos: 1 });
  const take = async (sub: typeof sensors, n: number, label: string) => {
    let i = 0;
    for await (const msg of sub) {
      print(`${label} received ${msg.topic}: "${Buffer.from(msg.payload).toString()}"`);
      if (++i === n) break;
    }
  };
  await Promise.all([take(sensors, 2, "sensors subscriber"), take(alerts, 1, "alerts subscriber")]);
  await temp.close();
  await alarm.close();
  await client.end();
  await broker.close();
  print("client and broker closed");
}
