/**
 * The TLS 1.3 server handshake for QUIC (RFC 8446 §4, RFC 9001 §4, §8), sans-IO.
 *
 * ```
 * receive(initial, ClientHello) -> ServerHello @initial, secret(handshake, write/read),
 *                                  EE, Certificate, CertificateVerify, Finished @handshake,
 *                                  secret(application, write), transport_parameters, alpn
 *   (or HelloRetryRequest @initial when no acceptable key share was sent; then ClientHello2)
 * receive(handshake, Finished)  -> secret(application, read), handshake_complete,
 *                                  NewSessionTicket @application, ticket_issued
 * ```
 * A ClientHello that offers one of our tickets (pre_shared_key, psk_dhe_ke) with a valid binder
 * resumes that session (RFC 8446 §2.2): the ServerHello selects the PSK, and Certificate and
 * CertificateVerify are left out.
 * After each `receive`, drain `pollOutput()` and `pollEvent()`. Every failure is thrown as a
 * `TlsAlert` (QUIC: CRYPTO_ERROR 0x100 + alert) and latched.
 */
import type { CryptoProvider, NamedGroup, PrivateKey, Rng, SignatureScheme } from "../crypto/provider.js";
import { bytesEqual, constantTimeEqual } from "../util/bytes.js";
import type { TlsAlert } from "./alert.js";
import { DEFAULT_CIPHER_SUITES, DEFAULT_GROUPS } from "./client.js";
import { type Extension, findExtension, type KeyShareEntry } from "./extensions.js";
import {
  alert,
  certificateVerifyInput,
  type EncryptionLevel,
  HandshakeCore,
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
  type ClientHello,
  DEFAULT_MAX_HANDSHAKE_MESSAGE,
  type Finished,
  type HandshakeMessage,
  type RawHandshakeMessage,
} from "./messages.js";
import {
  CIPHER_SUITES,
  type CipherSuite,
  type CipherSuiteName,
  NamedGroupCode,
  ProtocolVersion,
  PskKeyExchangeMode,
  SignatureSchemeCode,
} from "./suites.js";
import { TicketKeys, type TicketState } from "./ticket.js";

/** Signature schemes a server signs CertificateVerify with, in preference order. */
export const DEFAULT_SERVER_SIGNATURE_SCHEMES: readonly SignatureScheme[] = [
  "ecdsa_secp256r1_sha256",
  "ed25519",
  "rsa_pss_rsae_sha256",
];

/** Default ticket lifetime: one day (RFC 8446 §4.6.1 allows up to 7). */
export const DEFAULT_TICKET_LIFETIME = 86400;

/** Server configuration. */
export interface TlsServerConfig {
  readonly provider: CryptoProvider;
  readonly rng: Rng;
  /** Our chain, leaf first, DER. */
  readonly certificateChain: readonly Uint8Array[];
  /** The leaf's private key. */
  readonly privateKey: PrivateKey;
  /**
   * ALPN: our protocols in preference order (we pick the first the client offers), or a function
   * choosing from the client's list. No choice is no_application_protocol (RFC 9001 §8.1).
   */
  readonly alpn: readonly string[] | ((offered: readonly string[]) => string | undefined);
  /** Our encoded QUIC transport parameters (RFC 9001 §8.2). Required unless `quic` is false. */
  readonly transportParameters?: Uint8Array;
  /** Cipher suites in our preference order. */
  readonly cipherSuites?: readonly CipherSuiteName[];
  /** Groups in our preference order. */
  readonly groups?: readonly NamedGroup[];
  /** Schemes we may sign CertificateVerify with, in preference order. */
  readonly signatureSchemes?: readonly SignatureScheme[];
  /** False for plain TLS 1.3: no transport parameters, ALPN optional. */
  readonly quic?: boolean;
  /**
   * Ticket encryption key, shared by all connections of an endpoint so tickets resume anywhere.
   * Undefined: a key of this connection only. False: issue no tickets.
   */
  readonly ticketKeys?: TicketKeys | false;
  /** Ticket lifetime in seconds (default one day, at most 604800). */
  readonly ticketLifetime?: number;
  /** Tickets to send after the handshake (default 1). */
  readonly ticketCount?: number;
  /** max_early_data_size to advertise in tickets (default 0: no 0-RTT). */
  readonly maxEarlyDataSize?: number;
  /** Opaque bytes sealed into each ticket (the QUIC layer's 0-RTT state). */
  readonly ticketAppData?: Uint8Array;
  /**
   * Accept 0-RTT (RFC 8446 §4.2.10) from a resumed ticket whose sealed `ticketAppData` this
   * function approves (QUIC: the transport limits the client remembered still hold, RFC 9000
   * §7.4.1). Absent: early data is always declined. Even when it approves, early data is
   * declined unless the ticket allowed it, ALPN and suite match the ticket's, the ticket age is
   * within {@link EARLY_DATA_WINDOW_MS} of what the client claims, and the ClientHello is not a
   * replay (TicketKeys.claimEarlyData, RFC 8446 §8.2).
   */
  readonly acceptEarlyData?: (ticketAppData: Uint8Array) => boolean;
  /** Put a cookie in HelloRetryRequest and require it back (RFC 8446 §4.2.2). */
  readonly helloRetryCookie?: boolean;
  /** Largest handshake message accepted (default 64 KiB). */
  readonly maxHandshakeMessageBytes?: number;
}

