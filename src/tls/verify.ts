/**
 * Certificate chain verification (RFC 5280 §6, simplified for TLS): build a path from the leaf
 * through the presented intermediates to a trust anchor, check each link's signature through
 * the {@link CryptoProvider}, every certificate's validity period, basicConstraints / pathLen /
 * keyUsage of every issuer, and the leaf's name against the server name (RFC 6125 §6).
 *
 * Every failure is a {@link CertificateError} that names the certificate and says what is wrong
 * in plain words. {@link createPeerVerifier} wraps it in the {@link TlsAlert} shape the TLS
 * handshake consumes.
 *
 * Not implemented (documented limits): revocation (CRL/OCSP), name constraints and certificate
 * policies (a certificate marking those critical is rejected as unsupported), and signature
 * algorithms beyond ecdsa-with-SHA256 (P-256), Ed25519, sha256WithRSAEncryption and
 * RSASSA-PSS/SHA-256.
 */
import type { CryptoProvider, PublicKey } from "../crypto/provider.js";
import { bytesEqual, toHex } from "../util/bytes.js";
import { AlertDescription, TlsAlert } from "./alert.js";
import { CertificateError } from "./cert-error.js";
import {
  type Certificate,
  certificateLabel,
  formatIpAddress,
  parseCertificate,
  parseIpAddress,
} from "./x509.js";

export { CertificateError, type CertificateErrorCode } from "./cert-error.js";

/** Longest path we build (leaf + intermediates + anchor). */
const MAX_PATH = 10;

/** Which extendedKeyUsage the leaf must allow (when it has the extension at all). */
export type CertificatePurpose = "serverAuth" | "clientAuth" | "any";

/**
 * A set of trust anchors, parsed once and indexed by subject. Build one per configuration and
 * reuse it: parsing ~150 system roots on every handshake would cost tens of milliseconds.
 */
export class TrustStore {
  /** The anchors, parsed. */
  readonly certificates: readonly Certificate[];
  private readonly bySubjectHex = new Map<string, Certificate[]>();
  private readonly derHex = new Set<string>();

  /**
   * @param roots DER certificates or already parsed ones.
   * @throws {CertificateError} `CERT_PARSE_ERROR` naming the root ("trusted root #3") that does not parse.
   */
  constructor(roots: readonly (Uint8Array | Certificate)[]) {
    this.certificates = roots.map((r, i) =>
      r instanceof Uint8Array ? parseCertificate(r, `trusted root #${i + 1}`) : r,
    );
    for (const c of this.certificates) {
      const key = toHex(c.subjectDer);
      const list = this.bySubjectHex.get(key);
      if (list) list.push(c);
      else this.bySubjectHex.set(key, [c]);
      this.derHex.add(toHex(c.der));
    }
  }

  /** Anchors whose subject is exactly `nameDer`. */
  withSubject(nameDer: Uint8Array): readonly Certificate[] {
    return this.bySubjectHex.get(toHex(nameDer)) ?? [];
  }

  /** Whether this exact certificate is an anchor. */
  contains(cert: Certificate): boolean {
    return this.derHex.has(toHex(cert.der));
  }

  /** Number of anchors. */
  get size(): number {
    return this.certificates.length;
  }
}

/** Options of {@link verifyCertificateChain}. */
export interface VerifyOptions {
  /** Trust anchors: DER certificates, or a prebuilt {@link TrustStore}. */
  readonly roots: readonly Uint8Array[] | TrustStore;
  /** The name the client connected to (DNS name or IP address); omitted: no name check (e.g. client certificates). */
  readonly serverName?: string;
  /** The current time (injected: the TLS core never reads the clock). */
  readonly now: Date | number;
  /** Verifies the signatures. */
  readonly provider: CryptoProvider;
  /**
   * extendedKeyUsage the leaf must allow if it restricts it; default "serverAuth" when
   * `serverName` is given, else "any".
   */
  readonly purpose?: CertificatePurpose;
}

