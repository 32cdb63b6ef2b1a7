/**
 * A QUIC connection as a sans-IO state machine (RFC 9000, 9001, 9002).
 *
 * Nothing here touches a socket, a timer or the clock: the owner passes `now` (milliseconds,
 * any monotonic origin) into every call. Calling order, as in quinn-proto and aioquic:
 *
 * 1. `receive(now, datagram)` for every datagram routed to this connection;
 * 2. then `pollTransmit(now)` until it returns undefined, sending each datagram to `remote`;
 * 3. `pollTimeout()` gives the absolute time of the next timer: call `handleTimeout(now)` then,
 *    and go to 2;
 * 4. `pollEvent()` until undefined after each of the above, to learn about the handshake,
 *    streams, datagrams and the end of the connection.
 *
 * Application calls (`openStream`, `write`, `read`, `close`, ...) may happen at any time; go to
 * step 2 after them.
 *
 * Everything the peer can do wrong becomes a CONNECTION_CLOSE with the RFC 9000 §20 code and a
 * `closed` event; no exception escapes `receive` or `handleTimeout`.
 */
import type { PrivateKey } from "../crypto/provider.js";
import { MquicttError } from "../errors.js";
import { AlertDescription, TlsAlert } from "../tls/alert.js";
import { TlsClient } from "../tls/client.js";
import type { EncryptionLevel, PeerVerifier, SessionTicket, TlsEvent } from "../tls/handshake-common.js";
import { type ConnectedTlsServer, TlsServer } from "../tls/server.js";
import type { CipherSuite } from "../tls/suites.js";
import { bytesEqual, toHex, Writer } from "../util/bytes.js";
import { LocalCids, PeerCids } from "./cid.js";
import {
  type ConnectionConfig,
  DEFAULT_VERSION,
  localTransportParameters,
  type QlogEvent,
  resolveSettings,
  type TransportSettings,
} from "./config.js";
import { TransportError, TransportErrorCode } from "./errors.js";
import {
  type AckFrame,
  cryptoDataCapacity,
  encodeFrame,
  type Frame,
  FrameIterator,
  frameAllowedIn,
  frameSize,
  type PacketType,
} from "./frames.js";
import {
  encodePacketNumberLength,
  type LongHeader,
  longHeaderLength,
  type ProtectedHeader,
  type RetryHeader,
  shortHeaderLength,
  splitCoalesced,
  type VersionNegotiationHeader,
  writeLongHeader,
  writeShortHeader,
} from "./packet.js";
import {
  AEAD_TAG_LENGTH,
  decryptPayload,
  derivePacketKeys,
  initialKeys,
  minPayloadLength,
  type PacketKeys,
  protect,
  protectPayload,
  removeHeaderProtection,
  unprotect,
  verifyRetryIntegrity,
} from "./protection.js";
import { AckTracker } from "./recovery/ack-tracker.js";
import { LossDetector } from "./recovery/loss.js";
import { Pacer } from "./recovery/pacer.js";
import { INITIAL_RTT } from "./recovery/rtt.js";
import type { SentPacket } from "./recovery/sent-packets.js";
import { PN_SPACES, PnSpace } from "./recovery/space.js";
import { RecvBuffer } from "./streams/recv-buffer.js";
import { SendBuffer } from "./streams/send-buffer.js";
import { type StreamControlFrame, StreamManager } from "./streams/streams.js";
import { Timer, TimerTable } from "./timers.js";
import {
  decodeTransportParameters,
  encodeTransportParameters,
  type TransportParameters,
} from "./transport-params.js";
import { isSupportedVersion, SUPPORTED_VERSIONS } from "./version.js";

/** Smallest datagram carrying a client Initial (RFC 9000 §14.1). */
export const MIN_INITIAL_DATAGRAM = 1200;
/** A PING frame (RFC 9000 §19.2), what a PMTU probe carries. */
const PING_FRAME = new Uint8Array([0x01]);
/** Bound on CRYPTO bytes buffered ahead of the read offset per level (RFC 9000 §7.5). */
const CRYPTO_BUFFER_LIMIT = 64 * 1024;
/** Packets kept while their keys are not yet available (RFC 9001 §5.7). */
const MAX_UNDECRYPTABLE = 16;
/** Datagrams buffered for DATAGRAM events before we drop the oldest. */
const MAX_DATAGRAM_QUEUE = 256;
/** DPLPMTUD: lost probes of one size before it counts as too big (RFC 8899 §5.1.2 MAX_PROBES). */
const PMTU_MAX_PROBES = 3;
/** DPLPMTUD: the search stops when validated and failed sizes are this close. */
const PMTU_RESOLUTION = 16;
/**
 * DPLPMTUD: UDP payloads of common path MTUs, largest first, with IPv6's 48 bytes of headers so
 * they fit IPv4 too: 9000-byte jumbo frames and 1500-byte Ethernet.
 */
const PMTU_PLATEAUS: readonly number[] = [9000 - 48, 1500 - 48];
/** Buffer.allocUnsafe serves sizes below this from its shared pool; larger ones are allocations. */
const POOLED_DATAGRAM_LIMIT = Buffer.poolSize >>> 1;
/**
 * Where datagrams that may exceed that are built, to be copied out at their real length: with a
 * large datagram size (loopback), every small packet (an ACK, a short message) would otherwise
 * cost a fresh 16-64 KB allocation. One per process: `transmit` never re-enters.
 */
let largeDatagramScratch = new Uint8Array(0);

/** Why and by whom a connection ended. */
export interface CloseInfo {
  /** Transport (RFC 9000 §20) or application error code. */
  readonly errorCode: number;
  /** True for an application close (CONNECTION_CLOSE type 0x1d). */
  readonly application: boolean;
  readonly reason: string;
  /**
   * Who closed it: us, the peer, the idle timer, a stateless reset, version negotiation, or the
   * loss of every validated path to the peer (a migration whose new address never answered).
   */
  readonly initiator: "local" | "remote" | "idle" | "stateless-reset" | "version-negotiation" | "path";
}

/** What a connection reports to its owner, in order. */
export type ConnectionEvent =
  /** The TLS handshake completed (RFC 9001 §4.1.1): streams can carry application data. */
  | {
      type: "connected";
      alpn: string | undefined;
      suite: CipherSuite["name"];
      peerCertificates: readonly Uint8Array[];
      /** True when the TLS session was resumed from a ticket (no certificate was sent). */
      resumed: boolean;
      /**
       * 0-RTT: "accepted" (the server processed our early data), "rejected" (it did not; the
       * client resent it in 1-RTT packets), or "none" (not attempted).
       */
      earlyData: "accepted" | "rejected" | "none";
    }
  /** The handshake is confirmed (RFC 9001 §4.1.2). */
  | { type: "handshake_confirmed" }
  /** The peer opened a stream. */
  | { type: "stream_opened"; streamId: number; bidi: boolean }
  /** A stream has data or its end to read. */
  | { type: "stream_readable"; streamId: number }
  /** Send-buffer space freed up on a stream. */
  | { type: "stream_writable"; streamId: number }
  /** The peer reset its sending part of a stream (RESET_STREAM). */
  | { type: "stream_reset"; streamId: number; errorCode: number }
  /** The peer asked us to stop sending (STOP_SENDING); we reset the stream with its code. */
  | { type: "stream_stop_sending"; streamId: number; errorCode: number }
  /** Streams of that direction can be opened again after `openStream` returned undefined. */
  | { type: "streams_available"; bidi: boolean }
  /** An unreliable DATAGRAM (RFC 9221). */
  | { type: "datagram"; data: Uint8Array }
  /** Client: a session ticket for resumption. */
  | { type: "session_ticket"; ticket: SessionTicket }
  /** The connection is closing or draining: no more application data. */
  | { type: "closed"; info: CloseInfo }
  /** The connection is gone: the owner can forget it (and its connection IDs). */
  | { type: "drained" }
  /**
   * Server: datagrams now go to `remote`: the client migrated or its NAT rebound (RFC 9000 §9.3),
   * or a new address failed validation and the last validated one is back (§9.3.2).
   */
  | { type: "peer_address_changed"; remote: string; validated: boolean };

/** Error thrown to the application for API misuse (not for a peer's faults). */
export class ConnectionError extends MquicttError {}

/** Recovery tokens: what a sent packet carried, returned on ack or loss (RFC 9002, neqo style). */
type Token =
  | { k: "crypto"; space: PnSpace; offset: number; length: number }
  | { k: "stream"; id: number; offset: number; length: number; fin: boolean }
  | { k: "ack"; space: PnSpace; largest: number }
  | { k: "control"; frame: StreamControlFrame }
  | { k: "handshake_done" }
  | { k: "new_cid"; frame: Frame & { type: "new_connection_id" } }
  | { k: "retire_cid"; sequence: number }
  | { k: "ping" }
  | { k: "pmtu"; size: number };

type State = "handshake" | "established" | "closing" | "draining" | "closed";

const LEVEL_OF_SPACE: Readonly<Record<PnSpace, "initial" | "handshake" | "application">> = {
  [PnSpace.Initial]: "initial",
  [PnSpace.Handshake]: "handshake",
  [PnSpace.ApplicationData]: "application",
};
/**
 * The limits a client may assume in 0-RTT (RFC 9000 §7.4.1), encoded to seal into tickets: the
 * server accepts a ticket's 0-RTT only while its own limits are still exactly these.
 */
function earlyDataLimits(p: TransportParameters): Uint8Array {
  const w = new Writer(64);
  for (const v of [
    p.initialMaxData,
    p.initialMaxStreamDataBidiLocal,
    p.initialMaxStreamDataBidiRemote,
    p.initialMaxStreamDataUni,
    p.initialMaxStreamsBidi,
    p.initialMaxStreamsUni,
    p.activeConnectionIdLimit,
    p.maxDatagramFrameSize ?? 0,
  ])
    w.varint(v);
  return w.finish();
}

/**
 * Server TLS settings for 0-RTT (RFC 9001 §4.6.1): tickets allow it (max_early_data_size must
 * be 0xffffffff in QUIC), carry the limits the client will assume, and a ticket's early data is
 * accepted only if those limits still hold (RFC 9000 §7.4.1: the server must not reduce them).
 */
function earlyDataServerConfig(local: TransportParameters): {
  maxEarlyDataSize: number;
  ticketAppData: Uint8Array;
  acceptEarlyData: (appData: Uint8Array) => boolean;
} {
  const limits = earlyDataLimits(local);
  return {
    maxEarlyDataSize: 0xffffffff,
    ticketAppData: limits,
    acceptEarlyData: (appData) => bytesEqual(appData, limits),
  };
}

/**
 * The resolved settings of a config object, shared by every connection made from it (an
 * endpoint reuses one config for all the connections it accepts): a copy each was ~170 bytes.
 */
const settingsCache = new WeakMap<ConnectionConfig, Readonly<TransportSettings>>();
function settingsOf(config: ConnectionConfig): Readonly<TransportSettings> {
  let s = settingsCache.get(config);
  if (!s) {
    s = Object.freeze(resolveSettings(config));
    settingsCache.set(config, s);
  }
  return s;
}

/** The Retry token of a client that got none, and every server's: empty. */
const EMPTY_TOKEN = new Uint8Array(0);

const PACKET_TYPE_OF_SPACE: Readonly<Record<PnSpace, PacketType>> = {
  [PnSpace.Initial]: "initial",
  [PnSpace.Handshake]: "handshake",
  [PnSpace.ApplicationData]: "one_rtt",
};

/**
 * Frames of the packet being built, shared by every connection (it was 2 KB each): the sans-IO
 * core is synchronous and builds one packet at a time, sealing it into the datagram before
 * `buildPacket` returns, with no callback into other code in between.
 */
const SCRATCH = new Writer(2048);

/** Per packet-number-space state (RFC 9000 §12.3). */
class Space {
  readonly discarded = false;
  readKeys: PacketKeys | undefined;
  writeKeys: PacketKeys | undefined;
  nextPn = 0;
  readonly acks: AckTracker;
  private cryptoInBuffer: RecvBuffer | undefined;
  /** Incoming CRYPTO stream of this level; made on first use (a server's 1-RTT one never is). */
  get cryptoIn(): RecvBuffer {
    this.cryptoInBuffer ??= new RecvBuffer({ maxAhead: CRYPTO_BUFFER_LIMIT, frameType: 0x06 });
    return this.cryptoInBuffer;
  }
  /** Outgoing CRYPTO stream of this level. */
  readonly cryptoOut = new SendBuffer(Number.MAX_SAFE_INTEGER);
  /** Send probes (PTO) in this space: number of ack-eliciting packets still owed. */
  probes = 0;

  constructor(
    readonly id: PnSpace,
    maxAckDelay: number,
  ) {
    this.acks = new AckTracker({ space: id, maxAckDelay });
  }

  get hasCryptoToSend(): boolean {
    return this.writeKeys !== undefined && this.cryptoOut.hasSendable();
  }
}

