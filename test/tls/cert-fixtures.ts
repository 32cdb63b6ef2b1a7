/**
 * Shared helpers of the certificate suites: providers to run over, a fixed clock, a seeded
 * generator, the openssl CLI (when the machine has one), and an assertion for CertificateError.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { nobleProvider } from "../../src/crypto/noble.js";
import { nodeProvider } from "../../src/crypto/node.js";
import type { CryptoProvider } from "../../src/crypto/provider.js";
import { CertificateError, type CertificateErrorCode } from "../../src/tls/cert-error.js";

/** [label, provider] rows for `describe.each`. */
export const CERT_PROVIDERS: Array<[string, CryptoProvider]> = [
  ["noble", nobleProvider],
  ["node", nodeProvider],
];

/** The fixed "now" of the suites: 2026-11-26T12:00:00Z. */
export const NOW = Date.UTC(2026, 10, 26, 12, 0, 0);
/** One day in milliseconds. */
export const DAY = 86_400_000;

/** Runs `f`, expects a CertificateError with `code`, returns it. */
export function expectCertError(f: () => unknown, code: CertificateErrorCode): CertificateError {
  try {
    f();
  } catch (e) {
    if (!(e instanceof CertificateError)) throw e;
    expect(e.code, e.message).toBe(code);
    return e;
  }
  throw new Error(`expected CertificateError ${code}, but nothing was thrown`);
}

/** Whether the openssl CLI is available. */
export const HAVE_OPENSSL = ((): boolean => {
  try {
    execFileSync("openssl", ["version"], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
})();

/** Runs openssl with `args` in `dir`; returns stdout. Throws with stderr on failure. */
export function openssl(dir: string, args: string[]): string {
  return execFileSync("openssl", args, { cwd: dir, stdio: "pipe", encoding: "utf8" });
}

/** A temporary directory with the given files, removed by the returned `cleanup`. */
export function tempDir(files: Record<string, string> = {}): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "mquictt-cert-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
