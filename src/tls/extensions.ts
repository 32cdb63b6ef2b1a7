/**
 * TLS 1.3 extensions (RFC 8446 §4.2) with their per-message forms, plus the QUIC transport
 * parameters extension (RFC 9001 §8.2), ALPN (RFC 7301) and server_name (RFC 6066 §3).
 *
 * An extension list is kept in wire order as an array of tagged values so that a parsed message
 * re-serializes byte for byte. Extensions we do not model are kept as `{ type: "opaque" }` with
 * their raw `extension_data`. Some extensions have a different body depending on the message
 * that carries them (key_share, supported_versions, pre_shared_key, early_data); each form has
 * its own tag, and the parser picks the form from the `ExtensionContext`.
 *
 * Parsing enforces the structure only: malformed bodies and trailing bytes are `decode_error`,
 * a repeated extension type or a recognized extension in a message that may not carry it is
 * `illegal_parameter` (RFC 8446 §4.2), and pre_shared_key must come last in a ClientHello
 * (§4.2.11). Whether an extension was solicited is for the handshake to decide.
 */
import { Reader, type Writer } from "../util/bytes.js";
import { AlertDescription, TlsAlert, tlsDecodeError } from "./alert.js";

/** ExtensionType code points (RFC 8446 §4.2, RFC 9001 §8.2). */
export const ExtensionType = {
  server_name: 0,
  max_fragment_length: 1,
  status_request: 5,
  supported_groups: 10,
  signature_algorithms: 13,
  use_srtp: 14,
  heartbeat: 15,
  application_layer_protocol_negotiation: 16,
  signed_certificate_timestamp: 18,
  client_certificate_type: 19,
  server_certificate_type: 20,
  padding: 21,
  pre_shared_key: 41,
  early_data: 42,
  supported_versions: 43,
  cookie: 44,
  psk_key_exchange_modes: 45,
  certificate_authorities: 47,
  oid_filters: 48,
  post_handshake_auth: 49,
  signature_algorithms_cert: 50,
  key_share: 51,
  quic_transport_parameters: 0x39,
} as const;

/** The handshake message an extension list belongs to; it selects the extension body forms. */
export type ExtensionContext =
  | "client_hello"
  | "server_hello"
  | "hello_retry_request"
  | "encrypted_extensions"
  | "certificate"
  | "certificate_request"
  | "new_session_ticket";

/** One key share: a group code point and its public value (RFC 8446 §4.2.8). */
export interface KeyShareEntry {
  readonly group: number;
  readonly keyExchange: Uint8Array;
}

/** One offered PSK identity (RFC 8446 §4.2.11). */
export interface PskIdentity {
  readonly identity: Uint8Array;
  readonly obfuscatedTicketAge: number;
}

/**
 * A parsed extension. The tag names the extension and, where its body depends on the message,
 * the form: `supported_versions` (ClientHello list) vs `selected_version` (ServerHello/HRR),
 * `key_share` (ClientHello) vs `key_share_server` (ServerHello) vs `key_share_hrr` (HRR),
 * `pre_shared_key` (ClientHello) vs `pre_shared_key_selected` (ServerHello), `early_data`
 * (ClientHello/EncryptedExtensions, empty) vs `early_data_max` (NewSessionTicket).
 */