/**
 * Verifies a certificate chain as received in a TLS Certificate message (leaf first; the root
 * may or may not be included; extra or out-of-order intermediates are tolerated) and returns
 * the parsed leaf.
 *
 * @throws {CertificateError} with one of the codes CERT_EMPTY_CHAIN, CERT_PARSE_ERROR,
 *   CERT_EXPIRED, CERT_NOT_YET_VALID, CERT_UNKNOWN_ISSUER, CERT_BAD_SIGNATURE, CERT_NOT_CA,
 *   CERT_UNSUPPORTED_ALGORITHM, CERT_UNSUPPORTED_CRITICAL_EXTENSION, CERT_NAME_MISMATCH,
 *   CERT_WRONG_PURPOSE — and a message naming the certificate.
 * @example
 *   const leaf = verifyCertificateChain(chain, { roots: [caDer], serverName: "localhost",
 *                                               now: Date.now(), provider: nobleProvider });
 */
export function verifyCertificateChain(chainDer: readonly Uint8Array[], options: VerifyOptions): Certificate {
  if (chainDer.length === 0) {
    throw new CertificateError("CERT_EMPTY_CHAIN", "the peer sent no certificate, but one is required");
  }
  const store = options.roots instanceof TrustStore ? options.roots : new TrustStore(options.roots);
  const now = typeof options.now === "number" ? options.now : options.now.getTime();
  const chain = chainDer.map((der, i) => parseCertificate(der, `certificate #${i + 1} in the chain`));
  const leaf = chain[0];

  checkValidity(leaf, now, undefined);
  if (!store.contains(leaf)) checkCriticalExtensions(leaf);
  buildPath(leaf, chain.slice(1), store, now, options.provider);
  if (options.serverName !== undefined) checkServerName(leaf, options.serverName);
  checkPurpose(leaf, options.purpose ?? (options.serverName !== undefined ? "serverAuth" : "any"));
  return leaf;
}

/** What the TLS handshake calls to check the peer's certificate chain. */
export interface PeerVerifier {
  /**
   * Verifies `chainDer` (leaf first) for `serverName` (the client's SNI; undefined on a server
   * checking a client certificate) and returns the parsed leaf.
   *
   * @throws {TlsAlert} whose description is the alert to send, `reason` the plain-words
   *   explanation, and `cause` the {@link CertificateError}.
   */
  verify(chainDer: readonly Uint8Array[], serverName: string | undefined): Certificate;
}

/** Options of {@link createPeerVerifier}. */
export interface PeerVerifierOptions {
  /** Trust anchors (DER, or a prebuilt {@link TrustStore}); parsed once, here. */
  readonly roots: readonly Uint8Array[] | TrustStore;
  /** The clock, read once per verification. */
  readonly now: () => number;
  /** Verifies the signatures. */
  readonly provider: CryptoProvider;
  /** See {@link VerifyOptions.purpose}. */
  readonly purpose?: CertificatePurpose;
}

/**
 * A verifier for the TLS handshake. Roots are parsed once here (so a broken CA file fails at
 * configuration time, with a {@link CertificateError}); each `verify` builds and checks a path.
 */
export function createPeerVerifier(options: PeerVerifierOptions): PeerVerifier {
  const roots = options.roots instanceof TrustStore ? options.roots : new TrustStore(options.roots);
  return {
    verify(chainDer, serverName) {
      try {
        return verifyCertificateChain(chainDer, {
          roots,
          serverName,
          now: options.now(),
          provider: options.provider,
          purpose: options.purpose,
        });
      } catch (e) {
        if (e instanceof CertificateError) throw new TlsAlert(e.tlsAlert, e.message, { cause: e });
        // A provider bug or similar: still an alert, never a stray exception out of the handshake.
        throw new TlsAlert(
          AlertDescription.internal_error,
          `certificate verification failed: ${(e as Error).message}`,
          {
            cause: e,
          },
        );
      }
    },
  };
}

// --- checks -------------------------------------------------------------------------------------

/** ISO 8601 without milliseconds: 2026-01-02T00:00:00Z. */
function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function checkValidity(cert: Certificate, now: number, role: string | undefined): void {
  const who = `certificate for ${certificateLabel(cert)}${role ? ` (${role})` : ""}`;
  if (now > cert.notAfter.getTime()) {
    throw new CertificateError(
      "CERT_EXPIRED",
      `${who} has expired on ${iso(cert.notAfter.getTime())} (now ${iso(now)})`,
    );
  }
  if (now < cert.notBefore.getTime()) {
    throw new CertificateError(
      "CERT_NOT_YET_VALID",
      `${who} is not valid until ${iso(cert.notBefore.getTime())} (now ${iso(now)}); is this machine's clock right?`,
    );
  }
}

