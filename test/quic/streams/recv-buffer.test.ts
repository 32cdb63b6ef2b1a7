import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TransportError, TransportErrorCode } from "../../../src/quic/errors.js";
import { RecvBuffer } from "../../../src/quic/streams/recv-buffer.js";
import { concat, toHex } from "../../../src/util/bytes.js";

function codeOf(f: () => void): number | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof TransportError) return e.errorCode;
    throw e;
  }
  return undefined;
}

const bytes = (n: number, seed = 0) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

describe("RecvBuffer reassembly (RFC 9000 §2.2)", () => {
  it("delivers in-order data as views without copying", () => {
    const b = new RecvBuffer();
    const packet = bytes(1200);
    const frame = packet.subarray(20, 1120);
    b.insert(0, frame, false);
    const out = b.read();
    expect(out?.buffer).toBe(packet.buffer); // zero-copy
    expect(out?.length).toBe(1100);
    expect(b.readOffset).toBe(1100);
  });

  it("copies tiny frames rather than pinning a whole datagram", () => {
    const b = new RecvBuffer();
    const packet = bytes(1200);
    b.insert(0, packet.subarray(0, 10), false);
    expect(b.read()?.buffer).not.toBe(packet.buffer);
  });

  it("holds out-of-order data until the gap is filled", () => {
    const b = new RecvBuffer();
    const data = bytes(30);
    b.insert(10, data.subarray(10, 20), false);
    b.insert(20, data.subarray(20, 30), true);
    expect(b.readable).toBe(0);
    expect(b.read()).toBeUndefined();
    expect(b.buffered).toBe(20);
    b.insert(0, data.subarray(0, 10), false);
    expect(b.readable).toBe(30);
    expect(b.allReceived).toBe(true);
    expect(concat(...b.readAll())).toEqual(data);
    expect(b.isFinished).toBe(true);
    expect(b.buffered).toBe(0);
  });

  it("does not double-count overlapping or duplicated bytes", () => {
    const b = new RecvBuffer();
    const data = bytes(100);
    expect(b.insert(50, data.subarray(50, 80), false)).toBe(80);
    expect(b.insert(40, data.subarray(40, 90), false)).toBe(10);
    expect(b.insert(50, data.subarray(50, 80), false)).toBe(0);
    expect(b.buffered).toBe(50);
    b.insert(0, data.subarray(0, 100), false);
    expect(b.buffered).toBe(100);
    expect(concat(...b.readAll())).toEqual(data);
  });

  it("bounds each read by maxBytes", () => {
    const b = new RecvBuffer();
    const data = bytes(100);
    b.insert(0, data, true);
    expect(b.read(30)).toEqual(data.subarray(0, 30));
    expect(b.read(100)).toEqual(data.subarray(30));
    expect(b.read()).toBeUndefined();
    expect(b.isFinished).toBe(true);
  });

  it("reproduces the input under random chunking, reordering and duplication (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 2000 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.integer(),
        fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 1, maxLength: 10 }),
        (data, cutSeeds, dupSeeds, orderSeed, readSizes) => {
          // Random cut points make the frames; a few random ranges are re-sent (overlapping).
          const cuts = [...new Set(cutSeeds.map((c) => (data.length === 0 ? 0 : c % data.length)))].sort(
            (x, y) => x - y,
          );
          const frames: Array<[number, number]> = [];
          let at = 0;
          for (const c of [...cuts, data.length]) {
            if (c > at || (c === data.length && frames.length === 0)) frames.push([at, c]);
            at = Math.max(at, c);
          }
          for (const d of dupSeeds) {
            const s = data.length === 0 ? 0 : d % data.length;
            frames.push([s, Math.min(data.length, s + (d % 300))]);
          }
          // Deterministic shuffle.
          let seed = orderSeed >>> 0;
          for (let i = frames.length - 1; i > 0; i--) {
            seed = (seed * 1103515245 + 12345) >>> 0;
            const j = seed % (i + 1);
            [frames[i], frames[j]] = [frames[j], frames[i]];
          }
          const b = new RecvBuffer();
          const out: Uint8Array[] = [];
          let r = 0;
          for (const [s, e] of frames) {
            b.insert(s, data.subarray(s, e), e === data.length);
            expect(b.buffered).toBeLessThanOrEqual(data.length - b.readOffset);
            // Read as we go, with varying read sizes.
            for (
              let x = b.read(readSizes[r++ % readSizes.length]);
              x;
              x = b.read(readSizes[r++ % readSizes.length])
            )
              out.push(x);
          }
          expect(b.allReceived).toBe(true);
          expect(b.isFinished).toBe(true);
          expect(b.buffered).toBe(0);
          expect(toHex(concat(...out))).toBe(toHex(data));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("RecvBuffer fragmentation guard", () => {
  it("merges runs of small adjacent pieces instead of holding thousands of objects", () => {
    const b = new RecvBuffer();
    const data = bytes(20_000);
    // A gap at [0,1), then 5000 adjacent 3-byte frames and 200 scattered ones.
    for (let off = 1; off < 15_001; off += 3) b.insert(off, data.subarray(off, off + 3), false);
    expect(b.chunkCount).toBeLessThanOrEqual(1024);
    for (let k = 0; k < 200; k++)
      b.insert(15_100 + k * 20, data.subarray(15_100 + k * 20, 15_110 + k * 20), false);
    b.insert(0, data.subarray(0, 1), false);
    const got = concat(...b.readAll());
    expect(got.length).toBe(15_001);
    expect(toHex(got)).toBe(toHex(data.subarray(0, 15_001)));
  });

  it("closes the connection when a peer creates too many real gaps", () => {
    const b = new RecvBuffer();
    const data = bytes(10_000);
    expect(() => {
      for (let off = 1; off < 10_000; off += 2) b.insert(off, data.subarray(off, off + 1), false);
    }).toThrow(/too many gaps/);
  });
});

describe("RecvBuffer final size (RFC 9000 §4.5)", () => {
  it("rejects a FIN that changes a known final size", () => {
    const b = new RecvBuffer();
    b.insert(0, bytes(10), true);
    expect(codeOf(() => b.insert(0, bytes(12), true))).toBe(TransportErrorCode.FINAL_SIZE_ERROR);
    expect(codeOf(() => b.insert(0, bytes(8), true))).toBe(TransportErrorCode.FINAL_SIZE_ERROR);
    // The same FIN again is fine.
    expect(codeOf(() => b.insert(5, bytes(5), true))).toBeUndefined();
  });

  it("rejects data beyond the final size", () => {
    const b = new RecvBuffer();
    b.insert(90, bytes(10), true);
    const err = (() => {
      try {
        b.insert(95, bytes(10), false);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).errorCode).toBe(TransportErrorCode.FINAL_SIZE_ERROR);
    expect((err as TransportError).frameType).toBe(0x08);
  });

  it("rejects a FIN below data already received", () => {
    const b = new RecvBuffer();
    b.insert(100, bytes(10), false);
    expect(codeOf(() => b.insert(0, bytes(50), true))).toBe(TransportErrorCode.FINAL_SIZE_ERROR);
  });

  it("applies to RESET_STREAM's final size and still after the data is discarded", () => {
    const b = new RecvBuffer();
    b.insert(0, bytes(40), false);
    expect(codeOf(() => b.setFinalSize(39))).toBe(TransportErrorCode.FINAL_SIZE_ERROR);
    b.setFinalSize(60);
    b.discard();
    expect(b.buffered).toBe(0);
    expect(b.read()).toBeUndefined();
    expect(codeOf(() => b.insert(55, bytes(10), false))).toBe(TransportErrorCode.FINAL_SIZE_ERROR);
    expect(codeOf(() => b.insert(40, bytes(20), false))).toBeUndefined();
  });

  it("keeps tracking which offsets arrived while discarding", () => {
    const b = new RecvBuffer();
    b.insert(0, bytes(10), false);
    b.insert(20, bytes(10), true);
    b.discard();
    expect(b.allReceived).toBe(false);
    b.insert(10, bytes(10), false);
    expect(b.allReceived).toBe(true);
    expect(b.readable).toBe(0);
  });
});

describe("RecvBuffer for CRYPTO (RFC 9000 §7.5)", () => {
  it("rejects data too far ahead of the read offset with CRYPTO_BUFFER_EXCEEDED", () => {
    const b = new RecvBuffer({ maxAhead: 4096, frameType: 0x06 });
    b.insert(1000, bytes(3000), false);
    let err: unknown;
    try {
      b.insert(4000, bytes(200), false);
    } catch (e) {
      err = e;
    }
    expect((err as TransportError).errorCode).toBe(TransportErrorCode.CRYPTO_BUFFER_EXCEEDED);
    expect((err as TransportError).frameType).toBe(0x06);
    // Reading moves the window.
    b.insert(0, bytes(1000), false);
    b.readAll();
    expect(codeOf(() => b.insert(4000, bytes(200), false))).toBeUndefined();
  });
});