export type Extension =
  /** RFC 6066 §3. `hostName` undefined is the empty acknowledgment a server sends. */
  | { readonly type: "server_name"; readonly hostName: string | undefined }
  /** NamedGroup code points, in preference order. */
  | { readonly type: "supported_groups"; readonly groups: readonly number[] }
  /** SignatureScheme code points, in preference order. */
  | { readonly type: "signature_algorithms"; readonly schemes: readonly number[] }
  | { readonly type: "signature_algorithms_cert"; readonly schemes: readonly number[] }
  | { readonly type: "supported_versions"; readonly versions: readonly number[] }
  | { readonly type: "selected_version"; readonly version: number }
  | { readonly type: "key_share"; readonly shares: readonly KeyShareEntry[] }
  | { readonly type: "key_share_server"; readonly share: KeyShareEntry }
  | { readonly type: "key_share_hrr"; readonly selectedGroup: number }
  | { readonly type: "psk_key_exchange_modes"; readonly modes: readonly number[] }
  | {
      readonly type: "pre_shared_key";
      readonly identities: readonly PskIdentity[];
      readonly binders: readonly Uint8Array[];
    }
  | { readonly type: "pre_shared_key_selected"; readonly selectedIdentity: number }
  | { readonly type: "early_data" }
  | { readonly type: "early_data_max"; readonly maxEarlyDataSize: number }
  /** RFC 7301. Protocol names as latin1 strings (one char per byte, so any byte string round-trips). */
  | { readonly type: "alpn"; readonly protocols: readonly string[] }
  /** RFC 9001 §8.2: the QUIC layer encodes and decodes the body. */
  | { readonly type: "quic_transport_parameters"; readonly data: Uint8Array }
  | { readonly type: "cookie"; readonly cookie: Uint8Array }
  /** Any extension we do not model, kept as raw `extension_data`. */
  | { readonly type: "opaque"; readonly code: number; readonly data: Uint8Array };

/** The tag of an extension form. */
export type ExtensionTag = Extension["type"];

const TAG_CODE: Readonly<Record<Exclude<ExtensionTag, "opaque">, number>> = {
  server_name: ExtensionType.server_name,
  supported_groups: ExtensionType.supported_groups,
  signature_algorithms: ExtensionType.signature_algorithms,
  signature_algorithms_cert: ExtensionType.signature_algorithms_cert,
  supported_versions: ExtensionType.supported_versions,
  selected_version: ExtensionType.supported_versions,
  key_share: ExtensionType.key_share,
  key_share_server: ExtensionType.key_share,
  key_share_hrr: ExtensionType.key_share,
  psk_key_exchange_modes: ExtensionType.psk_key_exchange_modes,
  pre_shared_key: ExtensionType.pre_shared_key,
  pre_shared_key_selected: ExtensionType.pre_shared_key,
  early_data: ExtensionType.early_data,
  early_data_max: ExtensionType.early_data,
  alpn: ExtensionType.application_layer_protocol_negotiation,
  quic_transport_parameters: ExtensionType.quic_transport_parameters,
  cookie: ExtensionType.cookie,
};

/** The ExtensionType code point of an extension. */
export function extensionCode(ext: Extension): number {
  return ext.type === "opaque" ? ext.code : TAG_CODE[ext.type];
}

type Ctx = ExtensionContext;
const CH: Ctx = "client_hello";
const SH: Ctx = "server_hello";
const HRR: Ctx = "hello_retry_request";
const EE: Ctx = "encrypted_extensions";
const CT: Ctx = "certificate";
const CR: Ctx = "certificate_request";
const NST: Ctx = "new_session_ticket";

/** Where each recognized extension may appear: the table of RFC 8446 §4.2, plus RFC 9001 §8.2. */
const ALLOWED: ReadonlyMap<number, readonly Ctx[]> = new Map<number, readonly Ctx[]>([
  [ExtensionType.server_name, [CH, EE]],
  [ExtensionType.max_fragment_length, [CH, EE]],
  [ExtensionType.status_request, [CH, CR, CT]],
  [ExtensionType.supported_groups, [CH, EE]],
  [ExtensionType.signature_algorithms, [CH, CR]],
  [ExtensionType.use_srtp, [CH, EE]],
  [ExtensionType.heartbeat, [CH, EE]],
  [ExtensionType.application_layer_protocol_negotiation, [CH, EE]],
  [ExtensionType.signed_certificate_timestamp, [CH, CR, CT]],
  [ExtensionType.client_certificate_type, [CH, EE]],
  [ExtensionType.server_certificate_type, [CH, EE]],
  [ExtensionType.padding, [CH]],
  [ExtensionType.pre_shared_key, [CH, SH]],
  [ExtensionType.early_data, [CH, EE, NST]],
  [ExtensionType.supported_versions, [CH, SH, HRR]],
  [ExtensionType.cookie, [CH, HRR]],
  [ExtensionType.psk_key_exchange_modes, [CH]],
  [ExtensionType.certificate_authorities, [CH, CR]],
  [ExtensionType.oid_filters, [CR]],
  [ExtensionType.post_handshake_auth, [CH]],
  [ExtensionType.signature_algorithms_cert, [CH, CR]],
  [ExtensionType.key_share, [CH, SH, HRR]],
  [ExtensionType.quic_transport_parameters, [CH, EE]],
]);

