/**
 * The optional flow header at the start of a QUIC stream (mqtt.ai "simple multistreams",
 * the Rust `mqtt5` crate): a QUIC variable-length integer type (RFC 9000 §16) followed by
 *
 * - 0x11 control:     flow id (varint), flags (one byte)
 * - 0x12 client data: flow id (varint), expiry interval in seconds (varint), flags (one byte)
 * - 0x13 server data: same layout as client data
 * - 0x14 user defined: opaque; the stream is not MQTT
 *
 * No MQTT packet starts with 0x11-0x14 (that would be a CONNECT with reserved flag bits set), so
 * the first byte tells the two apart unambiguously.
 */

/** Flow header types. */
export const FlowType = {
  Control: 0x11,
  ClientData: 0x12,
  ServerData: 0x13,
  UserDefined: 0x14,
} as const;

/** A decoded flow header. */
export interface FlowHeader {
  /** 0x11..0x13. */
  readonly type: number;
  /** The flow id (client flows are even). */
  readonly flowId: bigint;
  /** Seconds the flow's state should outlive the stream (data flows; 0 otherwise). */
  readonly expiryInterval: bigint;
  /** The flags byte (bit 0 clean, 1 abort-if-no-state, 2-3 error tolerance, 4 persistent QoS...). */
  readonly flags: number;
  /** Encoded length in bytes. */
  readonly length: number;
}

/** Whether a stream's first byte announces a flow header. */
export function isFlowHeaderStart(b: number): boolean {
  return b >= FlowType.Control && b <= FlowType.UserDefined;
}

/** Result of {@link decodeFlowHeader}. */
export type FlowHeaderResult =
  | { readonly kind: "header"; readonly header: FlowHeader }
  | { readonly kind: "incomplete" }
  | { readonly kind: "invalid"; readonly reason: string };

function readVarint(buf: Uint8Array, pos: number): { value: bigint; next: number } | undefined {
  if (pos >= buf.length) return undefined;
  const first = buf[pos]!;
  const len = 1 << (first >> 6);
  if (pos + len > buf.length) return undefined;
  let v = BigInt(first & 0x3f);
  for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(buf[pos + i]!);
  return { value: v, next: pos + len };
}

/** Longest possible header: type (1) + two 8-byte varints + flags. */
export const MAX_FLOW_HEADER_LENGTH = 18;

/** Decodes a flow header from the first bytes of a stream. */
export function decodeFlowHeader(buf: Uint8Array): FlowHeaderResult {
  const t = readVarint(buf, 0);
  if (!t) return { kind: "incomplete" };
  const type = Number(t.value);
  if (type === FlowType.UserDefined) return { kind: "invalid", reason: "user-defined flow (not MQTT)" };
  if (type < FlowType.Control || type > FlowType.ServerData) {
    return { kind: "invalid", reason: `unknown flow type 0x${type.toString(16)}` };
  }
  const id = readVarint(buf, t.next);
  if (!id) return { kind: "incomplete" };
  let pos = id.next;
  let expiry = 0n;
  if (type !== FlowType.Control) {
    const e = readVarint(buf, pos);
    if (!e) return { kind: "incomplete" };
    expiry = e.value;
    pos = e.next;
  }
  if (pos >= buf.length) return { kind: "incomplete" };
  const flags = buf[pos]!;
  return {
    kind: "header",
    header: { type, flowId: id.value, expiryInterval: expiry, flags, length: pos + 1 },
  };
}

function encodeVarint(v: bigint): number[] {
  if (v < 64n) return [Number(v)];
  if (v < 16384n) return [0x40 | Number(v >> 8n), Number(v & 0xffn)];
  if (v < 1073741824n) {
    return [
      0x80 | Number(v >> 24n),
      Number((v >> 16n) & 0xffn),
      Number((v >> 8n) & 0xffn),
      Number(v & 0xffn),
    ];
  }
  const out = [0xc0 | Number((v >> 56n) & 0x3fn)];
  for (let s = 48n; s >= 0n; s -= 8n) out.push(Number((v >> s) & 0xffn));
  return out;
}

/** Encodes a flow header (the client writes one on its uni data streams under ALPN "MQTT-next"). */
export function encodeFlowHeader(h: {
  type: number;
  flowId: bigint;
  expiryInterval?: bigint;
  flags?: number;
}): Uint8Array {
  const bytes = [...encodeVarint(BigInt(h.type)), ...encodeVarint(h.flowId)];
  if (h.type !== FlowType.Control) bytes.push(...encodeVarint(h.expiryInterval ?? 0n));
  bytes.push(h.flags ?? 0);
  return Uint8Array.from(bytes);
}
