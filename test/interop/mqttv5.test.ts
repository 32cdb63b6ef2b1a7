/**
 * Interop over QUIC with the `mqttv5` command-line tool (crate mqttv5-cli 0.29.10, built on the
 * Rust `mqtt5` crate and quinn; ALPN `mqtt`, or `MQTT-next` when it sends flow headers), over real
 * UDP on loopback:
 *
 * `mqttv5 sub` and `mqttv5 pub` through our broker, in its client stream strategies (control-only,
 * the default; per-publish; per-topic), plain, with flow headers and with QUIC datagrams, at QoS 0,
 * 1 and 2 (the combinations that work today; the notes at each loop say what is left out); and our client against
 * `mqttv5 broker` (control-only delivery; see the notes on that describe).
 *
 * Certificates are verified for real: a test CA from src/tls/certgen.ts, written to PEM files, is
 * `mqttv5 --ca-cert` (with a `quics://` URL; `quic://` would skip verification) and our client's
 * `ca`; the mqttv5 broker serves the leaf issued by it.
 *
 * The binary comes from interop/mqttv5/build.sh (run by .ci/run). These tests never skip: without
 * it they fail, saying how to build it.
 */

import { accessSync, constants, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeProvider } from "../../src/crypto/node.js";
import { SeededRng } from "../../src/crypto/random.js";
import { connect, type MqttClient } from "../../src/mqtt/client/index.js";
import { Broker } from "../../src/mqtt/index.js";
import { generateTestCA, issueLeaf } from "../../src/tls/certgen.js";
import { waitFor } from "../mqtt/client/helpers.js";
import { exitOf as exitWithin, type Proc, ProcGroup } from "./procs.js";

const BUILD_HINT = "build it with: bash interop/mqttv5/build.sh (cargo install of mqttv5-cli 0.29.10)";

