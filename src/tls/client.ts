/**
 * The TLS 1.3 client handshake for QUIC (RFC 8446 §4, RFC 9001 §4, §8), sans-IO.
 *
 * ```
 * start(now)                      -> ClientHello @initial
 * receive(initial, ServerHello)   -> secret(handshake, read/write)
 *   (or HelloRetryRequest         -> ClientHello2 @initial)
 * receive(handshake, EE .. Fin)   -> transport_parameters, alpn, secret(application, read/write),
 *                                    Finished @handshake, handshake_complete
 * receive(application, NST)       -> session_ticket
 * ```
 * Given `sessionTicket`, the ClientHello also offers that ticket for resumption (RFC 8446 §2.2,
 * psk_dhe_ke only, so every resumed session still has forward secrecy). When the server selects
 * it, the Certificate and CertificateVerify messages are skipped; `resumed` tells which happened.
 * After each `start`/`receive`, drain `pollOutput()` and `pollEvent()`. Every failure is thrown
 * as a `TlsAlert` (QUIC: CRYPTO_ERROR 0x100 + alert) and latched.
 */
import {
  type CryptoProvider,
  hashLength,
  type KeyShare,
  type NamedGroup,
  type PublicKey,
  type Rng,
  type SignatureScheme,
} from "../crypto/provider.js";
import { bytesEqual } from "../util/bytes.js";
import {
  type Extension,
  ExtensionType,
  extensionCode,
  findExtension,
  hasExtensionCode,
} from "./extensions.js";
import {
  alert,
  certificateVerifyInput,
  type EncryptionLevel,
  HandshakeCore,
  type PeerVerifier,
  type SessionTicket,
  schemeMatchesKey,
} from "./handshake-common.js";
import {
  exportKeyingMaterial,
  finishedVerifyData,
  KeySchedule,
  resumptionPsk,
  Transcript,
  verifyFinished,
} from "./key-schedule.js";
import {
  type CertificateMessage,
  type CertificateRequest,
  type CertificateVerify,
  type ClientHello,
  DEFAULT_MAX_HANDSHAKE_MESSAGE,
  type EncryptedExtensions,
  type Finished,
  type HandshakeMessage,
  type HelloRetryRequest,
  type NewSessionTicket,
  type RawHandshakeMessage,
  type ServerHello,
  serializeHandshake,
} from "./messages.js";
import {
  CIPHER_SUITES,
  type CipherSuite,
  type CipherSuiteName,
  NamedGroupCode,
  namedGroupByCode,
  ProtocolVersion,
  PskKeyExchangeMode,
  SignatureSchemeCode,
  signatureSchemeByCode,
} from "./suites.js";
import { parseCertificate } from "./x509.js";

/** Default cipher suites, in preference order. */
export const DEFAULT_CIPHER_SUITES: readonly CipherSuiteName[] = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
];

/** Default groups, in preference order. */
export const DEFAULT_GROUPS: readonly NamedGroup[] = ["x25519", "secp256r1"];

/**
 * Default signature schemes a client offers. rsa_pkcs1_sha256 is there for certificate
 * signatures only; it is refused in CertificateVerify (RFC 8446 §4.2.3).
 */
export const DEFAULT_CLIENT_SIGNATURE_SCHEMES: readonly SignatureScheme[] = [
  "ecdsa_secp256r1_sha256",
  "ed25519",
  "rsa_pss_rsae_sha256",
  "rsa_pkcs1_sha256",
];

/** Hooks for reproducing published traces (RFC 8448). Never set them in production. */
export interface ClientTestingHooks {
  /** The ClientHello random instead of one drawn from the rng. */
  readonly random?: Uint8Array;
  /** Fixed private keys for the key shares, per group. */
  readonly keySharePrivateKeys?: Partial<Record<NamedGroup, Uint8Array>>;
  /**
   * Rewrites the extension list of the first (`attempt` 1) or the post-HelloRetryRequest
   * (`attempt` 2) ClientHello, given the one we would send, key shares included. Responses are
   * checked against what is actually sent.
   */
  readonly clientHelloExtensions?: (defaults: Extension[], attempt: 1 | 2) => Extension[];
}

