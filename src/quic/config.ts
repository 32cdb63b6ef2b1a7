/**
 * Connection configuration: what a user may set, with the defaults we ship, and how it becomes
 * our transport parameters (RFC 9000 §18.2).
 */
import type { CryptoProvider, PrivateKey, Rng } from "../crypto/provider.js";
import type { PeerVerifier, SessionTicket } from "../tls/handshake-common.js";
import type { CipherSuiteName } from "../tls/suites.js";
import type { TicketKeys } from "../tls/ticket.js";
import type { TransportParameters } from "./transport-params.js";
import { QUIC_V1 } from "./version.js";

/** Transport settings (all optional; see `defaultTransportSettings`). Times are milliseconds. */
export interface TransportSettings {
  /** Idle timeout we advertise; the effective one is the minimum of both sides' (RFC 9000 §10.1). 0 = none. */
  maxIdleTimeout: number;
  /** Send a PING after this much quiet, to keep the connection (and NAT bindings) alive; 0 = never. */
  keepAliveInterval: number;
  /** Initial connection-level receive window (MAX_DATA); grows with the bandwidth-delay product. */
  initialMaxData: number;
  /** Largest connection-level receive window auto-tuning may reach. */
  maxConnectionWindow: number;
  /** Initial per-stream receive window (MAX_STREAM_DATA). */
  initialMaxStreamData: number;
  /** Largest per-stream receive window auto-tuning may reach. */
  maxStreamWindow: number;
  /** Concurrent bidirectional streams the peer may open. */
  maxStreamsBidi: number;
  /** Concurrent unidirectional streams the peer may open. */
  maxStreamsUni: number;
  /** Our max_ack_delay. */
  maxAckDelay: number;
  ackDelayExponent: number;
  /** How many connection IDs we accept from the peer at once. */
  activeConnectionIdLimit: number;
  /** Largest DATAGRAM frame we accept (RFC 9221); 0 disables DATAGRAM. */
  maxDatagramFrameSize: number;
  /**
   * Largest UDP payload we send and accept (our max_udp_payload_size; the peer's also caps what
   * we send), 1200..65527. Sizes above 1200 are used only after DPLPMTUD confirmed them (RFC 9000
   * §14.3). The default suits a 1500-byte Ethernet path; `QuicEndpoint` raises it on loopback
   * unless it is set explicitly (src/net/quic.ts).
   */
  maxUdpPayloadSize: number;
  /** Per-stream send buffer: bytes written but not yet acknowledged before `write` pushes back. */
  streamSendBuffer: number;
  /** Length of the connection IDs we issue (0-20; 8 by default). */
  cidLength: number;
}

/** The defaults: comfortable on loopback and on a WAN path of a few hundred ms. */
export const defaultTransportSettings: Readonly<TransportSettings> = Object.freeze({
  maxIdleTimeout: 30_000,
  keepAliveInterval: 0,
  initialMaxData: 1 << 20,
  maxConnectionWindow: 24 << 20,
  initialMaxStreamData: 512 << 10,
  maxStreamWindow: 16 << 20,
  maxStreamsBidi: 100,
  maxStreamsUni: 100,
  maxAckDelay: 25,
  ackDelayExponent: 3,
  activeConnectionIdLimit: 4,
  maxDatagramFrameSize: 0,
  maxUdpPayloadSize: 1452,
  streamSendBuffer: 1 << 20,
  cidLength: 8,
});

/** TLS and identity settings shared by clients and servers. */
export interface ConnectionConfig {
  /** Crypto implementation (see src/crypto/select.ts). */
  provider: CryptoProvider;
  /** Randomness for connection IDs, keys and tokens. */
  rng: Rng;
  /** QUIC version to speak (client) — v1 by default. */
  version?: number;
  /** ALPN protocols, in preference order (required by RFC 9001 §8.1). */
  alpn: readonly string[];
  /** Cipher suites offered/accepted, in preference order; all three by default. */
  cipherSuites?: readonly CipherSuiteName[];
  /** Client: the server name to send (SNI) and to verify the certificate against. */
  serverName?: string;
  /**
   * Client: how to check the server's certificate. Verification is on by default; skipping it
   * must be asked for explicitly with `"insecure-skip-verification"`.
   */
  verifier?: PeerVerifier | "insecure-skip-verification";
  /**
   * Client: a ticket from an earlier connection to this server (the `session_ticket` event),
   * offered for TLS resumption (RFC 8446 §2.2): the server skips its certificate and signature.
   * Ignored when expired or issued for another server name.
   */
  sessionTicket?: SessionTicket;
  /**
   * 0-RTT (RFC 9001 §4.6). Client: send stream data in 0-RTT packets when `sessionTicket`
   * allows it — such data can be replayed by an attacker, so only for idempotent requests.
   * Server: issue tickets that allow 0-RTT and accept it from fresh, unreplayed resumptions.
   * Off by default.
   */
  earlyData?: boolean;
  /** Server: certificate chain, leaf first (DER). */
  certificateChain?: readonly Uint8Array[];
  /** Server: the leaf certificate's private key. */
  privateKey?: PrivateKey;
  /**
   * Server: the session-ticket key, shared by every connection of an endpoint so a ticket
   * issued on one connection can be opened on the next (the Endpoint sets it).
   */
  ticketKeys?: TicketKeys;
  /** Transport settings; unset fields take `defaultTransportSettings`. */
  transport?: Partial<TransportSettings>;
  /** Receives NSS key log lines (SSLKEYLOGFILE format) for Wireshark. */
  keylog?: (line: string) => void;
  /** Receives qlog-style events (name + data) for debugging. */
  qlog?: (event: QlogEvent) => void;
  /** Test seam: targeted packet loss (see {@link FaultInjection}). Off by default. */
  faultInjection?: FaultInjection;
}

