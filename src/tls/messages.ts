/**
 * TLS 1.3 handshake message codecs (RFC 8446 §4, Appendix B.3). Each `parse*` is the exact
 * mirror of `serialize*`: a message that parses re-serializes to the same bytes.
 *
 * Messages carry no record layer: QUIC sends the handshake bytes in CRYPTO frames
 * (RFC 9001 §4). Malformed input throws a `TlsAlert` (decode_error unless stated otherwise).
 */
import { bytesEqual, fromHex, Reader, Writer } from "../util/bytes.js";
import { AlertDescription, TlsAlert, tlsDecodeError } from "./alert.js";
import { type Extension, readExtensions, writeExtensions } from "./extensions.js";

/** HandshakeType code points (RFC 8446 §4, B.3). */
export const HandshakeType = {
  client_hello: 1,
  server_hello: 2,
  new_session_ticket: 4,
  end_of_early_data: 5,
  encrypted_extensions: 8,
  certificate: 11,
  certificate_request: 13,
  certificate_verify: 15,
  finished: 20,
  key_update: 24,
  message_hash: 254,
} as const;

const HANDSHAKE_TYPE_NAMES = new Map<number, string>(
  Object.entries(HandshakeType).map(([name, code]) => [code, name]),
);

/** Name of a handshake type code, for error messages (the parser names every message it checks). */
export function handshakeTypeName(t: number): string {
  return HANDSHAKE_TYPE_NAMES.get(t) ?? `handshake_type_${t}`;
}

/**
 * The ServerHello.random that marks a HelloRetryRequest: SHA-256("HelloRetryRequest")
 * (RFC 8446 §4.1.3).
 */
export const HELLO_RETRY_REQUEST_RANDOM: Uint8Array = fromHex(
  "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c",
);

/** ClientHello (RFC 8446 §4.1.2). */
export interface ClientHello {
  readonly type: "client_hello";
  /** 0x0303 for TLS 1.3; the real version is in supported_versions. */
  readonly legacyVersion: number;
  /** 32 bytes. */
  readonly random: Uint8Array;
  /** 0..32 bytes; empty in QUIC (RFC 9001 §8.4). */
  readonly legacySessionId: Uint8Array;
  /** CipherSuite code points in preference order. */
  readonly cipherSuites: readonly number[];
  /** Must be the single byte 0 for TLS 1.3. */
  readonly legacyCompressionMethods: Uint8Array;
  readonly extensions: readonly Extension[];
}

/** ServerHello (RFC 8446 §4.1.3) that is not a HelloRetryRequest. */
export interface ServerHello {
  readonly type: "server_hello";
  readonly legacyVersion: number;
  /** 32 bytes, never `HELLO_RETRY_REQUEST_RANDOM`. */
  readonly random: Uint8Array;
  readonly legacySessionIdEcho: Uint8Array;
  readonly cipherSuite: number;
  readonly legacyCompressionMethod: number;
  readonly extensions: readonly Extension[];
}

/** HelloRetryRequest: a ServerHello whose random is `HELLO_RETRY_REQUEST_RANDOM` (RFC 8446 §4.1.4). */
export interface HelloRetryRequest {
  readonly type: "hello_retry_request";
  readonly legacyVersion: number;
  readonly legacySessionIdEcho: Uint8Array;
  readonly cipherSuite: number;
  readonly legacyCompressionMethod: number;
  readonly extensions: readonly Extension[];
}

/** EncryptedExtensions (RFC 8446 §4.3.1). */
export interface EncryptedExtensions {
  readonly type: "encrypted_extensions";
  readonly extensions: readonly Extension[];
}

/** CertificateRequest (RFC 8446 §4.3.2). */
export interface CertificateRequest {
  readonly type: "certificate_request";
  readonly requestContext: Uint8Array;
  readonly extensions: readonly Extension[];
}

/** One certificate of a chain with its per-entry extensions (RFC 8446 §4.4.2). */
export interface CertificateEntry {
  /** DER X.509 certificate (we only use the X.509 certificate type). */
  readonly data: Uint8Array;
  readonly extensions: readonly Extension[];
}

/** Certificate (RFC 8446 §4.4.2). The leaf comes first. */
export interface CertificateMessage {
  readonly type: "certificate";
  /** Empty in the server's Certificate; echoes the CertificateRequest context for a client. */
  readonly requestContext: Uint8Array;
  readonly entries: readonly CertificateEntry[];
}

/** CertificateVerify (RFC 8446 §4.4.3). */
export interface CertificateVerify {
  readonly type: "certificate_verify";
  /** SignatureScheme code point. */
  readonly algorithm: number;
  readonly signature: Uint8Array;
}