/** A path validation under way (RFC 9000 §8.2). */
interface PathChallenge {
  /** The peer address being validated. */
  readonly to: string;
  /** The destination connection ID used on that path. */
  readonly dcid: Uint8Array;
  /** The PATH_CHALLENGE data (unpredictable; resent as is, any echo of it validates). */
  readonly data: Uint8Array;
  /** When the next PATH_CHALLENGE goes out; the interval doubles after each (§8.2.1). */
  nextAt: number;
  interval: number;
  /** Validation fails without a PATH_RESPONSE by then (§8.2.4). */
  readonly deadline: number;
  /** Sent in datagrams of at least 1200 bytes (else the path MTU is still to be validated). */
  full: boolean;
}

/** The host part of an address written `host:port` (IPv6 as `[host]:port`); else the whole string. */
function hostOf(address: string): string {
  const i = address.lastIndexOf(":");
  return i < 0 ? address : address.slice(0, i);
}

/**
 * An Initial or Handshake space whose keys were discarded (RFC 9001 §4.9): nothing is sent,
 * received or acknowledged in it any more (late packets are dropped, §4.9), so its buffers,
 * ACK state and keys are let go and one shared, frozen placeholder per space takes its place.
 */
interface DiscardedSpace {
  readonly discarded: true;
  readonly id: PnSpace;
  readonly readKeys: undefined;
  readonly writeKeys: undefined;
  readonly probes: 0;
}

const discardedSpace = (id: PnSpace): DiscardedSpace =>
  Object.freeze({ discarded: true, id, readKeys: undefined, writeKeys: undefined, probes: 0 });
const DISCARDED_SPACES: readonly DiscardedSpace[] = [
  discardedSpace(PnSpace.Initial),
  discardedSpace(PnSpace.Handshake),
];

/** The Application Data space is never discarded (RFC 9001 §4.9 covers Initial and Handshake). */
type Spaces = [Space | DiscardedSpace, Space | DiscardedSpace, Space];

/**
 * One QUIC connection. Create clients with `Connection.client()`; servers are created by the
 * `Endpoint` from a client's first Initial (`Connection.server()`).
 */
export class Connection {
  readonly role: "client" | "server";
  /** The peer's address, as the owner names it (opaque here). */
  remote: string;
  /** Shared by the connections of one config object: never modified. */
  readonly settings: Readonly<TransportSettings>;
  version: number;

  private state: State = "handshake";
  private readonly config: ConnectionConfig;
  /** A server's is replaced by its lighter `postHandshake()` form once connected (see tlsGuard). */
  private tls: TlsClient | TlsServer | ConnectedTlsServer;
  private readonly spaces: Spaces;
  private readonly loss: LossDetector<Token>;
  private readonly pacer: Pacer;
  private readonly timers = new TimerTable();
  readonly streams: StreamManager;
  readonly localCids: LocalCids;
  private peerCids: PeerCids;
  private events: ConnectionEvent[] = [];

  /** The Destination Connection ID of the client's first Initial (keys, and §7.3 checks). */
  readonly originalDcid: Uint8Array;
  /** Our Source Connection ID in the handshake. */
  private readonly initialScid: Uint8Array;
  /** Client: the Retry token to echo in Initials; the SCID of the Retry (§7.3). */
  private retryToken: Uint8Array = EMPTY_TOKEN;
  private retryScid: Uint8Array | undefined;
  /** Client: whether we have processed any packet from the server. */
  private receivedFromPeer = false;
  /** Client: the server's SCID from its first Initial (checked against initial_source_connection_id). */
  private peerInitialScid: Uint8Array | undefined;

  private peerParams: TransportParameters | undefined;
  private maxDatagramSize = 1200;
  /**
   * DPLPMTUD (RFC 9000 §14.3, RFC 8899): sizes above 1200 bytes are used only once a probe of
   * that size was acknowledged. `low` is validated, `high` failed (target + 1 before any
   * failure), `size` the one being probed (0: search over), `lost` its lost probes.
   */
  private readonly pmtu = { target: 0, size: 0, low: 1200, high: 0, lost: 0, due: false, resumeOnAck: false };
  private idleTimeout = 0;
  /** An ack-eliciting packet was sent since the last packet received (idle timer, §10.1). */
  private ackElicitingSentSinceReceipt = false;

  /** Anti-amplification accounting for servers (RFC 9000 §8.1). */
  private addressValidated: boolean;
  private bytesReceived = 0;
  private bytesSent = 0;

  private handshakeComplete = false;
  private handshakeConfirmed = false;
  private handshakeDonePending = false;
  private sentHandshakePacket = false;

  /** 1-RTT key phase (RFC 9001 §6). */
  private keyPhase: 0 | 1 = 0;
  private nextReadKeys: PacketKeys | undefined;
  private prevReadKeys: PacketKeys | undefined;
  private prevReadKeysUntil = 0;
  /** The lowest packet number received in the current key phase (older ones use prevReadKeys, §6.5). */
  private keyPhaseStartPn = 0;
  /** The first packet number sent with the current key phase (a key update needs an ack of one, §6.1). */
  private keyPhaseFirstSentPn = 0;

  /** PATH_RESPONSE data to send, with the address the PATH_CHALLENGE came from (§8.2.2). */
  private pendingPathResponses: { data: Uint8Array; to: string; budget: number }[] = [];
  /**
   * Connection migration (RFC 9000 §9.3): path validations under way, the last validated peer
   * address while `remote` is not validated yet (to return to if validation fails, §9.3.2), and
   * the destination CID the peer used on the current path (a new one on a new path is an active
   * migration: we then answer with a fresh CID of the peer's too, §9.5).
   */
  private pathChallenges: PathChallenge[] = [];
  private fallbackRemote: string | undefined;
  private pathDcid: Uint8Array | undefined;
  /** Source address and size of the datagram being processed. */
  private rxFrom = "";
  private rxLength = 0;
  /** Where the datagram last returned by `pollTransmit` goes. */
  private txTo = "";
  private pendingNewCids: (Frame & { type: "new_connection_id" })[] = [];
  private pendingRetireCids: number[] = [];
  private pingPending = false;
  private readonly datagramsOut: Uint8Array[] = [];
  private undecryptable: { datagram: Uint8Array; at: number }[] = [];

  private closeInfo: CloseInfo | undefined;
  /** CONNECTION_CLOSE to (re)send while closing. */
  private closeFrame: (Frame & { type: "connection_close" }) | undefined;
  private closeSendPending = false;
  private sessionTicketEvents = 0;
  /** 0-RTT packet keys: the client's write keys, or the server's read keys (RFC 9001 §4.6). */
  private zeroRttKeys: PacketKeys | undefined;
  /** Where 0-RTT stands: not attempted, offered and undecided, or decided. */
  private earlyData: "none" | "pending" | "accepted" | "rejected" = "none";

  /** Statistics for benchmarks and tests. */
  readonly stats = {
    packetsSent: 0,
    packetsReceived: 0,
    packetsDropped: 0,
    bytesSent: 0,
    bytesReceived: 0,
    packetsLost: 0,
    ptoCount: 0,
    /** 1-RTT key updates, initiated by either side (RFC 9001 §6). */
    keyUpdates: 0,
    /** 0-RTT packets sent (client) or processed (server): what "accepted" actually carried. */
    zeroRttPackets: 0,
    /** Server: peer address changes acted on (migrations, NAT rebindings, reverts; §9.3). */
    migrations: 0,
    /** PATH_CHALLENGE frames sent, and path validations that succeeded (RFC 9000 §8.2). */
    pathChallengesSent: 0,
    pathsValidated: 0,
    /** The datagram size in use: 1200 until DPLPMTUD validates a larger one (RFC 9000 §14.3). */
    maxDatagramSize: 1200,
    /** Times the datagram size fell back to 1200 after repeated PTOs (RFC 8899 §4.3). */
    pmtuBlackHoles: 0,
  };

  private constructor(
    role: "client" | "server",
    config: ConnectionConfig,
    remote: string,
    now: number,
    dcid: Uint8Array,
    scid: Uint8Array,
    originalDcid: Uint8Array,
    resetTokenFor: (cid: Uint8Array) => Uint8Array,
    retry?: { originalDcid: Uint8Array; retryScid: Uint8Array },
    version = config.version ?? DEFAULT_VERSION,
  ) {
    this.role = role;
    this.config = config;
    this.remote = remote;
    this.settings = settingsOf(config);
    this.version = version;
    this.originalDcid = originalDcid;
    this.addressValidated = role === "client";
    const s = this.settings;
    const init = new Space(PnSpace.Initial, s.maxAckDelay);
    this.spaces = [
      init,
      new Space(PnSpace.Handshake, s.maxAckDelay),
      new Space(PnSpace.ApplicationData, s.maxAckDelay),
    ];
    this.loss = new LossDetector<Token>({ isServer: role === "server" });
    this.pacer = new Pacer(1200);
    this.localCids = new LocalCids(s.cidLength, config.rng, resetTokenFor);
    // One copy of our handshake CID: the one the CID table keeps.
    this.initialScid = this.localCids.initial(scid).cid;
    this.peerCids = new PeerCids(dcid, s.activeConnectionIdLimit);

    const localParams = localTransportParameters(s, role);
    localParams.initialSourceConnectionId = scid;
    if (role === "server") {
      localParams.originalDestinationConnectionId = originalDcid;
      localParams.statelessResetToken = resetTokenFor(scid);
      if (retry) {
        // RFC 9000 §7.3: after a Retry, original_destination_connection_id is the DCID of the
        // first Initial and retry_source_connection_id the SCID of the Retry. The Retry token
        // validated the client's address (§8.1.2).
        localParams.originalDestinationConnectionId = retry.originalDcid;
        localParams.retrySourceConnectionId = retry.retryScid;
        this.addressValidated = true;
      }
    }
    this.streams = new StreamManager({
      role,
      // Only the stream limits: the whole parameter set is not kept for the connection's life.
      local: {
        initialMaxData: localParams.initialMaxData,
        initialMaxStreamDataBidiLocal: localParams.initialMaxStreamDataBidiLocal,
        initialMaxStreamDataBidiRemote: localParams.initialMaxStreamDataBidiRemote,
        initialMaxStreamDataUni: localParams.initialMaxStreamDataUni,
        initialMaxStreamsBidi: localParams.initialMaxStreamsBidi,
        initialMaxStreamsUni: localParams.initialMaxStreamsUni,
      },
      maxStreamWindow: s.maxStreamWindow,
      maxConnectionWindow: s.maxConnectionWindow,
      sendBufferSize: s.streamSendBuffer,
    });

    const keys = initialKeys(config.provider, this.version, originalDcid);
    init.readKeys = role === "client" ? keys.server : keys.client;
    init.writeKeys = role === "client" ? keys.client : keys.server;

    if (role === "client") {
      const verifier = config.verifier;
      if (verifier === undefined) {
        throw new ConnectionError(
          "ERR_QUIC_CONFIG",
          "a client needs a certificate verifier (CA roots), or verifier: 'insecure-skip-verification' explicitly",
        );
      }
      this.tls = new TlsClient({
        provider: config.provider,
        rng: config.rng,
        alpn: [...config.alpn],
        serverName: config.serverName,
        verifier: verifier as PeerVerifier | "insecure-skip-verification",
        transportParameters: encodeTransportParameters(localParams),
        cipherSuites: config.cipherSuites ? [...config.cipherSuites] : undefined,
        sessionTicket: config.sessionTicket,
        earlyData: config.earlyData === true,
      });
    } else {
      if (!config.certificateChain || !config.privateKey) {
        throw new ConnectionError("ERR_QUIC_CONFIG", "a server needs certificateChain and privateKey");
      }
      this.tls = new TlsServer({
        provider: config.provider,
        rng: config.rng,
        // Not copied: both are read-only, and one array each serves every connection.
        alpn: config.alpn,
        certificateChain: config.certificateChain,
        privateKey: config.privateKey as PrivateKey,
        ticketKeys: config.ticketKeys,
        transportParameters: encodeTransportParameters(localParams),
        cipherSuites: config.cipherSuites ? [...config.cipherSuites] : undefined,
        ...(config.earlyData ? earlyDataServerConfig(localParams) : {}),
      });
    }
    this.armIdle(now);
  }

  /**
   * A client connection to `remote`. Sends its first Initial on the next `pollTransmit`.
   * Throws `ConnectionError` for a bad configuration.
   */
  static client(config: ConnectionConfig, remote: string, now: number): Connection {
    const s = resolveSettings(config);
    // RFC 9000 §7.2: the first Destination Connection ID is random, at least 8 bytes.
    const dcid = config.rng.fill(new Uint8Array(Math.max(8, s.cidLength)));
    const scid = config.rng.fill(new Uint8Array(s.cidLength));
    const conn = new Connection("client", config, remote, now, dcid, scid, dcid, () => new Uint8Array(16));
    conn.tlsGuard(now, () => (conn.tls as TlsClient).start(now));
    return conn;
  }

