/**
 * Packet number encoding and decoding, RFC 9000 §17.1 and Appendix A.2/A.3. Re-exported by
 * packet.ts; a module of its own so that protection.ts can use it without importing packet.ts.
 */

/** 2^62, the bound of the packet number space (RFC 9000 §12.3). */
const PN_SPACE = 2 ** 62;

/**
 * How many bytes (1..4) to encode `packetNumber` on, given the largest packet number the peer
 * acknowledged in this space (`-1` or `undefined` when none): enough bits to represent more
 * than twice the number of unacknowledged packets, RFC 9000 §17.1 and Appendix A.2.
 *
 * Packet numbers are JavaScript numbers: exact up to 2^53 - 1, far more than a connection sends.
 * Needing more than 4 bytes (over 2^31 unacknowledged packets) cannot be encoded; the result is
 * then clamped to 4.
 *
 * @example encodePacketNumberLength(0xac5c02, 0xabe8b3) === 2
 */
export function encodePacketNumberLength(packetNumber: number, largestAcked?: number): 1 | 2 | 3 | 4 {
  const numUnacked = packetNumber - (largestAcked ?? -1);
  // min_bits = log2(num_unacked) + 1, num_bytes = ceil(min_bits / 8)  <=>  2 * n <= 2^(8 * bytes)
  const twice = 2 * Math.max(numUnacked, 1);
  if (twice <= 0x100) return 1;
  if (twice <= 0x10000) return 2;
  if (twice <= 0x1000000) return 3;
  return 4;
}

/**
 * Recovers a full packet number from its truncated `nbits`-bit encoding (8, 16, 24 or 32), given
 * the largest packet number successfully processed in the space (`-1` when none), RFC 9000
 * Appendix A.3: the candidate closest to `largest + 1`.
 *
 * @example decodePacketNumber(0xa82f30ea, 0x9b32, 16) === 0xa82f9b32
 */
export function decodePacketNumber(largest: number, truncated: number, nbits: number): number {
  const expected = largest + 1;
  const win = 2 ** nbits;
  const hwin = win / 2;
  // (expected & ~mask) | truncated, in arithmetic so values above 2^32 stay exact.
  const candidate = expected - (expected % win) + truncated;
  if (candidate <= expected - hwin && candidate < PN_SPACE - win) return candidate + win;
  if (candidate > expected + hwin && candidate >= win) return candidate - win;
  return candidate;
}
