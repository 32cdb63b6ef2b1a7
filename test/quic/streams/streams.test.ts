import { describe, expect, it } from "vitest";
import { MquicttError } from "../../../src/errors.js";
import { type TransportError, TransportErrorCode } from "../../../src/quic/errors.js";
import {
  type StreamControlFrame,
  type StreamEvent,
  type StreamFrameOut,
  StreamManager,
  type StreamManagerOptions,
  type StreamTransportLimits,
} from "../../../src/quic/streams/streams.js";
import { concat, toHex } from "../../../src/util/bytes.js";
import { buildPacket, codeOf, ctrl, deliver, rng, settle, transfer } from "./harness.js";

const limits = (over: Partial<StreamTransportLimits> = {}): StreamTransportLimits => ({
  initialMaxData: 1 << 20,
  initialMaxStreamDataBidiLocal: 1 << 16,
  initialMaxStreamDataBidiRemote: 1 << 16,
  initialMaxStreamDataUni: 1 << 16,
  initialMaxStreamsBidi: 10,
  initialMaxStreamsUni: 10,
  ...over,
});

function pair(
  client: Partial<StreamTransportLimits> = {},
  server: Partial<StreamTransportLimits> = {},
  extra: Partial<StreamManagerOptions> = {},
): { c: StreamManager; s: StreamManager } {
  const cl = limits(client);
  const sl = limits(server);
  return {
    c: new StreamManager({ role: "client", local: cl, peer: sl, ...extra }),
    s: new StreamManager({ role: "server", local: sl, peer: cl, ...extra }),
  };
}

function events(m: StreamManager): StreamEvent[] {
  const out: StreamEvent[] = [];
  for (let e = m.pollEvent(); e; e = m.pollEvent()) out.push(e);
  return out;
}

/** Reads everything readable on stream `id`. */
function readAll(m: StreamManager, id: number, now = 0): { data: Uint8Array; fin: boolean } {
  const parts: Uint8Array[] = [];
  let fin = false;
  for (let r = m.read(id, now); r; r = m.read(id, now)) {
    parts.push(r.data);
    if (r.fin) fin = true;
  }
  return { data: concat(...parts), fin };
}

/** Exchanges packets both ways until neither side has anything to send. */
function settleAll(c: StreamManager, s: StreamManager, maxRounds = 1000): void {
  for (let i = 0; i < maxRounds; i++) {
    const a = transfer(c, s);
    const b = transfer(s, c);
    if (a.length === 0 && b.length === 0) return;
  }
  throw new Error("did not settle");
}

const bytes = (n: number, seed = 0) => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);

