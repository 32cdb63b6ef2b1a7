/**
 * What the TLS 1.3 client and server state machines share: encryption levels, events, the peer
 * verifier interface, the sans-IO plumbing (per-level reassembly, output and event queues, fatal
 * alert latching), and the CertificateVerify rules (RFC 8446 §4.4.3).
 *
 * TLS here has no record layer (RFC 9001 §4): handshake bytes go in and out tagged with the QUIC
 * encryption level that carries them, and secrets come out as events for QUIC to derive packet
 * protection keys from.
 */
import { InvalidKeyShareError, type PublicKey, type SignatureScheme } from "../crypto/provider.js";
import { concat } from "../util/bytes.js";
import { AlertDescription, TlsAlert } from "./alert.js";
import {
  type HandshakeMessage,
  HandshakeReassembler,
  handshakeTypeName,
  handshakeTypeOf,
  parseHandshakeBody,
  type RawHandshakeMessage,
  serializeHandshake,
} from "./messages.js";
import type { CipherSuite, CipherSuiteName } from "./suites.js";

/**
 * QUIC encryption levels (RFC 9001 §4.1.3). CRYPTO frames travel at initial, handshake and
 * application; "early" (0-RTT) only ever carries keys, never handshake bytes.
 */
export type EncryptionLevel = "initial" | "early" | "handshake" | "application";

const LEVEL_ORDER: Readonly<Record<EncryptionLevel, number>> = {
  initial: 0,
  early: 1,
  handshake: 2,
  application: 3,
};

/** Which way a secret protects traffic, from this endpoint's point of view. */
export type Direction = "read" | "write";

/**
 * The peer chain check the handshake calls (defined with the certificate code in ./verify.ts:
 * `verify(chainDer, serverName)` returns the parsed leaf or throws a `TlsAlert`).
 */
export type { PeerVerifier } from "./verify.js";

/** A session ticket as the client keeps it for resumption (RFC 8446 §4.6.1). */
export interface SessionTicket {
  /** The opaque ticket to send back in pre_shared_key. */
  readonly ticket: Uint8Array;
  /** The resumption PSK derived from the ticket nonce. */
  readonly psk: Uint8Array;
  /** The suite of the session; a resumption must use a suite with the same hash. */
  readonly suite: CipherSuiteName;
  readonly alpn: string | undefined;
  readonly serverName: string | undefined;
  /** When the ticket was received, milliseconds on the caller's clock. */
  readonly receivedAt: number;
  /** Seconds the ticket may be used for. */
  readonly lifetime: number;
  /** Added (mod 2^32) to the ticket age in milliseconds to obfuscate it. */
  readonly ageAdd: number;
  /** Bytes of 0-RTT the server accepts with it; 0 = none. */
  readonly maxEarlyDataSize: number;
  /** The server's transport parameters of this session (0-RTT must respect them, RFC 9000 §7.4.1). */
  readonly peerTransportParameters: Uint8Array | undefined;
}

/** What the handshake tells its owner, in order. Read them with `pollEvent()`. */
export type TlsEvent =
  /**
   * A traffic secret for a level and direction. QUIC derives packet protection from it with the
   * suite's AEAD and hash (RFC 9001 §5.1).
   */
  | {
      readonly type: "secret";
      readonly level: Exclude<EncryptionLevel, "initial">;
      readonly direction: Direction;
      readonly secret: Uint8Array;
      readonly suite: CipherSuite;
    }
  /** The peer's quic_transport_parameters, raw (RFC 9001 §8.2); authenticated once the handshake completes. */
  | { readonly type: "transport_parameters"; readonly data: Uint8Array }
  /** The negotiated application protocol (RFC 7301). */
  | { readonly type: "alpn"; readonly protocol: string }
  /** The handshake is complete (RFC 9001 §4.1.1): both Finished messages were sent or verified. */
  | {
      readonly type: "handshake_complete";
      readonly suite: CipherSuite;
      readonly alpn: string | undefined;
      readonly serverName: string | undefined;
      /**
       * The peer's chain as received (leaf first); empty for a server that got no client
       * certificate, and on a resumed session (authenticated by the ticket's PSK).
       */
      readonly peerCertificates: readonly Uint8Array[];
      /** True when the session was resumed from a ticket (RFC 8446 §2.2). */
      readonly resumed: boolean;
    }
  /**
   * 0-RTT was offered (RFC 8446 §4.2.10): the server tells whether it accepted it (server: at
   * the ClientHello; client: at EncryptedExtensions). Rejected early data was never processed
   * by the server and must be sent again after the handshake.
   */
  | { readonly type: "early_data"; readonly accepted: boolean }
  /** Client: the server issued a ticket; keep it to resume later. */
  | { readonly type: "session_ticket"; readonly ticket: SessionTicket }
  /** Server: a NewSessionTicket was queued for sending. */
  | {
      readonly type: "ticket_issued";
      readonly lifetime: number;
      readonly maxEarlyDataSize: number;
      readonly ticket: Uint8Array;
    };