  /**
   * A server connection for a client's first Initial (`header`, already checked by the
   * endpoint). `resetTokenFor` derives stateless reset tokens from our static key.
   */
  static server(
    config: ConnectionConfig,
    remote: string,
    now: number,
    header: LongHeader,
    scid: Uint8Array,
    resetTokenFor: (cid: Uint8Array) => Uint8Array,
    retry?: { originalDcid: Uint8Array; retryScid: Uint8Array },
  ): Connection {
    return new Connection(
      "server",
      config,
      remote,
      now,
      header.scid.slice(),
      scid,
      header.dcid.slice(),
      resetTokenFor,
      retry,
      header.version,
    );
  }

  // ------------------------------------------------------------------------------------------
  // Getters

  /** True once the handshake completed and until the connection closes. */
  get isEstablished(): boolean {
    return this.state === "established";
  }

  /** True once nothing more will happen: the owner may drop the connection. */
  get isDrained(): boolean {
    return this.state === "closed";
  }

  /** True once the handshake is confirmed (RFC 9001 §4.1.2): migration may start (RFC 9000 §9). */
  get isHandshakeConfirmed(): boolean {
    return this.handshakeConfirmed;
  }

  /** True when the peer issued a connection ID we have not used yet (needed to migrate, §9.5). */
  get hasSpareDestinationCid(): boolean {
    return this.peerCids.hasSpare;
  }

  /** True while closing or draining (or closed). */
  get isClosing(): boolean {
    return this.state === "closing" || this.state === "draining" || this.state === "closed";
  }

  /** Why the connection closed, once it did. */
  get closeReason(): CloseInfo | undefined {
    return this.closeInfo;
  }

  /** Smoothed RTT estimate in ms. */
  get rtt(): number {
    return this.loss.rtt.smoothedRtt;
  }

  /** Congestion window in bytes. */
  get congestionWindow(): number {
    return this.loss.cc.window();
  }

  /** Bytes of in-flight packets not yet acknowledged or declared lost (RFC 9002 §2). */
  get bytesInFlight(): number {
    return this.loss.bytesInFlight();
  }

  /** True when every stream byte written was sent and no packet is in flight any more. */
  get flushed(): boolean {
    return this.loss.bytesInFlight() === 0 && !this.streams.hasPendingFrames();
  }

  /** The peer's transport parameters, once received. */
  get peerTransportParameters(): TransportParameters | undefined {
    return this.peerParams;
  }

  /** The current Destination Connection ID (for the endpoint's logs and tests). */
  get destinationCid(): Uint8Array {
    return this.peerCids.current.cid;
  }

  // ------------------------------------------------------------------------------------------
  // Receiving

  /**
   * Processes one UDP datagram from the peer, received from `from` (default: `remote`). Never
   * throws for bad input.
   */
  receive(now: number, datagram: Uint8Array, from: string = this.remote): void {
    if (this.state === "closed" || this.state === "draining") return;
    const onPath = from === this.remote;
    if (!onPath && (this.role === "client" || !this.handshakeConfirmed || this.state === "closing")) {
      // RFC 9000 §9: a peer keeps its address until the handshake is confirmed, and a client
      // discards packets from an unknown server address (servers never migrate here: no §9.6).
      this.stats.packetsDropped++;
      return;
    }
    this.rxFrom = from;
    this.rxLength = datagram.length;
    // Anti-amplification counts bytes per path (§8.1, §9.3.1); a migration starts a new count.
    if (onPath) this.bytesReceived += datagram.length;
    this.stats.bytesReceived += datagram.length;
    if (this.state === "closing") {
      // RFC 9000 §10.2.1: answer with CONNECTION_CLOSE, rate-limited to one per datagram.
      this.closeSendPending = true;
      return;
    }
    let processed = false;
    try {
      processed = this.receiveDatagram(now, datagram);
    } catch (e) {
      this.onError(now, e);
      return;
    }
    if (!processed) this.handleStatelessReset(now, datagram);
  }

  /**
   * Ends the connection if `datagram`, which could not be processed (or routed: a stateless
   * reset's DCID is random), ends with one of the peer's stateless reset tokens (RFC 9000
   * §10.3.1). Returns true for a stateless reset of this connection, also while draining
   * (the endpoint must then drop it, not answer it with a reset of its own, §10.3.3).
   */
  handleStatelessReset(now: number, datagram: Uint8Array): boolean {
    if (this.state === "closed" || !this.peerCids.isStatelessReset(datagram)) return false;
    this.enterDraining(now, {
      errorCode: 0,
      application: false,
      reason: "stateless reset",
      initiator: "stateless-reset",
    });
    return true;
  }

  /** Returns true when at least one packet of the datagram was processed. */
  private receiveDatagram(now: number, datagram: Uint8Array, replay = false): boolean {
    const { packets } = splitCoalesced(datagram, this.settings.cidLength);
    let processed = false;
    let deferred = false;
    for (const header of packets) {
      switch (header.type) {
        case "version-negotiation":
          this.onVersionNegotiation(now, header);
          continue;
        case "retry":
          this.onRetry(now, datagram, header);
          continue;
        case "unsupported-version":
          continue;
        default: {
          // Servers never send 0-RTT (RFC 9000 §17.2.3).
          if (header.type === "0rtt" && this.role === "client") continue;
          const r = this.receivePacket(now, datagram, header);
          if (r === "processed") processed = true;
          else if (r === "deferred") deferred = true;
        }
      }
      if (this.state === "draining" || this.state === "closed") break;
    }
    if (deferred && !replay && this.undecryptable.length < MAX_UNDECRYPTABLE) {
      // RFC 9001 §5.7: keep packets whose keys are not yet available.
      this.undecryptable.push({ datagram: datagram.slice(), at: now });
    }
    if (processed) {
      // RFC 9000 §10.1: receiving and processing a packet restarts the idle timer.
      this.ackElicitingSentSinceReceipt = false;
      this.armIdle(now);
      this.afterProgress(now);
    }
    return processed;
  }

  private spaceOf(header: ProtectedHeader): Space | DiscardedSpace {
    if (header.type === "initial") return this.spaces[PnSpace.Initial];
    if (header.type === "handshake") return this.spaces[PnSpace.Handshake];
    return this.spaces[PnSpace.ApplicationData];
  }

  private receivePacket(
    now: number,
    buf: Uint8Array,
    header: ProtectedHeader,
  ): "processed" | "dropped" | "deferred" {
    const space = this.spaceOf(header);
    if (header.type !== "1rtt" && header.version !== this.version) return this.drop("version mismatch");
    if (space.discarded) return this.drop("keys discarded");
    const zeroRtt = header.type === "0rtt";
    if (zeroRtt && !this.zeroRttKeys) {
      // Before the ClientHello is processed the keys may still come (RFC 9001 §5.7); after, the
      // server declined or already dropped 0-RTT, and the client will resend in 1-RTT.
      return (this.tls as TlsServer | ConnectedTlsServer).cipherSuite === undefined
        ? "deferred"
        : this.drop("no 0-RTT keys");
    }
    const readKeys = zeroRtt ? this.zeroRttKeys : space.readKeys;
    if (!readKeys) return "deferred";
    if (
      header.type === "initial" &&
      this.role === "client" &&
      this.receivedFromPeer &&
      this.peerInitialScid
    ) {
      // §7.2: later Initials must carry the same SCID.
      if (!bytesEqual(header.scid, this.peerInitialScid)) return this.drop("Initial from another SCID");
    }
    const largest = space.acks.largestReceived() ?? -1;
    let pn: number;
    let payload: Uint8Array;
    if (header.type === "1rtt") {
      const unmasked = removeHeaderProtection(readKeys.hp, buf, header, largest);
      if (unmasked === undefined) return this.drop("too short");
      let keys = readKeys;
      let update = false;
      if (unmasked.keyPhase !== this.keyPhase) {
        // RFC 9001 §6.3: an older packet of the previous phase, or the peer's key update.
        if (
          this.prevReadKeys &&
          unmasked.packetNumber < this.keyPhaseStartPn &&
          now < this.prevReadKeysUntil
        ) {
          keys = this.prevReadKeys;
        } else {
          this.nextReadKeys ??= readKeys.nextGeneration();
          keys = this.nextReadKeys;
          update = true;
        }
      }
      const plain = decryptPayload(keys, buf, header, unmasked);
      if (plain === null) return this.drop("decryption failed");
      if (unmasked.reservedBitsSet) {
        throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "reserved bits set in packet header");
      }
      if (update) this.onPeerKeyUpdate(now, unmasked.packetNumber);
      else if (keys === readKeys && unmasked.packetNumber < this.keyPhaseStartPn) {
        // RFC 9001 §6.1, §6.5: the first packet of the phase we initiated; old read keys are
        // kept for three PTOs from now.
        this.keyPhaseStartPn = unmasked.packetNumber;
        if (this.prevReadKeys && this.prevReadKeysUntil === Number.POSITIVE_INFINITY) {
          this.prevReadKeysUntil = now + 3 * this.loss.ptoPeriod();
        }
      }
      pn = unmasked.packetNumber;
      payload = plain;
    } else {
      const r = unprotect(readKeys, buf, header, largest);
      if (r.status === "drop") return this.drop(r.reason);
      if (r.status === "violation") throw r.error;
      pn = r.packetNumber;
      payload = r.payload;
    }
    if (space.acks.isDuplicate(pn)) return this.drop("duplicate");

    // The packet is authentic from here on.
    this.stats.packetsReceived++;
    if (zeroRtt) this.stats.zeroRttPackets++;
    if (this.role === "client" && !this.receivedFromPeer && header.type === "initial") {
      // RFC 9000 §7.2: switch to the server's chosen connection ID.
      this.peerInitialScid = header.scid.slice();
      this.peerCids.replaceInitial(this.peerInitialScid);
    }
    this.receivedFromPeer = true;
    if (this.role === "server" && header.type === "handshake" && !this.addressValidated) {
      // RFC 9000 §8.1: a Handshake packet proves the client received our Initial.
      this.addressValidated = true;
      this.loss.setAmplificationLimited(false, now);
    }
    if (this.config.qlog)
      this.qlog(now, "packet_received", {
        packet_type: header.type,
        packet_number: pn,
        length: payload.length,
      });

