/**
 * X.509 v3 certificate parsing (RFC 5280 §4) into a plain, provider-independent record: the
 * exact signed TBSCertificate bytes, readable and raw names, validity, SANs, basic constraints,
 * key usage, the subject public key as a {@link PublicKey}, and the signature algorithm mapped
 * to the {@link SignatureScheme} that verifies it.
 *
 * The DER itself is decoded by asn1js / @peculiar/asn1-x509; this module only maps the result
 * and turns every failure into a {@link CertificateError} with code `CERT_PARSE_ERROR` that
 * says which certificate failed and why. No verification happens here (see ./verify.ts).
 */
import { p256 } from "@noble/curves/nist.js";
import { ECParameters, id_ecPublicKey, id_secp256r1 } from "@peculiar/asn1-ecc";
import { id_RSASSA_PSS, id_rsaEncryption, RSAPublicKey, RsaSaPssParams } from "@peculiar/asn1-rsa";
import { AsnParser } from "@peculiar/asn1-schema";
import {
  AlgorithmIdentifier,
  Certificate as AsnCertificate,
  AuthorityKeyIdentifier,
  BasicConstraints,
  ExtendedKeyUsage,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  KeyUsage,
  type KeyUsageType,
  type Name,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
} from "@peculiar/asn1-x509";
import * as asn1js from "asn1js";
import type { PublicKey, SignatureScheme } from "../crypto/provider.js";
import { bytesEqual, toHex } from "../util/bytes.js";
import { CertificateError } from "./cert-error.js";
import { bytesToLatin1 } from "./extensions.js";

/** A key usage bit name (RFC 5280 §4.2.1.3), as @peculiar/asn1-x509 spells them. */
export type KeyUsageName = KeyUsageType;

/** The algorithm a certificate is signed with, and the scheme our crypto provider verifies it with. */
export interface CertificateSignatureAlgorithm {
  /** The AlgorithmIdentifier OID, dotted. */
  readonly oid: string;
  /**
   * Readable name such as "ecdsa-with-SHA256", "Ed25519", "sha256WithRSAEncryption",
   * "RSASSA-PSS (SHA-256)", or "unsupported: 1.2.3.4" for an OID we do not know.
   */
  readonly name: string;
  /** The scheme to pass to `CryptoProvider.verify`, or undefined when we cannot verify this algorithm. */
  readonly scheme: SignatureScheme | undefined;
}

/** A parsed X.509 certificate. All byte fields are copies owned by this record. */
export interface Certificate {
  /** The whole certificate, DER. */
  readonly der: Uint8Array;
  /** The exact TBSCertificate bytes the issuer signed. */
  readonly tbs: Uint8Array;
  /** 1, 2 or 3. */
  readonly version: number;
  /** Serial number, lowercase hex of the INTEGER's content bytes. */
  readonly serialNumber: string;
  /** Subject in RFC 4514 order, e.g. "CN=localhost, O=mquictt" ("" when the subject is empty). */
  readonly subject: string;
  /** Subject Name exactly as encoded (for issuer/subject matching). */
  readonly subjectDer: Uint8Array;
  /** The subject's first commonName, if any. */
  readonly commonName: string | undefined;
  /** Issuer in RFC 4514 order, e.g. "CN=mquictt test CA". */
  readonly issuer: string;
  /** Issuer Name exactly as encoded. */
  readonly issuerDer: Uint8Array;
  /** Start of the validity period. */
  readonly notBefore: Date;
  /** End of the validity period (inclusive, RFC 5280 §4.1.2.5). */
  readonly notAfter: Date;
  /** DNS names and IP addresses from subjectAltName (IPs in canonical text: "127.0.0.1", "::1"). */
  readonly subjectAltNames: { readonly dns: readonly string[]; readonly ip: readonly string[] };
  /** basicConstraints cA (false when the extension is absent). */
  readonly isCA: boolean;
  /** basicConstraints pathLenConstraint, if present. */
  readonly pathLen: number | undefined;
  /** keyUsage bits, or undefined when the extension is absent (no restriction). */
  readonly keyUsage: readonly KeyUsageName[] | undefined;
  /** extKeyUsage purposes ("serverAuth", "clientAuth", ... or dotted OIDs), or undefined when absent. */
  readonly extKeyUsage: readonly string[] | undefined;
  /** subjectKeyIdentifier, hex. */
  readonly subjectKeyId: string | undefined;
  /** authorityKeyIdentifier keyIdentifier, hex. */
  readonly authorityKeyId: string | undefined;
  /** The subject public key, or undefined when its algorithm is one we cannot use (see `publicKeyAlgorithm`). */
  readonly publicKey: PublicKey | undefined;
  /** Readable key algorithm: "EC P-256", "Ed25519", "RSA 2048-bit", "EC P-384", "unsupported: <oid>". */
  readonly publicKeyAlgorithm: string;
  /** The SubjectPublicKeyInfo exactly as encoded (for key pinning). */
  readonly spki: Uint8Array;
  /** The outer signature algorithm. */
  readonly signatureAlgorithm: CertificateSignatureAlgorithm;
  /** The signature bytes (for ECDSA the DER ECDSA-Sig-Value as is). */
  readonly signature: Uint8Array;
  /** OIDs of critical extensions this module does not process (RFC 5280 §4.2 says reject those). */
  readonly unhandledCriticalExtensions: readonly string[];
}

