/**
 * QUIC transport parameters (RFC 9000 §18), carried in the TLS quic_transport_parameters
 * extension (RFC 9001 §8.2), plus three extensions: max_datagram_frame_size (RFC 9221 §3),
 * grease_quic_bit (RFC 9287 §3) and version_information (RFC 9368 §5).
 *
 * Decoding validates every rule of §18.2 and the extensions and only ever throws a
 * {@link TransportError} with TRANSPORT_PARAMETER_ERROR. Unknown identifiers, including the
 * reserved GREASE ones (31 * N + 27, §18.1), are ignored.
 *
 * Not checked here, because they need connection state (RFC 9000 §7.3): that
 * initial_source_connection_id is present and matches the peer's Source Connection ID, and that
 * a server sent original_destination_connection_id (and retry_source_connection_id after a
 * Retry) with the expected values.
 *
 * Integer values above 2^53-1 (e.g. initial_max_data = 2^62-1, "unlimited") are clamped to
 * `Number.MAX_SAFE_INTEGER`; limits are compared against amounts that stay below 2^53, so the
 * clamped value behaves exactly like the true one. Range checks (initial_max_streams_* <= 2^60)
 * use the exact value.
 */
import type { Rng } from "../crypto/provider.js";
import { systemRng } from "../crypto/random.js";
import { Reader, varintLength, Writer } from "../util/bytes.js";
import { type TransportError, transportParameterError } from "./errors.js";

/** Transport parameter identifiers (RFC 9000 §18.2, RFC 9221 §3, RFC 9287 §3, RFC 9368 §5). */
export const TransportParameterId = {
  ORIGINAL_DESTINATION_CONNECTION_ID: 0x00,
  MAX_IDLE_TIMEOUT: 0x01,
  STATELESS_RESET_TOKEN: 0x02,
  MAX_UDP_PAYLOAD_SIZE: 0x03,
  INITIAL_MAX_DATA: 0x04,
  INITIAL_MAX_STREAM_DATA_BIDI_LOCAL: 0x05,
  INITIAL_MAX_STREAM_DATA_BIDI_REMOTE: 0x06,
  INITIAL_MAX_STREAM_DATA_UNI: 0x07,
  INITIAL_MAX_STREAMS_BIDI: 0x08,
  INITIAL_MAX_STREAMS_UNI: 0x09,
  ACK_DELAY_EXPONENT: 0x0a,
  MAX_ACK_DELAY: 0x0b,
  DISABLE_ACTIVE_MIGRATION: 0x0c,
  PREFERRED_ADDRESS: 0x0d,
  ACTIVE_CONNECTION_ID_LIMIT: 0x0e,
  INITIAL_SOURCE_CONNECTION_ID: 0x0f,
  RETRY_SOURCE_CONNECTION_ID: 0x10,
  /** RFC 9368 §5. */
  VERSION_INFORMATION: 0x11,
  /** RFC 9221 §3. */
  MAX_DATAGRAM_FRAME_SIZE: 0x20,
  /** RFC 9287 §3. */
  GREASE_QUIC_BIT: 0x2ab2,
} as const;

/**
 * The server's preferred address (RFC 9000 §18.2, Figure 22; §9.6). Addresses are the raw
 * network-order bytes; an all-zero address and port (0.0.0.0:0 or [::]:0) means the server
 * offers no address of that family.
 */
export interface PreferredAddress {
  /** 4 bytes. */
  ipv4: Uint8Array;
  ipv4Port: number;
  /** 16 bytes. */
  ipv6: Uint8Array;
  ipv6Port: number;
  /** 1..20 bytes; sequence number 1 (RFC 9000 §5.1.1). */
  connectionId: Uint8Array;
  /** 16 bytes. */
  statelessResetToken: Uint8Array;
}

/** Version Information (RFC 9368 §5): the chosen version and the versions offered or supported. */
export interface VersionInformation {
  chosenVersion: number;
  availableVersions: number[];
}

/**
 * QUIC transport parameters, RFC 9000 §18.2 (camelCase of the RFC names) plus RFC 9221, 9287
 * and 9368. Absent optional fields mean the parameter was not sent; absent numeric ones take
 * their RFC defaults (see {@link defaultTransportParameters}). Integers above 2^53-1 on the wire
 * are clamped to `Number.MAX_SAFE_INTEGER`.
 */