describe("StreamManager: data transfer and states (RFC 9000 §3)", () => {
  it("walks both parts through their states to the end and forgets the stream", () => {
    const { c, s } = pair();
    const id = c.openStream(true)!;
    expect(id).toBe(0);
    const cs = c.getStream(id)!;
    expect(cs.send?.state).toBe("ready");
    c.write(id, bytes(3000));
    c.finish(id);
    // One packet: Send (not all data fits).
    transfer(c, s, false);
    expect(cs.send?.state).toBe("send");
    expect(events(s)).toEqual([
      { type: "opened", streamId: 0, bidi: true },
      { type: "readable", streamId: 0 },
    ]);
    const ss = s.getStream(0)!;
    expect(ss.recv?.state).toBe("recv");
    transfer(c, s, false);
    transfer(c, s, true); // the last packet, with the FIN, is lost
    expect(cs.send?.state).toBe("data_sent");
    expect(ss.recv?.state).toBe("recv");
    transfer(c, s, false); // retransmission
    expect(ss.recv?.state).toBe("data_recvd");
    expect(cs.send?.state).toBe("data_recvd");
    const got = readAll(s, 0);
    expect(got.fin).toBe(true);
    expect(got.data).toEqual(bytes(3000));
    expect(ss.recv?.state).toBe("data_read");
    // The server answers and finishes its side.
    s.write(0, bytes(10, 1));
    s.finish(0);
    settleAll(c, s);
    expect(s.streamCount).toBe(0); // both parts terminal: forgotten; MAX_STREAMS raised
    expect(s.peerStreamLimit(true)).toBe(11);
    const back = readAll(c, 0);
    expect(back).toEqual({ data: bytes(10, 1), fin: true });
    expect(c.streamCount).toBe(0);
  });

  it("delivers an empty stream (FIN only)", () => {
    const { c, s } = pair();
    const id = c.openStream(false)!;
    expect(id).toBe(2);
    c.finish(id);
    transfer(c, s);
    expect(events(s).map((e) => e.type)).toEqual(["opened", "readable"]);
    expect(s.read(2, 0)).toEqual({ data: new Uint8Array(0), fin: true });
    expect(s.read(2, 0)).toBeUndefined();
    expect(s.streamCount).toBe(0);
    expect(c.streamCount).toBe(0);
    // A forgotten stream: reading/stopping/resetting are harmless, writing is an error.
    s.stopSending(2, 1);
    c.resetStream(2, 1);
    expect(c.writable(2)).toBe(0);
    expect(() => c.write(2, bytes(1))).toThrow(/closed or unknown/);
    expect(buildPacket(c)).toEqual([]);
    expect(buildPacket(s)).toEqual([{ type: "max_streams", bidi: false, limit: 11 }]); // the stream's credit back
  });

  it("rejects application misuse with stable codes", () => {
    const { c } = pair();
    const uni = c.openStream(false)!;
    expect(() => c.read(uni, 0)).toThrow(MquicttError);
    expect(() => c.write(99, bytes(1))).toThrow(/closed or unknown/);
    c.finish(uni);
    try {
      c.write(uni, bytes(1));
      expect.unreachable();
    } catch (e) {
      expect((e as MquicttError).code).toBe("ERR_QUIC_STREAM_STATE");
    }
  });
});

describe("StreamManager: reset and STOP_SENDING (RFC 9000 §3.5, §19.4, §19.5)", () => {
  it("resets a stream: data is no longer sent, the peer learns the code, states move on", () => {
    const { c, s } = pair();
    const id = c.openStream(true)!;
    c.write(id, bytes(5000));
    transfer(c, s); // ~1200 bytes arrive
    c.resetStream(id, 42);
    const cs = c.getStream(id)!;
    expect(cs.send?.state).toBe("reset_sent");
    const frames = buildPacket(c);
    expect(frames).toHaveLength(1);
    const reset = frames[0];
    expect(reset.type).toBe("reset_stream");
    if (reset.type !== "reset_stream") return;
    expect(reset.errorCode).toBe(42);
    expect(reset.finalSize).toBe(cs.send!.buffer.sentOffset);
    // The reset is lost: it is sent again, and still no data.
    settle(c, [{ kind: "ctrl", frame: reset }], false);
    const again = buildPacket(c);
    expect(again).toEqual([reset]);
    for (const f of again) deliver(s, f);
    settle(c, [{ kind: "ctrl", frame: reset }], true);
    expect(cs.send?.state).toBe("reset_recvd");
    const ss = s.getStream(id)!;
    expect(ss.recv?.state).toBe("reset_recvd");
    expect(events(s)).toContainEqual({ type: "reset", streamId: id, errorCode: 42 });
    expect(ss.recv?.state).toBe("reset_read");
    expect(() => c.write(id, bytes(1))).toThrow(/reset with code 42/);
    expect(s.read(id, 0)).toBeUndefined();
    // The reset's final size counted in the server's connection flow control.
    expect(s.connectionWindow.received).toBe(reset.finalSize);
    expect(s.connectionWindow.consumed).toBe(reset.finalSize);
  });

  it("answers STOP_SENDING with RESET_STREAM carrying the same code", () => {
    const { c, s } = pair();
    const id = c.openStream(true)!;
    c.write(id, bytes(100));
    transfer(c, s);
    events(s);
    s.stopSending(id, 7);
    const out = buildPacket(s);
    expect(out).toEqual([{ type: "stop_sending", streamId: id, errorCode: 7 }]);
    for (const f of out) deliver(c, f);
    expect(events(c)).toEqual([{ type: "stop_sending", streamId: id, errorCode: 7 }]);
    expect(c.getStream(id)?.send?.state).toBe("reset_sent");
    const back = buildPacket(c);
    expect(back).toEqual([{ type: "reset_stream", streamId: id, errorCode: 7, finalSize: 100 }]);
  });

  it("resends a lost STOP_SENDING only while it is still useful", () => {
    const { c, s } = pair();
    const id = c.openStream(true)!;
    c.write(id, bytes(10));
    transfer(c, s);
    s.stopSending(id, 3);
    const ss = ctrl(buildPacket(s)[0]);
    settle(s, [{ kind: "ctrl", frame: ss }], false);
    expect(buildPacket(s)).toEqual([ss]);
    // Now all data and FIN arrive: Data Recvd, no more STOP_SENDING needed.
    c.finish(id);
    transfer(c, s);
    settle(s, [{ kind: "ctrl", frame: ss }], false);
    expect(buildPacket(s)).toEqual([]);
  });

  it("counts data discarded after STOP_SENDING in connection flow control", () => {
    const { c, s } = pair({}, { initialMaxData: 4000 });
    const id = c.openStream(false)!;
    c.write(id, bytes(3000));
    transfer(c, s);
    transfer(c, s);
    transfer(c, s);
    s.stopSending(id, 1);
    // 3000 of 4000 consumed (discarded): the server raises MAX_DATA.
    const frames = buildPacket(s);
    expect(frames).toContainEqual({ type: "max_data", maximum: 3000 + 4000 });
  });
});

