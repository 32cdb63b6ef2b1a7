import { describe, expect, it } from "vitest";
import { TransportError, TransportErrorCode } from "../../../src/quic/errors.js";
import {
  canReceive,
  canSend,
  checkPeerStreamFrame,
  isBidi,
  isClientInitiated,
  streamDirection,
  streamIdFor,
  streamIndex,
  streamInitiator,
} from "../../../src/quic/streams/stream-id.js";

function codeOf(f: () => void): number | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof TransportError) return e.errorCode;
    throw e;
  }
  return undefined;
}

describe("stream IDs (RFC 9000 §2.1)", () => {
  it("decodes the type bits of Table 1", () => {
    expect([0, 1, 2, 3].map(streamInitiator)).toEqual(["client", "server", "client", "server"]);
    expect([0, 1, 2, 3].map(streamDirection)).toEqual(["bidi", "bidi", "uni", "uni"]);
    expect(isClientInitiated(4)).toBe(true);
    expect(isBidi(6)).toBe(false);
  });

  it("builds the n-th ID of a type", () => {
    // §19.11: "a server that receives a unidirectional stream limit of 3 is permitted to open
    // streams 3, 7, and 11, but not stream 15".
    expect([0, 1, 2, 3].map((n) => streamIdFor("server", "uni", n))).toEqual([3, 7, 11, 15]);
    expect(streamIdFor("client", "bidi", 5)).toBe(20);
    expect(streamIndex(15)).toBe(3);
    const big = streamIdFor("server", "bidi", 2 ** 50);
    expect(streamIndex(big)).toBe(2 ** 50);
    expect(streamInitiator(big)).toBe("server");
  });

  it("tells which side may send and receive", () => {
    expect(canSend(2, "client")).toBe(true);
    expect(canReceive(2, "client")).toBe(false);
    expect(canSend(2, "server")).toBe(false);
    expect(canReceive(2, "server")).toBe(true);
    expect(canSend(0, "server") && canReceive(0, "server")).toBe(true);
  });

  it("rejects frames for the wrong direction with STREAM_STATE_ERROR (§19.4, §19.5, §19.8, §19.10, §19.13)", () => {
    // Client's own uni stream 2 is send-only for the client.
    expect(codeOf(() => checkPeerStreamFrame("client", 2, "stream"))).toBe(
      TransportErrorCode.STREAM_STATE_ERROR,
    );
    expect(codeOf(() => checkPeerStreamFrame("client", 2, "reset_stream"))).toBe(
      TransportErrorCode.STREAM_STATE_ERROR,
    );
    expect(codeOf(() => checkPeerStreamFrame("client", 2, "stream_data_blocked"))).toBe(
      TransportErrorCode.STREAM_STATE_ERROR,
    );
    expect(codeOf(() => checkPeerStreamFrame("client", 2, "stop_sending"))).toBeUndefined();
    // Server's uni stream 3 is receive-only for the client.
    expect(codeOf(() => checkPeerStreamFrame("client", 3, "stop_sending"))).toBe(
      TransportErrorCode.STREAM_STATE_ERROR,
    );
    expect(codeOf(() => checkPeerStreamFrame("client", 3, "max_stream_data"))).toBe(
      TransportErrorCode.STREAM_STATE_ERROR,
    );
    expect(codeOf(() => checkPeerStreamFrame("client", 3, "stream"))).toBeUndefined();
    for (const id of [0, 1])
      for (const k of ["stream", "stop_sending"] as const)
        expect(codeOf(() => checkPeerStreamFrame("server", id, k))).toBeUndefined();
  });
});