type ServerState = "wait_client_hello" | "wait_client_hello_2" | "wait_finished" | "connected";

/** What a ClientHello negotiates. */
interface Negotiated {
  readonly suite: CipherSuite;
  readonly scheme: SignatureScheme;
  readonly group: NamedGroup;
  /** The client's share for `group`, or undefined when we must ask for one (HelloRetryRequest). */
  readonly clientShare: KeyShareEntry | undefined;
  readonly alpn: string | undefined;
  readonly transportParameters: Uint8Array | undefined;
  readonly serverName: string | undefined;
  /** The offered ticket we resume, when there is one (RFC 8446 §4.2.11). */
  readonly psk?: {
    readonly identity: number;
    readonly state: TicketState;
    readonly binder: Uint8Array;
    readonly obfuscatedAge: number;
  };
}

/** Freshness window of 0-RTT ClientHellos, and how long their binders are remembered (RFC 8446 §8.3). */
export const EARLY_DATA_WINDOW_MS = 10_000;

/** Hash of each cipher suite, by code point. */
const CIPHER_SUITE_HASH = new Map(Object.values(CIPHER_SUITES).map((s) => [s.code, s.hash]));

/** The default suites, and the default schemes by key kind: shared, not copied per connection. */
const DEFAULT_SUITES: readonly CipherSuite[] = DEFAULT_CIPHER_SUITES.map((n) => CIPHER_SUITES[n]);
const defaultSchemes = new Map<PrivateKey["kind"], readonly SignatureScheme[]>();
function defaultSchemesFor(kind: PrivateKey["kind"]): readonly SignatureScheme[] {
  let s = defaultSchemes.get(kind);
  if (!s) {
    s = DEFAULT_SERVER_SIGNATURE_SCHEMES.filter((x) => schemeMatchesKey(x, kind));
    defaultSchemes.set(kind, s);
  }
  return s;
}

/**
 * Once connected, every handshake message from a QUIC client is refused: KeyUpdate is forbidden
 * (RFC 9001 §6) and nothing else may come (no post-handshake authentication was asked for).
 */
function refuseWhenConnected(
  msg: HandshakeMessage,
  level: EncryptionLevel,
  unexpected: (msg: HandshakeMessage, state: string) => TlsAlert,
): TlsAlert {
  if (msg.type === "key_update")
    return alert("unexpected_message", "KeyUpdate is forbidden in QUIC (RFC 9001 §6)");
  return unexpected(msg, `connected (at the ${level} level)`);
}

/** At most this many offered identities are tried (each costs an AEAD open). */
const MAX_PSK_IDENTITIES_TRIED = 4;

/**
 * A TLS 1.3 server for QUIC. Feed CRYPTO data with `receive()`; after each call drain
 * `pollOutput()` (bytes to send at a level) and `pollEvent()`.
 */
export class TlsServer extends HandshakeCore {
  private config: TlsServerConfig;
  private readonly provider: CryptoProvider;
  private readonly quic: boolean;
  private readonly suites: readonly CipherSuite[];
  private readonly groups: readonly NamedGroup[];
  private readonly schemes: readonly SignatureScheme[];
  private readonly ticketKeys: TicketKeys | undefined;
  private state: ServerState = "wait_client_hello";
  private readonly transcript: Transcript;
  private clientHello1: ClientHello | undefined;
  /** The ClientHello random, kept once `clientHello1` is released. */
  private random: Uint8Array | undefined;
  private hrr:
    | { readonly suite: CipherSuite; readonly group: NamedGroup; readonly cookie?: Uint8Array }
    | undefined;
  private negotiated: Negotiated | undefined;
  private schedule: KeySchedule | undefined;
  private clientHandshakeSecret: Uint8Array | undefined;
  private clientApplicationSecret: Uint8Array | undefined;
  private resumptionSecret: Uint8Array | undefined;
  private exporterSecret: Uint8Array | undefined;
  private ticketsIssued = 0;

