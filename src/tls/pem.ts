/**
 * PEM (RFC 7468) decoding and encoding, certificate chains from PEM text, and private keys in
 * the three formats OpenSSL writes: PKCS#8 "PRIVATE KEY" (RFC 5208/5958; EC P-256, Ed25519
 * (RFC 8410), RSA), SEC1 "EC PRIVATE KEY" (RFC 5915) and PKCS#1 "RSA PRIVATE KEY" (RFC 8017
 * §A.1.2). Pure functions over strings and bytes; reading files is ../net/cert-files.ts's job.
 *
 * Keys come back as the provider-independent {@link PrivateKey}, with the public half filled in
 * (derived with @noble/curves when the file does not carry it, and checked when it does).
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256 } from "@noble/curves/nist.js";
import { ECParameters, ECPrivateKey, id_ecPublicKey, id_secp256r1 } from "@peculiar/asn1-ecc";
import { PrivateKeyInfo } from "@peculiar/asn1-pkcs8";
import { id_rsaEncryption, RSAPrivateKey } from "@peculiar/asn1-rsa";
import { AsnParser, AsnSerializer, OctetString } from "@peculiar/asn1-schema";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";
import type { PrivateKey, PublicKey } from "../crypto/provider.js";
import { bytesEqual } from "../util/bytes.js";
import { CertificateError } from "./cert-error.js";
import { parseCertificate } from "./x509.js";

/** One PEM block. */
export interface PemBlock {
  /** The label between "BEGIN " and the dashes, e.g. "CERTIFICATE", "PRIVATE KEY". */
  readonly label: string;
  /** RFC 1421-style headers ("Proc-Type", "DEK-Info") if the block has any; usually empty. */
  readonly headers: Readonly<Record<string, string>>;
  /** The decoded base64 content. */
  readonly der: Uint8Array;
}

const BEGIN = /^-----BEGIN ([A-Z0-9 ]+)-----\s*$/;
const END = /^-----END ([A-Z0-9 ]+)-----\s*$/;

/**
 * Decodes every PEM block in `text` (RFC 7468 §2), in order. Lines outside blocks are ignored
 * (OpenSSL's "Bag Attributes", `openssl x509 -text` output, comments), as are CRs and
 * surrounding whitespace.
 *
 * @throws {CertificateError} `CERT_PARSE_ERROR` for a block without END, with a mismatched END
 *   label, or with invalid base64 — naming the block and its line.
 */
export function decodePem(text: string): PemBlock[] {
  const lines = text.split(/\r?\n|\r/);
  const blocks: PemBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const begin = BEGIN.exec(lines[i].trim());
    if (!begin) continue;
    const label = begin[1];
    const startLine = i + 1;
    const headers: Record<string, string> = {};
    const body: string[] = [];
    let ended = false;
    let inHeaders = true;
    for (i++; i < lines.length; i++) {
      const line = lines[i].trim();
      const end = END.exec(line);
      if (end) {
        if (end[1] !== label) {
          throw pemError(`PEM block "${label}" starting on line ${startLine} ends with "END ${end[1]}"`);
        }
        ended = true;
        break;
      }
      if (BEGIN.test(line)) {
        throw pemError(
          `PEM block "${label}" starting on line ${startLine} has no END line before line ${i + 1}`,
        );
      }
      if (inHeaders) {
        const h = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
        if (h) {
          headers[h[1]] = h[2];
          continue;
        }
        inHeaders = false;
      }
      if (line !== "") body.push(line);
    }
    if (!ended) throw pemError(`PEM block "${label}" starting on line ${startLine} has no END line`);
    const b64 = body.join("");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 === 1) {
      throw pemError(`PEM block "${label}" starting on line ${startLine} is not valid base64`);
    }
    blocks.push({ label, headers, der: new Uint8Array(Buffer.from(b64, "base64")) });
  }
  return blocks;
}