const EXTENSION_NAMES: Record<string, string> = {
  "2.5.29.30": "nameConstraints",
  "2.5.29.32": "certificatePolicies",
  "2.5.29.33": "policyMappings",
  "2.5.29.36": "policyConstraints",
  "2.5.29.54": "inhibitAnyPolicy",
};

function checkCriticalExtensions(cert: Certificate): void {
  if (cert.unhandledCriticalExtensions.length === 0) return;
  const names = cert.unhandledCriticalExtensions.map((oid) => EXTENSION_NAMES[oid] ?? oid);
  throw new CertificateError(
    "CERT_UNSUPPORTED_CRITICAL_EXTENSION",
    `certificate ${certificateLabel(cert)} has critical extension${names.length > 1 ? "s" : ""} ${names.join(", ")} that mquictt does not process, so it must be rejected (RFC 5280 §4.2)`,
  );
}

/** Why a candidate issuer did not work out; the most relevant one becomes the error. */
interface Failure {
  readonly error: CertificateError;
  /** Higher is more specific: a failed signature beats "unknown issuer". */
  readonly rank: number;
}

/**
 * Depth-first path search from `cert` upwards. Candidates for an issuer: anchors whose subject
 * matches first (ending the path), then presented certificates. Throws the most specific
 * failure when no path exists.
 */
function buildPath(
  leaf: Certificate,
  presented: readonly Certificate[],
  store: TrustStore,
  now: number,
  provider: CryptoProvider,
): void {
  if (store.contains(leaf)) return; // pinned directly (e.g. a self-signed server certificate)
  const failures: Failure[] = [];

  const search = (cert: Certificate, path: Certificate[], intermediates: number): boolean => {
    // 1. Trust anchors with the issuer's name end the path.
    for (const anchor of orderByKeyId(store.withSubject(cert.issuerDer), cert)) {
      const err = checkIssuer(cert, anchor, intermediates, now, provider, "trusted root");
      if (!err) return true;
      failures.push(err);
    }
    if (path.length >= MAX_PATH) {
      failures.push({
        rank: 1,
        error: new CertificateError(
          "CERT_UNKNOWN_ISSUER",
          `no path to a trusted root within ${MAX_PATH} certificates from ${certificateLabel(leaf)}`,
        ),
      });
      return false;
    }
    // 2. Presented intermediates with the issuer's name.
    const candidates = presented.filter(
      (p) => bytesEqual(p.subjectDer, cert.issuerDer) && !path.some((q) => bytesEqual(q.der, p.der)),
    );
    for (const issuer of orderByKeyId(candidates, cert)) {
      const err = checkIssuer(
        cert,
        issuer,
        intermediates,
        now,
        provider,
        `issuer of ${certificateLabel(cert)}`,
      );
      if (err) {
        failures.push(err);
        continue;
      }
      // A presented certificate that is itself an anchor ends the path.
      if (store.contains(issuer)) return true;
      const isSelfIssued = bytesEqual(issuer.subjectDer, issuer.issuerDer);
      if (isSelfIssued && bytesEqual(issuer.der, cert.der)) continue;
      if (search(issuer, [...path, issuer], intermediates + (isSelfIssued ? 0 : 1))) return true;
    }
    if (store.withSubject(cert.issuerDer).length === 0 && candidates.length === 0) {
      failures.push({ rank: 0, error: unknownIssuer(cert, store) });
    }
    return false;
  };

  if (search(leaf, [leaf], 0)) return;
  let best = failures[0];
  for (const f of failures) if (f.rank > best.rank) best = f;
  throw best.error;
}

/** Candidates whose subjectKeyIdentifier matches the child's authorityKeyIdentifier first. */
function orderByKeyId(candidates: readonly Certificate[], child: Certificate): Certificate[] {
  if (child.authorityKeyId === undefined) return [...candidates];
  const match = (c: Certificate): number => (c.subjectKeyId === child.authorityKeyId ? 0 : 1);
  return [...candidates].sort((a, b) => match(a) - match(b));
}

function unknownIssuer(cert: Certificate, store: TrustStore): CertificateError {
  const selfSigned = bytesEqual(cert.subjectDer, cert.issuerDer);
  const hint =
    store.size === 0
      ? " (no trusted roots are configured)"
      : "; add the CA certificate that issued it to the trusted roots";
  if (selfSigned) {
    return new CertificateError(
      "CERT_UNKNOWN_ISSUER",
      `certificate ${certificateLabel(cert)} is self-signed and is not among the trusted roots${store.size === 0 ? " (no trusted roots are configured)" : "; add it to the trusted roots to trust it"}`,
    );
  }
  return new CertificateError(
    "CERT_UNKNOWN_ISSUER",
    `issuer ${cert.issuer || "(empty name)"} of certificate ${certificateLabel(cert)} is not among the trusted roots${hint}`,
  );
}

