import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { readFileSync } from "node:fs";
import { ECParameters, ECPrivateKey, id_secp256r1 } from "@peculiar/asn1-ecc";
import { AsnSerializer, OctetString } from "@peculiar/asn1-schema";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { PrivateKey } from "../../src/crypto/provider.js";
import { SeededRng } from "../../src/crypto/random.js";
import { CertificateError } from "../../src/tls/cert-error.js";
import {
  decodePem,
  decodePrivateKeyDer,
  encodePem,
  encodePrivateKeyDer,
  encodePrivateKeyPem,
  loadCertificateChain,
  loadPrivateKey,
  publicKeyOf,
} from "../../src/tls/pem.js";
import { CERT_PROVIDERS, expectCertError } from "./cert-fixtures.js";

const fixture = (name: string): string =>
  readFileSync(new URL(`./fixtures/${name}.pem`, import.meta.url), "utf8");

describe("PEM blocks", () => {
  it("round-trips any bytes through encodePem / decodePem", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 400 }),
        fc.constantFrom("CERTIFICATE", "PRIVATE KEY", "X 509"),
        (der, label) => {
          const text = encodePem(label, der);
          for (const line of text.split("\n")) expect(line.length).toBeLessThanOrEqual(64);
          const [block] = decodePem(text);
          expect(block.label).toBe(label);
          expect(block.der).toEqual(der);
        },
      ),
    );
  });

  it("reads several blocks with CRLF line ends, indentation and junk between them", () => {
    const a = encodePem("CERTIFICATE", new Uint8Array([1, 2, 3]));
    const b = encodePem("PRIVATE KEY", new Uint8Array([4, 5]));
    const text = `Bag Attributes\r\n    localKeyID: 01\r\nsubject=CN = x\r\n${a.replace(/\n/g, "\r\n")}\r\nsome text -----\n  ${b}trailing junk`;
    const blocks = decodePem(text);
    expect(blocks.map((x) => x.label)).toEqual(["CERTIFICATE", "PRIVATE KEY"]);
    expect(blocks[0].der).toEqual(new Uint8Array([1, 2, 3]));
    expect(blocks[1].der).toEqual(new Uint8Array([4, 5]));
    expect(decodePem("no pem here")).toEqual([]);
  });

  it("reports broken blocks with their line", () => {
    expectCertError(() => decodePem("x\n-----BEGIN CERTIFICATE-----\nAAAA\n"), "CERT_PARSE_ERROR");
    const e = expectCertError(
      () => decodePem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n"),
      "CERT_PARSE_ERROR",
    );
    expect(e.message).toBe('PEM block "CERTIFICATE" starting on line 1 ends with "END PRIVATE KEY"');
    const b64 = expectCertError(
      () => decodePem("\n-----BEGIN CERTIFICATE-----\nAA!A\n-----END CERTIFICATE-----\n"),
      "CERT_PARSE_ERROR",
    );
    expect(b64.message).toBe('PEM block "CERTIFICATE" starting on line 2 is not valid base64');
  });

  it("keeps RFC 1421 headers (legacy encrypted keys)", () => {
    const text =
      "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n";
    const [block] = decodePem(text);
    expect(block.headers).toEqual({ "Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00" });
  });
});

