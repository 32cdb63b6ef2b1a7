/**
 * Interop over QUIC with the `mqttv5` command-line tool (crate mqttv5-cli 0.29.10, built on the
 * Rust `mqtt5` crate and quinn; ALPN `mqtt`, or `MQTT-next` when it sends flow headers), over real
 * UDP on loopback:
 *
 * - `mqttv5 pub` -> our broker -> `mqttv5 sub` in each client stream strategy (control-only, the
 *   default; per-publish: a fresh uni stream per PUBLISH; per-topic: a uni stream per topic), plain,
 *   with flow headers and with QUIC datagrams, at QoS 0, 1 and 2; with our broker preferring ALPN
 *   "MQTT-next" (mqttv5 then writes flow headers) and with its default preference "mqtt" first.
 * - our client in each stream mode (per-topic, multi, single) against `mqttv5 broker` in each of
 *   its delivery strategies (per-topic, the default, and per-publish: server-opened streams that
 *   begin with a flow header; control-only), QoS 0, 1 and 2, our client publishing and receiving,
 *   and `mqttv5 pub` -> `mqttv5 broker` -> our client. The mqttv5 broker takes client data on uni
 *   streams only (a client bidi data stream is refused with 0xB5 whatever the ALPN), and prefers
 *   ALPN "MQTT-next": our client's `quicDataStreams: "auto"` offers both ALPNs and speaks the uni
 *   dialect there; with "bidi" it gets the typed MqttStreamRefusedError.
 *
 * Certificates are verified for real: a test CA from src/tls/certgen.ts, written to PEM files, is
 * `mqttv5 --ca-cert` (with a `quics://` URL; `quic://` would skip verification) and our client's
 * `ca`; the mqttv5 broker serves the leaf issued by it.
 *
 * The binary comes from interop/mqttv5/build.sh (run by .ci/run). These tests never skip: without
 * it they fail, saying how to build it.
 */

import { accessSync, constants } from "node:fs";
import { createServer } from "node:net";
import { delimiter, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ConnectOptions,
  connect,
  type MqttClient,
  MqttStreamRefusedError,
  type StreamMode,
} from "../../src/mqtt/client/index.js";
import { Broker } from "../../src/mqtt/index.js";
import { waitFor } from "../mqtt/client/helpers.js";
import { exitOf as exitWithin, interopPki, type Proc, ProcGroup } from "./procs.js";

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

const ENV = { RUST_LOG: "warn", NO_COLOR: "1" };
/** Long-lived processes of this file (the mqttv5 brokers). */
const group = new ProcGroup();
const exitOf = (p: Proc, ms = 8000): Promise<number | null> => exitWithin(p, ms);

/** Runs `body` with a process group of its own (tests run concurrently), killed afterwards. */
async function withProcs<T>(body: (run: (args: string[]) => Proc) => Promise<T>): Promise<T> {
  const own = new ProcGroup();
  try {
    return await body((args) => own.run(bin, args, ENV));
  } finally {
    await own.killAll();
  }
}

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
  ({ dir, caPem, certPem, keyPem, caText, certText, keyText } = interopPki("mqttv5", 55));
});

afterAll(async () => {
  await group.killAll();
});

// ---------------------------------------------------------------------------------------------
// mqttv5 pub / sub against our broker
// ---------------------------------------------------------------------------------------------

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

