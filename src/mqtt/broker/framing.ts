/**
 * Reading MQTT packets off a byte stream with bounded memory.
 *
 * {@link PacketFramer} finds packet boundaries from the fixed header (MQTT 5.0 §2.1) and refuses a
 * packet larger than the limit *before* buffering it, so a peer announcing 256 MB costs us five
 * bytes. {@link PacketDecoder} turns one complete frame into an `mqtt-packet` object and adds the
 * checks mqtt-packet leaves out: strict UTF-8 in topics, filters and CONNECT strings
 * [MQTT-1.5.4-1] [MQTT-1.5.4-2], and the protocol version of CONNECT (reported as 0x84).
 */

import type { Packet } from "mqtt-packet";
import mqttPacket from "mqtt-packet";
import { MqttError, ReasonCode } from "../errors.js";
import { isValidMqttUtf8 } from "../topic.js";

/** Largest Remaining Length MQTT can encode (four-byte variable byte integer). */
export const MAX_REMAINING_LENGTH = 268_435_455;

/**
 * Splits a byte stream into MQTT packets. Holds at most one partial packet (bounded by
 * `maxPacketSize`) plus the unread rest of the chunks already pushed.
 */
export class PacketFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxPacketSize: number) {}

  /** Bytes held. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Appends received bytes. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete packet, or undefined when more bytes are needed. Throws MqttError 0x81 for a
   * bad Remaining Length and 0x95 for a packet over the limit (the stream is unusable after that).
   */
  next(): Buffer | undefined {
    if (this.buffered < 2) return undefined;
    let remaining = 0;
    let mul = 1;
    let lenBytes = 0;
    for (;;) {
      if (1 + lenBytes >= this.buffered) return undefined;
      const b = this.byteAt(1 + lenBytes);
      remaining += (b & 0x7f) * mul;
      lenBytes++;
      if ((b & 0x80) === 0) break;
      if (lenBytes === 4) throw MqttError.malformed("remaining length longer than four bytes");
      mul *= 128;
    }
    const total = 1 + lenBytes + remaining;
    if (total > this.maxPacketSize) {
      throw new MqttError(
        ReasonCode.PacketTooLarge,
        `packet of ${total} bytes exceeds the maximum packet size ${this.maxPacketSize}`,
      );
    }
    if (this.buffered < total) return undefined;
    return this.take(total);
  }

  private byteAt(i: number): number {
    for (const c of this.chunks) {
      if (i < c.length) return c[i]!;
      i -= c.length;
    }
    return 0;
  }

  /** Removes and returns the first `n` bytes. */
  take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }

  /** Returns up to `n` leading bytes without consuming them. */
  peek(n: number): Buffer {
    const k = Math.min(n, this.buffered);
    const out = Buffer.allocUnsafe(k);
    let off = 0;
    for (const c of this.chunks) {
      if (off >= k) break;
      const m = Math.min(c.length, k - off);
      c.copy(out, off, 0, m);
      off += m;
    }
    return out;
  }

  /** Drops everything buffered. */
  clear(): void {
    this.chunks = [];
    this.buffered = 0;
  }
}

/** Reads the Remaining Length of a frame; returns the offset of the variable header. */
function bodyOffset(frame: Buffer): number {
  let i = 1;
  while (frame[i]! & 0x80) i++;
  return i + 1;
}

/** A cursor for the string checks; every read is bounds-checked. */
class Cursor {
  constructor(
    private readonly buf: Buffer,
    public pos: number,
  ) {}
  get left(): number {
    return this.buf.length - this.pos;
  }
  u8(): number {
    if (this.left < 1) throw MqttError.malformed("packet too short");
    return this.buf[this.pos++]!;
  }
  u16(): number {
    if (this.left < 2) throw MqttError.malformed("packet too short");
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 4; i++) {
      const b = this.u8();
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return v;
      mul *= 128;
    }
    throw MqttError.malformed("variable byte integer longer than four bytes");
  }
  skip(n: number): void {
    if (this.left < n) throw MqttError.malformed("packet too short");
    this.pos += n;
  }
  /** Reads a length-prefixed UTF-8 string and checks it strictly. */
  utf8(what: string): void {
    const n = this.u16();
    if (this.left < n) throw MqttError.malformed(`${what} runs past the end of the packet`);
    if (!isValidMqttUtf8(this.buf.subarray(this.pos, this.pos + n))) {
      throw MqttError.malformed(`${what} is not well-formed UTF-8 [MQTT-1.5.4-1]`);
    }
    this.pos += n;
  }
  binary(): void {
    this.skip(this.u16());
  }
}

/**
 * Checks the protocol name and level of a CONNECT frame before parsing it, so an unsupported
 * version is answered with 0x84 / return code 1 instead of "malformed". [MQTT-3.1.2-1] [MQTT-3.1.2-2]
 */
