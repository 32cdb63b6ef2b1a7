import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeCertificates, parseCertArgs } from "../../src/cli/cert.js";
import { nodeProvider } from "../../src/crypto/node.js";
import { loadCertificateChain } from "../../src/tls/pem.js";
import { verifyCertificateChain } from "../../src/tls/verify.js";

describe("mquictt cert", () => {
  it("writes a CA and a server certificate that verifies for the requested names", async () => {
    const out = join(mkdtempSync(join(tmpdir(), "cert-")), "certs");
    const files = await makeCertificates(
      parseCertArgs(["--out", out, "--name", "broker.local", "--name", "127.0.0.1"]),
    );
    expect(files.map((f) => f.slice(out.length + 1)).sort()).toEqual([
      "ca-key.pem",
      "ca.pem",
      "server-key.pem",
      "server.pem",
    ]);
    expect(statSync(join(out, "server-key.pem")).mode & 0o777).toBe(0o600);
    const roots = loadCertificateChain(readFileSync(join(out, "ca.pem"), "utf8"));
    const chain = loadCertificateChain(readFileSync(join(out, "server.pem"), "utf8"));
    for (const serverName of ["broker.local", "127.0.0.1"]) {
      const leaf = verifyCertificateChain(chain, {
        roots,
        serverName,
        now: Date.now(),
        provider: nodeProvider,
      });
      expect(leaf.subjectAltNames).toEqual({ dns: ["broker.local"], ip: ["127.0.0.1"] });
    }
    expect(() =>
      verifyCertificateChain(chain, {
        roots,
        serverName: "other.example",
        now: Date.now(),
        provider: nodeProvider,
      }),
    ).toThrow(/other\.example/);
    await expect(makeCertificates(parseCertArgs(["--out", out]))).rejects.toThrow(/refusing to overwrite/);
  });

  it("rejects bad flags with a clear message", () => {
    expect(() => parseCertArgs(["--days", "0"])).toThrow(/--days/);
    expect(() => parseCertArgs(["--key-type", "rsa"])).toThrow(/--key-type/);
    expect(() => parseCertArgs(["--bogus"])).toThrow(/unknown option --bogus/);
  });
});