/** Client configuration. */
export interface TlsClientConfig {
  readonly provider: CryptoProvider;
  readonly rng: Rng;
  /** The server's name: sent as SNI (RFC 6066) and given to the verifier. */
  readonly serverName?: string;
  /** ALPN protocols in preference order. QUIC requires at least one (RFC 9001 §8.1). */
  readonly alpn: readonly string[];
  /** Our encoded QUIC transport parameters (RFC 9001 §8.2). Required unless `quic` is false. */
  readonly transportParameters?: Uint8Array;
  /**
   * Checks the server's chain (e.g. `createPeerVerifier` of ./verify.ts). The string
   * "insecure-skip-verification" accepts any chain (CertificateVerify is still checked against
   * the leaf's key); the application must opt in to it explicitly.
   */
  readonly verifier: PeerVerifier | "insecure-skip-verification";
  readonly cipherSuites?: readonly CipherSuiteName[];
  /** Groups for supported_groups, in preference order. Default x25519, secp256r1. */
  readonly groups?: readonly NamedGroup[];
  /** Groups we send a key share for up front. Default: the first of `groups` only. */
  readonly keyShareGroups?: readonly NamedGroup[];
  readonly signatureSchemes?: readonly SignatureScheme[];
  /** False for plain TLS 1.3 (tests against RFC 8448): no transport parameters, ALPN optional. */
  readonly quic?: boolean;
  /** Largest handshake message accepted (default 64 KiB). */
  readonly maxHandshakeMessageBytes?: number;
  /**
   * A ticket from an earlier session with this server, offered for resumption (RFC 8446 §4.6.1).
   * It is not offered when it has expired, was issued for another server name, or its suite's
   * hash matches none of our suites; the handshake is then a full one.
   */
  readonly sessionTicket?: SessionTicket;
  /**
   * Offer 0-RTT with `sessionTicket` when the ticket allows it (RFC 8446 §4.2.10; in QUIC its
   * max_early_data_size is 0xffffffff, RFC 9001 §4.6.1) and its ALPN is one of ours: the
   * client_early_traffic_secret comes out as a `secret` event at the `early` level right after
   * the ClientHello, and an `early_data` event later says whether the server accepted it.
   */
  readonly earlyData?: boolean;
  readonly testing?: ClientTestingHooks;
}

/** A ticket the ClientHello offers, with what the binder and the key schedule need. */
interface PskOffer {
  readonly ticket: SessionTicket;
  readonly hash: CipherSuite["hash"];
  /** binder_key, from the Early Secret of the ticket's PSK (RFC 8446 §7.1). */
  readonly binderKey: Uint8Array;
}

type ClientState =
  | "start"
  | "wait_server_hello"
  | "wait_encrypted_extensions"
  | "wait_certificate_or_request"
  | "wait_certificate"
  | "wait_certificate_verify"
  | "wait_finished"
  | "connected";

/**
 * A TLS 1.3 client for QUIC. Call `start(now)`, then feed CRYPTO data with `receive()`; after
 * each call drain `pollOutput()` (bytes to send at a level) and `pollEvent()`.
 */
export class TlsClient extends HandshakeCore {
  private readonly config: TlsClientConfig;
  private readonly provider: CryptoProvider;
  private readonly quic: boolean;
  private readonly suites: readonly CipherSuite[];
  private readonly groups: readonly NamedGroup[];
  private readonly schemes: readonly SignatureScheme[];
  private state: ClientState = "start";
  private readonly transcript: Transcript;
  private readonly keyShares = new Map<number, KeyShare>();
  private clientHello: ClientHello | undefined;
  /** The ClientHello random, kept once `clientHello` is released. */
  private random: Uint8Array | undefined;
  private retried = false;
  private hrrSuite: CipherSuite | undefined;
  private suite: CipherSuite | undefined;
  private schedule: KeySchedule | undefined;
  private clientHandshakeSecret: Uint8Array | undefined;
  private serverHandshakeSecret: Uint8Array | undefined;
  private resumptionSecret: Uint8Array | undefined;
  private exporterSecret: Uint8Array | undefined;
  private alpn: string | undefined;
  private peerTransportParameters: Uint8Array | undefined;
  private peerChain: Uint8Array[] = [];
  private peerKey: PublicKey | undefined;
  private certificateRequestContext: Uint8Array | undefined;
  private pskOffer: PskOffer | undefined;
  private resumedSession = false;
  private earlyDataOffered = false;

  constructor(config: TlsClientConfig) {
    super(config.maxHandshakeMessageBytes ?? DEFAULT_MAX_HANDSHAKE_MESSAGE);
    this.config = config;
    this.provider = config.provider;
    this.quic = config.quic !== false;
    this.suites = (config.cipherSuites ?? DEFAULT_CIPHER_SUITES).map((n) => CIPHER_SUITES[n]);
    this.groups = config.groups ?? DEFAULT_GROUPS;
    this.schemes = config.signatureSchemes ?? DEFAULT_CLIENT_SIGNATURE_SCHEMES;
    if (this.suites.length === 0) throw new RangeError("TlsClient: no cipher suites configured");
    if (this.groups.length === 0) throw new RangeError("TlsClient: no groups configured");
    if (this.quic && config.alpn.length === 0) {
      throw new RangeError("TlsClient: QUIC requires at least one ALPN protocol (RFC 9001 §8.1)");
    }
    if (this.quic && !config.transportParameters) {
      throw new RangeError("TlsClient: QUIC requires transport parameters (RFC 9001 §8.2)");
    }
    this.transcript = new Transcript(config.provider);
  }

