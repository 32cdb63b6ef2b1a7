/** The crypto providers every TLS test runs under (`describe.each(PROVIDERS)`). */
import { nobleProvider } from "../../src/crypto/noble.js";
import { nodeProvider } from "../../src/crypto/node.js";
import type { CryptoProvider } from "../../src/crypto/provider.js";

/** [name, provider] pairs for `describe.each`. MQUICTT_CRYPTO=noble|node restricts the list. */
export const PROVIDERS: [string, CryptoProvider][] = (
  [
    ["noble", nobleProvider],
    ["node", nodeProvider],
  ] as [string, CryptoProvider][]
).filter(([name]) => {
  const only = process.env.MQUICTT_CRYPTO;
  return !only || only === "auto" || only === name;
});