describe("loadCertificateChain", () => {
  it("returns every certificate in file order and skips other blocks", () => {
    const text = `${fixture("ec-p256")}\n${encodePem("PRIVATE KEY", new Uint8Array([0]))}${fixture("ed25519")}`;
    const chain = loadCertificateChain(text);
    expect(chain).toHaveLength(2);
    expect(chain[0]).toEqual(decodePem(fixture("ec-p256"))[0].der);
  });

  it("says what the file contains when it has no certificate", () => {
    const e = expectCertError(
      () => loadCertificateChain(encodePem("PRIVATE KEY", new Uint8Array([0])), "server.pem"),
      "CERT_PARSE_ERROR",
    );
    expect(e.message).toBe('no "BEGIN CERTIFICATE" block in server.pem (it contains: PRIVATE KEY)');
    expect(() => loadCertificateChain("")).toThrow(/it has no PEM blocks/);
  });

  it("names the broken certificate", () => {
    const text = `${fixture("ec-p256")}${encodePem("CERTIFICATE", new Uint8Array([0x30, 0x05, 1]))}`;
    const e = expectCertError(() => loadCertificateChain(text, "chain.pem"), "CERT_PARSE_ERROR");
    expect(e.message).toMatch(/^certificate #2 in chain\.pem is not valid DER: truncated/);
  });
});

type NodeKeyCase = { label: string; keyObject: KeyObject; formats: Array<"pkcs8" | "sec1" | "pkcs1"> };

function nodeKeys(): NodeKeyCase[] {
  return [
    {
      label: "EC P-256",
      keyObject: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey,
      formats: ["pkcs8", "sec1"],
    },
    { label: "Ed25519", keyObject: generateKeyPairSync("ed25519").privateKey, formats: ["pkcs8"] },
    {
      label: "RSA",
      keyObject: generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey,
      formats: ["pkcs8", "pkcs1"],
    },
  ];
}

describe("private keys", () => {
  const cases = nodeKeys();

  for (const { label, keyObject, formats } of cases) {
    for (const format of formats) {
      it(`loads ${label} keys in ${format} form, byte-identical PKCS#8 re-encoding`, () => {
        const pem = keyObject.export({ type: format, format: "pem" }) as string;
        const key = loadPrivateKey(pem);
        expect(encodePrivateKeyPem(key)).toBe(keyObject.export({ type: "pkcs8", format: "pem" }));
        const jwk = keyObject.export({ format: "jwk" });
        const b64u = (b: Uint8Array): string => Buffer.from(b).toString("base64url");
        switch (key.kind) {
          case "ec-p256":
            expect(b64u(key.d)).toBe(jwk.d);
            expect(b64u(key.point.subarray(1, 33))).toBe(jwk.x);
            expect(b64u(key.point.subarray(33))).toBe(jwk.y);
            break;
          case "ed25519":
            expect(b64u(key.seed)).toBe(jwk.d);
            expect(b64u(key.key)).toBe(jwk.x);
            break;
          case "rsa":
            expect(b64u(key.n)).toBe(jwk.n);
            expect(b64u(key.qi)).toBe(jwk.qi);
            break;
        }
      });
    }
  }

  describe.each(CERT_PROVIDERS)("signatures with loaded keys (%s)", (_l, provider) => {
    it("signs with loaded keys so that node:crypto verifies", () => {
      const rng = new SeededRng(5);
      const data = new TextEncoder().encode("mquictt");
      for (const { keyObject } of cases) {
        const key = loadPrivateKey(keyObject.export({ type: "pkcs8", format: "pem" }) as string);
        const pub = createPublicKey(keyObject);
        const scheme =
          key.kind === "ec-p256"
            ? "ecdsa_secp256r1_sha256"
            : key.kind === "ed25519"
              ? "ed25519"
              : "rsa_pkcs1_sha256";
        const sig = provider.sign(scheme, key, data, rng);
        expect(verify(key.kind === "ed25519" ? null : "sha256", data, pub, sig)).toBe(true);
        expect(provider.verify(scheme, publicKeyOf(key), data, sig)).toBe(true);
        if (key.kind !== "rsa") {
          const nodeSig = sign(key.kind === "ed25519" ? null : "sha256", data, keyObject);
          expect(provider.verify(scheme, publicKeyOf(key), data, nodeSig)).toBe(true);
        }
      }
    });
  });

  it("finds the key in a combined certificate + key file and skips EC PARAMETERS", () => {
    const { keyObject } = cases[0];
    const sec1 = keyObject.export({ type: "sec1", format: "pem" }) as string;
    const params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
    const key = loadPrivateKey(`${fixture("ec-p256")}${params}${sec1}`);
    expect(key.kind).toBe("ec-p256");
  });

  it("refuses encrypted keys with a clear instruction", () => {
    const { keyObject } = cases[0];
    const pkcs8 = keyObject.export({
      type: "pkcs8",
      format: "pem",
      cipher: "aes-256-cbc",
      passphrase: "pw",
    }) as string;
    expect(pkcs8).toContain("ENCRYPTED PRIVATE KEY");
    const e = expectCertError(() => loadPrivateKey(pkcs8), "CERT_BAD_KEY");
    expect(e.message).toMatch(/^encrypted private keys are not supported; decrypt with openssl pkey/);
    const legacy = keyObject.export({
      type: "sec1",
      format: "pem",
      cipher: "aes-128-cbc",
      passphrase: "pw",
    }) as string;
    expect(legacy).toContain("Proc-Type: 4,ENCRYPTED");
    expect(expectCertError(() => loadPrivateKey(legacy), "CERT_BAD_KEY").message).toMatch(
      /^encrypted private keys/,
    );
  });

  it("rejects unsupported curves and algorithms by name", () => {
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey;
    const e = expectCertError(
      () => loadPrivateKey(p384.export({ type: "pkcs8", format: "pem" }) as string, "key.pem"),
      "CERT_BAD_KEY",
    );
    expect(e.message).toBe(
      "the PRIVATE KEY in key.pem is on curve P-384; only P-256 (prime256v1) is supported",
    );
    const sec1 = expectCertError(
      () => loadPrivateKey(p384.export({ type: "sec1", format: "pem" }) as string),
      "CERT_BAD_KEY",
    );
    expect(sec1.message).toContain("P-384");
    const ed448 = generateKeyPairSync("ed448").privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    expect(expectCertError(() => loadPrivateKey(ed448), "CERT_BAD_KEY").message).toContain(
      "Ed448 (1.3.101.113)",
    );
  });

  it("rejects missing, duplicate, malformed and inconsistent keys", () => {
    expect(
      expectCertError(() => loadPrivateKey(fixture("ec-p256"), "cert.pem"), "CERT_BAD_KEY").message,
    ).toBe("no private key in cert.pem (it contains: CERTIFICATE)");
    const one = cases[1].keyObject.export({ type: "pkcs8", format: "pem" }) as string;
    expect(expectCertError(() => loadPrivateKey(one + one), "CERT_BAD_KEY").message).toContain(
      "contains 2 private keys",
    );
    expectCertError(
      () => loadPrivateKey(encodePem("PRIVATE KEY", new Uint8Array([0x30, 0x03, 2, 1, 0]))),
      "CERT_BAD_KEY",
    );
    // a SEC1 key whose public point belongs to another key
    const a = loadPrivateKey(cases[0].keyObject.export({ type: "pkcs8", format: "pem" }) as string);
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const b = loadPrivateKey(other.export({ type: "pkcs8", format: "pem" }) as string);
    if (a.kind !== "ec-p256" || b.kind !== "ec-p256") throw new Error("expected EC keys");
    const franken: PrivateKey = { kind: "ec-p256", d: a.d, point: b.point };
    const e = expectCertError(() => decodePrivateKeyDer(encodePrivateKeyDer(franken)), "CERT_BAD_KEY");
    expect(e.message).toContain("carries a public key that does not belong to its private key");
  });

  it("derives the public half when the file does not carry it", () => {
    const ec = loadPrivateKey(cases[0].keyObject.export({ type: "pkcs8", format: "pem" }) as string);
    if (ec.kind !== "ec-p256") throw new Error("expected EC");
    const bare = new ECPrivateKey({
      version: 1,
      privateKey: new OctetString(ec.d),
      parameters: new ECParameters({ namedCurve: id_secp256r1 }),
    });
    const derived = loadPrivateKey(
      encodePem("EC PRIVATE KEY", new Uint8Array(AsnSerializer.serialize(bare))),
    );
    expect(derived).toEqual(ec);
    // PKCS#8 Ed25519 (RFC 8410) never carries the public key
    const ed = loadPrivateKey(cases[1].keyObject.export({ type: "pkcs8", format: "pem" }) as string);
    if (ed.kind !== "ed25519") throw new Error("expected Ed25519");
    expect(Buffer.from(ed.key).toString("base64url")).toBe(cases[1].keyObject.export({ format: "jwk" }).x);
    expect(createPrivateKey(encodePrivateKeyPem(ed)).asymmetricKeyType).toBe("ed25519");
  });

  it("never throws anything but CertificateError on random key bytes", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.constantFrom("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"),
        (b, label) => {
          try {
            loadPrivateKey(encodePem(label, b));
          } catch (e) {
            if (!(e instanceof CertificateError)) throw e;
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
