/**
 * Certificate generation for development and tests: a self-signed server certificate, a test
 * CA, and leaves or intermediates issued by it. Real X.509 v3 (RFC 5280) that OpenSSL and
 * Node accept: random positive serials, basicConstraints, keyUsage, extKeyUsage serverAuth,
 * subjectAltName DNS/IP, subject and authority key identifiers. Signed through the
 * {@link CryptoProvider}; keys drawn from the injected {@link Rng}; time from `now`.
 *
 * @example
 *   const ca = generateTestCA({ commonName: "mquictt test CA", provider, rng, now: Date.now() });
 *   const leaf = issueLeaf(ca, { commonName: "localhost", dns: ["localhost"], ips: ["127.0.0.1"],
 *                                provider, rng, now: Date.now() });
 *   // leaf.pem + ca.pem is the server's chain; ca.pem is the client's trust anchor.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256 } from "@noble/curves/nist.js";
import { ECParameters, id_ecPublicKey, id_secp256r1 } from "@peculiar/asn1-ecc";
import { id_rsaEncryption, RSAPublicKey } from "@peculiar/asn1-rsa";
import { AsnParser, AsnSerializer, OctetString } from "@peculiar/asn1-schema";
import {
  AlgorithmIdentifier,
  Certificate as AsnCertificate,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from "@peculiar/asn1-x509";
import type { CryptoProvider, PrivateKey, PublicKey, Rng, SignatureScheme } from "../crypto/provider.js";
import { bytesEqual, fromHex } from "../util/bytes.js";
import { CertificateError } from "./cert-error.js";
import { encodePem, encodePrivateKeyPem, publicKeyOf } from "./pem.js";
import { type Certificate, canonicalIp, parseCertificate } from "./x509.js";

/** Key types the generator makes. */
export type CertKeyType = "ecdsa-p256" | "ed25519";

/** A certificate together with its private key, in every form a caller needs. */
export interface GeneratedCertificate {
  /** The certificate, DER. */
  readonly der: Uint8Array;
  /** The certificate, PEM ("CERTIFICATE"). */
  readonly pem: string;
  /** The certificate, parsed. */
  readonly certificate: Certificate;
  /** Its private key. */
  readonly key: PrivateKey;
  /** Its private key as PKCS#8 PEM ("PRIVATE KEY"). */
  readonly keyPem: string;
}

/** What every generator call needs: the crypto provider, randomness and the current time. */
export interface GeneratorContext {
  /** Signs the certificate (and hashes the key identifiers). */
  readonly provider: CryptoProvider;
  /** Source of the key and the serial number. */
  readonly rng: Rng;
  /** The current time; validity starts 5 minutes before it (clock skew) unless `notBefore` is given. */
  readonly now: Date | number;
}

/** Subject, key and validity of a certificate to make. */
export interface CertificateSpec extends GeneratorContext {
  /** Subject commonName. */
  readonly commonName: string;
  /** Subject organizationName (default none). */
  readonly organization?: string;
  /** subjectAltName DNS names (leaves). */
  readonly dns?: readonly string[];
  /** subjectAltName IP addresses, IPv4 or IPv6 text (leaves). */
  readonly ips?: readonly string[];
  /** Key type of the new certificate (default "ecdsa-p256"); ignored when `key` is given. */
  readonly keyType?: CertKeyType;
  /** Use this key instead of generating one. */
  readonly key?: PrivateKey;
  /** Validity in days from `now` (default 365 for leaves, 3650 for CAs). */
  readonly validityDays?: number;
  /** Exact start of validity (overrides the `now`-based default). */
  readonly notBefore?: Date;
  /** Exact end of validity (overrides `validityDays`). */
  readonly notAfter?: Date;
  /** extKeyUsage purposes of a leaf (default ["serverAuth"]). */
  readonly extKeyUsage?: readonly ("serverAuth" | "clientAuth")[];
}

