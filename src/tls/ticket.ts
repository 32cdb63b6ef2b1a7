/**
 * Session tickets the server can decrypt (RFC 8446 §4.6.1 leaves the format to the server).
 *
 * A ticket is `version(1) || key id(4) || nonce(12) || AES-256-GCM(state)` under a server ticket
 * key, with the first 17 bytes as associated data. The sealed state holds everything needed to
 * resume and, later, to accept 0-RTT: the resumption PSK, the suite, ALPN and SNI the session was
 * established with, the issue time, lifetime, age_add and max_early_data, and opaque `appData`
 * that the QUIC layer may use to remember what 0-RTT needs (RFC 9000 §7.4.1).
 *
 * One `TicketKeys` should be shared by every connection of a server endpoint, so that a ticket
 * issued on one connection resumes on the next.
 */
import type { Aead, CryptoProvider, Rng } from "../crypto/provider.js";
import { bytesEqual, Reader, toHex, Writer } from "../util/bytes.js";
import { bytesToLatin1, latin1ToBytes } from "./extensions.js";

/** What a ticket remembers about the session that issued it. */
export interface TicketState {
  /** The resumption PSK (RFC 8446 §4.6.1). */
  readonly psk: Uint8Array;
  /** Cipher suite code point of the issuing session; resumption must use a suite with the same hash. */
  readonly suite: number;
  readonly alpn: string | undefined;
  readonly serverName: string | undefined;
  /** Issue time, milliseconds on the caller's clock. */
  readonly issuedAt: number;
  /** Lifetime in seconds (at most 604800, RFC 8446 §4.6.1). */
  readonly lifetime: number;
  /** ticket_age_add sent with the ticket. */
  readonly ageAdd: number;
  /** max_early_data_size advertised with the ticket (0 = no 0-RTT). */
  readonly maxEarlyData: number;
  /** Opaque data of the layer above (e.g. QUIC transport parameters that bound 0-RTT). */
  readonly appData: Uint8Array;
}

const VERSION = 1;
const HEADER = 1 + 4 + 12;

/** Why a ticket could not be opened (for diagnostics; the handshake just declines the PSK). */
class TicketDecodeError extends Error {}

/** Most ClientHellos with early data remembered for anti-replay; beyond it 0-RTT is declined. */
const MAX_EARLY_DATA_RECORDS = 100_000;

/** A server's ticket encryption key, and its anti-replay record of 0-RTT attempts. */
export class TicketKeys {
  private readonly provider: CryptoProvider;
  private readonly key: Uint8Array;
  private readonly keyId: Uint8Array;
  /** The ticket AEAD, made on first use and kept: one key for every ticket. */
  private aeadValue: Aead | undefined;
  /** Binders of accepted 0-RTT ClientHellos (hex) → until when they are remembered (ms). */
  private readonly earlyDataSeen = new Map<string, number>();

  /** `key` is 32 bytes of secret randomness. */
  constructor(provider: CryptoProvider, key: Uint8Array) {
    if (key.length !== 32) throw new RangeError("ticket key must be 32 bytes");
    this.provider = provider;
    this.key = key.slice();
    this.keyId = provider.hash("sha256", key).subarray(0, 4);
  }

  private get aead(): Aead {
    this.aeadValue ??= this.provider.aead("aes-256-gcm", this.key);
    return this.aeadValue;
  }

  /** A fresh random ticket key. */
  static generate(provider: CryptoProvider, rng: Rng): TicketKeys {
    return new TicketKeys(provider, rng.fill(new Uint8Array(32)));
  }

  /** Encrypts `state` into an opaque ticket. */
  seal(state: TicketState, rng: Rng): Uint8Array {
    const w = new Writer(128);
    w.u16(state.suite);
    w.u32(Math.floor(state.issuedAt / 0x100000000)).u32(state.issuedAt >>> 0);
    w.u32(state.lifetime)
      .u32(state.ageAdd >>> 0)
      .u32(state.maxEarlyData >>> 0);
    w.vec(1, state.psk);
    w.vec(1, state.alpn === undefined ? new Uint8Array(0) : latin1ToBytes(state.alpn));
    w.u8(state.alpn === undefined ? 0 : 1);
    w.vec(2, state.serverName === undefined ? new Uint8Array(0) : latin1ToBytes(state.serverName));
    w.u8(state.serverName === undefined ? 0 : 1);
    w.vec(2, state.appData);
    const header = new Uint8Array(HEADER);
    header[0] = VERSION;
    header.set(this.keyId, 1);
    const nonce = rng.fill(new Uint8Array(12));
    header.set(nonce, 5);
    const sealed = this.aead.seal(nonce, header, w.finish());
    const out = new Uint8Array(HEADER + sealed.length);
    out.set(header);
    out.set(sealed, HEADER);
    return out;
  }

  /**
   * Anti-replay for 0-RTT (RFC 8446 §8.2, ClientHello recording): true the first time `binder`
   * is seen within `windowMs` of `now`, false for a replay. The caller refuses 0-RTT for
   * ClientHellos outside the same freshness window, so remembering each binder for the window
   * is enough. When the record is full, 0-RTT is declined (never accepted unchecked).
   */
  claimEarlyData(binder: Uint8Array, now: number, windowMs: number): boolean {
    for (const [k, until] of this.earlyDataSeen) {
      if (until > now) break; // insertion order is expiry order (same window for all)
      this.earlyDataSeen.delete(k);
    }
    const key = toHex(binder);
    if (this.earlyDataSeen.has(key) || this.earlyDataSeen.size >= MAX_EARLY_DATA_RECORDS) return false;
    this.earlyDataSeen.set(key, now + windowMs);
    return true;
  }

  /** Decrypts a ticket; undefined when it is not ours, was tampered with, or is malformed. */
  open(ticket: Uint8Array): TicketState | undefined {
    if (ticket.length < HEADER + 16 || ticket[0] !== VERSION) return undefined;
    if (!bytesEqual(ticket.subarray(1, 5), this.keyId)) return undefined;
    const header = ticket.subarray(0, HEADER);
    const plain = this.aead.open(ticket.subarray(5, HEADER), header, ticket.subarray(HEADER));
    if (!plain) return undefined;
    try {
      const r = new Reader(plain, (reason) => new TicketDecodeError(reason));
      const suite = r.u16();
      const issuedAt = r.u32() * 0x100000000 + r.u32();
      const lifetime = r.u32();
      const ageAdd = r.u32();
      const maxEarlyData = r.u32();
      const psk = r.vec(1).slice();
      const alpnBytes = r.vec(1);
      const alpn = r.u8() ? bytesToLatin1(alpnBytes) : undefined;
      const snBytes = r.vec(2);
      const serverName = r.u8() ? bytesToLatin1(snBytes) : undefined;
      const appData = r.vec(2).slice();
      r.expectEnd();
      return { psk, suite, alpn, serverName, issuedAt, lifetime, ageAdd, maxEarlyData, appData };
    } catch (e) {
      if (e instanceof TicketDecodeError) return undefined;
      throw e;
    }
  }
}
