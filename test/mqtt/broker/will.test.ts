/** Will messages: abnormal loss, normal DISCONNECT, 0x04, Will Delay, session end, takeover. */
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import { connect, makeBroker, type RawClient, settle, subscribe, TRANSPORT } from "./helpers.js";

const will = (delay?: number, extra: { retain?: boolean; qos?: 0 | 1 | 2 } = {}) => ({
  topic: "status/dev",
  payload: Buffer.from("gone"),
  qos: extra.qos ?? 1,
  retain: extra.retain ?? false,
  ...(delay !== undefined
    ? { properties: { willDelayInterval: delay, userProperties: { why: "test" } } }
    : {}),
});

async function watcher(broker: Parameters<typeof connect>[0]): Promise<RawClient> {
  const w = await connect(broker, { clientId: "watcher" });
  await subscribe(w.ctl, "status/#", 1);
  return w;
}

describe("will messages", () => {
  for (const version of [4, 5] as const) {
    it(`is published when the connection is lost (MQTT ${version})`, async () => {
      const { broker } = makeBroker();
      const w = await watcher(broker);
      const d = await connect(broker, { version, clientId: "dev", will: will() });
      d.kill();
      const m = await w.ctl.expect("publish");
      expect(m.topic).toBe("status/dev");
      expect(m.payload.toString()).toBe("gone");
      expect(m.qos).toBe(1);
    });

    it(`is not published after a normal DISCONNECT (MQTT ${version}) [MQTT-3.14.4-3]`, async () => {
      const { broker } = makeBroker();
      const w = await watcher(broker);
      const d = await connect(broker, { version, clientId: "dev", will: will() });
      d.ctl.send(version === 5 ? { cmd: "disconnect", reasonCode: 0 } : { cmd: "disconnect" });
      await d.ctl.closed;
      await w.ctl.expectNothing(40);
    });
  }

  it("v5: DISCONNECT 0x04 publishes the will", async () => {
    const { broker } = makeBroker();
    const w = await watcher(broker);
    const d = await connect(broker, { clientId: "dev", will: will() });
    d.ctl.send({ cmd: "disconnect", reasonCode: ReasonCode.DisconnectWithWillMessage });
    const m = await w.ctl.expect("publish");
    expect(m.properties?.userProperties).toBeUndefined();
  });

  it("keeps will properties (user properties in order) [MQTT-3.1.3-10]", async () => {
    const { broker } = makeBroker();
    const w = await watcher(broker);
    const d = await connect(broker, {
      clientId: "dev",
      properties: { sessionExpiryInterval: 100 },
      will: {
        ...will(0),
        properties: { willDelayInterval: 0, contentType: "text/plain", userProperties: { a: "1", b: "2" } },
      },
    });
    d.kill();
    const m = await w.ctl.expect("publish");
    expect(m.properties?.contentType).toBe("text/plain");
    expect(Object.entries(m.properties?.userProperties ?? {})).toEqual([
      ["a", "1"],
      ["b", "2"],
    ]);
  });

  it("v5 Will Delay: published after the delay", async () => {
    const { broker, clock } = makeBroker();
    const w = await watcher(broker);
    const d = await connect(broker, {
      clientId: "dev",
      properties: { sessionExpiryInterval: 100 },
      will: will(10),
    });
    d.kill();
    await d.ctl.closed;
    await settle();
    clock.advance(9_999);
    await w.ctl.expectNothing();
    clock.advance(1);
    expect((await w.ctl.expect("publish")).topic).toBe("status/dev");
  });

  it("v5 Will Delay: a reconnect within the delay cancels the will [MQTT-3.1.3-9]", async () => {
    const { broker, clock } = makeBroker();
    const w = await watcher(broker);
    const d = await connect(broker, {
      clientId: "dev",
      properties: { sessionExpiryInterval: 100 },
      will: will(10),
    });
    d.kill();
    await d.ctl.closed;
    await settle();
    clock.advance(5_000);
    await connect(broker, { clientId: "dev", clean: false, properties: { sessionExpiryInterval: 100 } });
    clock.advance(10_000);
    await w.ctl.expectNothing(40);
  });

  it("v5: the will goes out when the session ends before the delay [MQTT-3.1.2-8]", async () => {
    const { broker, clock } = makeBroker();
    const w = await watcher(broker);
    const d = await connect(broker, {
      clientId: "dev",
      properties: { sessionExpiryInterval: 5 },
      will: will(60),
    });
    d.kill();
    await d.ctl.closed;
    await settle();
    clock.advance(5_000);
    await w.ctl.expect("publish");
    expect(broker.session("dev")).toBeUndefined();
  });

  it("v5: session expiry 0 with a will delay publishes at once (the session ends)", async () => {
    const { broker } = makeBroker();
    const w = await watcher(broker);
    const d = await connect(broker, { clientId: "dev", will: will(60) });
    d.kill();
    await w.ctl.expect("publish");
  });

  it("a reconnect with Clean Start after takeover publishes the pending will", async () => {
    const { broker } = makeBroker();
    const w = await watcher(broker);
    await connect(broker, { clientId: "dev", properties: { sessionExpiryInterval: 100 }, will: will(30) });
    await connect(broker, { clientId: "dev", clean: true });
    await w.ctl.expect("publish");
  });

  it("takeover with Clean Start 0 and a will delay keeps the will unpublished", async () => {
    const { broker, clock } = makeBroker();
    const w = await watcher(broker);
    await connect(broker, { clientId: "dev", properties: { sessionExpiryInterval: 100 }, will: will(30) });
    await connect(broker, { clientId: "dev", clean: false, properties: { sessionExpiryInterval: 100 } });
    clock.advance(60_000);
    await w.ctl.expectNothing(40);
  });

  it("a retained will is stored as retained [MQTT-3.1.2-15]", async () => {
    const { broker } = makeBroker();
    const d = await connect(broker, { clientId: "dev", will: will(undefined, { retain: true }) });
    d.kill();
    await d.ctl.closed;
    await settle();
    const later = await connect(broker, { clientId: "later" });
    await subscribe(later.ctl, "status/dev", 0);
    const m = await later.ctl.expect("publish");
    expect(m.retain).toBe(true);
    expect(m.payload.toString()).toBe("gone");
  });

  it("the will is published after a keepalive timeout", async () => {
    const { broker, clock } = makeBroker();
    const w = await watcher(broker);
    await connect(broker, { clientId: "dev", keepalive: 10, will: will() });
    clock.advance(15_000);
    await w.ctl.expect("publish");
  });

  it("authorizePublish can refuse a will", async () => {
    const { broker } = makeBroker({ authorizePublish: (_c, topic) => topic !== "status/dev" });
    const w = await watcher(broker);
    const d = await connect(broker, { clientId: "dev", will: will() });
    d.kill();
    await w.ctl.expectNothing(40);
  });
});