/** The STREAM frames of one outgoing packet, as seen by {@link FaultInjection.dropOutgoing}. */
export interface OutgoingPacketInfo {
  now: number;
  streamFrames: readonly { streamId: number; offset: number; length: number }[];
}

/**
 * Test-only fault injection. Encrypted datagrams cannot be told apart on the (simulated) wire,
 * so tests that must lose exactly the packets of one stream (the head-of-line test,
 * test/mqtt/head-of-line.test.ts) ask the sender. A dropped datagram is still recorded as sent
 * (congestion control, loss recovery), so its data is retransmitted exactly as after wire loss.
 */
export interface FaultInjection {
  /** Called for every datagram about to leave; true discards it silently. */
  dropOutgoing?: (info: OutgoingPacketInfo) => boolean;
}

/** A qlog-like event (draft-ietf-quic-qlog-quic-events names). */
export interface QlogEvent {
  time: number;
  name: string;
  data: Record<string, unknown>;
}

/** The largest UDP payload any QUIC endpoint may use: max_udp_payload_size's limit (RFC 9000 §18.2). */
export const MAX_UDP_PAYLOAD_LIMIT = 65527;

/**
 * Throws a RangeError for settings out of range (unset ones are not checked). Called when a
 * connection is created, and early by `QuicEndpoint.listen`/`connect` so that a bad option fails
 * the call rather than the first connection.
 */
export function checkTransportSettings(t: Partial<TransportSettings> | undefined): void {
  const mtu = t?.maxUdpPayloadSize;
  if (mtu !== undefined && !(Number.isInteger(mtu) && mtu >= 1200 && mtu <= MAX_UDP_PAYLOAD_LIMIT))
    throw new RangeError(`maxUdpPayloadSize must be an integer in 1200..${MAX_UDP_PAYLOAD_LIMIT}`);
  const cid = t?.cidLength;
  if (cid !== undefined && !(cid >= 0 && cid <= 20)) throw new RangeError("cidLength must be 0..20");
}

/** Resolved settings: `config.transport` over the defaults (fields set to undefined keep the default). */
export function resolveSettings(config: ConnectionConfig): TransportSettings {
  checkTransportSettings(config.transport);
  const s = { ...defaultTransportSettings };
  for (const [k, v] of Object.entries(config.transport ?? {}))
    if (v !== undefined) (s as Record<string, number>)[k] = v;
  return s;
}

/** Default QUIC version. */
export const DEFAULT_VERSION = QUIC_V1;

/** Our transport parameters from the settings (CID fields are set by the connection). */
export function localTransportParameters(
  s: TransportSettings,
  role: "client" | "server",
): TransportParameters {
  return {
    maxIdleTimeout: s.maxIdleTimeout,
    maxUdpPayloadSize: s.maxUdpPayloadSize,
    initialMaxData: s.initialMaxData,
    initialMaxStreamDataBidiLocal: s.initialMaxStreamData,
    initialMaxStreamDataBidiRemote: s.initialMaxStreamData,
    initialMaxStreamDataUni: s.initialMaxStreamData,
    initialMaxStreamsBidi: s.maxStreamsBidi,
    initialMaxStreamsUni: s.maxStreamsUni,
    ackDelayExponent: s.ackDelayExponent,
    maxAckDelay: s.maxAckDelay,
    // Servers follow a client to a new address (RFC 9000 §9.3); clients do not act on a
    // server's address change (no preferred_address, §9.6), so they ask servers not to.
    disableActiveMigration: role === "client",
    activeConnectionIdLimit: s.activeConnectionIdLimit,
    maxDatagramFrameSize: s.maxDatagramFrameSize,
    greaseQuicBit: false,
  };
}