// --- OIDs ---------------------------------------------------------------------------------------

const OID_ED25519 = "1.3.101.112";
const OID_ED448 = "1.3.101.113";
const OID_SHA256 = "2.16.840.1.101.3.4.2.1";
const OID_MGF1 = "1.2.840.113549.1.1.8";

/** Signature algorithms we can name; those with a scheme we can also verify. */
const SIGNATURE_ALGORITHMS: Record<string, { name: string; scheme?: SignatureScheme }> = {
  "1.2.840.10045.4.3.2": { name: "ecdsa-with-SHA256", scheme: "ecdsa_secp256r1_sha256" },
  "1.2.840.10045.4.3.3": { name: "ecdsa-with-SHA384" },
  "1.2.840.10045.4.3.4": { name: "ecdsa-with-SHA512" },
  "1.2.840.10045.4.1": { name: "ecdsa-with-SHA1" },
  [OID_ED25519]: { name: "Ed25519", scheme: "ed25519" },
  [OID_ED448]: { name: "Ed448" },
  "1.2.840.113549.1.1.11": { name: "sha256WithRSAEncryption", scheme: "rsa_pkcs1_sha256" },
  "1.2.840.113549.1.1.12": { name: "sha384WithRSAEncryption" },
  "1.2.840.113549.1.1.13": { name: "sha512WithRSAEncryption" },
  "1.2.840.113549.1.1.14": { name: "sha224WithRSAEncryption" },
  "1.2.840.113549.1.1.5": { name: "sha1WithRSAEncryption" },
  "1.2.840.113549.1.1.4": { name: "md5WithRSAEncryption" },
};

const HASH_NAMES: Record<string, string> = {
  "1.3.14.3.2.26": "SHA-1",
  "2.16.840.1.101.3.4.2.4": "SHA-224",
  [OID_SHA256]: "SHA-256",
  "2.16.840.1.101.3.4.2.2": "SHA-384",
  "2.16.840.1.101.3.4.2.3": "SHA-512",
};

const CURVE_NAMES: Record<string, string> = {
  [id_secp256r1]: "P-256",
  "1.3.132.0.34": "P-384",
  "1.3.132.0.35": "P-521",
  "1.3.132.0.10": "secp256k1",
};