/** Finished (RFC 8446 §4.4.4). verify_data is Hash.length bytes; the handshake checks that. */
export interface Finished {
  readonly type: "finished";
  readonly verifyData: Uint8Array;
}

/** NewSessionTicket (RFC 8446 §4.6.1). */
export interface NewSessionTicket {
  readonly type: "new_session_ticket";
  /** Seconds, at most 604800 (7 days). */
  readonly lifetime: number;
  readonly ageAdd: number;
  /** 0..255 bytes. */
  readonly nonce: Uint8Array;
  /** 1..65535 bytes; opaque to the client. */
  readonly ticket: Uint8Array;
  readonly extensions: readonly Extension[];
}

/** EndOfEarlyData (RFC 8446 §4.5); never sent over QUIC (RFC 9001 §8.3). */
export interface EndOfEarlyData {
  readonly type: "end_of_early_data";
}

/** KeyUpdate (RFC 8446 §4.6.3); forbidden over QUIC (RFC 9001 §6). */
export interface KeyUpdate {
  readonly type: "key_update";
  /** 0 = update_not_requested, 1 = update_requested. */
  readonly requestUpdate: 0 | 1;
}

/** Any TLS 1.3 handshake message. */
export type HandshakeMessage =
  | ClientHello
  | ServerHello
  | HelloRetryRequest
  | EncryptedExtensions
  | CertificateRequest
  | CertificateMessage
  | CertificateVerify
  | Finished
  | NewSessionTicket
  | EndOfEarlyData
  | KeyUpdate;

/** A sub-reader over a vector whose length must be in [min, max]. */
function vector(r: Reader, lengthBytes: 1 | 2 | 3, what: string, min = 0, max = Infinity): Reader {
  const n = lengthBytes === 1 ? r.u8(what) : lengthBytes === 2 ? r.u16(what) : r.u24(what);
  if (n < min || n > max) throw r.fail(`${what} length ${n} outside [${min}, ${max}]`);
  return r.sub(n, what);
}

function noExtensions(what: string): TlsAlert {
  // A hello without an extensions block cannot carry supported_versions: it is not TLS 1.3.
  return new TlsAlert(
    AlertDescription.protocol_version,
    `${what} has no extensions, so it does not offer TLS 1.3 (RFC 8446 §4.1.2)`,
  );
}

function parseClientHello(r: Reader): ClientHello {
  const legacyVersion = r.u16("legacy_version");
  const random = r.copy(32, "random");
  const legacySessionId = vector(r, 1, "legacy_session_id", 0, 32).rest().slice();
  const suites = vector(r, 2, "cipher_suites", 2, 0xfffe);
  if (suites.remaining % 2 !== 0) throw r.fail("cipher_suites has an odd length");
  const cipherSuites: number[] = [];
  while (!suites.done) cipherSuites.push(suites.u16("cipher suite"));
  const legacyCompressionMethods = vector(r, 1, "legacy_compression_methods", 1).rest().slice();
  if (r.done) throw noExtensions("ClientHello");
  const extensions = readExtensions(r, "client_hello");
  return {
    type: "client_hello",
    legacyVersion,
    random,
    legacySessionId,
    cipherSuites,
    legacyCompressionMethods,
    extensions,
  };
}

function parseServerHello(r: Reader): ServerHello | HelloRetryRequest {
  const legacyVersion = r.u16("legacy_version");
  const random = r.copy(32, "random");
  const legacySessionIdEcho = vector(r, 1, "legacy_session_id_echo", 0, 32).rest().slice();
  const cipherSuite = r.u16("cipher_suite");
  const legacyCompressionMethod = r.u8("legacy_compression_method");
  if (r.done) throw noExtensions("ServerHello");
  if (bytesEqual(random, HELLO_RETRY_REQUEST_RANDOM)) {
    const extensions = readExtensions(r, "hello_retry_request");
    return {
      type: "hello_retry_request",
      legacyVersion,
      legacySessionIdEcho,
      cipherSuite,
      legacyCompressionMethod,
      extensions,
    };
  }
  const extensions = readExtensions(r, "server_hello");
  return {
    type: "server_hello",
    legacyVersion,
    random,
    legacySessionIdEcho,
    cipherSuite,
    legacyCompressionMethod,
    extensions,
  };
}