/** Finds the first extension with the given tag. */
export function findExtension<T extends ExtensionTag>(
  exts: readonly Extension[],
  type: T,
): Extract<Extension, { type: T }> | undefined {
  for (const e of exts) if (e.type === type) return e as Extract<Extension, { type: T }>;
  return undefined;
}

/** True when the list carries an extension with this code point (in any form). */
export function hasExtensionCode(exts: readonly Extension[], code: number): boolean {
  return exts.some((e) => extensionCode(e) === code);
}

/** Bytes → string, one char per byte (latin1), so every byte string round-trips. */
export function bytesToLatin1(b: Uint8Array): string {
  // Not TextDecoder("latin1"): WHATWG maps that label to windows-1252, which is not 1:1. Node's
  // "latin1" is 1:1 and native: a certificate (the parse cache key) costs a fraction of a
  // char-by-char loop, and the result is a flat string, cheap to hash.
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");
}

/** String → bytes, one byte per char; throws `RangeError` for a char above U+00FF. */
export function latin1ToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`character U+${c.toString(16)} in ${JSON.stringify(s)} is not a byte`);
    out[i] = c;
  }
  return out;
}

function illegal(reason: string): TlsAlert {
  return new TlsAlert(AlertDescription.illegal_parameter, reason);
}

/** A sub-reader over a vector with a `lengthBytes` prefix whose length must be in [min, max]. */
function vector(r: Reader, lengthBytes: 1 | 2 | 3, what: string, min = 0, max = Infinity): Reader {
  const n = lengthBytes === 1 ? r.u8(what) : lengthBytes === 2 ? r.u16(what) : r.u24(what);
  if (n < min || n > max) throw r.fail(`${what} length ${n} outside [${min}, ${max}]`);
  return r.sub(n, what);
}

function u16List(r: Reader, what: string, lengthBytes: 1 | 2, min: number): number[] {
  const v = vector(r, lengthBytes, what, min);
  if (v.remaining % 2 !== 0) throw v.fail(`${what} has an odd length`);
  const out: number[] = [];
  while (!v.done) out.push(v.u16(what));
  return out;
}

function u8List(r: Reader, what: string, min: number): number[] {
  const v = vector(r, 1, what, min);
  const out: number[] = [];
  while (!v.done) out.push(v.u8(what));
  return out;
}

function parseKeyShareEntry(r: Reader): KeyShareEntry {
  const group = r.u16("key share group");
  const keyExchange = vector(r, 2, "key_exchange", 1).rest().slice();
  return { group, keyExchange };
}

