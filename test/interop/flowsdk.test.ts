/**
 * Interop over QUIC with EMQ's `flowsdk` crate (0.7.0, feature `quic`), over real UDP on loopback,
 * through our broker (`Broker.listenQuic`, ALPN `mqtt`):
 *
 * - `--mode single`: flowsdk's `TokioAsyncMqttClient` on a `quic://` peer, the whole session on
 *   one bidirectional stream;
 * - `--mode multi`: flowsdk's `QuicMqttEngine`, a control stream (CONNECT, PING, DISCONNECT) plus
 *   one client-opened bidirectional data stream per topic, carrying that topic's SUBSCRIBE and
 *   deliveries, or its PUBLISHes and their acks (the EMQX multi-stream rules of DESIGN.md).
 *
 * Every direction (flowsdk pub -> our client, our client pub -> flowsdk sub, flowsdk -> flowsdk),
 * with our client in each of its stream modes (per-topic, multi, single), QoS 0, 1 and 2, MQTT 5
 * and 3.1.1. Certificates are verified for real: a test CA from
 * src/tls/certgen.ts is flowsdk's `--ca` and our client's `ca`.
 *
 * The client program is interop/flowsdk-client (built by its build.sh, run by .ci/run). These
 * tests never skip: without the binary they fail, saying how to build it.
 */

import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type MqttClient, type StreamMode } from "../../src/mqtt/client/index.js";
import { Broker } from "../../src/mqtt/index.js";
import { waitFor } from "../mqtt/client/helpers.js";
import { exitOf as exitWithin, interopPki, type Proc, ProcGroup } from "./procs.js";

const BUILD_HINT =
  "build it with: bash interop/flowsdk-client/build.sh (cargo, flowsdk 0.7.0 with feature quic)";

/** The client: $FLOWSDK_CLIENT_BIN, or the release build under $CARGO_TARGET_DIR or the crate's target/. */
function flowsdkBinary(): string {
  const crate = join(import.meta.dirname, "../../interop/flowsdk-client");
  const candidates = [
    process.env.FLOWSDK_CLIENT_BIN,
    process.env.CARGO_TARGET_DIR ? join(process.env.CARGO_TARGET_DIR, "release/flowsdk-client") : undefined,
    join(crate, "target/release/flowsdk-client"),
  ];
  for (const p of candidates) {
    if (!p) continue;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  const required = process.env.CI === "true" || process.env.REQUIRE_INTEROP === "1";
  throw new Error(
    `flowsdk-client not found${required ? " (required: CI / REQUIRE_INTEROP)" : ""}; ${BUILD_HINT}`,
  );
}

type Mode = "single" | "multi";
type Version = "5" | "3.1.1";
interface Msg {
  topic: string;
  qos: number;
  payload: string;
}

const group = new ProcGroup();
const run = (args: string[]): Proc => group.run(bin, args, { RUST_LOG: "warn", NO_COLOR: "1" });
const exitOf = (p: Proc, ms = 15_000): Promise<number | null> => exitWithin(p, ms);

/** The JSON lines of flowsdk-client's stdout (stderr lines, interleaved, are not JSON objects). */
function events(out: string): Record<string, unknown>[] {
  const res: Record<string, unknown>[] = [];
  for (const line of out.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      res.push(JSON.parse(line) as Record<string, unknown>);
    } catch {}
  }
  return res;
}

/** The `message` events, as { topic, qos, payload }, in arrival order. */
function received(out: string): Msg[] {
  return events(out)
    .filter((e) => e.event === "message")
    .map((e) => ({ topic: String(e.topic), qos: Number(e.qos), payload: String(e.payload) }));
}

const byTopic = (a: Msg, b: Msg) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0);

let caPem = "";
let caText = "";
let certText = "";
let keyText = "";
let bin = "";

beforeAll(() => {
  bin = flowsdkBinary();
  ({ caPem, caText, certText, keyText } = interopPki("flowsdk", 57));
});

afterAll(async () => {
  await group.killAll();
});

