/** Topic names and filters: validation, matching, `$` topics, the subscription tree. */
import { describe, expect, it } from "vitest";
import type { SubscriptionRecord } from "../../../src/mqtt/broker/store.js";
import { SubscriptionTree } from "../../../src/mqtt/broker/subscriptions.js";
import {
  isValidMqttUtf8,
  isValidTopicFilter,
  isValidTopicName,
  parseSharedFilter,
  topicMatches,
} from "../../../src/mqtt/topic.js";
import { connect, makeBroker, subscribe } from "./helpers.js";

const sub = (filter: string, qos: 0 | 1 | 2 = 0): SubscriptionRecord => ({
  filter,
  qos,
  noLocal: false,
  retainAsPublished: false,
  retainHandling: 0,
});

describe("topic validation", () => {
  it("topic names", () => {
    for (const ok of ["a", "a/b", "/", "a//b", "$SYS/x", "ünïcode/☃", " "])
      expect(isValidTopicName(ok)).toBe(true);
    for (const bad of ["", "a/+", "#", "a/#", "a\u0000b", "x\ud800y"])
      expect(isValidTopicName(bad)).toBe(false);
    expect(isValidTopicName("a".repeat(65_535))).toBe(true);
    expect(isValidTopicName("a".repeat(65_536))).toBe(false);
  });

  it("topic filters [MQTT-4.7.1-1] [MQTT-4.7.1-2]", () => {
    for (const ok of ["#", "+", "a/#", "+/+", "a/+/b", "/+", "+/", "$share/g/a/#", "$SYS/#"]) {
      expect(isValidTopicFilter(ok)).toBe(true);
    }
    for (const bad of [
      "",
      "a#",
      "a/#/b",
      "a+",
      "a/b+",
      "#/",
      "$share/g",
      "$share//a",
      "$share/g+/a",
      "$share/g/",
      "a\u0000",
    ]) {
      expect(isValidTopicFilter(bad)).toBe(false);
    }
  });

  it("shared filters [MQTT-4.8.2-1] [MQTT-4.8.2-2]", () => {
    expect(parseSharedFilter("$share/grp/a/+")).toEqual({ group: "grp", filter: "a/+" });
    expect(parseSharedFilter("a/b")).toBeUndefined();
    expect(parseSharedFilter("$share/g#/a")).toBeUndefined();
  });

  it("strict UTF-8 [MQTT-1.5.4-1] [MQTT-1.5.4-2]", () => {
    expect(isValidMqttUtf8(Buffer.from("héllo ☃"))).toBe(true);
    expect(isValidMqttUtf8(Uint8Array.of(0xef, 0xbb, 0xbf, 0x61))).toBe(true); // BOM kept [MQTT-1.5.4-3]
    expect(isValidMqttUtf8(Uint8Array.of(0x61, 0x00))).toBe(false);
    expect(isValidMqttUtf8(Uint8Array.of(0xed, 0xa0, 0x80))).toBe(false); // surrogate
    expect(isValidMqttUtf8(Uint8Array.of(0xc0, 0xaf))).toBe(false); // overlong
    expect(isValidMqttUtf8(Uint8Array.of(0xff))).toBe(false);
  });
});

describe("matching", () => {
  const cases: Array<[string, string, boolean]> = [
    ["a/b", "a/b", true],
    ["a/+", "a/b", true],
    ["a/+", "a/b/c", false],
    ["a/#", "a", true], // parent level
    ["a/#", "a/b/c", true],
    ["#", "a/b", true],
    ["+/+", "/x", true],
    ["+", "/x", false],
    ["/+", "/x", true],
    ["a/+/c", "a//c", true],
    ["#", "$SYS/x", false], // [MQTT-4.7.2-1]
    ["+/x", "$SYS/x", false],
    ["$SYS/#", "$SYS/x", true],
    ["$SYS/+", "$SYS/x", true],
    ["A/b", "a/b", false], // case-sensitive, no normalization [MQTT-4.7.3-4]
  ];
  it("topicMatches", () => {
    for (const [f, t, want] of cases) expect([f, t, topicMatches(f, t)]).toEqual([f, t, want]);
  });

  it("the subscription tree agrees with topicMatches", () => {
    const tree = new SubscriptionTree();
    const filters = [...new Set(cases.map((c) => c[0]))];
    for (const [i, f] of filters.entries()) tree.add(`c${i}`, sub(f));
    for (const [, t] of cases) {
      const got = tree
        .match(t)
        .normal.map(([, s]) => s.filter)
        .sort();
      const want = filters.filter((f) => topicMatches(f, t)).sort();
      expect([t, got]).toEqual([t, want]);
    }
    expect(tree.size).toBe(filters.length);
    for (let i = 0; i < filters.length; i++) expect(tree.remove(`c${i}`, filters[i]!)).toBe(true);
    expect(tree.size).toBe(0);
    expect(tree.match("a/b").normal).toEqual([]);
  });

  it("shared groups pick members round robin, preferring online ones", () => {
    const tree = new SubscriptionTree();
    tree.add("x", sub("$share/g/t"));
    tree.add("y", sub("$share/g/t"));
    tree.add("z", sub("$share/g/t"));
    const [group] = tree.match("t").shared;
    const all = () => true;
    expect([group!.pick(all)![0], group!.pick(all)![0], group!.pick(all)![0], group!.pick(all)![0]]).toEqual([
      "x",
      "y",
      "z",
      "x",
    ]);
    expect(group!.pick((id) => id === "z")![0]).toBe("z");
    tree.remove("z", "$share/g/t");
    expect(group!.pick((id) => id === "z")?.[0]).toMatch(/[xy]/);
  });
});

describe("wildcards through the broker", () => {
  it("routes by + and #, and keeps $ topics away from leading wildcards", async () => {
    const { broker } = makeBroker();
    const s = await connect(broker, { clientId: "s" });
    await subscribe(s.ctl, "sport/+/score", 0, { messageId: 1 });
    await subscribe(s.ctl, "#", 0, { messageId: 2, subscriptionIdentifier: 9 });
    const p = await connect(broker, { clientId: "p" });
    const send = (topic: string) =>
      p.ctl.send({ cmd: "publish", topic, payload: Buffer.from(topic), qos: 0, retain: false, dup: false });
    send("sport/tennis/score");
    const m = await s.ctl.expect("publish");
    expect(m.topic).toBe("sport/tennis/score");
    expect(m.properties?.subscriptionIdentifier).toBe(9); // one copy, both matches [MQTT-3.3.4-4]
    send("$SYS/load");
    send("other");
    expect((await s.ctl.expect("publish")).topic).toBe("other");
  });

  it("SUBACK reports invalid filters per filter (v5 0x8F, 3.1.1 0x80)", async () => {
    const { broker } = makeBroker();
    for (const version of [4, 5] as const) {
      const s = await connect(broker, { version, clientId: `s${version}` });
      s.ctl.send({
        cmd: "subscribe",
        messageId: 3,
        subscriptions: [
          { topic: "ok/#", qos: 1 },
          { topic: "bad#", qos: 1 },
          { topic: "$share/g", qos: 0 },
        ],
      });
      const ack = await s.ctl.expect("suback");
      expect(ack.granted).toEqual(version === 5 ? [1, 0x8f, 0x8f] : [1, 0x80, 0x80]);
    }
  });
});