/** Short names of attribute types for readable Names (RFC 4514 §3 plus common extras). */
const ATTRIBUTE_NAMES: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.4": "SN",
  "2.5.4.5": "serialNumber",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.9": "STREET",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.12": "title",
  "2.5.4.42": "GN",
  "2.5.4.97": "organizationIdentifier",
  "0.9.2342.19200300.100.1.1": "UID",
  "0.9.2342.19200300.100.1.25": "DC",
  "1.2.840.113549.1.9.1": "emailAddress",
};

const EKU_NAMES: Record<string, string> = {
  "1.3.6.1.5.5.7.3.1": "serverAuth",
  "1.3.6.1.5.5.7.3.2": "clientAuth",
  "1.3.6.1.5.5.7.3.3": "codeSigning",
  "1.3.6.1.5.5.7.3.4": "emailProtection",
  "1.3.6.1.5.5.7.3.8": "timeStamping",
  "1.3.6.1.5.5.7.3.9": "OCSPSigning",
  "2.5.29.37.0": "anyExtendedKeyUsage",
};

/** Extensions this module understands (others marked critical are reported in `unhandledCriticalExtensions`). */
const HANDLED_EXTENSIONS = new Set([
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_extKeyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_ce_authorityKeyIdentifier,
]);

// --- parsing ------------------------------------------------------------------------------------

/** Limits for asn1js on untrusted input: certificates are shallow and a few KB. */
const BER_LIMITS = { maxDepth: 32, maxNodes: 20_000, maxContentLength: 1 << 20 };

class Invalid extends Error {}