  /** The ClientHello random (for NSS key log lines), once the handshake started. */
  get clientRandom(): Uint8Array | undefined {
    return this.clientHello?.random ?? this.random;
  }

  /** True once the handshake is complete. */
  get handshakeComplete(): boolean {
    return this.state === "connected";
  }

  /** The negotiated suite, once the ServerHello is in. */
  get cipherSuite(): CipherSuite | undefined {
    return this.suite;
  }

  /** The negotiated ALPN protocol, once EncryptedExtensions is in. */
  get alpnProtocol(): string | undefined {
    return this.alpn;
  }

  /** True when the server accepted our ticket: a resumed session (known once the ServerHello is in). */
  get resumed(): boolean {
    return this.resumedSession;
  }

  /** Sends the first ClientHello at the initial level. */
  start(now: number): void {
    if (this.state !== "start") throw new Error("TlsClient.start() called twice");
    this.guard(now, () => {
      const shareGroups = this.config.keyShareGroups ?? [this.groups[0]];
      for (const g of shareGroups) this.keyShares.set(NamedGroupCode[g], this.makeKeyShare(g));
      const random = this.config.testing?.random ?? this.config.rng.fill(new Uint8Array(32));
      if (random.length !== 32) throw new RangeError("ClientHello random must be 32 bytes");
      this.pskOffer = this.resumptionOffer(now);
      this.earlyDataOffered = this.pskOffer !== undefined && this.earlyDataAllowed(this.pskOffer.ticket);
      let extensions = this.defaultExtensions();
      if (this.earlyDataOffered) extensions.push({ type: "early_data" });
      if (this.pskOffer) extensions.push(this.pskExtension(this.pskOffer, now));
      if (this.config.testing?.clientHelloExtensions)
        extensions = this.config.testing.clientHelloExtensions(extensions, 1);
      this.clientHello = {
        type: "client_hello",
        legacyVersion: ProtocolVersion.TLS_1_2,
        random,
        legacySessionId: new Uint8Array(0), // no middlebox compatibility mode (RFC 9001 §8.4)
        cipherSuites: this.suites.map((s) => s.code),
        legacyCompressionMethods: new Uint8Array([0]),
        extensions,
      };
      this.sendClientHello();
      this.state = "wait_server_hello";
      if (this.earlyDataOffered) this.emitEarlySecret(this.pskOffer as PskOffer);
    });
  }

  private makeKeyShare(group: NamedGroup): KeyShare {
    const fixed = this.config.testing?.keySharePrivateKeys?.[group];
    return fixed
      ? this.provider.keyShareFromPrivate(group, fixed)
      : this.provider.generateKeyShare(group, this.config.rng);
  }

  private keyShareExtension(): Extension {
    return {
      type: "key_share",
      shares: [...this.keyShares].map(([group, ks]) => ({ group, keyExchange: ks.publicKey })),
    };
  }

  /** The ticket to offer, if `sessionTicket` is usable with this configuration now. */
  private resumptionOffer(now: number): PskOffer | undefined {
    const t = this.config.sessionTicket;
    if (!t) return undefined;
    const age = now - t.receivedAt;
    if (age < 0 || age >= t.lifetime * 1000) return undefined; // RFC 8446 §4.6.1
    // RFC 8446 §4.6.1: resume only with the SNI the ticket was issued under.
    if (t.serverName !== this.config.serverName) return undefined;
    const hash = CIPHER_SUITES[t.suite]?.hash;
    // RFC 8446 §4.2.11: the PSK is only usable with a suite of the same hash.
    if (!hash || !this.suites.some((s) => s.hash === hash)) return undefined;
    const binderKey = new KeySchedule(this.provider, hash, t.psk).binderKey(true);
    return { ticket: t, hash, binderKey };
  }

  /** Whether `ticket` permits 0-RTT for us (RFC 8446 §4.2.10, RFC 9001 §4.6.1). */
  private earlyDataAllowed(ticket: SessionTicket): boolean {
    if (!this.config.earlyData) return false;
    if (this.quic ? ticket.maxEarlyDataSize !== 0xffffffff : ticket.maxEarlyDataSize === 0) return false;
    // The early data is sent under the ALPN of the ticket's session; it must be one we speak.
    if (ticket.alpn === undefined) return !this.quic;
    return this.config.alpn.includes(ticket.alpn);
  }

