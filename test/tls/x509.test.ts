import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CertificateError } from "../../src/tls/cert-error.js";
import {
  canonicalIp,
  certificateLabel,
  formatIpAddress,
  parseCertificate,
  parseCertificateChain,
  parseIpAddress,
} from "../../src/tls/x509.js";
import { toHex } from "../../src/util/bytes.js";

/** Fixtures made once with the openssl CLI (see the commands in the commit that added them). */
function fixture(name: string): { der: Uint8Array; node: X509Certificate } {
  const pem = readFileSync(new URL(`./fixtures/${name}.pem`, import.meta.url), "utf8");
  const node = new X509Certificate(pem);
  return { der: new Uint8Array(node.raw), node };
}

function parseError(f: () => unknown): CertificateError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CertificateError);
    return e as CertificateError;
  }
  throw new Error("expected a CertificateError");
}

describe("parseCertificate", () => {
  it("maps an EC P-256 certificate with SANs, key usage and EKU", () => {
    const { der, node } = fixture("ec-p256");
    const c = parseCertificate(der);
    expect(c.version).toBe(3);
    expect(c.subject).toBe("CN=localhost, O=mquictt");
    expect(c.issuer).toBe("CN=localhost, O=mquictt");
    expect(c.commonName).toBe("localhost");
    expect(c.serialNumber).toBe(node.serialNumber.toLowerCase());
    expect(c.notBefore.getTime()).toBe(new Date(node.validFrom).getTime());
    expect(c.notAfter.getTime()).toBe(new Date(node.validTo).getTime());
    expect(c.subjectAltNames).toEqual({ dns: ["localhost"], ip: ["127.0.0.1", "::1"] });
    expect(c.keyUsage).toEqual(["digitalSignature"]);
    expect(c.extKeyUsage).toEqual(["serverAuth"]);
    expect(c.isCA).toBe(true); // openssl req -x509 adds CA:TRUE by default
    expect(c.publicKeyAlgorithm).toBe("EC P-256");
    expect(c.publicKey?.kind).toBe("ec-p256");
    if (c.publicKey?.kind === "ec-p256") {
      const jwk = node.publicKey.export({ format: "jwk" });
      expect(c.publicKey.point.length).toBe(65);
      expect(Buffer.from(c.publicKey.point.subarray(1, 33)).toString("base64url")).toBe(jwk.x);
    }
    expect(c.signatureAlgorithm).toEqual({
      oid: "1.2.840.10045.4.3.2",
      name: "ecdsa-with-SHA256",
      scheme: "ecdsa_secp256r1_sha256",
    });
    expect(c.signature[0]).toBe(0x30); // DER ECDSA-Sig-Value
    expect(c.subjectKeyId).toMatch(/^[0-9a-f]{40}$/);
    expect(c.unhandledCriticalExtensions).toEqual([]);
    // tbs is the signed part: it is a SEQUENCE inside der, and the whole der is consumed.
    expect(c.tbs[0]).toBe(0x30);
    expect(toHex(c.der)).toContain(toHex(c.tbs));
    expect(toHex(c.tbs)).toContain(toHex(c.subjectDer));
    expect(toHex(c.der)).toContain(toHex(c.spki));
    expect(Buffer.from(c.spki).equals(node.publicKey.export({ type: "spki", format: "der" }))).toBe(true);
  });

  it("maps RSA PKCS#1, RSA-PSS and Ed25519 certificates", () => {
    const rsa = parseCertificate(fixture("rsa-pkcs1").der);
    expect(rsa.subject).toBe("CN=rsa.example, O=Test\\, Inc., C=US");
    expect(rsa.publicKeyAlgorithm).toBe("RSA 2048-bit");
    expect(rsa.signatureAlgorithm.scheme).toBe("rsa_pkcs1_sha256");
    expect(rsa.subjectAltNames.dns).toEqual(["*.example.com"]);
    if (rsa.publicKey?.kind !== "rsa") throw new Error("expected RSA");
    expect(rsa.publicKey.n.length).toBe(256);
    expect(toHex(rsa.publicKey.e)).toBe("010001");

    const pss = parseCertificate(fixture("rsa-pss").der);
    expect(pss.signatureAlgorithm.name).toBe("RSASSA-PSS (SHA-256)");
    expect(pss.signatureAlgorithm.scheme).toBe("rsa_pss_rsae_sha256");

    const ed = parseCertificate(fixture("ed25519").der);
    expect(ed.publicKeyAlgorithm).toBe("Ed25519");
    expect(ed.signatureAlgorithm.scheme).toBe("ed25519");
    expect(ed.signature.length).toBe(64);
    if (ed.publicKey?.kind !== "ed25519") throw new Error("expected Ed25519");
    expect(ed.publicKey.key.length).toBe(32);
  });

  it("parses P-384 / SHA-384 certificates but marks them unverifiable", () => {
    const c = parseCertificate(fixture("ec-p384").der);
    expect(c.publicKey).toBeUndefined();
    expect(c.publicKeyAlgorithm).toBe("EC P-384");
    expect(c.signatureAlgorithm.name).toBe("ecdsa-with-SHA384");
    expect(c.signatureAlgorithm.scheme).toBeUndefined();
  });

  it("labels a certificate by subject", () => {
    expect(certificateLabel(parseCertificate(fixture("ed25519").der))).toBe("CN=ed25519.example");
  });

  it("reports garbage, truncation and trailing bytes as CERT_PARSE_ERROR naming the certificate", () => {
    const { der } = fixture("ec-p256");
    const trunc = parseError(() => parseCertificate(der.subarray(0, 200), "certificate #2 in the chain"));
    expect(trunc.code).toBe("CERT_PARSE_ERROR");
    expect(trunc.tlsAlert).toBe(42); // bad_certificate
    expect(trunc.message).toMatch(/^certificate #2 in the chain is not valid DER: truncated/);
    expect(trunc.message).toContain("only 200 are present");

    const trailing = parseError(() => parseCertificate(new Uint8Array([...der, 0, 0])));
    expect(trailing.message).toContain("2 unexpected bytes after the certificate's end");

    const empty = parseError(() => parseCertificate(new Uint8Array(0)));
    expect(empty.message).toBe("certificate is empty (0 bytes)");

    // valid DER that is not a certificate: an INTEGER, then a SEQUENCE of one INTEGER
    const notCert = parseError(() => parseCertificate(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x05])));
    expect(notCert.code).toBe("CERT_PARSE_ERROR");
    expect(notCert.message).toMatch(/^certificate is not a valid X\.509 certificate: /);

    const chain = parseError(() => parseCertificateChain([der, new Uint8Array([1, 2, 3])]));
    expect(chain.message).toMatch(/^certificate #2 in the chain is not valid DER/);
  });

  it("never lets anything but a CertificateError escape on random or mutated input", () => {
    const { der } = fixture("ec-p256");
    const check = (bytes: Uint8Array): void => {
      try {
        parseCertificate(bytes);
      } catch (e) {
        if (!(e instanceof CertificateError) || e.code !== "CERT_PARSE_ERROR") throw e;
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => check(b)),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: der.length - 1 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 1, max: der.length }),
        (pos, value, cut) => {
          const m = Uint8Array.from(der);
          m[pos] = value;
          check(m);
          check(m.subarray(0, cut));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("IP address text", () => {
  it("parses and formats IPv4 and IPv6 canonically (RFC 5952)", () => {
    expect(parseIpAddress("127.0.0.1")).toEqual(new Uint8Array([127, 0, 0, 1]));
    expect(canonicalIp("::1")).toBe("::1");
    expect(canonicalIp("[::1]")).toBe("::1");
    expect(canonicalIp("2001:DB8:0:0:0:0:0:1")).toBe("2001:db8::1");
    expect(canonicalIp("2001:db8:0:0:1:0:0:1")).toBe("2001:db8::1:0:0:1");
    expect(canonicalIp("::ffff:192.0.2.1")).toBe("::ffff:c000:201");
    expect(canonicalIp("1:2:3:4:5:6:7:8")).toBe("1:2:3:4:5:6:7:8");
    expect(formatIpAddress(new Uint8Array(16))).toBe("::");
    for (const bad of [
      "1.2.3",
      "1.2.3.256",
      "01.2.3.4",
      "localhost",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "",
      "a.b.c.d",
    ]) {
      expect(parseIpAddress(bad), bad).toBeUndefined();
    }
  });
});
