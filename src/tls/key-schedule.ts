/**
 * The TLS 1.3 key schedule (RFC 8446 §7.1), the transcript hash (§4.4.1), Finished (§4.4.4),
 * session resumption secrets (§4.6.1) and the exporter (§7.5), for SHA-256 and SHA-384 suites.
 *
 * ```
 *              0
 *              |
 *    PSK ->  HKDF-Extract = Early Secret  --> binder key, client early traffic, early exporter
 *              |
 *        Derive-Secret(., "derived", "")
 *              |
 * (EC)DHE -> HKDF-Extract = Handshake Secret --> client/server handshake traffic
 *              |
 *        Derive-Secret(., "derived", "")
 *              |
 *    0 -> HKDF-Extract = Master Secret --> client/server application traffic, exporter, resumption
 * ```
 */
import type { CryptoProvider, HashAlgorithm, IncrementalHash } from "../crypto/provider.js";
import { hashLength } from "../crypto/provider.js";
import { concat, constantTimeEqual } from "../util/bytes.js";
import { deriveSecret, hkdfExpandLabel } from "./hkdf.js";
import { HandshakeType } from "./messages.js";

const EMPTY = new Uint8Array(0);

/**
 * The secret chain of one connection. Create it with the PSK (or none), then call
 * `deriveHandshakeSecret(ecdhe)` and `deriveMasterSecret()` in order; each traffic secret is
 * computed from the transcript hash the caller passes in.
 */
export class KeySchedule {
  readonly provider: CryptoProvider;
  readonly hash: HashAlgorithm;
  readonly hashLength: 32 | 48;
  /** HKDF-Extract(0, PSK or 0). */
  readonly earlySecret: Uint8Array;
  private handshakeSecretValue: Uint8Array | undefined;
  private masterSecretValue: Uint8Array | undefined;
  private readonly emptyHash: Uint8Array;
  /** Derive-Secret(Early Secret, "derived", "") when it is a constant (no PSK). */
  private readonly derivedFromEarly: Uint8Array | undefined;

  /** `psk` absent means a full handshake: the PSK input is Hash.length zero bytes (§7.1). */
  constructor(provider: CryptoProvider, hash: HashAlgorithm, psk?: Uint8Array) {
    this.provider = provider;
    this.hash = hash;
    this.hashLength = hashLength(hash);
    const c = constantsOf(provider, hash);
    this.emptyHash = c.emptyHash;
    if (psk) {
      this.earlySecret = provider.hkdfExtract(hash, new Uint8Array(this.hashLength), psk);
    } else {
      // Without a PSK the Early Secret, and what is derived from it, is the same on every connection.
      this.earlySecret = c.earlySecret;
      this.derivedFromEarly = c.derivedFromEarly;
    }
  }

  /** Derive-Secret(secret, label, "") with the hash of the empty string. */
  private derived(secret: Uint8Array): Uint8Array {
    if (secret === this.earlySecret && this.derivedFromEarly) return this.derivedFromEarly;
    return deriveSecret(this.provider, this.hash, secret, "derived", this.emptyHash);
  }

  /** binder_key: "ext binder" for external PSKs, "res binder" for resumption PSKs (§4.2.11.2). */
  binderKey(resumption: boolean): Uint8Array {
    return deriveSecret(
      this.provider,
      this.hash,
      this.earlySecret,
      resumption ? "res binder" : "ext binder",
      this.emptyHash,
    );
  }

  /** client_early_traffic_secret from the transcript hash of the ClientHello. */
  clientEarlyTrafficSecret(clientHelloHash: Uint8Array): Uint8Array {
    return deriveSecret(this.provider, this.hash, this.earlySecret, "c e traffic", clientHelloHash);
  }

  /** early_exporter_master_secret from the transcript hash of the ClientHello. */
  earlyExporterMasterSecret(clientHelloHash: Uint8Array): Uint8Array {
    return deriveSecret(this.provider, this.hash, this.earlySecret, "e exp master", clientHelloHash);
  }

  /** Mixes in the (EC)DHE shared secret (or zeros for psk_ke) and returns the Handshake Secret. */
  deriveHandshakeSecret(ecdhe: Uint8Array | undefined): Uint8Array {
    const ikm = ecdhe ?? new Uint8Array(this.hashLength);
    this.handshakeSecretValue = this.provider.hkdfExtract(this.hash, this.derived(this.earlySecret), ikm);
    return this.handshakeSecretValue;
  }

  /** The Handshake Secret; throws if `deriveHandshakeSecret` was not called. */
  get handshakeSecret(): Uint8Array {
    if (!this.handshakeSecretValue) throw new Error("key schedule: handshake secret not derived yet");
    return this.handshakeSecretValue;
  }

