import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SeededRng } from "../../src/crypto/random.js";
import {
  type CertKeyType,
  generatePrivateKey,
  generateSelfSigned,
  generateTestCA,
  issueIntermediate,
  issueLeaf,
} from "../../src/tls/certgen.js";
import { loadCertificateChain, loadPrivateKey } from "../../src/tls/pem.js";
import { verifyCertificateChain } from "../../src/tls/verify.js";
import { parseCertificate } from "../../src/tls/x509.js";
import {
  CERT_PROVIDERS,
  DAY,
  expectCertError,
  HAVE_OPENSSL,
  NOW,
  openssl,
  tempDir,
} from "./cert-fixtures.js";

const KEY_TYPES: CertKeyType[] = ["ecdsa-p256", "ed25519"];

describe.each(CERT_PROVIDERS)("certificate generator (%s)", (_label, provider) => {
  describe.each(KEY_TYPES)("%s", (keyType) => {
    const rng = new SeededRng(21);
    const now = Date.now(); // Node and openssl check validity against the real clock
    const ctx = { provider, rng, now, keyType };
    const ca = generateTestCA({ ...ctx, commonName: "mquictt test CA", organization: "mquictt" });
    const mid = issueIntermediate(ca, { ...ctx, commonName: "mquictt intermediate", pathLen: 0 });
    const leaf = issueLeaf(mid, {
      ...ctx,
      commonName: "localhost",
      organization: "mquictt",
      dns: ["localhost", "*.example.com"],
      ips: ["127.0.0.1", "::1"],
    });

    it("makes X.509 v3 certificates that node:crypto parses and verifies", () => {
      const x = (pem: string): X509Certificate => new X509Certificate(pem);
      const [xca, xmid, xleaf] = [x(ca.pem), x(mid.pem), x(leaf.pem)];
      expect(xca.verify(xca.publicKey)).toBe(true);
      expect(xmid.verify(xca.publicKey)).toBe(true);
      expect(xleaf.verify(xmid.publicKey)).toBe(true);
      expect(xleaf.verify(xca.publicKey)).toBe(false);
      expect(xca.ca).toBe(true);
      expect(xmid.ca).toBe(true);
      expect(xleaf.ca).toBe(false);
      expect(xleaf.checkIssued(xmid)).toBe(true);
      expect(xleaf.subject).toBe("O=mquictt\nCN=localhost");
      expect(xleaf.subjectAltName).toBe(
        "DNS:localhost, DNS:*.example.com, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
      );
      expect(xleaf.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]); // Node's keyUsage is the extKeyUsage OIDs
      expect(xleaf.checkHost("a.example.com")).toBe("*.example.com"); // Node returns the matching SAN
      expect(xleaf.checkHost("a.b.example.com")).toBeUndefined();
      expect(xleaf.checkIP("127.0.0.1")).toBe("127.0.0.1");
      expect(xleaf.publicKey.asymmetricKeyType).toBe(keyType === "ed25519" ? "ed25519" : "ec");
      expect(BigInt(`0x${xleaf.serialNumber}`) > 0n).toBe(true);
    });

    it("fills in the extensions and the parsed record", () => {
      const c = leaf.certificate;
      expect(c.version).toBe(3);
      expect(c.isCA).toBe(false);
      expect(c.keyUsage).toEqual(["digitalSignature"]);
      expect(c.extKeyUsage).toEqual(["serverAuth"]);
      expect(c.subjectAltNames).toEqual({ dns: ["localhost", "*.example.com"], ip: ["127.0.0.1", "::1"] });
      expect(c.authorityKeyId).toBe(mid.certificate.subjectKeyId);
      expect(mid.certificate.authorityKeyId).toBe(ca.certificate.subjectKeyId);
      expect(ca.certificate.isCA).toBe(true);
      expect(ca.certificate.pathLen).toBeUndefined();
      expect(mid.certificate.pathLen).toBe(0);
      expect(ca.certificate.keyUsage).toEqual(expect.arrayContaining(["keyCertSign", "crlSign"]));
      expect(c.serialNumber).toMatch(/^[0-7][0-9a-f]{31}$/);
      expect(parseCertificate(leaf.der)).toEqual(c);
      // PEM and key PEM load back
      expect(loadCertificateChain(leaf.pem + mid.pem)).toEqual([leaf.der, mid.der]);
      expect(loadPrivateKey(leaf.keyPem)).toEqual(leaf.key);
      // and our own verifier accepts the chain
      verifyCertificateChain([leaf.der, mid.der], {
        roots: [ca.der],
        now,
        provider,
        serverName: "x.example.com",
      });
    });

    it.skipIf(!HAVE_OPENSSL)("satisfies `openssl verify -x509_strict -purpose sslserver`", () => {
      const ss = generateSelfSigned({ ...ctx, commonName: "self", dns: ["self.example"] });
      const { dir, cleanup } = tempDir({
        "ca.pem": ca.pem,
        "mid.pem": mid.pem,
        "leaf.pem": leaf.pem,
        "ss.pem": ss.pem,
        "leaf-key.pem": leaf.keyPem,
      });
      try {
        const out = openssl(dir, [
          "verify",
          "-x509_strict",
          "-purpose",
          "sslserver",
          "-verify_hostname",
          "localhost",
          "-CAfile",
          "ca.pem",
          "-untrusted",
          "mid.pem",
          "leaf.pem",
        ]);
        expect(out.trim()).toBe("leaf.pem: OK");
        expect(openssl(dir, ["verify", "-x509_strict", "-CAfile", "ss.pem", "ss.pem"]).trim()).toBe(
          "ss.pem: OK",
        );
        // the key matches the certificate's public key
        const fromKey = openssl(dir, ["pkey", "-in", "leaf-key.pem", "-pubout"]);
        const fromCert = openssl(dir, ["x509", "-in", "leaf.pem", "-noout", "-pubkey"]);
        expect(fromKey).toBe(fromCert);
      } finally {
        cleanup();
      }
    });
  });

  it("is deterministic for a given seed (Ed25519)", () => {
    const make = () =>
      generateSelfSigned({ commonName: "d", keyType: "ed25519", provider, rng: new SeededRng(99), now: NOW })
        .der;
    expect(make()).toEqual(make());
  });

  it("honours validity options and rejects bad SANs", () => {
    const rng = new SeededRng(1);
    const c = generateSelfSigned({ commonName: "v", provider, rng, now: NOW, validityDays: 2 });
    expect(c.certificate.notBefore.getTime()).toBe(NOW - 5 * 60_000);
    expect(c.certificate.notAfter.getTime()).toBe(NOW + 2 * DAY);
    const far = generateSelfSigned({
      commonName: "v",
      provider,
      rng,
      now: NOW,
      notAfter: new Date(Date.UTC(2060, 0, 1)),
    });
    expect(far.certificate.notAfter.toISOString()).toBe("2060-01-01T00:00:00.000Z"); // GeneralizedTime after 2049
    expect(() => generateSelfSigned({ commonName: "v", provider, rng, now: NOW, dns: ["bad name"] })).toThrow(
      RangeError,
    );
    expect(() => generateSelfSigned({ commonName: "v", provider, rng, now: NOW, ips: ["1.2.3"] })).toThrow(
      RangeError,
    );
  });

  it("generates private keys from the rng", () => {
    const a = generatePrivateKey("ecdsa-p256", new SeededRng(4));
    const b = generatePrivateKey("ecdsa-p256", new SeededRng(4));
    expect(a).toEqual(b);
    expect(generatePrivateKey("ed25519", new SeededRng(4)).kind).toBe("ed25519");
  });
});

