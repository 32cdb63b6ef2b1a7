/**
 * Choosing a crypto provider: `noble` (pure TypeScript), `node` (OpenSSL), or `auto`, which
 * delegates each primitive group to whichever of the two measured faster *on this machine*.
 *
 * Each group is measured once, lazily, on its first use, with a tiny timed loop (about
 * `budgetMs` per implementation, 2 ms by default, plus warm-up). Synthetic workloads are used for AEAD
 * (1200-byte packets), header protection, hashing, HMAC/HKDF and key shares; signing and
 * verification are measured on the first real call with its own key and data, so an RSA-4096
 * certificate is judged on RSA-4096. `describeCryptoChoice()` shows every choice and the numbers
 * behind it in one place. This is the one module of src/crypto that reads a clock, and only to
 * choose an implementation: results never depend on the choice (both pass the same vectors).
 *
 * Randomness stays deterministic under `auto`: key shares draw the same bytes from the `Rng`
 * whichever provider makes them, and `sign` always draws exactly 32 bytes from the caller's
 * `Rng` to seed a SHA-256 counter-mode stream for the chosen provider, so the caller's `Rng`
 * advances identically whichever implementation signs.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { nobleProvider } from "./noble.js";
import { nodeProvider } from "./node.js";
import type {
  AeadAlgorithm,
  CryptoChoice,
  CryptoProvider,
  HashAlgorithm,
  NamedGroup,
  PrivateKey,
  PublicKey,
  Rng,
  SignatureScheme,
} from "./provider.js";
import { SeededRng } from "./random.js";

/** The implementations `auto` chooses between. */
export type ProviderName = "noble" | "node";

/** A primitive group whose implementation `auto` chooses as a unit. */
export type PrimitiveGroup =
  | "hash"
  | "hmac-hkdf"
  | `aead:${AeadAlgorithm}`
  | `hp:${AeadAlgorithm}`
  | `keyshare:${NamedGroup}`
  | `sign:${SignatureScheme}`
  | `verify:${SignatureScheme}`;

/** One row of `describeCryptoChoice()`. `null` means not measured yet (sign/verify: not used yet). */
export interface CryptoChoiceRow {
  readonly primitive: PrimitiveGroup;
  readonly chosen: ProviderName | null;
  readonly nobleOpsPerSec: number | null;
  readonly nodeOpsPerSec: number | null;
}

/** Options of `createAutoProvider`. */
export interface AutoProviderOptions {
  /** Time spent measuring each implementation of a group, in milliseconds, after warm-up (default 2). */
  readonly budgetMs?: number;
  /** Fixed choices that skip measurement (for tests, or to pin a group). */
  readonly force?: Partial<Record<PrimitiveGroup, ProviderName>>;
}

/** An `auto` provider, with access to the choices it made. */
export interface AutoCryptoProvider extends CryptoProvider {
  /** Every group with its choice and measurements; `measure` first measures all synthetic groups. */
  describe(options?: { measure?: boolean }): CryptoChoiceRow[];
}

const AEADS: readonly AeadAlgorithm[] = ["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"];
const GROUPS: readonly NamedGroup[] = ["x25519", "secp256r1"];
const SCHEMES: readonly SignatureScheme[] = [
  "ecdsa_secp256r1_sha256",
  "ed25519",
  "rsa_pss_rsae_sha256",
  "rsa_pkcs1_sha256",
];

/** All groups in display order. */
export const PRIMITIVE_GROUPS: readonly PrimitiveGroup[] = [
  ...AEADS.map((a): PrimitiveGroup => `aead:${a}`),
  ...AEADS.map((a): PrimitiveGroup => `hp:${a}`),
  "hash",
  "hmac-hkdf",
  ...GROUPS.map((g): PrimitiveGroup => `keyshare:${g}`),
  ...SCHEMES.map((s): PrimitiveGroup => `sign:${s}`),
  ...SCHEMES.map((s): PrimitiveGroup => `verify:${s}`),
];

const PROVIDERS: Record<ProviderName, CryptoProvider> = { noble: nobleProvider, node: nodeProvider };

/**
 * Warms `op` up: two calls (the first pays one-time setup such as table precomputation or key
 * import), a third while within `budgetMs`. Returns the duration of the last call in ms.
 */
function warmUp(op: () => void, budgetMs: number): number {
  let last = 0;
  const w0 = performance.now();
  for (let i = 0; i < 3 && (i < 2 || performance.now() - w0 < budgetMs); i++) {
    const t = performance.now();
    op();
    last = performance.now() - t;
  }
  return last;
}

/** Ops/s of an already warm `op` over one slice of `sliceMs`; a slow op is judged on one call. */
function sliceRate(op: () => void, sliceMs: number): number {
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    op();
    n++;
    t = performance.now();
  } while (t - t0 < sliceMs);
  return (n * 1000) / Math.max(t - t0, 1e-3);
}

