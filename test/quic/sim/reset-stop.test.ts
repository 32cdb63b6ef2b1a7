/**
 * RESET_STREAM and STOP_SENDING in both directions (RFC 9000 §3.1-§3.5, §19.4, §19.5): the peer
 * learns the application error code, STOP_SENDING is answered with a RESET_STREAM carrying the
 * same code, and the other streams (and the other direction of the same stream) carry on.
 */
import { describe, expect, it } from "vitest";
import type { Connection, ConnectionEvent } from "../../../src/quic/connection.js";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, drive, makeData, provider, sha256 } from "./helpers.js";

/** Reads a stream to its end into one buffer (undefined until the FIN). */
class Reader {
  private parts: Uint8Array[] = [];
  fin = false;
  constructor(
    private readonly conn: () => Connection | undefined,
    private readonly events: ConnectionEvent[],
    readonly id: number,
  ) {}
  pump(now: number): number {
    const c = this.conn();
    if (!c || this.fin) return 0;
    if (!this.events.some((e) => e.type === "stream_opened" && e.streamId === this.id)) {
      // Our own stream (the peer's reply direction), or not yet opened by the peer.
      if (!c.streams.getStream(this.id)) return 0;
    }
    let n = 0;
    for (let r = c.read(now, this.id); r; r = c.read(now, this.id)) {
      if (r.data.length) this.parts.push(r.data.slice());
      n++;
      if (r.fin) {
        this.fin = true;
        break;
      }
    }
    return n;
  }
  get bytes(): Uint8Array {
    return Buffer.concat(this.parts);
  }
}

const ev = (events: ConnectionEvent[], type: ConnectionEvent["type"], streamId: number) =>
  events.filter((e) => e.type === type && "streamId" in e && e.streamId === streamId);

