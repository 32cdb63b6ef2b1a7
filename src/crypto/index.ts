/**
 * The crypto layer's public surface: the provider interface and its types, the `noble` and
 * `node` providers, the per-primitive `auto` selection, and the randomness sources.
 */

export { nobleProvider } from "./noble.js";
export { nodeProvider } from "./node.js";
export type {
  Aead,
  AeadAlgorithm,
  CryptoChoice,
  CryptoProvider,
  HashAlgorithm,
  HeaderProtection,
  IncrementalHash,
  KeyShare,
  NamedGroup,
  PrivateKey,
  PublicKey,
  Rng,
  SignatureScheme,
} from "./provider.js";
export { aeadKeyLength, hashLength, InvalidKeyShareError, UnsupportedAlgorithmError } from "./provider.js";
export { SeededRng, systemRng } from "./random.js";
export type {
  AutoCryptoProvider,
  AutoProviderOptions,
  CryptoChoiceRow,
  PrimitiveGroup,
  ProviderName,
} from "./select.js";
export { autoProvider, createAutoProvider, describeCryptoChoice, getCryptoProvider } from "./select.js";