/**
 * Checks that `issuer` may have issued `child`: CA, pathLen, keyUsage, validity, critical
 * extensions (non-anchors), and the signature. Returns a ranked failure or undefined.
 */
function checkIssuer(
  child: Certificate,
  issuer: Certificate,
  intermediatesBelow: number,
  now: number,
  provider: CryptoProvider,
  role: string,
): Failure | undefined {
  const name = certificateLabel(issuer);
  const isAnchor = role === "trusted root";
  // Version 1 roots predate extensions; trust them as CAs (as OpenSSL does for self-signed v1).
  const legacyV1Root = isAnchor && issuer.version === 1;
  if (!issuer.isCA && !legacyV1Root) {
    return {
      rank: 3,
      error: new CertificateError(
        "CERT_NOT_CA",
        `certificate ${name} issued ${certificateLabel(child)} but is not a CA (its basicConstraints lack CA:TRUE), so it may not sign certificates`,
      ),
    };
  }
  if (issuer.keyUsage !== undefined && !issuer.keyUsage.includes("keyCertSign")) {
    return {
      rank: 3,
      error: new CertificateError(
        "CERT_NOT_CA",
        `certificate ${name} issued ${certificateLabel(child)} but its keyUsage does not include keyCertSign`,
      ),
    };
  }
  if (issuer.pathLen !== undefined && intermediatesBelow > issuer.pathLen) {
    return {
      rank: 3,
      error: new CertificateError(
        "CERT_NOT_CA",
        `CA ${name} allows at most ${issuer.pathLen} intermediate CA${issuer.pathLen === 1 ? "" : "s"} below it (pathLen), but the chain has ${intermediatesBelow}`,
      ),
    };
  }
  const sig = checkSignature(child, issuer, provider);
  if (sig) return sig;
  try {
    checkValidity(issuer, now, role);
    if (!isAnchor) checkCriticalExtensions(issuer);
  } catch (e) {
    return { rank: 4, error: e as CertificateError };
  }
  return undefined;
}

const SUPPORTED_KEYS = "EC P-256, Ed25519 and RSA";

function checkSignature(
  child: Certificate,
  issuer: Certificate,
  provider: CryptoProvider,
): Failure | undefined {
  const alg = child.signatureAlgorithm;
  const childName = certificateLabel(child);
  const issuerName = certificateLabel(issuer);
  if (alg.scheme === undefined) {
    return {
      rank: 2,
      error: new CertificateError(
        "CERT_UNSUPPORTED_ALGORITHM",
        `unsupported signature algorithm ${alg.name} on certificate ${childName} (mquictt verifies ecdsa-with-SHA256, Ed25519, sha256WithRSAEncryption and RSASSA-PSS with SHA-256)`,
      ),
    };
  }
  const key: PublicKey | undefined = issuer.publicKey;
  if (key === undefined) {
    return {
      rank: 2,
      error: new CertificateError(
        "CERT_UNSUPPORTED_ALGORITHM",
        `the key of issuer ${issuerName} is ${issuer.publicKeyAlgorithm}, which mquictt cannot verify signatures with (supported: ${SUPPORTED_KEYS})`,
      ),
    };
  }
  const keyFits =
    (alg.scheme === "ecdsa_secp256r1_sha256" && key.kind === "ec-p256") ||
    (alg.scheme === "ed25519" && key.kind === "ed25519") ||
    ((alg.scheme === "rsa_pkcs1_sha256" || alg.scheme === "rsa_pss_rsae_sha256") && key.kind === "rsa");
  if (!keyFits) {
    return {
      rank: 3,
      error: new CertificateError(
        "CERT_BAD_SIGNATURE",
        `certificate ${childName} is signed with ${alg.name}, which does not fit the ${issuer.publicKeyAlgorithm} key of its issuer ${issuerName}`,
      ),
    };
  }
  // parseCertificate returns one object per distinct DER, so a signature checked once (a client
  // reconnecting to the same server sees the same chain) is not checked again.
  const seen = verifiedSignatures.get(child);
  if (seen?.issuer === issuer && seen.provider === provider) return undefined;
  let ok: boolean;
  try {
    ok = provider.verify(alg.scheme, key, child.tbs, child.signature);
  } catch (e) {
    return {
      rank: 2,
      error: new CertificateError(
        "CERT_UNSUPPORTED_ALGORITHM",
        `cannot verify the ${alg.name} signature on certificate ${childName} with the ${provider.name} crypto provider: ${(e as Error).message}`,
        { cause: e },
      ),
    };
  }
  if (!ok) {
    return {
      rank: 3,
      error: new CertificateError(
        "CERT_BAD_SIGNATURE",
        `the signature on certificate ${childName} does not verify with the key of its issuer ${issuerName}: the certificate was altered, or a different key with the same issuer name signed it`,
      ),
    };
  }
  verifiedSignatures.set(child, { issuer, provider });
  return undefined;
}