describe("stream reset and stop-sending", () => {
  for (const loss of [0, 0.1]) {
    it(`delivers codes in both directions and leaves other streams intact (loss ${loss * 100}%)`, () =>
      withSeed(71, (seed) => {
        const p = new Pair(provider, { seed, link: { latency: 10, loss } });
        expect(p.handshake(30_000)).toBe(true);
        const c = p.clientConn;
        const payload = makeData(300_000, seed);
        // A: client resets its sending part. B: server asks the client to stop sending.
        // C: server resets its reply direction. D: client asks the server to stop sending.
        // E: untouched, both directions. U: a client uni stream the client resets.
        const [A, B, C, D, E] = [0, 1, 2, 3, 4].map(() => c.openStream(true)!);
        const U = c.openStream(false)!;
        for (const id of [A, B, C, D, E, U]) c.write(id, payload.subarray(0, 100_000));
        p.touch(c);
        // Wait until the server saw every stream, then let it write on C, D and E.
        expect(
          p.run(
            () => [A, B, C, D, E, U].every((id) => ev(p.serverEvents, "stream_opened", id).length > 0),
            10_000,
          ),
        ).toBe(true);
        const s = p.serverConn!;
        for (const id of [C, D, E]) s.write(id, payload.subarray(0, 100_000));
        c.resetStream(A, 0x11);
        c.resetStream(U, 0x55);
        s.stopSending(B, 0x22);
        s.resetStream(C, 0x33);
        c.stopSending(D, 0x44);
        p.touch(c);
        p.touch(s);

        // E carries the whole payload both ways; C's client-to-server direction too.
        c.write(E, payload.subarray(100_000));
        c.finish(E);
        s.write(E, payload.subarray(100_000));
        s.finish(E);
        c.write(C, payload.subarray(100_000));
        c.finish(C);
        p.touch(c);
        p.touch(s);
        const sE = new Reader(() => p.serverConn, p.serverEvents, E);
        const cE = new Reader(() => p.clientConn, p.clientEvents, E);
        const sC = new Reader(() => p.serverConn, p.serverEvents, C);
        let wrote = 0;
        const finished = () =>
          sE.fin &&
          cE.fin &&
          sC.fin &&
          ev(p.serverEvents, "stream_reset", A).length > 0 &&
          ev(p.serverEvents, "stream_reset", U).length > 0 &&
          ev(p.clientEvents, "stream_reset", C).length > 0 &&
          p.serverConn?.streams.getStream(B)?.recv?.resetCode !== undefined &&
          p.clientConn.streams.getStream(D)?.recv?.resetCode !== undefined;
        expect(
          drive(
            p,
            () => {
              wrote++;
              return sE.pump(p.net.now) + cE.pump(p.net.now) + sC.pump(p.net.now);
            },
            finished,
            60_000,
          ),
        ).toBe(true);
        expect(wrote).toBeGreaterThan(0);

        // RESET_STREAM gives the peer the code.
        expect(ev(p.serverEvents, "stream_reset", A)).toEqual([
          { type: "stream_reset", streamId: A, errorCode: 0x11 },
        ]);
        expect(ev(p.serverEvents, "stream_reset", U)).toEqual([
          { type: "stream_reset", streamId: U, errorCode: 0x55 },
        ]);
        expect(ev(p.clientEvents, "stream_reset", C)).toEqual([
          { type: "stream_reset", streamId: C, errorCode: 0x33 },
        ]);
        // STOP_SENDING: the sender is told, and resets with the same code (§3.5), which reaches
        // the asker's receiving part; the asker's application gave up reading, so it gets no
        // stream_reset event.
        expect(ev(p.clientEvents, "stream_stop_sending", B)).toEqual([
          { type: "stream_stop_sending", streamId: B, errorCode: 0x22 },
        ]);
        expect(c.streams.getStream(B)?.send?.resetInfo?.errorCode).toBe(0x22);
        expect(s.streams.getStream(B)?.recv?.resetCode).toBe(0x22);
        expect(s.streams.getStream(B)?.recv?.state).toBe("reset_read");
        expect(ev(p.serverEvents, "stream_reset", B)).toEqual([]);
        expect(ev(p.serverEvents, "stream_stop_sending", D)).toEqual([
          { type: "stream_stop_sending", streamId: D, errorCode: 0x44 },
        ]);
        expect(s.streams.getStream(D)?.send?.resetInfo?.errorCode).toBe(0x44);
        expect(c.streams.getStream(D)?.recv?.resetCode).toBe(0x44);
        expect(c.streams.getStream(D)?.recv?.state).toBe("reset_read");
        expect(ev(p.clientEvents, "stream_reset", D)).toEqual([]);
        // Nobody saw events that were not asked for.
        expect(ev(p.clientEvents, "stream_reset", E)).toEqual([]);
        expect(ev(p.serverEvents, "stream_reset", E)).toEqual([]);
        expect(ev(p.serverEvents, "stream_reset", C)).toEqual([]);
        expect(ev(p.clientEvents, "stream_stop_sending", A)).toEqual([]);

        // The writer of a reset stream is refused; reading a reset stream yields nothing.
        expect(() => c.write(A, payload.subarray(0, 10))).toThrow(/reset with code 17/);
        expect(() => c.write(B, payload.subarray(0, 10))).toThrow(/reset with code 34/);
        expect(s.read(p.net.now, A)).toBeUndefined();

        // Untouched data is intact.
        expect(sha256(sE.bytes)).toBe(sha256(payload));
        expect(sha256(cE.bytes)).toBe(sha256(payload));
        expect(sha256(sC.bytes)).toBe(sha256(payload));
        expect(closedInfo(p.clientEvents)).toBeUndefined();
        expect(closedInfo(p.serverEvents)).toBeUndefined();

        // Everything settles once the directions still open are finished: all streams reach
        // terminal states and are forgotten on both sides (§3.1, §3.2).
        s.finish(A);
        s.finish(B);
        c.finish(D);
        p.touch(c);
        p.touch(s);
        const rest = [
          new Reader(() => p.clientConn, p.clientEvents, A),
          new Reader(() => p.clientConn, p.clientEvents, B),
          new Reader(() => p.serverConn, p.serverEvents, D),
        ];
        drive(
          p,
          () => rest.reduce((n, r) => n + r.pump(p.net.now), 0),
          () => c.streams.streamCount === 0 && s.streams.streamCount === 0,
          30_000,
        );
        expect(c.streams.streamCount).toBe(0);
        expect(s.streams.streamCount).toBe(0);
      }));
  }
});