/** Encodes `der` as one PEM block with 64-character lines (RFC 7468 §2), ending in a newline. */
export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}${lines.length ? "\n" : ""}-----END ${label}-----\n`;
}

function pemError(message: string): CertificateError {
  return new CertificateError("CERT_PARSE_ERROR", message);
}

function keyError(message: string, cause?: unknown): CertificateError {
  return new CertificateError("CERT_BAD_KEY", message, cause === undefined ? undefined : { cause });
}

/**
 * The DER certificates of every "CERTIFICATE" block in `pemText`, in file order (for a server:
 * leaf first, then intermediates). Each is parsed once so a broken file is reported now, with
 * its position, rather than during a handshake.
 *
 * @param source names the text in errors, e.g. the file path; default "the PEM text".
 * @throws {CertificateError} `CERT_PARSE_ERROR` when there is no certificate or one is invalid.
 */
export function loadCertificateChain(pemText: string, source = "the PEM text"): Uint8Array[] {
  const blocks = decodePem(pemText);
  const certs = blocks.filter((b) => b.label === "CERTIFICATE");
  if (certs.length === 0) {
    const found = blocks.length
      ? `it contains: ${blocks.map((b) => b.label).join(", ")}`
      : "it has no PEM blocks";
    throw pemError(`no "BEGIN CERTIFICATE" block in ${source} (${found})`);
  }
  for (const [i, b] of certs.entries()) parseCertificate(b.der, `certificate #${i + 1} in ${source}`);
  return certs.map((b) => b.der);
}