/** The issuer (and provider) whose key last verified a certificate's signature; only successes are kept. */
const verifiedSignatures = new WeakMap<Certificate, { issuer: Certificate; provider: CryptoProvider }>();

// --- names (RFC 6125) ---------------------------------------------------------------------------

/**
 * Whether `cert` is valid for `serverName` (RFC 6125 §6): an IP address matches IP SANs only;
 * a DNS name matches a DNS SAN exactly (case-insensitive, trailing dot ignored) or a wildcard
 * SAN "*.example.com" whose "*" stands for exactly one whole left-most label. The subject CN is
 * consulted only when the certificate has no DNS or IP SAN at all.
 */
export function matchesServerName(cert: Certificate, serverName: string): boolean {
  const ip = parseIpAddress(serverName);
  if (ip) {
    const wanted = formatIpAddress(ip);
    return cert.subjectAltNames.ip.includes(wanted);
  }
  const host = normalizeDns(serverName);
  if (host === "") return false;
  const hasSans = cert.subjectAltNames.dns.length > 0 || cert.subjectAltNames.ip.length > 0;
  const patterns = hasSans
    ? cert.subjectAltNames.dns
    : cert.commonName !== undefined
      ? [cert.commonName]
      : [];
  return patterns.some((p) => matchDnsPattern(normalizeDns(p), host));
}

function normalizeDns(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith(".") ? n.slice(0, -1) : n;
}

function matchDnsPattern(pattern: string, host: string): boolean {
  if (pattern === "" || host.includes("*")) return false;
  if (!pattern.includes("*")) return pattern === host;
  // Only a whole left-most "*" label, followed by at least two labels ("*.com" matches nothing).
  if (!pattern.startsWith("*.")) return false;
  const rest = pattern.slice(2);
  if (rest.includes("*") || rest.split(".").length < 2 || rest.split(".").some((l) => l === "")) return false;
  const dot = host.indexOf(".");
  if (dot <= 0) return false;
  return host.slice(dot + 1) === rest;
}

function checkServerName(leaf: Certificate, serverName: string): void {
  if (matchesServerName(leaf, serverName)) return;
  const names = [...leaf.subjectAltNames.dns, ...leaf.subjectAltNames.ip];
  const label = certificateLabel(leaf);
  if (names.length === 0) {
    throw new CertificateError(
      "CERT_NAME_MISMATCH",
      `certificate ${label} has no subjectAltName${leaf.commonName !== undefined ? ` and its CN ${leaf.commonName}` : " and no CN that"} does not match ${serverName}`,
    );
  }
  const ipNote =
    parseIpAddress(serverName) !== undefined && leaf.subjectAltNames.ip.length === 0
      ? "; an IP address matches only IP SANs"
      : "";
  throw new CertificateError(
    "CERT_NAME_MISMATCH",
    `no SAN of certificate ${label} matches ${serverName} (it names: ${names.join(", ")})${ipNote}`,
  );
}

function checkPurpose(leaf: Certificate, purpose: CertificatePurpose): void {
  if (purpose === "any" || leaf.extKeyUsage === undefined) return;
  if (leaf.extKeyUsage.includes(purpose) || leaf.extKeyUsage.includes("anyExtendedKeyUsage")) return;
  throw new CertificateError(
    "CERT_WRONG_PURPOSE",
    `certificate ${certificateLabel(leaf)} is not allowed for ${purpose === "serverAuth" ? "TLS servers" : "TLS clients"} (its extendedKeyUsage is ${leaf.extKeyUsage.join(", ")})`,
  );
}
