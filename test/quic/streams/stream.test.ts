import { describe, expect, it } from "vitest";
import { RecvStream, SendStream } from "../../../src/quic/streams/stream.js";

const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => i & 0xff);

describe("SendStream states (RFC 9000 §3.1)", () => {
  it("Ready -> Send -> Data Sent -> Data Recvd", () => {
    const s = new SendStream(0, 1000);
    expect(s.state).toBe("ready");
    s.write(bytes(100));
    s.finish();
    const a = s.nextChunk(60, 1000)!;
    expect(s.state).toBe("send");
    const b = s.nextChunk(60, 1000)!;
    expect(b.fin).toBe(true);
    expect(s.state).toBe("data_sent");
    s.onAcked(b.offset, b.data.length, true);
    expect(s.state).toBe("data_sent");
    s.onAcked(a.offset, a.data.length, false);
    expect(s.state).toBe("data_recvd");
    expect(s.isTerminal).toBe(true);
    expect(s.reset(1)).toBe(false); // nothing to reset any more
  });

  it("resets from Data Sent, and RESET_STREAM acknowledgement ends it", () => {
    const s = new SendStream(0, 1000);
    s.write(bytes(10));
    s.finish();
    s.nextChunk(100, 1000);
    expect(s.state).toBe("data_sent");
    expect(s.onStopSending(9)).toBe(true);
    expect(s.state).toBe("reset_sent");
    expect(s.pollReset()).toEqual({ errorCode: 9, finalSize: 10 });
    expect(s.pollReset()).toBeUndefined();
    expect(s.onResetLost()).toBe(true);
    expect(s.pollReset()).toEqual({ errorCode: 9, finalSize: 10 });
    s.onResetAcked();
    expect(s.state).toBe("reset_recvd");
    expect(s.onResetLost()).toBe(false);
    expect(s.onStopSending(9)).toBe(false);
  });

  it("uses the stream credit for new data only", () => {
    const s = new SendStream(0, 50);
    s.write(bytes(100));
    const a = s.nextChunk(100, 1000)!;
    expect(a.data.length).toBe(50);
    expect(s.isBlockedByStreamCredit).toBe(true);
    s.onLost(0, 50, false);
    const r = s.nextChunk(100, 0)!;
    expect([r.offset, r.data.length, r.retransmit]).toEqual([0, 50, true]);
    expect(s.credit.used).toBe(50);
  });
});

describe("RecvStream states (RFC 9000 §3.2)", () => {
  it("Recv -> Size Known -> Data Recvd -> Data Read", () => {
    const r = new RecvStream(1, 1000, 1000);
    r.onData(50, bytes(50), true);
    expect(r.state).toBe("size_known");
    expect(r.hasReadable).toBe(false);
    r.onData(0, bytes(50), false);
    expect(r.state).toBe("data_recvd");
    // Chunks come back as received (views), bounded by maxBytes.
    const a = r.read(70, 0, 0)!;
    expect([a.data.length, a.fin]).toEqual([50, false]);
    const b = r.read(30, 0, 0)!;
    expect([b.data.length, b.fin]).toEqual([30, false]);
    const c = r.read(70, 0, 0)!;
    expect([c.data.length, c.fin]).toEqual([20, true]);
    expect(r.state).toBe("data_read");
    expect(r.read(70, 0, 0)).toBeUndefined();
    expect(r.takeConsumed()).toBe(100);
  });

  it("Reset Recvd drops data and counts the final size; Reset Read once delivered", () => {
    const r = new RecvStream(1, 1000, 1000);
    r.onData(0, bytes(30), false);
    expect(r.onReset(5, 80)).toBe(50); // 50 more bytes of connection credit used
    expect(r.state).toBe("reset_recvd");
    expect(r.resetCode).toBe(5);
    expect(r.read(100, 0, 0)).toBeUndefined();
    expect(r.buffer.buffered).toBe(0);
    expect(r.takeConsumed()).toBe(80);
    r.onResetDelivered();
    expect(r.state).toBe("reset_read");
    // A repeated RESET_STREAM with the same final size is harmless.
    expect(r.onReset(5, 80)).toBe(0);
  });

  it("keeps the data when a reset arrives after all of it (Data Recvd)", () => {
    const r = new RecvStream(1, 1000, 1000);
    r.onData(0, bytes(30), true);
    r.onReset(5, 30);
    expect(r.state).toBe("data_recvd");
    expect(r.read(100, 0, 0)?.fin).toBe(true);
  });

  it("STOP_SENDING discards data, and is not needed once everything arrived", () => {
    const r = new RecvStream(1, 1000, 1000);
    r.onData(0, bytes(30), false);
    expect(r.stopSending(4)).toBe(true);
    expect(r.takeConsumed()).toBe(30);
    expect(r.pollStopSending()).toBe(4);
    r.onData(30, bytes(20), true);
    expect(r.takeConsumed()).toBe(20);
    expect(r.state).toBe("data_read");
    expect(r.onStopSendingLost()).toBe(false);
    const done = new RecvStream(1, 1000, 1000);
    done.onData(0, bytes(10), true);
    expect(done.stopSending(4)).toBe(false);
    expect(done.state).toBe("data_read");
  });

  it("advertises more stream credit only while in Recv", () => {
    const r = new RecvStream(1, 100, 100);
    r.onData(0, bytes(60), false);
    r.read(100, 0, 0);
    expect(r.wantsCredit).toBe(true);
    expect(r.window.pollUpdate()).toBe(160);
    r.onData(60, bytes(10), true);
    expect(r.wantsCredit).toBe(false);
  });
});