export function connectProtocolVersion(frame: Buffer): number {
  const c = new Cursor(frame, bodyOffset(frame));
  const n = c.u16();
  if (c.left < n) throw MqttError.malformed("CONNECT protocol name runs past the end");
  const name = frame.toString("latin1", c.pos, c.pos + n);
  c.skip(n);
  const level = c.u8() & 0x7f; // bit 7: mosquitto bridge flag, accepted by mqtt-packet
  if ((name !== "MQTT" && name !== "MQIsdp") || (level !== 3 && level !== 4 && level !== 5)) {
    throw new MqttError(ReasonCode.UnsupportedProtocolVersion, `unsupported protocol ${name} level ${level}`);
  }
  return level;
}

/** Strict UTF-8 checks of the strings mqtt-packet decodes leniently. */
function checkStrings(frame: Buffer, version: number): void {
  const type = frame[0]! >> 4;
  const c = new Cursor(frame, bodyOffset(frame));
  switch (type) {
    case 1: {
      // CONNECT
      c.binary(); // protocol name (checked above)
      c.u8(); // level
      const flags = c.u8();
      c.u16(); // keepalive
      if (version === 5) c.skip(c.varint());
      c.utf8("client identifier"); // [MQTT-3.1.3-4]
      if (flags & 0x04) {
        if (version === 5) c.skip(c.varint());
        c.utf8("will topic"); // [MQTT-3.1.3-11]
        c.binary();
      }
      if (flags & 0x80) c.utf8("user name"); // [MQTT-3.1.3-12]
      return;
    }
    case 3:
      c.utf8("topic name"); // [MQTT-3.3.2-1]
      return;
    case 8:
    case 10: {
      // SUBSCRIBE / UNSUBSCRIBE
      c.u16();
      if (version === 5) c.skip(c.varint());
      while (c.left > 0) {
        c.utf8("topic filter"); // [MQTT-3.8.3-1] [MQTT-3.10.3-1]
        if (type === 8) c.u8();
      }
      return;
    }
    default:
      return;
  }
}

/** What mqtt-packet's parser reads from its `settings` field (undocumented, stable since 6.x). */
interface ParserSettings {
  protocolVersion?: number;
  bridgeMode?: boolean;
}

type SettableParser = ReturnType<typeof mqttPacket.parser> & { settings: ParserSettings };

/**
 * One mqtt-packet parser for every decoder: each cost ~1.9 KB per stream (an EventEmitter and a
 * `bl` BufferList stream) for as long as the connection lived. A decoder hands it exactly one
 * complete frame at a time, so between frames the parser holds nothing but its settings, which
 * each decoder keeps and lends it for the call. A parser that ends a frame in any other state (an
 * error, an exception, leftover bytes, no packet) is dropped and the next frame gets a new one.
 */
interface SharedParser {
  parser: SettableParser;
  /** What the last `parse` emitted. */
  packet: Packet | undefined;
  error: Error | undefined;
}
let shared: SharedParser | undefined;

function sharedParser(): SharedParser {
  if (!shared) {
    const s: SharedParser = {
      parser: mqttPacket.parser() as SettableParser,
      packet: undefined,
      error: undefined,
    };
    s.parser.on("packet", (p: Packet) => {
      s.packet = p;
    });
    s.parser.on("error", (e: Error) => {
      s.error = e;
    });
    shared = s;
  }
  return shared;
}

/**
 * Decodes complete frames into packets for one stream. The protocol version is learnt from the
 * CONNECT on the control stream, or given for data streams.
 */
export class PacketDecoder {
  /** The parser settings of this stream (mqtt-packet replaces them when it parses a CONNECT). */
  private settings: ParserSettings;

  constructor(private version: number | undefined) {
    this.settings = version ? { protocolVersion: version } : {};
  }

  /** The protocol version in use (after CONNECT). */
  get protocolVersion(): number | undefined {
    return this.version;
  }

  /** Decodes one frame. Throws MqttError (0x81 malformed, 0x84 unsupported version). */
  decode(frame: Buffer): Packet {
    const type = frame[0]! >> 4;
    if (type === 1) this.version = connectProtocolVersion(frame);
    const s = sharedParser();
    s.packet = undefined;
    s.error = undefined;
    s.parser.settings = this.settings;
    let left: number;
    try {
      left = s.parser.parse(frame);
    } catch (e) {
      shared = undefined;
      throw MqttError.malformed(`undecodable packet: ${(e as Error).message}`, { cause: e });
    }
    const settings = s.parser.settings;
    if (settings !== this.settings) {
      // After a CONNECT: keep what the parser reads, not the whole CONNECT packet.
      this.settings = { protocolVersion: settings.protocolVersion, bridgeMode: settings.bridgeMode };
    }
    const err = s.error as Error | undefined;
    const p = s.packet as Packet | undefined;
    s.packet = undefined;
    s.error = undefined;
    if (err || !p || left !== 0) shared = undefined;
    if (err) throw MqttError.malformed(err.message, { cause: err });
    if (!p) throw MqttError.malformed("undecodable packet");
    checkStrings(frame, this.version ?? 4);
    return p;
  }
}