describe("StreamManager: stream limits (RFC 9000 §4.6, §19.11, §19.14)", () => {
  it("refuses local streams beyond the peer's MAX_STREAMS, sends STREAMS_BLOCKED once per limit", () => {
    const { c, s } = pair({}, { initialMaxStreamsBidi: 2 });
    expect(c.openStream(true)).toBe(0);
    expect(c.openStream(true)).toBe(4);
    expect(c.openStream(true)).toBeUndefined();
    expect(c.openStream(true)).toBeUndefined();
    expect(c.openable(true)).toBe(0);
    const frames = buildPacket(c);
    expect(frames).toEqual([{ type: "streams_blocked", bidi: true, limit: 2 }]);
    expect(buildPacket(c)).toEqual([]); // once per limit
    // Lost: resent while still blocked at that limit.
    settle(c, [{ kind: "ctrl", frame: ctrl(frames[0]) }], false);
    expect(buildPacket(c)).toEqual(frames);
    // The server raises the limit: the client may open again.
    deliver(c, { type: "max_streams", bidi: true, limit: 3 });
    expect(events(c)).toEqual([{ type: "streams_available", bidi: true }]);
    expect(c.openStream(true)).toBe(8);
    deliver(c, { type: "max_streams", bidi: true, limit: 1 }); // smaller: ignored
    expect(c.openable(true)).toBe(0);
    void s;
  });

  it("rejects a peer stream beyond our limit with STREAM_LIMIT_ERROR", () => {
    const { s } = pair({}, { initialMaxStreamsBidi: 2, initialMaxStreamsUni: 0 });
    expect(codeOf(() => s.onStreamFrame(8, 0, bytes(1), false))).toBe(TransportErrorCode.STREAM_LIMIT_ERROR);
    expect(codeOf(() => s.onStreamFrame(2, 0, bytes(1), false))).toBe(TransportErrorCode.STREAM_LIMIT_ERROR);
    expect(codeOf(() => s.onStreamFrame(4, 0, bytes(1), false))).toBeUndefined();
  });

  it("opens all lower streams of a type when a higher one is referenced (§3.2)", () => {
    const { s } = pair();
    s.onStreamFrame(8, 0, bytes(5), false);
    expect(events(s)).toEqual([
      { type: "opened", streamId: 0, bidi: true },
      { type: "opened", streamId: 4, bidi: true },
      { type: "opened", streamId: 8, bidi: true },
      { type: "readable", streamId: 8 },
    ]);
    expect(s.streamCount).toBe(3);
    // MAX_STREAM_DATA / STOP_SENDING also open a peer's bidi stream.
    s.onStopSending(12, 5);
    expect(events(s).map((e) => e.type)).toEqual(["opened", "stop_sending"]);
  });

  it("rejects frames for our streams not yet opened and for the wrong direction (STREAM_STATE_ERROR)", () => {
    const { c, s } = pair();
    expect(codeOf(() => c.onStreamFrame(0, 0, bytes(1), false))).toBe(TransportErrorCode.STREAM_STATE_ERROR);
    expect(codeOf(() => c.onMaxStreamData(4, 100))).toBe(TransportErrorCode.STREAM_STATE_ERROR);
    const uni = c.openStream(false)!;
    expect(codeOf(() => c.onStreamFrame(uni, 0, bytes(1), false))).toBe(
      TransportErrorCode.STREAM_STATE_ERROR,
    );
    expect(codeOf(() => c.onResetStream(uni, 0, 0))).toBe(TransportErrorCode.STREAM_STATE_ERROR);
    expect(codeOf(() => s.onStopSending(uni, 0))).toBe(TransportErrorCode.STREAM_STATE_ERROR);
    expect(codeOf(() => s.onMaxStreamData(uni, 10))).toBe(TransportErrorCode.STREAM_STATE_ERROR);
  });

  it("rejects MAX_STREAMS / STREAMS_BLOCKED above 2^60 with FRAME_ENCODING_ERROR", () => {
    const { c } = pair();
    expect(codeOf(() => c.onMaxStreams(true, 2 ** 61))).toBe(TransportErrorCode.FRAME_ENCODING_ERROR);
    expect(codeOf(() => c.onStreamsBlocked(false, 2 ** 61))).toBe(TransportErrorCode.FRAME_ENCODING_ERROR);
  });

  it("raises MAX_STREAMS as peer streams finish, and forgets them", () => {
    const { c, s } = pair({}, { initialMaxStreamsUni: 3 });
    let opened = 0;
    for (let round = 0; round < 20; round++) {
      for (let id = c.openStream(false); id !== undefined; id = c.openStream(false)) {
        c.write(id, bytes(50, opened++));
        c.finish(id);
      }
      settleAll(c, s);
      for (const e of events(s)) if (e.type === "readable") readAll(s, e.streamId);
      settleAll(c, s);
      events(c);
    }
    expect(opened).toBeGreaterThan(20);
    expect(s.streamCount).toBe(0);
    expect(c.streamCount).toBe(0);
    expect(s.peerStreamLimit(false)).toBe(3 + opened);
  });
});

