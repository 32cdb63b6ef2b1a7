/** v5 Shared Subscriptions: `$share/group/filter`, round robin, online members first. */
import { describe, expect, it } from "vitest";
import { connect, makeBroker, settle, subscribe } from "./helpers.js";

describe("v5 shared subscriptions", () => {
  it("each message goes to one member of the group, round robin; normal subscribers get all", async () => {
    const { broker } = makeBroker();
    const a = await connect(broker, { clientId: "a" });
    const b = await connect(broker, { clientId: "b" });
    const all = await connect(broker, { clientId: "all" });
    await subscribe(a.ctl, "$share/workers/jobs/#", 1);
    await subscribe(b.ctl, "$share/workers/jobs/#", 1);
    await subscribe(all.ctl, "jobs/#", 0);
    const p = await connect(broker, { clientId: "p" });
    for (let i = 0; i < 4; i++) {
      p.ctl.send({
        cmd: "publish",
        topic: `jobs/${i}`,
        payload: Buffer.from(String(i)),
        qos: 0,
        retain: false,
        dup: false,
      });
    }
    const got = async (c: typeof a) => {
      const out: string[] = [];
      for (;;) {
        const m = await c.ctl.next(60).catch(() => undefined);
        if (!m) return out;
        if (m.cmd === "publish") {
          out.push(m.payload.toString());
          if (m.qos > 0) c.ctl.send({ cmd: "puback", messageId: m.messageId! });
        }
      }
    };
    const [ga, gb, gall] = await Promise.all([got(a), got(b), got(all)]);
    expect(ga.length).toBe(2);
    expect(gb.length).toBe(2);
    expect([...ga, ...gb].sort()).toEqual(["0", "1", "2", "3"]);
    expect(gall).toEqual(["0", "1", "2", "3"]);
  });

  it("prefers online members; an offline persistent member gets messages only when alone", async () => {
    const { broker } = makeBroker();
    const a = await connect(broker, {
      clientId: "a",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    const b = await connect(broker, { clientId: "b" });
    await subscribe(a.ctl, "$share/g/t", 1);
    await subscribe(b.ctl, "$share/g/t", 1);
    a.kill();
    await a.ctl.closed;
    await settle();
    const p = await connect(broker, { clientId: "p" });
    for (let i = 0; i < 3; i++) {
      p.ctl.send({
        cmd: "publish",
        topic: "t",
        payload: Buffer.from(String(i)),
        qos: 1,
        retain: false,
        dup: false,
        messageId: i + 1,
      });
    }
    for (let i = 0; i < 3; i++) {
      const m = await b.ctl.expect("publish");
      b.ctl.send({ cmd: "puback", messageId: m.messageId! });
      await p.ctl.expect("puback");
    }
    expect(broker.session("a")?.queue.length).toBe(0);
    b.ctl.send({ cmd: "unsubscribe", messageId: 9, unsubscriptions: ["$share/g/t"] });
    await b.ctl.expect("unsuback");
    p.ctl.send({
      cmd: "publish",
      topic: "t",
      payload: Buffer.from("for a"),
      qos: 1,
      retain: false,
      dup: false,
      messageId: 9,
    });
    await p.ctl.expect("puback");
    expect(broker.session("a")?.queue.map((r) => r.message.payload.toString())).toEqual(["for a"]);
  });

  it("a member gets the QoS it was granted and its own subscription identifier", async () => {
    const { broker } = makeBroker();
    const a = await connect(broker, { clientId: "a" });
    await subscribe(a.ctl, "$share/g/t", 0, { subscriptionIdentifier: 4 });
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send({
      cmd: "publish",
      topic: "t",
      payload: Buffer.from("x"),
      qos: 2,
      retain: false,
      dup: false,
      messageId: 1,
    });
    const m = await a.ctl.expect("publish");
    expect(m.qos).toBe(0); // [MQTT-4.8.2-3]
    expect(m.properties?.subscriptionIdentifier).toBe(4);
  });
});
