/**
 * Many streams through a small stream limit (RFC 9000 §4.6): the client opens 200 request
 * streams against max_streams_bidi = 20, waits for `streams_available` when refused, and every
 * stream completes; round-robin scheduling starves none of them.
 */
import { describe, expect, it } from "vitest";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, drive, makeData, provider, sha256 } from "./helpers.js";

const STREAMS = 200;
const LIMIT = 20;
const REQUEST = 20_000;

describe("many streams", () => {
  for (const loss of [0, 0.02]) {
    it(`completes ${STREAMS} streams over max_streams_bidi ${LIMIT} without starving any (loss ${loss * 100}%)`, () =>
      withSeed(141, (seed) => {
        const p = new Pair(provider, {
          seed,
          link: { latency: 10, loss },
          serverTransport: { maxStreamsBidi: LIMIT },
        });
        expect(p.handshake(10_000)).toBe(true);
        const c = p.clientConn;
        const request = (i: number) => makeData(REQUEST, seed * 1000 + i);
        const expected = Array.from({ length: STREAMS }, (_, i) => sha256(request(i)));
        const opened: { id: number; at: number }[] = [];
        const requestDone = new Map<number, number>(); // id -> time the server read the FIN
        const responseDone = new Map<number, number>(); // id -> time the client read the reply's FIN
        const serverBufs = new Map<number, Uint8Array[]>();
        const hashes = new Map<number, string>();
        let refused = 0;
        let maxConcurrent = 0;
        let consumedAvailable = 0;
        let blocked = false;
        let seenEvents = 0;

        const work = (): number => {
          let n = 0;
          const now = p.net.now;
          // Client: open as many as allowed; when refused, wait for streams_available.
          const available = p.clientEvents.filter((e) => e.type === "streams_available").length;
          if (blocked && available > consumedAvailable) {
            consumedAvailable = available;
            blocked = false;
          }
          while (!blocked && opened.length < STREAMS) {
            const id = c.openStream(true);
            if (id === undefined) {
              refused++;
              blocked = true;
              break;
            }
            const body = request(opened.length);
            expect(c.write(id, body)).toBe(body.length);
            c.finish(id);
            opened.push({ id, at: now });
            n++;
          }
          maxConcurrent = Math.max(maxConcurrent, c.streams.streamCount);
          // Server: read each request; when complete, answer with its hash and FIN.
          const s = p.serverConn!;
          for (; seenEvents < p.serverEvents.length; seenEvents++) {
            const e = p.serverEvents[seenEvents];
            if (e.type === "stream_opened") serverBufs.set(e.streamId, []);
          }
          for (const [id, parts] of serverBufs) {
            for (let r = s.read(now, id); r; r = s.read(now, id)) {
              if (r.data.length) parts.push(r.data.slice());
              n++;
              if (r.fin) {
                requestDone.set(id, now);
                serverBufs.delete(id);
                const digest = sha256(Buffer.concat(parts));
                s.write(id, new TextEncoder().encode(digest));
                s.finish(id);
                break;
              }
            }
          }
          // Client: read the replies.
          for (const { id } of opened) {
            if (responseDone.has(id)) continue;
            const got = c.streams.getStream(id)?.recv?.hasReadable;
            if (!got) continue;
            const parts: Uint8Array[] = [];
            for (let r = c.read(now, id); r; r = c.read(now, id)) {
              if (r.data.length) parts.push(r.data);
              n++;
              if (r.fin) {
                responseDone.set(id, now);
                hashes.set(id, new TextDecoder().decode(Buffer.concat(parts)));
                break;
              }
            }
          }
          return n;
        };
        const ok = drive(p, work, () => responseDone.size === STREAMS, 120_000);
        expect(ok).toBe(true);
        expect(closedInfo(p.clientEvents)).toBeUndefined();
        expect(closedInfo(p.serverEvents)).toBeUndefined();
        // Every stream delivered its own bytes (the server's reply is the request's SHA-256).
        opened.forEach(({ id }, i) => {
          expect(hashes.get(id)).toBe(expected[i]);
        });
        // The limit was respected and the streams_available flow was used.
        expect(maxConcurrent).toBeLessThanOrEqual(LIMIT);
        expect(refused).toBeGreaterThanOrEqual((STREAMS - LIMIT) / LIMIT);
        expect(consumedAvailable).toBeGreaterThan(0);
        expect(new Set(opened.map((o) => o.id)).size).toBe(STREAMS);
        // No starvation: every stream finished within a few times the typical time from open.
        const latencies = opened.map(({ id, at }) => responseDone.get(id)! - at).sort((a, b) => a - b);
        const median = latencies[latencies.length >> 1];
        expect(latencies.at(-1)!).toBeLessThanOrEqual(4 * median + 200);
        // Streams opened together finish in the order-independent way round robin gives: the
        // first window of 20 all finished before any stream of the last window was opened.
        const lastOpen = opened.at(-1)!.at;
        for (const { id } of opened.slice(0, LIMIT))
          expect(responseDone.get(id)!).toBeLessThanOrEqual(lastOpen);
        // Everything is forgotten at the end: closed streams do not accumulate.
        p.run(() => false, 1_000);
        expect(c.streams.streamCount).toBe(0);
        expect(p.serverConn!.streams.streamCount).toBe(0);
      }));
  }
});