const KEY_LABELS = new Set(["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]);
const OID_ED25519 = "1.3.101.112";
const ENCRYPTED_MESSAGE =
  "encrypted private keys are not supported; decrypt with openssl pkey (openssl pkey -in key.pem -out key-plain.pem)";

/**
 * The private key in `pemText`: PKCS#8 "PRIVATE KEY" (EC P-256, Ed25519, RSA), SEC1
 * "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY". Other blocks (certificates, "EC PARAMETERS")
 * are skipped, so a combined cert+key file works.
 *
 * @param source names the text in errors, e.g. the file path; default "the PEM text".
 * @throws {CertificateError} `CERT_BAD_KEY` for an encrypted key ("encrypted private keys are not
 *   supported; decrypt with openssl pkey"), an unsupported curve or algorithm, a malformed key, a
 *   public half that does not match the private one, or when there is not exactly one key.
 */
export function loadPrivateKey(pemText: string, source = "the PEM text"): PrivateKey {
  let blocks: PemBlock[];
  try {
    blocks = decodePem(pemText);
  } catch (e) {
    throw keyError(`cannot read the private key in ${source}: ${(e as Error).message}`, e);
  }
  const keys = blocks.filter((b) => KEY_LABELS.has(b.label));
  if (keys.length === 0) {
    const found = blocks.length
      ? `it contains: ${blocks.map((b) => b.label).join(", ")}`
      : "it has no PEM blocks";
    throw keyError(`no private key in ${source} (${found})`);
  }
  if (keys.length > 1) throw keyError(`${source} contains ${keys.length} private keys; expected one`);
  const block = keys[0];
  if (block.label === "ENCRYPTED PRIVATE KEY" || /ENCRYPTED/i.test(block.headers["Proc-Type"] ?? "")) {
    throw keyError(ENCRYPTED_MESSAGE);
  }
  return decodePrivateKeyDer(block.der, block.label, source);
}

/**
 * Decodes a private key from DER. `label` is the PEM label that says its format:
 * "PRIVATE KEY" (PKCS#8), "EC PRIVATE KEY" (SEC1) or "RSA PRIVATE KEY" (PKCS#1).
 *
 * @throws {CertificateError} `CERT_BAD_KEY`.
 */
export function decodePrivateKeyDer(der: Uint8Array, label = "PRIVATE KEY", source = "the key"): PrivateKey {
  const what = `the ${label} in ${source}`;
  try {
    switch (label) {
      case "PRIVATE KEY":
        return fromPkcs8(der, what);
      case "EC PRIVATE KEY":
        return fromSec1(der, undefined, what);
      case "RSA PRIVATE KEY":
        return fromPkcs1(der);
      case "ENCRYPTED PRIVATE KEY":
        throw keyError(ENCRYPTED_MESSAGE);
      default:
        throw keyError(`"${label}" is not a private key format we read (use PKCS#8 "PRIVATE KEY")`);
    }
  } catch (e) {
    if (e instanceof CertificateError) throw e;
    throw keyError(`${what} is malformed: ${(e as Error).message}`, e);
  }
}

function fromPkcs8(der: Uint8Array, what: string): PrivateKey {
  let info: PrivateKeyInfo;
  try {
    info = AsnParser.parse(der, PrivateKeyInfo);
  } catch (e) {
    throw keyError(`${what} is not a PKCS#8 PrivateKeyInfo: ${(e as Error).message}`, e);
  }
  const alg = info.privateKeyAlgorithm;
  const inner = new Uint8Array(info.privateKey.buffer);
  if (alg.algorithm === id_ecPublicKey) {
    if (!alg.parameters) throw keyError(`${what} is an EC key without a named curve`);
    return fromSec1(inner, AsnParser.parse(alg.parameters, ECParameters).namedCurve, what);
  }
  if (alg.algorithm === OID_ED25519) {
    // RFC 8410 §7: CurvePrivateKey ::= OCTET STRING (the 32-byte seed), inside the PKCS#8 OCTET STRING.
    const seed = new Uint8Array(AsnParser.parse(inner, OctetString).buffer);
    if (seed.length !== 32) throw keyError(`${what} is an Ed25519 key of ${seed.length} bytes, not 32`);
    return { kind: "ed25519", seed, key: ed25519.getPublicKey(seed) };
  }
  if (alg.algorithm === id_rsaEncryption) return fromPkcs1(inner);
  throw keyError(
    `${what} uses algorithm ${keyAlgorithmName(alg.algorithm)}; supported are EC P-256, Ed25519 and RSA`,
  );
}

function keyAlgorithmName(oid: string): string {
  const names: Record<string, string> = {
    "1.3.101.113": "Ed448",
    "1.3.101.110": "X25519",
    "1.3.101.111": "X448",
    "1.2.840.113549.1.1.10": "RSASSA-PSS (restricted RSA key)",
    "1.2.840.10040.4.1": "DSA",
  };
  return names[oid] ? `${names[oid]} (${oid})` : oid;
}

const CURVES: Record<string, string> = {
  "1.3.132.0.34": "P-384",
  "1.3.132.0.35": "P-521",
  "1.3.132.0.10": "secp256k1",
};

function fromSec1(der: Uint8Array, curveFromPkcs8: string | undefined, what: string): PrivateKey {
  const ec = AsnParser.parse(der, ECPrivateKey);
  const curve = curveFromPkcs8 ?? ec.parameters?.namedCurve;
  if (curve !== undefined && curve !== id_secp256r1) {
    throw keyError(`${what} is on curve ${CURVES[curve] ?? curve}; only P-256 (prime256v1) is supported`);
  }
  if (curve === undefined) throw keyError(`${what} does not name its curve`);
  const raw = new Uint8Array(ec.privateKey.buffer);
  if (raw.length === 0 || raw.length > 32) throw keyError(`${what} has a ${raw.length}-byte scalar, not 32`);
  const d = new Uint8Array(32);
  d.set(raw, 32 - raw.length);
  let point: Uint8Array;
  try {
    point = p256.getPublicKey(d, false);
  } catch (e) {
    throw keyError(`${what} has a scalar outside the P-256 range`, e);
  }
  if (ec.publicKey !== undefined) {
    const given = new Uint8Array(ec.publicKey);
    const givenUncompressed =
      given.length === 33
        ? p256.Point.fromBytes(given).toBytes(false)
        : given.length === 65
          ? given
          : undefined;
    if (!givenUncompressed || !bytesEqual(givenUncompressed, point)) {
      throw keyError(`${what} carries a public key that does not belong to its private key`);
    }
  }
  return { kind: "ec-p256", d, point };
}

function fromPkcs1(der: Uint8Array): PrivateKey {
  const k = AsnParser.parse(der, RSAPrivateKey);
  const n = (b: ArrayBuffer): Uint8Array => stripLeadingZeros(new Uint8Array(b));
  return {
    kind: "rsa",
    n: n(k.modulus),
    e: n(k.publicExponent),
    d: n(k.privateExponent),
    p: n(k.prime1),
    q: n(k.prime2),
    dp: n(k.exponent1),
    dq: n(k.exponent2),
    qi: n(k.coefficient),
  };
}

function stripLeadingZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.slice(i);
}

/** An unsigned big-endian integer as the content of a DER INTEGER (a leading 0 when the top bit is set). */
function derUnsigned(b: Uint8Array): ArrayBuffer {
  const s = stripLeadingZeros(b);
  const out = s[0] & 0x80 ? Uint8Array.from([0, ...s]) : Uint8Array.from(s);
  return out.buffer;
}

/**
 * PKCS#8 PrivateKeyInfo DER of `key` (RFC 5208; EC keys carry the SEC1 structure with the
 * public point, Ed25519 keys the RFC 8410 seed, RSA keys PKCS#1 RSAPrivateKey).
 */
export function encodePrivateKeyDer(key: PrivateKey): Uint8Array {
  let algorithm: AlgorithmIdentifier;
  let inner: ArrayBuffer;
  switch (key.kind) {
    case "ec-p256":
      algorithm = new AlgorithmIdentifier({
        algorithm: id_ecPublicKey,
        parameters: AsnSerializer.serialize(new ECParameters({ namedCurve: id_secp256r1 })),
      });
      inner = AsnSerializer.serialize(
        new ECPrivateKey({
          version: 1,
          privateKey: new OctetString(key.d),
          publicKey: Uint8Array.from(key.point).buffer,
        }),
      );
      break;
    case "ed25519":
      algorithm = new AlgorithmIdentifier({ algorithm: OID_ED25519 });
      inner = AsnSerializer.serialize(new OctetString(key.seed));
      break;
    case "rsa":
      algorithm = new AlgorithmIdentifier({ algorithm: id_rsaEncryption, parameters: null });
      inner = AsnSerializer.serialize(
        new RSAPrivateKey({
          version: 0,
          modulus: derUnsigned(key.n),
          publicExponent: derUnsigned(key.e),
          privateExponent: derUnsigned(key.d),
          prime1: derUnsigned(key.p),
          prime2: derUnsigned(key.q),
          exponent1: derUnsigned(key.dp),
          exponent2: derUnsigned(key.dq),
          coefficient: derUnsigned(key.qi),
        }),
      );
      break;
  }
  return new Uint8Array(
    AsnSerializer.serialize(
      new PrivateKeyInfo({ version: 0, privateKeyAlgorithm: algorithm, privateKey: new OctetString(inner) }),
    ),
  );
}

/** `key` as a PKCS#8 "PRIVATE KEY" PEM block (what `openssl pkey` writes). */
export function encodePrivateKeyPem(key: PrivateKey): string {
  return encodePem("PRIVATE KEY", encodePrivateKeyDer(key));
}

/** The public half of a private key, in the certificate's {@link PublicKey} form. */
export function publicKeyOf(key: PrivateKey): PublicKey {
  switch (key.kind) {
    case "ec-p256":
      return { kind: "ec-p256", point: key.point };
    case "ed25519":
      return { kind: "ed25519", key: key.key };
    case "rsa":
      return { kind: "rsa", n: key.n, e: key.e };
  }
}