/** The mqttv5 binary: $MQTTV5_BIN, interop/mqttv5/.bin/bin/mqttv5, or on PATH. */
function mqttv5Binary(): string {
  const candidates = [
    process.env.MQTTV5_BIN,
    join(import.meta.dirname, "../../interop/mqttv5/.bin/bin/mqttv5"),
    ...(process.env.PATH ?? "").split(delimiter).map((d) => (d ? join(d, "mqttv5") : undefined)),
  ];
  for (const p of candidates) {
    if (!p) continue;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  const required = process.env.CI === "true" || process.env.REQUIRE_INTEROP === "1";
  throw new Error(`mqttv5 not found${required ? " (required: CI / REQUIRE_INTEROP)" : ""}; ${BUILD_HINT}`);
}

/** A free port on loopback (asked of TCP; the mqttv5 broker binds it for UDP too). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const addr = srv.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const group = new ProcGroup();
const run = (bin: string, args: string[]): Proc => group.run(bin, args, { RUST_LOG: "warn", NO_COLOR: "1" });
const killAll = (): Promise<void> => group.killAll();
const exitOf = (p: Proc, ms = 8000): Promise<number | null> => exitWithin(p, ms);

/** `topic: T` / `  qos: N` / ... / `  payload: P` blocks of `mqttv5 sub --show-properties`. */
function received(out: string): { topic: string; qos: number; payload: string }[] {
  const res: { topic: string; qos: number; payload: string }[] = [];
  let cur: { topic: string; qos: number; payload: string } | undefined;
  for (const line of out.split("\n")) {
    const t = /^topic: (.*)$/.exec(line);
    if (t) {
      cur = { topic: t[1] ?? "", qos: -1, payload: "" };
      continue;
    }
    const q = /^ {2}qos: (\d)$/.exec(line);
    if (q && cur) cur.qos = Number(q[1]);
    const p = /^ {2}payload: (.*)$/.exec(line);
    if (p && cur) {
      cur.payload = p[1] ?? "";
      res.push(cur);
      cur = undefined;
    }
  }
  return res;
}

let dir = "";
let caPem = "";
let certPem = "";
let keyPem = "";
let certText = "";
let keyText = "";
let caText = "";
let bin = "";

beforeAll(() => {
  bin = mqttv5Binary();
  dir = mkdtempSync(join(tmpdir(), "mquictt-mqttv5-"));
  const rng = new SeededRng(55);
  const now = Date.now();
  const ca = generateTestCA({ provider: nodeProvider, rng, now, commonName: "mqttv5 interop CA" });
  const leaf = issueLeaf(ca, {
    provider: nodeProvider,
    rng,
    now,
    commonName: "localhost",
    dns: ["localhost"],
    ips: ["127.0.0.1"],
  });
  caText = ca.pem;
  certText = leaf.pem;
  keyText = leaf.keyPem;
  caPem = join(dir, "ca.pem");
  certPem = join(dir, "cert.pem");
  keyPem = join(dir, "key.pem");
  writeFileSync(caPem, ca.pem);
  writeFileSync(certPem, leaf.pem);
  writeFileSync(keyPem, leaf.keyPem);
});

afterAll(async () => {
  await killAll();
});

// ---------------------------------------------------------------------------------------------
// mqttv5 pub / sub against our broker
// ---------------------------------------------------------------------------------------------

describe("mqttv5 clients against our broker over QUIC", () => {
  let broker: Broker | undefined;
  let port = 0;

  beforeAll(async () => {
    broker = new Broker();
    // MQTT-next first: mqttv5 sends flow headers only when that ALPN is negotiated
    ({ port } = await broker.listenQuic({
      port: 0,
      host: "127.0.0.1",
      cert: certText,
      key: keyText,
      alpn: ["MQTT-next", "mqtt"],
    }));
  });
  afterAll(async () => {
    await killAll();
    await broker?.close();
  });

  const common = () => ["--url", `quics://127.0.0.1:${port}`, "--ca-cert", caPem, "--non-interactive"];

  function subscribed(clientId: string): Promise<void> {
    return new Promise((resolve) => {
      const on = (_s: unknown, c: { clientId: string }) => {
        if (c.clientId !== clientId) return;
        broker?.off("subscribe", on);
        resolve();
      };
      broker?.on("subscribe", on);
    });
  }

  async function startSub(clientId: string, args: string[]): Promise<Proc> {
    const ready = subscribed(clientId);
    const p = run(bin, ["sub", ...common(), "--client-id", clientId, ...args]);
    await Promise.race([
      ready,
      exitOf(p).then((code) => {
        throw new Error(`mqttv5 sub exited (${code}) before subscribing:\n${p.out()}`);
      }),
    ]);
    return p;
  }

  const strategies: [string, string[]][] = [
    ["default (control-only)", []],
    ["control-only", ["--quic-stream-strategy", "control-only"]],
    ["per-publish", ["--quic-stream-strategy", "per-publish"]],
    ["per-topic", ["--quic-stream-strategy", "per-topic"]],
  ];
  const variants: [string, string[]][] = [
    ["plain", []],
    ["flow headers", ["--quic-flow-headers"]],
    ["datagrams", ["--quic-datagrams"]],
  ];

  let n = 0;

  /**
   * One `mqttv5 sub` (with `subArgs`, counting `qos.length` messages) and one `mqttv5 pub` (with
   * `pubArgs`) per QoS level; asserts every message arrives once, at its QoS.
   */
  async function pubSub(subArgs: string[], pubArgs: string[], qosLevels: number[]): Promise<void> {
    const k = n++;
    const base = `v5/${k}`;
    try {
      const sub = await startSub(`mqttv5-sub-${k}`, [
        ...subArgs,
        "--topic",
        `${base}/#`,
        "--qos",
        "2",
        "--count",
        String(qosLevels.length),
        "--show-properties",
      ]);
      for (const qos of qosLevels) {
        const pub = run(bin, [
          "pub",
          ...common(),
          ...pubArgs,
          "--client-id",
          `mqttv5-pub-${k}-${qos}`,
          "--topic",
          `${base}/q${qos}`,
          "--qos",
          String(qos),
          "--message",
          `hello qos${qos}`,
        ]);
        expect(await exitOf(pub), pub.out()).toBe(0);
      }
      expect(await exitOf(sub), sub.out()).toBe(0);
      expect(received(sub.out()), sub.out()).toEqual(
        qosLevels.map((qos) => ({ topic: `${base}/q${qos}`, qos, payload: `hello qos${qos}` })),
      );
    } finally {
      await killAll();
    }
  }

  // Both sides in the same strategy: the data-stream strategies need QoS 0 from a data-stream
  // publisher, which is left out (below).
  for (const [sname, sargs] of strategies.filter(([name]) => !name.startsWith("per-"))) {
    for (const [vname, vargs] of variants) {
      if (sname.startsWith("default") && vname !== "plain") continue;
      it(`${sname}, ${vname}: mqttv5 pub -> our broker -> mqttv5 sub at QoS 0, 1, 2`, async () => {
        await pubSub([...sargs, ...vargs], [...sargs, ...vargs], [0, 1, 2]);
      });
    }
  }

  // A per-topic subscriber: its SUBSCRIBE arrives on a client uni stream; SUBACK and deliveries go
  // on the control stream.
  it("per-topic subscriber, plain: control-only mqttv5 pub -> our broker -> mqttv5 sub at QoS 0, 1, 2", async () => {
    await pubSub(["--quic-stream-strategy", "per-topic"], [], [0, 1, 2]);
  });

  // A per-publish subscriber (its SUBSCRIBE goes on the control stream), control-only publishers.
  for (const [vname, vargs] of variants) {
    it(`per-publish subscriber, ${vname}: control-only mqttv5 pub -> our broker -> mqttv5 sub at QoS 0, 1, 2`, async () => {
      await pubSub(["--quic-stream-strategy", "per-publish", ...vargs], vargs, [0, 1, 2]);
    });
  }

  // Publishers in the data-stream strategies, to a control-only subscriber. QoS 0 on a data
  // stream is left out without datagrams (issue 5 notes): `mqttv5 pub` writes PUBLISH on a fresh
  // uni stream then DISCONNECT on the control stream at once; our broker hands the DISCONNECT to
  // the session first and drops the PUBLISH that arrived with it (lost in 15 of 16 tries).
  for (const [sname, sargs] of strategies.filter(([name]) => name.startsWith("per-"))) {
    for (const [vname, vargs] of variants) {
      const levels = vname === "datagrams" ? [0, 1, 2] : [1, 2];
      it(`${sname} publisher, ${vname}: mqttv5 pub -> our broker -> control-only mqttv5 sub at QoS ${levels.join(", ")}`, async () => {
        await pubSub(vargs, [...sargs, ...vargs], levels);
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// our client against mqttv5 broker
// ---------------------------------------------------------------------------------------------

/**
 * Our client against `mqttv5 broker`, with `--quic-delivery-strategy control-only` and our client
 * in `single` stream mode: the combination that works today. Left out until fixed (issue 5 notes):
 * the broker's default delivery strategy opens server streams that begin with an MQoQ flow header
 * (0x13 server data) our client does not parse; and it refuses client-opened bidi data streams
 * (ERROR_STREAM_TYPE, 0xB5), so our `multi` and `per-topic` modes lose their data streams.
 */
describe("our client against mqttv5 broker over QUIC (control-only delivery, single stream)", () => {
  let quicPort = 0;
  let brokerProc: Proc | undefined;

  beforeAll(async () => {
    const [tcp, tls, quic] = [await freePort(), await freePort(), await freePort()];
    quicPort = quic;
    brokerProc = run(bin, [
      "broker",
      "--non-interactive",
      "--allow-anonymous",
      "--storage-backend",
      "memory",
      "--no-sys-topics",
      "--host",
      `127.0.0.1:${tcp}`,
      "--tls-host",
      `127.0.0.1:${tls}`,
      "--quic-host",
      `127.0.0.1:${quic}`,
      "--tls-cert",
      certPem,
      "--tls-key",
      keyPem,
      "--storage-dir",
      join(dir, "broker-storage"),
      "--quic-delivery-strategy",
      "control-only",
    ]);
    // ready when a QUIC connection succeeds
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (brokerProc.child.exitCode !== null) throw new Error(`mqttv5 broker exited:\n${brokerProc.out()}`);
      try {
        const c = await connect(`mqtt+quic://127.0.0.1:${quicPort}`, {
          ca: caText,
          streamMode: "single",
          reconnect: false,
          connectTimeout: 1000,
        });
        await c.end();
        break;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`mqttv5 broker not ready: ${e}\n${brokerProc.out()}`);
        await delay(200);
      }
    }
  }, 20_000);
  afterAll(async () => {
    await killAll();
  });

  const opts = () => ({
    ca: caText,
    streamMode: "single" as const,
    reconnect: false as const,
    protocolVersion: 5 as const,
  });
  const byQos = (a: { qos: number }, b: { qos: number }) => a.qos - b.qos;

  it("our client publishes and receives QoS 0, 1, 2 through mqttv5 broker", async () => {
    const clients: MqttClient[] = [];
    try {
      const sub = await connect(`mqtt+quic://127.0.0.1:${quicPort}`, { ...opts(), clientId: "ours-sub" });
      clients.push(sub);
      const got: { topic: string; qos: number; payload: string }[] = [];
      sub.on("message", (topic, payload, packet) => {
        got.push({ topic, qos: packet.qos, payload: payload.toString() });
      });
      await sub.subscribe("ours/#", { qos: 2 });
      const pub = await connect(`mqtt+quic://127.0.0.1:${quicPort}`, { ...opts(), clientId: "ours-pub" });
      clients.push(pub);
      for (const qos of [0, 1, 2] as const) await pub.publish(`ours/q${qos}`, `hi ${qos}`, { qos });
      await waitFor(() => got.length >= 3, 5000, "three messages");
      expect(got.sort(byQos)).toEqual([
        { topic: "ours/q0", qos: 0, payload: "hi 0" },
        { topic: "ours/q1", qos: 1, payload: "hi 1" },
        { topic: "ours/q2", qos: 2, payload: "hi 2" },
      ]);
    } finally {
      await Promise.all(clients.map((c) => c.end(true)));
    }
  });

  it("mqttv5 pub -> mqttv5 broker -> our client at QoS 0, 1, 2", async () => {
    const sub = await connect(`mqtt+quic://127.0.0.1:${quicPort}`, { ...opts(), clientId: "ours-sub-v5" });
    try {
      const got: { topic: string; qos: number; payload: string }[] = [];
      sub.on("message", (topic, payload, packet) => {
        got.push({ topic, qos: packet.qos, payload: payload.toString() });
      });
      await sub.subscribe("fromv5/#", { qos: 2 });
      for (const qos of [0, 1, 2]) {
        const pub = run(bin, [
          "pub",
          "--url",
          `quics://127.0.0.1:${quicPort}`,
          "--ca-cert",
          caPem,
          "--non-interactive",
          "--topic",
          `fromv5/q${qos}`,
          "--qos",
          String(qos),
          "--message",
          `v5 ${qos}`,
        ]);
        expect(await exitOf(pub), pub.out()).toBe(0);
      }
      await waitFor(() => got.length >= 3, 5000, "three messages");
      expect(got.sort(byQos)).toEqual([
        { topic: "fromv5/q0", qos: 0, payload: "v5 0" },
        { topic: "fromv5/q1", qos: 1, payload: "v5 1" },
        { topic: "fromv5/q2", qos: 2, payload: "v5 2" },
      ]);
    } finally {
      await sub.end(true);
    }
  });
});
