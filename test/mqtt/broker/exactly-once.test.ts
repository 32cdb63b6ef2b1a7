/**
 * Exactly-once QoS 2 and at-least-once QoS 1 across killed connections: the connection dies
 * after PUBLISH, after PUBREC and after PUBREL, on the publishing side and on the subscribing
 * side; the client resumes its session; each message arrives exactly once (QoS 2) and resends
 * carry DUP (QoS 1 and the QoS 2 PUBLISH). Over in-memory transports and over TCP.
 */
import type { IPublishPacket } from "mqtt-packet";
import { afterEach, describe, expect, it } from "vitest";
import type { Broker } from "../../../src/mqtt/broker/broker.js";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import {
  type ConnectOptions,
  connect,
  makeBroker,
  type RawClient,
  settle,
  sleep,
  subscribe,
} from "./helpers.js";

function pub(
  topic: string,
  payload: string,
  qos: 0 | 1 | 2,
  messageId?: number,
  dup = false,
): IPublishPacket {
  return {
    cmd: "publish",
    topic,
    payload: Buffer.from(payload),
    qos,
    retain: false,
    dup,
    ...(messageId ? { messageId } : {}),
  };
}

for (const transport of ["memory", "tcp"] as const) {
  for (const version of [4, 5] as const) {
    describe(`exactly once over ${transport}, MQTT ${version === 5 ? "5.0" : "3.1.1"}`, () => {
      let broker: Broker;
      let port: number | undefined;
      const open: RawClient[] = [];

      async function setup(): Promise<void> {
        ({ broker } = makeBroker());
        port =
          transport === "tcp" ? (await broker.listenTcp({ port: 0, host: "127.0.0.1" })).port : undefined;
      }
      async function client(clientId: string, clean: boolean): Promise<RawClient> {
        const o: ConnectOptions = {
          version,
          clientId,
          clean,
          ...(version === 5 && !clean ? { properties: { sessionExpiryInterval: 3600 } } : {}),
          ...(port !== undefined ? { tcpPort: port } : {}),
        };
        const c = await connect(broker, o);
        open.push(c);
        return c;
      }
      async function kill(c: RawClient): Promise<void> {
        c.kill();
        await c.ctl.closed;
        // Let the broker notice.
        for (let i = 0; i < 50 && broker.metrics.clients > open.filter((o) => !o.ctl.ended).length; i++) {
          await sleep(2);
        }
        await settle();
      }
      afterEach(async () => {
        for (const c of open.splice(0)) c.kill();
        await broker.close();
      });

      /** Collects what a subscriber receives, completing every flow it is given. */
      async function drainSubscriber(s: RawClient, ms = 60): Promise<string[]> {
        const got: string[] = [];
        for (;;) {
          const p = await s.ctl.next(ms).catch(() => undefined);
          if (!p) return got;
          if (p.cmd === "publish") {
            got.push(p.payload.toString());
            if (p.qos === 1) s.ctl.send({ cmd: "puback", messageId: p.messageId! });
            if (p.qos === 2) s.ctl.send({ cmd: "pubrec", messageId: p.messageId! });
          } else if (p.cmd === "pubrel") {
            s.ctl.send({ cmd: "pubcomp", messageId: p.messageId! });
          }
        }
      }

      it("publisher killed after PUBLISH (PUBREC lost): the DUP resend is not delivered again", async () => {
        await setup();
        const s = await client("sub", true);
        await subscribe(s.ctl, "t", 2);
        const p = await client("pub", false);
        p.ctl.send(pub("t", "m1", 2, 1));
        await sleep(10);
        await kill(p);
        const p2 = await client("pub", false);
        expect(p2.connack?.sessionPresent).toBe(true);
        p2.ctl.send(pub("t", "m1", 2, 1, true));
        expect((await p2.ctl.expect("pubrec")).messageId).toBe(1);
        p2.ctl.send({ cmd: "pubrel", messageId: 1 });
        expect((await p2.ctl.expect("pubcomp")).messageId).toBe(1);
        expect(await drainSubscriber(s)).toEqual(["m1"]);
      });

      it("publisher killed after PUBREC: PUBREL on the new connection completes it", async () => {
        await setup();
        const s = await client("sub", true);
        await subscribe(s.ctl, "t", 2);
        const p = await client("pub", false);
        p.ctl.send(pub("t", "m2", 2, 3));
        await p.ctl.expect("pubrec");
        await kill(p);
        const p2 = await client("pub", false);
        p2.ctl.send({ cmd: "pubrel", messageId: 3 });
        const comp = await p2.ctl.expect("pubcomp");
        expect(comp.messageId).toBe(3);
        if (version === 5) expect(comp.reasonCode).toBe(0);
        expect(await drainSubscriber(s)).toEqual(["m2"]);
        expect(broker.session("pub")?.inboundQos2.size).toBe(0);
      });

      it("publisher killed after PUBREL (PUBCOMP lost): the resent PUBREL is answered, nothing redelivered", async () => {
        await setup();
        const s = await client("sub", true);
        await subscribe(s.ctl, "t", 2);
        const p = await client("pub", false);
        p.ctl.send(pub("t", "m3", 2, 4));
        await p.ctl.expect("pubrec");
        p.ctl.send({ cmd: "pubrel", messageId: 4 });
        await sleep(10);
        await kill(p);
        const p2 = await client("pub", false);
        p2.ctl.send({ cmd: "pubrel", messageId: 4 });
        const comp = await p2.ctl.expect("pubcomp");
        if (version === 5) expect(comp.reasonCode).toBe(ReasonCode.PacketIdentifierNotFound);
        expect(await drainSubscriber(s)).toEqual(["m3"]);
      });

      it("subscriber killed after PUBLISH: resent with DUP and the same identifier", async () => {
        await setup();
        const s = await client("sub", false);
        await subscribe(s.ctl, "t", 2);
        const p = await client("pub", true);
        p.ctl.send(pub("t", "m4", 2, 1));
        await p.ctl.expect("pubrec");
        p.ctl.send({ cmd: "pubrel", messageId: 1 });
        const first = await s.ctl.expect("publish");
        expect(first.dup).toBe(false);
        await kill(s);
        const s2 = await client("sub", false);
        expect(s2.connack?.sessionPresent).toBe(true);
        const again = await s2.ctl.expect("publish");
        expect(again).toMatchObject({ dup: true, qos: 2, messageId: first.messageId });
        s2.ctl.send({ cmd: "pubrec", messageId: again.messageId! });
        expect((await s2.ctl.expect("pubrel")).messageId).toBe(first.messageId);
        s2.ctl.send({ cmd: "pubcomp", messageId: again.messageId! });
        await s2.ctl.expectNothing(40);
        expect(broker.session("sub")?.inflight.size).toBe(0);
      });

      it("subscriber killed after PUBREC: PUBREL (not PUBLISH) is resent [MQTT-4.3.3-6]", async () => {
        await setup();
        const s = await client("sub", false);
        await subscribe(s.ctl, "t", 2);
        const p = await client("pub", true);
        p.ctl.send(pub("t", "m5", 2, 1));
        const d = await s.ctl.expect("publish");
        s.ctl.send({ cmd: "pubrec", messageId: d.messageId! });
        await s.ctl.expect("pubrel");
        await kill(s);
        const s2 = await client("sub", false);
        expect((await s2.ctl.expect("pubrel")).messageId).toBe(d.messageId);
        s2.ctl.send({ cmd: "pubcomp", messageId: d.messageId! });
        await s2.ctl.expectNothing(40);
        expect(broker.session("sub")?.inflight.size).toBe(0);
      });

      it("subscriber killed after receiving PUBREL (PUBCOMP lost): PUBREL again, then done", async () => {
        await setup();
        const s = await client("sub", false);
        await subscribe(s.ctl, "t", 2);
        const p = await client("pub", true);
        p.ctl.send(pub("t", "m6", 2, 1));
        const d = await s.ctl.expect("publish");
        s.ctl.send({ cmd: "pubrec", messageId: d.messageId! });
        await s.ctl.expect("pubrel");
        s.ctl.send({ cmd: "pubcomp", messageId: d.messageId! });
        // The PUBCOMP may or may not get through before the kill: either way no PUBLISH again.
        await kill(s);
        const s2 = await client("sub", false);
        const got = await drainSubscriber(s2);
        expect(got).toEqual([]);
        expect(broker.session("sub")?.inflight.size).toBe(0);
      });

      it("QoS 1: unacknowledged deliveries are resent with DUP after reconnect, then queued ones", async () => {
        await setup();
        const s = await client("sub", false);
        await subscribe(s.ctl, "t", 1);
        const p = await client("pub", true);
        p.ctl.send(pub("t", "a", 1, 1));
        const a = await s.ctl.expect("publish");
        expect(a.dup).toBe(false);
        await kill(s);
        p.ctl.send(pub("t", "b", 1, 2));
        await p.ctl.expect("puback");
        const s2 = await client("sub", false);
        const r1 = await s2.ctl.expect("publish");
        expect(r1).toMatchObject({ dup: true, messageId: a.messageId });
        expect(r1.payload.toString()).toBe("a");
        const r2 = await s2.ctl.expect("publish");
        expect(r2.dup).toBe(false);
        expect(r2.payload.toString()).toBe("b");
      });
    });
  }
}