  /** client_early_traffic_secret from Hash(ClientHello), under the ticket's suite (RFC 8446 §7.1). */
  private emitEarlySecret(offer: PskOffer): void {
    const suite = CIPHER_SUITES[offer.ticket.suite];
    const schedule = new KeySchedule(this.provider, offer.hash, offer.ticket.psk);
    const secret = schedule.clientEarlyTrafficSecret(
      this.transcript.digestWith(new Uint8Array(0), offer.hash),
    );
    this.emit({ type: "secret", level: "early", direction: "write", secret, suite });
  }

  /** pre_shared_key with one identity and a placeholder binder, filled in by `sendClientHello`. */
  private pskExtension(offer: PskOffer, now: number): Extension {
    // RFC 8446 §4.2.11.1: the age in milliseconds plus ticket_age_add, modulo 2^32.
    const obfuscatedTicketAge = (Math.floor(now - offer.ticket.receivedAt) + offer.ticket.ageAdd) >>> 0;
    return {
      type: "pre_shared_key",
      identities: [{ identity: offer.ticket.ticket, obfuscatedTicketAge }],
      binders: [new Uint8Array(hashLength(offer.hash))],
    };
  }

  /**
   * Serializes the current ClientHello, fills in the PSK binder when one is offered (RFC 8446
   * §4.2.11.2: an HMAC, like Finished, under binder_key over the transcript up to the truncated
   * ClientHello, i.e. without its binders list), sends it and adds it to the transcript.
   */
  private sendClientHello(): void {
    const ch = this.clientHello as ClientHello;
    const bytes = serializeHandshake(ch);
    const psk = findExtension(ch.extensions, "pre_shared_key");
    if (psk && this.pskOffer && psk.identities[0]?.identity === this.pskOffer.ticket.ticket) {
      const binderLen = hashLength(this.pskOffer.hash);
      const truncated = bytes.subarray(
        0,
        bytes.length - 2 - psk.binders.reduce((n, b) => n + 1 + b.length, 0),
      );
      const binder = finishedVerifyData(
        this.provider,
        this.pskOffer.hash,
        this.pskOffer.binderKey,
        this.transcript.digestWith(truncated, this.transcript.hash ?? this.pskOffer.hash),
      );
      // The offered binder is the last field of the message (pre_shared_key comes last).
      bytes.set(binder, bytes.length - binderLen);
      const binders = [binder, ...psk.binders.slice(1)];
      this.clientHello = {
        ...ch,
        extensions: ch.extensions.map((e) => (e.type === "pre_shared_key" ? { ...e, binders } : e)),
      };
    }
    this.sendRaw("initial", bytes);
    this.transcript.update(bytes);
  }

  private defaultExtensions(): Extension[] {
    const c = this.config;
    const exts: Extension[] = [];
    if (c.serverName !== undefined) exts.push({ type: "server_name", hostName: c.serverName });
    exts.push({ type: "supported_groups", groups: this.groups.map((g) => NamedGroupCode[g]) });
    exts.push({ type: "signature_algorithms", schemes: this.schemes.map((s) => SignatureSchemeCode[s]) });
    exts.push({ type: "supported_versions", versions: [ProtocolVersion.TLS_1_3] });
    exts.push(this.keyShareExtension());
    if (c.alpn.length > 0) exts.push({ type: "alpn", protocols: [...c.alpn] });
    if (this.quic)
      exts.push({ type: "quic_transport_parameters", data: c.transportParameters as Uint8Array });
    exts.push({ type: "psk_key_exchange_modes", modes: [PskKeyExchangeMode.psk_dhe_ke] });
    return exts;
  }

