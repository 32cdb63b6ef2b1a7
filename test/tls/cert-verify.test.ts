import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SeededRng } from "../../src/crypto/random.js";
import { AlertDescription, TlsAlert } from "../../src/tls/alert.js";
import { CertificateError } from "../../src/tls/cert-error.js";
import {
  type CertKeyType,
  generateSelfSigned,
  generateTestCA,
  issueIntermediate,
  issueLeaf,
} from "../../src/tls/certgen.js";
import {
  createPeerVerifier,
  matchesServerName,
  TrustStore,
  verifyCertificateChain,
} from "../../src/tls/verify.js";
import { type Certificate, parseCertificate } from "../../src/tls/x509.js";
import { fromHex } from "../../src/util/bytes.js";
import { CERT_PROVIDERS, DAY, expectCertError, NOW } from "./cert-fixtures.js";

const KEY_TYPES: CertKeyType[] = ["ecdsa-p256", "ed25519"];

describe.each(CERT_PROVIDERS)("verifyCertificateChain (%s)", (_label, provider) => {
  describe.each(KEY_TYPES)("%s keys", (keyType) => {
    const rng = new SeededRng(keyType === "ed25519" ? 7 : 8);
    const ctx = { provider, rng, now: NOW, keyType };
    const ca = generateTestCA({ ...ctx, commonName: "mquictt test CA", organization: "mquictt" });
    const leaf = issueLeaf(ca, {
      ...ctx,
      commonName: "localhost",
      organization: "mquictt",
      dns: ["localhost"],
      ips: ["127.0.0.1", "::1"],
    });
    const roots = [ca.der];
    const opts = { roots, now: NOW, provider };

    it("accepts a CA-issued leaf for its DNS name and IP addresses, and returns the leaf", () => {
      for (const serverName of ["localhost", "LOCALHOST.", "127.0.0.1", "::1", "[::1]", "0:0::1"]) {
        const got = verifyCertificateChain([leaf.der], { ...opts, serverName });
        expect(got.subject).toBe("CN=localhost, O=mquictt");
      }
      // no server name: no name check
      expect(verifyCertificateChain([leaf.der], opts).serialNumber).toBe(leaf.certificate.serialNumber);
      // the root may be part of the presented chain
      verifyCertificateChain([leaf.der, ca.der], { ...opts, serverName: "localhost" });
      // a prebuilt trust store works the same
      verifyCertificateChain([leaf.der], {
        ...opts,
        roots: new TrustStore([ca.certificate]),
        serverName: "localhost",
      });
    });

    it("rejects an expired leaf, naming it and both times", () => {
      const later = NOW + 400 * DAY;
      const e = expectCertError(
        () => verifyCertificateChain([leaf.der], { ...opts, now: later, serverName: "localhost" }),
        "CERT_EXPIRED",
      );
      expect(e.tlsAlert).toBe(AlertDescription.certificate_expired);
      const notAfter = leaf.certificate.notAfter.toISOString().replace(".000Z", "Z");
      expect(e.message).toBe(
        `certificate for CN=localhost, O=mquictt has expired on ${notAfter} (now ${new Date(later).toISOString().replace(".000Z", "Z")})`,
      );
    });

    it("rejects a certificate that is not valid yet", () => {
      const early = issueLeaf(ca, { ...ctx, commonName: "early", dns: ["localhost"], now: NOW + 10 * DAY });
      const e = expectCertError(() => verifyCertificateChain([early.der], opts), "CERT_NOT_YET_VALID");
      expect(e.message).toMatch(
        /^certificate for CN=early is not valid until 2026-12-06T11:55:00Z \(now 2026-11-26T12:00:00Z\)/,
      );
    });

    it("rejects an expired CA", () => {
      const oldCa = generateTestCA({
        ...ctx,
        commonName: "Old CA",
        notBefore: new Date(NOW - 20 * DAY),
        notAfter: new Date(NOW - DAY),
      });
      const l = issueLeaf(oldCa, { ...ctx, commonName: "localhost", dns: ["localhost"] });
      const e = expectCertError(
        () => verifyCertificateChain([l.der], { ...opts, roots: [oldCa.der] }),
        "CERT_EXPIRED",
      );
      expect(e.message).toMatch(/^certificate for CN=Old CA \(trusted root\) has expired on /);
    });

    it("rejects a name the SANs do not cover, listing what they do name", () => {
      const e = expectCertError(
        () => verifyCertificateChain([leaf.der], { ...opts, serverName: "broker.example" }),
        "CERT_NAME_MISMATCH",
      );
      expect(e.tlsAlert).toBe(AlertDescription.bad_certificate);
      expect(e.message).toBe(
        "no SAN of certificate CN=localhost, O=mquictt matches broker.example (it names: localhost, 127.0.0.1, ::1)",
      );
      expectCertError(
        () => verifyCertificateChain([leaf.der], { ...opts, serverName: "10.0.0.1" }),
        "CERT_NAME_MISMATCH",
      );
    });

    it("rejects a leaf whose issuer is not trusted", () => {
      const evil = generateTestCA({ ...ctx, commonName: "Evil CA" });
      const l = issueLeaf(evil, { ...ctx, commonName: "localhost", dns: ["localhost"] });
      const e = expectCertError(
        () => verifyCertificateChain([l.der], { ...opts, serverName: "localhost" }),
        "CERT_UNKNOWN_ISSUER",
      );
      expect(e.tlsAlert).toBe(AlertDescription.unknown_ca);
      expect(e.message).toMatch(
        /^issuer CN=Evil CA of certificate CN=localhost is not among the trusted roots/,
      );
      // presenting the untrusted root does not help
      expectCertError(() => verifyCertificateChain([l.der, evil.der], opts), "CERT_UNKNOWN_ISSUER");
      // nor does anything with no roots configured
      const none = expectCertError(
        () => verifyCertificateChain([l.der], { ...opts, roots: [] }),
        "CERT_UNKNOWN_ISSUER",
      );
      expect(none.message).toContain("no trusted roots are configured");
    });

    it("rejects an impostor CA that copies the trusted CA's name (bad signature)", () => {
      const impostor = generateTestCA({ ...ctx, commonName: "mquictt test CA", organization: "mquictt" });
      const l = issueLeaf(impostor, { ...ctx, commonName: "localhost", dns: ["localhost"] });
      const e = expectCertError(() => verifyCertificateChain([l.der], opts), "CERT_BAD_SIGNATURE");
      expect(e.message).toMatch(
        /^the signature on certificate CN=localhost does not verify with the key of its issuer CN=mquictt test CA, O=mquictt/,
      );
    });

    it("rejects a tampered certificate (one byte of the signed part flipped)", () => {
      const der = Uint8Array.from(leaf.der);
      const serial = fromHex(leaf.certificate.serialNumber);
      const at = indexOf(der, serial) + serial.length - 1;
      der[at] ^= 0x01;
      const tampered = parseCertificate(der);
      expect(tampered.serialNumber).not.toBe(leaf.certificate.serialNumber);
      expectCertError(() => verifyCertificateChain([der], opts), "CERT_BAD_SIGNATURE");
      // and a flipped signature byte
      const sig = Uint8Array.from(leaf.der);
      sig[sig.length - 3] ^= 0x40;
      expectCertError(() => verifyCertificateChain([sig], opts), "CERT_BAD_SIGNATURE");
    });

    it("rejects a chain where a non-CA certificate signed the leaf", () => {
      const sub = issueLeaf(leaf, { ...ctx, commonName: "sub.localhost", dns: ["sub.localhost"] });
      const e = expectCertError(() => verifyCertificateChain([sub.der, leaf.der], opts), "CERT_NOT_CA");
      expect(e.message).toBe(
        "certificate CN=localhost, O=mquictt issued CN=sub.localhost but is not a CA (its basicConstraints lack CA:TRUE), so it may not sign certificates",
      );
    });

    it("builds root -> intermediate -> leaf paths", () => {
      const mid = issueIntermediate(ca, { ...ctx, commonName: "mquictt intermediate" });
      const l = issueLeaf(mid, { ...ctx, commonName: "broker", dns: ["broker.example"] });
      verifyCertificateChain([l.der, mid.der], { ...opts, serverName: "broker.example" });
      verifyCertificateChain([l.der, mid.der, ca.der], opts);
      // extra, unrelated and duplicate certificates are tolerated
      verifyCertificateChain([l.der, leaf.der, mid.der, mid.der], opts);
      // without the intermediate the issuer is unknown
      const e = expectCertError(() => verifyCertificateChain([l.der], opts), "CERT_UNKNOWN_ISSUER");
      expect(e.message).toMatch(
        /^issuer CN=mquictt intermediate of certificate CN=broker is not among the trusted roots/,
      );
      // two levels
      const mid2 = issueIntermediate(mid, { ...ctx, commonName: "second intermediate" });
      const l2 = issueLeaf(mid2, { ...ctx, commonName: "deep", dns: ["deep.example"] });
      verifyCertificateChain([l2.der, mid2.der, mid.der], { ...opts, serverName: "deep.example" });
      // trusting the intermediate directly is enough
      verifyCertificateChain([l2.der, mid2.der], { ...opts, roots: [mid.der] });
    });

    it("enforces pathLen", () => {
      const strictCa = generateTestCA({ ...ctx, commonName: "Strict CA", pathLen: 0 });
      const mid = issueIntermediate(strictCa, { ...ctx, commonName: "Mid" });
      const l = issueLeaf(mid, { ...ctx, commonName: "leaf" });
      const e = expectCertError(
        () => verifyCertificateChain([l.der, mid.der], { ...opts, roots: [strictCa.der] }),
        "CERT_NOT_CA",
      );
      expect(e.message).toContain("CA CN=Strict CA allows at most 0 intermediate CAs below it (pathLen)");
      // but it may issue leaves directly
      verifyCertificateChain([issueLeaf(strictCa, { ...ctx, commonName: "ok" }).der], {
        ...opts,
        roots: [strictCa.der],
      });
    });

    it("trusts a self-signed certificate listed as a root, and names it when it is not", () => {
      const ss = generateSelfSigned({ ...ctx, commonName: "self", dns: ["self.example"] });
      verifyCertificateChain([ss.der], { ...opts, roots: [ss.der], serverName: "self.example" });
      const e = expectCertError(() => verifyCertificateChain([ss.der], opts), "CERT_UNKNOWN_ISSUER");
      expect(e.message).toMatch(/^certificate CN=self is self-signed and is not among the trusted roots/);
    });

    it("checks the leaf's extendedKeyUsage for the purpose", () => {
      const client = issueLeaf(ca, {
        ...ctx,
        commonName: "client",
        dns: ["localhost"],
        extKeyUsage: ["clientAuth"],
      });
      const e = expectCertError(
        () => verifyCertificateChain([client.der], { ...opts, serverName: "localhost" }),
        "CERT_WRONG_PURPOSE",
      );
      expect(e.message).toBe(
        "certificate CN=client is not allowed for TLS servers (its extendedKeyUsage is clientAuth)",
      );
      verifyCertificateChain([client.der], { ...opts, purpose: "clientAuth" });
      verifyCertificateChain([client.der], opts); // no server name: any purpose
    });

    it("checks a certificate's signature once per issuer and provider, but every other rule each time", () => {
      // A fresh leaf (not shared with the other tests), so the first verification is a miss.
      const own = issueLeaf(ca, { ...ctx, commonName: "cached", dns: ["cached"] });
      let calls = 0;
      const counting = {
        ...provider,
        verify: (...a: Parameters<typeof provider.verify>) => {
          calls++;
          return provider.verify(...a);
        },
      };
      const o = { roots, now: NOW, provider: counting, serverName: "cached" };
      verifyCertificateChain([own.der], o);
      verifyCertificateChain([Uint8Array.from(own.der)], o); // same bytes, another array
      expect(calls).toBe(1);
      // Expiry, names and the like are still checked on a cached signature.
      expectCertError(
        () => verifyCertificateChain([own.der], { ...o, now: NOW + 1000 * DAY }),
        "CERT_EXPIRED",
      );
      expectCertError(
        () => verifyCertificateChain([own.der], { ...o, serverName: "other" }),
        "CERT_NAME_MISMATCH",
      );
      // Another provider checks for itself.
      verifyCertificateChain([own.der], { ...o, provider });
      verifyCertificateChain([own.der], { ...o, provider: { ...counting } });
      expect(calls).toBe(2);
    });

    it("createPeerVerifier throws TlsAlerts carrying the CertificateError", () => {
      let now = NOW;
      const verifier = createPeerVerifier({ roots, now: () => now, provider });
      expect(verifier.verify([leaf.der], "localhost").commonName).toBe("localhost");
      now = NOW + 1000 * DAY;
      let caught: unknown;
      try {
        verifier.verify([leaf.der], "localhost");
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(TlsAlert);
      const alert = caught as TlsAlert;
      expect(alert.description).toBe(AlertDescription.certificate_expired);
      expect(alert.reason).toMatch(/^certificate for CN=localhost, O=mquictt has expired on /);
      expect(alert.cause).toBeInstanceOf(CertificateError);
      expect((alert.cause as CertificateError).code).toBe("CERT_EXPIRED");
      now = NOW;
      expect(() => verifier.verify([], "localhost")).toThrow(TlsAlert);
      try {
        verifier.verify([new Uint8Array([0x30, 0x82, 0x01])], "localhost");
      } catch (e) {
        expect((e as TlsAlert).description).toBe(AlertDescription.bad_certificate);
        expect((e as TlsAlert).reason).toMatch(/^certificate #1 in the chain is not valid DER/);
      }
    });
  });
});

describe("verifyCertificateChain input handling", () => {
  const [, provider] = CERT_PROVIDERS[0];
  const rng = new SeededRng(3);
  const ca = generateTestCA({ commonName: "CA", provider, rng, now: NOW });

  it("rejects an empty chain with CERT_EMPTY_CHAIN", () => {
    const e = expectCertError(
      () => verifyCertificateChain([], { roots: [ca.der], now: NOW, provider }),
      "CERT_EMPTY_CHAIN",
    );
    expect(e.tlsAlert).toBe(AlertDescription.certificate_required);
  });

  it("reports a broken root by position", () => {
    const e = expectCertError(() => new TrustStore([ca.der, new Uint8Array([1, 2])]), "CERT_PARSE_ERROR");
    expect(e.message).toMatch(/^trusted root #2 is not valid DER/);
  });

  it("never throws anything but CertificateError on random chains", () => {
    const opts = { roots: new TrustStore([ca.der]), now: NOW, provider, serverName: "localhost" };
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 3 }), (chain) => {
        try {
          verifyCertificateChain(chain, opts);
        } catch (e) {
          if (!(e instanceof CertificateError)) throw e;
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("matchesServerName (RFC 6125)", () => {
  const [, provider] = CERT_PROVIDERS[0];
  const rng = new SeededRng(11);
  const ca = generateTestCA({ commonName: "CA", provider, rng, now: NOW });
  const make = (dns: string[], ips: string[] = [], commonName = "cn.example"): Certificate =>
    issueLeaf(ca, { commonName, dns, ips, provider, rng, now: NOW }).certificate;

  it("matches a single left-most wildcard label only", () => {
    const c = make(["*.example.com"]);
    expect(matchesServerName(c, "a.example.com")).toBe(true);
    expect(matchesServerName(c, "A.Example.COM.")).toBe(true);
    expect(matchesServerName(c, "a.b.example.com")).toBe(false);
    expect(matchesServerName(c, "example.com")).toBe(false);
    expect(matchesServerName(c, ".example.com")).toBe(false);
    expect(matchesServerName(c, "a.example.org")).toBe(false);
    expect(matchesServerName(c, "*.example.com")).toBe(false);
  });

  it("does not honour wildcards over a single label or inside labels", () => {
    // certgen refuses to make partial wildcards, so exercise the matcher through a parsed record
    const base = make(["x.example.com"]);
    const withDns = (dns: string[]): Certificate => ({ ...base, subjectAltNames: { dns, ip: [] } });
    expect(matchesServerName(withDns(["*.com"]), "example.com")).toBe(false);
    expect(matchesServerName(withDns(["f*.example.com"]), "foo.example.com")).toBe(false);
    expect(matchesServerName(withDns(["*.*.example.com"]), "a.b.example.com")).toBe(false);
    expect(matchesServerName(withDns(["a.*.example.com"]), "a.b.example.com")).toBe(false);
  });

  it("matches IP addresses against IP SANs only", () => {
    const c = make(["localhost", "127.0.0.1"], ["10.1.2.3", "2001:db8::1"]);
    expect(matchesServerName(c, "10.1.2.3")).toBe(true);
    expect(matchesServerName(c, "2001:DB8:0:0:0:0:0:1")).toBe(true);
    expect(matchesServerName(c, "127.0.0.1")).toBe(false); // only a DNS SAN spells it
    expect(matchesServerName(c, "10.1.2.4")).toBe(false);
  });

  it("falls back to the CN only when the certificate has no SANs", () => {
    expect(matchesServerName(make([], [], "legacy.example"), "legacy.example")).toBe(true);
    expect(matchesServerName(make(["other.example"], [], "legacy.example"), "legacy.example")).toBe(false);
    expect(matchesServerName(make([], ["10.0.0.1"], "legacy.example"), "legacy.example")).toBe(false);
  });
});

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error("not found");
}
