/**
 * HKDF-Expand-Label and Derive-Secret, RFC 8446 §7.1. Shared by the TLS key schedule and QUIC
 * packet protection (RFC 9001 §5.1, which uses labels such as "quic key" with an empty context).
 */
import type { CryptoProvider, HashAlgorithm } from "../crypto/provider.js";

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** "tls13 " + label, encoded once per label: a handshake expands some 30 labels from a fixed set. */
const labelCache = new Map<string, Uint8Array>();

function labelBytes(label: string): Uint8Array {
  let b = labelCache.get(label);
  if (b === undefined) {
    b = encoder.encode(`tls13 ${label}`);
    // Labels are protocol constants; an unbounded set would mean a caller passing data as a label.
    if (labelCache.size < 64) labelCache.set(label, b);
  }
  return b;
}

/**
 * HKDF-Expand-Label(Secret, Label, Context, Length) = HKDF-Expand(Secret, HkdfLabel, Length),
 * where HkdfLabel = uint16 length || opaque label<7..255> = "tls13 " + Label || opaque context<0..255>.
 */
export function hkdfExpandLabel(
  provider: CryptoProvider,
  hash: HashAlgorithm,
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  const fullLabel = labelBytes(label);
  if (fullLabel.length > 255 || context.length > 255) throw new RangeError("HKDF label or context too long");
  const info = new Uint8Array(2 + 1 + fullLabel.length + 1 + context.length);
  info[0] = length >>> 8;
  info[1] = length & 0xff;
  info[2] = fullLabel.length;
  info.set(fullLabel, 3);
  info[3 + fullLabel.length] = context.length;
  info.set(context, 4 + fullLabel.length);
  return provider.hkdfExpand(hash, secret, info, length);
}

/** Derive-Secret(Secret, Label, Messages) with the transcript hash already computed (RFC 8446 §7.1). */
export function deriveSecret(
  provider: CryptoProvider,
  hash: HashAlgorithm,
  secret: Uint8Array,
  label: string,
  transcriptHash: Uint8Array,
): Uint8Array {
  return hkdfExpandLabel(provider, hash, secret, label, transcriptHash, transcriptHash.length);
}

export { EMPTY as EMPTY_BYTES };
