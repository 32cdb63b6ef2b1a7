/** v5 No Local [MQTT-3.8.3-3] (and the Protocol Error on a shared subscription [MQTT-3.8.3-4]). */
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import { connect, makeBroker, subscribe } from "./helpers.js";

describe("v5 No Local", () => {
  it("a client does not receive its own messages on a No Local subscription; others do", async () => {
    const { broker } = makeBroker();
    const a = await connect(broker, { clientId: "a" });
    const b = await connect(broker, { clientId: "b" });
    await subscribe(a.ctl, "chat", 1, { nl: true });
    await subscribe(b.ctl, "chat", 1, { nl: true });
    a.ctl.send({
      cmd: "publish",
      topic: "chat",
      payload: Buffer.from("from a"),
      qos: 0,
      retain: false,
      dup: false,
    });
    expect((await b.ctl.expect("publish")).payload.toString()).toBe("from a");
    await a.ctl.expectNothing();
  });

  it("without No Local a client receives its own messages", async () => {
    const { broker } = makeBroker();
    const a = await connect(broker, { clientId: "a" });
    await subscribe(a.ctl, "echo", 0);
    a.ctl.send({
      cmd: "publish",
      topic: "echo",
      payload: Buffer.from("me"),
      qos: 0,
      retain: false,
      dup: false,
    });
    expect((await a.ctl.expect("publish")).payload.toString()).toBe("me");
  });

  it("No Local on a shared subscription is a Protocol Error", async () => {
    const { broker } = makeBroker();
    const a = await connect(broker, { clientId: "a" });
    a.ctl.send({
      cmd: "subscribe",
      messageId: 1,
      subscriptions: [{ topic: "$share/g/t", qos: 0, nl: true, rap: false, rh: 0 }],
    });
    expect((await a.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.ProtocolError);
  });
});
