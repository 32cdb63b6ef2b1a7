import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SeededRng } from "../../src/crypto/random.js";
import {
  CertificateFileError,
  loadCertificateFile,
  loadPrivateKeyFile,
  loadSystemRoots,
  readPemFile,
  SYSTEM_CA_BUNDLES,
  writeCertificateFiles,
} from "../../src/net/cert-files.js";
import { generateTestCA, issueLeaf } from "../../src/tls/certgen.js";
import { encodePem } from "../../src/tls/pem.js";
import { verifyCertificateChain } from "../../src/tls/verify.js";
import { CERT_PROVIDERS, NOW, tempDir } from "./cert-fixtures.js";

const [, provider] = CERT_PROVIDERS[0];
const rng = new SeededRng(31);
const ca = generateTestCA({ commonName: "files CA", provider, rng, now: NOW });
const leaf = issueLeaf(ca, { commonName: "localhost", dns: ["localhost"], provider, rng, now: NOW });

describe("certificate files", () => {
  const { dir, cleanup } = tempDir();
  afterAll(cleanup);

  it("writes chain and key files that load back and verify, the key with mode 0600", async () => {
    const out = join(dir, "certs");
    const written = await writeCertificateFiles(out, [
      { name: "ca", chain: [ca], writeKey: false },
      { name: "server", chain: [leaf] },
    ]);
    expect(written).toEqual([join(out, "ca.pem"), join(out, "server.pem"), join(out, "server-key.pem")]);
    expect(statSync(join(out, "server-key.pem")).mode & 0o777).toBe(0o600);
    const chain = await loadCertificateFile(join(out, "server.pem"));
    const roots = await loadCertificateFile(join(out, "ca.pem"));
    verifyCertificateChain(chain, { roots, now: NOW, provider, serverName: "localhost" });
    expect(await loadPrivateKeyFile(join(out, "server-key.pem"))).toEqual(leaf.key);
  });

  it("refuses to overwrite unless asked", async () => {
    const out = join(dir, "twice");
    await writeCertificateFiles(out, [{ name: "server", chain: [leaf, ca] }]);
    const e = await writeCertificateFiles(out, [{ name: "server", chain: [leaf] }]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CertificateFileError);
    expect((e as CertificateFileError).message).toBe(
      `refusing to overwrite ${join(out, "server.pem")}: it exists already`,
    );
    expect(readFileSync(join(out, "server.pem"), "utf8")).toBe(leaf.pem + ca.pem);
    await writeCertificateFiles(out, [{ name: "server", chain: [leaf] }], { overwrite: true });
    expect(readFileSync(join(out, "server.pem"), "utf8")).toBe(leaf.pem);
  });

  it("says which file cannot be read", async () => {
    const missing = join(dir, "nope.pem");
    const e = await readPemFile(missing).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CertificateFileError);
    expect((e as CertificateFileError).code).toBe("ERR_CERT_FILE");
    expect((e as CertificateFileError).message).toBe(`cannot read certificate file ${missing}: no such file`);
  });
});

describe("loadSystemRoots", () => {
  const { dir, cleanup } = tempDir({
    "bundle.pem": `${ca.pem}# junk\n${encodePem("CERTIFICATE", new Uint8Array([0x30, 0x03, 1, 2, 3]))}-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n${leaf.pem}`,
  });
  afterAll(cleanup);

  it("reads SSL_CERT_FILE, skipping and counting unparseable entries", async () => {
    const r = await loadSystemRoots({ env: { SSL_CERT_FILE: join(dir, "bundle.pem") } });
    expect(r.path).toBe(join(dir, "bundle.pem"));
    expect(r.roots).toEqual([ca.der, leaf.der]);
    expect(r.skipped).toBe(2);
    expect(r.store.size).toBe(2);
  });

  const systemBundle = SYSTEM_CA_BUNDLES.find((p) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  });

  it.skipIf(systemBundle === undefined)(
    "loads the machine's CA bundle and parses nearly all of it",
    async () => {
      const r = await loadSystemRoots({ env: {} });
      const total = r.roots.length + r.skipped;
      console.log(
        `system roots: ${r.path}: ${r.roots.length} of ${total} parsed, ${r.skipped} skipped, ${r.unusableKeys} with keys mquictt cannot verify with (e.g. P-384)`,
      );
      expect(r.roots.length).toBeGreaterThan(50);
      expect(r.skipped / total).toBeLessThan(0.05);
    },
  );
});