function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * Parses one DER certificate. `what` names it in error messages ("certificate #2 in the
 * chain", "the root certificate in ca.pem"); default "certificate".
 *
 * @throws {CertificateError} `CERT_PARSE_ERROR` saying what failed, e.g.
 *   "certificate #2 in the chain is not valid DER: unexpected end of data (at byte 312 of 1024)".
 * @example
 *   const cert = parseCertificate(derBytes);
 *   cert.subject; // "CN=localhost, O=mquictt"
 */
export function parseCertificate(der: Uint8Array, what = "certificate"): Certificate {
  // A client sees the same server chain on every reconnect: parsing (and importing its key) is
  // a large share of a handshake's CPU, so parsed certificates are kept by their exact bytes.
  const key = bytesToLatin1(der);
  const cached = parsedCache.get(key);
  if (cached !== undefined) {
    parsedCache.delete(key);
    parsedCache.set(key, cached);
    return cached;
  }
  const cert = parseUncached(der, what);
  parsedCache.set(key, cert);
  if (parsedCache.size > PARSED_CACHE_SIZE) parsedCache.delete(parsedCache.keys().next().value as string);
  return cert;
}

/** Most parsed certificates kept (least recently used forgotten first). */
const PARSED_CACHE_SIZE = 512;
/** Parsed certificates by DER (a latin1 string of the bytes); only successes are kept. */
const parsedCache = new Map<string, Certificate>();

function parseUncached(der: Uint8Array, what: string): Certificate {
  const own = Uint8Array.from(der);
  if (own.length === 0) throw new CertificateError("CERT_PARSE_ERROR", `${what} is empty (0 bytes)`);

  let root: asn1js.AsnType;
  try {
    const decoded = asn1js.fromBER(own, BER_LIMITS);
    if (decoded.offset === -1) {
      const r = decoded.result;
      const announced = r.idBlock.blockLength + r.lenBlock.blockLength + r.lenBlock.length;
      if (r.lenBlock.length > 0 && !r.lenBlock.isIndefiniteForm && announced > own.length) {
        throw new Invalid(
          `truncated: its header announces ${announced} bytes but only ${own.length} are present`,
        );
      }
      throw new Invalid(r.error || "cannot decode");
    }
    if (decoded.offset !== own.length) {
      throw new Invalid(`${own.length - decoded.offset} unexpected bytes after the certificate's end`);
    }
    root = decoded.result;
  } catch (e) {
    throw new CertificateError(
      "CERT_PARSE_ERROR",
      `${what} is not valid DER: ${describeError(e)} (${own.length} bytes starting ${toHex(own.subarray(0, 8))})`,
      { cause: e },
    );
  }

  try {
    return mapCertificate(own, root);
  } catch (e) {
    if (e instanceof CertificateError) throw e;
    throw new CertificateError(
      "CERT_PARSE_ERROR",
      `${what} is not a valid X.509 certificate: ${describeError(e)}`,
      { cause: e },
    );
  }
}

/**
 * Parses a chain as sent in a TLS Certificate message (leaf first). Errors name the position:
 * the leaf is "certificate #1 in the chain", its issuer "#2", and so on.
 *
 * @throws {CertificateError} `CERT_PARSE_ERROR`.
 */
export function parseCertificateChain(chainDer: readonly Uint8Array[]): Certificate[] {
  return chainDer.map((der, i) => parseCertificate(der, `certificate #${i + 1} in the chain`));
}

/** The raw encodings of a TBSCertificate's issuer, subject and SPKI, from the asn1js tree. */
function rawParts(root: asn1js.AsnType): { issuer: Uint8Array; subject: Uint8Array; spki: Uint8Array } {
  if (!(root instanceof asn1js.Sequence)) throw new Invalid("the outer element is not a SEQUENCE");
  const tbs = root.valueBlock.value[0];
  if (!(tbs instanceof asn1js.Sequence)) throw new Invalid("TBSCertificate is not a SEQUENCE");
  const items = tbs.valueBlock.value;
  const first = items[0];
  const off = first && first.idBlock.tagClass === 3 && first.idBlock.tagNumber === 0 ? 1 : 0;
  const issuer = items[off + 2];
  const subject = items[off + 4];
  const spki = items[off + 5];
  if (!issuer || !subject || !spki) throw new Invalid("TBSCertificate has too few fields");
  return {
    issuer: Uint8Array.from(issuer.valueBeforeDecodeView),
    subject: Uint8Array.from(subject.valueBeforeDecodeView),
    spki: Uint8Array.from(spki.valueBeforeDecodeView),
  };
}

function mapCertificate(der: Uint8Array, root: asn1js.AsnType): Certificate {
  const cert = AsnParser.fromASN(root, AsnCertificate);
  const tbsCert = cert.tbsCertificate;
  if (!cert.tbsCertificateRaw) throw new Invalid("TBSCertificate bytes missing");
  const tbs = new Uint8Array(cert.tbsCertificateRaw.slice(0));
  const raw = rawParts(root);

  const version = Number(tbsCert.version) + 1;
  if (!(version >= 1 && version <= 3)) throw new Invalid(`unknown version ${version}`);

  const innerAlg = tbsCert.signature;
  const outerAlg = cert.signatureAlgorithm;
  if (
    innerAlg.algorithm !== outerAlg.algorithm ||
    !optionalBytesEqual(innerAlg.parameters ?? null, outerAlg.parameters ?? null)
  ) {
    throw new Invalid(
      `the signature algorithm inside (${innerAlg.algorithm}) differs from the one outside (${outerAlg.algorithm})`,
    );
  }

  const notBefore = tbsCert.validity.notBefore.getTime();
  const notAfter = tbsCert.validity.notAfter.getTime();
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) {
    throw new Invalid("the validity dates are not valid times");
  }

  const ext = mapExtensions(tbsCert.extensions ?? []);
  const { publicKey, publicKeyAlgorithm } = mapPublicKey(
    tbsCert.subjectPublicKeyInfo.algorithm.algorithm,
    tbsCert.subjectPublicKeyInfo.algorithm.parameters ?? null,
    new Uint8Array(tbsCert.subjectPublicKeyInfo.subjectPublicKey),
  );

  return {
    der,
    tbs,
    version,
    serialNumber: toHex(new Uint8Array(tbsCert.serialNumber)),
    subject: nameToString(tbsCert.subject),
    subjectDer: raw.subject,
    commonName: firstAttribute(tbsCert.subject, "2.5.4.3"),
    issuer: nameToString(tbsCert.issuer),
    issuerDer: raw.issuer,
    notBefore,
    notAfter,
    ...ext,
    publicKey,
    publicKeyAlgorithm,
    spki: raw.spki,
    signatureAlgorithm: mapSignatureAlgorithm(outerAlg.algorithm, outerAlg.parameters ?? null),
    signature: new Uint8Array(cert.signatureValue.slice(0)),
  };
}