  /** client_handshake_traffic_secret from Hash(ClientHello..ServerHello). */
  clientHandshakeTrafficSecret(helloHash: Uint8Array): Uint8Array {
    return deriveSecret(this.provider, this.hash, this.handshakeSecret, "c hs traffic", helloHash);
  }

  /** server_handshake_traffic_secret from Hash(ClientHello..ServerHello). */
  serverHandshakeTrafficSecret(helloHash: Uint8Array): Uint8Array {
    return deriveSecret(this.provider, this.hash, this.handshakeSecret, "s hs traffic", helloHash);
  }

  /** Derives and returns the Master Secret. */
  deriveMasterSecret(): Uint8Array {
    this.masterSecretValue = this.provider.hkdfExtract(
      this.hash,
      this.derived(this.handshakeSecret),
      new Uint8Array(this.hashLength),
    );
    return this.masterSecretValue;
  }

  /** The Master Secret; throws if `deriveMasterSecret` was not called. */
  get masterSecret(): Uint8Array {
    if (!this.masterSecretValue) throw new Error("key schedule: master secret not derived yet");
    return this.masterSecretValue;
  }

  /** client_application_traffic_secret_0 from Hash(ClientHello..server Finished). */
  clientApplicationTrafficSecret(serverFinishedHash: Uint8Array): Uint8Array {
    return deriveSecret(this.provider, this.hash, this.masterSecret, "c ap traffic", serverFinishedHash);
  }

  /** server_application_traffic_secret_0 from Hash(ClientHello..server Finished). */
  serverApplicationTrafficSecret(serverFinishedHash: Uint8Array): Uint8Array {
    return deriveSecret(this.provider, this.hash, this.masterSecret, "s ap traffic", serverFinishedHash);
  }

  /** exporter_master_secret from Hash(ClientHello..server Finished). */
  exporterMasterSecret(serverFinishedHash: Uint8Array): Uint8Array {
    return deriveSecret(this.provider, this.hash, this.masterSecret, "exp master", serverFinishedHash);
  }

  /** resumption_master_secret from Hash(ClientHello..client Finished). */
  resumptionMasterSecret(clientFinishedHash: Uint8Array): Uint8Array {
    return deriveSecret(this.provider, this.hash, this.masterSecret, "res master", clientFinishedHash);
  }
}

/**
 * Values of the key schedule that do not depend on the connection (§7.1): Hash(""), the Early
 * Secret without a PSK = HKDF-Extract(0, 0), and Derive-Secret(that, "derived", ""). Every full
 * handshake needs them; they are computed once per provider and hash (not secrets: anyone can).
 */
interface ScheduleConstants {
  readonly emptyHash: Uint8Array;
  readonly earlySecret: Uint8Array;
  readonly derivedFromEarly: Uint8Array;
}

const scheduleConstants = new WeakMap<CryptoProvider, Map<HashAlgorithm, ScheduleConstants>>();

function constantsOf(provider: CryptoProvider, hash: HashAlgorithm): ScheduleConstants {
  let byHash = scheduleConstants.get(provider);
  if (!byHash) {
    byHash = new Map();
    scheduleConstants.set(provider, byHash);
  }
  let c = byHash.get(hash);
  if (!c) {
    const emptyHash = provider.hash(hash, EMPTY);
    const zeros = new Uint8Array(hashLength(hash));
    const earlySecret = provider.hkdfExtract(hash, zeros, zeros);
    c = {
      emptyHash,
      earlySecret,
      derivedFromEarly: deriveSecret(provider, hash, earlySecret, "derived", emptyHash),
    };
    byHash.set(hash, c);
  }
  return c;
}

/** finished_key = HKDF-Expand-Label(BaseKey, "finished", "", Hash.length) (§4.4.4). */
export function finishedKey(provider: CryptoProvider, hash: HashAlgorithm, baseKey: Uint8Array): Uint8Array {
  return hkdfExpandLabel(provider, hash, baseKey, "finished", EMPTY, hashLength(hash));
}

/**
 * verify_data = HMAC(finished_key, Transcript-Hash(...)) (§4.4.4). `baseKey` is the sender's
 * handshake traffic secret; `transcriptHash` covers the messages before this Finished.
 */
export function finishedVerifyData(
  provider: CryptoProvider,
  hash: HashAlgorithm,
  baseKey: Uint8Array,
  transcriptHash: Uint8Array,
): Uint8Array {
  return provider.hmac(hash, finishedKey(provider, hash, baseKey), transcriptHash);
}

/** Checks a received verify_data in constant time (§4.4.4: mismatch is decrypt_error). */
export function verifyFinished(
  provider: CryptoProvider,
  hash: HashAlgorithm,
  baseKey: Uint8Array,
  transcriptHash: Uint8Array,
  received: Uint8Array,
): boolean {
  return constantTimeEqual(finishedVerifyData(provider, hash, baseKey, transcriptHash), received);
}