/** Parses one extension body in its context. `r` covers exactly `extension_data`. */
function parseBody(code: number, r: Reader, ctx: ExtensionContext): Extension {
  switch (code) {
    case ExtensionType.server_name: {
      if (r.done) {
        if (ctx === CH) throw r.fail("empty server_name extension in ClientHello");
        return { type: "server_name", hostName: undefined };
      }
      const list = vector(r, 2, "server_name_list", 1);
      let hostName: string | undefined;
      while (!list.done) {
        const nameType = list.u8("server name type");
        // RFC 6066 §3: only host_name(0) is defined; other types have no known length.
        if (nameType !== 0) throw list.fail(`unknown server name type ${nameType}`);
        const name = vector(list, 2, "host_name", 1).rest();
        if (hostName !== undefined) throw illegal("server_name lists two host names (RFC 6066 §3)");
        hostName = bytesToLatin1(name);
      }
      return { type: "server_name", hostName };
    }
    case ExtensionType.supported_groups:
      return { type: "supported_groups", groups: u16List(r, "named_group_list", 2, 2) };
    case ExtensionType.signature_algorithms:
      return { type: "signature_algorithms", schemes: u16List(r, "supported_signature_algorithms", 2, 2) };
    case ExtensionType.signature_algorithms_cert:
      return {
        type: "signature_algorithms_cert",
        schemes: u16List(r, "supported_signature_algorithms", 2, 2),
      };
    case ExtensionType.supported_versions:
      if (ctx === CH) return { type: "supported_versions", versions: u16List(r, "versions", 1, 2) };
      return { type: "selected_version", version: r.u16("selected_version") };
    case ExtensionType.key_share: {
      if (ctx === CH) {
        const v = vector(r, 2, "client_shares");
        const shares: KeyShareEntry[] = [];
        while (!v.done) shares.push(parseKeyShareEntry(v));
        return { type: "key_share", shares };
      }
      if (ctx === HRR) return { type: "key_share_hrr", selectedGroup: r.u16("selected_group") };
      return { type: "key_share_server", share: parseKeyShareEntry(r) };
    }
    case ExtensionType.psk_key_exchange_modes:
      return { type: "psk_key_exchange_modes", modes: u8List(r, "ke_modes", 1) };
    case ExtensionType.pre_shared_key: {
      if (ctx !== CH)
        return { type: "pre_shared_key_selected", selectedIdentity: r.u16("selected_identity") };
      const ids = vector(r, 2, "identities", 7);
      const identities: PskIdentity[] = [];
      while (!ids.done) {
        const identity = vector(ids, 2, "identity", 1).rest().slice();
        identities.push({ identity, obfuscatedTicketAge: ids.u32("obfuscated_ticket_age") });
      }
      const bs = vector(r, 2, "binders", 33);
      const binders: Uint8Array[] = [];
      while (!bs.done) binders.push(vector(bs, 1, "binder", 32).rest().slice());
      return { type: "pre_shared_key", identities, binders };
    }
    case ExtensionType.early_data:
      if (ctx === NST) return { type: "early_data_max", maxEarlyDataSize: r.u32("max_early_data_size") };
      return { type: "early_data" };
    case ExtensionType.application_layer_protocol_negotiation: {
      const list = vector(r, 2, "protocol_name_list", 2);
      const protocols: string[] = [];
      while (!list.done) protocols.push(bytesToLatin1(vector(list, 1, "protocol name", 1).rest()));
      return { type: "alpn", protocols };
    }
    case ExtensionType.quic_transport_parameters:
      return { type: "quic_transport_parameters", data: r.rest().slice() };
    case ExtensionType.cookie:
      return { type: "cookie", cookie: vector(r, 2, "cookie", 1).rest().slice() };
    default:
      return { type: "opaque", code, data: r.rest().slice() };
  }
}

/**
 * Parses `Extension extensions<..2^16-1>` (the u16 length prefix included) for a message.
 * Throws `TlsAlert` decode_error on malformed input and illegal_parameter on a duplicate type,
 * a recognized extension not allowed in this message, or a ClientHello pre_shared_key that is
 * not last.
 */
export function readExtensions(r: Reader, ctx: ExtensionContext): Extension[] {
  const list = vector(r, 2, "extensions");
  const seen = new Set<number>();
  const out: Extension[] = [];
  while (!list.done) {
    const code = list.u16("extension type");
    const body = vector(list, 2, "extension_data");
    if (seen.has(code)) throw illegal(`extension ${code} appears twice in ${ctx} (RFC 8446 §4.2)`);
    seen.add(code);
    const allowed = ALLOWED.get(code);
    if (allowed && !allowed.includes(ctx)) {
      throw illegal(`extension ${code} is not allowed in ${ctx} (RFC 8446 §4.2)`);
    }
    if (ctx === CH && seen.has(ExtensionType.pre_shared_key) && code !== ExtensionType.pre_shared_key) {
      throw illegal("pre_shared_key is not the last extension of the ClientHello (RFC 8446 §4.2.11)");
    }
    const ext = parseBody(code, body, ctx);
    body.expectEnd(`extension ${code}`);
    out.push(ext);
  }
  return out;
}

