import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DecodeError, fromHex, Reader, toHex, varintLength, Writer } from "../../src/util/bytes.js";

describe("varint (RFC 9000 §16, Appendix A.1 examples)", () => {
  // RFC 9000 §A.1: the example encodings.
  const vectors: [string, bigint][] = [
    ["c2197c5eff14e88c", 151288809941952652n],
    ["9d7f3e7d", 494878333n],
    ["7bbd", 15293n],
    ["25", 37n],
    ["4025", 37n], // non-minimal two-byte encoding decodes to the same value
  ];
  for (const [hex, value] of vectors) {
    it(`decodes ${hex} to ${value}`, () => {
      expect(new Reader(fromHex(hex)).varintBig()).toBe(value);
    });
  }
  it("encodes the minimal forms", () => {
    expect(toHex(new Writer().varint(151288809941952652n).finish())).toBe("c2197c5eff14e88c");
    expect(toHex(new Writer().varint(494878333).finish())).toBe("9d7f3e7d");
    expect(toHex(new Writer().varint(15293).finish())).toBe("7bbd");
    expect(toHex(new Writer().varint(37).finish())).toBe("25");
  });
  it("round-trips any 62-bit value", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 62n) - 1n }), (v) => {
        const enc = new Writer().varint(v).finish();
        expect(enc.length).toBe(varintLength(v));
        const r = new Reader(enc);
        expect(r.varintBig()).toBe(v);
        expect(r.done).toBe(true);
      }),
    );
  });
  it("never reads out of bounds", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 9 }), (b) => {
        const r = new Reader(b);
        try {
          r.varintBig();
          expect(r.pos).toBeLessThanOrEqual(b.length);
        } catch (e) {
          expect(e).toBeInstanceOf(DecodeError);
        }
      }),
    );
  });
});

describe("Reader / Writer", () => {
  it("round-trips fixed-width integers and vectors", () => {
    const w = new Writer(1).u8(1).u16(0x0203).u24(0x040506).u32(0xfffffffe).vec(2, fromHex("aabb"));
    w.block(1, (x) => x.u16(7));
    const r = new Reader(w.finish());
    expect([r.u8(), r.u16(), r.u24(), r.u32()]).toEqual([1, 0x0203, 0x040506, 0xfffffffe]);
    expect(toHex(r.vec(2))).toBe("aabb");
    const sub = r.sub(r.u8());
    expect(sub.u16()).toBe(7);
    sub.expectEnd();
    r.expectEnd();
  });
  it("uses the failure builder it was given", () => {
    class MyErr extends Error {}
    const r = new Reader(fromHex("0005aa"), (m) => new MyErr(m));
    expect(() => r.vec(2)).toThrow(MyErr);
  });
  it("rejects trailing bytes", () => {
    const r = new Reader(fromHex("0102"));
    r.u8();
    expect(() => r.expectEnd()).toThrow(/trailing/);
  });
});