/** The PSK of a ticket: HKDF-Expand-Label(resumption_master_secret, "resumption", ticket_nonce, Hash.length) (§4.6.1). */
export function resumptionPsk(
  provider: CryptoProvider,
  hash: HashAlgorithm,
  resumptionMasterSecret: Uint8Array,
  ticketNonce: Uint8Array,
): Uint8Array {
  return hkdfExpandLabel(provider, hash, resumptionMasterSecret, "resumption", ticketNonce, hashLength(hash));
}

/** application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length) (§7.2). */
export function nextApplicationTrafficSecret(
  provider: CryptoProvider,
  hash: HashAlgorithm,
  secret: Uint8Array,
): Uint8Array {
  return hkdfExpandLabel(provider, hash, secret, "traffic upd", EMPTY, hashLength(hash));
}

/** TLS record keys of a traffic secret (§7.3). QUIC uses its own "quic key" labels (RFC 9001 §5.1). */
export function trafficKeys(
  provider: CryptoProvider,
  hash: HashAlgorithm,
  secret: Uint8Array,
  keyLength: number,
  ivLength = 12,
): { key: Uint8Array; iv: Uint8Array } {
  return {
    key: hkdfExpandLabel(provider, hash, secret, "key", EMPTY, keyLength),
    iv: hkdfExpandLabel(provider, hash, secret, "iv", EMPTY, ivLength),
  };
}

/**
 * TLS-Exporter(label, context_value, key_length) (§7.5) =
 * HKDF-Expand-Label(Derive-Secret(Secret, label, ""), "exporter", Hash(context_value), key_length).
 */
export function exportKeyingMaterial(
  provider: CryptoProvider,
  hash: HashAlgorithm,
  exporterSecret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  const secret = deriveSecret(provider, hash, exporterSecret, label, provider.hash(hash, EMPTY));
  return hkdfExpandLabel(provider, hash, secret, "exporter", provider.hash(hash, context), length);
}

/**
 * The running transcript hash (§4.4.1). Messages added before the hash is chosen (the
 * ClientHello, before the ServerHello names the suite) are kept and hashed once `setHash` is
 * called. After a HelloRetryRequest, `replaceWithMessageHash()` swaps ClientHello1 for the
 * synthetic `message_hash` message: 254 || 00 00 Hash.length || Hash(ClientHello1).
 */
export class Transcript {
  private readonly provider: CryptoProvider;
  /** Every message so far (a handshake is a few KB), for `digestWith`. */
  private messages: Uint8Array[] = [];
  private running: IncrementalHash | undefined;
  private alg: HashAlgorithm | undefined;

  constructor(provider: CryptoProvider, hash?: HashAlgorithm) {
    this.provider = provider;
    if (hash) this.setHash(hash);
  }

  /** The hash algorithm, once known. */
  get hash(): HashAlgorithm | undefined {
    return this.alg;
  }

  /** Fixes the hash algorithm (the negotiated suite's); earlier messages are hashed now. */
  setHash(hash: HashAlgorithm): void {
    if (this.alg !== undefined) {
      if (this.alg !== hash) throw new Error(`transcript hash already set to ${this.alg}`);
      return;
    }
    this.alg = hash;
    this.running = this.provider.createHash(hash);
    for (const m of this.messages) this.running.update(m);
  }

  /** Adds a complete handshake message (header included). */
  update(message: Uint8Array): void {
    const m = message.slice();
    this.messages.push(m);
    this.running?.update(m);
  }

  /** Transcript-Hash of everything so far. */
  digest(): Uint8Array {
    if (!this.running) throw new Error("transcript hash algorithm not chosen yet");
    return this.running.digest();
  }

  /**
   * Transcript-Hash of everything so far followed by `extra`, without adding it: e.g. a
   * ClientHello truncated before its binders (§4.2.11.2).
   */
  digestWith(extra: Uint8Array, hash: HashAlgorithm | undefined = this.alg): Uint8Array {
    if (!hash) throw new Error("transcript hash algorithm not chosen yet");
    const h = this.provider.createHash(hash);
    for (const m of this.messages) h.update(m);
    h.update(extra);
    return h.digest();
  }

  /**
   * Forgets the messages once the handshake is over (they hold the certificate chain): the
   * transcript is not used after the Finished messages. Any later use throws.
   */
  release(): void {
    this.messages = [];
    this.running = undefined;
  }

  /** HelloRetryRequest rule (§4.4.1): the transcript restarts with message_hash(Hash(ClientHello1)). */
  replaceWithMessageHash(): void {
    const h = this.digest();
    const synthetic = concat(new Uint8Array([HandshakeType.message_hash, 0, 0, h.length]), h);
    this.messages = [synthetic];
    this.running = this.provider.createHash(this.alg as HashAlgorithm);
    this.running.update(synthetic);
  }
}
