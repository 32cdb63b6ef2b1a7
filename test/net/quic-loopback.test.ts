import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { nodeProvider } from "../../src/crypto/node.js";
import { SeededRng } from "../../src/crypto/random.js";
import { QuicEndpoint, type QuicStream } from "../../src/net/quic.js";
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

describe("QUIC over node:dgram on loopback", () => {
  it("echoes data on a bidi stream, verifying the server certificate", async () => {
    const { ca, leaf } = testCerts(nodeProvider);
    const server = await QuicEndpoint.listen({
      port: 0,
      host: "127.0.0.1",
      alpn: ["echo"],
      cert: [leaf.der],
      key: leaf.key,
      crypto: nodeProvider,
      rng: new SeededRng(5),
    });
    opened.push(server);
    server.on("connection", (conn) => {
      conn.on("stream", (s: QuicStream) => {
        s.pipe(s);
      });
    });
    const client = await QuicEndpoint.open({ host: "127.0.0.1", crypto: nodeProvider });
    opened.push(client);
    const conn = await client.connect("127.0.0.1", server.address().port, {
      alpn: ["echo"],
      ca: [ca.der],
      serverName: "localhost",
    });
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