export interface TransportParameters {
  /** 0x00, server only: the Destination Connection ID of the client's first Initial. */
  originalDestinationConnectionId?: Uint8Array;
  /** 0x01: milliseconds; 0 disables the idle timeout. */
  maxIdleTimeout: number;
  /** 0x02, server only: 16 bytes. */
  statelessResetToken?: Uint8Array;
  /** 0x03: at least 1200; default 65527. */
  maxUdpPayloadSize: number;
  /** 0x04 */
  initialMaxData: number;
  /** 0x05 */
  initialMaxStreamDataBidiLocal: number;
  /** 0x06 */
  initialMaxStreamDataBidiRemote: number;
  /** 0x07 */
  initialMaxStreamDataUni: number;
  /** 0x08: at most 2^60. */
  initialMaxStreamsBidi: number;
  /** 0x09: at most 2^60. */
  initialMaxStreamsUni: number;
  /** 0x0a: at most 20; default 3. */
  ackDelayExponent: number;
  /** 0x0b: milliseconds, below 2^14; default 25. */
  maxAckDelay: number;
  /** 0x0c: a zero-length parameter, present or not. */
  disableActiveMigration: boolean;
  /** 0x0d, server only. */
  preferredAddress?: PreferredAddress;
  /** 0x0e: at least 2; default 2. */
  activeConnectionIdLimit: number;
  /** 0x0f: the Source Connection ID of the sender's first Initial (required, RFC 9000 §7.3). */
  initialSourceConnectionId?: Uint8Array;
  /** 0x10, server only: the Source Connection ID of the Retry packet. */
  retrySourceConnectionId?: Uint8Array;
  /** 0x20 (RFC 9221 §3): largest DATAGRAM frame accepted; 0 (default) = no DATAGRAM support. */
  maxDatagramFrameSize: number;
  /** 0x2ab2 (RFC 9287 §3): the sender accepts packets with the QUIC Bit set to 0. */
  greaseQuicBit: boolean;
  /** 0x11 (RFC 9368 §5). */
  versionInformation?: VersionInformation;
}

/** The RFC defaults: what a peer that sent an empty parameter list means. */
export const defaultTransportParameters: Readonly<TransportParameters> = Object.freeze({
  maxIdleTimeout: 0,
  maxUdpPayloadSize: 65527,
  initialMaxData: 0,
  initialMaxStreamDataBidiLocal: 0,
  initialMaxStreamDataBidiRemote: 0,
  initialMaxStreamDataUni: 0,
  initialMaxStreamsBidi: 0,
  initialMaxStreamsUni: 0,
  ackDelayExponent: 3,
  maxAckDelay: 25,
  disableActiveMigration: false,
  activeConnectionIdLimit: 2,
  maxDatagramFrameSize: 0,
  greaseQuicBit: false,
});

/** Options for {@link encodeTransportParameters}. */
export interface EncodeTransportParametersOptions {
  /**
   * Add one reserved parameter (id 31 * N + 27, RFC 9000 §18.1) with a random value, to keep
   * peers honest about ignoring unknown parameters.
   */
  grease?: boolean;
  /** Randomness for GREASE; defaults to the system CSPRNG. Inject a seeded one in tests. */
  rng?: Rng;
}

const Id = TransportParameterId;

/** Integer parameters in id order: [id, field]. */
const INTEGER_PARAMS = [
  [Id.MAX_IDLE_TIMEOUT, "maxIdleTimeout"],
  [Id.MAX_UDP_PAYLOAD_SIZE, "maxUdpPayloadSize"],
  [Id.INITIAL_MAX_DATA, "initialMaxData"],
  [Id.INITIAL_MAX_STREAM_DATA_BIDI_LOCAL, "initialMaxStreamDataBidiLocal"],
  [Id.INITIAL_MAX_STREAM_DATA_BIDI_REMOTE, "initialMaxStreamDataBidiRemote"],
  [Id.INITIAL_MAX_STREAM_DATA_UNI, "initialMaxStreamDataUni"],
  [Id.INITIAL_MAX_STREAMS_BIDI, "initialMaxStreamsBidi"],
  [Id.INITIAL_MAX_STREAMS_UNI, "initialMaxStreamsUni"],
  [Id.ACK_DELAY_EXPONENT, "ackDelayExponent"],
  [Id.MAX_ACK_DELAY, "maxAckDelay"],
  [Id.ACTIVE_CONNECTION_ID_LIMIT, "activeConnectionIdLimit"],
  [Id.MAX_DATAGRAM_FRAME_SIZE, "maxDatagramFrameSize"],
] as const;