describe("StreamManager: flow control (RFC 9000 §4)", () => {
  it("closes with FLOW_CONTROL_ERROR on stream and connection limit violations", () => {
    const { s } = pair({}, { initialMaxStreamDataBidiRemote: 100, initialMaxData: 150 });
    expect(codeOf(() => s.onStreamFrame(0, 50, bytes(51), false))).toBe(
      TransportErrorCode.FLOW_CONTROL_ERROR,
    );
    s.onStreamFrame(4, 0, bytes(100), false);
    // Stream 8 is within its own limit but the connection total would be 151.
    expect(codeOf(() => s.onStreamFrame(8, 0, bytes(51), false))).toBe(TransportErrorCode.FLOW_CONTROL_ERROR);
    // RESET_STREAM's final size is checked the same way.
    const err = (() => {
      try {
        s.onResetStream(12, 0, 101);
      } catch (e) {
        return e as TransportError;
      }
    })();
    expect(err?.errorCode).toBe(TransportErrorCode.FLOW_CONTROL_ERROR);
    expect(err?.frameType).toBe(0x04);
  });

  it("closes with FINAL_SIZE_ERROR when a reset contradicts the known size (§4.5)", () => {
    const { s } = pair();
    s.onStreamFrame(0, 0, bytes(10), true);
    expect(codeOf(() => s.onResetStream(0, 0, 11))).toBe(TransportErrorCode.FINAL_SIZE_ERROR);
    s.onStreamFrame(4, 0, bytes(10), false);
    expect(codeOf(() => s.onResetStream(4, 0, 9))).toBe(TransportErrorCode.FINAL_SIZE_ERROR);
    s.onResetStream(8, 0, 20);
    expect(codeOf(() => s.onStreamFrame(8, 15, bytes(10), false))).toBe(TransportErrorCode.FINAL_SIZE_ERROR);
  });

  it("sends STREAM_DATA_BLOCKED once per limit and resumes on MAX_STREAM_DATA", () => {
    const { c, s } = pair({}, { initialMaxStreamDataBidiRemote: 1000 });
    const id = c.openStream(true)!;
    c.write(id, bytes(3000));
    transfer(c, s); // 1000 bytes (credit) as one frame
    const f = buildPacket(c);
    expect(f).toEqual([{ type: "stream_data_blocked", streamId: id, limit: 1000 }]);
    expect(buildPacket(c)).toEqual([]);
    expect(c.hasPendingFrames()).toBe(false);
    // The receiver reads: it advertises more credit.
    events(s);
    expect(readAll(s, id).data.length).toBe(1000);
    const upd = buildPacket(s);
    expect(upd).toContainEqual({ type: "max_stream_data", streamId: id, maximum: 2000 });
    for (const x of upd) deliver(c, x);
    expect(c.hasPendingFrames()).toBe(true);
    const next = buildPacket(c, 5000);
    expect(next.map((x) => (x.type === "stream" ? x.data.length : x.type))).toEqual([1000]);
    expect(buildPacket(c)).toEqual([{ type: "stream_data_blocked", streamId: id, limit: 2000 }]);
  });

  it("sends DATA_BLOCKED when the connection credit runs out and resumes on MAX_DATA", () => {
    const { c, s } = pair({}, { initialMaxData: 1500 });
    const a = c.openStream(true)!;
    const b = c.openStream(true)!;
    c.write(a, bytes(1000));
    c.write(b, bytes(1000));
    const p1 = buildPacket(c, 3000);
    expect(
      p1
        .filter((x) => x.type === "stream")
        .reduce((n, x) => n + (x.type === "stream" ? x.data.length : 0), 0),
    ).toBe(1500);
    const p2 = buildPacket(c);
    expect(p2).toEqual([{ type: "data_blocked", limit: 1500 }]);
    deliver(c, { type: "max_data", maximum: 3000 });
    const p3 = buildPacket(c);
    expect(p3.map((x) => x.type)).toEqual(["stream"]);
    void s;
  });

  it("resends only the latest MAX_DATA after a loss", () => {
    const { c, s } = pair({}, { initialMaxData: 2000, initialMaxStreamDataBidiRemote: 100_000 });
    const id = c.openStream(true)!;
    c.write(id, bytes(2000));
    transfer(c, s, false, 5000);
    events(s);
    s.read(id, 0, 1000);
    const first = ctrl(buildPacket(s).find((x) => x.type === "max_data"));
    expect(first).toEqual({ type: "max_data", maximum: 3000 });
    s.read(id, 60_000, 1000); // slowly: no window growth
    const second = ctrl(buildPacket(s).find((x) => x.type === "max_data"));
    expect(second).toEqual({ type: "max_data", maximum: 4000 });
    s.onControlFrameLost(first);
    expect(buildPacket(s)).toEqual([]);
    s.onControlFrameLost(second);
    expect(buildPacket(s)).toEqual([second]);
  });

  it("auto-tunes the stream window under fast reading", () => {
    const { c, s } = pair(
      {},
      { initialMaxStreamDataBidiRemote: 10_000, initialMaxData: 15_000 },
      { maxStreamWindow: 160_000, maxConnectionWindow: 240_000 },
    );
    s.setRtt(50);
    const id = c.openStream(true)!;
    let now = 0;
    let got = 0;
    const total = 500_000;
    let written = 0;
    while (got < total) {
      now += 1;
      if (written < total) written += c.write(id, bytes(Math.min(20_000, total - written), written));
      transfer(c, s, false, 4000);
      got += readAll(s, id, now).data.length;
      transfer(s, c);
      if (now > 10_000) throw new Error("stuck");
    }
    const w = s.getStream(id)?.recv?.window.window ?? 0;
    expect(w).toBe(160_000);
    expect(s.connectionWindow.window).toBeGreaterThanOrEqual(160_000);
  });
});