  protected handle(msg: HandshakeMessage, raw: RawHandshakeMessage, level: EncryptionLevel): void {
    switch (this.state) {
      case "wait_server_hello":
        if (msg.type === "server_hello") {
          this.onServerHello(msg, raw);
          return;
        }
        if (msg.type === "hello_retry_request") {
          this.onHelloRetryRequest(msg, raw);
          return;
        }
        throw this.unexpected(msg, "waiting for ServerHello");
      case "wait_encrypted_extensions":
        if (msg.type === "encrypted_extensions") {
          this.onEncryptedExtensions(msg, raw);
          return;
        }
        throw this.unexpected(msg, "waiting for EncryptedExtensions");
      case "wait_certificate_or_request":
        if (msg.type === "certificate_request") {
          this.onCertificateRequest(msg, raw);
          return;
        }
        if (msg.type === "certificate") {
          this.onCertificate(msg, raw);
          return;
        }
        throw this.unexpected(msg, "waiting for Certificate");
      case "wait_certificate":
        if (msg.type === "certificate") {
          this.onCertificate(msg, raw);
          return;
        }
        throw this.unexpected(msg, "waiting for Certificate");
      case "wait_certificate_verify":
        if (msg.type === "certificate_verify") {
          this.onCertificateVerify(msg, raw);
          return;
        }
        throw this.unexpected(msg, "waiting for CertificateVerify");
      case "wait_finished":
        if (msg.type === "finished") {
          this.onFinished(msg, raw);
          return;
        }
        throw this.unexpected(msg, "waiting for the server's Finished");
      case "connected":
        if (msg.type === "new_session_ticket" && level === "application") {
          this.onNewSessionTicket(msg);
          return;
        }
        if (msg.type === "key_update") {
          throw alert("unexpected_message", "KeyUpdate is forbidden in QUIC (RFC 9001 §6)");
        }
        throw this.unexpected(msg, "connected");
      case "start":
        throw this.unexpected(msg, "not started");
    }
  }

  /** Codes of the extensions we sent in the (latest) ClientHello. */
  private offered(code: number): boolean {
    return this.clientHello !== undefined && hasExtensionCode(this.clientHello.extensions, code);
  }

  /** RFC 8446 §4.2: a response extension we did not ask for is unsupported_extension. */
  private checkSolicited(exts: readonly Extension[], where: string, exempt: readonly number[] = []): void {
    for (const e of exts) {
      const code = extensionCode(e);
      if (!exempt.includes(code) && !this.offered(code)) {
        throw alert("unsupported_extension", `${where} carries extension ${code}, which we did not offer`);
      }
    }
  }

  private negotiatedVersion(exts: readonly Extension[], where: string): void {
    const sv = findExtension(exts, "selected_version");
    if (!sv) {
      throw alert(
        "protocol_version",
        `${where} does not select TLS 1.3 (no supported_versions); we speak only TLS 1.3`,
      );
    }
    if (sv.version !== ProtocolVersion.TLS_1_3) {
      throw alert(
        "illegal_parameter",
        `${where} selects version 0x${sv.version.toString(16)}, which we did not offer`,
      );
    }
  }

  private offeredSuite(code: number, where: string): CipherSuite {
    const suite = this.suites.find((s) => s.code === code);
    if (!suite)
      throw alert(
        "illegal_parameter",
        `${where} selects cipher suite 0x${code.toString(16)}, which we did not offer`,
      );
    return suite;
  }

  private checkCommonHello(msg: ServerHello | HelloRetryRequest, where: string): void {
    const ch = this.clientHello as ClientHello;
    if (!bytesEqual(msg.legacySessionIdEcho, ch.legacySessionId)) {
      throw alert("illegal_parameter", `${where} legacy_session_id_echo does not match (RFC 8446 §4.1.3)`);
    }
    if (msg.legacyCompressionMethod !== 0) {
      throw alert(
        "illegal_parameter",
        `${where} legacy_compression_method is ${msg.legacyCompressionMethod}, not 0`,
      );
    }
  }