/** Options of a CA or intermediate certificate. */
export interface CASpec extends Omit<CertificateSpec, "dns" | "ips" | "extKeyUsage"> {
  /** basicConstraints pathLenConstraint (default none: unlimited). */
  readonly pathLen?: number;
}

const DAY_MS = 86_400_000;
const SKEW_MS = 5 * 60_000;
const OID_CN = "2.5.4.3";
const OID_O = "2.5.4.10";
const OID_ED25519 = "1.3.101.112";
const EKU_OIDS = { serverAuth: "1.3.6.1.5.5.7.3.1", clientAuth: "1.3.6.1.5.5.7.3.2" } as const;

/**
 * A fresh private key from `rng`: a P-256 scalar in [1, n-1] (rejection sampling), or an
 * Ed25519 seed; public half filled in.
 */
export function generatePrivateKey(keyType: CertKeyType, rng: Rng): PrivateKey {
  if (keyType === "ed25519") {
    const seed = rng.fill(new Uint8Array(32));
    return { kind: "ed25519", seed, key: ed25519.getPublicKey(seed) };
  }
  for (;;) {
    const d = rng.fill(new Uint8Array(32));
    if (p256.utils.isValidSecretKey(d)) return { kind: "ec-p256", d, point: p256.getPublicKey(d, false) };
  }
}

/**
 * A self-signed end-entity certificate (CA:FALSE, digitalSignature, serverAuth, SANs) — what
 * `mquictt cert --self-signed` writes. Clients trust it by listing it as their root.
 */
export function generateSelfSigned(spec: CertificateSpec): GeneratedCertificate {
  const key = spec.key ?? generatePrivateKey(spec.keyType ?? "ecdsa-p256", spec.rng);
  const subject = makeName(spec.commonName, spec.organization);
  return build(spec, {
    subject,
    subjectKey: key,
    issuer: subject,
    issuerKey: key,
    issuerKeyId: undefined,
    extensions: leafExtensions(spec),
    defaultDays: 365,
  });
}

/** A self-signed root CA (CA:TRUE critical, keyCertSign + cRLSign critical, subjectKeyIdentifier). */
export function generateTestCA(spec: CASpec): GeneratedCertificate {
  const key = spec.key ?? generatePrivateKey(spec.keyType ?? "ecdsa-p256", spec.rng);
  const subject = makeName(spec.commonName, spec.organization);
  return build(spec, {
    subject,
    subjectKey: key,
    issuer: subject,
    issuerKey: key,
    issuerKeyId: undefined,
    extensions: caExtensions(spec.pathLen),
    defaultDays: 3650,
  });
}

/** An intermediate CA issued by `issuer` (a CA from {@link generateTestCA} or another intermediate). */
export function issueIntermediate(issuer: GeneratedCertificate, spec: CASpec): GeneratedCertificate {
  const key = spec.key ?? generatePrivateKey(spec.keyType ?? "ecdsa-p256", spec.rng);
  return build(spec, {
    subject: makeName(spec.commonName, spec.organization),
    subjectKey: key,
    issuer: issuerName(issuer),
    issuerKey: issuer.key,
    issuerKeyId: issuer.certificate.subjectKeyId,
    extensions: caExtensions(spec.pathLen),
    defaultDays: 1825,
  });
}

/**
 * A server (or client) certificate issued by `issuer`: CA:FALSE, digitalSignature, extKeyUsage
 * serverAuth by default, SANs from `dns` and `ips`, authorityKeyIdentifier of the issuer.
 */
export function issueLeaf(issuer: GeneratedCertificate, spec: CertificateSpec): GeneratedCertificate {
  const key = spec.key ?? generatePrivateKey(spec.keyType ?? "ecdsa-p256", spec.rng);
  return build(spec, {
    subject: makeName(spec.commonName, spec.organization),
    subjectKey: key,
    issuer: issuerName(issuer),
    issuerKey: issuer.key,
    issuerKeyId: issuer.certificate.subjectKeyId,
    extensions: leafExtensions(spec),
    defaultDays: 365,
  });
}