  constructor(config: TlsServerConfig) {
    super(config.maxHandshakeMessageBytes ?? DEFAULT_MAX_HANDSHAKE_MESSAGE);
    this.config = config;
    this.provider = config.provider;
    this.quic = config.quic !== false;
    this.suites = config.cipherSuites?.map((n) => CIPHER_SUITES[n]) ?? DEFAULT_SUITES;
    this.groups = config.groups ?? DEFAULT_GROUPS;
    this.schemes = config.signatureSchemes
      ? config.signatureSchemes.filter((s) => schemeMatchesKey(s, config.privateKey.kind))
      : defaultSchemesFor(config.privateKey.kind);
    if (config.certificateChain.length === 0) throw new RangeError("TlsServer: empty certificate chain");
    if (this.schemes.length === 0) {
      throw new RangeError(
        `TlsServer: no configured signature scheme can sign with a ${config.privateKey.kind} key`,
      );
    }
    if (this.quic && !config.transportParameters) {
      throw new RangeError("TlsServer: QUIC requires transport parameters (RFC 9001 §8.2)");
    }
    const lifetime = config.ticketLifetime ?? DEFAULT_TICKET_LIFETIME;
    if (lifetime < 0 || lifetime > 604800)
      throw new RangeError("TlsServer: ticket lifetime must be 0..604800 s");
    this.ticketKeys =
      config.ticketKeys === false
        ? undefined
        : (config.ticketKeys ?? TicketKeys.generate(config.provider, config.rng));
    this.transcript = new Transcript(config.provider);
  }

  /** The client's ClientHello random (for NSS key log lines), once received. */
  get clientRandom(): Uint8Array | undefined {
    return this.clientHello1?.random ?? this.random;
  }

  /** True once the client's Finished has been verified. */
  get handshakeComplete(): boolean {
    return this.state === "connected";
  }

  /** The negotiated suite, once the ClientHello is in. */
  get cipherSuite(): CipherSuite | undefined {
    return this.negotiated?.suite;
  }

  /** The negotiated ALPN protocol. */
  get alpnProtocol(): string | undefined {
    return this.negotiated?.alpn;
  }

  /** The SNI the client sent. */
  get serverName(): string | undefined {
    return this.negotiated?.serverName;
  }

  protected handle(msg: HandshakeMessage, raw: RawHandshakeMessage, level: EncryptionLevel): void {
    switch (this.state) {
      case "wait_client_hello":
        if (msg.type === "client_hello") {
          this.onClientHello(msg, raw);
          return;
        }
        throw this.unexpected(msg, "waiting for ClientHello");
      case "wait_client_hello_2":
        if (msg.type === "client_hello") {
          this.onClientHello2(msg, raw);
          return;
        }
        throw this.unexpected(msg, "waiting for the second ClientHello");
      case "wait_finished":
        if (msg.type === "finished") {
          this.onFinished(msg, raw);
          return;
        }
        throw this.unexpected(msg, "waiting for the client's Finished");
      case "connected":
        throw refuseWhenConnected(msg, level, (m, state) => this.unexpected(m, state));
    }
  }

  /**
   * What QUIC keeps of this server once connected and its output is drained (memory per idle
   * connection): an object that goes on refusing handshake messages exactly as this one would.
   * This one must not be used afterwards. Tickets were issued at completion; the exporter and
   * `sendSessionTicket` are not available on the returned object.
   */
  postHandshake(): ConnectedTlsServer {
    if (this.state !== "connected") throw new Error("postHandshake() before the handshake completed");
    return new ConnectedTlsServer(this, (this.negotiated as Negotiated).suite);
  }