  private onHelloRetryRequest(msg: HelloRetryRequest, raw: RawHandshakeMessage): void {
    if (this.retried) throw alert("unexpected_message", "a second HelloRetryRequest (RFC 8446 §4.1.4)");
    this.retried = true;
    this.negotiatedVersion(msg.extensions, "HelloRetryRequest");
    this.checkCommonHello(msg, "HelloRetryRequest");
    const suite = this.offeredSuite(msg.cipherSuite, "HelloRetryRequest");
    this.checkSolicited(msg.extensions, "HelloRetryRequest", [ExtensionType.cookie]);
    const ks = findExtension(msg.extensions, "key_share_hrr");
    const cookie = findExtension(msg.extensions, "cookie");
    if (!ks && !cookie) {
      throw alert(
        "illegal_parameter",
        "HelloRetryRequest would not change the ClientHello (RFC 8446 §4.1.4)",
      );
    }
    const ch1 = this.clientHello as ClientHello;
    if (ks) {
      const group = namedGroupByCode(ks.selectedGroup);
      if (!group || !this.groups.includes(group)) {
        throw alert(
          "illegal_parameter",
          `HelloRetryRequest asks for group 0x${ks.selectedGroup.toString(16)}, which we did not offer`,
        );
      }
      if (this.keyShares.has(ks.selectedGroup)) {
        throw alert(
          "illegal_parameter",
          `HelloRetryRequest asks for ${group}, for which we already sent a key share`,
        );
      }
      this.keyShares.clear();
      this.keyShares.set(ks.selectedGroup, this.makeKeyShare(group));
    }
    this.hrrSuite = suite;
    this.transcript.setHash(suite.hash);
    this.transcript.replaceWithMessageHash();
    this.transcript.update(raw.raw);
    // ClientHello2 (RFC 8446 §4.1.2): the same, with the new key_share, the cookie, no early_data.
    const extensions: Extension[] = [];
    for (const e of ch1.extensions) {
      if (e.type === "early_data" || e.type === "cookie") continue;
      if (e.type === "key_share" && ks) extensions.push(this.keyShareExtension());
      else if (e.type !== "pre_shared_key") extensions.push(e);
    }
    if (cookie) extensions.push(cookie);
    // RFC 8446 §4.1.4: keep offering the ticket only if its hash fits the suite the server chose;
    // pre_shared_key stays the last extension, its binder now covers ClientHello1 and the HRR.
    if (this.pskOffer && this.pskOffer.hash !== suite.hash) this.pskOffer = undefined;
    if (this.pskOffer && this.offered(ExtensionType.pre_shared_key))
      extensions.push(this.pskExtension(this.pskOffer, this.now));
    const hook = this.config.testing?.clientHelloExtensions;
    this.clientHello = { ...ch1, extensions: hook ? hook(extensions, 2) : extensions };
    this.sendClientHello();
  }

  private onServerHello(msg: ServerHello, raw: RawHandshakeMessage): void {
    this.negotiatedVersion(msg.extensions, "ServerHello");
    this.checkCommonHello(msg, "ServerHello");
    const suite = this.offeredSuite(msg.cipherSuite, "ServerHello");
    if (this.hrrSuite && this.hrrSuite !== suite) {
      throw alert(
        "illegal_parameter",
        "ServerHello cipher suite differs from the HelloRetryRequest's (RFC 8446 §4.1.4)",
      );
    }
    this.checkSolicited(msg.extensions, "ServerHello");
    const selected = findExtension(msg.extensions, "pre_shared_key_selected");
    let psk: Uint8Array | undefined;
    if (selected) {
      const offer = this.pskOffer;
      const offeredIds = findExtension((this.clientHello as ClientHello).extensions, "pre_shared_key");
      if (!offeredIds || selected.selectedIdentity >= offeredIds.identities.length) {
        throw alert(
          "illegal_parameter",
          `ServerHello selects PSK identity ${selected.selectedIdentity}, which we did not offer (RFC 8446 §4.2.11)`,
        );
      }
      if (!offer || suite.hash !== offer.hash) {
        throw alert(
          "illegal_parameter",
          "ServerHello selects a PSK with a cipher suite of another hash (RFC 8446 §4.2.11)",
        );
      }
      psk = offer.ticket.psk;
    }
    const ks = findExtension(msg.extensions, "key_share_server");
    if (!ks) {
      // We offer psk_dhe_ke only, so a key share is required either way (RFC 8446 §4.2.9).
      throw alert("missing_extension", "ServerHello has no key_share (RFC 8446 §9.2)");
    }
    const share = this.keyShares.get(ks.share.group);
    if (!share) {
      throw alert(
        "illegal_parameter",
        `ServerHello key share is for group 0x${ks.share.group.toString(16)}, which we sent no share for`,
      );
    }
    const ecdhe = share.sharedSecret(ks.share.keyExchange);
    this.suite = suite;
    this.transcript.setHash(suite.hash);
    this.transcript.update(raw.raw);
    const schedule = new KeySchedule(this.provider, suite.hash, psk);
    this.schedule = schedule;
    this.resumedSession = psk !== undefined;
    schedule.deriveHandshakeSecret(ecdhe);
    const helloHash = this.transcript.digest();
    this.clientHandshakeSecret = schedule.clientHandshakeTrafficSecret(helloHash);
    this.serverHandshakeSecret = schedule.serverHandshakeTrafficSecret(helloHash);
    this.keyShares.clear();
    this.emit({
      type: "secret",
      level: "handshake",
      direction: "read",
      secret: this.serverHandshakeSecret,
      suite,
    });
    this.emit({
      type: "secret",
      level: "handshake",
      direction: "write",
      secret: this.clientHandshakeSecret,
      suite,
    });
    this.setReadLevel("handshake");
    this.state = "wait_encrypted_extensions";
  }