describe("StreamManager: scheduling and cleanup", () => {
  it("alternates frames between busy streams (round robin)", () => {
    const { c } = pair();
    const a = c.openStream(true)!;
    const b = c.openStream(true)!;
    const u = c.openStream(false)!;
    c.write(a, bytes(10_000));
    c.write(b, bytes(10_000));
    const order: number[] = [];
    for (let i = 0; i < 6; i++) order.push(c.pollStreamFrame(1000)!.streamId);
    expect(order).toEqual([a, b, a, b, a, b]);
    c.write(u, bytes(100));
    const next: number[] = [];
    for (let i = 0; i < 4; i++) next.push(c.pollStreamFrame(1000)!.streamId);
    expect(next).toEqual([a, b, u, a]);
  });

  it("gives a stream with lost data its turn without starving others", () => {
    const { c } = pair();
    const a = c.openStream(true)!;
    const b = c.openStream(true)!;
    c.write(a, bytes(10_000));
    c.write(b, bytes(10_000));
    const fa = c.pollStreamFrame(1000)!;
    c.pollStreamFrame(1000);
    c.onStreamFrameLost(a, fa.offset, fa.data.length, false);
    const f = c.pollStreamFrame(1000)!;
    expect(f.streamId).toBe(a);
    expect(f.offset).toBe(0); // lost data first
    expect(c.pollStreamFrame(1000)!.streamId).toBe(b);
  });

  it("fits frames in the space given, counting the frame header", () => {
    const { c } = pair();
    const a = c.openStream(true)!;
    c.write(a, bytes(10_000));
    for (const max of [5, 20, 100, 1200]) {
      const f = c.pollStreamFrame(max)!;
      // type + id + offset + length varints + data
      expect(f.data.length).toBeGreaterThan(0);
      expect(
        f.data.length + 1 + 1 + (f.offset ? (f.offset < 64 ? 1 : 2) : 0) + (max < 64 ? 1 : 2),
      ).toBeLessThanOrEqual(max);
    }
    expect(c.pollStreamFrame(2)).toBeUndefined();
  });

  it("emits writable once acknowledgements free space after a short write", () => {
    const { c, s } = pair({}, {}, { sendBufferSize: 2000 });
    const id = c.openStream(true)!;
    expect(c.write(id, bytes(3000))).toBe(2000);
    expect(c.writable(id)).toBe(0);
    transfer(c, s);
    expect(events(c)).toEqual([{ type: "writable", streamId: id }]);
    expect(c.writable(id)).toBeGreaterThan(0);
  });

  it("transfers many streams intact through random loss, then forgets them all (seeded)", () => {
    const rounds: number[] = [];
    for (const seed of [1, 2, 3, 4, 5]) {
      const rand = rng(seed);
      const { c, s } = pair(
        { initialMaxStreamsBidi: 4 },
        {
          initialMaxStreamsBidi: 4,
          initialMaxStreamsUni: 4,
          initialMaxStreamDataBidiRemote: 3000,
          initialMaxData: 8000,
        },
        { sendBufferSize: 4000 },
      );
      const payload = new Map<number, Uint8Array>();
      const pendingWrite = new Map<number, number>();
      const received = new Map<number, Uint8Array[]>();
      const finished = new Set<number>();
      let toOpen = 30;
      let now = 0;
      for (let round = 0; round < 5000 && finished.size < 30; round++) {
        now += 1;
        while (toOpen > 0) {
          const id = c.openStream(toOpen % 2 === 0);
          if (id === undefined) break;
          toOpen--;
          const data = bytes(Math.floor(rand() * 9000), id);
          payload.set(id, data);
          pendingWrite.set(id, 0);
        }
        for (const [id, at] of pendingWrite) {
          const data = payload.get(id)!;
          const n = at < data.length ? c.write(id, data.subarray(at)) : 0;
          if (at + n === data.length) {
            c.finish(id);
            pendingWrite.delete(id);
          } else pendingWrite.set(id, at + n);
        }
        transfer(c, s, rand() < 0.2, 1200);
        for (const e of events(s))
          if (e.type === "readable") {
            for (let r = s.read(e.streamId, now); r; r = s.read(e.streamId, now)) {
              const list = received.get(e.streamId) ?? [];
              list.push(r.data);
              received.set(e.streamId, list);
              if (r.fin) {
                finished.add(e.streamId);
                if (e.streamId % 4 === 0) s.finish(e.streamId); // close our side of a bidi stream
              }
            }
          }
        // Streams that stayed readable (no new event) are read too.
        for (const id of [...received.keys()]) {
          if (finished.has(id) || !s.getStream(id)) continue;
          for (let r = s.read(id, now); r; r = s.read(id, now)) {
            received.get(id)!.push(r.data);
            if (r.fin) {
              finished.add(id);
              if (id % 4 === 0) s.finish(id);
            }
          }
        }
        transfer(s, c, rand() < 0.2, 1200);
        // The client reads the server's (empty) side of bidi streams to its FIN.
        for (const e of events(c)) if (e.type === "readable") readAll(c, e.streamId, now);
      }
      expect(finished.size).toBe(30);
      rounds.push(now);
      for (const [id, data] of payload) expect(toHex(concat(...(received.get(id) ?? [])))).toBe(toHex(data));
      // Let the last acknowledgements through.
      settleAll(c, s);
      expect(c.streamCount).toBe(0);
      expect(s.streamCount).toBe(0);
      expect(s.peerStreamLimit(true)).toBe(4 + 15);
      expect(s.peerStreamLimit(false)).toBe(4 + 15);
    }
    expect(Math.max(...rounds)).toBeLessThan(1000);
  });
});