function optionalBytesEqual(a: ArrayBuffer | null, b: ArrayBuffer | null): boolean {
  if (a === null || b === null) return a === b;
  return bytesEqual(new Uint8Array(a), new Uint8Array(b));
}

type ExtensionFields = Pick<
  Certificate,
  | "subjectAltNames"
  | "isCA"
  | "pathLen"
  | "keyUsage"
  | "extKeyUsage"
  | "subjectKeyId"
  | "authorityKeyId"
  | "unhandledCriticalExtensions"
>;

function mapExtensions(
  extensions: readonly { extnID: string; critical: boolean; extnValue: { buffer: ArrayBuffer } }[],
): ExtensionFields {
  const seen = new Set<string>();
  const out: {
    -readonly [K in keyof ExtensionFields]: ExtensionFields[K];
  } = {
    subjectAltNames: { dns: [], ip: [] },
    isCA: false,
    pathLen: undefined,
    keyUsage: undefined,
    extKeyUsage: undefined,
    subjectKeyId: undefined,
    authorityKeyId: undefined,
    unhandledCriticalExtensions: [],
  };
  const unhandled: string[] = [];
  for (const e of extensions) {
    if (seen.has(e.extnID)) throw new Invalid(`extension ${e.extnID} appears twice (RFC 5280 §4.2)`);
    seen.add(e.extnID);
    const value = e.extnValue.buffer;
    try {
      switch (e.extnID) {
        case id_ce_basicConstraints: {
          const bc = AsnParser.parse(value, BasicConstraints);
          out.isCA = bc.cA;
          out.pathLen = bc.pathLenConstraint;
          break;
        }
        case id_ce_keyUsage:
          out.keyUsage = AsnParser.parse(value, KeyUsage).toJSON();
          break;
        case id_ce_extKeyUsage:
          out.extKeyUsage = [...AsnParser.parse(value, ExtendedKeyUsage)].map((oid) => EKU_NAMES[oid] ?? oid);
          break;
        case id_ce_subjectAltName: {
          const dns: string[] = [];
          const ip: string[] = [];
          for (const gn of AsnParser.parse(value, SubjectAlternativeName)) {
            if (gn.dNSName !== undefined) dns.push(gn.dNSName);
            else if (gn.iPAddress !== undefined) ip.push(canonicalIp(gn.iPAddress) ?? gn.iPAddress);
          }
          out.subjectAltNames = { dns, ip };
          break;
        }
        case id_ce_subjectKeyIdentifier:
          out.subjectKeyId = toHex(new Uint8Array(AsnParser.parse(value, SubjectKeyIdentifier).buffer));
          break;
        case id_ce_authorityKeyIdentifier: {
          const aki = AsnParser.parse(value, AuthorityKeyIdentifier);
          if (aki.keyIdentifier) out.authorityKeyId = toHex(new Uint8Array(aki.keyIdentifier.buffer));
          break;
        }
        default:
          if (e.critical && !HANDLED_EXTENSIONS.has(e.extnID)) unhandled.push(e.extnID);
      }
    } catch (err) {
      throw new Invalid(
        `extension ${EXTENSION_NAMES[e.extnID] ?? e.extnID} is malformed: ${describeError(err)}`,
      );
    }
  }
  out.unhandledCriticalExtensions = unhandled;
  return out;
}

