/**
 * The broker process of bench/connect-setup.ts: one mquictt Broker with a plain TCP listener, a
 * TLS listener (`listenTls`) and one QUIC listener per QUIC mode (each on its own UDP port, all
 * accepting 0-RTT), so that the benchmark can tell per mode how the handshakes really went:
 * how many connections were resumed from a session ticket and how many had their 0-RTT data
 * accepted. A mode called "resumed" whose handshakes were full ones would be reported as such.
 *
 *   node --import tsx bench/lib/setup-broker.ts --host H --cert PEM --key PEM --quic-modes quic,quic-resumed
 *
 * Prints `PORTS {"tcp":N,"tls":N,"quic":{"<mode>":N,...}}` once listening; on a line "stats" on
 * stdin prints `STATS {"<mode>":{"connections":N,"resumed":N,"earlyAccepted":N,"earlyRejected":N}}`
 * (connections closed since the last "stats"). Exits on SIGTERM or when stdin closes.
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { Broker } from "../../src/mqtt/broker/broker.js";
import { listenQuic } from "../../src/net/mqtt-quic.js";
import type { QuicEndpoint } from "../../src/net/quic.js";
import { flag } from "./report.js";

interface Counts {
  connections: number;
  resumed: number;
  earlyAccepted: number;
  earlyRejected: number;
}

const argv = process.argv.slice(2);
const host = flag(argv, "--host") ?? "127.0.0.1";
const certFile = flag(argv, "--cert");
const keyFile = flag(argv, "--key");
if (!certFile || !keyFile) throw new Error("setup-broker: --cert and --key are required");
const cert = readFileSync(certFile, "utf8");
const key = readFileSync(keyFile, "utf8");
const quicModes = (flag(argv, "--quic-modes") ?? "quic").split(",").filter((m) => m !== "");

const broker = new Broker();
await broker.start();
const tcp = await broker.listenTcp({ port: 0, host });
const tls = await broker.listenTls({ port: 0, host, cert, key });
const endpoints: QuicEndpoint[] = [];
const counts = new Map<string, Counts>();
const quicPorts: Record<string, number> = {};
for (const mode of quicModes) {
  const c: Counts = { connections: 0, resumed: 0, earlyAccepted: 0, earlyRejected: 0 };
  counts.set(mode, c);
  const ep = await listenQuic({ port: 0, host, cert, key, earlyData: true }, (t) => {
    t.once("close", () => {
      c.connections++;
      if (t.connection.resumed) c.resumed++;
      if (t.connection.earlyData === "accepted") c.earlyAccepted++;
      if (t.connection.earlyData === "rejected") c.earlyRejected++;
    });
    broker.handle(t);
  });
  endpoints.push(ep);
  quicPorts[mode] = ep.address().port;
}
process.stdout.write(`PORTS ${JSON.stringify({ tcp: tcp.port, tls: tls.port, quic: quicPorts })}\n`);

const shutdown = async (): Promise<void> => {
  await broker.close();
  await Promise.all(endpoints.map((e) => e.close()));
  process.exit(0);
};
process.once("SIGTERM", () => void shutdown());
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (line.trim() !== "stats") return;
  const out: Record<string, Counts> = {};
  for (const [mode, c] of counts) {
    out[mode] = { ...c };
    Object.assign(c, { connections: 0, resumed: 0, earlyAccepted: 0, earlyRejected: 0 });
  }
  process.stdout.write(`STATS ${JSON.stringify(out)}\n`);
});
rl.on("close", () => void shutdown());
