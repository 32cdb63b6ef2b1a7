import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RecvBuffer } from "../../../src/quic/streams/recv-buffer.js";
import { SendBuffer, type SendChunk } from "../../../src/quic/streams/send-buffer.js";
import { concat, toHex } from "../../../src/util/bytes.js";

const bytes = (n: number, seed = 0) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

function drain(b: SendBuffer, max: number, credit = Number.POSITIVE_INFINITY): SendChunk[] {
  const out: SendChunk[] = [];
  for (let c = b.nextChunk(max, credit); c; c = b.nextChunk(max, credit)) {
    out.push(c);
    if (!c.retransmit) credit -= c.data.length;
  }
  return out;
}

describe("SendBuffer (RFC 9000 §2.2, §3.1, §13.3)", () => {
  it("bounds writes and exposes the writable space for backpressure", () => {
    const b = new SendBuffer(100);
    expect(b.writable).toBe(100);
    expect(b.write(bytes(60))).toBe(60);
    expect(b.write(bytes(60))).toBe(40);
    expect(b.writable).toBe(0);
    expect(b.write(bytes(1))).toBe(0);
    const chunks = drain(b, 30);
    expect(chunks.map((c) => [c.offset, c.data.length])).toEqual([
      [0, 30],
      [30, 30],
      [60, 30],
      [90, 10],
    ]);
    b.onAcked(0, 30, false);
    expect(b.writable).toBe(30);
    expect(b.buffered).toBe(70);
  });

  it("returns views into a single write and copies across writes", () => {
    const b = new SendBuffer();
    const w1 = bytes(50);
    const w2 = bytes(50, 1);
    b.write(w1);
    b.write(w2);
    const c1 = b.nextChunk(40)!;
    expect(c1.data.buffer).toBe(w1.buffer);
    const c2 = b.nextChunk(40)!;
    expect(c2.data).toEqual(concat(w1.subarray(40), w2.subarray(0, 30)));
  });

  it("limits new data by the flow credit but not retransmissions", () => {
    const b = new SendBuffer();
    b.write(bytes(100));
    const c = b.nextChunk(1000, 40)!;
    expect([c.offset, c.data.length, c.retransmit]).toEqual([0, 40, false]);
    expect(b.nextChunk(1000, 0)).toBeUndefined();
    expect(b.hasSendable(0)).toBe(false);
    b.onLost(0, 40, false);
    expect(b.hasSendable(0)).toBe(true);
    const r = b.nextChunk(1000, 0)!;
    expect([r.offset, r.data.length, r.retransmit]).toEqual([0, 40, true]);
  });

  it("retransmits exactly the lost ranges, before new data, skipping acknowledged parts", () => {
    const b = new SendBuffer();
    const data = bytes(1000);
    b.write(data);
    const sent = drain(b, 100, 600); // [0,600) in six frames
    expect(sent).toHaveLength(6);
    b.onAcked(0, 100, false);
    b.onAcked(300, 100, false);
    b.onLost(100, 100, false);
    b.onLost(200, 300, false); // a coalesced loss report covering an acked part [300,400)
    expect(b.lostRanges()).toEqual([
      [100, 300],
      [400, 500],
    ]);
    const again = drain(b, 150, 100);
    expect(again.map((c) => [c.offset, c.data.length, c.retransmit])).toEqual([
      [100, 150, true],
      [250, 50, true],
      [400, 100, true],
      [600, 100, false], // then new data within the credit
    ]);
    for (const c of again) expect(c.data).toEqual(data.subarray(c.offset, c.offset + c.data.length));
  });

  it("does not resend a range acknowledged after being declared lost (spurious loss)", () => {
    const b = new SendBuffer();
    b.write(bytes(100));
    b.nextChunk(100);
    b.onLost(0, 100, false);
    b.onAcked(0, 100, false);
    expect(b.nextChunk(100)).toBeUndefined();
    expect(b.buffered).toBe(0);
  });

  it("frees memory as the acknowledged prefix advances", () => {
    const b = new SendBuffer(1000);
    for (let i = 0; i < 10; i++) b.write(bytes(100, i));
    drain(b, 100);
    b.onAcked(100, 800, false);
    expect(b.buffered).toBe(1000); // a hole at [0,100) keeps everything
    b.onAcked(0, 100, false);
    expect(b.buffered).toBe(100);
    expect(b.ackedPrefix).toBe(900);
    expect(b.writable).toBe(900);
  });

  it("acknowledges the stream only when all data and the FIN are acknowledged", () => {
    const b = new SendBuffer();
    b.write(bytes(10));
    b.finish();
    expect(b.write.bind(b, bytes(1))).toThrow(/finish/);
    const c = b.nextChunk(100)!;
    expect(c.fin).toBe(true);
    expect(b.finHasBeenSent).toBe(true);
    b.onAcked(0, 5, false);
    expect(b.allAcked).toBe(false);
    b.onAcked(5, 5, true);
    expect(b.allAcked).toBe(true);
  });

  it("resends a lost FIN: with the last lost bytes, or alone", () => {
    const b = new SendBuffer();
    b.write(bytes(10));
    b.finish();
    b.nextChunk(100); // [0,10)+FIN
    b.onLost(0, 10, true);
    const r = b.nextChunk(100)!;
    expect([r.offset, r.data.length, r.fin]).toEqual([0, 10, true]);
    b.onAcked(0, 10, false);
    b.onLost(0, 10, true); // the FIN alone is lost again (the bytes were acked)
    const f = b.nextChunk(100)!;
    expect([f.offset, f.data.length, f.fin, f.retransmit]).toEqual([10, 0, true, true]);
    b.onAcked(10, 0, true);
    expect(b.allAcked).toBe(true);
    expect(b.nextChunk(100)).toBeUndefined();
  });

  it("sends a FIN-only frame when finish() comes after all data was sent", () => {
    const b = new SendBuffer();
    b.write(bytes(10));
    b.nextChunk(100);
    expect(b.hasSendable()).toBe(false);
    b.finish();
    expect(b.hasSendable(0)).toBe(true);
    const f = b.nextChunk(0, 0)!;
    expect([f.offset, f.data.length, f.fin]).toEqual([10, 0, true]);
  });

  it("stops all (re)transmission after reset and reports the final size", () => {
    const b = new SendBuffer();
    b.write(bytes(100));
    b.nextChunk(60);
    b.onLost(0, 60, false);
    expect(b.reset()).toBe(60);
    expect(b.nextChunk(100)).toBeUndefined();
    expect(b.hasSendable()).toBe(false);
    expect(b.buffered).toBe(0); // the data was dropped
    expect(b.write(bytes(5))).toBe(0);
  });

  it("delivers the exact stream through random loss and acknowledgement (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 3000 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 10 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 50 }),
        (data, sizes, fate) => {
          const b = new SendBuffer(4096);
          expect(b.write(data)).toBe(data.length);
          b.finish();
          const recv = new RecvBuffer();
          let i = 0;
          let rounds = 0;
          while (!b.allAcked) {
            expect(rounds++).toBeLessThan(10_000);
            const c = b.nextChunk(sizes[i % sizes.length]);
            expect(c).toBeDefined();
            if (c === undefined) return;
            expect(toHex(c.data)).toBe(toHex(data.subarray(c.offset, c.offset + c.data.length)));
            if (fate[i++ % fate.length] || i % 7 === 0) {
              recv.insert(c.offset, c.data, c.fin);
              b.onAcked(c.offset, c.data.length, c.fin);
            } else {
              b.onLost(c.offset, c.data.length, c.fin);
            }
          }
          expect(b.buffered).toBe(0);
          expect(recv.allReceived).toBe(true);
          expect(toHex(concat(...recv.readAll()))).toBe(toHex(data));
        },
      ),
      { numRuns: 200 },
    );
  });
});