describe("packets received before the peer left", () => {
  it("PUBLISH + DISCONNECT then an immediate close (mosquitto_pub style) with slow hooks: delivered, no will", async () => {
    const { broker } = makeBroker({
      authorizePublish: () => new Promise((r) => setTimeout(() => r(true), 20)),
    });
    const w = await watcher(broker);
    await subscribe(w.ctl, "data", 0);
    const d = await connect(broker, { clientId: "dev", will: will() });
    d.ctl.send({
      cmd: "publish",
      topic: "data",
      payload: Buffer.from("last words"),
      qos: 0,
      retain: false,
      dup: false,
    });
    d.ctl.send({ cmd: "disconnect", reasonCode: 0 });
    d.kill();
    expect((await w.ctl.expect("publish")).payload.toString()).toBe("last words");
    await w.ctl.expectNothing(60);
    expect(broker.metrics.clients).toBe(1);
  });

  // (TCP has one stream: no uni streams to finish.)
  it.runIf(TRANSPORT !== "tcp")(
    "a uni stream finished while the connection was busy is still handled",
    async () => {
      const { broker } = makeBroker({
        authorizePublish: () => new Promise((r) => setTimeout(() => r(true), 10)),
      });
      const w = await watcher(broker);
      await subscribe(w.ctl, "u/#", 0);
      const p = await connect(broker, { clientId: "p" });
      for (let i = 0; i < 3; i++) {
        const u = p.stream(false);
        u.send({
          cmd: "publish",
          topic: `u/${i}`,
          payload: Buffer.from(String(i)),
          qos: 1,
          retain: false,
          dup: false,
          messageId: i + 1,
        });
        u.stream.end();
      }
      const got = [];
      for (let i = 0; i < 3; i++) got.push((await w.ctl.expect("publish")).payload.toString());
      expect(got.sort()).toEqual(["0", "1", "2"]);
      for (let i = 0; i < 3; i++) expect((await p.ctl.expect("puback")).reasonCode).toBe(0);
    },
  );
});