const EXTENSION_NAMES: Record<string, string> = {
  [id_ce_basicConstraints]: "basicConstraints",
  [id_ce_keyUsage]: "keyUsage",
  [id_ce_extKeyUsage]: "extKeyUsage",
  [id_ce_subjectAltName]: "subjectAltName",
  [id_ce_subjectKeyIdentifier]: "subjectKeyIdentifier",
  [id_ce_authorityKeyIdentifier]: "authorityKeyIdentifier",
};

function mapSignatureAlgorithm(oid: string, params: ArrayBuffer | null): CertificateSignatureAlgorithm {
  if (oid === id_RSASSA_PSS) {
    // RFC 4055 §3.1: only SHA-256 / MGF1-SHA-256 / salt 32 matches TLS's rsa_pss_*_sha256.
    let hash = "SHA-1";
    let mgfHash = "SHA-1";
    let salt = 20;
    if (params !== null) {
      const p = AsnParser.parse(params, RsaSaPssParams);
      hash = HASH_NAMES[p.hashAlgorithm.algorithm] ?? p.hashAlgorithm.algorithm;
      if (p.maskGenAlgorithm.algorithm === OID_MGF1 && p.maskGenAlgorithm.parameters) {
        const inner = AsnParser.parse(p.maskGenAlgorithm.parameters, AlgorithmIdentifier);
        mgfHash = HASH_NAMES[inner.algorithm] ?? inner.algorithm;
      } else {
        mgfHash = `mask ${p.maskGenAlgorithm.algorithm}`;
      }
      salt = p.saltLength;
    }
    const ok = hash === "SHA-256" && mgfHash === "SHA-256" && salt === 32;
    return {
      oid,
      name: ok ? "RSASSA-PSS (SHA-256)" : `RSASSA-PSS (${hash}, MGF1 ${mgfHash}, salt ${salt})`,
      scheme: ok ? "rsa_pss_rsae_sha256" : undefined,
    };
  }
  const known = SIGNATURE_ALGORITHMS[oid];
  if (!known) return { oid, name: `unsupported: ${oid}`, scheme: undefined };
  return { oid, name: known.name, scheme: known.scheme };
}

function mapPublicKey(
  oid: string,
  params: ArrayBuffer | null,
  key: Uint8Array,
): { publicKey: PublicKey | undefined; publicKeyAlgorithm: string } {
  if (oid === id_ecPublicKey) {
    if (params === null) throw new Invalid("EC public key without curve parameters");
    const curveOid = AsnParser.parse(params, ECParameters).namedCurve;
    const curve = curveOid ? (CURVE_NAMES[curveOid] ?? curveOid) : "explicit curve parameters";
    if (curveOid !== id_secp256r1) return { publicKey: undefined, publicKeyAlgorithm: `EC ${curve}` };
    let point = Uint8Array.from(key);
    if (point.length === 33 && (point[0] === 2 || point[0] === 3)) {
      point = p256.Point.fromBytes(point).toBytes(false);
    }
    if (point.length !== 65 || point[0] !== 4) {
      throw new Invalid(`the P-256 public key is ${key.length} bytes, not an uncompressed point`);
    }
    return { publicKey: { kind: "ec-p256", point }, publicKeyAlgorithm: "EC P-256" };
  }
  if (oid === OID_ED25519) {
    if (key.length !== 32) throw new Invalid(`the Ed25519 public key is ${key.length} bytes, not 32`);
    return { publicKey: { kind: "ed25519", key: Uint8Array.from(key) }, publicKeyAlgorithm: "Ed25519" };
  }
  if (oid === id_rsaEncryption || oid === id_RSASSA_PSS) {
    const rsa = AsnParser.parse(key, RSAPublicKey);
    const n = stripLeadingZeros(new Uint8Array(rsa.modulus));
    const e = stripLeadingZeros(new Uint8Array(rsa.publicExponent));
    const bits = bitLength(n);
    return { publicKey: { kind: "rsa", n, e }, publicKeyAlgorithm: `RSA ${bits}-bit` };
  }
  if (oid === OID_ED448) return { publicKey: undefined, publicKeyAlgorithm: "Ed448" };
  return { publicKey: undefined, publicKeyAlgorithm: `unsupported: ${oid}` };
}

function stripLeadingZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.slice(i);
}

function bitLength(b: Uint8Array): number {
  if (b.length === 0) return 0;
  return (b.length - 1) * 8 + (32 - Math.clz32(b[0]));
}

// --- names --------------------------------------------------------------------------------------

/**
 * A Name as RFC 4514 text: RDNs most-specific first, joined by ", "; multi-valued RDNs by "+";
 * unknown attribute types as dotted OIDs; values that are not strings as "#hex".
 */
export function nameToString(name: Name): string {
  const rdns: string[] = [];
  for (const rdn of name) {
    rdns.push(
      [...rdn]
        .map((atv) => {
          const type = ATTRIBUTE_NAMES[atv.type] ?? atv.type;
          const v = atv.value;
          const text =
            v.anyValue !== undefined ? `#${toHex(new Uint8Array(v.anyValue))}` : escapeDnValue(v.toString());
          return `${type}=${text}`;
        })
        .join("+"),
    );
  }
  return rdns.reverse().join(", ");
}

function firstAttribute(name: Name, oid: string): string | undefined {
  for (const rdn of name)
    for (const atv of rdn)
      if (atv.type === oid && atv.value.anyValue === undefined) return atv.value.toString();
  return undefined;
}

/** RFC 4514 §2.4 escaping. */
function escapeDnValue(s: string): string {
  let out = s.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`);
  if (out.startsWith("#") || out.startsWith(" ")) out = `\\${out}`;
  if (out.endsWith(" ") && out.length > 0) out = `${out.slice(0, -1)}\\ `;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we escape
  return out.replace(/[\u0000-\u001f]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/**
 * A short label for messages: the subject ("CN=localhost, O=mquictt"), else the SAN names,
 * else the serial number.
 */
export function certificateLabel(cert: Certificate): string {
  if (cert.subject !== "") return cert.subject;
  const names = [...cert.subjectAltNames.dns, ...cert.subjectAltNames.ip];
  if (names.length > 0) return `for ${names.join(", ")}`;
  return `with serial ${cert.serialNumber}`;
}

// --- IP addresses -------------------------------------------------------------------------------

/**
 * Parses an IPv4 dotted quad or an IPv6 address (RFC 4291 §2.2 text forms, including an embedded
 * IPv4 tail and a "[...]" wrapper) into 4 or 16 bytes, or returns undefined.
 */
export function parseIpAddress(text: string): Uint8Array | undefined {
  let s = text;
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  if (/^\d+\.\d+\.\d+\.\d+$/.test(s)) return parseIpv4(s);
  if (!s.includes(":") || !/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i];
      if (i === pieces.length - 1 && p.includes(".")) {
        const v4 = parseIpv4(p);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
        out.push(Number.parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  let all: number[];
  if (halves.length === 2) {
    if (head.length + tail.length > 7) return undefined;
    all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    if (head.length !== 8) return undefined;
    all = head;
  }
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

function parseIpv4(s: string): Uint8Array | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^(0|[1-9]\d{0,2})$/.test(parts[i])) return undefined;
    const v = Number(parts[i]);
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

/** Canonical text of 4 or 16 address bytes: dotted quad, or RFC 5952 IPv6. */
export function formatIpAddress(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join(".");
  if (b.length !== 16) return toHex(b);
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i] << 8) | b[i + 1]);
  // RFC 5952 §4.2.3: compress the longest run (of 2 or more) of zero groups, the first if tied.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** Canonical form of an IP address text, or undefined when it is not an IP address. */
export function canonicalIp(text: string): string | undefined {
  const b = parseIpAddress(text);
  return b ? formatIpAddress(b) : undefined;
}