  /** Negotiates everything a ClientHello decides, or throws the alert that refuses it. */
  private negotiate(ch: ClientHello): Negotiated {
    const sv = findExtension(ch.extensions, "supported_versions");
    if (!sv?.versions.includes(ProtocolVersion.TLS_1_3)) {
      throw alert(
        "protocol_version",
        "the client does not offer TLS 1.3, the only version we speak (RFC 8446 §4.2.1)",
      );
    }
    if (ch.legacyCompressionMethods.length !== 1 || ch.legacyCompressionMethods[0] !== 0) {
      throw alert("illegal_parameter", "legacy_compression_methods must be exactly [null] (RFC 8446 §4.1.2)");
    }
    if (this.quic && ch.legacySessionId.length !== 0) {
      throw alert("illegal_parameter", "a QUIC client must not use a legacy_session_id (RFC 9001 §8.4)");
    }
    if (
      findExtension(ch.extensions, "pre_shared_key") &&
      !findExtension(ch.extensions, "psk_key_exchange_modes")
    ) {
      throw alert(
        "missing_extension",
        "pre_shared_key offered without psk_key_exchange_modes (RFC 8446 §4.2.9)",
      );
    }
    const suite = this.suites.find((s) => ch.cipherSuites.includes(s.code));
    if (!suite) throw alert("handshake_failure", "no cipher suite in common with the client");

    const sigalgs = findExtension(ch.extensions, "signature_algorithms");
    if (!sigalgs) throw alert("missing_extension", "ClientHello lacks signature_algorithms (RFC 8446 §9.2)");
    const scheme = this.schemes.find((s) => sigalgs.schemes.includes(SignatureSchemeCode[s]));
    if (!scheme) {
      throw alert(
        "handshake_failure",
        `the client accepts no signature scheme our ${this.config.privateKey.kind} key can make`,
      );
    }

    const groupsExt = findExtension(ch.extensions, "supported_groups");
    const keyShare = findExtension(ch.extensions, "key_share");
    if (!groupsExt) throw alert("missing_extension", "ClientHello lacks supported_groups (RFC 8446 §9.2)");
    if (!keyShare) throw alert("missing_extension", "ClientHello lacks key_share (RFC 8446 §9.2)");
    const seen = new Set<number>();
    for (const s of keyShare.shares) {
      if (seen.has(s.group))
        throw alert(
          "illegal_parameter",
          `two key shares for group 0x${s.group.toString(16)} (RFC 8446 §4.2.8)`,
        );
      seen.add(s.group);
      if (!groupsExt.groups.includes(s.group)) {
        throw alert(
          "illegal_parameter",
          `key share for group 0x${s.group.toString(16)}, which is not in supported_groups (RFC 8446 §4.2.8)`,
        );
      }
    }
    const mutual = this.groups.filter((g) => groupsExt.groups.includes(NamedGroupCode[g]));
    if (mutual.length === 0)
      throw alert("handshake_failure", "no key exchange group in common with the client");
    let group = mutual[0];
    let clientShare: KeyShareEntry | undefined;
    for (const g of mutual) {
      const s = keyShare.shares.find((e) => e.group === NamedGroupCode[g]);
      if (s) {
        group = g;
        clientShare = s;
        break;
      }
    }

    let alpn: string | undefined;
    const alpnExt = findExtension(ch.extensions, "alpn");
    if (alpnExt) {
      const pick = this.config.alpn;
      alpn =
        typeof pick === "function"
          ? pick(alpnExt.protocols)
          : pick.find((p) => alpnExt.protocols.includes(p));
      if (alpn === undefined || !alpnExt.protocols.includes(alpn)) {
        throw alert(
          "no_application_protocol",
          `none of the client's application protocols ${JSON.stringify(alpnExt.protocols)} is supported (RFC 9001 §8.1)`,
        );
      }
    } else if (this.quic) {
      throw alert(
        "no_application_protocol",
        "the client offers no application protocol; QUIC requires ALPN (RFC 9001 §8.1)",
      );
    }

    const tp = findExtension(ch.extensions, "quic_transport_parameters");
    if (this.quic && !tp) {
      throw alert("missing_extension", "ClientHello lacks quic_transport_parameters (RFC 9001 §8.2)");
    }
    if (!this.quic && tp) {
      throw alert("unsupported_extension", "quic_transport_parameters outside QUIC (RFC 9001 §8.2)");
    }
    const serverName = findExtension(ch.extensions, "server_name")?.hostName;
    return { suite, scheme, group, clientShare, alpn, transportParameters: tp?.data, serverName };
  }

