/**
 * One benchmark endpoint per process (spawned by bench/lib/procs.ts). Roles:
 *
 *   udp-sink   --bytes N [--aead]            raw node:dgram receiver: counts payload, acks every
 *                                            ACK_EVERY datagrams with its running total
 *   udp-source --port P --bytes N --size S [--aead] [--window W] [--connected]
 *                                            raw sender with a simple window (the ceilings)
 *   mquictt-server --crypto C [--stats] [--max-udp-payload S]
 *                                            the hq-interop server with the virtual /bench/<N> route
 *                                            (--stats: a `STATS {json}` line per closed connection)
 *   mquictt-get --port P --bytes N --crypto C [--max-udp-payload S]
 *                                            GET /bench/N over one connection, one stream
 *   (--max-udp-payload: transport.maxUdpPayloadSize; unset, the loopback default of src/net/quic.ts)
 *   mquictt-handshakes --port P --count K --warmup W --concurrency C --crypto C
 *                                            K connections (C at a time): handshake, GET /bench/1, close
 *
 * Ready lines: `READY <port>` (udp-sink), `listening on ...` (mquictt-server), `MEASURING`
 * (mquictt-handshakes, after its warm-up). Results: one `RESULT {json}` line on stdout.
 * Servers exit cleanly on SIGTERM so that `--cpu-prof` writes its profile.
 */
import { createSocket, type RemoteInfo } from "node:dgram";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { interopServer } from "../../src/cli/interop.js";
import { nodeProvider } from "../../src/crypto/node.js";
import type { CryptoChoice } from "../../src/crypto/provider.js";
import { type QuicConnection, QuicEndpoint } from "../../src/net/quic.js";
import { flag } from "./report.js";

const argv = process.argv.slice(3);
const role = process.argv[2];
const num = (name: string, dflt?: number): number => {
  const v = flag(argv, name);
  if (v === undefined) {
    if (dflt === undefined) throw new Error(`${role}: ${name} is required`);
    return dflt;
  }
  return Number(v);
};
const cryptoChoice = (): CryptoChoice => {
  const c = flag(argv, "--crypto") ?? "auto";
  if (c !== "noble" && c !== "node" && c !== "auto") throw new Error(`unknown --crypto ${c}`);
  return c;
};

/** `--max-udp-payload S`, if given. */
const maxUdpPayload = (): number | undefined => {
  const v = flag(argv, "--max-udp-payload");
  return v === undefined ? undefined : Number(v);
};

function result(json: Record<string, unknown>): void {
  process.stdout.write(`RESULT ${JSON.stringify(json)}\n`);
}

function onTerm(fn: () => Promise<void> | void): void {
  const handler = (): void => {
    void Promise.resolve(fn()).finally(() => process.exit(0));
  };
  process.once("SIGTERM", handler);
  process.once("SIGINT", handler);
}

// ---------------------------------------------------------------------------------------------
// Raw UDP ceilings. A datagram is a stand-in for a 1-RTT packet: a 13-byte short header
// (1 flag byte, 8-byte connection ID, 4-byte packet number), then payload, then a 16-byte tag
// space. Goodput counts only the payload (size - 29) in both ceilings, so the two differ only
// by the crypto. With --aead the payload is sealed with AES-128-GCM (header as AAD, nonce from
// the packet number) and the header is masked from a ciphertext sample (RFC 9001 §5.4), with
// the node provider, exactly the per-packet crypto work of QUIC.

const HEADER = 13;
const TAG = 16;
const ACK_EVERY = 16;
const KEY = new Uint8Array(16).fill(0x11);
const HP_KEY = new Uint8Array(16).fill(0x22);
const IV = new Uint8Array(12).fill(0x33);

function nonceFor(pn: number, out: Uint8Array): Uint8Array {
  out.set(IV);
  out[8] ^= (pn >>> 24) & 0xff;
  out[9] ^= (pn >>> 16) & 0xff;
  out[10] ^= (pn >>> 8) & 0xff;
  out[11] ^= pn & 0xff;
  return out;
}