function parseCertificateMessage(r: Reader): CertificateMessage {
  const requestContext = vector(r, 1, "certificate_request_context").rest().slice();
  const list = vector(r, 3, "certificate_list");
  const entries: CertificateEntry[] = [];
  while (!list.done) {
    const data = vector(list, 3, "cert_data", 1).rest().slice();
    const extensions = readExtensions(list, "certificate");
    entries.push({ data, extensions });
  }
  return { type: "certificate", requestContext, entries };
}

/**
 * Parses a handshake message body of type `msgType` (the 4-byte header already removed).
 * An unknown or TLS 1.2-only type is unexpected_message (RFC 8446 §4).
 */
export function parseHandshakeBody(msgType: number, body: Uint8Array): HandshakeMessage {
  const r = new Reader(body, tlsDecodeError);
  let msg: HandshakeMessage;
  switch (msgType) {
    case HandshakeType.client_hello:
      msg = parseClientHello(r);
      break;
    case HandshakeType.server_hello:
      msg = parseServerHello(r);
      break;
    case HandshakeType.encrypted_extensions:
      msg = { type: "encrypted_extensions", extensions: readExtensions(r, "encrypted_extensions") };
      break;
    case HandshakeType.certificate_request: {
      const requestContext = vector(r, 1, "certificate_request_context").rest().slice();
      msg = {
        type: "certificate_request",
        requestContext,
        extensions: readExtensions(r, "certificate_request"),
      };
      break;
    }
    case HandshakeType.certificate:
      msg = parseCertificateMessage(r);
      break;
    case HandshakeType.certificate_verify: {
      const algorithm = r.u16("algorithm");
      const signature = vector(r, 2, "signature").rest().slice();
      msg = { type: "certificate_verify", algorithm, signature };
      break;
    }
    case HandshakeType.finished:
      msg = { type: "finished", verifyData: r.rest().slice() };
      break;
    case HandshakeType.new_session_ticket: {
      const lifetime = r.u32("ticket_lifetime");
      const ageAdd = r.u32("ticket_age_add");
      const nonce = vector(r, 1, "ticket_nonce").rest().slice();
      const ticket = vector(r, 2, "ticket", 1).rest().slice();
      const extensions = readExtensions(r, "new_session_ticket");
      msg = { type: "new_session_ticket", lifetime, ageAdd, nonce, ticket, extensions };
      break;
    }
    case HandshakeType.end_of_early_data:
      msg = { type: "end_of_early_data" };
      break;
    case HandshakeType.key_update: {
      const v = r.u8("request_update");
      if (v !== 0 && v !== 1) {
        throw new TlsAlert(
          AlertDescription.illegal_parameter,
          `KeyUpdate request_update ${v} (RFC 8446 §4.6.3)`,
        );
      }
      msg = { type: "key_update", requestUpdate: v };
      break;
    }
    default:
      throw new TlsAlert(
        AlertDescription.unexpected_message,
        `handshake message type ${msgType} does not exist in TLS 1.3 (RFC 8446 §4)`,
      );
  }
  r.expectEnd(handshakeTypeName(msgType));
  return msg;
}

/** Parses one complete handshake message (4-byte header + body) that fills `bytes` exactly. */
export function parseHandshake(bytes: Uint8Array): HandshakeMessage {
  const r = new Reader(bytes, tlsDecodeError);
  const msgType = r.u8("msg_type");
  const body = r.vec(3, "handshake body");
  r.expectEnd("handshake message");
  return parseHandshakeBody(msgType, body);
}

/** The HandshakeType code of a message. */
export function handshakeTypeOf(msg: HandshakeMessage): number {
  return msg.type === "hello_retry_request" ? HandshakeType.server_hello : HandshakeType[msg.type];
}

function writeBody(w: Writer, msg: HandshakeMessage): void {
  switch (msg.type) {
    case "client_hello":
      w.u16(msg.legacyVersion).bytes(msg.random).vec(1, msg.legacySessionId);
      w.block(2, (l) => {
        for (const s of msg.cipherSuites) l.u16(s);
      });
      w.vec(1, msg.legacyCompressionMethods);
      writeExtensions(w, msg.extensions);
      return;
    case "server_hello":
    case "hello_retry_request":
      w.u16(msg.legacyVersion)
        .bytes(msg.type === "server_hello" ? msg.random : HELLO_RETRY_REQUEST_RANDOM)
        .vec(1, msg.legacySessionIdEcho)
        .u16(msg.cipherSuite)
        .u8(msg.legacyCompressionMethod);
      writeExtensions(w, msg.extensions);
      return;
    case "encrypted_extensions":
      writeExtensions(w, msg.extensions);
      return;
    case "certificate_request":
      w.vec(1, msg.requestContext);
      writeExtensions(w, msg.extensions);
      return;
    case "certificate":
      w.vec(1, msg.requestContext);
      w.block(3, (l) => {
        for (const e of msg.entries) {
          l.vec(3, e.data);
          writeExtensions(l, e.extensions);
        }
      });
      return;
    case "certificate_verify":
      w.u16(msg.algorithm).vec(2, msg.signature);
      return;
    case "finished":
      w.bytes(msg.verifyData);
      return;
    case "new_session_ticket":
      w.u32(msg.lifetime).u32(msg.ageAdd).vec(1, msg.nonce).vec(2, msg.ticket);
      writeExtensions(w, msg.extensions);
      return;
    case "end_of_early_data":
      return;
    case "key_update":
      w.u8(msg.requestUpdate);
      return;
  }
}

