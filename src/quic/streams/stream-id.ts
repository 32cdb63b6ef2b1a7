/**
 * Stream identifiers, RFC 9000 §2.1.
 *
 * A stream ID is a 62-bit integer. Its two least significant bits give the stream type:
 * bit 0x01 is the initiator (0 client, 1 server) and bit 0x02 the direction (0 bidirectional,
 * 1 unidirectional). The n-th stream of a type (n counted from 0) has ID `4 * n + type`.
 *
 * IDs are plain numbers (the frame decoder rejects varints above 2^53-1), so all arithmetic here
 * uses `%` and `Math.floor`, never 32-bit bitwise operators.
 */

import { TransportError, TransportErrorCode } from "../errors.js";
import { FrameType } from "../frames.js";

/** Which endpoint an ID or a connection belongs to. */
export type Role = "client" | "server";

/** Direction of a stream: bidirectional or unidirectional (RFC 9000 §2.1). */
export type StreamDirection = "bidi" | "uni";

/** The four stream types, RFC 9000 §2.1 Table 1. */
export const StreamType = {
  CLIENT_BIDI: 0x00,
  SERVER_BIDI: 0x01,
  CLIENT_UNI: 0x02,
  SERVER_UNI: 0x03,
} as const;

/** Largest cumulative stream count a MAX_STREAMS frame or parameter may carry (RFC 9000 §4.6). */
export const MAX_STREAM_COUNT = 2 ** 60;

/** Frame types (RFC 9000 §19) named in the `frameType` of stream-related errors: the codec's table. */
export const StreamFrameType = FrameType;

/** The stream type bits (0-3) of `id`, RFC 9000 §2.1. */
export function streamType(id: number): number {
  return id % 4;
}

/** True for a client-initiated stream (initiator bit 0x01 clear), RFC 9000 §2.1. */
export function isClientInitiated(id: number): boolean {
  return id % 2 === 0;
}

/** The endpoint that opened stream `id`, RFC 9000 §2.1. */
export function streamInitiator(id: number): Role {
  return id % 2 === 0 ? "client" : "server";
}

/** True for a bidirectional stream (direction bit 0x02 clear), RFC 9000 §2.1. */
export function isBidi(id: number): boolean {
  return id % 4 < 2;
}

/** Direction of stream `id`, RFC 9000 §2.1. */
export function streamDirection(id: number): StreamDirection {
  return isBidi(id) ? "bidi" : "uni";
}

/** True when `role` opened stream `id` (a locally-initiated stream from `role`'s view). */
export function isLocallyInitiated(id: number, role: Role): boolean {
  return streamInitiator(id) === role;
}

/** Zero-based sequence number of `id` among the streams of its type: `floor(id / 4)`. */
export function streamIndex(id: number): number {
  return Math.floor(id / 4);
}

/**
 * ID of the `index`-th (from 0) stream opened by `initiator` in direction `dir`, RFC 9000 §2.1.
 * @example streamIdFor("server", "uni", 2) === 11
 */
export function streamIdFor(initiator: Role, dir: StreamDirection, index: number): number {
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`invalid stream index ${index}`);
  return index * 4 + (initiator === "server" ? 1 : 0) + (dir === "uni" ? 2 : 0);
}

/** True when `role` may send data on stream `id` (not a peer-initiated unidirectional stream). */
export function canSend(id: number, role: Role): boolean {
  return isBidi(id) || isLocallyInitiated(id, role);
}

/** True when `role` may receive data on stream `id` (not a locally-initiated unidirectional stream). */
export function canReceive(id: number, role: Role): boolean {
  return isBidi(id) || !isLocallyInitiated(id, role);
}

/**
 * Stream-related frames a peer may send, named by what they act on from the receiver's view:
 * - `stream`, `reset_stream`, `stream_data_blocked` concern the peer's sending part, so they need
 *   a stream we can receive on (RFC 9000 §19.8, §19.4, §19.13);
 * - `stop_sending`, `max_stream_data` concern our sending part, so they need a stream we can
 *   send on (RFC 9000 §19.5, §19.10).
 */
export type PeerStreamFrame =
  | "stream"
  | "reset_stream"
  | "stream_data_blocked"
  | "stop_sending"
  | "max_stream_data";

function frameTypeOf(kind: PeerStreamFrame): number {
  switch (kind) {
    case "stream":
      return StreamFrameType.STREAM;
    case "reset_stream":
      return StreamFrameType.RESET_STREAM;
    case "stream_data_blocked":
      return StreamFrameType.STREAM_DATA_BLOCKED;
    case "stop_sending":
      return StreamFrameType.STOP_SENDING;
    case "max_stream_data":
      return StreamFrameType.MAX_STREAM_DATA;
  }
}

/**
 * Checks that a frame of kind `kind` received by `role` may reference stream `id` given only the
 * ID's type bits; throws STREAM_STATE_ERROR otherwise:
 * - STREAM / RESET_STREAM / STREAM_DATA_BLOCKED on our own unidirectional (send-only) stream
 *   (RFC 9000 §19.8, §19.4, §19.13);
 * - STOP_SENDING / MAX_STREAM_DATA on a peer's unidirectional (receive-only) stream
 *   (RFC 9000 §19.5, §19.10).
 *
 * The checks that need connection state (a locally-initiated stream not yet opened, a peer
 * stream beyond our MAX_STREAMS) live in the `StreamManager`.
 */
export function checkPeerStreamFrame(role: Role, id: number, kind: PeerStreamFrame): void {
  const needsReceive = kind === "stream" || kind === "reset_stream" || kind === "stream_data_blocked";
  const ok = needsReceive ? canReceive(id, role) : canSend(id, role);
  if (!ok) {
    throw new TransportError(
      TransportErrorCode.STREAM_STATE_ERROR,
      `${kind.toUpperCase()} frame for ${needsReceive ? "send-only" : "receive-only"} stream ${id}`,
      frameTypeOf(kind),
    );
  }
}
