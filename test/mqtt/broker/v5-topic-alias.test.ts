/** v5 Topic Aliases, inbound and outbound [MQTT-3.3.2-7..12] [MQTT-3.1.2-26] [MQTT-3.1.2-27]. */
import type { IPublishPacket } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import { connect, makeBroker, subscribe } from "./helpers.js";

function pub(topic: string, payload: string, alias?: number): IPublishPacket {
  return {
    cmd: "publish",
    topic,
    payload: Buffer.from(payload),
    qos: 0,
    retain: false,
    dup: false,
    ...(alias !== undefined ? { properties: { topicAlias: alias } } : {}),
  };
}

describe("v5 topic aliases", () => {
  it("inbound: an alias set with a topic resolves later empty topics; a new topic remaps it", async () => {
    const { broker } = makeBroker({ topicAliasMaximum: 4 });
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "#", 0);
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(pub("long/topic/name", "1", 3));
    p.ctl.send(pub("", "2", 3));
    p.ctl.send(pub("other", "3", 3));
    p.ctl.send(pub("", "4", 3));
    const got = [];
    for (let i = 0; i < 4; i++) {
      const m = await s.ctl.expect("publish");
      got.push([m.topic, m.payload.toString()]);
    }
    expect(got).toEqual([
      ["long/topic/name", "1"],
      ["long/topic/name", "2"],
      ["other", "3"],
      ["other", "4"],
    ]);
  });

  it("inbound: alias 0 or above the maximum is DISCONNECT 0x94", async () => {
    const { broker } = makeBroker({ topicAliasMaximum: 2 });
    const a = await connect(broker, { clientId: "a" });
    a.ctl.send(pub("t", "x", 3));
    expect((await a.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.TopicAliasInvalid);
    const b = await connect(broker, { clientId: "b" });
    b.ctl.sendRaw([0x30, 0x07, 0x00, 0x01, 0x74, 0x03, 0x23, 0x00, 0x00]); // topicAlias 0
    expect((await b.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.TopicAliasInvalid);
  });

  it("inbound: an unknown alias with an empty topic is a Protocol Error", async () => {
    const { broker } = makeBroker();
    const a = await connect(broker, { clientId: "a" });
    a.ctl.send(pub("", "x", 1));
    expect((await a.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.ProtocolError);
  });

  it("inbound aliases do not carry over to a new connection", async () => {
    const { broker } = makeBroker();
    const a = await connect(broker, {
      clientId: "a",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    a.ctl.send(pub("t", "x", 1));
    a.kill();
    await a.ctl.closed;
    const b = await connect(broker, {
      clientId: "a",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    b.ctl.send(pub("", "y", 1));
    expect((await b.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.ProtocolError);
  });

  it("outbound: within the client's maximum, the first delivery sets the alias, later ones use it", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s", properties: { topicAliasMaximum: 1 } });
    await subscribe(s.ctl, "#", 0);
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(pub("first/topic", "1"));
    p.ctl.send(pub("first/topic", "2"));
    p.ctl.send(pub("second", "3"));
    const m1 = await s.ctl.expect("publish");
    const m2 = await s.ctl.expect("publish");
    const m3 = await s.ctl.expect("publish");
    expect([m1.topic, m1.properties?.topicAlias]).toEqual(["first/topic", 1]);
    expect([m2.topic, m2.properties?.topicAlias]).toEqual(["", 1]);
    expect([m3.topic, m3.properties?.topicAlias]).toEqual(["second", undefined]); // maximum reached
  });

  it("outbound: no aliases for a client that did not allow them", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "#", 0);
    const p = await connect(broker, { clientId: "p" });
    p.ctl.send(pub("t", "1"));
    p.ctl.send(pub("t", "2"));
    expect((await s.ctl.expect("publish")).properties?.topicAlias).toBeUndefined();
    expect((await s.ctl.expect("publish")).properties?.topicAlias).toBeUndefined();
  });
});