/** SubjectPublicKeyInfo DER of a public key (RFC 5480 for P-256, RFC 8410 for Ed25519, RFC 8017 for RSA). */
export function encodeSubjectPublicKeyInfo(key: PublicKey): Uint8Array {
  return new Uint8Array(AsnSerializer.serialize(spkiOf(key)));
}

// --- internals ----------------------------------------------------------------------------------

interface BuildParams {
  subject: Name;
  subjectKey: PrivateKey;
  issuer: Name;
  issuerKey: PrivateKey;
  issuerKeyId: string | undefined;
  extensions: Extension[];
  defaultDays: number;
}

function build(spec: CertificateSpec | CASpec, p: BuildParams): GeneratedCertificate {
  const now = typeof spec.now === "number" ? spec.now : spec.now.getTime();
  const notBefore = spec.notBefore ?? new Date(now - SKEW_MS);
  const notAfter = spec.notAfter ?? new Date(now + (spec.validityDays ?? p.defaultDays) * DAY_MS);
  if (notAfter.getTime() < notBefore.getTime()) {
    throw new RangeError(`notAfter ${notAfter.toISOString()} is before notBefore ${notBefore.toISOString()}`);
  }
  const spki = spkiOf(publicKeyOf(p.subjectKey));
  const keyId = spec.provider.hash("sha256", new Uint8Array(spki.subjectPublicKey)).slice(0, 20); // RFC 7093 §2 method 1
  const extensions = [
    ...p.extensions,
    ext(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyId)),
  ];
  if (p.issuerKeyId !== undefined || p.issuerKey !== p.subjectKey) {
    const aki = new AuthorityKeyIdentifier({
      keyIdentifier: new KeyIdentifier(p.issuerKeyId !== undefined ? fromHex(p.issuerKeyId) : keyId),
    });
    extensions.push(ext(id_ce_authorityKeyIdentifier, false, aki));
  }
  const { scheme, algorithm } = signatureAlgorithmFor(p.issuerKey);
  const tbsCertificate = new TBSCertificate({
    version: Version.v3,
    serialNumber: randomSerial(spec.rng),
    signature: algorithm,
    issuer: p.issuer,
    validity: new Validity({ notBefore, notAfter }),
    subject: p.subject,
    subjectPublicKeyInfo: spki,
    extensions: new Extensions(extensions),
  });
  const tbs = new Uint8Array(AsnSerializer.serialize(tbsCertificate));
  const signature = spec.provider.sign(scheme, p.issuerKey, tbs, spec.rng);
  const der = new Uint8Array(
    AsnSerializer.serialize(
      new AsnCertificate({
        tbsCertificate,
        signatureAlgorithm: algorithm,
        signatureValue: Uint8Array.from(signature).buffer,
      }),
    ),
  );
  const certificate = parseCertificate(der, "the generated certificate");
  if (!bytesEqual(certificate.tbs, tbs)) {
    throw new CertificateError(
      "CERT_PARSE_ERROR",
      "the generated certificate does not re-encode as it was signed",
    );
  }
  return {
    der,
    pem: encodePem("CERTIFICATE", der),
    certificate,
    key: p.subjectKey,
    keyPem: encodePrivateKeyPem(p.subjectKey),
  };
}

function signatureAlgorithmFor(key: PrivateKey): { scheme: SignatureScheme; algorithm: AlgorithmIdentifier } {
  switch (key.kind) {
    case "ec-p256": // RFC 5758 §3.2: parameters absent
      return {
        scheme: "ecdsa_secp256r1_sha256",
        algorithm: new AlgorithmIdentifier({ algorithm: "1.2.840.10045.4.3.2" }),
      };
    case "ed25519": // RFC 8410 §6: parameters absent
      return { scheme: "ed25519", algorithm: new AlgorithmIdentifier({ algorithm: OID_ED25519 }) };
    case "rsa": // RFC 4055 §5: parameters NULL
      return {
        scheme: "rsa_pkcs1_sha256",
        algorithm: new AlgorithmIdentifier({ algorithm: "1.2.840.113549.1.1.11", parameters: null }),
      };
  }
}