  private onEncryptedExtensions(msg: EncryptedExtensions, raw: RawHandshakeMessage): void {
    this.checkSolicited(msg.extensions, "EncryptedExtensions");
    const alpn = findExtension(msg.extensions, "alpn");
    if (alpn) {
      // RFC 7301 §3.1: the server answers with exactly one protocol from our list.
      if (alpn.protocols.length !== 1) {
        throw alert(
          "illegal_parameter",
          `server ALPN response names ${alpn.protocols.length} protocols, not one`,
        );
      }
      const p = alpn.protocols[0];
      if (!this.config.alpn.includes(p)) {
        throw alert(
          "no_application_protocol",
          `server selected ALPN ${JSON.stringify(p)}, which we did not offer (RFC 9001 §8.1)`,
        );
      }
      this.alpn = p;
    } else if (this.quic) {
      throw alert("no_application_protocol", "server negotiated no application protocol (RFC 9001 §8.1)");
    }
    const tp = findExtension(msg.extensions, "quic_transport_parameters");
    if (this.quic && !tp) {
      throw alert("missing_extension", "EncryptedExtensions lacks quic_transport_parameters (RFC 9001 §8.2)");
    }
    if (tp) {
      this.peerTransportParameters = tp.data;
      this.emit({ type: "transport_parameters", data: tp.data });
    }
    if (this.alpn !== undefined) this.emit({ type: "alpn", protocol: this.alpn });
    const early = findExtension(msg.extensions, "early_data") !== undefined;
    if (early) {
      // RFC 8446 §4.2.10: accepted early data implies the offered ticket, its ALPN and suite.
      const ticket = this.pskOffer?.ticket;
      if (!this.resumedSession || !ticket) {
        throw alert("illegal_parameter", "the server accepted early data without resuming our ticket");
      }
      if (this.alpn !== ticket.alpn || this.suite?.name !== ticket.suite) {
        throw alert(
          "illegal_parameter",
          "the server accepted early data with another ALPN or cipher suite than the ticket's (RFC 8446 §4.2.10)",
        );
      }
    }
    if (this.earlyDataOffered) this.emit({ type: "early_data", accepted: early });
    this.transcript.update(raw.raw);
    // RFC 8446 §2.2: a resumed session is authenticated by the PSK; no Certificate follows.
    this.state = this.resumedSession ? "wait_finished" : "wait_certificate_or_request";
  }

  private onCertificateRequest(msg: CertificateRequest, raw: RawHandshakeMessage): void {
    if (!findExtension(msg.extensions, "signature_algorithms")) {
      throw alert("missing_extension", "CertificateRequest lacks signature_algorithms (RFC 8446 §4.3.2)");
    }
    // We have no client certificate: we answer with an empty Certificate (RFC 8446 §4.4.2).
    this.certificateRequestContext = msg.requestContext;
    this.transcript.update(raw.raw);
    this.state = "wait_certificate";
  }

  private onCertificate(msg: CertificateMessage, raw: RawHandshakeMessage): void {
    if (msg.requestContext.length !== 0) {
      throw alert(
        "illegal_parameter",
        "server Certificate has a non-empty certificate_request_context (RFC 8446 §4.4.2)",
      );
    }
    if (msg.entries.length === 0) {
      throw alert("decode_error", "server sent an empty Certificate message (RFC 8446 §4.4.2.4)");
    }
    for (const e of msg.entries) {
      for (const x of e.extensions) {
        if (!this.offered(extensionCode(x))) {
          throw alert(
            "unsupported_extension",
            `certificate entry carries extension ${extensionCode(x)}, which we did not offer`,
          );
        }
      }
    }
    this.peerChain = msg.entries.map((e) => e.data);
    const verifier = this.config.verifier;
    const leaf =
      verifier === "insecure-skip-verification"
        ? parseCertificate(this.peerChain[0], "the server's certificate")
        : verifier.verify(this.peerChain, this.config.serverName);
    if (!leaf.publicKey) {
      throw alert(
        "unsupported_certificate",
        `the server's certificate has a key we cannot use (${leaf.publicKeyAlgorithm})`,
      );
    }
    this.peerKey = leaf.publicKey;
    this.transcript.update(raw.raw);
    this.state = "wait_certificate_verify";
  }