describe("StreamManager: reordering and duplication (seeded)", () => {
  it("survives reordered, duplicated and lost packets in both directions", () => {
    type InFlight = { frames: Array<StreamControlFrame | StreamFrameOut>; settled: boolean };
    for (const seed of [11, 12, 13, 14]) {
      const rand = rng(seed);
      const { c, s } = pair(
        {},
        { initialMaxStreamsUni: 3, initialMaxData: 20_000 },
        { sendBufferSize: 5000 },
      );
      const queues = new Map<StreamManager, InFlight[]>([
        [c, []],
        [s, []],
      ]);
      const peer = (m: StreamManager) => (m === c ? s : c);
      const tokensOf = (frames: InFlight["frames"]) =>
        frames.map((f) =>
          f.type === "stream"
            ? {
                kind: "stream" as const,
                streamId: f.streamId,
                offset: f.offset,
                length: f.data.length,
                fin: f.fin,
              }
            : { kind: "ctrl" as const, frame: f },
        );
      const payloads = new Map<number, Uint8Array>();
      const got = new Map<number, Uint8Array[]>();
      const done = new Set<number>();
      let next = 0;
      for (let round = 0; round < 20_000 && done.size < 12; round++) {
        if (next < 12) {
          const id = c.openStream(false);
          if (id !== undefined) {
            const data = bytes(Math.floor(rand() * 4000), next++);
            payloads.set(id, data);
            expect(c.write(id, data)).toBe(data.length);
            c.finish(id);
          }
        }
        for (const m of [c, s]) {
          const frames = buildPacket(m, 900);
          if (frames.length > 0) queues.get(m)!.push({ frames, settled: false });
          const q = queues.get(m)!;
          // Deliver a random packet from the queue (reordering); sometimes drop or duplicate.
          if (q.length > 0 && rand() < 0.7) {
            const i = Math.floor(rand() * q.length);
            const p = q[i];
            const r = rand();
            if (r < 0.15) {
              q.splice(i, 1);
              if (!p.settled) settle(m, tokensOf(p.frames), false);
            } else {
              for (const f of p.frames) deliver(peer(m), f);
              if (!p.settled) settle(m, tokensOf(p.frames), true);
              p.settled = true;
              if (r > 0.3) q.splice(i, 1); // else it stays queued: a later duplicate
            }
          }
        }
        for (const e of events(s)) {
          if (e.type !== "readable") continue;
          for (let r = s.read(e.streamId, round); r; r = s.read(e.streamId, round)) {
            const list = got.get(e.streamId) ?? [];
            list.push(r.data);
            got.set(e.streamId, list);
            if (r.fin) done.add(e.streamId);
          }
        }
        events(c);
      }
      expect(done.size).toBe(12);
      for (const [id, data] of payloads) expect(toHex(concat(...(got.get(id) ?? [])))).toBe(toHex(data));
      expect(s.streamCount).toBe(0);
    }
  });
});