/** Handshake bytes to send at an encryption level (carry them in CRYPTO frames at that level). */
export interface TlsOutput {
  readonly level: Exclude<EncryptionLevel, "early">;
  readonly data: Uint8Array;
}

/** Builds a fatal alert. */
export function alert(name: keyof typeof AlertDescription, reason: string): TlsAlert {
  return new TlsAlert(AlertDescription[name], reason);
}

/** Turns anything thrown inside the handshake into the TlsAlert to send. */
export function toAlert(e: unknown): TlsAlert {
  if (e instanceof TlsAlert) return e;
  if (e instanceof InvalidKeyShareError) {
    return new TlsAlert(AlertDescription.illegal_parameter, `invalid key share: ${e.message}`, { cause: e });
  }
  if (e instanceof Error && typeof (e as { tlsAlert?: unknown }).tlsAlert === "number") {
    // CertificateError and friends name the alert to send.
    return new TlsAlert((e as unknown as { tlsAlert: number }).tlsAlert, e.message, { cause: e });
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new TlsAlert(AlertDescription.internal_error, msg, { cause: e });
}

const CV_PAD = new Uint8Array(64).fill(0x20);
const CV_SERVER = new TextEncoder().encode("TLS 1.3, server CertificateVerify");
const CV_CLIENT = new TextEncoder().encode("TLS 1.3, client CertificateVerify");

/**
 * The content a CertificateVerify signs (RFC 8446 §4.4.3): 64 spaces, the context string
 * ("TLS 1.3, server CertificateVerify" or "... client ..."), a zero byte, then the transcript
 * hash up to and including Certificate.
 */
export function certificateVerifyInput(signer: "server" | "client", transcriptHash: Uint8Array): Uint8Array {
  return concat(CV_PAD, signer === "server" ? CV_SERVER : CV_CLIENT, new Uint8Array([0]), transcriptHash);
}

/**
 * Whether `scheme` may sign a TLS 1.3 CertificateVerify with a key of this kind (RFC 8446 §4.2.3:
 * RSA keys use RSASSA-PSS; PKCS#1 v1.5 is for certificates only).
 */
export function schemeMatchesKey(scheme: SignatureScheme, kind: PublicKey["kind"]): boolean {
  switch (scheme) {
    case "ecdsa_secp256r1_sha256":
      return kind === "ec-p256";
    case "ed25519":
      return kind === "ed25519";
    case "rsa_pss_rsae_sha256":
      return kind === "rsa";
    case "rsa_pkcs1_sha256":
      return false;
  }
}

/** What the levels a connection has left keep instead of a reassembler each (never fed). */
const SPENT_REASSEMBLER = new HandshakeReassembler(0);

/**
 * The sans-IO plumbing shared by client and server: one reassembler per level, the current read
 * level, output and event queues, and fatal-alert latching (after the first alert every call
 * throws it again).
 */
export abstract class HandshakeCore {
  private assemblers: Record<EncryptionLevel, HandshakeReassembler>;
  private outputs: TlsOutput[] = [];
  private events: TlsEvent[] = [];
  private failure: TlsAlert | undefined;
  /** The level we expect the peer's next handshake message at. */
  protected readLevel: EncryptionLevel = "initial";
  /** The clock value of the current call (milliseconds). */
  protected now = 0;
  constructor(maxMessageBytes: number) {
    this.assemblers = {
      initial: new HandshakeReassembler(maxMessageBytes),
      early: new HandshakeReassembler(maxMessageBytes),
      handshake: new HandshakeReassembler(maxMessageBytes),
      application: new HandshakeReassembler(maxMessageBytes),
    };
  }

  /** The alert that ended the handshake, if any. */
  get error(): TlsAlert | undefined {
    return this.failure;
  }

  /** Runs `body`, latching any failure as the connection's fatal alert. */
  protected guard(now: number, body: () => void): void {
    if (this.failure) throw this.failure;
    this.now = now;
    try {
      body();
    } catch (e) {
      this.failure = toAlert(e);
      throw this.failure;
    }
  }

  /**
   * Handshake bytes received in CRYPTO frames at `level`, in order (QUIC reorders by offset).
   * `now` is the current time in milliseconds (used for ticket ages). Throws `TlsAlert`; QUIC
   * closes the connection with CRYPTO_ERROR 0x100 + alert (RFC 9001 §4.8).
   */
  receive(level: EncryptionLevel, data: Uint8Array, now: number): void {
    this.guard(now, () => {
      if (data.length === 0) return;
      if (level === "early") {
        throw alert("unexpected_message", "handshake data in 0-RTT (RFC 9001 §8.3)");
      }
      if (level !== this.readLevel) {
        // QUIC hands us data only at levels we gave it read keys for, and never new bytes at a
        // level we have left (RFC 9001 §4.1.3); anything else is a peer or stack error.
        const when =
          LEVEL_ORDER[level] < LEVEL_ORDER[this.readLevel] ? "after moving on to" : "while still reading";
        throw alert(
          "unexpected_message",
          `handshake data at the ${level} level ${when} ${this.readLevel} (RFC 9001 §4.1.3)`,
        );
      }
      this.assemblers[level].push(data);
      this.drain();
    });
  }

  /** Processes every complete message at the current read level (which handlers may advance). */
  private drain(): void {
    for (;;) {
      const level = this.readLevel;
      const raw = this.assemblers[level].next();
      if (!raw) return;
      const msg = parseHandshakeBody(raw.msgType, raw.body);
      this.handle(msg, raw, level);
    }
  }

  /**
   * Takes over `from`'s plumbing (reassemblers, queues, read level, latched alert), for a lighter
   * object that carries on after the handshake in its place (TlsServer.postHandshake).
   */
  protected adopt(from: HandshakeCore): void {
    this.assemblers = from.assemblers;
    this.outputs = from.outputs;
    this.events = from.events;
    this.failure = from.failure;
    this.readLevel = from.readLevel;
    this.now = from.now;
  }

  /**
   * Once reading at the application level for good: the other levels' reassemblers go (bytes at
   * those levels are refused by `receive` before they reach one), replaced by one shared empty one.
   */
  protected releaseHandshakeLevels(): void {
    if (this.readLevel !== "application") return;
    this.assemblers = {
      initial: SPENT_REASSEMBLER,
      early: SPENT_REASSEMBLER,
      handshake: SPENT_REASSEMBLER,
      application: this.assemblers.application,
    };
  }

  /** Moves the read level forward; bytes left over at the old level are an error (RFC 9001 §4.1.3). */
  protected setReadLevel(level: EncryptionLevel): void {
    const old = this.assemblers[this.readLevel];
    if (old.buffered > 0) {
      throw alert(
        "unexpected_message",
        `${old.buffered} byte(s) of ${this.readLevel} handshake data left over when keys changed`,
      );
    }
    this.readLevel = level;
  }

  /** Handles one parsed message that arrived at `level`. */
  protected abstract handle(msg: HandshakeMessage, raw: RawHandshakeMessage, level: EncryptionLevel): void;

  /** Serializes `msg` and queues it at `level`; returns its bytes (for the transcript). */
  protected send(level: TlsOutput["level"], msg: HandshakeMessage): Uint8Array {
    const bytes = serializeHandshake(msg);
    this.sendRaw(level, bytes);
    return bytes;
  }

  /** Queues already serialized handshake bytes at `level`. */
  protected sendRaw(level: TlsOutput["level"], bytes: Uint8Array): void {
    const last = this.outputs[this.outputs.length - 1];
    if (last && last.level === level) {
      this.outputs[this.outputs.length - 1] = { level, data: concat(last.data, bytes) };
    } else {
      this.outputs.push({ level, data: bytes });
    }
  }

  /** Queues an event. */
  protected emit(ev: TlsEvent): void {
    this.events.push(ev);
  }

  /** The next handshake bytes to send, with their level; undefined when there are none. */
  pollOutput(): TlsOutput | undefined {
    const out = this.outputs.shift();
    // A drained queue is replaced: after shift() the array keeps its grown room for good, and a
    // QUIC connection keeps its TLS object for its whole life.
    if (out !== undefined && this.outputs.length === 0) this.outputs = [];
    return out;
  }

  /** The next event; undefined when there are none. */
  pollEvent(): TlsEvent | undefined {
    const ev = this.events.shift();
    if (ev !== undefined && this.events.length === 0) this.events = []; // as in pollOutput
    return ev;
  }

  /** An unexpected_message alert for `msg` received in `state`. */
  protected unexpected(msg: HandshakeMessage, state: string): TlsAlert {
    const name =
      msg.type === "hello_retry_request" ? "HelloRetryRequest" : handshakeTypeName(handshakeTypeOf(msg));
    return alert("unexpected_message", `${name} received while ${state}`);
  }
}