function udpSink(): void {
  const target = num("--bytes");
  const aead = argv.includes("--aead");
  const seal = nodeProvider.aead("aes-128-gcm", KEY);
  const hp = nodeProvider.headerProtection("aes-128-gcm", HP_KEY);
  const nonce = new Uint8Array(12);
  const sock = createSocket("udp4");
  let total = 0;
  let datagrams = 0;
  let bad = 0;
  const ack = Buffer.alloc(8);
  sock.on("message", (msg: Buffer, rinfo: RemoteInfo) => {
    if (msg.length === 1) {
      // a reset between runs
      total = 0;
      datagrams = 0;
      return;
    }
    if (aead) {
      const mask = hp.mask(msg.subarray(HEADER, HEADER + 16));
      msg[0] ^= mask[0] & 0x1f;
      for (let i = 0; i < 4; i++) msg[9 + i] ^= mask[1 + i];
      const pn = msg.readUInt32BE(9);
      const pt = seal.open(nonceFor(pn, nonce), msg.subarray(0, HEADER), msg.subarray(HEADER));
      if (pt === null) {
        bad++;
        return;
      }
      total += pt.length;
    } else {
      total += msg.length - HEADER - TAG;
    }
    datagrams++;
    if (datagrams % ACK_EVERY === 0 || total >= target) {
      ack.writeDoubleBE(total);
      sock.send(ack, rinfo.port, rinfo.address);
    }
  });
  sock.bind(0, "127.0.0.1", () => {
    process.stdout.write(`READY ${sock.address().port}\n`);
  });
  onTerm(() => {
    if (bad > 0) process.stderr.write(`udp-sink: ${bad} datagrams failed to open\n`);
    sock.close();
  });
}

async function udpSource(): Promise<void> {
  const port = num("--port");
  const target = num("--bytes");
  const size = num("--size", 1200);
  const window = num("--window", 64);
  const aead = argv.includes("--aead");
  const connected = argv.includes("--connected");
  const payload = size - HEADER - TAG;
  const seal = nodeProvider.aead("aes-128-gcm", KEY);
  const hp = nodeProvider.headerProtection("aes-128-gcm", HP_KEY);
  const plain = new Uint8Array(payload).fill(0x5a);
  const nonce = new Uint8Array(12);
  const raw = Buffer.alloc(size, 0x5a);
  const sock = createSocket("udp4");
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  if (connected) await new Promise<void>((r) => sock.connect(port, "127.0.0.1", r));
  // A reset datagram so a reused sink starts from zero.
  sock.send(Buffer.alloc(1), port, connected ? undefined : "127.0.0.1");

  let pn = 0;
  let acked = 0; // payload bytes the sink reported
  let written = 0; // payload bytes sent
  let writtenOff = 0; // payload bytes written off as lost after a stall
  let stalls = 0;
  let lastProgress = performance.now();
  const t0 = performance.now();

  const packet = (): Buffer => {
    if (!aead) return raw;
    const hdr = Buffer.allocUnsafe(HEADER);
    hdr[0] = 0x43;
    hdr.fill(0x77, 1, 9);
    hdr.writeUInt32BE(pn >>> 0, 9);
    const ct = seal.seal(nonceFor(pn, nonce), hdr, plain);
    const mask = hp.mask(ct.subarray(0, 16));
    hdr[0] ^= mask[0] & 0x1f;
    for (let i = 0; i < 4; i++) hdr[9 + i] ^= mask[1 + i];
    return Buffer.concat([hdr, ct]);
  };
  const send = (b: Buffer): void => {
    if (connected) sock.send(b);
    else sock.send(b, port, "127.0.0.1");
  };
  const pump = (): void => {
    while (written - writtenOff - acked < window * payload && written - writtenOff < target) {
      send(packet());
      pn++;
      written += payload;
    }
  };
  const seconds = await new Promise<number>((resolve) => {
    const stallTimer = setInterval(() => {
      if (performance.now() - lastProgress > 20) {
        // Nothing acknowledged for 20 ms: what is outstanding was dropped. Send it again.
        stalls++;
        writtenOff = written - acked;
        lastProgress = performance.now();
        pump();
      }
    }, 5);
    sock.on("message", (msg: Buffer) => {
      const total = msg.readDoubleBE(0);
      if (total <= acked) return;
      acked = total;
      lastProgress = performance.now();
      if (acked >= target) {
        clearInterval(stallTimer);
        resolve((performance.now() - t0) / 1000);
        return;
      }
      pump();
    });
    pump();
  });
  result({ bytes: acked, seconds, datagrams: pn, lostDatagrams: pn - Math.round(acked / payload), stalls });
  sock.close();
}

