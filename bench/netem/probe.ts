/**
 * Measurement endpoints for the emulated-link self-test (bench/netem/selftest.ts), run inside
 * the namespaces with `ip netns exec`. Each mode prints JSON lines on stdout.
 *
 * Side B (servers):
 *   udp-server HOST PORT   echoes datagrams starting with "E"; counts datagrams starting with
 *                          "S" (sequence number at bytes 1..4). A stdin line "report N" prints
 *                          what arrived of sequence numbers 0..N-1, then forgets them.
 *   tcp-sink HOST PORT W   prints, per connection, the bytes received and the goodput measured
 *                          from W seconds after the first byte until the end.
 * Side A (clients):
 *   udp-ping HOST PORT COUNT INTERVAL_MS   round-trip times of COUNT echoes
 *   udp-send HOST PORT COUNT PPS SIZE      COUNT sink datagrams paced at PPS
 *   tcp-source HOST PORT SECONDS           writes as fast as TCP takes it for SECONDS
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createConnection, createServer } from "node:net";
import { createInterface } from "node:readline";

const [mode, host, portArg, ...rest] = process.argv.slice(2);
const port = Number(portArg);

function emit(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function bind(sock: UdpSocket, address: string, p: number): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(p, address, () => {
      sock.off("error", reject);
      resolve();
    });
  });
}

async function udpServer(): Promise<void> {
  const sock = createSocket({ type: "udp4", recvBufferSize: 4 << 20 });
  let seen = new Uint8Array(0);
  let received = 0;
  let duplicates = 0;
  let late = 0;
  let maxSeq = -1;
  sock.on("message", (msg, rinfo) => {
    if (msg[0] === 0x45) {
      sock.send(msg, rinfo.port, rinfo.address);
      return;
    }
    if (msg[0] !== 0x53 || msg.length < 5) return;
    const seq = msg.readUInt32BE(1);
    if (seq >= seen.length) {
      const grown = new Uint8Array(Math.max(seq + 1, seen.length * 2, 1024));
      grown.set(seen);
      seen = grown;
    }
    if (seen[seq]) {
      duplicates++;
      return;
    }
    seen[seq] = 1;
    received++;
    if (seq < maxSeq) late++;
    else maxSeq = seq;
  });
  await bind(sock, host, port);
  emit({ listening: port });
  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, nArg] = line.trim().split(/\s+/);
    if (cmd !== "report") continue;
    const n = Number(nArg);
    // runs of consecutive missing sequence numbers: the loss bursts
    let runs = 0;
    let inRun = false;
    let missing = 0;
    for (let i = 0; i < n; i++) {
      const lost = i >= seen.length || seen[i] === 0;
      if (lost) {
        missing++;
        if (!inRun) runs++;
      }
      inRun = lost;
    }
    emit({ received, duplicates, late, missing, runs, meanRun: runs > 0 ? missing / runs : 0 });
    seen = new Uint8Array(0);
    received = duplicates = late = 0;
    maxSeq = -1;
  }
  sock.close();
}

async function tcpSink(): Promise<void> {
  const warmupMs = Number(rest[0] ?? 1) * 1000;
  const server = createServer((conn) => {
    let bytes = 0;
    let first = 0;
    let markBytes = -1;
    let markAt = 0;
    let last = 0;
    conn.on("data", (d: Buffer) => {
      const t = nowMs();
      if (bytes === 0) first = t;
      if (markBytes < 0 && t - first >= warmupMs) {
        markBytes = bytes;
        markAt = t;
      }
      bytes += d.length;
      last = t;
    });
    conn.on("end", () => {
      const window = markBytes >= 0 ? last - markAt : 0;
      const windowBytes = markBytes >= 0 ? bytes - markBytes : 0;
      emit({
        bytes,
        seconds: (last - first) / 1000,
        windowSeconds: window / 1000,
        goodputMbit: window > 0 ? (windowBytes * 8) / (window * 1000) : 0,
      });
      conn.end();
    });
    conn.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  emit({ listening: port });
}

async function udpPing(): Promise<void> {
  const count = Number(rest[0] ?? 100);
  const interval = Number(rest[1] ?? 20);
  const sock = createSocket("udp4");
  const sentAt = new Float64Array(count);
  const rtts = new Float64Array(count).fill(-1);
  sock.on("message", (msg) => {
    const t = nowMs();
    if (msg[0] !== 0x45 || msg.length < 5) return;
    const seq = msg.readUInt32BE(1);
    if (seq < count && rtts[seq] < 0) rtts[seq] = t - sentAt[seq];
  });
  await bind(sock, "0.0.0.0", 0);
  const start = nowMs();
  for (let i = 0; i < count; i++) {
    // absolute schedule, so timer lateness does not accumulate
    const wait = start + i * interval - nowMs();
    if (wait > 0) await sleep(wait);
    // a fresh buffer each time: dgram sends asynchronously and does not copy
    const pkt = Buffer.alloc(64);
    pkt[0] = 0x45;
    pkt.writeUInt32BE(i, 1);
    sentAt[i] = nowMs();
    sock.send(pkt, port, host);
  }
  const deadline = nowMs() + 2000;
  while (nowMs() < deadline && rtts.some((r) => r < 0)) await sleep(20);
  sock.close();
  emit({ sent: count, rtts: Array.from(rtts).filter((r) => r >= 0) });
}

async function udpSend(): Promise<void> {
  const count = Number(rest[0] ?? 1000);
  const pps = Number(rest[1] ?? 10000);
  const size = Math.max(5, Number(rest[2] ?? 64));
  const sock = createSocket({ type: "udp4", sendBufferSize: 4 << 20 });
  await bind(sock, "0.0.0.0", 0);
  sock.connect(port, host);
  await new Promise<void>((r) => sock.once("connect", () => r()));
  const start = nowMs();
  let sent = 0;
  let inflight = 0;
  while (sent < count) {
    const due = Math.min(count, Math.floor(((nowMs() - start) * pps) / 1000) + 1);
    while (sent < due) {
      const pkt = Buffer.alloc(size);
      pkt[0] = 0x53;
      pkt.writeUInt32BE(sent, 1);
      inflight++;
      sock.send(pkt, () => {
        inflight--;
      });
      sent++;
    }
    await sleep(1);
  }
  while (inflight > 0) await sleep(1);
  const seconds = (nowMs() - start) / 1000;
  sock.close();
  emit({ sent, seconds });
}

async function tcpSource(): Promise<void> {
  const seconds = Number(rest[0] ?? 3);
  const conn = createConnection({ host, port });
  conn.setNoDelay(true);
  await new Promise<void>((r) => conn.once("connect", () => r()));
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const end = nowMs() + seconds * 1000;
  let bytes = 0;
  while (nowMs() < end) {
    bytes += chunk.length;
    if (!conn.write(chunk)) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, end - nowMs()));
        conn.once("drain", () => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
  await new Promise<void>((r) => conn.end(r));
  await new Promise<void>((r) => conn.once("close", () => r()));
  emit({ bytes });
}

const modes: Record<string, () => Promise<void>> = {
  "udp-server": udpServer,
  "tcp-sink": tcpSink,
  "udp-ping": udpPing,
  "udp-send": udpSend,
  "tcp-source": tcpSource,
};
const run = modes[mode];
if (!run || !host || !Number.isInteger(port)) {
  console.error(`usage: probe.ts ${Object.keys(modes).join("|")} HOST PORT ...`);
  process.exit(2);
}
run().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
