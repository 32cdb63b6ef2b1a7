import { describe, expect, it } from "vitest";
import { nobleProvider } from "../../src/crypto/noble.js";
import { nodeProvider } from "../../src/crypto/node.js";
import { Pair, readAll } from "./harness.js";

describe.each([
  ["node", nodeProvider],
  ["noble", nobleProvider],
])("connection handshake (%s)", (_name, provider) => {
  it("completes the handshake over a perfect link", () => {
    const p = new Pair(provider);
    expect(p.handshake()).toBe(true);
    expect(p.clientEvents.find((e) => e.type === "connected")).toMatchObject({ alpn: "test" });
    expect(p.serverConn?.isEstablished).toBe(true);
  });

  it("echoes a stream", () => {
    const p = new Pair(provider);
    expect(p.handshake()).toBe(true);
    const c = p.clientConn;
    const id = c.openStream(true)!;
    const msg = new TextEncoder().encode("hello over quic");
    expect(c.write(id, msg)).toBe(msg.length);
    c.finish(id);
    p.touch(c);
    let got: Uint8Array[] = [];
    let fin = false;
    p.run(() => {
      if (!p.serverEvents.some((e) => e.type === "stream_opened" && e.streamId === id)) return false;
      const s = p.serverConn!;
      const r = readAll(s, p.net.now, id);
      got = got.concat(r.bytes);
      fin ||= r.fin;
      return fin;
    });
    expect(Buffer.concat(got).toString()).toBe("hello over quic");
  });
});
