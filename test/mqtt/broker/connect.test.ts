/** CONNECT: validation, client identifiers, takeover, authentication, refusals. */
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../src/mqtt/errors.js";
import { memoryTransportPair } from "../../../src/mqtt/transport.js";
import { connect, makeBroker, PacketStream, settle } from "./helpers.js";

describe("CONNECT", () => {
  it("accepts MQTT 3.1.1 and 5.0 and advertises the v5 limits", async () => {
    const { broker } = makeBroker({ receiveMaximum: 10, topicAliasMaximum: 5, maxPacketSize: 4096 });
    const c4 = await connect(broker, { version: 4, clientId: "c4" });
    expect(c4.connack).toMatchObject({ returnCode: 0, sessionPresent: false });
    const c5 = await connect(broker, { version: 5, clientId: "c5" });
    expect(c5.connack?.reasonCode).toBe(0);
    expect(c5.connack?.properties).toMatchObject({
      receiveMaximum: 10,
      topicAliasMaximum: 5,
      maximumPacketSize: 4096,
    });
    expect(c5.connack?.properties?.assignedClientIdentifier).toBeUndefined();
    const c3 = await connect(broker, { version: 3, clientId: "c3" });
    expect(c3.connack?.returnCode).toBe(0);
    expect(broker.metrics.clients).toBe(3);
    await broker.close();
  });

  it("assigns a client identifier to an empty one (v5: Assigned Client Identifier)", async () => {
    let n = 0;
    const { broker } = makeBroker({ generateClientId: () => `gen-${++n}` });
    const a = await connect(broker, { version: 5, clientId: "" });
    expect(a.connack?.properties?.assignedClientIdentifier).toBe("gen-1");
    expect(broker.clients.map((c) => c.clientId)).toContain("gen-1");
    // 3.1.1 with clean session: accepted silently.
    const b = await connect(broker, { version: 4, clientId: "", clean: true });
    expect(b.connack?.returnCode).toBe(0);
    expect(broker.clients.map((c) => c.clientId)).toContain("gen-2");
    // 3.1.1 with persistent session: identifier rejected (return code 2). (Raw: mqtt-packet
    // refuses to encode it.)
    const { server, client } = memoryTransportPair();
    broker.handle(server);
    const ctl = new PacketStream(client.control, 4);
    ctl.sendRaw([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00]);
    expect((await ctl.expect("connack")).returnCode).toBe(2);
    await ctl.closed;
  });

  it("assigned identifiers are never those of an existing session", async () => {
    const ids = ["taken", "taken", "fresh"];
    const { broker } = makeBroker({ generateClientId: () => ids.shift()! });
    await connect(broker, { clientId: "taken" });
    const a = await connect(broker, { clientId: "" });
    expect(a.connack?.properties?.assignedClientIdentifier).toBe("fresh");
  });

  it("takes over a session: the old connection gets DISCONNECT 0x8E and is closed (v5)", async () => {
    const { broker } = makeBroker();
    const disconnects: number[] = [];
    broker.on("clientDisconnect", (_c, info) => disconnects.push(info.reasonCode));
    const first = await connect(broker, { clientId: "dup", version: 5 });
    const second = await connect(broker, { clientId: "dup", version: 5 });
    const d = await first.ctl.expect("disconnect");
    expect(d.reasonCode).toBe(ReasonCode.SessionTakenOver);
    await first.ctl.closed;
    expect(second.connack?.reasonCode).toBe(0);
    expect(broker.metrics.clients).toBe(1);
    expect(disconnects).toEqual([ReasonCode.SessionTakenOver]);
  });

  it("takes over a 3.1.1 session by closing the old connection", async () => {
    const { broker } = makeBroker();
    const first = await connect(broker, { clientId: "dup", version: 4 });
    const second = await connect(broker, { clientId: "dup", version: 4, clean: false });
    await first.ctl.closed;
    expect(first.ctl.received.filter((p) => p.cmd === "disconnect")).toEqual([]);
    expect(second.connack?.returnCode).toBe(0);
  });

  it("refuses an unsupported protocol level with return code 1 and closes", async () => {
    const { broker } = makeBroker();
    const { server, client } = memoryTransportPair();
    broker.handle(server);
    const ctl = new PacketStream(client.control, 4);
    // CONNECT, protocol "MQTT" level 6.
    ctl.sendRaw([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x06, 0x02, 0x00, 0x00, 0x00, 0x01, 0x61]);
    const ack = await ctl.expect("connack");
    expect(ack.returnCode).toBe(1);
    await ctl.closed;
  });

  it("closes without CONNACK when the first packet is not CONNECT [MQTT-3.1.0-1]", async () => {
    const { broker } = makeBroker();
    const errors: string[] = [];
    broker.on("clientError", (e) => errors.push(e.code));
    const { server, client } = memoryTransportPair();
    broker.handle(server);
    const ctl = new PacketStream(client.control, 5);
    ctl.send({ cmd: "publish", topic: "a", payload: Buffer.from("x"), qos: 0, retain: false, dup: false });
    await ctl.closed;
    expect(ctl.received).toEqual([]);
    expect(errors).toEqual(["ERR_MQTT_PROTOCOL_ERROR"]);
  });

  it("treats a second CONNECT as a protocol error (DISCONNECT 0x82) [MQTT-3.1.0-2]", async () => {
    const { broker } = makeBroker();
    const c = await connect(broker, { clientId: "x" });
    c.ctl.send({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 5,
      clientId: "x",
      clean: true,
      keepalive: 0,
    });
    expect((await c.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.ProtocolError);
    await c.ctl.closed;
  });

  it("closes a connection that sends nothing within connectTimeout", async () => {
    const { broker, clock } = makeBroker({ connectTimeout: 5000 });
    const { server, client } = memoryTransportPair();
    broker.handle(server);
    clock.advance(4999);
    await settle();
    expect(client.closeInfo).toBeUndefined();
    clock.advance(1);
    await client.closed();
    expect(broker.metrics.connections).toBe(0);
  });

  it("authenticate hook: refusals map to v5 reason codes and 3.1.1 return codes", async () => {
    const { broker } = makeBroker({
      authenticate: async ({ username, password }) => {
        if (username === "banned") return ReasonCode.Banned;
        return username === "alice" && password?.toString() === "secret";
      },
    });
    const ok = await connect(broker, { clientId: "a", username: "alice", password: Buffer.from("secret") });
    expect(ok.connack?.reasonCode).toBe(0);
    const bad5 = await connect(broker, { clientId: "b", username: "alice", password: Buffer.from("nope") });
    expect(bad5.connack?.reasonCode).toBe(ReasonCode.BadUserNameOrPassword);
    await bad5.ctl.closed;
    const bad4 = await connect(broker, {
      version: 4,
      clientId: "c",
      username: "x",
      password: Buffer.from("y"),
    });
    expect(bad4.connack?.returnCode).toBe(4);
    const banned = await connect(broker, { clientId: "d", username: "banned" });
    expect(banned.connack?.reasonCode).toBe(ReasonCode.Banned);
    expect(banned.connack?.sessionPresent).toBe(false);
    expect(broker.metrics.clients).toBe(1);
  });

  it("authenticate sees the transport and the client certificate", async () => {
    const seen: unknown[] = [];
    const { broker } = makeBroker({
      authenticate: (ctx) => {
        seen.push(ctx.transport);
        return true;
      },
    });
    const { server, client } = memoryTransportPair({ kind: "quic", peerCertificate: Uint8Array.of(1, 2, 3) });
    broker.handle(server);
    const ctl = new PacketStream(client.control, 5);
    ctl.send({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 5,
      clientId: "cert",
      clean: true,
      keepalive: 0,
    });
    await ctl.expect("connack");
    expect(seen[0]).toMatchObject({ kind: "quic", peerCertificate: Uint8Array.of(1, 2, 3) });
  });

  it("refuses enhanced authentication with 0x8C", async () => {
    const { broker } = makeBroker();
    const c = await connect(broker, { clientId: "e", properties: { authenticationMethod: "SCRAM-SHA-1" } });
    expect(c.connack?.reasonCode).toBe(ReasonCode.BadAuthenticationMethod);
    await c.ctl.closed;
  });

  it("refuses clients beyond maxConnections with Server busy and the overloaded close code", async () => {
    const { broker } = makeBroker({ maxConnections: 1 });
    await connect(broker, { clientId: "one" });
    const two = await connect(broker, { clientId: "two" });
    expect(two.connack?.reasonCode).toBe(ReasonCode.ServerBusy);
    if (two.transport === "memory") {
      // In memory the close code is visible: the overloaded code, from the server.
      expect(await two.conn.closed()).toMatchObject({ code: 2, initiator: "server" });
    } else await two.ctl.closed;
    const three = await connect(broker, { version: 4, clientId: "three" });
    expect(three.connack?.returnCode).toBe(3);
  });

  it("a takeover is not refused for capacity", async () => {
    const { broker } = makeBroker({ maxConnections: 1 });
    await connect(broker, { clientId: "one" });
    const again = await connect(broker, { clientId: "one" });
    expect(again.connack?.reasonCode).toBe(0);
  });

  it("broker.close() tells v5 clients 0x8B Server shutting down and closes 3.1.1 ones", async () => {
    const { broker } = makeBroker();
    const c5 = await connect(broker, { clientId: "c5" });
    const c4 = await connect(broker, { version: 4, clientId: "c4" });
    await broker.close();
    expect((await c5.ctl.expect("disconnect")).reasonCode).toBe(ReasonCode.ServerShuttingDown);
    await c5.ctl.closed;
    await c4.ctl.closed;
    expect(c4.ctl.received.map((p) => p.cmd)).toEqual(["connack"]);
    expect(broker.metrics.clients).toBe(0);
  });

  it("refuses an invalid will topic (v5: 0x90)", async () => {
    const { broker } = makeBroker();
    const c = await connect(broker, {
      clientId: "w",
      will: { topic: "a/#", payload: Buffer.from("x"), qos: 0, retain: false },
    });
    expect(c.connack?.reasonCode).toBe(ReasonCode.TopicNameInvalid);
  });

  it("3.1.1: a password without a user name is malformed: closed, no CONNACK", async () => {
    const { broker } = makeBroker();
    const { server, client } = memoryTransportPair();
    broker.handle(server);
    const ctl = new PacketStream(client.control, 4);
    // flags 0x42: password + clean session, no user name.
    const body = [
      0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x42, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00, 0x01, 0x70,
    ];
    ctl.sendRaw([0x10, body.length, ...body]);
    await ctl.closed;
    expect(ctl.received).toEqual([]);
  });

  it("server keep alive overrides the client's (v5)", async () => {
    const { broker } = makeBroker({ serverKeepAlive: 30 });
    const c = await connect(broker, { clientId: "k", keepalive: 600 });
    expect(c.connack?.properties?.serverKeepAlive).toBe(30);
  });
});
