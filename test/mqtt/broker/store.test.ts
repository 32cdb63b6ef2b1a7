/** Persistence: async stores, and a broker restarted on the same stores resumes sessions. */
import { describe, expect, it } from "vitest";
import { Broker } from "../../../src/mqtt/broker/broker.js";
import { ManualScheduler } from "../../../src/mqtt/broker/scheduler.js";
import {
  type AppMessage,
  MemoryRetainedStore,
  MemorySessionStore,
  type RetainedStore,
  type SessionState,
  type SessionStore,
} from "../../../src/mqtt/broker/store.js";
import { connect, settle, sleep, subscribe } from "./helpers.js";

const later = <T>(v: () => T): Promise<T> => new Promise((r) => setTimeout(() => r(v()), 2));

/** Stores that answer every call asynchronously, like a database would. */
class SlowSessionStore implements SessionStore {
  readonly inner = new MemorySessionStore();
  saves = 0;
  loadAll(): Promise<Iterable<SessionState>> {
    return later(() => this.inner.loadAll());
  }
  save(state: SessionState): Promise<void> {
    this.saves++;
    return later(() => this.inner.save(state));
  }
  delete(clientId: string): Promise<void> {
    return later(() => this.inner.delete(clientId));
  }
}
class SlowRetainedStore implements RetainedStore {
  readonly inner = new MemoryRetainedStore();
  set(m: AppMessage): Promise<void> {
    return later(() => this.inner.set(m));
  }
  delete(topic: string): Promise<void> {
    return later(() => this.inner.delete(topic));
  }
  match(filter: string): Promise<AppMessage[]> {
    return later(() => this.inner.match(filter));
  }
  count(): Promise<number> {
    return later(() => this.inner.count());
  }
}

describe("stores", () => {
  it("works with asynchronous stores and keeps each publisher's order", async () => {
    const sessionStore = new SlowSessionStore();
    const broker = new Broker({
      scheduler: new ManualScheduler(),
      sessionStore,
      retainedStore: new SlowRetainedStore(),
    });
    const s = await connect(broker, {
      clientId: "s",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    await subscribe(s.ctl, "t/#", 1);
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send({
      cmd: "publish",
      topic: "t/r",
      payload: Buffer.from("1"),
      qos: 1,
      retain: true,
      dup: false,
      messageId: 1,
    });
    p.ctl.send({
      cmd: "publish",
      topic: "t/x",
      payload: Buffer.from("2"),
      qos: 0,
      retain: false,
      dup: false,
    });
    p.ctl.send({
      cmd: "publish",
      topic: "t/r",
      payload: Buffer.from("3"),
      qos: 1,
      retain: true,
      dup: false,
      messageId: 2,
    });
    const got = [];
    for (let i = 0; i < 3; i++) {
      const m = await s.ctl.expect("publish");
      got.push(m.payload.toString());
      if (m.qos) s.ctl.send({ cmd: "puback", messageId: m.messageId! });
    }
    expect(got).toEqual(["1", "2", "3"]);
    const late = await connect(broker, { clientId: "late" });
    await subscribe(late.ctl, "t/r", 0);
    expect((await late.ctl.expect("publish")).payload.toString()).toBe("3");
    await sleep(20);
    expect(sessionStore.saves).toBeGreaterThan(0);
    expect([...(await sessionStore.loadAll())].map((st) => st.clientId)).toEqual(["s"]);
  });

  it("a broker restarted on the same stores resumes sessions, queues and retained messages", async () => {
    const sessionStore = new SlowSessionStore();
    const retainedStore = new MemoryRetainedStore();
    const first = new Broker({ scheduler: new ManualScheduler(), sessionStore, retainedStore });
    const s = await connect(first, {
      clientId: "s",
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    await subscribe(s.ctl, "news", 1);
    s.ctl.send({ cmd: "disconnect", reasonCode: 0 });
    await s.ctl.closed;
    const p = await connect(first, { clientId: "p" });
    p.ctl.send({
      cmd: "publish",
      topic: "news",
      payload: Buffer.from("queued"),
      qos: 1,
      retain: false,
      dup: false,
      messageId: 1,
    });
    p.ctl.send({
      cmd: "publish",
      topic: "kept",
      payload: Buffer.from("retained"),
      qos: 0,
      retain: true,
      dup: false,
    });
    await p.ctl.expect("puback");
    await settle();
    await first.close();

    const second = new Broker({ scheduler: new ManualScheduler(), sessionStore, retainedStore });
    await second.start();
    expect(second.metrics.sessions).toBe(1);
    expect(second.metrics.retained).toBe(1);
    const back = await connect(second, {
      clientId: "s",
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    expect(back.connack?.sessionPresent).toBe(true);
    expect((await back.ctl.expect("publish")).payload.toString()).toBe("queued");
    // Its subscription was restored too.
    const p2 = await connect(second, { clientId: "p2" });
    p2.ctl.send({
      cmd: "publish",
      topic: "news",
      payload: Buffer.from("live"),
      qos: 0,
      retain: false,
      dup: false,
    });
    expect((await back.ctl.expect("publish")).payload.toString()).toBe("live");
  });

  it("store failures are reported, not thrown", async () => {
    const broken: SessionStore = {
      loadAll: () => [],
      save: () => Promise.reject(new Error("disk full")),
      delete: () => {
        throw new Error("nope");
      },
    };
    const broker = new Broker({ scheduler: new ManualScheduler(), sessionStore: broken });
    const errors: string[] = [];
    broker.on("storeError", (e) => errors.push(e.message));
    const s = await connect(broker, {
      clientId: "s",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    await subscribe(s.ctl, "t", 0);
    await sleep(5);
    const again = await connect(broker, { clientId: "s", clean: true });
    expect(again.connack?.reasonCode).toBe(0);
    await sleep(5);
    expect(errors).toContain("disk full");
    expect(errors).toContain("nope");
  });
});
