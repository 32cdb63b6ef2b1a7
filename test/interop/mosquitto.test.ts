/**
 * Interop over TCP with Eclipse Mosquitto (issue 5): the mosquitto command line clients
 * (`mosquitto_sub`, `mosquitto_pub`) against our broker, and our client against a real `mosquitto`
 * broker started on a free loopback port with its own configuration (never the system service).
 *
 * These tests never skip: without the binaries they fail, saying how to install them
 * (`apt-get install mosquitto mosquitto-clients`).
 */

import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import type { IPublishPacket } from "mqtt-packet";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { type ConnectOptions, connect, MqttClient } from "../../src/mqtt/client/index.js";
import { Broker } from "../../src/mqtt/index.js";
import { CuttableDialer, waitFor } from "../mqtt/client/helpers.js";
import { exitOf as exitWithin, type Proc, ProcGroup } from "./procs.js";

const INSTALL_HINT =
  "install Debian's mosquitto and mosquitto-clients: apt-get update && apt-get install -y mosquitto mosquitto-clients";

/** Absolute path of a binary on PATH (or in the sbin directories, where Debian puts `mosquitto`). */
function findBinary(name: string): string {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  const required = process.env.CI === "true" || process.env.REQUIRE_INTEROP === "1";
  throw new Error(
    `${name} not found${required ? " (required: CI / REQUIRE_INTEROP)" : ""}; mosquitto interop tests need it: ${INSTALL_HINT}`,
  );
}

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
const run = (bin: string, args: string[]): Proc => group.run(bin, args);
const killAll = (): Promise<void> => group.killAll();
const exitOf = (p: Proc, ms = 5000): Promise<number | null> => exitWithin(p, ms);

/** The message lines (`topic payload` of `-v`) of mosquitto_sub output, without `-d` debug lines. */
function messageLines(out: string): string[] {
  return out
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("Client ") && !l.startsWith("Subscribed (mid"));
}

/** `(d0, q1, r0, m1, 'topic', ...` of `-d` output: [qos, retain] of each received PUBLISH. */
function receivedPublishes(out: string): { qos: number; retain: boolean; topic: string }[] {
  const re = /received PUBLISH \(d\d, q(\d), r(\d), m\d+, '([^']*)'/g;
  return [...out.matchAll(re)].map((m) => ({ qos: Number(m[1]), retain: m[2] === "1", topic: m[3] ?? "" }));
}

// ---------------------------------------------------------------------------------------------
// mosquitto_pub / mosquitto_sub against our broker
// ---------------------------------------------------------------------------------------------