describe("flowsdk clients (single-stream and multi-stream) through our broker over QUIC", () => {
  let broker: Broker | undefined;
  let port = 0;

  beforeAll(async () => {
    broker = new Broker();
    ({ port } = await broker.listenQuic({
      port: 0,
      host: "127.0.0.1",
      cert: certText,
      key: keyText,
      alpn: ["mqtt"],
    }));
  });
  afterAll(async () => {
    await group.killAll();
    await broker?.close();
  });

  let n = 0;
  const common = (mode: Mode, version: Version) => [
    "--mode",
    mode,
    "--url",
    `quic://127.0.0.1:${port}`,
    "--ca",
    caPem,
    "--mqtt-version",
    version,
    "--timeout",
    "10",
  ];

  /** Starts `flowsdk-client sub` and resolves once it printed every SUBACK (granted). */
  async function startSub(mode: Mode, version: Version, clientId: string, filters: string[], count: number) {
    const p = run([
      ...common(mode, version),
      "--action",
      "sub",
      "--client-id",
      clientId,
      ...filters.flatMap((f) => ["--topic", f]),
      "--qos",
      "2",
      "--count",
      String(count),
    ]);
    let exited = false;
    void p.exited.then(() => {
      exited = true;
    });
    await waitFor(
      () => exited || events(p.out()).filter((e) => e.event === "subscribed").length === filters.length,
      10_000,
      `flowsdk sub ${clientId} subscribed`,
    );
    const subs = events(p.out()).filter((e) => e.event === "subscribed");
    // (it may already have exited, successfully, when a retained message was all it waited for)
    if (subs.length < filters.length) throw new Error(`flowsdk sub exited before subscribing:\n${p.out()}`);
    for (const s of subs) expect(s.reason_codes, p.out()).toEqual([2]);
    if (mode === "multi") {
      // each filter on its own data stream (not the control stream, 0)
      const streams = subs.map((s) => s.stream);
      expect(new Set(streams).size, p.out()).toBe(filters.length);
      expect(streams, p.out()).not.toContain(0);
    }
    return p;
  }

  /** `flowsdk-client pub` of one message per topic at `qos`; asserts a clean exit and the acks. */
  async function flowsdkPub(
    mode: Mode,
    version: Version,
    clientId: string,
    topics: string[],
    qos: number,
    extra: string[] = [],
  ) {
    const p = run([
      ...common(mode, version),
      "--action",
      "pub",
      "--client-id",
      clientId,
      ...topics.flatMap((t) => ["--topic", t]),
      "--qos",
      String(qos),
      "--message",
      `${mode} v${version} qos${qos}`,
      ...extra,
    ]);
    expect(await exitOf(p), p.out()).toBe(0);
    const pubs = events(p.out()).filter((e) => e.event === "published");
    expect(pubs.length, p.out()).toBe(topics.length);
    // 0x00 success, or 0x10 no matching subscribers (MQTT 5 §3.4.2.1; also a success)
    if (qos > 0) for (const e of pubs) expect([0, 0x10], p.out()).toContain(e.reason_code);
  }

  const versions: Version[] = ["5", "3.1.1"];
  const modes: Mode[] = ["single", "multi"];
  const levels = [0, 1, 2];
  /** Our client's stream modes (DESIGN.md): one stream, EMQX-style control + data, per-topic. */
  const ourModes: StreamMode[] = ["per-topic", "multi", "single"];

  for (const version of versions) {
    const protocolVersion = version === "5" ? 5 : 4;

    for (const [mode, streamMode] of modes.flatMap((m) => ourModes.map((o) => [m, o] as const))) {
      it(`MQTT ${version}, flowsdk ${mode} pub -> our broker -> our ${streamMode} client sub at QoS 0, 1, 2`, async () => {
        const k = n++;
        const base = `fs/${k}`;
        const sub = await connect(`mqtt+quic://127.0.0.1:${port}`, {
          ca: caText,
          clientId: `ours-sub-${k}`,
          protocolVersion,
          streamMode,
          reconnect: false,
        });
        try {
          const got: Msg[] = [];
          sub.on("message", (topic, payload, packet) => {
            got.push({ topic, qos: packet.qos, payload: payload.toString() });
          });
          await sub.subscribe(`${base}/#`, { qos: 2 });
          for (const qos of levels)
            await flowsdkPub(mode, version, `fs-pub-${k}-${qos}`, [`${base}/q${qos}`], qos);
          await waitFor(() => got.length >= levels.length, 5000, "three messages");
          expect(got.sort(byTopic)).toEqual(
            levels.map((qos) => ({
              topic: `${base}/q${qos}`,
              qos,
              payload: `${mode} v${version} qos${qos}`,
            })),
          );
        } finally {
          await sub.end(true);
          await group.killAll();
        }
      });

      it(`MQTT ${version}, our ${streamMode} client pub -> our broker -> flowsdk ${mode} sub at QoS 0, 1, 2`, async () => {
        const k = n++;
        const base = `ours/${k}`;
        const clients: MqttClient[] = [];
        try {
          const sub = await startSub(mode, version, `fs-sub-${k}`, [`${base}/#`], levels.length);
          const pub = await connect(`mqtt+quic://127.0.0.1:${port}`, {
            ca: caText,
            clientId: `ours-pub-${k}`,
            protocolVersion,
            streamMode,
            reconnect: false,
          });
          clients.push(pub);
          for (const qos of levels)
            await pub.publish(`${base}/q${qos}`, `ours qos${qos}`, { qos: qos as 0 | 1 | 2 });
          expect(await exitOf(sub), sub.out()).toBe(0);
          expect(received(sub.out()).sort(byTopic), sub.out()).toEqual(
            levels.map((qos) => ({ topic: `${base}/q${qos}`, qos, payload: `ours qos${qos}` })),
          );
        } finally {
          await Promise.all(clients.map((c) => c.end(true)));
          await group.killAll();
        }
      });
    }

    for (const subMode of modes) {
      for (const pubMode of modes) {
        it(`MQTT ${version}, flowsdk ${pubMode} pub -> our broker -> flowsdk ${subMode} sub at QoS 0, 1, 2 (two topics)`, async () => {
          const k = n++;
          const base = `ff/${k}`;
          try {
            // two filters: in multi mode two data streams, each with its own deliveries
            const sub = await startSub(
              subMode,
              version,
              `ff-sub-${k}`,
              [`${base}/a/#`, `${base}/b/#`],
              2 * levels.length,
            );
            for (const qos of levels) {
              await flowsdkPub(
                pubMode,
                version,
                `ff-pub-${k}-${qos}`,
                [`${base}/a/q${qos}`, `${base}/b/q${qos}`],
                qos,
              );
            }
            expect(await exitOf(sub), sub.out()).toBe(0);
            const got = received(sub.out());
            expect([...got].sort(byTopic), sub.out()).toEqual(
              ["a", "b"].flatMap((t) =>
                levels.map((qos) => ({
                  topic: `${base}/${t}/q${qos}`,
                  qos,
                  payload: `${pubMode} v${version} qos${qos}`,
                })),
              ),
            );
            if (subMode === "multi") {
              // deliveries for a filter come on the data stream that carried its SUBSCRIBE (DESIGN.md)
              const ev = events(sub.out());
              const streamOf = new Map(
                ev.filter((e) => e.event === "subscribed").map((e) => [e.topic, e.stream]),
              );
              for (const m of ev.filter((e) => e.event === "message")) {
                const filter = String(m.topic).startsWith(`${base}/a/`) ? `${base}/a/#` : `${base}/b/#`;
                expect(m.stream, sub.out()).toBe(streamOf.get(filter));
              }
            }
          } finally {
            await group.killAll();
          }
        });
      }
    }

    // Retained messages: set by a flowsdk publisher, delivered with the retain flag to a flowsdk
    // subscriber that subscribes afterwards (in multi mode on the SUBSCRIBE's data stream).
    for (const [pubMode, subMode] of [
      ["single", "multi"],
      ["multi", "single"],
    ] as const) {
      it(`MQTT ${version}, retained: flowsdk ${pubMode} pub --retain, then flowsdk ${subMode} sub gets it with retain set`, async () => {
        const k = n++;
        const topic = `rt/${k}/state`;
        try {
          await flowsdkPub(pubMode, version, `rt-pub-${k}`, [topic], 1, ["--retain"]);
          const sub = await startSub(subMode, version, `rt-sub-${k}`, [`rt/${k}/#`], 1);
          expect(await exitOf(sub), sub.out()).toBe(0);
          const msgs = events(sub.out()).filter((e) => e.event === "message");
          expect(
            msgs.map((e) => [e.topic, e.qos, e.retain, e.payload]),
            sub.out(),
          ).toEqual([[topic, 1, true, `${pubMode} v${version} qos1`]]);
          if (subMode === "multi") {
            const subscribed = events(sub.out()).find((e) => e.event === "subscribed");
            expect(msgs[0]?.stream, sub.out()).toBe(subscribed?.stream);
          }
        } finally {
          await group.killAll();
        }
      });
    }
  }
});