for (const alpn of [
  ["MQTT-next", "mqtt"],
  ["mqtt", "MQTT-next"],
]) {
  describe(`mqttv5 clients against our broker over QUIC (ALPN ${alpn.join(", ")})`, () => {
    let broker: Broker | undefined;
    let port = 0;
    let n = 0;
    const negotiated = new Map<string, string | undefined>();

    beforeAll(async () => {
      broker = new Broker();
      ({ port } = await broker.listenQuic({
        port: 0,
        host: "127.0.0.1",
        cert: certText,
        key: keyText,
        ...(alpn[0] === "mqtt" ? {} : { alpn }), // the default is "mqtt", "MQTT-next"
      }));
      broker.on("clientConnect", (c) => negotiated.set(c.clientId, c.transport.alpn));
    });
    afterAll(async () => {
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

    /**
     * One `mqttv5 sub` (with `subArgs`, counting three messages) and one `mqttv5 pub` (with
     * `pubArgs`) per QoS level 0, 1, 2; asserts every message arrives once, at its QoS.
     */
    async function pubSub(subArgs: string[], pubArgs: string[]): Promise<void> {
      const k = n++;
      const base = `v5/${k}`;
      const levels = [0, 1, 2];
      await withProcs(async (run) => {
        const ready = subscribed(`mqttv5-sub-${k}`);
        const sub = run([
          "sub",
          ...common(),
          "--client-id",
          `mqttv5-sub-${k}`,
          ...subArgs,
          "--topic",
          `${base}/#`,
          "--qos",
          "2",
          "--count",
          String(levels.length),
          "--show-properties",
        ]);
        await Promise.race([
          ready,
          exitOf(sub, 10_000).then((code) => {
            throw new Error(`mqttv5 sub exited (${code}) before subscribing:\n${sub.out()}`);
          }),
        ]);
        for (const qos of levels) {
          const pub = run([
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
          levels.map((qos) => ({ topic: `${base}/q${qos}`, qos, payload: `hello qos${qos}` })),
        );
      });
    }

    // Publisher and subscriber in the same strategy and variant; QoS 0 on data streams included
    // (a per-publish QoS 0 PUBLISH rides a fresh uni stream written just before DISCONNECT).
    for (const [sname, sargs] of strategies) {
      for (const [vname, vargs] of variants) {
        if (sname.startsWith("default") && vname !== "plain") continue;
        it.concurrent(`${sname}, ${vname}: mqttv5 pub -> our broker -> mqttv5 sub at QoS 0, 1, 2`, async () => {
          await pubSub([...sargs, ...vargs], [...sargs, ...vargs]);
        });
      }
    }

    // Mixed: data-stream publishers to a control-only subscriber, and the reverse.
    for (const [sname, sargs] of strategies.filter(([name]) => name.startsWith("per-"))) {
      it.concurrent(`${sname} publisher -> control-only subscriber, and control-only publisher -> ${sname} subscriber`, async () => {
        await pubSub([], sargs);
        await pubSub(sargs, []);
      });
    }

    it("the ALPN the broker prefers is the one negotiated (mqttv5 offers MQTT-next only with flow headers)", async () => {
      await withProcs(async (run) => {
        for (const [id, extra] of [
          ["alpn-plain", []],
          ["alpn-flow", ["--quic-flow-headers"]],
        ] as const) {
          const pub = run([
            "pub",
            ...common(),
            ...extra,
            "--client-id",
            id,
            "--topic",
            "alpn",
            "--message",
            "x",
          ]);
          expect(await exitOf(pub), pub.out()).toBe(0);
        }
      });
      expect(negotiated.get("alpn-plain")).toBe("mqtt");
      expect(negotiated.get("alpn-flow")).toBe(alpn[0]);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// our client against mqttv5 broker
// ---------------------------------------------------------------------------------------------

/** Starts `mqttv5 broker` with a delivery strategy; resolves with its QUIC port once it answers. */
async function startMqttv5Broker(delivery: string): Promise<number> {
  const [tcp, tls, quic] = [await freePort(), await freePort(), await freePort()];
  const p = group.run(
    bin,
    [
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
      join(dir, `broker-storage-${delivery}`),
      "--quic-delivery-strategy",
      delivery,
    ],
    ENV,
  );
  // ready when a QUIC connection succeeds
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (p.child.exitCode !== null) throw new Error(`mqttv5 broker exited:\n${p.out()}`);
    try {
      const c = await connect(`mqtt+quic://127.0.0.1:${quic}`, {
        ca: caText,
        streamMode: "single",
        reconnect: false,
        connectTimeout: 1000,
      });
      await c.end();
      return quic;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`mqttv5 broker not ready: ${e}\n${p.out()}`);
      await delay(200);
    }
  }
}

const deliveries = ["per-topic", "per-publish", "control-only"] as const;
const modes: StreamMode[] = ["per-topic", "multi", "single"];

type Got = { topic: string; qos: number; payload: string };
const byQos = (a: { qos: number }, b: { qos: number }) => a.qos - b.qos;

describe("our client against mqttv5 broker over QUIC", () => {
  const ports = new Map<string, number>();

  beforeAll(async () => {
    const started = await Promise.all(deliveries.map((d) => startMqttv5Broker(d)));
    for (const [i, d] of deliveries.entries()) ports.set(d, started[i]!);
  }, 30_000);

  const url = (delivery: string) => `mqtt+quic://127.0.0.1:${ports.get(delivery)}`;
  const opts = (streamMode: StreamMode, clientId: string): ConnectOptions => ({
    ca: caText,
    streamMode,
    reconnect: false,
    protocolVersion: 5,
    clientId,
  });

  /** Subscribes `client` to `filter` at QoS 2 and collects what arrives. */
  async function collect(client: MqttClient, filter: string): Promise<Got[]> {
    const got: Got[] = [];
    client.on("message", (topic, payload, packet) => {
      got.push({ topic, qos: packet.qos, payload: payload.toString() });
    });
    await client.subscribe(filter, { qos: 2 });
    return got;
  }

  for (const delivery of deliveries) {
    for (const mode of modes) {
      it.concurrent(`${delivery} delivery, our client in ${mode} mode: publishes and receives QoS 0, 1, 2`, async () => {
        const tag = `${delivery}-${mode}`;
        const clients: MqttClient[] = [];
        try {
          const sub = await connect(url(delivery), opts(mode, `ours-sub-${tag}`));
          clients.push(sub);
          const got = await collect(sub, `ours/${tag}/#`);
          const pub = await connect(url(delivery), opts(mode, `ours-pub-${tag}`));
          clients.push(pub);
          for (const qos of [0, 1, 2] as const)
            await pub.publish(`ours/${tag}/q${qos}`, `hi ${qos}`, { qos });
          // and per-topic publisher/subscriber handles (their own streams in the multi-stream modes)
          const handle = await pub.publisher(`ours/${tag}/handle`);
          await handle.publish("via handle", { qos: 1 });
          await waitFor(() => got.length >= 4, 8000, `four messages (${JSON.stringify(got)})`);
          expect(got.sort(byQos)).toEqual([
            { topic: `ours/${tag}/q0`, qos: 0, payload: "hi 0" },
            { topic: `ours/${tag}/q1`, qos: 1, payload: "hi 1" },
            { topic: `ours/${tag}/handle`, qos: 1, payload: "via handle" },
            { topic: `ours/${tag}/q2`, qos: 2, payload: "hi 2" },
          ]);
          // The broker picked ALPN MQTT-next; the multi-stream modes speak the uni dialect.
          const dialect = { alpn: "MQTT-next", dataStreams: mode === "single" ? "none" : "uni" };
          expect(sub.quicDialect).toEqual(dialect);
          expect(pub.quicDialect).toEqual(dialect);
        } finally {
          await Promise.all(clients.map((c) => c.end(true)));
        }
      });
    }

    it.concurrent(`${delivery} delivery: mqttv5 pub -> mqttv5 broker -> our client (per-topic) at QoS 0, 1, 2`, async () => {
      const sub = await connect(url(delivery), opts("per-topic", `ours-sub-v5-${delivery}`));
      try {
        const got = await collect(sub, `fromv5/${delivery}/#`);
        await withProcs(async (run) => {
          for (const qos of [0, 1, 2]) {
            const pub = run([
              "pub",
              "--url",
              `quics://127.0.0.1:${ports.get(delivery)}`,
              "--ca-cert",
              caPem,
              "--non-interactive",
              "--topic",
              `fromv5/${delivery}/q${qos}`,
              "--qos",
              String(qos),
              "--message",
              `v5 ${qos}`,
            ]);
            expect(await exitOf(pub), pub.out()).toBe(0);
          }
        });
        await waitFor(() => got.length >= 3, 8000, "three messages");
        expect(got.sort(byQos)).toEqual([
          { topic: `fromv5/${delivery}/q0`, qos: 0, payload: "v5 0" },
          { topic: `fromv5/${delivery}/q1`, qos: 1, payload: "v5 1" },
          { topic: `fromv5/${delivery}/q2`, qos: 2, payload: "v5 2" },
        ]);
      } finally {
        await sub.end(true);
      }
    });

    it.concurrent(`${delivery} delivery: our client (per-topic) -> mqttv5 broker -> mqttv5 sub at QoS 0, 1, 2`, async () => {
      const pub = await connect(url(delivery), opts("per-topic", `ours-pub-v5-${delivery}`));
      try {
        await withProcs(async (run) => {
          const sub = run([
            "sub",
            "--url",
            `quics://127.0.0.1:${ports.get(delivery)}`,
            "--ca-cert",
            caPem,
            "--non-interactive",
            "--topic",
            `tov5/${delivery}/#`,
            "--qos",
            "2",
            "--count",
            "3",
            "--show-properties",
          ]);
          // mqttv5 sub prints nothing when subscribed: publish retained messages, so the order of
          // its SUBSCRIBE and our PUBLISHes does not matter.
          for (const qos of [0, 1, 2] as const) {
            await pub.publish(`tov5/${delivery}/q${qos}`, `to v5 ${qos}`, { qos, retain: true });
          }
          expect(await exitOf(sub, 10_000), sub.out()).toBe(0);
          expect(received(sub.out()).sort(byQos), sub.out()).toEqual([
            { topic: `tov5/${delivery}/q0`, qos: 0, payload: "to v5 0" },
            { topic: `tov5/${delivery}/q1`, qos: 1, payload: "to v5 1" },
            { topic: `tov5/${delivery}/q2`, qos: 2, payload: "to v5 2" },
          ]);
        });
      } finally {
        await pub.end(true);
      }
    });
  }

  it("with quicDataStreams 'bidi' (ALPN mqtt only) the broker's 0xB5 refusal is a typed error", async () => {
    const client = await connect(url("per-topic"), {
      ...opts("multi", "ours-bidi"),
      quicDataStreams: "bidi",
    });
    const errors: Error[] = [];
    client.on("error", (e) => errors.push(e));
    const closed = new Promise<void>((r) => client.once("close", () => r()));
    // The PUBLISH opens the bidi data stream the broker refuses; the link goes down with the error.
    client.publish("bidi/x", "x", { qos: 1 }).catch(() => {});
    await closed;
    const refused = errors.find((e) => e instanceof MqttStreamRefusedError) as
      | MqttStreamRefusedError
      | undefined;
    expect(refused?.errorCode).toBe(0xb5);
    await client.end(true);
  });
});