  /**
   * The first offered ticket we can resume (RFC 8446 §4.2.11): ours, unexpired, issued under the
   * same server name, for a suite with the hash we negotiated, offered with psk_dhe_ke. Its
   * binder must verify or the handshake ends with decrypt_error. Tickets we cannot use are
   * skipped silently; the handshake is then a full one. Call before `raw` joins the transcript.
   */
  private selectPsk(ch: ClientHello, raw: RawHandshakeMessage, n: Negotiated): Negotiated {
    const offer = findExtension(ch.extensions, "pre_shared_key");
    if (!offer || !this.ticketKeys) return n;
    if (offer.identities.length !== offer.binders.length) {
      throw alert("illegal_parameter", "pre_shared_key has as many binders as identities (RFC 8446 §4.2.11)");
    }
    const modes = findExtension(ch.extensions, "psk_key_exchange_modes")?.modes ?? [];
    if (!modes.includes(PskKeyExchangeMode.psk_dhe_ke)) return n; // we never resume without (EC)DHE
    const count = Math.min(offer.identities.length, MAX_PSK_IDENTITIES_TRIED);
    for (let i = 0; i < count; i++) {
      const state = this.ticketKeys.open(offer.identities[i].identity);
      if (!state) continue;
      const age = this.now - state.issuedAt;
      if (age < 0 || age >= state.lifetime * 1000) continue;
      if (state.serverName !== n.serverName) continue;
      if (CIPHER_SUITE_HASH.get(state.suite) !== n.suite.hash) continue;
      const hash = n.suite.hash;
      // RFC 8446 §4.2.11.2: the binder covers the transcript up to the ClientHello without its
      // binders list (the last field of the message).
      const bindersLength = offer.binders.reduce((len, b) => len + 1 + b.length, 2);
      const truncated = raw.raw.subarray(0, raw.raw.length - bindersLength);
      const binderKey = new KeySchedule(this.provider, hash, state.psk).binderKey(true);
      const expected = finishedVerifyData(
        this.provider,
        hash,
        binderKey,
        this.transcript.digestWith(truncated, hash),
      );
      if (!constantTimeEqual(expected, offer.binders[i])) {
        throw alert("decrypt_error", "the PSK binder does not verify (RFC 8446 §4.2.11)");
      }
      return {
        ...n,
        psk: {
          identity: i,
          state,
          binder: offer.binders[i],
          obfuscatedAge: offer.identities[i].obfuscatedTicketAge,
        },
      };
    }
    return n;
  }

  private onClientHello(ch: ClientHello, raw: RawHandshakeMessage): void {
    let n = this.negotiate(ch);
    if (n.clientShare) n = this.selectPsk(ch, raw, n);
    this.clientHello1 = ch;
    this.transcript.setHash(n.suite.hash);
    this.transcript.update(raw.raw);
    if (!n.clientShare) {
      this.sendHelloRetryRequest(ch, n);
      return;
    }
    this.respond(ch, n);
  }

  private sendHelloRetryRequest(ch: ClientHello, n: Negotiated): void {
    const cookie = this.config.helloRetryCookie ? this.config.rng.fill(new Uint8Array(32)) : undefined;
    this.hrr = { suite: n.suite, group: n.group, cookie };
    const extensions: Extension[] = [
      { type: "key_share_hrr", selectedGroup: NamedGroupCode[n.group] },
      { type: "selected_version", version: ProtocolVersion.TLS_1_3 },
    ];
    if (cookie) extensions.push({ type: "cookie", cookie });
    this.transcript.replaceWithMessageHash();
    const hrr = this.send("initial", {
      type: "hello_retry_request",
      legacyVersion: ProtocolVersion.TLS_1_2,
      legacySessionIdEcho: ch.legacySessionId,
      cipherSuite: n.suite.code,
      legacyCompressionMethod: 0,
      extensions,
    });
    this.transcript.update(hrr);
    this.state = "wait_client_hello_2";
  }