/** Serializes a handshake message with its 4-byte header (msg_type u8, length u24). */
export function serializeHandshake(msg: HandshakeMessage): Uint8Array {
  const w = new Writer(msg.type === "certificate" ? 2048 : 256);
  w.u8(handshakeTypeOf(msg));
  w.block(3, (b) => writeBody(b, msg));
  return w.finish().slice();
}

/** Writes the handshake header around an already serialized body. */
export function frameHandshake(msgType: number, body: Uint8Array): Uint8Array {
  return new Writer(body.length + 4).u8(msgType).vec(3, body).finish().slice();
}

/** A complete handshake message as received: its type, body and the exact bytes (for the transcript). */
export interface RawHandshakeMessage {
  readonly msgType: number;
  readonly body: Uint8Array;
  /** Header + body, exactly as received. */
  readonly raw: Uint8Array;
}

/** Default bound on one handshake message we are willing to buffer: 64 KiB. */
export const DEFAULT_MAX_HANDSHAKE_MESSAGE = 65536;

/**
 * Reassembles handshake messages from a byte stream split anywhere (QUIC CRYPTO frames split
 * messages at arbitrary points, RFC 9001 §4.1.3). Call `push()` with the next in-order bytes, then
 * `next()` until it returns undefined. A message announcing more than `maxMessageBytes` is refused
 * with illegal_parameter before it is buffered, so memory stays bounded by one message.
 */
const EMPTY_BUFFER = new Uint8Array(0);

export class HandshakeReassembler {
  /** Shared and empty until bytes come (most levels of a connection never receive any). */
  private buf = EMPTY_BUFFER;
  private start = 0;
  private end = 0;
  readonly maxMessageBytes: number;

  constructor(maxMessageBytes = DEFAULT_MAX_HANDSHAKE_MESSAGE) {
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Bytes received and not yet returned as a complete message. */
  get buffered(): number {
    return this.end - this.start;
  }

  /** Appends the next in-order bytes. */
  push(data: Uint8Array): void {
    if (data.length === 0) return;
    if (this.end + data.length > this.buf.length) {
      const live = this.end - this.start;
      if (live + data.length <= this.buf.length && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        const next = new Uint8Array(Math.max(2 * this.buf.length, live + data.length, 1024));
        next.set(this.buf.subarray(this.start, this.end));
        this.buf = next;
      }
      this.start = 0;
      this.end = live;
    }
    this.buf.set(data, this.end);
    this.end += data.length;
    this.checkHeader();
  }

  private checkHeader(): void {
    if (this.end - this.start < 4) return;
    const b = this.buf;
    const len = (b[this.start + 1] << 16) | (b[this.start + 2] << 8) | b[this.start + 3];
    if (len > this.maxMessageBytes) {
      throw new TlsAlert(
        AlertDescription.illegal_parameter,
        `${handshakeTypeName(b[this.start])} message of ${len} bytes exceeds the ${this.maxMessageBytes}-byte limit`,
      );
    }
  }

  /** The next complete message, or undefined when more bytes are needed. */
  next(): RawHandshakeMessage | undefined {
    if (this.end - this.start < 4) return undefined;
    this.checkHeader();
    const b = this.buf;
    const len = (b[this.start + 1] << 16) | (b[this.start + 2] << 8) | b[this.start + 3];
    if (this.end - this.start < 4 + len) return undefined;
    const raw = b.slice(this.start, this.start + 4 + len);
    this.start += 4 + len;
    if (this.start === this.end) {
      // Nothing left: let the buffer go (a connection keeps one reassembler per level).
      this.buf = EMPTY_BUFFER;
      this.start = 0;
      this.end = 0;
    }
    return { msgType: raw[0], body: raw.subarray(4), raw };
  }
}