  private onCertificateVerify(msg: CertificateVerify, raw: RawHandshakeMessage): void {
    const scheme = signatureSchemeByCode(msg.algorithm);
    if (!scheme || !this.schemes.includes(scheme)) {
      throw alert(
        "illegal_parameter",
        `CertificateVerify uses signature scheme 0x${msg.algorithm.toString(16)}, which we did not offer`,
      );
    }
    const key = this.peerKey as PublicKey;
    if (!schemeMatchesKey(scheme, key.kind)) {
      throw alert(
        "illegal_parameter",
        `CertificateVerify uses ${scheme}, which does not fit the certificate's ${key.kind} key`,
      );
    }
    const input = certificateVerifyInput("server", this.transcript.digest());
    if (!this.provider.verify(scheme, key, input, msg.signature)) {
      throw alert(
        "decrypt_error",
        `the server's CertificateVerify ${scheme} signature does not verify (RFC 8446 §4.4.3)`,
      );
    }
    this.transcript.update(raw.raw);
    this.state = "wait_finished";
  }

  private onFinished(msg: Finished, raw: RawHandshakeMessage): void {
    const suite = this.suite as CipherSuite;
    const schedule = this.schedule as KeySchedule;
    if (msg.verifyData.length !== schedule.hashLength) {
      throw alert(
        "decode_error",
        `Finished verify_data is ${msg.verifyData.length} bytes, not ${schedule.hashLength}`,
      );
    }
    const ok = verifyFinished(
      this.provider,
      suite.hash,
      this.serverHandshakeSecret as Uint8Array,
      this.transcript.digest(),
      msg.verifyData,
    );
    if (!ok) throw alert("decrypt_error", "the server's Finished does not verify (RFC 8446 §4.4.4)");
    this.transcript.update(raw.raw);
    schedule.deriveMasterSecret();
    const serverFinishedHash = this.transcript.digest();
    const clientApp = schedule.clientApplicationTrafficSecret(serverFinishedHash);
    const serverApp = schedule.serverApplicationTrafficSecret(serverFinishedHash);
    this.exporterSecret = schedule.exporterMasterSecret(serverFinishedHash);
    this.emit({ type: "secret", level: "application", direction: "read", secret: serverApp, suite });
    if (this.certificateRequestContext !== undefined) {
      const empty = this.send("handshake", {
        type: "certificate",
        requestContext: this.certificateRequestContext,
        entries: [],
      });
      this.transcript.update(empty);
    }
    const verifyData = finishedVerifyData(
      this.provider,
      suite.hash,
      this.clientHandshakeSecret as Uint8Array,
      this.transcript.digest(),
    );
    this.transcript.update(this.send("handshake", { type: "finished", verifyData }));
    this.resumptionSecret = schedule.resumptionMasterSecret(this.transcript.digest());
    this.emit({ type: "secret", level: "application", direction: "write", secret: clientApp, suite });
    this.setReadLevel("application");
    this.state = "connected";
    this.emit({
      type: "handshake_complete",
      suite,
      alpn: this.alpn,
      serverName: this.config.serverName,
      peerCertificates: this.peerChain,
      resumed: this.resumedSession,
    });
    // What only the handshake needed goes (memory per connection); NewSessionTicket processing
    // uses the suite, ALPN, transport parameters and the resumption secret, which stay.
    this.transcript.release();
    this.random = this.clientHello?.random;
    this.clientHello = undefined;
    this.schedule = undefined;
    this.clientHandshakeSecret = undefined;
    this.serverHandshakeSecret = undefined;
    this.peerChain = [];
    this.peerKey = undefined;
    this.pskOffer = undefined;
  }

  private onNewSessionTicket(msg: NewSessionTicket): void {
    const suite = this.suite as CipherSuite;
    if (msg.lifetime > 604800) {
      throw alert("illegal_parameter", `ticket lifetime ${msg.lifetime}s exceeds 7 days (RFC 8446 §4.6.1)`);
    }
    const ed = findExtension(msg.extensions, "early_data_max");
    const psk = resumptionPsk(this.provider, suite.hash, this.resumptionSecret as Uint8Array, msg.nonce);
    if (msg.lifetime === 0) return; // "the ticket should be discarded immediately"
    this.emit({
      type: "session_ticket",
      ticket: {
        ticket: msg.ticket,
        psk,
        suite: suite.name,
        alpn: this.alpn,
        serverName: this.config.serverName,
        receivedAt: this.now,
        lifetime: msg.lifetime,
        ageAdd: msg.ageAdd,
        maxEarlyDataSize: ed?.maxEarlyDataSize ?? 0,
        peerTransportParameters: this.peerTransportParameters,
      },
    });
  }

  /** TLS-Exporter (RFC 8446 §7.5), available once the handshake is complete. */
  exportKeyingMaterial(label: string, context: Uint8Array, length: number): Uint8Array {
    if (!this.exporterSecret || !this.suite)
      throw new Error("exporter not available before the handshake completes");
    return exportKeyingMaterial(this.provider, this.suite.hash, this.exporterSecret, label, context, length);
  }
}