  private onClientHello2(ch: ClientHello, raw: RawHandshakeMessage): void {
    const ch1 = this.clientHello1 as ClientHello;
    const hrr = this.hrr as NonNullable<TlsServer["hrr"]>;
    // RFC 8446 §4.1.2: the second ClientHello repeats the first except for key_share, early_data,
    // cookie, pre_shared_key and padding.
    if (!bytesEqual(ch.random, ch1.random) || !bytesEqual(ch.legacySessionId, ch1.legacySessionId)) {
      throw alert(
        "illegal_parameter",
        "the second ClientHello changed its random or session id (RFC 8446 §4.1.2)",
      );
    }
    if (ch.cipherSuites.join() !== ch1.cipherSuites.join()) {
      throw alert("illegal_parameter", "the second ClientHello changed its cipher suites (RFC 8446 §4.1.2)");
    }
    if (findExtension(ch.extensions, "early_data")) {
      throw alert(
        "illegal_parameter",
        "early_data in the ClientHello after a HelloRetryRequest (RFC 8446 §4.2.10)",
      );
    }
    if (hrr.cookie) {
      const c = findExtension(ch.extensions, "cookie");
      if (!c || !bytesEqual(c.cookie, hrr.cookie)) {
        throw alert("illegal_parameter", "the second ClientHello does not echo our cookie (RFC 8446 §4.2.2)");
      }
    }
    const ks = findExtension(ch.extensions, "key_share");
    if (ks?.shares.length !== 1 || ks.shares[0].group !== NamedGroupCode[hrr.group]) {
      throw alert(
        "illegal_parameter",
        `the second ClientHello must carry exactly one key share, for ${hrr.group} (RFC 8446 §4.1.4)`,
      );
    }
    const n = this.negotiate(ch);
    if (n.suite !== hrr.suite || n.group !== hrr.group || !n.clientShare) {
      throw alert(
        "illegal_parameter",
        "the second ClientHello negotiates differently from the first (RFC 8446 §4.1.4)",
      );
    }
    const withPsk = this.selectPsk(ch, raw, n);
    this.transcript.update(raw.raw);
    this.respond(ch, withPsk);
  }

  /** Whether to accept the early data `ch` offers (RFC 8446 §4.2.10, §8). */
  private acceptsEarlyData(n: Negotiated): boolean {
    const psk = n.psk;
    if (!psk || this.hrr || psk.identity !== 0 || !this.ticketKeys || !this.config.acceptEarlyData)
      return false;
    const t = psk.state;
    if (t.maxEarlyData === 0 || t.alpn !== n.alpn || t.suite !== n.suite.code) return false;
    // RFC 8446 §8.3: the client's view of the ticket age must match ours within the window.
    const clientAge = (psk.obfuscatedAge - t.ageAdd) >>> 0;
    const serverAge = this.now - t.issuedAt;
    if (Math.abs(serverAge - clientAge) > EARLY_DATA_WINDOW_MS) return false;
    if (!this.config.acceptEarlyData(t.appData)) return false;
    return this.ticketKeys.claimEarlyData(psk.binder, this.now, EARLY_DATA_WINDOW_MS);
  }

