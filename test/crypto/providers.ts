/**
 * Shared fixtures of the crypto suites: every suite runs over all three providers, so `noble`
 * and `node` must pass the same vectors, and `auto` (which mixes them) too.
 */
import { generateKeyPairSync } from "node:crypto";
import { nobleProvider } from "../../src/crypto/noble.js";
import { nodeProvider } from "../../src/crypto/node.js";
import type { CryptoProvider, PrivateKey, PublicKey } from "../../src/crypto/provider.js";
import { createAutoProvider } from "../../src/crypto/select.js";

/** [label, provider] rows for `describe.each`. */
export const PROVIDERS: Array<[string, CryptoProvider]> = [
  ["noble", nobleProvider],
  ["node", nodeProvider],
  ["auto", createAutoProvider({ budgetMs: 0.5 })],
];

/** Every ordered pair (a, b) of distinct implementations, for cross-provider checks. */
export const PAIRS: Array<[string, CryptoProvider, CryptoProvider]> = [
  ["noble -> node", nobleProvider, nodeProvider],
  ["node -> noble", nodeProvider, nobleProvider],
];

const b64u = (s: string | undefined): Uint8Array => new Uint8Array(Buffer.from(s ?? "", "base64url"));

let rsa: { priv: PrivateKey; pub: PublicKey } | undefined;

/** A 2048-bit RSA key made by node:crypto once per test file, in provider-independent form. */
export function rsaKey(): { priv: PrivateKey; pub: PublicKey } {
  if (rsa) return rsa;
  const jwk = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
  const priv: PrivateKey = {
    kind: "rsa",
    n: b64u(jwk.n),
    e: b64u(jwk.e),
    d: b64u(jwk.d),
    p: b64u(jwk.p),
    q: b64u(jwk.q),
    dp: b64u(jwk.dp),
    dq: b64u(jwk.dq),
    qi: b64u(jwk.qi),
  };
  rsa = { priv, pub: { kind: "rsa", n: priv.n, e: priv.e } };
  return rsa;
}