// ---------------------------------------------------------------------------------------------
// mquictt endpoints

async function mquicttServer(): Promise<void> {
  const www = mkdtempSync(join(tmpdir(), "mquictt-bench-www-"));
  const ep = await interopServer(
    {
      role: "server",
      testcase: "transfer",
      www,
      downloads: www,
      port: 0,
      host: "127.0.0.1",
      insecure: false,
      requests: [],
      crypto: cryptoChoice(),
      benchRoute: true,
      maxUdpPayloadSize: maxUdpPayload(),
    },
    (line) => process.stdout.write(`${line}\n`),
  );
  // Per-connection transport counters, for the goodput table's details.
  if (argv.includes("--stats")) {
    ep.on("connection", (conn: QuicConnection) => {
      conn.once("close", () => process.stdout.write(`STATS ${JSON.stringify(conn.core.stats)}\n`));
    });
  }
  onTerm(() => ep.close());
}

const ALPN = ["hq-interop"];

async function mquicttGet(): Promise<void> {
  const port = num("--port");
  const bytes = num("--bytes");
  const ep = await QuicEndpoint.open({ host: "127.0.0.1", crypto: cryptoChoice() });
  const t0 = performance.now();
  const conn = await ep.connect("127.0.0.1", port, {
    alpn: ALPN,
    insecure: true,
    transport: { maxUdpPayloadSize: maxUdpPayload() },
  });
  const t1 = performance.now();
  const s = await conn.openStream();
  s.end(`GET /bench/${bytes}\r\n`);
  let got = 0;
  for await (const c of s) got += (c as Buffer).length;
  const t2 = performance.now();
  if (got !== bytes) throw new Error(`received ${got} bytes, expected ${bytes}`);
  result({ bytes: got, seconds: (t2 - t1) / 1000, handshakeMs: t1 - t0, stats: { ...conn.core.stats } });
  await conn.close(0, "done");
  await ep.close();
}

async function mquicttHandshakes(): Promise<void> {
  const port = num("--port");
  const count = num("--count");
  const warmup = num("--warmup", 20);
  const concurrency = num("--concurrency", 1);
  const ep = await QuicEndpoint.open({ host: "127.0.0.1", crypto: cryptoChoice() });
  const handshakeMs: number[] = [];
  const ttfbMs: number[] = [];
  const closing: Promise<void>[] = [];
  let failures = 0;
  const one = async (record: boolean): Promise<void> => {
    const t0 = performance.now();
    const conn = await ep.connect("127.0.0.1", port, { alpn: ALPN, insecure: true });
    const t1 = performance.now();
    const s = await conn.openStream();
    s.end("GET /bench/1\r\n");
    let first = 0;
    for await (const _ of s) if (first === 0) first = performance.now();
    if (record) {
      handshakeMs.push(t1 - t0);
      ttfbMs.push(first - t0);
    }
    // Do not wait out the closing period: the next connection starts at once.
    closing.push(conn.close(0, "done").catch(() => undefined));
  };
  const run = async (n: number, record: boolean): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < n) {
        next++;
        await one(record).catch((e: unknown) => {
          failures++;
          if (failures <= 3) process.stderr.write(`handshake failed: ${(e as Error).message}\n`);
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  };
  await run(warmup, false);
  await Promise.all(closing.splice(0));
  process.stdout.write("MEASURING\n");
  const t0 = performance.now();
  await run(count, true);
  const seconds = (performance.now() - t0) / 1000;
  result({ count: handshakeMs.length, failures, seconds, handshakeMs, ttfbMs });
  await Promise.all(closing);
  await ep.close();
}

const roles: Record<string, () => Promise<void> | void> = {
  "udp-sink": udpSink,
  "udp-source": udpSource,
  "mquictt-server": mquicttServer,
  "mquictt-get": mquicttGet,
  "mquictt-handshakes": mquicttHandshakes,
};

const fn = roles[role];
if (!fn) {
  process.stderr.write(`unknown role ${role}; one of ${Object.keys(roles).join(", ")}\n`);
  process.exit(2);
}
Promise.resolve(fn()).then(
  () => {
    if (role !== "udp-sink" && role !== "mquictt-server") process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`${role}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