  /** ServerHello, then the whole server flight (RFC 8446 §2). */
  private respond(ch: ClientHello, n: Negotiated): void {
    const suite = n.suite;
    this.negotiated = n;
    const earlyOffered = findExtension(ch.extensions, "early_data") !== undefined;
    const earlyAccepted = earlyOffered && this.acceptsEarlyData(n);
    if (earlyAccepted) {
      // client_early_traffic_secret from Hash(ClientHello) (RFC 8446 §7.1): read 0-RTT with it.
      const early = new KeySchedule(this.provider, suite.hash, n.psk?.state.psk);
      const secret = early.clientEarlyTrafficSecret(this.transcript.digest());
      this.emit({ type: "secret", level: "early", direction: "read", secret, suite });
    }
    if (earlyOffered) this.emit({ type: "early_data", accepted: earlyAccepted });
    const share = this.provider.generateKeyShare(n.group, this.config.rng);
    const ecdhe = share.sharedSecret((n.clientShare as KeyShareEntry).keyExchange);
    const sh = this.send("initial", {
      type: "server_hello",
      legacyVersion: ProtocolVersion.TLS_1_2,
      random: this.config.rng.fill(new Uint8Array(32)),
      legacySessionIdEcho: ch.legacySessionId,
      cipherSuite: suite.code,
      legacyCompressionMethod: 0,
      extensions: [
        { type: "key_share_server", share: { group: NamedGroupCode[n.group], keyExchange: share.publicKey } },
        ...(n.psk ? [{ type: "pre_shared_key_selected", selectedIdentity: n.psk.identity } as const] : []),
        { type: "selected_version", version: ProtocolVersion.TLS_1_3 },
      ],
    });
    this.transcript.update(sh);
    const schedule = new KeySchedule(this.provider, suite.hash, n.psk?.state.psk);
    this.schedule = schedule;
    schedule.deriveHandshakeSecret(ecdhe);
    const helloHash = this.transcript.digest();
    this.clientHandshakeSecret = schedule.clientHandshakeTrafficSecret(helloHash);
    const serverHandshakeSecret = schedule.serverHandshakeTrafficSecret(helloHash);
    this.emit({
      type: "secret",
      level: "handshake",
      direction: "write",
      secret: serverHandshakeSecret,
      suite,
    });
    this.emit({
      type: "secret",
      level: "handshake",
      direction: "read",
      secret: this.clientHandshakeSecret,
      suite,
    });

    const ee: Extension[] = [];
    if (n.serverName !== undefined) ee.push({ type: "server_name", hostName: undefined }); // RFC 6066 §3
    if (n.alpn !== undefined) ee.push({ type: "alpn", protocols: [n.alpn] });
    if (earlyAccepted) ee.push({ type: "early_data" });
    if (this.quic) {
      ee.push({ type: "quic_transport_parameters", data: this.config.transportParameters as Uint8Array });
    }
    this.transcript.update(this.send("handshake", { type: "encrypted_extensions", extensions: ee }));
    // RFC 8446 §2.2: a resumed session is authenticated by the PSK, with no Certificate.
    if (!n.psk) this.sendCertificateAndVerify(n);
    const verifyData = finishedVerifyData(
      this.provider,
      suite.hash,
      serverHandshakeSecret,
      this.transcript.digest(),
    );
    this.transcript.update(this.send("handshake", { type: "finished", verifyData }));

    schedule.deriveMasterSecret();
    const serverFinishedHash = this.transcript.digest();
    this.clientApplicationSecret = schedule.clientApplicationTrafficSecret(serverFinishedHash);
    const serverApp = schedule.serverApplicationTrafficSecret(serverFinishedHash);
    this.exporterSecret = schedule.exporterMasterSecret(serverFinishedHash);
    this.emit({ type: "secret", level: "application", direction: "write", secret: serverApp, suite });
    if (n.transportParameters) this.emit({ type: "transport_parameters", data: n.transportParameters });
    if (n.alpn !== undefined) this.emit({ type: "alpn", protocol: n.alpn });
    this.setReadLevel("handshake");
    this.state = "wait_finished";
  }

  private sendCertificateAndVerify(n: Negotiated): void {
    this.transcript.update(
      this.send("handshake", {
        type: "certificate",
        requestContext: new Uint8Array(0),
        entries: this.config.certificateChain.map((data) => ({ data, extensions: [] })),
      }),
    );
    const input = certificateVerifyInput("server", this.transcript.digest());
    const signature = this.provider.sign(n.scheme, this.config.privateKey, input, this.config.rng);
    this.transcript.update(
      this.send("handshake", {
        type: "certificate_verify",
        algorithm: SignatureSchemeCode[n.scheme],
        signature,
      }),
    );
  }

  private onFinished(msg: Finished, raw: RawHandshakeMessage): void {
    const n = this.negotiated as Negotiated;
    const schedule = this.schedule as KeySchedule;
    if (msg.verifyData.length !== schedule.hashLength) {
      throw alert(
        "decode_error",
        `Finished verify_data is ${msg.verifyData.length} bytes, not ${schedule.hashLength}`,
      );
    }
    const ok = verifyFinished(
      this.provider,
      n.suite.hash,
      this.clientHandshakeSecret as Uint8Array,
      this.transcript.digest(),
      msg.verifyData,
    );
    if (!ok) throw alert("decrypt_error", "the client's Finished does not verify (RFC 8446 §4.4.4)");
    this.transcript.update(raw.raw);
    this.resumptionSecret = schedule.resumptionMasterSecret(this.transcript.digest());
    this.emit({
      type: "secret",
      level: "application",
      direction: "read",
      secret: this.clientApplicationSecret as Uint8Array,
      suite: n.suite,
    });
    this.setReadLevel("application");
    this.state = "connected";
    this.emit({
      type: "handshake_complete",
      suite: n.suite,
      alpn: n.alpn,
      serverName: n.serverName,
      peerCertificates: [],
      resumed: n.psk !== undefined,
    });
    const count = this.config.ticketCount ?? 1;
    for (let i = 0; i < count; i++) this.issueTicket();
    // What only the handshake needed goes (memory per idle connection); tickets and the exporter
    // use the suite, ALPN and server name of `negotiated`, the resumption and exporter secrets
    // and the ticket settings of `config`, which stay.
    this.negotiated = {
      suite: n.suite,
      scheme: n.scheme,
      group: n.group,
      clientShare: undefined,
      alpn: n.alpn,
      transportParameters: undefined,
      serverName: n.serverName,
    };
    this.config = { ...this.config, transportParameters: undefined };
    this.releaseHandshakeLevels();
    this.transcript.release();
    this.packKeptBytes(this.clientHello1?.random);
    this.clientHello1 = undefined;
    this.schedule = undefined;
    this.clientHandshakeSecret = undefined;
    this.clientApplicationSecret = undefined;
  }

