import { createHash } from "node:crypto";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { nodeProvider } from "../../src/crypto/node.js";
import { SeededRng } from "../../src/crypto/random.js";
import {
  isLoopbackAddress,
  LOOPBACK_MAX_UDP_PAYLOAD,
  type QuicConnection,
  QuicEndpoint,
  type QuicListenOptions,
  type QuicStream,
} from "../../src/net/quic.js";
import type { SessionTicket } from "../../src/tls/handshake-common.js";
import { UdpRelay } from "../interop/udp-relay.js";
import { testCerts } from "../quic/harness.js";

const opened: QuicEndpoint[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((e) => e.close()));
});

async function collect(s: QuicStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/**
 * A server on loopback with the test certificate, ALPN "echo"; every stream echoes back unless
 * `onStream` takes it.
 */
async function echoServer(
  opts: Partial<QuicListenOptions> & { onStream?: (s: QuicStream, conn: QuicConnection) => void } = {},
): Promise<QuicEndpoint> {
  const { leaf } = testCerts(nodeProvider);
  const { onStream, ...listen } = opts;
  const server = await QuicEndpoint.listen({
    port: 0,
    host: "127.0.0.1",
    alpn: ["echo"],
    cert: [leaf.der],
    key: leaf.key,
    crypto: nodeProvider,
    ...listen,
  });
  opened.push(server);
  server.on("connection", (conn: QuicConnection) =>
    conn.on("stream", (s: QuicStream) => (onStream ? onStream(s, conn) : s.pipe(s))),
  );
  return server;
}

/** Client options that trust the test CA. */
const CLIENT_OPTS = { alpn: ["echo"], ca: [testCerts(nodeProvider).ca.der], serverName: "localhost" };

/** A client endpoint on loopback. */
async function clientEndpoint(host = "127.0.0.1"): Promise<QuicEndpoint> {
  const client = await QuicEndpoint.open({ host, crypto: nodeProvider });
  opened.push(client);
  return client;
}

describe("QUIC over node:dgram on loopback", () => {
  it("echoes data on a bidi stream, verifying the server certificate", async () => {
    const server = await echoServer({ rng: new SeededRng(5) });
    const client = await clientEndpoint();
    const conn = await client.connect("127.0.0.1", server.address().port, CLIENT_OPTS);
    expect(conn.alpn).toBe("echo");
    const s = await conn.openStream();
    const payload = new Uint8Array(3 * 1024 * 1024);
    new SeededRng(9).fill(payload);
    s.end(payload);
    const back = await collect(s);
    expect(createHash("sha256").update(back).digest("hex")).toBe(
      createHash("sha256").update(payload).digest("hex"),
    );
    await conn.close(0, "done");
  });
});

describe("QUIC over node:dgram: resumption", () => {
  it("resumes a second connection with the first one's session ticket", async () => {
    const server = await echoServer();
    const serverSide: QuicConnection[] = [];
    server.on("connection", (c: QuicConnection) => serverSide.push(c));
    const client = await clientEndpoint();
    const first = await client.connect("127.0.0.1", server.address().port, CLIENT_OPTS);
    const [ticket] = (await once(first, "sessionTicket")) as [SessionTicket];
    expect(first.resumed).toBe(false);
    await first.close(0, "done");

    const second = await client.connect("127.0.0.1", server.address().port, {
      ...CLIENT_OPTS,
      sessionTicket: ticket,
    });
    expect(second.resumed).toBe(true);
    const s = await second.openStream();
    s.end(Buffer.from("again"));
    expect((await collect(s)).toString()).toBe("again");
    expect(serverSide.map((c) => c.resumed)).toEqual([false, true]);
    await second.close(0, "done");
  });
});

describe("QUIC over node:dgram: graceful close", () => {
  it("data on a fresh stream just before a close with code 0 is still delivered, then the stream ends", async () => {
    const received: Promise<string>[] = [];
    const server = await echoServer({
      onStream: (s) => received.push(collect(s).then((b) => b.toString())),
    });
    const client = await clientEndpoint();
    for (let i = 0; i < 10; i++) {
      const conn = await client.connect("127.0.0.1", server.address().port, CLIENT_OPTS);
      const s = await conn.openStream({ bidi: false });
      s.write(Buffer.from(`last words ${i}`)); // no FIN
      // Let the data leave, then close at once: the server usually takes both datagrams in one
      // receive batch, so the stream and the close reach it together.
      await new Promise((r) => setImmediate(r));
      await conn.close(0, "bye");
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(await Promise.all(received)).toEqual(Array.from({ length: 10 }, (_, i) => `last words ${i}`));
  });
});

describe("QUIC over node:dgram: 0-RTT", () => {
  it("sends a resumed connection's first stream data in 0-RTT, accepted by the server", async () => {
    const server = await echoServer({ earlyData: true });
    const client = await clientEndpoint();
    const first = await client.connect("127.0.0.1", server.address().port, CLIENT_OPTS);
    const [ticket] = (await once(first, "sessionTicket")) as [SessionTicket];
    expect(ticket.maxEarlyDataSize).toBe(0xffffffff);
    await first.close(0, "done");

    const second = await client.connect("127.0.0.1", server.address().port, {
      ...CLIENT_OPTS,
      sessionTicket: ticket,
      earlyData: true,
    });
    // connect() returned before the handshake: what we write now leaves in 0-RTT.
    expect(second.earlyData).toBe("pending");
    const s = await second.openStream();
    s.end(Buffer.from("early"));
    expect((await collect(s)).toString()).toBe("early");
    if (second.earlyData === "pending") await once(second, "connect");
    expect(second.earlyData).toBe("accepted");
    expect(second.resumed).toBe(true);
    await second.close(0, "done");
  });
});

describe("QUIC over node:dgram: IPv6, key log, verification defaults", () => {
  it("works over IPv6 loopback with many connections on one server socket", async () => {
    const { ca } = testCerts(nodeProvider);
    const server = await echoServer({ host: "::1" });
    const client = await QuicEndpoint.open({ host: "::1", crypto: nodeProvider });
    opened.push(client);
    const conns = await Promise.all(
      Array.from({ length: 5 }, () =>
        client.connect("::1", server.address().port, {
          alpn: ["echo"],
          ca: [ca.der],
          serverName: "localhost",
        }),
      ),
    );
    const replies = await Promise.all(
      conns.map(async (c, i) => {
        const s = await c.openStream();
        s.end(`conn ${i}`);
        return (await collect(s)).toString();
      }),
    );
    expect(replies).toEqual(["conn 0", "conn 1", "conn 2", "conn 3", "conn 4"]);
    expect(server.connections.length).toBe(5);
    await Promise.all(conns.map((c) => c.close()));
  });

  it("writes NSS key log lines for both directions and both levels", async () => {
    const { ca } = testCerts(nodeProvider);
    const file = join(mkdtempSync(join(tmpdir(), "keylog-")), "keys.log");
    const server = await echoServer({ keylogFile: file });
    const client = await QuicEndpoint.open({ host: "127.0.0.1", crypto: nodeProvider });
    opened.push(client);
    const conn = await client.connect("127.0.0.1", server.address().port, {
      alpn: ["echo"],
      ca: [ca.der],
      serverName: "localhost",
    });
    await conn.close();
    const labels = readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split(" ")[0])
      .sort();
    expect(labels).toEqual([
      "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
      "CLIENT_TRAFFIC_SECRET_0",
      "SERVER_HANDSHAKE_TRAFFIC_SECRET",
      "SERVER_TRAFFIC_SECRET_0",
    ]);
    for (const line of readFileSync(file, "utf8").trim().split("\n"))
      expect(line).toMatch(/^[A-Z_0-9]+ [0-9a-f]{64} [0-9a-f]{64}$/);
  });

  it("verifies against the system roots by default and says why it refuses", async () => {
    const server = await echoServer();
    const client = await QuicEndpoint.open({ host: "127.0.0.1", crypto: nodeProvider });
    opened.push(client);
    await expect(
      client.connect("127.0.0.1", server.address().port, { alpn: ["echo"], serverName: "localhost" }),
    ).rejects.toThrow(/not among the trusted roots|unknown/i);
  });

  it("refuses a server without a common ALPN with no_application_protocol", async () => {
    const { ca } = testCerts(nodeProvider);
    const server = await echoServer();
    const client = await QuicEndpoint.open({ host: "127.0.0.1", crypto: nodeProvider });
    opened.push(client);
    const err = await client
      .connect("127.0.0.1", server.address().port, { alpn: ["other"], ca: [ca.der], serverName: "localhost" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    // CRYPTO_ERROR 0x100 + no_application_protocol (120 = 0x78), RFC 9001 §8.1
    expect((err as { info?: { errorCode: number } }).info?.errorCode).toBe(0x178);
  });
});

describe("QUIC over node:dgram: connection migration", () => {
  it("follows the client through a NAT rebinding in the middle of a transfer (RFC 9000 §9.3)", async () => {
    const server = await echoServer();
    const serverSide: QuicConnection[] = [];
    const changes: string[] = [];
    server.on("connection", (c: QuicConnection) => {
      serverSide.push(c);
      c.on("peerAddressChanged", (remote: string, validated: boolean) =>
        changes.push(`${remote} ${validated ? "validated" : "new"}`),
      );
    });
    const relay = await UdpRelay.start({ serverPort: server.address().port });
    try {
      const client = await clientEndpoint();
      const conn = await client.connect("127.0.0.1", relay.port, CLIENT_OPTS);
      const before = relay.upstreamPort;
      const s = await conn.openStream();
      const payload = new Uint8Array(4 * 1024 * 1024);
      new SeededRng(12).fill(payload);
      const parts: Buffer[] = [];
      let got = 0;
      let rebinding: Promise<void> | undefined;
      const done = new Promise<void>((resolve, reject) => {
        s.on("data", (c: Buffer) => {
          parts.push(c);
          got += c.length;
          // Halfway through the echo, the client's "NAT" moves it to a new port.
          if (!rebinding && got > 1024 * 1024) rebinding = relay.rebind();
        });
        s.on("end", resolve);
        s.on("error", reject);
      });
      s.end(payload);
      await done;
      await rebinding;
      expect(createHash("sha256").update(Buffer.concat(parts)).digest("hex")).toBe(
        createHash("sha256").update(payload).digest("hex"),
      );
      expect(relay.upstreamPort).not.toBe(before);
      const sc = serverSide[0];
      expect(sc.remoteAddress).toBe(`127.0.0.1:${relay.upstreamPort}`);
      expect(changes).toEqual([
        `127.0.0.1:${relay.upstreamPort} new`,
        `127.0.0.1:${relay.upstreamPort} validated`,
      ]);
      expect(sc.core.stats.migrations).toBe(1);
      expect(sc.core.stats.pathsValidated).toBe(1);
      await conn.close(0, "done");
    } finally {
      relay.close();
    }
  });
});

describe("QUIC over node:dgram: active migration by the client", () => {
  it("moves a transfer to a new port, then to a new local address; the server follows both (RFC 9000 §9.2)", async () => {
    const server = await echoServer();
    const serverSide: QuicConnection[] = [];
    const changes: string[] = [];
    server.on("connection", (c: QuicConnection) => {
      serverSide.push(c);
      c.on("peerAddressChanged", (remote: string, validated: boolean) => {
        if (validated) changes.push(remote);
      });
    });
    const client = await clientEndpoint();
    const conn = await client.connect("127.0.0.1", server.address().port, CLIENT_OPTS);
    // Migration needs a confirmed handshake and a spare connection ID from the server.
    while (!conn.core.isHandshakeConfirmed || !conn.core.hasSpareDestinationCid)
      await new Promise((r) => setTimeout(r, 5));
    const s = await conn.openStream();
    const payload = new Uint8Array(4 * 1024 * 1024);
    new SeededRng(13).fill(payload);
    const parts: Buffer[] = [];
    const cids = [Buffer.from(conn.core.destinationCid).toString("hex")];
    const ports = [client.address().port];
    let got = 0;
    const moves: Promise<void>[] = [];
    const done = new Promise<void>((resolve, reject) => {
      s.on("data", (c: Buffer) => {
        parts.push(c);
        got += c.length;
        const move = (opts: { host?: string }) =>
          moves.push(
            client.rebind(opts).then(() => {
              ports.push(client.address().port);
              cids.push(Buffer.from(conn.core.destinationCid).toString("hex"));
            }),
          );
        if (moves.length === 0 && got > 1024 * 1024) move({});
        else if (moves.length === 1 && got > 2.5 * 1024 * 1024) move({ host: "127.0.0.2" });
      });
      s.on("end", resolve);
      s.on("error", reject);
    });
    s.end(payload);
    await done;
    await Promise.all(moves);
    expect(createHash("sha256").update(Buffer.concat(parts)).digest("hex")).toBe(
      createHash("sha256").update(payload).digest("hex"),
    );
    expect(client.address().address).toBe("127.0.0.2");
    expect(new Set(ports).size).toBe(3);
    // A new connection ID on each new path (§9.5).
    expect(new Set(cids).size).toBe(3);
    expect(changes).toEqual([`127.0.0.1:${ports[1]}`, `127.0.0.2:${ports[2]}`]);
    expect(serverSide[0].remoteAddress).toBe(`127.0.0.2:${ports[2]}`);
    await conn.close(0, "done");
  });

  it("refuses to migrate before the handshake is confirmed, changing nothing", async () => {
    // A "server" that never answers: the handshake stays unconfirmed.
    const hole = createSocket("udp4");
    await new Promise<void>((r) => hole.bind(0, "127.0.0.1", () => r()));
    try {
      const client = await clientEndpoint();
      const connecting = client.connect("127.0.0.1", hole.address().port, {
        ...CLIENT_OPTS,
        handshakeTimeout: 5_000,
      });
      connecting.catch(() => {});
      await new Promise((r) => setTimeout(r, 50));
      const port = client.address().port;
      await expect(client.rebind()).rejects.toThrow(/handshake is not confirmed/);
      expect(client.address().port).toBe(port);
      await client.close();
    } finally {
      hole.close();
    }
  });
});

describe("QUIC over node:dgram: a peer that is gone", () => {
  it("close() resolves even when the CONNECTION_CLOSE meets a closed port (ICMP errors are not failures)", async () => {
    const hole = createSocket("udp4");
    await new Promise<void>((r) => hole.bind(0, "127.0.0.1", () => r()));
    const client = await QuicEndpoint.open({ host: "127.0.0.1", crypto: nodeProvider });
    const connecting = client.connect("127.0.0.1", hole.address().port, CLIENT_OPTS);
    const failed = connecting.then(
      () => "connected",
      (e: Error) => e.message,
    );
    await new Promise((r) => setTimeout(r, 50));
    hole.close(); // now every datagram to it comes back as ECONNREFUSED
    await new Promise((r) => setTimeout(r, 20));
    await expect(client.close()).resolves.toBeUndefined();
    expect(await failed).toMatch(/failed: endpoint closed/);
  });
});

describe("QUIC over node:dgram: datagram size (DPLPMTUD, RFC 9000 §14)", () => {
  /** A server that answers each stream with the SHA-256 (hex) of what it read. */
  async function hashServer(opts: Partial<QuicListenOptions> = {}): Promise<QuicEndpoint> {
    return echoServer({
      ...opts,
      onStream: (s) => {
        const h = createHash("sha256");
        s.on("data", (c: Buffer) => h.update(c));
        s.on("end", () => s.end(h.digest("hex")));
      },
    });
  }

  /** Sends `bytes` pseudo-random bytes on a new stream; resolves with the sent and echoed hashes. */
  async function upload(conn: QuicConnection, bytes: number): Promise<{ sent: string; echoed: string }> {
    const payload = new Uint8Array(bytes);
    new SeededRng(11).fill(payload);
    const s = await conn.openStream();
    s.end(payload);
    const echoed = (await collect(s)).toString();
    return { sent: createHash("sha256").update(payload).digest("hex"), echoed };
  }

  it("sends datagrams larger than 1452 bytes on loopback and moves 10 MB intact", async () => {
    const server = await hashServer();
    const client = await clientEndpoint();
    const conn = await client.connect("127.0.0.1", server.address().port, CLIENT_OPTS);
    const { sent, echoed } = await upload(conn, 10 << 20);
    expect(echoed).toBe(sent);
    // Both sides advertised and validated the loopback size; the data went in large datagrams.
    const stats = conn.core.stats;
    expect(stats.maxDatagramSize).toBe(LOOPBACK_MAX_UDP_PAYLOAD);
    expect(conn.core.peerTransportParameters?.maxUdpPayloadSize).toBe(LOOPBACK_MAX_UDP_PAYLOAD);
    expect(stats.bytesSent / stats.packetsSent).toBeGreaterThan(1452);
    expect(server.connections[0].core.stats.maxDatagramSize).toBe(LOOPBACK_MAX_UDP_PAYLOAD);
    await conn.close(0, "done");
  });

  it("keeps an explicit maxUdpPayloadSize, which also bounds what the peer sends", async () => {
    const server = await hashServer();
    const client = await clientEndpoint();
    const conn = await client.connect("127.0.0.1", server.address().port, {
      ...CLIENT_OPTS,
      transport: { maxUdpPayloadSize: 1452 },
    });
    const { sent, echoed } = await upload(conn, 1 << 20);
    expect(echoed).toBe(sent);
    expect(conn.core.stats.maxDatagramSize).toBe(1452);
    // The server would go to the loopback size, but our max_udp_payload_size caps it.
    expect(server.connections[0].core.stats.maxDatagramSize).toBe(1452);
    expect(server.connections[0].core.peerTransportParameters?.maxUdpPayloadSize).toBe(1452);
    await conn.close(0, "done");
  });

  it("refuses a maxUdpPayloadSize outside 1200..65527 when listening or connecting", async () => {
    const { leaf } = testCerts(nodeProvider);
    for (const bad of [1199, 65528, 1500.5]) {
      await expect(
        QuicEndpoint.listen({
          port: 0,
          host: "127.0.0.1",
          alpn: ["echo"],
          cert: [leaf.der],
          key: leaf.key,
          transport: { maxUdpPayloadSize: bad },
        }),
      ).rejects.toThrow(RangeError);
    }
    const server = await hashServer();
    const client = await clientEndpoint();
    await expect(
      client.connect("127.0.0.1", server.address().port, {
        ...CLIENT_OPTS,
        transport: { maxUdpPayloadSize: 70_000 },
      }),
    ).rejects.toThrow(/maxUdpPayloadSize must be an integer in 1200\.\.65527/);
  });

  it("knows loopback addresses (127.0.0.0/8, ::1, IPv4-mapped 127.x) from others", () => {
    for (const a of ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"])
      expect(isLoopbackAddress(a)).toBe(true);
    for (const a of ["10.0.0.1", "128.0.0.1", "::", "::2", "::ffff:10.0.0.1", "fe80::1", "127.example"])
      expect(isLoopbackAddress(a)).toBe(false);
  });
});
