/**
 * A slow reader bounds the sender through flow control (RFC 9000 §4): while the receiver does
 * not read, the sender never goes past the advertised MAX_STREAM_DATA / MAX_DATA, its send
 * buffer stays bounded, and it resumes as soon as the reader does.
 */
import { describe, expect, it } from "vitest";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, drive, makeData, provider, sha256, Transfer } from "./helpers.js";

const KB = 1024;

describe("flow control with a slow reader", () => {
  it("never sends beyond the advertised windows, then completes when reading resumes", () =>
    withSeed(41, (seed) => {
      const streamWindow = 64 * KB;
      const connWindow = 96 * KB;
      const sendBuffer = 128 * KB;
      const p = new Pair(provider, {
        seed,
        link: { latency: 15, loss: 0.02 },
        serverTransport: {
          initialMaxStreamData: streamWindow,
          maxStreamWindow: 256 * KB,
          initialMaxData: connWindow,
          maxConnectionWindow: 512 * KB,
        },
        clientTransport: { streamSendBuffer: sendBuffer },
      });
      expect(p.handshake(30_000)).toBe(true);
      const pauseUntil = p.net.now + 5_000;
      const data = makeData(3 << 20, seed);
      let checks = 0;
      let maxSentDuringPause = 0;
      let maxBuffered = 0;
      let maxServerBuffered = 0;
      let maxCwnd = 0;
      const t: Transfer = new Transfer(p, data, {
        readFrom: pauseUntil,
        onStep: () => {
          const send = p.clientConn.streams.getStream(t.streamId)?.send;
          const server = p.serverConn;
          const recv = server?.streams.getStream(t.streamId)?.recv;
          if (!send || !server || !recv) return;
          checks++;
          const sent = send.buffer.sentOffset;
          // The sender stays within the credit it was given, which never exceeds what the
          // receiver advertised (stream and connection level).
          expect(sent).toBeLessThanOrEqual(send.credit.limit);
          expect(send.credit.limit).toBeLessThanOrEqual(recv.window.limit);
          expect(recv.window.received).toBeLessThanOrEqual(recv.window.limit);
          expect(server.streams.connectionWindow.received).toBeLessThanOrEqual(
            server.streams.connectionWindow.limit,
          );
          // Written but unacknowledged bytes are bounded by the send buffer.
          expect(send.buffer.buffered).toBeLessThanOrEqual(sendBuffer);
          maxBuffered = Math.max(maxBuffered, send.buffer.buffered);
          maxServerBuffered = Math.max(maxServerBuffered, recv.window.received - recv.window.consumed);
          // Congestion control: in flight within the largest window so far (a loss shrinks the
          // window below what is already in flight), plus two datagrams of slack for the packet
          // sent on entering recovery and PTO probes (RFC 9002 §7.3.2, §7.5).
          maxCwnd = Math.max(maxCwnd, p.clientConn.congestionWindow);
          expect(p.clientConn.bytesInFlight).toBeLessThanOrEqual(maxCwnd + 2 * 1452);
          if (p.net.now < pauseUntil) {
            maxSentDuringPause = Math.max(maxSentDuringPause, sent);
            expect(recv.window.limit).toBe(streamWindow);
            expect(t.received).toBe(0);
          }
        },
      });
      expect(t.run(300_000)).toBe(true);
      expect(t.receivedHash()).toBe(sha256(data));
      expect(checks).toBeGreaterThan(100);
      // While the reader slept, the sender filled exactly the initial stream window and stopped;
      // the application could only buffer up to the send buffer.
      expect(maxSentDuringPause).toBe(streamWindow);
      expect(maxBuffered).toBe(sendBuffer);
      expect(maxServerBuffered).toBeLessThanOrEqual(256 * KB);
      expect(t.finAt!).toBeGreaterThan(pauseUntil);
      // 3 MB once reading resumes takes seconds, not the whole deadline.
      expect(t.finAt! - pauseUntil).toBeLessThan(30_000);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
      expect(closedInfo(p.serverEvents)).toBeUndefined();
    }));

  it("holds the connection window across several streams", () =>
    withSeed(42, (seed) => {
      const connWindow = 100 * KB;
      const p = new Pair(provider, {
        seed,
        link: { latency: 10 },
        serverTransport: {
          initialMaxStreamData: 64 * KB,
          initialMaxData: connWindow,
          maxConnectionWindow: connWindow,
        },
      });
      expect(p.handshake(30_000)).toBe(true);
      const c = p.clientConn;
      const ids = [0, 1, 2, 3].map(() => c.openStream(true)!);
      const chunk = makeData(200 * KB, seed);
      for (const id of ids) expect(c.write(id, chunk)).toBe(chunk.length);
      p.touch(c);
      p.run(() => false, 3_000);
      // No reads: the four streams together stop at the connection window.
      let total = 0;
      for (const id of ids) total += c.streams.getStream(id)!.send!.buffer.sentOffset;
      expect(total).toBe(connWindow);
      expect(c.streams.connectionCredit).toBe(0);
      expect(p.serverConn!.streams.connectionWindow.received).toBe(connWindow);
      // Reading everything frees the window and the rest flows.
      const got = new Map<number, number>(ids.map((id) => [id, 0]));
      const done = () => [...got.values()].every((n) => n === chunk.length);
      drive(
        p,
        () => {
          const s = p.serverConn!;
          let n = 0;
          for (const id of ids) {
            if (!s.streams.getStream(id)) continue;
            for (let r = s.read(p.net.now, id); r; r = s.read(p.net.now, id)) {
              got.set(id, got.get(id)! + r.data.length);
              n++;
            }
          }
          return n;
        },
        done,
        30_000,
      );
      expect(done()).toBe(true);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
    }));
});