/** Parses a standalone extension list (u16 length prefix included) that must fill `bytes` exactly. */
export function parseExtensions(bytes: Uint8Array, ctx: ExtensionContext): Extension[] {
  const r = new Reader(bytes, tlsDecodeError);
  const exts = readExtensions(r, ctx);
  r.expectEnd("extensions");
  return exts;
}

function writeBody(w: Writer, ext: Extension): void {
  switch (ext.type) {
    case "server_name":
      if (ext.hostName === undefined) return;
      w.block(2, (l) => {
        l.u8(0);
        l.vec(2, latin1ToBytes(ext.hostName as string));
      });
      return;
    case "supported_groups":
      w.block(2, (l) => {
        for (const g of ext.groups) l.u16(g);
      });
      return;
    case "signature_algorithms":
    case "signature_algorithms_cert":
      w.block(2, (l) => {
        for (const s of ext.schemes) l.u16(s);
      });
      return;
    case "supported_versions":
      w.block(1, (l) => {
        for (const v of ext.versions) l.u16(v);
      });
      return;
    case "selected_version":
      w.u16(ext.version);
      return;
    case "key_share":
      w.block(2, (l) => {
        for (const s of ext.shares) l.u16(s.group).vec(2, s.keyExchange);
      });
      return;
    case "key_share_server":
      w.u16(ext.share.group).vec(2, ext.share.keyExchange);
      return;
    case "key_share_hrr":
      w.u16(ext.selectedGroup);
      return;
    case "psk_key_exchange_modes":
      w.block(1, (l) => {
        for (const m of ext.modes) l.u8(m);
      });
      return;
    case "pre_shared_key":
      writePskIdentities(w, ext.identities);
      writePskBinders(w, ext.binders);
      return;
    case "pre_shared_key_selected":
      w.u16(ext.selectedIdentity);
      return;
    case "early_data":
      return;
    case "early_data_max":
      w.u32(ext.maxEarlyDataSize);
      return;
    case "alpn":
      w.block(2, (l) => {
        for (const p of ext.protocols) l.vec(1, latin1ToBytes(p));
      });
      return;
    case "quic_transport_parameters":
      w.bytes(ext.data);
      return;
    case "cookie":
      w.vec(2, ext.cookie);
      return;
    case "opaque":
      w.bytes(ext.data);
      return;
  }
}

/** Writes `PskIdentity identities<7..2^16-1>` (RFC 8446 §4.2.11). */
export function writePskIdentities(w: Writer, identities: readonly PskIdentity[]): void {
  w.block(2, (l) => {
    for (const id of identities) l.vec(2, id.identity).u32(id.obfuscatedTicketAge);
  });
}

/** Writes `PskBinderEntry binders<33..2^16-1>` (RFC 8446 §4.2.11). */
export function writePskBinders(w: Writer, binders: readonly Uint8Array[]): void {
  w.block(2, (l) => {
    for (const b of binders) l.vec(1, b);
  });
}

/** Writes one extension: type, then its body behind a u16 length. */
export function writeExtension(w: Writer, ext: Extension): void {
  w.u16(extensionCode(ext));
  w.block(2, (b) => writeBody(b, ext));
}

/** Writes `Extension extensions<..2^16-1>` with its u16 length prefix. */
export function writeExtensions(w: Writer, exts: readonly Extension[]): void {
  w.block(2, (l) => {
    for (const e of exts) writeExtension(l, e);
  });
}