type IntegerField = (typeof INTEGER_PARAMS)[number][1];

const INTEGER_FIELD = new Map<number, IntegerField>(INTEGER_PARAMS);
const INTEGER_ID = Object.fromEntries(INTEGER_PARAMS.map(([id, field]) => [field, id])) as Record<
  IntegerField,
  number
>;

/** RFC 9000 §18.2: parameters a client MUST NOT send. */
const SERVER_ONLY = new Set<number>([
  Id.ORIGINAL_DESTINATION_CONNECTION_ID,
  Id.STATELESS_RESET_TOKEN,
  Id.PREFERRED_ADDRESS,
  Id.RETRY_SOURCE_CONNECTION_ID,
]);

const PARAM_NAME: Record<number, string> = {
  [Id.ORIGINAL_DESTINATION_CONNECTION_ID]: "original_destination_connection_id",
  [Id.MAX_IDLE_TIMEOUT]: "max_idle_timeout",
  [Id.STATELESS_RESET_TOKEN]: "stateless_reset_token",
  [Id.MAX_UDP_PAYLOAD_SIZE]: "max_udp_payload_size",
  [Id.INITIAL_MAX_DATA]: "initial_max_data",
  [Id.INITIAL_MAX_STREAM_DATA_BIDI_LOCAL]: "initial_max_stream_data_bidi_local",
  [Id.INITIAL_MAX_STREAM_DATA_BIDI_REMOTE]: "initial_max_stream_data_bidi_remote",
  [Id.INITIAL_MAX_STREAM_DATA_UNI]: "initial_max_stream_data_uni",
  [Id.INITIAL_MAX_STREAMS_BIDI]: "initial_max_streams_bidi",
  [Id.INITIAL_MAX_STREAMS_UNI]: "initial_max_streams_uni",
  [Id.ACK_DELAY_EXPONENT]: "ack_delay_exponent",
  [Id.MAX_ACK_DELAY]: "max_ack_delay",
  [Id.DISABLE_ACTIVE_MIGRATION]: "disable_active_migration",
  [Id.PREFERRED_ADDRESS]: "preferred_address",
  [Id.ACTIVE_CONNECTION_ID_LIMIT]: "active_connection_id_limit",
  [Id.INITIAL_SOURCE_CONNECTION_ID]: "initial_source_connection_id",
  [Id.RETRY_SOURCE_CONNECTION_ID]: "retry_source_connection_id",
  [Id.VERSION_INFORMATION]: "version_information",
  [Id.MAX_DATAGRAM_FRAME_SIZE]: "max_datagram_frame_size",
  [Id.GREASE_QUIC_BIT]: "grease_quic_bit",
};

const MAX_CID_LENGTH = 20;
const TWO_POW_60 = 2n ** 60n;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Checks an integer value against the RFC's bounds; returns a reason when it is invalid.
 * `v` is exact (a bigint only above 2^53-1).
 */
function integerProblem(field: IntegerField, v: number | bigint): string | undefined {
  switch (field) {
    case "maxUdpPayloadSize":
      return v < 1200 ? `max_udp_payload_size ${v} is below 1200` : undefined;
    case "ackDelayExponent":
      return v > 20 ? `ack_delay_exponent ${v} is above 20` : undefined;
    case "maxAckDelay":
      return v >= 2 ** 14 ? `max_ack_delay ${v} is not below 2^14` : undefined;
    case "activeConnectionIdLimit":
      return v < 2 ? `active_connection_id_limit ${v} is below 2` : undefined;
    case "initialMaxStreamsBidi":
    case "initialMaxStreamsUni":
      return BigInt(v) > TWO_POW_60
        ? `initial_max_streams_${field === "initialMaxStreamsBidi" ? "bidi" : "uni"} ${v} exceeds 2^60`
        : undefined;
    default:
      return undefined;
  }
}