describe("mosquitto clients against our broker over TCP", () => {
  let broker: Broker | undefined;
  let port = 0;
  let pubBin = "";
  let subBin = "";

  beforeAll(async () => {
    pubBin = findBinary("mosquitto_pub");
    subBin = findBinary("mosquitto_sub");
    broker = new Broker();
    ({ port } = await broker.listenTcp({ port: 0, host: "127.0.0.1" }));
  });
  afterAll(async () => {
    await killAll();
    await broker?.close();
  });

  const common = () => ["-h", "127.0.0.1", "-p", String(port)];

  /**
   * Resolves when our broker has recorded a subscription of `clientId` (mosquitto_sub's stdout is
   * block-buffered into a pipe, so its `-d` lines cannot tell when it is ready).
   */
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

  /** Starts mosquitto_sub with `-i clientId` and waits until it is subscribed. */
  async function startSub(clientId: string, args: string[]): Promise<Proc> {
    const ready = subscribed(clientId);
    const p = run(subBin, [...common(), "-i", clientId, ...args]);
    await Promise.race([
      ready,
      exitOf(p).then((code) => {
        throw new Error(`mosquitto_sub exited (${code}) before subscribing:\n${p.out()}`);
      }),
    ]);
    return p;
  }

  for (const [version, v] of [
    ["mqttv311", "311"],
    ["mqttv5", "5"],
  ] as const) {
    describe(`-V ${version}`, () => {
      it("delivers QoS 0, 1 and 2 from mosquitto_pub to mosquitto_sub", async () => {
        const sub = await startSub(`sub-q-${v}`, [
          "-V",
          version,
          "-t",
          `mq${v}/qos/#`,
          "-q",
          "2",
          "-C",
          "3",
          "-v",
          "-d",
        ]);
        for (const qos of [0, 1, 2]) {
          const pub = run(
            pubBin,
            [...common(), "-V", version, "-i", `pub-q${qos}-${v}`, "-q", String(qos)].concat([
              "-t",
              `mq${v}/qos/${qos}`,
              "-m",
              `hello qos${qos}`,
            ]),
          );
          expect(await exitOf(pub), pub.out()).toBe(0);
        }
        expect(await exitOf(sub), sub.out()).toBe(0);
        expect(messageLines(sub.out())).toEqual([
          `mq${v}/qos/0 hello qos0`,
          `mq${v}/qos/1 hello qos1`,
          `mq${v}/qos/2 hello qos2`,
        ]);
        expect(receivedPublishes(sub.out()).map((p) => p.qos)).toEqual([0, 1, 2]);
        // the QoS 2 flow completed on the subscriber's side
        expect(sub.out()).toMatch(/sending PUBCOMP/);
      });

      it("delivers a retained message to a later mosquitto_sub", async () => {
        const pub = run(
          pubBin,
          [...common(), "-V", version, "-i", `pub-r-${v}`, "-q", "1", "-r"].concat([
            "-t",
            `mq${v}/retained`,
            "-m",
            "kept",
          ]),
        );
        expect(await exitOf(pub), pub.out()).toBe(0);
        const sub = run(
          subBin,
          [...common(), "-V", version, "-i", `sub-r-${v}`, "-t", `mq${v}/retained`].concat([
            "-q",
            "1",
            "-C",
            "1",
            "-v",
            "-d",
          ]),
        );
        expect(await exitOf(sub), sub.out()).toBe(0);
        expect(messageLines(sub.out())).toEqual([`mq${v}/retained kept`]);
        expect(receivedPublishes(sub.out())).toEqual([{ qos: 1, retain: true, topic: `mq${v}/retained` }]);
        // an empty retained message clears it
        const clear = run(pubBin, [
          ...common(),
          "-V",
          version,
          "-q",
          "1",
          "-r",
          "-n",
          "-t",
          `mq${v}/retained`,
        ]);
        expect(await exitOf(clear), clear.out()).toBe(0);
      });

      it("publishes the will of a SIGKILLed mosquitto_sub to another mosquitto_sub and to our client", async () => {
        const ours = await connect(`mqtt://127.0.0.1:${port}`, {
          protocolVersion: v === "5" ? 5 : 4,
          clientId: `ours-will-${v}`,
          reconnect: false,
        });
        try {
          const got: string[] = [];
          ours.on("message", (t, p) => got.push(`${t} ${p.toString()}`));
          await ours.subscribe(`mq${v}/will`, { qos: 1 });
          const watcher = await startSub(`watch-w-${v}`, [
            "-V",
            version,
            "-t",
            `mq${v}/will`,
            "-q",
            "1",
            "-C",
            "1",
            "-v",
          ]);
          const doomed = await startSub(
            `doomed-${v}`,
            ["-V", version, "-t", `mq${v}/other`].concat([
              "--will-topic",
              `mq${v}/will`,
              "--will-payload",
              "gone",
              "--will-qos",
              "1",
            ]),
          );
          expect(got).toEqual([]); // no will while it is connected
          doomed.child.kill("SIGKILL");
          expect(await exitOf(watcher), watcher.out()).toBe(0);
          expect(messageLines(watcher.out()), watcher.out()).toEqual([`mq${v}/will gone`]);
          await waitFor(() => got.length === 1, 5000, "the will at our client");
          expect(got).toEqual([`mq${v}/will gone`]);
        } finally {
          await ours.end(true);
        }
      });

      it("keeps a persistent mosquitto_sub -c session and delivers what was published while it was away", async () => {
        const id = `sub-c-${v}`;
        const sessionPresent: boolean[] = [];
        const onConnect = (c: { clientId: string }, present: boolean) => {
          if (c.clientId === id) sessionPresent.push(present);
        };
        broker?.on("clientConnect", onConnect);
        onTestFinished(() => {
          broker?.off("clientConnect", onConnect);
        });
        // start without a session (a clean connect discards any earlier one)
        const fresh = run(subBin, [...common(), "-V", version, "-i", id, "-E", "-t", `mq${v}/durable`]);
        expect(await exitOf(fresh), fresh.out()).toBe(0);
        const first = await startSub(id, ["-V", version, "-c", "-E", "-t", `mq${v}/durable`, "-q", "1"]);
        expect(await exitOf(first), first.out()).toBe(0); // -E: DISCONNECT once subscribed
        const pub = run(pubBin, [
          ...common(),
          "-V",
          version,
          "-q",
          "1",
          "-t",
          `mq${v}/durable`,
          "-m",
          "while away",
        ]);
        expect(await exitOf(pub), pub.out()).toBe(0);
        const again = run(
          subBin,
          [...common(), "-V", version, "-i", id, "-c", "-t", `mq${v}/durable`].concat([
            "-q",
            "1",
            "-C",
            "1",
            "-v",
            "-d",
          ]),
        );
        expect(await exitOf(again), again.out()).toBe(0);
        expect(messageLines(again.out())).toEqual([`mq${v}/durable while away`]);
        expect(sessionPresent).toEqual([false, false, true]);
        // tidy: a clean connect discards the session
        const clean = run(subBin, [...common(), "-V", version, "-i", id, "-E", "-t", `mq${v}/durable`]);
        expect(await exitOf(clean), clean.out()).toBe(0);
      });

      it("carries a 512 KiB payload (under the broker's default 1 MiB packet limit) from mosquitto_pub to mosquitto_sub", async () => {
        const file = join(mkdtempSync(join(tmpdir(), "mquictt-mq-")), "big.bin");
        const big = Buffer.alloc(512 * 1024, "x");
        writeFileSync(file, big);
        try {
          const sub = await startSub(
            `sub-big-${v}`,
            ["-V", version, "-t", `mq${v}/big`, "-q", "1", "-C", "1"].concat(["-F", "%t %l %q"]),
          );
          const pub = run(pubBin, [...common(), "-V", version, "-q", "1", "-t", `mq${v}/big`, "-f", file]);
          expect(await exitOf(pub), pub.out()).toBe(0);
          expect(await exitOf(sub), sub.out()).toBe(0);
          expect(sub.out().trim()).toBe(`mq${v}/big ${512 * 1024} 1`);
        } finally {
          rmSync(join(file, ".."), { recursive: true, force: true });
        }
      });
    });
  }

  it("forwards MQTT 5 publish properties from mosquitto_pub to mosquitto_sub (-V mqttv5)", async () => {
    const sub = await startSub(
      "sub-props",
      ["-V", "mqttv5", "-t", "mq5/props", "-q", "1", "-C", "1"]
        .concat(["-D", "subscribe", "subscription-identifier", "7"])
        .concat(["-F", "%t|%p|%P|%R|%C|%D|%F|%S|%q"]),
    );
    const pub = run(
      pubBin,
      [...common(), "-V", "mqttv5", "-q", "1", "-t", "mq5/props", "-m", "with props"]
        .concat(["-D", "publish", "user-property", "k", "v"])
        .concat(["-D", "publish", "response-topic", "mq5/reply"])
        .concat(["-D", "publish", "content-type", "text/plain"])
        .concat(["-D", "publish", "correlation-data", "abc"])
        .concat(["-D", "publish", "payload-format-indicator", "1"])
        .concat(["-D", "publish", "message-expiry-interval", "60"]),
    );
    expect(await exitOf(pub), pub.out()).toBe(0);
    expect(await exitOf(sub), sub.out()).toBe(0);
    expect(sub.out().trim()).toBe("mq5/props|with props|k:v|mq5/reply|text/plain|abc|1|7|1");
  });

  it("a v5 mosquitto_sub sees the message expiry interval counted down (-V mqttv5)", async () => {
    const pub = run(
      pubBin,
      [...common(), "-V", "mqttv5", "-q", "1", "-r", "-t", "mq5/expiry", "-m", "soon"].concat([
        "-D",
        "publish",
        "message-expiry-interval",
        "60",
      ]),
    );
    expect(await exitOf(pub), pub.out()).toBe(0);
    const sub = run(subBin, [
      ...common(),
      "-V",
      "mqttv5",
      "-t",
      "mq5/expiry",
      "-C",
      "1",
      "-F",
      "%t %p %E %r",
    ]);
    expect(await exitOf(sub), sub.out()).toBe(0);
    const [topic, payload, expiry, retain] = sub.out().trim().split(" ");
    expect([topic, payload, retain]).toEqual(["mq5/expiry", "soon", "1"]);
    expect(Number(expiry)).toBeGreaterThan(55);
    expect(Number(expiry)).toBeLessThanOrEqual(60);
    const clear = run(pubBin, [...common(), "-V", "mqttv5", "-q", "1", "-r", "-n", "-t", "mq5/expiry"]);
    expect(await exitOf(clear), clear.out()).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// our client against a real mosquitto broker
// ---------------------------------------------------------------------------------------------

describe("our client against a mosquitto broker over TCP", () => {
  let mosquitto: Proc | undefined;
  let dir = "";
  let url = "";
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    const bin = findBinary("mosquitto");
    const port = await freePort();
    dir = mkdtempSync(join(tmpdir(), "mquictt-mosquitto-"));
    const conf = join(dir, "mosquitto.conf");
    writeFileSync(
      conf,
      [`listener ${port} 127.0.0.1`, "allow_anonymous true", "persistence false", "log_dest stdout", ""].join(
        "\n",
      ),
    );
    mosquitto = run(bin, ["-c", conf]);
    // ready when it accepts TCP connections
    const start = Date.now();
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = createConnection({ port, host: "127.0.0.1" }, () => {
          s.destroy();
          resolve(true);
        });
        s.on("error", () => resolve(false));
      });
      if (ok) break;
      if (mosquitto.child.exitCode !== null || Date.now() - start > 5000)
        throw new Error(`mosquitto did not start on port ${port}:\n${mosquitto.out()}`);
      await delay(20);
    }
    url = `mqtt://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await Promise.all(clients.splice(0).map((c) => c.end(true).catch(() => {})));
    if (mosquitto && mosquitto.child.exitCode === null) {
      mosquitto.child.kill("SIGTERM");
      await exitOf(mosquitto).catch(() => mosquitto?.child.kill("SIGKILL"));
    }
    await killAll();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function client(opts: ConnectOptions): Promise<MqttClient> {
    const c = await connect(url, { reconnect: false, ...opts });
    clients.push(c);
    return c;
  }

  for (const protocolVersion of [4, 5] as const) {
    describe(`protocol ${protocolVersion}`, () => {
      const p = `ours${protocolVersion}`;

      it("connects (clean session) and reports no session present", async () => {
        const c = await client({ protocolVersion, clientId: `${p}-connect` });
        expect(c.connected).toBe(true);
        expect(c.transportKind).toBe("tcp");
        expect(c.connackInfo?.sessionPresent).toBe(false);
        await c.end();
        expect(c.connected).toBe(false);
      });

      it("QoS 0, 1 and 2 both ways between two of our clients", async () => {
        const a = await client({ protocolVersion, clientId: `${p}-a` });
        const b = await client({ protocolVersion, clientId: `${p}-b` });
        const gotA: IPublishPacket[] = [];
        const gotB: IPublishPacket[] = [];
        a.on("message", (_t, _p, pkt) => gotA.push(pkt));
        b.on("message", (_t, _p, pkt) => gotB.push(pkt));
        expect(await a.subscribe(`${p}/to-a/#`, { qos: 2 })).toEqual([{ topic: `${p}/to-a/#`, qos: 2 }]);
        expect(await b.subscribe(`${p}/to-b/#`, { qos: 2 })).toEqual([{ topic: `${p}/to-b/#`, qos: 2 }]);
        for (const qos of [0, 1, 2] as const) {
          await a.publish(`${p}/to-b/${qos}`, `from a ${qos}`, { qos });
          await b.publish(`${p}/to-a/${qos}`, `from b ${qos}`, { qos });
        }
        await waitFor(() => gotA.length === 3 && gotB.length === 3, 5000, "three messages each way");
        const summary = (ps: IPublishPacket[]) => ps.map((x) => [x.topic, x.payload.toString(), x.qos]);
        expect(summary(gotB)).toEqual([0, 1, 2].map((q) => [`${p}/to-b/${q}`, `from a ${q}`, q]));
        expect(summary(gotA)).toEqual([0, 1, 2].map((q) => [`${p}/to-a/${q}`, `from b ${q}`, q]));
      });

      it("retained messages reach a later subscriber with the retain flag", async () => {
        const pub = await client({ protocolVersion, clientId: `${p}-rpub` });
        await pub.publish(`${p}/retained`, "kept", { qos: 1, retain: true });
        const sub = await client({ protocolVersion, clientId: `${p}-rsub` });
        const got: IPublishPacket[] = [];
        sub.on("message", (_t, _p, pkt) => got.push(pkt));
        await sub.subscribe(`${p}/retained`, { qos: 1 });
        await waitFor(() => got.length === 1, 5000, "the retained message");
        expect([got[0]?.topic, got[0]?.payload.toString(), got[0]?.retain, got[0]?.qos]).toEqual([
          `${p}/retained`,
          "kept",
          true,
          1,
        ]);
        // a live publish is not flagged retained
        await pub.publish(`${p}/retained`, "live", { qos: 1 });
        await waitFor(() => got.length === 2, 5000, "the live message");
        expect(got[1]?.retain).toBe(false);
        await pub.publish(`${p}/retained`, "", { qos: 1, retain: true }); // clear
      });

      it("a persistent session gets the QoS 1 message mosquitto queued while it was offline", async () => {
        const opts: ConnectOptions = {
          protocolVersion,
          clientId: `${p}-durable`,
          clean: false,
          reconnect: false,
        };
        // start from a fresh session: a clean connect discards any earlier one
        await (await connect(url, { ...opts, clean: true, sessionExpiryInterval: 0 })).end();
        const first = await connect(url, opts);
        expect(first.connackInfo?.sessionPresent).toBe(false);
        await first.subscribe(`${p}/durable`, { qos: 1 });
        await first.end();

        const pub = await client({ protocolVersion, clientId: `${p}-dpub` });
        await pub.publish(`${p}/durable`, "while away", { qos: 1 });

        const again = new MqttClient(url, opts);
        clients.push(again);
        const got: IPublishPacket[] = [];
        again.on("message", (_t, _p, pkt) => got.push(pkt));
        await again.start(true);
        expect(again.connackInfo?.sessionPresent).toBe(true);
        await waitFor(() => got.length === 1, 5000, "the queued message");
        expect([got[0]?.topic, got[0]?.payload.toString(), got[0]?.qos]).toEqual([
          `${p}/durable`,
          "while away",
          1,
        ]);
        await again.end();
        // tidy: drop the session
        await (await connect(url, { ...opts, clean: true, sessionExpiryInterval: 0 })).end();
      });

      it("mosquitto publishes the will when our client's socket closes abruptly", async () => {
        const watcher = await client({ protocolVersion, clientId: `${p}-wwatch` });
        const got: string[] = [];
        watcher.on("message", (t, pl) => got.push(`${t} ${pl.toString()}`));
        await watcher.subscribe(`${p}/will`, { qos: 1 });
        const dialer = new CuttableDialer();
        const doomed = await client({
          protocolVersion,
          clientId: `${p}-doomed`,
          dial: dialer.dial,
          will: { topic: `${p}/will`, payload: "gone", qos: 1 },
        });
        expect(doomed.connected).toBe(true);
        await delay(50);
        expect(got).toEqual([]);
        dialer.cut();
        await waitFor(() => got.length === 1, 5000, "the will");
        expect(got).toEqual([`${p}/will gone`]);
      });

      it("no will after a clean DISCONNECT", async () => {
        const watcher = await client({ protocolVersion, clientId: `${p}-nwatch` });
        const got: string[] = [];
        watcher.on("message", (t) => got.push(t));
        await watcher.subscribe(`${p}/nowill`, { qos: 1 });
        const polite = await client({
          protocolVersion,
          clientId: `${p}-polite`,
          will: { topic: `${p}/nowill`, payload: "gone", qos: 1 },
        });
        await polite.end();
        // a marker message proves the watcher would have seen a will by now
        await watcher.publish(`${p}/nowill`, "marker", { qos: 1 });
        await waitFor(() => got.length >= 1, 5000, "the marker");
        await delay(50);
        expect(got).toEqual([`${p}/nowill`]);
      });
    });
  }

  describe("protocol 5 features", () => {
    it("publish properties, no-local and shared subscriptions between our clients", async () => {
      const a = await client({ protocolVersion: 5, clientId: "ours5-feat-a" });
      const b = await client({ protocolVersion: 5, clientId: "ours5-feat-b" });
      const gotA: IPublishPacket[] = [];
      const gotB: IPublishPacket[] = [];
      a.on("message", (_t, _p, pkt) => gotA.push(pkt));
      b.on("message", (_t, _p, pkt) => gotB.push(pkt));

      // properties survive the trip through mosquitto
      await b.subscribe("ours5/props", { qos: 1 });
      await a.publish("ours5/props", "p", {
        qos: 1,
        properties: {
          userProperties: { k: "v" },
          contentType: "text/plain",
          responseTopic: "ours5/reply",
          correlationData: Buffer.from("abc"),
          messageExpiryInterval: 60,
        },
      });
      await waitFor(() => gotB.length === 1, 5000, "the message with properties");
      const props = gotB[0]?.properties;
      expect(props?.userProperties).toEqual({ k: "v" });
      expect(props?.contentType).toBe("text/plain");
      expect(props?.responseTopic).toBe("ours5/reply");
      expect(props?.correlationData?.toString()).toBe("abc");
      expect(props?.messageExpiryInterval).toBeGreaterThan(55);

      // no-local: a's own publish is not sent back to it, b still gets it
      await a.subscribe("ours5/nl", { qos: 1, nl: true });
      await b.subscribe("ours5/nl", { qos: 1 });
      await a.publish("ours5/nl", "mine", { qos: 1 });
      await waitFor(() => gotB.length === 2, 5000, "the no-local message at b");
      await delay(50);
      expect(gotA).toEqual([]);

      // a shared subscription gives each message to one member of the group
      await a.subscribe("$share/g/ours5/shared", { qos: 1 });
      await b.subscribe("$share/g/ours5/shared", { qos: 1 });
      const pub = await client({ protocolVersion: 5, clientId: "ours5-feat-pub" });
      for (let i = 0; i < 6; i++) await pub.publish("ours5/shared", `s${i}`, { qos: 1 });
      const shared = () => [...gotA, ...gotB].filter((x) => x.topic === "ours5/shared");
      await waitFor(() => shared().length === 6, 5000, "six shared messages");
      await delay(50);
      expect(
        shared()
          .map((x) => x.payload.toString())
          .sort(),
      ).toEqual(["s0", "s1", "s2", "s3", "s4", "s5"]);
      expect(gotA.length).toBeGreaterThan(0);
    });
  });
});
