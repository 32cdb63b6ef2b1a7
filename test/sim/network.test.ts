import { describe, expect, it } from "vitest";
import { SimNetwork, type SimNode } from "./network.js";

/** Echoes each datagram back, and counts what it saw. */
class Echo implements SimNode {
  got: { at: number; data: Uint8Array }[] = [];
  private out: { to: string; data: Uint8Array }[] = [];
  constructor(
    readonly address: string,
    private readonly echo: boolean,
  ) {}
  receive(now: number, from: string, data: Uint8Array): void {
    this.got.push({ at: now, data });
    if (this.echo) this.out.push({ to: from, data });
  }
  queue(to: string, data: Uint8Array): void {
    this.out.push({ to, data });
  }
  pollTransmit(): { to: string; data: Uint8Array } | undefined {
    return this.out.shift();
  }
  pollTimeout(): number | undefined {
    return undefined;
  }
  handleTimeout(): void {}
}

describe("SimNetwork", () => {
  it("delivers after the link latency, round trip twice that", () => {
    const a = new Echo("a", false);
    const b = new Echo("b", true);
    const net = new SimNetwork(1).add(a).add(b).setLink("a", "b", { latency: 25 });
    a.queue("b", new Uint8Array([1, 2, 3]));
    net.run(() => a.got.length === 1);
    expect(b.got[0].at).toBe(25);
    expect(a.got[0].at).toBe(50);
  });

  it("is deterministic per seed and loses about the configured fraction", () => {
    const runOnce = (seed: number) => {
      const a = new Echo("a", false);
      const b = new Echo("b", false);
      const net = new SimNetwork(seed).add(a).add(b).setLink("a", "b", { loss: 0.3, jitter: 5 });
      for (let i = 0; i < 1000; i++) a.queue("b", new Uint8Array([i & 0xff]));
      net.run();
      return b.got.map((g) => `${g.at.toFixed(3)}:${g.data[0]}`);
    };
    const first = runOnce(42);
    expect(runOnce(42)).toEqual(first);
    expect(runOnce(43)).not.toEqual(first);
    expect(first.length).toBeGreaterThan(620);
    expect(first.length).toBeLessThan(780);
  });

  it("models bandwidth as serialization delay", () => {
    const a = new Echo("a", false);
    const b = new Echo("b", false);
    // 1000 bytes per second: each 100-byte datagram takes 100 ms on the wire.
    const net = new SimNetwork(7).add(a).add(b).setLink("a", "b", { latency: 0, bandwidth: 1000 });
    for (let i = 0; i < 3; i++) a.queue("b", new Uint8Array(100));
    net.run();
    expect(b.got.map((g) => g.at)).toEqual([100, 200, 300]);
  });

  it("applies filters, duplication and corruption", () => {
    const a = new Echo("a", false);
    const b = new Echo("b", false);
    const net = new SimNetwork(9).add(a).add(b).setLink("a", "b", { duplicate: 1, corrupt: 1 });
    net.filter = (d) => d.index === 0;
    a.queue("b", new Uint8Array(8));
    a.queue("b", new Uint8Array(8));
    net.run();
    expect(b.got.length).toBe(2); // first filtered, second duplicated
    expect(b.got.every((g) => g.data.some((x) => x !== 0))).toBe(true);
  });
});