function spkiOf(key: PublicKey): SubjectPublicKeyInfo {
  switch (key.kind) {
    case "ec-p256":
      return new SubjectPublicKeyInfo({
        algorithm: new AlgorithmIdentifier({
          algorithm: id_ecPublicKey,
          parameters: AsnSerializer.serialize(new ECParameters({ namedCurve: id_secp256r1 })),
        }),
        subjectPublicKey: Uint8Array.from(key.point).buffer,
      });
    case "ed25519":
      return new SubjectPublicKeyInfo({
        algorithm: new AlgorithmIdentifier({ algorithm: OID_ED25519 }),
        subjectPublicKey: Uint8Array.from(key.key).buffer,
      });
    case "rsa":
      return new SubjectPublicKeyInfo({
        algorithm: new AlgorithmIdentifier({ algorithm: id_rsaEncryption, parameters: null }),
        subjectPublicKey: AsnSerializer.serialize(
          new RSAPublicKey({ modulus: unsigned(key.n), publicExponent: unsigned(key.e) }),
        ),
      });
  }
}

function unsigned(b: Uint8Array): ArrayBuffer {
  return (b[0] & 0x80 ? Uint8Array.from([0, ...b]) : Uint8Array.from(b)).buffer;
}

/** 16 random bytes, positive and minimally encoded (RFC 5280 §4.1.2.2: at most 20 octets). */
function randomSerial(rng: Rng): ArrayBuffer {
  const s = new Uint8Array(new ArrayBuffer(16));
  rng.fill(s);
  s[0] &= 0x7f;
  if (s[0] === 0) s[0] = 1;
  return s.buffer;
}

function makeName(commonName: string, organization: string | undefined): Name {
  const rdn = (oid: string, value: string): RelativeDistinguishedName =>
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type: oid, value: new AttributeValue({ utf8String: value }) }),
    ]);
  const rdns: RelativeDistinguishedName[] = [];
  if (organization !== undefined) rdns.push(rdn(OID_O, organization));
  rdns.push(rdn(OID_CN, commonName));
  return new Name(rdns);
}

/** The issuer's subject Name, re-read from its DER so the child's issuer matches it byte for byte. */
function issuerName(issuer: GeneratedCertificate): Name {
  return AsnParser.parse(issuer.certificate.subjectDer, Name);
}

function ext(id: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID: id, critical, extnValue: new OctetString(AsnSerializer.serialize(value)) });
}

function caExtensions(pathLen: number | undefined): Extension[] {
  return [
    ext(id_ce_basicConstraints, true, new BasicConstraints({ cA: true, pathLenConstraint: pathLen })),
    ext(
      id_ce_keyUsage,
      true,
      new KeyUsage(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature),
    ),
  ];
}

function leafExtensions(spec: CertificateSpec): Extension[] {
  const names: GeneralName[] = [];
  for (const d of spec.dns ?? []) {
    if (!/^(\*\.)?([a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\.?$/i.test(d)) {
      throw new RangeError(`"${d}" is not a DNS name`);
    }
    names.push(new GeneralName({ dNSName: d.toLowerCase() }));
  }
  for (const ip of spec.ips ?? []) {
    const c = canonicalIp(ip);
    if (c === undefined) throw new RangeError(`"${ip}" is not an IP address`);
    names.push(new GeneralName({ iPAddress: c }));
  }
  const eku = spec.extKeyUsage ?? ["serverAuth"];
  const out = [
    ext(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })),
    ext(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature)),
  ];
  if (eku.length > 0)
    out.push(ext(id_ce_extKeyUsage, false, new ExtendedKeyUsage(eku.map((e) => EKU_OIDS[e]))));
  if (names.length > 0) out.push(ext(id_ce_subjectAltName, false, new SubjectAlternativeName(names)));
  return out;
}