  /**
   * The client random (for key logs) and the resumption and exporter secrets live as long as the
   * connection: copied into one buffer, as each small array of its own costs ~200 bytes.
   */
  private packKeptBytes(random: Uint8Array | undefined): void {
    const res = this.resumptionSecret as Uint8Array;
    const exp = this.exporterSecret as Uint8Array;
    const r = random?.length ?? 0;
    const all = new Uint8Array(r + res.length + exp.length);
    if (random) all.set(random);
    all.set(res, r);
    all.set(exp, r + res.length);
    this.random = random && all.subarray(0, r);
    this.resumptionSecret = all.subarray(r, r + res.length);
    this.exporterSecret = all.subarray(r + res.length);
  }

  /**
   * Sends one more NewSessionTicket at the application level (RFC 8446 §4.6.1). Returns false
   * when tickets are disabled. Only after the handshake is complete.
   */
  sendSessionTicket(now: number): boolean {
    if (this.state !== "connected") throw new Error("sendSessionTicket() before the handshake completed");
    let sent = false;
    this.guard(now, () => {
      sent = this.issueTicket();
    });
    return sent;
  }

  private issueTicket(): boolean {
    if (!this.ticketKeys) return false;
    const n = this.negotiated as Negotiated;
    const nonce = new Uint8Array([this.ticketsIssued >>> 8, this.ticketsIssued & 0xff]);
    this.ticketsIssued++;
    const psk = resumptionPsk(this.provider, n.suite.hash, this.resumptionSecret as Uint8Array, nonce);
    const ageAdd = new DataView(this.config.rng.fill(new Uint8Array(4)).buffer).getUint32(0);
    const lifetime = this.config.ticketLifetime ?? DEFAULT_TICKET_LIFETIME;
    const maxEarlyData = this.config.maxEarlyDataSize ?? 0;
    const ticket = this.ticketKeys.seal(
      {
        psk,
        suite: n.suite.code,
        alpn: n.alpn,
        serverName: n.serverName,
        issuedAt: this.now,
        lifetime,
        ageAdd,
        maxEarlyData,
        appData: this.config.ticketAppData ?? new Uint8Array(0),
      },
      this.config.rng,
    );
    const extensions: Extension[] =
      maxEarlyData > 0 ? [{ type: "early_data_max", maxEarlyDataSize: maxEarlyData }] : [];
    // Post-handshake messages are not part of the transcript.
    this.send("application", { type: "new_session_ticket", lifetime, ageAdd, nonce, ticket, extensions });
    this.emit({ type: "ticket_issued", lifetime, maxEarlyDataSize: maxEarlyData, ticket });
    return true;
  }

  /** TLS-Exporter (RFC 8446 §7.5), available once the server flight is sent. */
  exportKeyingMaterial(label: string, context: Uint8Array, length: number): Uint8Array {
    const n = this.negotiated;
    if (!this.exporterSecret || !n) throw new Error("exporter not available before the handshake");
    return exportKeyingMaterial(this.provider, n.suite.hash, this.exporterSecret, label, context, length);
  }
}

/**
 * A QUIC server's TLS after the handshake (`TlsServer.postHandshake`): the reassembler of the
 * application level, the queues and the latched alert, without the handshake's state, config,
 * secrets and transcript (~1 KB per idle connection).
 */
export class ConnectedTlsServer extends HandshakeCore {
  constructor(
    from: TlsServer,
    /** The negotiated suite. */
    readonly cipherSuite: CipherSuite,
  ) {
    super(0);
    this.adopt(from);
  }

  /** Always true. */
  get handshakeComplete(): boolean {
    return true;
  }

  /** Not kept: key logs need it only for the handshake's secrets, all logged by now. */
  get clientRandom(): undefined {
    return undefined;
  }

  protected handle(msg: HandshakeMessage, _raw: RawHandshakeMessage, level: EncryptionLevel): void {
    throw refuseWhenConnected(msg, level, (m, state) => this.unexpected(m, state));
  }
}
