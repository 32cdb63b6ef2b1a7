/**
 * A tiny in-memory "network" for stream tests: two StreamManagers exchange packets of frames;
 * each packet is delivered (and acknowledged at once) or lost (and reported lost), driving the
 * recovery-token paths the connection will use.
 */
import { TransportError } from "../../../src/quic/errors.js";
import type { StreamControlFrame, StreamFrameOut, StreamManager } from "../../../src/quic/streams/streams.js";

/** A sent frame's recovery token. */
export type Token =
  | { kind: "stream"; streamId: number; offset: number; length: number; fin: boolean }
  | { kind: "ctrl"; frame: StreamControlFrame };

/** Applies a frame to the receiving manager. */
export function deliver(m: StreamManager, f: StreamControlFrame | StreamFrameOut): void {
  switch (f.type) {
    case "stream":
      m.onStreamFrame(f.streamId, f.offset, f.data, f.fin);
      return;
    case "reset_stream":
      m.onResetStream(f.streamId, f.errorCode, f.finalSize);
      return;
    case "stop_sending":
      m.onStopSending(f.streamId, f.errorCode);
      return;
    case "max_data":
      m.onMaxData(f.maximum);
      return;
    case "max_stream_data":
      m.onMaxStreamData(f.streamId, f.maximum);
      return;
    case "max_streams":
      m.onMaxStreams(f.bidi, f.limit);
      return;
    case "data_blocked":
      m.onDataBlocked(f.limit);
      return;
    case "stream_data_blocked":
      m.onStreamDataBlocked(f.streamId, f.limit);
      return;
    case "streams_blocked":
      m.onStreamsBlocked(f.bidi, f.limit);
      return;
  }
}

/** Narrows a polled frame to a control frame (test helper). */
export function ctrl(f: StreamControlFrame | StreamFrameOut | undefined): StreamControlFrame {
  if (f === undefined || f.type === "stream") throw new Error(`expected a control frame, got ${f?.type}`);
  return f;
}

/** Frames of one packet, up to `size` bytes of STREAM frames (control frames count 16 each). */
export function buildPacket(m: StreamManager, size = 1200): Array<StreamControlFrame | StreamFrameOut> {
  const frames: Array<StreamControlFrame | StreamFrameOut> = [];
  let left = size;
  for (let f = m.pollControlFrame(); f; f = m.pollControlFrame()) {
    frames.push(f);
    left -= 16;
  }
  while (left > 8) {
    const f = m.pollStreamFrame(left);
    if (f === undefined) break;
    frames.push(f);
    left -= f.data.length + 12;
  }
  return frames;
}

function tokenOf(f: StreamControlFrame | StreamFrameOut): Token {
  return f.type === "stream"
    ? { kind: "stream", streamId: f.streamId, offset: f.offset, length: f.data.length, fin: f.fin }
    : { kind: "ctrl", frame: f };
}

/** Acknowledges or declares lost the frames of a packet on the sender. */
export function settle(m: StreamManager, tokens: Token[], acked: boolean): void {
  for (const t of tokens) {
    if (t.kind === "stream") {
      if (acked) m.onStreamFrameAcked(t.streamId, t.offset, t.length, t.fin);
      else m.onStreamFrameLost(t.streamId, t.offset, t.length, t.fin);
    } else if (acked) m.onControlFrameAcked(t.frame);
    else m.onControlFrameLost(t.frame);
  }
}

/**
 * Sends one packet from `from` to `to`. `lose` decides its fate. Returns the frames sent
 * (empty when there was nothing to send). Peer violations propagate as TransportError.
 */
export function transfer(
  from: StreamManager,
  to: StreamManager,
  lose = false,
  size = 1200,
): Array<StreamControlFrame | StreamFrameOut> {
  const frames = buildPacket(from, size);
  if (frames.length === 0) return frames;
  const tokens = frames.map(tokenOf);
  if (!lose) for (const f of frames) deliver(to, f);
  settle(from, tokens, !lose);
  return frames;
}

/** Error code of the TransportError thrown by `f`, or undefined. */
export function codeOf(f: () => void): number | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof TransportError) return e.errorCode;
    throw e;
  }
  return undefined;
}

/** A deterministic PRNG (mulberry32) for seeded loss patterns. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