/**
 * Measures several ops against each other within about `budgetMs` each: every op is warmed up,
 * then the ops take turns over three slices and each keeps its best slice. The best slice (not
 * the mean) is robust to a busy machine, where interference only ever slows an op down; taking
 * turns spreads any burst over all of them. An op slower than a slice when warm is judged on its
 * last warm-up call. Noble's numbers are for code the JIT has barely seen: they understate its
 * steady state (see bench/crypto.ts), which only ever favours node where the two are close.
 */
export function measureOpsPerSec(op: () => void, budgetMs: number): number {
  return compareOpsPerSec([op], budgetMs)[0];
}

/** Best-slice ops/s for each of `ops` (see `measureOpsPerSec`). */
export function compareOpsPerSec(ops: ReadonlyArray<() => void>, budgetMs: number): number[] {
  const rounds = 3;
  const sliceMs = budgetMs / rounds;
  const lastWarm = ops.map((op) => warmUp(op, budgetMs));
  const best = lastWarm.map((ms) => (ms >= sliceMs ? 1000 / ms : 0));
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < ops.length; i++) {
      const k = (i + r) % ops.length;
      if (lastWarm[k] >= sliceMs) continue;
      best[k] = Math.max(best[k], sliceRate(ops[k], sliceMs));
    }
  }
  return best;
}

/** A deterministic Rng: SHA-256(seed || counter) blocks (counter mode). Used to hand signers a stream. */
class DerivedRng implements Rng {
  private readonly input: Uint8Array;
  private block = new Uint8Array(0);
  private used = 0;
  private counter = 0;

  constructor(seed: Uint8Array) {
    this.input = new Uint8Array(seed.length + 4);
    this.input.set(seed);
  }

  fill(out: Uint8Array): Uint8Array {
    for (let i = 0; i < out.length; i++) {
      if (this.used === this.block.length) {
        const c = this.counter++;
        const o = this.input.length - 4;
        this.input[o] = c >>> 24;
        this.input[o + 1] = (c >>> 16) & 0xff;
        this.input[o + 2] = (c >>> 8) & 0xff;
        this.input[o + 3] = c & 0xff;
        this.block = sha256(this.input);
        this.used = 0;
      }
      out[i] = this.block[this.used++];
    }
    return out;
  }
}

/** The synthetic workload of a group for `p`, or undefined for groups measured on real calls. */
function syntheticWorkload(group: PrimitiveGroup, p: CryptoProvider): (() => void) | undefined {
  const [kind, arg] = group.split(":") as [string, string | undefined];
  switch (kind) {
    case "aead": {
      const alg = arg as AeadAlgorithm;
      const a = p.aead(alg, new Uint8Array(alg === "aes-128-gcm" ? 16 : 32).fill(1));
      const nonce = new Uint8Array(12);
      const aad = new Uint8Array(20);
      const packet = new Uint8Array(1200);
      return () => {
        a.seal(nonce, aad, packet);
      };
    }
    case "hp": {
      const alg = arg as AeadAlgorithm;
      const hp = p.headerProtection(alg, new Uint8Array(alg === "aes-128-gcm" ? 16 : 32).fill(2));
      const sample = new Uint8Array(16).fill(3);
      return () => {
        hp.mask(sample);
      };
    }
    case "hash": {
      const data = new Uint8Array(1024);
      return () => {
        p.hash("sha256", data);
      };
    }
    case "hmac-hkdf": {
      // The shape of HKDF-Expand-Label for a QUIC key: a 32-byte secret, a short info, 16 bytes out.
      const prk = new Uint8Array(32).fill(4);
      const info = new Uint8Array(18).fill(5);
      return () => {
        p.hkdfExpand("sha256", prk, info, 16);
      };
    }
    case "keyshare": {
      const g = arg as NamedGroup;
      const rng = new SeededRng(7);
      const peer = p.generateKeyShare(g, rng).publicKey;
      return () => {
        p.generateKeyShare(g, rng).sharedSecret(peer);
      };
    }
    default:
      return undefined;
  }
}

interface GroupState {
  chosen: ProviderName;
  nobleOpsPerSec: number | null;
  nodeOpsPerSec: number | null;
}

/**
 * A new `auto` provider with its own measurements. Most code wants the shared one:
 * `getCryptoProvider("auto")`.
 */