/** Whether `id` is a reserved GREASE identifier, 31 * N + 27 (RFC 9000 §18.1). */
export function isReservedTransportParameterId(id: number | bigint): boolean {
  return BigInt(id) % 31n === 27n;
}

/**
 * Encodes transport parameters (RFC 9000 §18) in identifier order, leaving out parameters that
 * are absent or equal to their default. Throws `RangeError` for values the RFC forbids (a
 * connection ID over 20 bytes, a reset token that is not 16 bytes, a limit out of range, a
 * malformed preferred address or version information).
 */
export function encodeTransportParameters(
  params: Partial<TransportParameters>,
  opts: EncodeTransportParametersOptions = {},
): Uint8Array {
  const d = defaultTransportParameters;
  // Each present parameter becomes one writer step, in identifier order.
  const parts: Array<(w: Writer) => void> = [];
  const bytesParam = (id: number, v: Uint8Array | undefined, exact?: number): void => {
    if (v === undefined) return;
    if (exact !== undefined ? v.length !== exact : v.length > MAX_CID_LENGTH) {
      throw new RangeError(`${PARAM_NAME[id]} has ${v.length} bytes`);
    }
    parts.push((w) => w.varint(id).varint(v.length).bytes(v));
  };
  const flagParam = (id: number, on: boolean | undefined): void => {
    if (on) parts.push((w) => w.varint(id).varint(0));
  };
  const integerParam = (field: IntegerField): void => {
    const v = params[field];
    if (v === undefined || v === d[field]) return;
    const id = INTEGER_ID[field];
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${PARAM_NAME[id]} ${v} is not a varint`);
    const problem = integerProblem(field, v);
    if (problem) throw new RangeError(problem);
    parts.push((w) => w.varint(id).varint(varintLength(v)).varint(v));
  };

  bytesParam(Id.ORIGINAL_DESTINATION_CONNECTION_ID, params.originalDestinationConnectionId);
  integerParam("maxIdleTimeout");
  bytesParam(Id.STATELESS_RESET_TOKEN, params.statelessResetToken, 16);
  integerParam("maxUdpPayloadSize");
  integerParam("initialMaxData");
  integerParam("initialMaxStreamDataBidiLocal");
  integerParam("initialMaxStreamDataBidiRemote");
  integerParam("initialMaxStreamDataUni");
  integerParam("initialMaxStreamsBidi");
  integerParam("initialMaxStreamsUni");
  integerParam("ackDelayExponent");
  integerParam("maxAckDelay");
  flagParam(Id.DISABLE_ACTIVE_MIGRATION, params.disableActiveMigration);
  const pa = params.preferredAddress;
  if (pa) {
    checkPreferredAddress(pa);
    parts.push((w) => encodePreferredAddress(w, pa));
  }
  integerParam("activeConnectionIdLimit");
  bytesParam(Id.INITIAL_SOURCE_CONNECTION_ID, params.initialSourceConnectionId);
  bytesParam(Id.RETRY_SOURCE_CONNECTION_ID, params.retrySourceConnectionId);
  const vi = params.versionInformation;
  if (vi) {
    checkVersionInformation(vi);
    parts.push((w) => encodeVersionInformation(w, vi));
  }
  integerParam("maxDatagramFrameSize");
  flagParam(Id.GREASE_QUIC_BIT, params.greaseQuicBit);

  if (opts.grease) {
    // RFC 9000 §18.1: a reserved id 31 * N + 27 with an arbitrary value, at a random position.
    const rng = opts.rng ?? systemRng;
    const rand = rng.fill(new Uint8Array(4));
    const n = ((rand[0] << 8) | rand[1]) & 0x3fff; // N < 2^14 keeps the id within 4 bytes
    const value = rng.fill(new Uint8Array(rand[2] % 17));
    parts.splice(rand[3] % (parts.length + 1), 0, (w) =>
      w
        .varint(31 * n + 27)
        .varint(value.length)
        .bytes(value),
    );
  }

  const w = new Writer(128);
  for (const part of parts) part(w);
  return w.finish().slice();
}

function checkPreferredAddress(pa: PreferredAddress): void {
  const cid = pa.connectionId;
  if (pa.ipv4.length !== 4 || pa.ipv6.length !== 16) {
    throw new RangeError("preferred_address needs a 4-byte IPv4 and a 16-byte IPv6 address");
  }
  if (cid.length < 1 || cid.length > MAX_CID_LENGTH) {
    throw new RangeError(`preferred_address connection ID of ${cid.length} bytes (must be 1..20)`);
  }
  if (pa.statelessResetToken.length !== 16)
    throw new RangeError("preferred_address reset token must be 16 bytes");
  for (const port of [pa.ipv4Port, pa.ipv6Port]) {
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`invalid port ${port}`);
  }
}

function encodePreferredAddress(w: Writer, pa: PreferredAddress): void {
  const cid = pa.connectionId;
  w.varint(Id.PREFERRED_ADDRESS).varint(4 + 2 + 16 + 2 + 1 + cid.length + 16);
  w.bytes(pa.ipv4).u16(pa.ipv4Port).bytes(pa.ipv6).u16(pa.ipv6Port);
  w.u8(cid.length).bytes(cid).bytes(pa.statelessResetToken);
}

function checkVersionInformation(vi: VersionInformation): void {
  for (const v of [vi.chosenVersion, ...vi.availableVersions]) {
    if (!Number.isInteger(v) || v <= 0 || v > 0xffffffff) {
      throw new RangeError(`version_information: invalid version ${v}`);
    }
  }
}

function encodeVersionInformation(w: Writer, vi: VersionInformation): void {
  const all = [vi.chosenVersion, ...vi.availableVersions];
  w.varint(Id.VERSION_INFORMATION).varint(4 * all.length);
  for (const v of all) w.u32(v);
}

/** Reads a varint exactly: a number up to 2^53-1, a bigint above. */
function u62(r: Reader, what: string): number | bigint {
  if (r.pos < r.end && r.buf[r.pos] >= 0xc0) {
    const v = r.varintBig(what);
    return v > MAX_SAFE_BIG ? v : Number(v);
  }
  return r.varint(what);
}

/**
 * Decodes and validates the transport parameters a peer sent (RFC 9000 §18), returning a full
 * set with the RFC defaults filled in. `sender` is the peer's role: a client may not send the
 * server-only parameters. Byte fields are fresh copies. Throws `TransportError`
 * (TRANSPORT_PARAMETER_ERROR) whose reason names the offending parameter.
 */
export function decodeTransportParameters(
  bytes: Uint8Array,
  sender: "client" | "server",
): TransportParameters {
  const r = new Reader(bytes, (reason) =>
    transportParameterError(`malformed transport parameters: ${reason}`),
  );
  const out: TransportParameters = { ...defaultTransportParameters };
  const seen = new Set<number | bigint>();
  const fail = (reason: string): TransportError => transportParameterError(reason);

  while (!r.done) {
    const id = u62(r, "transport parameter ID");
    const len = r.varint("transport parameter length");
    const name = typeof id === "number" ? PARAM_NAME[id] : undefined;
    const v = r.sub(len, `${name ?? "transport parameter"} value`);
    // RFC 9000 §18: a parameter MUST NOT be sent twice; a receiver SHOULD treat it as
    // TRANSPORT_PARAMETER_ERROR. Applied to unknown ids too.
    if (seen.has(id)) throw fail(`duplicate transport parameter ${name ?? `0x${id.toString(16)}`}`);
    seen.add(id);
    if (typeof id !== "number" || name === undefined) continue; // unknown or GREASE (§18.1)
    if (sender === "client" && SERVER_ONLY.has(id)) {
      throw fail(`client sent server-only transport parameter ${name}`);
    }
    const vr = new Reader(bytes, (reason) => fail(`malformed ${name}: ${reason}`), v.pos, v.end);
    const field = INTEGER_FIELD.get(id);
    if (field !== undefined) {
      const value = u62(vr, name);
      vr.expectEnd(name);
      const problem = integerProblem(field, value);
      if (problem) throw fail(problem);
      out[field] = typeof value === "number" ? value : Number.MAX_SAFE_INTEGER;
      continue;
    }
    switch (id) {
      case Id.ORIGINAL_DESTINATION_CONNECTION_ID:
        out.originalDestinationConnectionId = connectionId(vr, name, fail);
        break;
      case Id.INITIAL_SOURCE_CONNECTION_ID:
        out.initialSourceConnectionId = connectionId(vr, name, fail);
        break;
      case Id.RETRY_SOURCE_CONNECTION_ID:
        out.retrySourceConnectionId = connectionId(vr, name, fail);
        break;
      case Id.STATELESS_RESET_TOKEN:
        if (vr.remaining !== 16) throw fail(`stateless_reset_token has ${vr.remaining} bytes, not 16`);
        out.statelessResetToken = vr.copy(16);
        break;
      case Id.DISABLE_ACTIVE_MIGRATION:
        if (!vr.done) throw fail(`disable_active_migration must be empty, has ${vr.remaining} bytes`);
        out.disableActiveMigration = true;
        break;
      case Id.GREASE_QUIC_BIT:
        // RFC 9287 §3: a non-empty value MUST be treated as TRANSPORT_PARAMETER_ERROR.
        if (!vr.done) throw fail(`grease_quic_bit must be empty, has ${vr.remaining} bytes`);
        out.greaseQuicBit = true;
        break;
      case Id.PREFERRED_ADDRESS:
        out.preferredAddress = preferredAddress(vr, fail);
        break;
      case Id.VERSION_INFORMATION:
        out.versionInformation = versionInformation(vr, sender, fail);
        break;
    }
  }
  return out;
}

function connectionId(r: Reader, name: string, fail: (reason: string) => TransportError): Uint8Array {
  if (r.remaining > MAX_CID_LENGTH) throw fail(`${name} is ${r.remaining} bytes, longer than 20`);
  return r.copy(r.remaining);
}

/** RFC 9000 §18.2, Figure 22. */
function preferredAddress(r: Reader, fail: (reason: string) => TransportError): PreferredAddress {
  const ipv4 = r.copy(4, "IPv4 address");
  const ipv4Port = r.u16("IPv4 port");
  const ipv6 = r.copy(16, "IPv6 address");
  const ipv6Port = r.u16("IPv6 port");
  const cidLength = r.u8("connection ID length");
  // RFC 9000 §18.2: a server MUST NOT include a zero-length connection ID; a client MUST treat
  // that as TRANSPORT_PARAMETER_ERROR. Connection IDs are at most 20 bytes (§17.2).
  if (cidLength === 0) throw fail("preferred_address has a zero-length connection ID");
  if (cidLength > MAX_CID_LENGTH) throw fail(`preferred_address connection ID of ${cidLength} bytes`);
  const connectionId = r.copy(cidLength, "connection ID");
  const statelessResetToken = r.copy(16, "stateless reset token");
  r.expectEnd("preferred_address");
  return { ipv4, ipv4Port, ipv6, ipv6Port, connectionId, statelessResetToken };
}

/** RFC 9368 §5, with the parsing-failure rules of §4. */
function versionInformation(
  r: Reader,
  sender: "client" | "server",
  fail: (reason: string) => TransportError,
): VersionInformation {
  if (r.remaining < 4 || r.remaining % 4 !== 0) {
    throw fail(`version_information length ${r.remaining} is not a non-zero multiple of 4`);
  }
  const chosenVersion = r.u32();
  const availableVersions: number[] = [];
  while (!r.done) availableVersions.push(r.u32());
  if (chosenVersion === 0) throw fail("version_information chosen version is 0");
  if (availableVersions.includes(0)) throw fail("version_information lists version 0");
  // RFC 9368 §4: a server receiving a Chosen Version missing from Available Versions MUST treat
  // it as a parsing failure.
  if (sender === "client" && !availableVersions.includes(chosenVersion)) {
    throw fail("version_information chosen version is not among the available versions");
  }
  return { chosenVersion, availableVersions };
}