/** Chains made by the openssl CLI: RSA PKCS#1 v1.5, RSA-PSS, and (unsupported) P-384/SHA-384. */
describe.skipIf(!HAVE_OPENSSL).each(CERT_PROVIDERS)("openssl-made chains (%s)", (_label, provider) => {
  const now = Date.now() + 60_000; // openssl starts validity at its own "now", a moment later
  const { dir, cleanup } = tempDir({
    "leaf.cnf":
      "[v3]\nbasicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:rsa.example,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n",
  });
  afterAll(cleanup);
  const run = (args: string[]): string => openssl(dir, args);
  const makeChain = (name: string, caKey: string[], leafKey: string[], sign: string[]): void => {
    run([
      "req",
      "-x509",
      "-newkey",
      ...caKey,
      "-nodes",
      "-keyout",
      `${name}-ca.key`,
      "-out",
      `${name}-ca.pem`,
      "-days",
      "30",
      "-subj",
      `/O=openssl/CN=${name} CA`,
      ...sign,
    ]);
    run([
      "req",
      "-newkey",
      ...leafKey,
      "-nodes",
      "-keyout",
      `${name}-leaf.key`,
      "-out",
      `${name}-leaf.csr`,
      "-subj",
      `/CN=${name}.leaf`,
    ]);
    run([
      "x509",
      "-req",
      "-in",
      `${name}-leaf.csr`,
      "-CA",
      `${name}-ca.pem`,
      "-CAkey",
      `${name}-ca.key`,
      "-CAcreateserial",
      "-out",
      `${name}-leaf.pem`,
      "-days",
      "10",
      "-extfile",
      "leaf.cnf",
      "-extensions",
      "v3",
      ...sign,
    ]);
  };
  makeChain("rsa", ["rsa:2048"], ["rsa:2048"], ["-sha256"]);
  makeChain(
    "pss",
    ["rsa:2048"],
    ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    ["-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"],
  );
  makeChain(
    "p384",
    ["ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
    ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    ["-sha384"],
  );
  const load = (f: string): Uint8Array[] => loadCertificateChain(readFileSync(join(dir, f), "utf8"), f);

  it("verifies RSA sha256WithRSAEncryption chains and loads their PKCS#8 RSA keys", () => {
    const leaf = verifyCertificateChain(load("rsa-leaf.pem"), {
      roots: load("rsa-ca.pem"),
      now,
      provider,
      serverName: "rsa.example",
    });
    expect(leaf.publicKeyAlgorithm).toBe("RSA 2048-bit");
    expect(leaf.issuer).toBe("CN=rsa CA, O=openssl");
    verifyCertificateChain(load("rsa-leaf.pem"), {
      roots: load("rsa-ca.pem"),
      now,
      provider,
      serverName: "10.0.0.1",
    });
    expect(loadPrivateKey(readFileSync(join(dir, "rsa-leaf.key"), "utf8")).kind).toBe("rsa");
  });

  it("verifies RSASSA-PSS (SHA-256) signed certificates", () => {
    const leaf = verifyCertificateChain(load("pss-leaf.pem"), { roots: load("pss-ca.pem"), now, provider });
    expect(leaf.signatureAlgorithm.name).toBe("RSASSA-PSS (SHA-256)");
  });

  it("rejects ecdsa-with-SHA384 with a clear unsupported-algorithm error", () => {
    const e = expectCertError(
      () => verifyCertificateChain(load("p384-leaf.pem"), { roots: load("p384-ca.pem"), now, provider }),
      "CERT_UNSUPPORTED_ALGORITHM",
    );
    expect(e.message).toMatch(
      /^unsupported signature algorithm ecdsa-with-SHA384 on certificate CN=p384\.leaf/,
    );
    expect(e.tlsAlert).toBe(43); // unsupported_certificate
  });
});