export function createAutoProvider(options: AutoProviderOptions = {}): AutoCryptoProvider {
  const budgetMs = options.budgetMs ?? 2;
  const state = new Map<PrimitiveGroup, GroupState>();

  const measure = (
    group: PrimitiveGroup,
    workload: (p: CryptoProvider) => (() => void) | undefined,
  ): GroupState => {
    // An implementation whose workload cannot be built or throws (unsupported) gets 0 ops/s.
    const contenders = (["node", "noble"] as const).map((name) => {
      let failed = false;
      let op: (() => void) | undefined;
      try {
        op = workload(PROVIDERS[name]);
      } catch {
        failed = true;
      }
      const run = (): void => {
        if (failed || !op) return;
        try {
          op();
        } catch {
          failed = true;
        }
      };
      return { run, failed: () => failed || !op };
    });
    const rates = compareOpsPerSec(
      contenders.map((c) => c.run),
      budgetMs,
    ).map((r, i) => (contenders[i].failed() ? 0 : r));
    const [nodeOps, nobleOps] = rates;
    const s: GroupState = {
      chosen: nobleOps > nodeOps ? "noble" : "node",
      nobleOpsPerSec: nobleOps,
      nodeOpsPerSec: nodeOps,
    };
    // Both failed (say, a first sign() call with a key of the wrong kind): decide nothing yet.
    if (nodeOps > 0 || nobleOps > 0) state.set(group, s);
    return s;
  };

  /** The provider for `group`, measuring it (with `workload`, or the synthetic one) on first use. */
  const pick = (group: PrimitiveGroup, workload?: (p: CryptoProvider) => () => void): CryptoProvider => {
    let s = state.get(group);
    if (!s) {
      const forced = options.force?.[group];
      if (forced) {
        s = { chosen: forced, nobleOpsPerSec: null, nodeOpsPerSec: null };
        state.set(group, s);
      } else {
        s = measure(group, workload ?? ((p) => syntheticWorkload(group, p)));
      }
    }
    return PROVIDERS[s.chosen];
  };

  const hashP = (): CryptoProvider => pick("hash");
  const hmacP = (): CryptoProvider => pick("hmac-hkdf");
  const measureRng = (): Rng => new SeededRng(0x5eed);

  return {
    name: "auto",
    hash: (alg: HashAlgorithm, data: Uint8Array) => hashP().hash(alg, data),
    createHash: (alg) => hashP().createHash(alg),
    hmac: (alg, key, data) => hmacP().hmac(alg, key, data),
    hkdfExtract: (alg, salt, ikm) => hmacP().hkdfExtract(alg, salt, ikm),
    hkdfExpand: (alg, prk, info, length) => hmacP().hkdfExpand(alg, prk, info, length),
    aead: (alg, key) => pick(`aead:${alg}`).aead(alg, key),
    headerProtection: (alg, hpKey) => pick(`hp:${alg}`).headerProtection(alg, hpKey),
    generateKeyShare: (group, rng) => pick(`keyshare:${group}`).generateKeyShare(group, rng),
    keyShareFromPrivate: (group, privateKey) =>
      pick(`keyshare:${group}`).keyShareFromPrivate(group, privateKey),
    sign(scheme: SignatureScheme, key: PrivateKey, data: Uint8Array, rng: Rng) {
      const p = pick(`sign:${scheme}`, (q) => {
        const r = measureRng();
        return () => {
          q.sign(scheme, key, data, r);
        };
      });
      return p.sign(scheme, key, data, new DerivedRng(rng.fill(new Uint8Array(32))));
    },
    verify(scheme: SignatureScheme, key: PublicKey, data: Uint8Array, signature: Uint8Array) {
      const p = pick(`verify:${scheme}`, (q) => () => {
        q.verify(scheme, key, data, signature);
      });
      return p.verify(scheme, key, data, signature);
    },
    describe({ measure: doMeasure = true } = {}) {
      if (doMeasure) {
        for (const g of PRIMITIVE_GROUPS) if (!g.startsWith("sign:") && !g.startsWith("verify:")) pick(g);
      }
      return PRIMITIVE_GROUPS.map((primitive) => {
        const s = state.get(primitive);
        return {
          primitive,
          chosen: s?.chosen ?? null,
          nobleOpsPerSec: s?.nobleOpsPerSec ?? null,
          nodeOpsPerSec: s?.nodeOpsPerSec ?? null,
        };
      });
    },
  };
}

let shared: AutoCryptoProvider | undefined;

/** The process-wide `auto` provider (created on first call; its measurements are shared). */
export function autoProvider(): AutoCryptoProvider {
  shared ??= createAutoProvider();
  return shared;
}

/** Parses a provider choice such as the value of `MQUICTT_CRYPTO`; throws on anything else. */
export function parseCryptoChoice(value: string): CryptoChoice {
  const v = value.trim().toLowerCase();
  if (v === "noble" || v === "node" || v === "auto") return v;
  throw new Error(`unknown crypto provider "${value}": expected noble, node or auto (MQUICTT_CRYPTO)`);
}

/**
 * The provider for `choice`; without one, from the environment variable `MQUICTT_CRYPTO`
 * (`noble`, `node` or `auto`), else `auto`.
 */
export function getCryptoProvider(choice?: CryptoChoice): CryptoProvider {
  const env = process.env.MQUICTT_CRYPTO;
  const c = choice ?? (env ? parseCryptoChoice(env) : "auto");
  if (c === "noble") return nobleProvider;
  if (c === "node") return nodeProvider;
  return autoProvider();
}

/**
 * What the shared `auto` provider chose for every primitive group and the ops/s measured for
 * each implementation. Measures any synthetic group not measured yet (a few ms each); sign and
 * verify rows stay `null` until a real signature has been made or checked.
 */
export function describeCryptoChoice(options?: { measure?: boolean }): CryptoChoiceRow[] {
  return autoProvider().describe(options);
}
