import { describe, expect, it } from "vitest";
import { inMemoryHandshake, loopbackEcho, mqttOverQuic } from "../../src/cli/demo.js";

describe("npm run demo", () => {
  it("shows the in-memory handshake step by step", () => {
    const lines: string[] = [];
    inMemoryHandshake((l) => lines.push(l));
    expect(lines.some((l) => /client: handshake complete, ALPN demo/.test(l))).toBe(true);
    expect(lines.some((l) => /server: stream 0 says "hello from a sans-IO client"/.test(l))).toBe(true);
    expect(lines.some((l) => /Initial\(1200B\)/.test(l))).toBe(true);
  });

  it("echoes over UDP on loopback", async () => {
    const lines: string[] = [];
    await loopbackEcho((l) => lines.push(l));
    expect(lines).toContain('echo: "ping over real UDP"');
  });

  it("runs a broker and a per-topic client over QUIC", async () => {
    const lines: string[] = [];
    await mqttOverQuic((l) => lines.push(l));
    expect(lines).toContain('sensors subscriber received sensors/temperature: "21.5 C"');
    expect(lines).toContain('sensors subscriber received sensors/temperature: "21.7 C"');
    expect(lines).toContain('alerts subscriber received alerts/fire: "smoke in the kitchen"');
  });
});