    const packetType = zeroRtt ? "zero_rtt" : PACKET_TYPE_OF_SPACE[space.id];
    let ackEliciting = false;
    let nonProbing = false;
    const it = new FrameIterator(payload);
    let count = 0;
    for (let f = it.nextFrame(); f; f = it.nextFrame()) {
      count++;
      if (!frameAllowedIn(it.frameType, packetType)) {
        throw new TransportError(
          TransportErrorCode.PROTOCOL_VIOLATION,
          `frame ${f.type} not allowed in ${packetType} packets`,
          it.frameType,
        );
      }
      if (f.type !== "ack" && f.type !== "padding" && f.type !== "connection_close") ackEliciting = true;
      // RFC 9000 §9.1: PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID and PADDING are probing.
      if (
        f.type !== "padding" &&
        f.type !== "path_challenge" &&
        f.type !== "path_response" &&
        f.type !== "new_connection_id"
      )
        nonProbing = true;
      this.onFrame(now, space, f, it.frameType, header);
      if (this.state === "draining" || this.state === "closed") return "processed";
    }
    if (count === 0) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "packet without frames");
    space.acks.onPacketReceived(pn, now, ackEliciting);
    // Only servers follow a peer to a new address (receive() drops the rest): clients skip this.
    if (header.type === "1rtt" && this.role === "server") {
      if (this.rxFrom !== this.remote) {
        // §9.3: only the highest-numbered non-probing packet moves us to its source address.
        if (nonProbing && pn > largest) this.onPeerMigrated(now, header.dcid);
      } else if (this.pathDcid === undefined || !bytesEqual(this.pathDcid, header.dcid)) {
        this.pathDcid = header.dcid.slice();
      }
    }

    if (this.role === "server" && header.type === "handshake" && !this.spaces[PnSpace.Initial].discarded) {
      // RFC 9001 §4.9.1: a server discards Initial keys when it first processes a Handshake packet.
      this.discardSpace(now, PnSpace.Initial);
    }
    return "processed";
  }

  private drop(reason: string): "dropped" {
    this.stats.packetsDropped++;
    void reason;
    return "dropped";
  }

  private onFrame(now: number, space: Space, f: Frame, frameType: number, header: ProtectedHeader): void {
    switch (f.type) {
      case "padding":
      case "ping":
        return;
      case "ack":
        this.onAck(now, space, f);
        return;
      case "crypto":
        this.onCrypto(now, space, f.offset, f.data);
        return;
      case "stream":
        this.streams.onStreamFrame(f.streamId, f.offset, f.data, f.fin);
        return;
      case "reset_stream":
        this.streams.onResetStream(f.streamId, f.errorCode, f.finalSize);
        return;
      case "stop_sending":
        this.streams.onStopSending(f.streamId, f.errorCode);
        return;
      case "max_data":
        this.streams.onMaxData(f.limit);
        return;
      case "max_stream_data":
        this.streams.onMaxStreamData(f.streamId, f.limit);
        return;
      case "max_streams":
        this.streams.onMaxStreams(f.bidi, f.limit);
        return;
      case "data_blocked":
        this.streams.onDataBlocked(f.limit);
        return;
      case "stream_data_blocked":
        this.streams.onStreamDataBlocked(f.streamId, f.limit);
        return;
      case "streams_blocked":
        this.streams.onStreamsBlocked(f.bidi, f.limit);
        return;
      case "new_token":
        if (this.role === "server") {
          throw new TransportError(
            TransportErrorCode.PROTOCOL_VIOLATION,
            "NEW_TOKEN from a client",
            frameType,
          );
        }
        return; // Address validation tokens for future connections: not used yet.
      case "new_connection_id":
        if (this.peerCids.current.cid.length === 0) {
          throw new TransportError(
            TransportErrorCode.PROTOCOL_VIOLATION,
            "NEW_CONNECTION_ID from a peer using zero-length connection IDs",
            frameType,
          );
        }
        this.peerCids.onNewConnectionId(f.sequence, f.connectionId, f.statelessResetToken, f.retirePriorTo);
        this.pendingRetireCids.push(...this.peerCids.drainRetirements());
        return;
      case "retire_connection_id":
        this.localCids.retire(f.sequence, header.dcid);
        this.issueCids();
        return;
      case "path_challenge":
        // §8.2.2: answer on the path it came from, within 3x what that datagram brought (§8.1).
        if (this.pendingPathResponses.length < 4)
          this.pendingPathResponses.push({
            data: f.data.slice(),
            to: this.rxFrom,
            budget: 3 * this.rxLength,
          });
        // §9.3.3: a challenge on our active path gets a non-probing packet too, so that a peer
        // misled by a forwarded copy of our packets moves back to this path.
        if (this.rxFrom === this.remote) this.pingPending = true;
        return;
      case "path_response":
        this.onPathResponse(now, f.data);
        return;
      case "connection_close":
        this.enterDraining(now, {
          errorCode: f.errorCode,
          application: f.application,
          reason: f.reason,
          initiator: "remote",
        });
        return;
      case "handshake_done":
        if (this.role === "server") {
          throw new TransportError(
            TransportErrorCode.PROTOCOL_VIOLATION,
            "HANDSHAKE_DONE from a client",
            frameType,
          );
        }
        this.confirmHandshake(now);
        return;
      case "datagram":
        if (this.settings.maxDatagramFrameSize === 0) {
          // RFC 9221 §4: DATAGRAM without our support is a PROTOCOL_VIOLATION.
          throw new TransportError(
            TransportErrorCode.PROTOCOL_VIOLATION,
            "DATAGRAM not negotiated",
            frameType,
          );
        }
        if (f.data.length > this.settings.maxDatagramFrameSize) {
          throw new TransportError(
            TransportErrorCode.PROTOCOL_VIOLATION,
            "DATAGRAM frame too large",
            frameType,
          );
        }
        if (this.events.filter((e) => e.type === "datagram").length < MAX_DATAGRAM_QUEUE) {
          this.events.push({ type: "datagram", data: f.data.slice() });
        }
        return;
    }
  }

  private onAck(now: number, space: Space, f: AckFrame): void {
    const r = this.loss.onAckReceived(space.id, f, now);
    if (r instanceof TransportError) throw r;
    if (this.pmtu.resumeOnAck && r.acked.length > 0) {
      // The path answers again after a black hole: the search goes on (see handleTimeout).
      this.pmtu.resumeOnAck = false;
      this.pmtu.due = this.pmtu.size > 0;
    }
    for (const p of r.acked) for (const t of p.tokens) this.onTokenAcked(t);
    this.onLost(r.lost);
    this.streams.setRtt(this.loss.rtt.smoothedRtt);
  }

  private onLost(lost: SentPacket<Token>[]): void {
    this.stats.packetsLost += lost.length;
    for (const p of lost) for (const t of p.tokens) this.onTokenLost(t);
  }

  private onTokenAcked(t: Token): void {
    switch (t.k) {
      case "crypto":
      case "ack": {
        // A discarded space's packets were dropped from recovery (RFC 9002 §6.4): none come back.
        const space = this.spaces[t.space];
        if (space.discarded) return;
        if (t.k === "crypto") space.cryptoOut.onAcked(t.offset, t.length, false);
        else space.acks.onAckOfAckReceived(t.largest);
        return;
      }
      case "stream":
        this.streams.onStreamFrameAcked(t.id, t.offset, t.length, t.fin);
        return;
      case "control":
        this.streams.onControlFrameAcked(t.frame);
        return;
      case "pmtu":
        this.onPmtuProbe(t.size, true);
        return;
      default:
        return;
    }
  }

  private onTokenLost(t: Token): void {
    switch (t.k) {
      case "crypto": {
        const space = this.spaces[t.space];
        if (!space.discarded) space.cryptoOut.onLost(t.offset, t.length, false);
        return;
      }
      case "stream":
        this.streams.onStreamFrameLost(t.id, t.offset, t.length, t.fin);
        return;
      case "control":
        this.streams.onControlFrameLost(t.frame);
        return;
      case "handshake_done":
        this.handshakeDonePending = true;
        return;
      case "new_cid":
        if (this.localCids.has(t.frame.connectionId)) this.pendingNewCids.push(t.frame);
        return;
      case "retire_cid":
        this.pendingRetireCids.push(t.sequence);
        return;
      case "pmtu":
        this.onPmtuProbe(t.size, false);
        return;
      default:
        return;
    }
  }

  private onCrypto(now: number, space: Space, offset: number, data: Uint8Array): void {
    space.cryptoIn.insert(offset, data);
    const level = LEVEL_OF_SPACE[space.id];
    for (let chunk = space.cryptoIn.read(); chunk; chunk = space.cryptoIn.read()) {
      const bytes = chunk;
      this.tlsGuard(now, () => this.tls.receive(level, bytes, now));
    }
  }

  /** Runs a TLS call; a TLS alert becomes CRYPTO_ERROR (RFC 9001 §4.8). Then drains TLS output. */
  private tlsGuard(now: number, body: () => void): void {
    try {
      body();
    } catch (e) {
      if (e instanceof TlsAlert) throw TransportError.crypto(e.description, e.reason);
      throw e;
    }
    for (let out = this.tls.pollOutput(); out; out = this.tls.pollOutput()) {
      const space =
        this.spaces[
          out.level === "initial"
            ? PnSpace.Initial
            : out.level === "handshake"
              ? PnSpace.Handshake
              : PnSpace.ApplicationData
        ];
      // Bytes for a discarded level could never be sent (no keys): they are dropped.
      if (!space.discarded) space.cryptoOut.write(out.data);
    }
    for (let ev = this.tls.pollEvent(); ev; ev = this.tls.pollEvent()) this.onTlsEvent(now, ev);
    // Once connected, with its tickets drained, the server's TLS only has to refuse any further
    // handshake message: it keeps ~1 KB less for the rest of the connection in its lighter form.
    if (this.tls instanceof TlsServer && this.tls.handshakeComplete) this.tls = this.tls.postHandshake();
  }

  private onTlsEvent(now: number, ev: TlsEvent): void {
    switch (ev.type) {
      case "secret": {
        if (ev.level === "early") {
          this.onEarlySecret(now, ev.secret, ev.suite);
          return;
        }
        const keys = derivePacketKeys(
          this.config.provider,
          this.version,
          ev.suite.aead,
          ev.suite.hash,
          ev.secret,
        );
        const space = this.spaces[ev.level === "handshake" ? PnSpace.Handshake : PnSpace.ApplicationData];
        // Handshake secrets come before Handshake keys can be discarded (RFC 9001 §4.9.2).
        if (space.discarded) return;
        if (ev.direction === "read") space.readKeys = keys;
        else space.writeKeys = keys;
        // RFC 9001 §4.9.3: a client discards 0-RTT keys once it has 1-RTT keys.
        if (ev.level === "application" && this.role === "client") this.zeroRttKeys = undefined;
        if (ev.level === "handshake") this.loss.setHasHandshakeKeys();
        this.keylogSecret(ev.level, ev.direction, ev.secret);
        if (ev.direction === "read" && this.undecryptable.length > 0) this.replayUndecryptable(now);
        return;
      }
      case "transport_parameters":
        this.onPeerTransportParameters(ev.data);
        return;
      case "alpn":
        return;
      case "handshake_complete":
        this.handshakeComplete = true;
        if (this.state === "handshake") this.state = "established";
        this.events.push({
          type: "connected",
          alpn: ev.alpn,
          suite: ev.suite.name,
          peerCertificates: ev.peerCertificates,
          resumed: ev.resumed,
          earlyData: this.earlyData === "pending" ? "rejected" : this.earlyData,
        });
        if (this.role === "server") {
          // RFC 9001 §4.1.2: the server's handshake is confirmed when it completes.
          this.handshakeDonePending = true;
          this.confirmHandshake(now);
        }
        this.issueCids();
        return;
      case "session_ticket":
        if (this.sessionTicketEvents++ < 4) this.events.push({ type: "session_ticket", ticket: ev.ticket });
        return;
      case "ticket_issued":
        return;
      case "early_data":
        this.onEarlyDataDecision(now, ev.accepted);
        return;
    }
  }

  /** The 0-RTT secret: the client's to write with, the server's to read with. */
  private onEarlySecret(now: number, secret: Uint8Array, suite: CipherSuite): void {
    if (this.role === "client") {
      // RFC 9000 §7.4.1: in 0-RTT the client assumes the limits the server had on the ticket's
      // connection; without them it cannot send stream data, so it does not try.
      const remembered = this.config.sessionTicket?.peerTransportParameters;
      if (!remembered) return;
      try {
        this.streams.setPeerLimits(decodeTransportParameters(remembered, "server"));
      } catch {
        return; // a ticket with parameters we cannot read: just no 0-RTT
      }
    }
    this.zeroRttKeys = derivePacketKeys(this.config.provider, this.version, suite.aead, suite.hash, secret);
    this.earlyData = "pending";
    this.keylogSecret("early", this.role === "client" ? "write" : "read", secret);
    if (this.role === "server" && this.undecryptable.length > 0) this.replayUndecryptable(now);
  }

  /** The server's answer to our 0-RTT (client), or our own (server). */
  private onEarlyDataDecision(now: number, accepted: boolean): void {
    if (this.earlyData === "none" && this.role === "client") return; // keys were never set up
    this.earlyData = accepted ? "accepted" : "rejected";
    if (accepted) return;
    this.zeroRttKeys = undefined;
    if (this.role === "client") {
      // RFC 9002 §6.4 / RFC 9001 §4.6.2: the server dropped our 0-RTT packets. They leave
      // bytes_in_flight without a congestion signal, and their data goes out again in 1-RTT.
      this.onLost(this.loss.discardPackets(PnSpace.ApplicationData, now));
    }
  }

  private onPeerTransportParameters(data: Uint8Array): void {
    const peerRole = this.role === "client" ? "server" : "client";
    let p: TransportParameters;
    try {
      p = decodeTransportParameters(data, peerRole);
    } catch (e) {
      if (e instanceof TransportError) throw e;
      throw new TransportError(TransportErrorCode.TRANSPORT_PARAMETER_ERROR, String(e));
    }
    // RFC 9000 §7.3: authenticate the connection IDs used during the handshake.
    const tpError = (reason: string) =>
      new TransportError(TransportErrorCode.TRANSPORT_PARAMETER_ERROR, reason);
    const expectedScid = this.role === "client" ? this.peerInitialScid : this.peerCids.current.cid;
    if (!p.initialSourceConnectionId) throw tpError("missing initial_source_connection_id");
    if (expectedScid && !bytesEqual(p.initialSourceConnectionId, expectedScid)) {
      throw tpError("initial_source_connection_id does not match the Source Connection ID");
    }
    if (this.role === "client") {
      if (
        !p.originalDestinationConnectionId ||
        !bytesEqual(p.originalDestinationConnectionId, this.originalDcid)
      ) {
        throw tpError("original_destination_connection_id does not match");
      }
      if (this.retryScid) {
        if (!p.retrySourceConnectionId || !bytesEqual(p.retrySourceConnectionId, this.retryScid)) {
          throw tpError("retry_source_connection_id does not match the Retry");
        }
      } else if (p.retrySourceConnectionId) {
        throw tpError("retry_source_connection_id without a Retry");
      }
      if (p.statelessResetToken) this.peerCids.setInitialResetToken(p.statelessResetToken);
    }
    this.peerParams = p;
    this.streams.setPeerLimits(p);
    this.loss.setPeerTransportParameters({
      maxAckDelay: p.maxAckDelay,
      ackDelayExponent: p.ackDelayExponent,
    });
    const ours = this.settings.maxIdleTimeout;
    const theirs = p.maxIdleTimeout;
    this.idleTimeout = ours === 0 ? theirs : theirs === 0 ? ours : Math.min(ours, theirs);
    // RFC 9000 §14.3: no datagram above 1200 bytes until the path is known to carry it; the
    // size both sides allow is probed once the handshake is confirmed (see transmitPmtuProbe).
    const target = Math.max(1200, Math.min(this.settings.maxUdpPayloadSize, p.maxUdpPayloadSize));
    if (target > this.pmtu.low)
      Object.assign(this.pmtu, { target, size: target, high: target + 1, due: true });
  }

  private onPeerKeyUpdate(now: number, pn: number): void {
    // RFC 9001 §6.2: the peer updated its keys; we update ours to match.
    const app = this.spaces[PnSpace.ApplicationData];
    if (!app.writeKeys || !app.readKeys || !this.nextReadKeys) return;
    this.prevReadKeys = app.readKeys;
    this.prevReadKeysUntil = now + 3 * this.loss.ptoPeriod();
    app.readKeys = this.nextReadKeys;
    this.nextReadKeys = undefined;
    app.writeKeys = app.writeKeys.nextGeneration();
    this.keyPhase = this.keyPhase === 0 ? 1 : 0;
    this.keyPhaseStartPn = pn;
    this.keyPhaseFirstSentPn = app.nextPn;
    this.stats.keyUpdates++;
  }

  /**
   * Initiates a 1-RTT key update (RFC 9001 §6.1): packets sent from now on use the next write
   * keys and the toggled Key Phase bit; the peer follows when it sees them. Returns false, and
   * changes nothing, when an update is not permitted yet: before the handshake is confirmed,
   * while closing, before a packet sent with the current keys was acknowledged, or while the
   * previous phase's read keys are still kept (§6.5: wait three PTOs between updates).
   */
  initiateKeyUpdate(): boolean {
    const app = this.spaces[PnSpace.ApplicationData];
    if (this.isClosing || !this.handshakeConfirmed || !app.readKeys || !app.writeKeys) return false;
    const acked = this.loss.largestAcked(PnSpace.ApplicationData);
    if (acked === undefined || acked < this.keyPhaseFirstSentPn || this.prevReadKeys) return false;
    this.prevReadKeys = app.readKeys;
    // §6.1: old read keys are kept until a packet with the new keys arrives (then 3 PTOs).
    this.prevReadKeysUntil = Number.POSITIVE_INFINITY;
    app.readKeys = this.nextReadKeys ?? app.readKeys.nextGeneration();
    this.nextReadKeys = undefined;
    app.writeKeys = app.writeKeys.nextGeneration();
    this.keyPhase = this.keyPhase === 0 ? 1 : 0;
    this.keyPhaseStartPn = Number.MAX_SAFE_INTEGER;
    this.keyPhaseFirstSentPn = app.nextPn;
    this.stats.keyUpdates++;
    return true;
  }

  private onVersionNegotiation(now: number, header: VersionNegotiationHeader): void {
    // RFC 9000 §6.2: only a client, only before it processed any packet from the server, and
    // only if the packet does not list the version we chose.
    if (this.role !== "client" || this.receivedFromPeer) return;
    if (!bytesEqual(header.dcid, this.initialScid) || !bytesEqual(header.scid, this.originalDcid)) return;
    if (header.versions.includes(this.version)) return;
    const common = header.versions.filter((v) => isSupportedVersion(v));
    this.closeImmediately(now, {
      errorCode: TransportErrorCode.VERSION_NEGOTIATION_ERROR,
      application: false,
      reason: common.length
        ? `server does not speak version 0x${this.version.toString(16)}; it offers ${common.map((v) => `0x${v.toString(16)}`).join(", ")}`
        : `no QUIC version in common (server offers ${header.versions.map((v) => `0x${v.toString(16)}`).join(", ")}; we speak ${SUPPORTED_VERSIONS.map((v) => `0x${v.toString(16)}`).join(", ")})`,
      initiator: "version-negotiation",
    });
  }

  private onRetry(now: number, datagram: Uint8Array, header: RetryHeader): void {
    // RFC 9000 §17.2.5.2: a client accepts one Retry, before any other packet from the server.
    const init = this.spaces[PnSpace.Initial];
    if (this.role !== "client" || this.receivedFromPeer || this.retryScid || init.discarded) return;
    if (header.version !== this.version || header.token.length === 0) return;
    if (bytesEqual(header.scid, this.originalDcid)) return;
    if (
      !verifyRetryIntegrity(
        this.config.provider,
        header.version,
        this.originalDcid,
        datagram.subarray(header.start, header.start + header.packetLength),
      )
    )
      return;
    this.retryScid = header.scid.slice();
    this.retryToken = header.token.slice();
    this.peerCids.replaceInitial(this.retryScid);
    // New Initial keys from the Retry's SCID (RFC 9001 §5.2); resend the ClientHello.
    const keys = initialKeys(this.config.provider, this.version, this.retryScid);
    init.readKeys = keys.server;
    init.writeKeys = keys.client;
    for (const { packets } of this.loss.onRetry()) this.onLost(packets);
    if (this.config.qlog) this.qlog(now, "packet_received", { packet_type: "retry" });
  }

  private replayUndecryptable(now: number): void {
    const pending = this.undecryptable;
    this.undecryptable = [];
    // Only datagrams from `remote` are kept (no migration before the handshake is confirmed).
    this.rxFrom = this.remote;
    for (const p of pending) {
      this.rxLength = p.datagram.length;
      this.receiveDatagram(now, p.datagram, true);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Handshake progress

  private confirmHandshake(now: number): void {
    if (this.handshakeConfirmed) return;
    this.handshakeConfirmed = true;
    this.loss.setHandshakeConfirmed(now);
    // RFC 9001 §4.9.2: Handshake keys are discarded once the handshake is confirmed.
    this.discardSpace(now, PnSpace.Initial);
    this.discardSpace(now, PnSpace.Handshake);
    // RFC 9001 §4.9.3: 0-RTT keys may go once 1-RTT is in use; a late 0-RTT packet is then
    // dropped and its data, never acknowledged, is resent by the client in 1-RTT.
    this.zeroRttKeys = undefined;
    this.events.push({ type: "handshake_confirmed" });
  }

  private discardSpace(now: number, id: typeof PnSpace.Initial | typeof PnSpace.Handshake): void {
    if (this.spaces[id].discarded) return;
    this.spaces[id] = DISCARDED_SPACES[id];
    this.loss.discardSpace(id, now);
  }

  private issueCids(): void {
    if (!this.handshakeComplete || !this.peerParams) return;
    const n = this.localCids.wanted(this.peerParams.activeConnectionIdLimit);
    for (let i = 0; i < n; i++) {
      const e = this.localCids.issue();
      this.pendingNewCids.push({
        type: "new_connection_id",
        sequence: e.seq,
        retirePriorTo: 0,
        connectionId: e.cid,
        statelessResetToken: e.resetToken!,
      });
    }
  }

  /** After any processed input or application read: surface stream events. */
  private afterProgress(_now: number): void {
    for (let ev = this.streams.pollEvent(); ev; ev = this.streams.pollEvent()) {
      switch (ev.type) {
        case "opened":
          this.events.push({ type: "stream_opened", streamId: ev.streamId, bidi: ev.bidi });
          break;
        case "readable":
          this.events.push({ type: "stream_readable", streamId: ev.streamId });
          break;
        case "writable":
          this.events.push({ type: "stream_writable", streamId: ev.streamId });
          break;
        case "reset":
          this.events.push({ type: "stream_reset", streamId: ev.streamId, errorCode: ev.errorCode });
          break;
        case "stop_sending":
          this.events.push({ type: "stream_stop_sending", streamId: ev.streamId, errorCode: ev.errorCode });
          break;
        case "streams_available":
          this.events.push({ type: "streams_available", bidi: ev.bidi });
          break;
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Timers

  /** Absolute time of the next timer, or undefined when none is armed. */
  pollTimeout(): number | undefined {
    if (this.state === "closed") return undefined;
    const t = this.timers;
    if (this.state === "closing" || this.state === "draining") return t.get(Timer.Close);
    t.set(Timer.LossDetection, this.loss.timerDeadline());
    let ack: number | undefined;
    // An ACK cannot leave while the anti-amplification limit is reached (§8.1): the next datagram
    // from the peer raises it, and the ACK goes then.
    const canSend = this.amplificationBudget() >= 64;
    for (const s of canSend ? this.spaces : []) {
      if (s.discarded) continue;
      const d = s.acks.ackDeadline();
      if (d !== undefined && (ack === undefined || d < ack)) ack = d;
    }
    t.set(Timer.Ack, ack);
    if (this.prevReadKeys && Number.isFinite(this.prevReadKeysUntil)) {
      t.set(Timer.KeyDiscard, this.prevReadKeysUntil);
    }
    let path: number | undefined;
    for (const c of this.pathChallenges) path = Math.min(path ?? c.deadline, c.nextAt, c.deadline);
    t.set(Timer.PathValidation, path);
    return t.next();
  }

  /** Handles every timer due at `now`. */
  handleTimeout(now: number): void {
    const t = this.timers;
    if (this.state === "closed") return;
    if (this.state === "closing" || this.state === "draining") {
      if (t.expired(Timer.Close, now)) this.finishClose();
      return;
    }
    try {
      if (t.expired(Timer.Idle, now)) {
        this.closeSilently({ errorCode: 0, application: false, reason: "idle timeout", initiator: "idle" });
        return;
      }
      if (t.expired(Timer.KeepAlive, now)) {
        this.pingPending = true;
        t.stop(Timer.KeepAlive);
      }
      if (t.expired(Timer.KeyDiscard, now)) {
        this.prevReadKeys = undefined;
        t.stop(Timer.KeyDiscard);
      }
      if (t.expired(Timer.Pacing, now)) t.stop(Timer.Pacing);
      if (t.expired(Timer.PathValidation, now)) {
        t.stop(Timer.PathValidation);
        // Other paths first: an old path that failed too is no address to return to.
        const failed = this.pathChallenges.filter((c) => c.deadline <= now);
        failed.sort((a, b) => Number(a.to === this.remote) - Number(b.to === this.remote));
        for (const c of failed) this.onPathValidationFailed(now, c);
        if (this.state !== "handshake" && this.state !== "established") return;
      }
      const deadline = this.loss.timerDeadline();
      if (deadline !== undefined && deadline <= now) {
        const action = this.loss.onTimeout(now);
        if (action.kind === "lost") {
          this.onLost(action.lost);
        } else if (action.kind === "probe") {
          this.stats.ptoCount++;
          // RFC 8899 §4.3 black-hole detection: two PTOs in a row while sending datagrams above
          // 1200 bytes may mean the path MTU shrank (a new route or tunnel); the probes and what
          // follows go at 1200 bytes, and the search starts again below the size that failed.
          if (
            this.loss.ptoCount >= 2 &&
            this.maxDatagramSize > MIN_INITIAL_DATAGRAM &&
            this.handshakeConfirmed
          ) {
            const failed = this.maxDatagramSize;
            this.stats.pmtuBlackHoles++;
            this.restartPmtu();
            this.pmtu.high = failed;
            this.pmtu.size = this.nextPmtuProbeSize();
            this.pmtu.due = false;
            this.pmtu.resumeOnAck = true;
          }
          this.queueProbe(action.space, action.count);
          for (const s of action.alsoSpaces) this.queueProbe(s, 1);
        }
      }
    } catch (e) {
      this.onError(now, e);
    }
  }

  private queueProbe(id: PnSpace, count: number): void {
    const space = this.spaces[id];
    if (space.discarded || !space.writeKeys) {
      // Anti-deadlock without the space's keys: probe in the Initial space (RFC 9002 §6.2.2.1).
      const init = this.spaces[PnSpace.Initial];
      if (!init.discarded && init.writeKeys) init.probes = Math.max(init.probes, count);
      return;
    }
    space.probes = Math.max(space.probes, count);
    // Retransmit unacknowledged CRYPTO data rather than a bare PING when there is some (§6.2.4).
    for (const p of this.loss.unacked(id)) {
      for (const t of p.tokens) if (t.k === "crypto") space.cryptoOut.onLost(t.offset, t.length, false);
    }
  }

  private armIdle(now: number): void {
    const idle = this.effectiveIdleTimeout();
    // RFC 9000 §10.1: at least three PTOs, so that a few losses do not end the connection.
    this.timers.set(Timer.Idle, idle > 0 ? now + Math.max(idle, 3 * this.loss.ptoPeriod()) : undefined);
    const ka = this.settings.keepAliveInterval;
    this.timers.set(Timer.KeepAlive, ka > 0 && this.handshakeComplete ? now + ka : undefined);
  }

  private effectiveIdleTimeout(): number {
    if (this.peerParams) return this.idleTimeout;
    return this.settings.maxIdleTimeout;
  }

  // ------------------------------------------------------------------------------------------
  // Sending

  /**
   * The next datagram to send, to `transmitDestination` (`remote` but for path probes), or
   * undefined when there is nothing to send now (limited by congestion control, pacing, or the
   * anti-amplification limit).
   */
  pollTransmit(now: number): Uint8Array | undefined {
    if (this.state === "closed" || this.state === "draining") return undefined;
    this.txTo = this.remote;
    if (this.state === "closing") return this.transmitClose(now);
    try {
      const drop = this.config.faultInjection?.dropOutgoing;
      if (!drop) return this.transmit(now);
      for (;;) {
        this.outgoingStreamFrames = [];
        const d = this.transmit(now);
        // Test seam (config.ts FaultInjection): a dropped datagram stays recorded as sent.
        if (!d || !drop({ now, streamFrames: this.outgoingStreamFrames })) return d;
      }
    } catch (e) {
      this.onError(now, e);
      return (this.state as State) === "closing" ? this.transmitClose(now) : undefined;
    }
  }

  private amplificationBudget(): number {
    if (this.addressValidated) return Number.POSITIVE_INFINITY;
    // RFC 9000 §8.1: at most three times the bytes received before the address is validated.
    return Math.max(0, 3 * this.bytesReceived - this.bytesSent);
  }

  private transmit(now: number): Uint8Array | undefined {
    if (this.pmtu.due && this.handshakeConfirmed) {
      const probe = this.transmitPmtuProbe(now);
      if (probe) return probe;
    }
    if (this.handshakeConfirmed && (this.pathChallenges.length > 0 || this.pendingPathResponses.length > 0)) {
      const probe = this.transmitPathProbe(now);
      if (probe) return probe;
    }
    const budget = this.amplificationBudget();
    const limited = budget < this.maxDatagramSize;
    this.loss.setAmplificationLimited(this.role === "server" && !this.addressValidated && limited, now);
    const size = Math.min(this.maxDatagramSize, budget);
    if (size < 64) return undefined;

    const probing = this.spaces[0].probes > 0 || this.spaces[1].probes > 0 || this.spaces[2].probes > 0;
    // Congestion control (RFC 9002 §7): only ACKs (and probes) when the window is full.
    const cwndOpen = this.loss.cc.availableWindow() >= this.maxDatagramSize || probing;
    let ackOnly = !cwndOpen;
    if (!ackOnly && !probing) {
      const wait = this.pacer.timeUntilSend(
        now,
        this.maxDatagramSize,
        this.loss.cc.window(),
        this.loss.rtt.smoothedRtt,
      );
      if (wait > 0) {
        this.timers.set(Timer.Pacing, now + wait);
        ackOnly = true;
      }
    }

    // Every byte up to the returned length is written below, so the buffer need not be zeroed
    // (Buffer.allocUnsafe: pooled, no fill; a measurable share of per-packet GC and time).
    const pooled = size < POOLED_DATAGRAM_LIMIT;
    if (!pooled && largeDatagramScratch.length < size) largeDatagramScratch = new Uint8Array(size);
    const buf: Uint8Array = pooled ? Buffer.allocUnsafe(size) : largeDatagramScratch;
    let at = 0;
    let containsInitial = false;
    let ackElicitingSent = false;
    let padTo = 0;
    for (const id of PN_SPACES) {
      const space = this.spaces[id];
      if (space.discarded || !this.writeKeysOf(space)) continue;
      if (!this.spaceWantsToSend(space, ackOnly, now)) continue;
      if (id === PnSpace.Initial && (this.role === "client" || this.hasAckElicitingToSend(space, ackOnly))) {
        // RFC 9000 §14.1: datagrams with a client Initial (or a server's ack-eliciting Initial)
        // are padded to at least 1200 bytes.
        padTo = MIN_INITIAL_DATAGRAM;
      }
      // A client's first Initial is padded on its own even when 0-RTT could follow, so that a
      // 0-RTT packet that ends up empty can never leave it short; 0-RTT goes in the next datagram.
      const isLast =
        !this.laterSpaceWantsToSend(id, ackOnly, now) ||
        (id === PnSpace.Initial && this.role === "client" && this.zeroRttKeys !== undefined);
      const minEnd = isLast && padTo > 0 ? Math.min(size, padTo) : 0;
      const r = this.buildPacket(now, space, buf, at, size, ackOnly, minEnd);
      if (!r) continue;
      at = r.end;
      if (id === PnSpace.Initial) containsInitial = true;
      if (r.ackEliciting) ackElicitingSent = true;
      if (id === PnSpace.Handshake && this.role === "client" && !this.sentHandshakePacket) {
        this.sentHandshakePacket = true;
        // RFC 9001 §4.9.1: a client discards Initial keys when it first sends a Handshake packet.
        this.discardSpace(now, PnSpace.Initial);
      }
      if (size - at < 48) break;
    }
    if (at === 0) return undefined;
    if (containsInitial && this.role === "client" && at < MIN_INITIAL_DATAGRAM) {
      // Should not happen (padding went into the last packet), but never send a short Initial.
      return undefined;
    }
    this.bytesSent += at;
    this.stats.bytesSent += at;
    if (ackElicitingSent) {
      this.pacer.onSend(now, at, this.loss.cc.window(), this.loss.rtt.smoothedRtt);
      // RFC 9000 §10.1: sending an ack-eliciting packet restarts the idle timer only if none
      // was sent since the last receipt (so unanswered PTO probes do not keep it alive).
      if (!this.ackElicitingSentSinceReceipt) {
        this.ackElicitingSentSinceReceipt = true;
        this.armIdle(now);
      }
    }
    if (pooled) return buf.subarray(0, at);
    const out: Uint8Array = Buffer.allocUnsafe(at);
    out.set(buf.subarray(0, at));
    return out;
  }

  /**
   * A PMTU probe (RFC 9000 §14.4): one 1-RTT packet of PING and PADDING filling `pmtu.size`
   * bytes. It is not counted in flight, so its loss (likely: it may exceed the path MTU) is no
   * congestion signal and arms no PTO, and it carries no data that would need retransmitting.
   */
  private transmitPmtuProbe(now: number): Uint8Array | undefined {
    if (!this.spaces[PnSpace.ApplicationData].writeKeys) return undefined;
    this.pmtu.due = false;
    const size = this.pmtu.size;
    const d = this.sealProbe(now, size, this.peerCids.current.cid, PING_FRAME, [{ k: "pmtu", size }]);
    this.bytesSent += d.length;
    return d;
  }

  /**
   * A probe datagram of `size` bytes: one 1-RTT packet of `frames` then PADDING. Not counted in
   * flight: its loss is no congestion signal and arms no PTO (PMTU probes may well be lost, RFC
   * 9000 §14.4; path probes, §9.4), and it carries nothing that would need retransmitting.
   */
  private sealProbe(
    now: number,
    size: number,
    dcid: Uint8Array,
    frames: Uint8Array,
    tokens: Token[],
  ): Uint8Array {
    const app = this.spaces[PnSpace.ApplicationData];
    const pn = app.nextPn;
    const buf = new Uint8Array(size);
    const layout = writeShortHeader(buf, 0, { dcid, packetNumber: pn, pnLength: 4, keyPhase: this.keyPhase });
    buf.set(frames, layout.payloadOffset); // the zero bytes after them are PADDING frames
    const end = protect(app.writeKeys as PacketKeys, buf, layout, size - AEAD_TAG_LENGTH);
    app.nextPn++;
    this.loss.onPacketSent(PnSpace.ApplicationData, {
      pn,
      timeSent: now,
      size: end,
      ackEliciting: true,
      inFlight: false,
      tokens,
    });
    this.stats.packetsSent++;
    this.stats.bytesSent += end;
    return buf.subarray(0, end);
  }

  /**
   * A PMTU probe of `size` was acknowledged or lost: raise the datagram size, or retry (RFC 8899
   * §5.1.2: MAX_PROBES = 3) before trying a smaller size (see `nextPmtuProbeSize`). One probe is
   * in flight at a time.
   */
  private onPmtuProbe(size: number, acked: boolean): void {
    const m = this.pmtu;
    if (size !== m.size) return; // a stale probe
    if (acked) {
      m.low = size;
      m.lost = 0;
      if (size > this.maxDatagramSize) {
        // Congestion control and pacing count in bytes; their datagram-based limits (minimum
        // window, burst) follow the new size from now on (RFC 9002 §7.2, §7.7).
        this.maxDatagramSize = size;
        this.stats.maxDatagramSize = size;
        this.loss.cc.setMaxDatagramSize(size);
        this.pacer.setMaxDatagramSize(size);
      }
    } else if (++m.lost < PMTU_MAX_PROBES) {
      m.due = true;
      return;
    } else {
      m.high = size;
      m.lost = 0;
    }
    m.size = this.nextPmtuProbeSize();
    m.due = m.size > 0;
  }

  // ------------------------------------------------------------------------------------------
  // Connection migration and path validation (RFC 9000 §8.2, §9)

  /** Where the datagram last returned by `pollTransmit` goes: `remote`, or a path probe's address. */
  get transmitDestination(): string {
    return this.txTo;
  }

  /**
   * The highest-numbered non-probing packet came from a new address (server, handshake
   * confirmed): the client migrated or its NAT rebound (§9.3). Send there from now on, limited to
   * 3x what arrives from it until a PATH_CHALLENGE is answered (§9.3.1), and validate the old
   * address too (§9.3.3: a forwarded copy of a genuine packet looks the same). Returning to the
   * last validated address needs no validation (§9.3).
   */
  private onPeerMigrated(now: number, dcid: Uint8Array): void {
    const from = this.rxFrom;
    const previous = this.remote;
    const previousDcid = this.peerCids.current.cid;
    if (this.addressValidated) this.fallbackRemote = previous;
    this.remote = from;
    this.stats.migrations++;
    if (from === this.fallbackRemote) {
      this.fallbackRemote = undefined;
      this.addressValidated = true;
      this.pathChallenges = [];
      this.loss.setAmplificationLimited(false, now);
    } else {
      this.addressValidated = false;
      this.bytesReceived = this.rxLength;
      this.bytesSent = 0;
      // §9.5: a peer that changed its connection ID on the new path gets a fresh one of its own
      // from us (when it gave us a spare; for a NAT rebinding we MAY keep the current one).
      if (this.pathDcid !== undefined && !bytesEqual(this.pathDcid, dcid)) this.rotateDestinationCid();
      // §9.3: validations of other new addresses are abandoned; the old path's (§9.3.3) is kept.
      this.pathChallenges = this.pathChallenges.filter((c) => c.to === this.fallbackRemote);
      this.startPathValidation(now, from, this.peerCids.current.cid);
      if (this.fallbackRemote !== undefined && !this.pathChallenges.some((c) => c.to === this.fallbackRemote))
        this.startPathValidation(now, this.fallbackRemote, previousDcid);
    }
    this.pathDcid = dcid.slice();
    this.events.push({ type: "peer_address_changed", remote: from, validated: this.addressValidated });
    if (this.config.qlog)
      this.qlog(now, "migration", { from: previous, to: from, validated: this.addressValidated });
  }

  /** Back to 1200-byte datagrams, and DPLPMTUD searches again (each path has its own PMTU, RFC 9000 §14.2). */
  private restartPmtu(): void {
    const target = this.pmtu.target;
    this.maxDatagramSize = 1200;
    this.stats.maxDatagramSize = 1200;
    this.loss.cc.setMaxDatagramSize(1200);
    this.pacer.setMaxDatagramSize(1200);
    Object.assign(this.pmtu, {
      size: target,
      low: 1200,
      high: target + 1,
      lost: 0,
      due: target > 1200,
      resumeOnAck: false,
    });
  }

  private startPathValidation(now: number, to: string, dcid: Uint8Array): void {
    // §8.2.4: give up after three times the larger of the current PTO and a new path's PTO
    // (kInitialRtt); §8.2.1: challenges no more often than Initials (PTO, doubling).
    const pto = this.loss.ptoPeriod();
    const newPathPto = 3 * INITIAL_RTT + (this.peerParams?.maxAckDelay ?? 25);
    this.pathChallenges.push({
      to,
      dcid: dcid.slice(),
      data: this.config.rng.fill(new Uint8Array(8)),
      nextAt: now,
      interval: pto,
      deadline: now + 3 * Math.max(pto, newPathPto),
      full: true,
    });
  }

  /** §8.2.3: a PATH_RESPONSE on any path validates the path its challenge was sent on. */
  private onPathResponse(now: number, data: Uint8Array): void {
    const i = this.pathChallenges.findIndex((c) => bytesEqual(c.data, data));
    if (i < 0) return; // late, or for a validation already abandoned
    const c = this.pathChallenges[i];
    this.pathChallenges.splice(i, 1);
    if (c.to !== this.remote) return; // the old path still works: nothing to change (§9.3.3)
    if (!this.addressValidated) {
      this.addressValidated = true;
      this.loss.setAmplificationLimited(false, now);
      this.stats.pathsValidated++;
      // §9.4: a new peer host (not just a new port, typical of NAT rebinding) is a new path:
      // congestion control and RTT start over.
      if (this.fallbackRemote !== undefined && hostOf(this.fallbackRemote) !== hostOf(this.remote)) {
        this.loss.cc.reset();
        this.loss.rtt.reset();
        this.restartPmtu(); // §14.2: the new path's PMTU is unknown
      }
      this.events.push({ type: "peer_address_changed", remote: this.remote, validated: true });
    }
    if (!c.full) {
      // §8.2.1: the challenge fitted in less than 1200 bytes (anti-amplification): the address
      // is valid, the path MTU not yet; validate again with a full-size datagram.
      this.startPathValidation(now, this.remote, c.dcid);
      return;
    }
    this.fallbackRemote = undefined;
  }

  /** §8.2.4 timeout: return to the last validated address (§9.3.2), or end silently without one. */
  private onPathValidationFailed(now: number, c: PathChallenge): void {
    this.pathChallenges = this.pathChallenges.filter((x) => x !== c);
    if (c.to !== this.remote) {
      if (c.to === this.fallbackRemote) this.fallbackRemote = undefined; // the old path is gone
      return;
    }
    const fallback = this.fallbackRemote;
    if (fallback === undefined) {
      this.closeSilently({
        errorCode: 0,
        application: false,
        reason: "path validation failed with no validated path to return to (RFC 9000 §9.3.2)",
        initiator: "path",
      });
      return;
    }
    this.remote = fallback;
    this.fallbackRemote = undefined;
    this.addressValidated = true;
    this.pathChallenges = [];
    this.pathDcid = undefined;
    this.rotateDestinationCid(); // not the CID just sent to the address that failed (§9.5)
    this.loss.setAmplificationLimited(false, now);
    this.stats.migrations++;
    this.events.push({ type: "peer_address_changed", remote: fallback, validated: true });
  }

  /**
   * A datagram of its own for a path probe: a PATH_RESPONSE to a challenge from another address
   * (§8.2.2), or a due PATH_CHALLENGE (§8.2.1), padded to 1200 bytes within the destination's
   * anti-amplification limit.
   */
  private transmitPathProbe(now: number): Uint8Array | undefined {
    for (let i = 0; i < this.pendingPathResponses.length; i++) {
      const r = this.pendingPathResponses[i];
      if (r.to === this.remote) continue; // rides in an ordinary packet
      this.pendingPathResponses.splice(i, 1);
      return this.probePacket(now, r.to, this.peerCids.current.cid, 0x1b, r.data, r.budget);
    }
    for (const c of this.pathChallenges) {
      if (c.nextAt > now) continue;
      const budget = c.to === this.remote ? this.amplificationBudget() : Number.POSITIVE_INFINITY;
      const d = this.probePacket(now, c.to, c.dcid, 0x1a, c.data, budget);
      c.nextAt = now + c.interval;
      if (!d) continue; // no room under the anti-amplification limit: try again later
      if (d.length < MIN_INITIAL_DATAGRAM) c.full = false;
      c.interval *= 2;
      this.stats.pathChallengesSent++;
      return d;
    }
    return undefined;
  }

  /**
   * A datagram of a PATH_CHALLENGE (0x1a) or PATH_RESPONSE (0x1b) and PADDING, to `to`: 1200
   * bytes, or `budget` when smaller (undefined when even the frame does not fit).
   */
  private probePacket(
    now: number,
    to: string,
    dcid: Uint8Array,
    frameType: 0x1a | 0x1b,
    data: Uint8Array,
    budget: number,
  ): Uint8Array | undefined {
    if (!this.spaces[PnSpace.ApplicationData].writeKeys) return undefined;
    const frame = new Uint8Array(1 + data.length);
    frame[0] = frameType;
    frame.set(data, 1);
    const size = Math.min(MIN_INITIAL_DATAGRAM, Math.floor(budget));
    if (
      size <
      shortHeaderLength({ dcid, packetNumber: 0, pnLength: 4, keyPhase: 0 }) + frame.length + AEAD_TAG_LENGTH
    )
      return undefined;
    const d = this.sealProbe(now, size, dcid, frame, []);
    if (to === this.remote) this.bytesSent += d.length;
    this.txTo = to;
    return d;
  }

  /**
   * The next size to probe, or 0 when the search is over. The largest size both sides allow
   * first (on loopback it is the one that succeeds); after a failure, the next common path
   * MTU below it (RFC 8899 §5.3: a table of likely sizes), so a wide range costs a few probes,
   * not a bisection from the top; then halving the gap between the largest validated and the
   * smallest failed size until it is at most 16 bytes.
   */
  private nextPmtuProbeSize(): number {
    const m = this.pmtu;
    if (m.high > m.target) return m.target > m.low ? m.target : 0;
    for (const p of PMTU_PLATEAUS) if (p < m.high && p > m.low + PMTU_RESOLUTION) return p;
    return m.high - m.low > PMTU_RESOLUTION ? Math.floor((m.low + m.high) / 2) : 0;
  }

  private laterSpaceWantsToSend(id: PnSpace, ackOnly: boolean, now: number): boolean {
    for (let j = id + 1; j <= PnSpace.ApplicationData; j++) {
      const s = this.spaces[j as PnSpace];
      if (!s.discarded && this.writeKeysOf(s) && this.spaceWantsToSend(s, ackOnly, now)) return true;
    }
    return false;
  }

  /** The keys to protect `space`'s next packet with: its own, or 0-RTT keys (client, before 1-RTT). */
  private writeKeysOf(space: Space): PacketKeys | undefined {
    if (space.writeKeys) return space.writeKeys;
    return space.id === PnSpace.ApplicationData ? this.zeroRttKeys : undefined;
  }

  private hasAckElicitingToSend(space: Space, ackOnly: boolean): boolean {
    if (space.probes > 0) return true;
    if (ackOnly) return false;
    if (space.hasCryptoToSend) return true;
    if (space.id !== PnSpace.ApplicationData) return false;
    if (!this.handshakeComplete && this.role === "client") {
      // Before the handshake completes a client sends application data only in 0-RTT.
      return this.pingPending || (this.zeroRttKeys !== undefined && this.streams.hasPendingFrames());
    }
    return (
      this.handshakeDonePending ||
      this.pingPending ||
      this.pendingNewCids.length > 0 ||
      this.pendingRetireCids.length > 0 ||
      this.pendingPathResponses.some((r) => r.to === this.remote) ||
      this.datagramsOut.length > 0 ||
      this.streams.hasPendingFrames()
    );
  }

  private spaceWantsToSend(space: Space, ackOnly: boolean, now: number): boolean {
    if (ackDue(space, now)) return true;
    return this.hasAckElicitingToSend(space, ackOnly);
  }

  /** STREAM frames of the datagram being built, collected only for `faultInjection`. */
  private outgoingStreamFrames: { streamId: number; offset: number; length: number }[] = [];

  /** Payload bytes the packet being built may hold (set by `buildPacket`). */
  private payloadLimit = 0;

  /** Bytes left in the packet being built. */
  private room(): number {
    return this.payloadLimit - SCRATCH.pos;
  }

  /** Appends `f` to the packet being built if it fits. */
  private put(f: Frame): boolean {
    if (frameSize(f) > this.room()) return false;
    encodeFrame(SCRATCH, f);
    return true;
  }

  /**
   * Builds one protected packet of `space` at `buf[at]`, at most `limit` bytes of the datagram.
   * `minEnd` > 0 pads the packet so the datagram reaches that size.
   */
  private buildPacket(
    now: number,
    space: Space,
    buf: Uint8Array,
    at: number,
    limit: number,
    ackOnly: boolean,
    minEnd: number,
  ): { end: number; ackEliciting: boolean } | undefined {
    // 0-RTT (RFC 9000 §17.2.3): a client's Application Data before it has 1-RTT keys.
    const zeroRtt = space.id === PnSpace.ApplicationData && !space.writeKeys;
    const keys = this.writeKeysOf(space) as PacketKeys;
    const pn = space.nextPn;
    const largestAcked = this.loss.largestAcked(space.id);
    const pnLength = encodePacketNumberLength(pn, largestAcked ?? -1);
    const dcid = this.peerCids.current.cid;
    const isLong = space.id !== PnSpace.ApplicationData || zeroRtt;
    const token = space.id === PnSpace.Initial && this.role === "client" ? this.retryToken : undefined;
    const longType = space.id === PnSpace.Initial ? "initial" : zeroRtt ? "0rtt" : "handshake";
    const headerLen = isLong
      ? longHeaderLength({
          type: longType,
          version: this.version,
          dcid,
          scid: this.initialScid,
          token,
          packetNumber: pn,
          pnLength,
        })
      : shortHeaderLength({ dcid, packetNumber: pn, pnLength, keyPhase: this.keyPhase });
    const maxPayload = limit - at - headerLen - AEAD_TAG_LENGTH;
    if (maxPayload < 24) return undefined;

    const w = SCRATCH;
    w.pos = 0;
    const tokens: Token[] = [];
    let ackEliciting = false;
    this.payloadLimit = maxPayload;

    // An ACK goes out when due; otherwise it rides along with ack-eliciting frames (§13.2.1:
    // never an ACK alone in answer to packets that were not ack-eliciting).
    // (No ACK frames in 0-RTT packets, RFC 9000 §17.2.3.)
    if (
      !zeroRtt &&
      (ackDue(space, now) || (space.acks.ackPending() && this.hasAckElicitingToSend(space, ackOnly)))
    ) {
      const ack = space.acks.buildAck(
        now,
        space.id === PnSpace.ApplicationData ? this.settings.ackDelayExponent : 3,
      );
      if (ack && this.put(ack)) {
        space.acks.onAckSent();
        tokens.push({ k: "ack", space: space.id, largest: ack.largest });
      }
    }
    const probe = space.probes > 0;
    if (!ackOnly || probe) {
      // CRYPTO data, lost ranges first.
      while (space.cryptoOut.hasSendable()) {
        const offsetBound = space.cryptoOut.sentOffset;
        const cap = cryptoDataCapacity(offsetBound, this.room());
        if (cap <= 0) break;
        const chunk = space.cryptoOut.nextChunk(cap);
        if (!chunk) break;
        encodeFrame(w, { type: "crypto", offset: chunk.offset, data: chunk.data });
        tokens.push({ k: "crypto", space: space.id, offset: chunk.offset, length: chunk.data.length });
        ackEliciting = true;
      }
      if (
        space.id === PnSpace.ApplicationData &&
        (this.handshakeComplete || this.role === "server" || zeroRtt)
      ) {
        this.fillApplicationFrames(w, tokens);
        if (tokens.some((t) => t.k !== "ack")) ackEliciting = true;
      }
      if (this.pingPending && space.id === PnSpace.ApplicationData && this.put({ type: "ping" })) {
        this.pingPending = false;
        tokens.push({ k: "ping" });
        ackEliciting = true;
      }
      if (probe && !ackEliciting && this.put({ type: "ping" })) {
        tokens.push({ k: "ping" });
        ackEliciting = true;
      }
    }
    if (w.pos === 0) return undefined;
    if (probe && ackEliciting) space.probes--;

    // Padding: for the datagram minimum (Initial) and for the header protection sample (§5.4.2).
    let payloadLen = w.pos;
    const minPayload = minPayloadLength(pnLength);
    const wantEnd = Math.max(minEnd, 0);
    const endIfUnpadded = at + headerLen + payloadLen + AEAD_TAG_LENGTH;
    let pad = Math.max(0, minPayload - payloadLen, wantEnd - endIfUnpadded);
    pad = Math.min(pad, maxPayload - payloadLen);
    if (pad > 0) {
      encodeFrame(w, { type: "padding", length: pad });
      payloadLen = w.pos;
    }

    const layout = isLong
      ? writeLongHeader(buf, at, {
          type: longType,
          version: this.version,
          dcid,
          scid: this.initialScid,
          token,
          packetNumber: pn,
          pnLength,
        })
      : writeShortHeader(buf, at, { dcid, packetNumber: pn, pnLength, keyPhase: this.keyPhase });
    // Sealed straight from the scratch writer into the datagram (one copy fewer per packet).
    const end = protectPayload(keys, buf, layout, w.finish());
    space.nextPn++;
    if (zeroRtt) this.stats.zeroRttPackets++;
    const inFlight = ackEliciting || pad > 0;
    this.loss.onPacketSent(space.id, {
      pn,
      timeSent: now,
      size: end - at,
      ackEliciting,
      inFlight,
      tokens,
    });
    this.stats.packetsSent++;
    if (this.config.faultInjection)
      for (const t of tokens)
        if (t.k === "stream")
          this.outgoingStreamFrames.push({ streamId: t.id, offset: t.offset, length: t.length });
    if (this.config.qlog)
      this.qlog(now, "packet_sent", {
        packet_type: PACKET_TYPE_OF_SPACE[space.id],
        packet_number: pn,
        length: end - at,
      });
    return { end, ackEliciting };
  }

  private fillApplicationFrames(w: Writer, tokens: Token[]): void {
    if (this.handshakeDonePending && this.role === "server" && this.handshakeComplete) {
      if (this.put({ type: "handshake_done" })) {
        this.handshakeDonePending = false;
        tokens.push({ k: "handshake_done" });
      }
    }
    if (this.handshakeComplete) {
      for (let i = 0; i < this.pendingPathResponses.length; ) {
        const r = this.pendingPathResponses[i];
        // Responses to another address leave in their own datagram (transmitPathProbe).
        if (r.to !== this.remote) i++;
        else if (this.put({ type: "path_response", data: r.data })) this.pendingPathResponses.splice(i, 1);
        else break;
      }
      while (this.pendingRetireCids.length > 0) {
        const sequence = this.pendingRetireCids[0];
        if (!this.put({ type: "retire_connection_id", sequence })) break;
        this.pendingRetireCids.shift();
        tokens.push({ k: "retire_cid", sequence });
      }
      while (this.pendingNewCids.length > 0) {
        const frame = this.pendingNewCids[0];
        if (!this.put(frame)) break;
        this.pendingNewCids.shift();
        tokens.push({ k: "new_cid", frame });
        if (this.pendingNewCids.length === 0) this.pendingNewCids = []; // as in pollEvent
      }
    } else if (this.role === "server" && this.earlyData !== "accepted") {
      return; // no streams can exist yet: nothing for 0.5-RTT
    }
    // From here on: frames allowed in 0-RTT (client) and 0.5-RTT (server, answering 0-RTT).
    for (let c = this.streams.pollControlFrame(); c; c = this.streams.pollControlFrame()) {
      if (!this.put(controlToFrame(c))) {
        this.streams.onControlFrameLost(c);
        break;
      }
      tokens.push({ k: "control", frame: c });
    }
    while (this.datagramsOut.length > 0) {
      const data = this.datagramsOut[0];
      if (!this.put({ type: "datagram", data })) break;
      this.datagramsOut.shift();
    }
    for (;;) {
      const space = this.room();
      if (space < 8) break;
      const f = this.streams.pollStreamFrame(space);
      if (!f) break;
      encodeFrame(w, f);
      tokens.push({ k: "stream", id: f.streamId, offset: f.offset, length: f.data.length, fin: f.fin });
    }
  }

  // ------------------------------------------------------------------------------------------
  // Closing

  /**
   * Closes the connection (RFC 9000 §10.2): sends CONNECTION_CLOSE with an application error
   * code (or a transport one with `application: false`), then waits three PTOs before `drained`.
   */
  close(now: number, errorCode = 0, reason = "", application = true): void {
    if (this.isClosing) return;
    this.closeImmediately(now, { errorCode, application, reason, initiator: "local" });
  }

  private onError(now: number, e: unknown): void {
    if (this.isClosing) return;
    let err: TransportError;
    if (e instanceof TransportError) err = e;
    else if (e instanceof TlsAlert) err = TransportError.crypto(e.description, e.reason);
    else {
      const msg = e instanceof Error ? e.message : String(e);
      err = new TransportError(TransportErrorCode.INTERNAL_ERROR, `internal error: ${msg}`);
      if (e instanceof Error && this.config.qlog) this.qlog(now, "internal_error", { stack: e.stack });
    }
    this.closeImmediately(
      now,
      { errorCode: err.errorCode, application: false, reason: err.reason, initiator: "local" },
      err.frameType,
    );
  }

  private closeImmediately(now: number, info: CloseInfo, frameType = 0): void {
    if (this.isClosing) return;
    this.closeInfo = info;
    this.closeFrame = {
      type: "connection_close",
      application: info.application,
      errorCode: info.errorCode,
      frameType: info.application ? 0 : frameType,
      reason: info.reason.slice(0, 256),
    };
    this.events.push({ type: "closed", info });
    if (info.initiator === "version-negotiation" || !this.receivedFromPeerOrSent()) {
      this.closeSilently(info, false);
      return;
    }
    this.state = "closing";
    this.closeSendPending = true;
    this.timers.stopAll();
    this.timers.set(Timer.Close, now + 3 * this.loss.ptoPeriod());
  }

  private receivedFromPeerOrSent(): boolean {
    return this.receivedFromPeer || this.bytesSent > 0;
  }

  private enterDraining(now: number, info: CloseInfo): void {
    if (this.state === "draining" || this.state === "closed") return;
    if (this.state !== "closing") {
      this.closeInfo = info;
      this.events.push({ type: "closed", info });
    }
    // RFC 9000 §10.2.2: no more packets; wait three PTOs.
    this.state = "draining";
    this.timers.stopAll();
    this.timers.set(Timer.Close, now + 3 * this.loss.ptoPeriod());
  }

  private closeSilently(info: CloseInfo, emit = true): void {
    if (this.state === "closed") return;
    if (emit && !this.closeInfo) {
      this.closeInfo = info;
      this.events.push({ type: "closed", info });
    }
    this.finishClose();
  }

  private finishClose(): void {
    this.state = "closed";
    this.timers.stopAll();
    this.events.push({ type: "drained" });
  }

  /** The CONNECTION_CLOSE datagram, in every space we still have keys for (RFC 9000 §10.2.3). */
  private transmitClose(now: number): Uint8Array | undefined {
    if (!this.closeSendPending || !this.closeFrame) return undefined;
    this.closeSendPending = false;
    const size = Math.min(this.maxDatagramSize, this.amplificationBudget());
    if (size < 64) return undefined;
    const buf = new Uint8Array(size);
    let at = 0;
    for (const id of PN_SPACES) {
      const space = this.spaces[id];
      if (space.discarded || !space.writeKeys) continue;
      // Before the handshake is confirmed the peer may lack 1-RTT keys: also send it in the
      // earlier spaces, where an application close becomes APPLICATION_ERROR (§10.2.3).
      let frame = this.closeFrame;
      if (id !== PnSpace.ApplicationData && frame.application) {
        frame = {
          type: "connection_close",
          application: false,
          errorCode: TransportErrorCode.APPLICATION_ERROR,
          frameType: 0,
          reason: "",
        };
      }
      const w = SCRATCH;
      w.pos = 0;
      encodeFrame(w, frame);
      const payload = w.finish().slice();
      const pnLength = 4;
      const pn = space.nextPn;
      const dcid = this.peerCids.current.cid;
      const closeToken = id === PnSpace.Initial && this.role === "client" ? this.retryToken : undefined;
      const headerLen =
        id === PnSpace.ApplicationData
          ? shortHeaderLength({ dcid, packetNumber: pn, pnLength, keyPhase: this.keyPhase })
          : longHeaderLength({
              type: id === PnSpace.Initial ? "initial" : "handshake",
              version: this.version,
              dcid,
              scid: this.initialScid,
              token: closeToken,
              packetNumber: pn,
              pnLength,
            });
      if (at + headerLen + Math.max(payload.length, minPayloadLength(pnLength)) + AEAD_TAG_LENGTH > size)
        break;
      space.nextPn++;
      const layout =
        id === PnSpace.ApplicationData
          ? writeShortHeader(buf, at, { dcid, packetNumber: pn, pnLength, keyPhase: this.keyPhase })
          : writeLongHeader(buf, at, {
              type: id === PnSpace.Initial ? "initial" : "handshake",
              version: this.version,
              dcid,
              scid: this.initialScid,
              token: id === PnSpace.Initial && this.role === "client" ? this.retryToken : undefined,
              packetNumber: pn,
              pnLength,
            });
      if (
        layout.payloadOffset + Math.max(payload.length, minPayloadLength(pnLength)) + AEAD_TAG_LENGTH >
        size
      )
        break;
      buf.set(payload, layout.payloadOffset);
      let payloadEnd = layout.payloadOffset + payload.length;
      if (id === PnSpace.Initial && this.role === "client") {
        const need = MIN_INITIAL_DATAGRAM - (payloadEnd + AEAD_TAG_LENGTH);
        if (need > 0 && payloadEnd + need + AEAD_TAG_LENGTH <= size) {
          buf.fill(0, payloadEnd, payloadEnd + need);
          payloadEnd += need;
        }
      }
      at = protect(space.writeKeys, buf, layout, payloadEnd);
      if (id === PnSpace.ApplicationData) break;
      // Once the handshake is confirmed only 1-RTT is used.
      if (this.handshakeConfirmed) break;
    }
    if (at === 0) return undefined;
    this.bytesSent += at;
    this.qlog(now, "connection_close_sent", { error_code: this.closeFrame.errorCode });
    return buf.subarray(0, at);
  }

  // ------------------------------------------------------------------------------------------
  // Events and application API

  /** The next event, or undefined. */
  pollEvent(): ConnectionEvent | undefined {
    const ev = this.events.shift();
    // A drained queue is replaced: after shift() the array keeps its grown room for good.
    if (ev !== undefined && this.events.length === 0) this.events = [];
    return ev;
  }

  /** Opens a stream; undefined when the peer's stream limit is reached (wait for `streams_available`). */
  openStream(bidi = true): number | undefined {
    this.assertOpen();
    return this.streams.openStream(bidi);
  }

  /** Writes to a stream's send buffer; returns how many bytes were accepted (backpressure). */
  write(streamId: number, data: Uint8Array): number {
    this.assertOpen();
    return this.streams.write(streamId, data);
  }

  /** Ends the sending part of a stream (FIN). */
  finish(streamId: number): void {
    this.assertOpen();
    this.streams.finish(streamId);
  }

  /** Reads up to `maxBytes` in order from a stream. */
  read(now: number, streamId: number, maxBytes?: number): { data: Uint8Array; fin: boolean } | undefined {
    if (this.state === "closed") return undefined;
    const r = this.streams.read(streamId, now, maxBytes);
    this.afterProgress(now);
    return r;
  }

  /** Abruptly ends the sending part of a stream (RESET_STREAM). */
  resetStream(streamId: number, errorCode: number): void {
    if (this.isClosing) return;
    this.streams.resetStream(streamId, errorCode);
  }

  /** Asks the peer to stop sending on a stream (STOP_SENDING). */
  stopSending(streamId: number, errorCode: number): void {
    if (this.isClosing) return;
    this.streams.stopSending(streamId, errorCode);
  }

  /** Bytes that can be written to a stream now. */
  writable(streamId: number): number {
    return this.streams.writable(streamId);
  }

  /** Largest DATAGRAM payload the peer accepts now (0 = DATAGRAM not supported by the peer). */
  get maxDatagramPayload(): number {
    const peer = this.peerParams?.maxDatagramFrameSize ?? 0;
    if (peer === 0) return 0;
    // Frame type + length varint inside a short-header packet.
    const overhead = 1 + 4 + 1 + this.peerCids.current.cid.length + 4 + AEAD_TAG_LENGTH;
    return Math.min(peer - 3, this.maxDatagramSize - overhead);
  }

  /** Queues an unreliable DATAGRAM (RFC 9221). Returns false if it cannot be sent. */
  sendDatagram(data: Uint8Array): boolean {
    this.assertOpen();
    if (data.length > this.maxDatagramPayload) return false;
    if (this.datagramsOut.length >= MAX_DATAGRAM_QUEUE) this.datagramsOut.shift();
    this.datagramsOut.push(data);
    return true;
  }

  /**
   * 0-RTT: "pending" while the client may send (or the server reads) 0-RTT packets before the
   * handshake says whether they were accepted; then "accepted" or "rejected"; "none" otherwise.
   */
  get earlyDataState(): "none" | "pending" | "accepted" | "rejected" {
    return this.earlyData;
  }

  /** Queues a PING (keep-alive or RTT probe). */
  ping(): void {
    this.pingPending = true;
  }

  /**
   * Switches to another connection ID the peer issued and retires the current one with
   * RETIRE_CONNECTION_ID (RFC 9000 §5.1.2), e.g. to stop linkability. Returns false when the
   * peer has issued no spare one (it replaces retired ones up to our active_connection_id_limit).
   */
  rotateDestinationCid(): boolean {
    if (this.isClosing || !this.handshakeComplete || !this.peerCids.rotate()) return false;
    this.pendingRetireCids.push(...this.peerCids.drainRetirements());
    return true;
  }

  private assertOpen(): void {
    if (this.isClosing) {
      throw new ConnectionError("ERR_QUIC_CLOSED", `connection is closed: ${this.closeInfo?.reason ?? ""}`);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Debugging aids

  private keylogSecret(
    level: "early" | "handshake" | "application",
    direction: "read" | "write",
    secret: Uint8Array,
  ): void {
    if (!this.config.keylog) return;
    const random = this.tls.clientRandom;
    if (!random) return;
    const clientSide = (this.role === "client") === (direction === "write");
    const label =
      level === "early"
        ? "CLIENT_EARLY_TRAFFIC_SECRET"
        : level === "handshake"
          ? clientSide
            ? "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
            : "SERVER_HANDSHAKE_TRAFFIC_SECRET"
          : clientSide
            ? "CLIENT_TRAFFIC_SECRET_0"
            : "SERVER_TRAFFIC_SECRET_0";
    this.config.keylog(`${label} ${toHex(random)} ${toHex(secret)}`);
  }

  private qlog(now: number, name: string, data: Record<string, unknown>): void {
    this.config.qlog?.({ time: now, name, data } satisfies QlogEvent);
  }
}

/** An ACK must be sent in this space now (RFC 9000 §13.2.1). */
function ackDue(space: Space, now: number): boolean {
  const d = space.acks.ackDeadline();
  return d !== undefined && d <= now;
}

/** The frame for a stream manager control frame (field names differ slightly). */
function controlToFrame(c: StreamControlFrame): Frame {
  switch (c.type) {
    case "max_data":
      return { type: "max_data", limit: c.maximum };
    case "max_stream_data":
      return { type: "max_stream_data", streamId: c.streamId, limit: c.maximum };
    default:
      return c;
  }
}

export type { EncryptionLevel };
export { AlertDescription };
