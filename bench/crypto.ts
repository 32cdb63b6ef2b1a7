/**
 * Crypto provider benchmark: noble (pure TypeScript) against node (OpenSSL) for every primitive
 * the QUIC + TLS stacks use per packet or per handshake, and what `auto` chose.
 *
 *   npx tsx bench/crypto.ts           full run (~35 s)
 *   npx tsx bench/crypto.ts --quick   CI smoke run (~4 s including startup; numbers are rough)
 *
 * Prints a table on stdout, progress on stderr, and writes bench/results/crypto.json and its
 * bench/RESULTS.md section bench/results/crypto.md (quick runs: crypto-quick.json/.md, so a smoke
 * run never overwrites a full result).
 * Each measurement warms up, then runs for a fixed time split into slices and reports the
 * median slice rate, which tolerates a busy machine better than one long average.
 */

import { generateKeyPairSync } from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";
import { nobleProvider } from "../src/crypto/noble.js";
import { nodeProvider } from "../src/crypto/node.js";
import type { AeadAlgorithm, CryptoProvider, PrivateKey, PublicKey } from "../src/crypto/provider.js";
import { SeededRng } from "../src/crypto/random.js";
import {
  autoProvider,
  type CryptoChoiceRow,
  describeCryptoChoice,
  type PrimitiveGroup,
} from "../src/crypto/select.js";
import { hkdfExpandLabel } from "../src/tls/hkdf.js";
import { machine, mdTable, progress, progressDone, table, writeMarkdown, writeResult } from "./lib/report.js";

const quick = process.argv.includes("--quick");
const WARMUP_MS = quick ? 10 : 150;
const RUN_MS = quick ? 30 : 700;
const SLICES = 5;
const PACKET = 1200;

interface Case {
  /** Row label. */
  name: string;
  /** The `auto` group this primitive belongs to. */
  group: PrimitiveGroup;
  /** Bytes processed per op, when MB/s is meaningful. */
  bytes?: number;
  /** Builds the op for a provider (setup is not timed). */
  make(p: CryptoProvider): () => void;
}

interface Measurement {
  opsPerSec: number;
  mbPerSec?: number;
}

const b64u = (s: string | undefined): Uint8Array => new Uint8Array(Buffer.from(s ?? "", "base64url"));

function rsaKey(): { priv: PrivateKey; pub: PublicKey } {
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
  return { priv, pub: { kind: "rsa", n: priv.n, e: priv.e } };
}

function ecKey(): { priv: PrivateKey; pub: PublicKey } {
  const d = new SeededRng(1).fill(new Uint8Array(32));
  d[0] &= 0x7f;
  const point = nobleProvider.keyShareFromPrivate("secp256r1", d).publicKey;
  return { priv: { kind: "ec-p256", d, point }, pub: { kind: "ec-p256", point } };
}

function edKey(): { priv: PrivateKey; pub: PublicKey } {
  const seed = new SeededRng(2).fill(new Uint8Array(32));
  const key = ed25519.getPublicKey(seed);
  return { priv: { kind: "ed25519", seed, key }, pub: { kind: "ed25519", key } };
}

const MSG = new Uint8Array(100).fill(0x42); // roughly a TLS 1.3 CertificateVerify content's hash input

function cases(rsa: { priv: PrivateKey; pub: PublicKey }): Case[] {
  const ec = ecKey();
  const ed = edKey();
  const list: Case[] = [];
  for (const alg of ["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"] as AeadAlgorithm[]) {
    const key = new Uint8Array(alg === "aes-128-gcm" ? 16 : 32).fill(7);
    const nonce = new Uint8Array(12).fill(1);
    const aad = new Uint8Array(20).fill(2); // a short header
    const pt = new Uint8Array(PACKET).fill(3);
    list.push({
      name: `${alg} seal 1200 B`,
      group: `aead:${alg}`,
      bytes: PACKET,
      make: (p) => {
        const a = p.aead(alg, key);
        return () => {
          a.seal(nonce, aad, pt);
        };
      },
    });
    list.push({
      name: `${alg} open 1200 B`,
      group: `aead:${alg}`,
      bytes: PACKET,
      make: (p) => {
        const a = p.aead(alg, key);
        const sealed = a.seal(nonce, aad, pt);
        return () => {
          if (!a.open(nonce, aad, sealed)) throw new Error("open failed");
        };
      },
    });
  }
  for (const alg of ["aes-128-gcm", "chacha20-poly1305"] as AeadAlgorithm[]) {
    list.push({
      name: `header protection ${alg === "aes-128-gcm" ? "AES-128" : "ChaCha20"}`,
      group: `hp:${alg}`,
      make: (p) => {
        const hp = p.headerProtection(alg, new Uint8Array(alg === "aes-128-gcm" ? 16 : 32).fill(4));
        const sample = new Uint8Array(16).fill(5);
        return () => {
          hp.mask(sample);
        };
      },
    });
  }
  list.push(
    {
      name: "x25519 keygen + shared secret",
      group: "keyshare:x25519",
      make: (p) => {
        const rng = new SeededRng(3);
        const peer = p.generateKeyShare("x25519", rng).publicKey;
        return () => {
          p.generateKeyShare("x25519", rng).sharedSecret(peer);
        };
      },
    },
    {
      name: "P-256 ECDH keygen + shared secret",
      group: "keyshare:secp256r1",
      make: (p) => {
        const rng = new SeededRng(4);
        const peer = p.generateKeyShare("secp256r1", rng).publicKey;
        return () => {
          p.generateKeyShare("secp256r1", rng).sharedSecret(peer);
        };
      },
    },
    {
      name: "ECDSA P-256 sign",
      group: "sign:ecdsa_secp256r1_sha256",
      make: (p) => {
        const rng = new SeededRng(5);
        return () => {
          p.sign("ecdsa_secp256r1_sha256", ec.priv, MSG, rng);
        };
      },
    },
    {
      name: "ECDSA P-256 verify",
      group: "verify:ecdsa_secp256r1_sha256",
      make: (p) => {
        const sig = p.sign("ecdsa_secp256r1_sha256", ec.priv, MSG, new SeededRng(6));
        return () => {
          if (!p.verify("ecdsa_secp256r1_sha256", ec.pub, MSG, sig)) throw new Error("verify failed");
        };
      },
    },
    {
      name: "Ed25519 sign",
      group: "sign:ed25519",
      make: (p) => () => {
        p.sign("ed25519", ed.priv, MSG, new SeededRng(0));
      },
    },
    {
      name: "Ed25519 verify",
      group: "verify:ed25519",
      make: (p) => {
        const sig = p.sign("ed25519", ed.priv, MSG, new SeededRng(0));
        return () => {
          if (!p.verify("ed25519", ed.pub, MSG, sig)) throw new Error("verify failed");
        };
      },
    },
    {
      name: "RSA-2048 PSS sign",
      group: "sign:rsa_pss_rsae_sha256",
      make: (p) => {
        const rng = new SeededRng(7);
        return () => {
          p.sign("rsa_pss_rsae_sha256", rsa.priv, MSG, rng);
        };
      },
    },
    {
      name: "RSA-2048 PSS verify",
      group: "verify:rsa_pss_rsae_sha256",
      make: (p) => {
        const sig = p.sign("rsa_pss_rsae_sha256", rsa.priv, MSG, new SeededRng(8));
        return () => {
          if (!p.verify("rsa_pss_rsae_sha256", rsa.pub, MSG, sig)) throw new Error("verify failed");
        };
      },
    },
    {
      name: "HKDF-Expand-Label (quic key, 16 B)",
      group: "hmac-hkdf",
      make: (p) => {
        const secret = new Uint8Array(32).fill(9);
        const empty = new Uint8Array(0);
        return () => {
          hkdfExpandLabel(p, "sha256", secret, "quic key", empty, 16);
        };
      },
    },
    {
      name: "SHA-256 of 1 KB",
      group: "hash",
      bytes: 1024,
      make: (p) => {
        const data = new Uint8Array(1024).fill(10);
        return () => {
          p.hash("sha256", data);
        };
      },
    },
  );
  return list;
}

function measure(op: () => void, bytes: number | undefined): Measurement {
  const w0 = performance.now();
  do op();
  while (performance.now() - w0 < WARMUP_MS);
  const rates: number[] = [];
  const sliceMs = RUN_MS / SLICES;
  for (let s = 0; s < SLICES; s++) {
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    do {
      op();
      n++;
      t = performance.now();
    } while (t - t0 < sliceMs);
    rates.push((n * 1000) / (t - t0));
  }
  rates.sort((a, b) => a - b);
  const opsPerSec = rates[SLICES >> 1];
  return bytes ? { opsPerSec, mbPerSec: (opsPerSec * bytes) / 1e6 } : { opsPerSec };
}

function fmtOps(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  if (x >= 100) return x.toFixed(0);
  return x.toFixed(1);
}

function main(): void {
  const started = performance.now();
  progress("generating an RSA-2048 key...");
  const rsa = rsaKey();
  const list = cases(rsa);
  const providers: Array<[string, CryptoProvider]> = [
    ["noble", nobleProvider],
    ["node", nodeProvider],
  ];
  const total = list.length * providers.length;
  const results: Array<{ case: Case; noble: Measurement; node: Measurement }> = [];
  let done = 0;
  for (const c of list) {
    const m: Record<string, Measurement> = {};
    for (const [name, p] of providers) {
      done++;
      progress(`[${done}/${total}] ${name.padEnd(5)} ${c.name}`);
      m[name] = measure(c.make(p), c.bytes);
    }
    results.push({ case: c, noble: m.noble, node: m.node });
  }

  // What auto chooses: synthetic groups via describe(), sign/verify by using them once.
  progress("measuring auto's choices...");
  const auto = autoProvider();
  const ec = ecKey();
  const ed = edKey();
  for (const [scheme, key] of [
    ["ecdsa_secp256r1_sha256", ec],
    ["ed25519", ed],
    ["rsa_pss_rsae_sha256", rsa],
    ["rsa_pkcs1_sha256", rsa],
  ] as const) {
    const sig = auto.sign(scheme, key.priv, MSG, new SeededRng(1));
    auto.verify(scheme, key.pub, MSG, sig);
  }
  const choices: CryptoChoiceRow[] = describeCryptoChoice();
  const chosen = new Map(choices.map((r) => [r.primitive, r.chosen]));
  progressDone();

  const rows = results.map(({ case: c, noble, node }) => [
    c.name,
    fmtOps(noble.opsPerSec),
    fmtOps(node.opsPerSec),
    noble.mbPerSec === undefined ? "" : noble.mbPerSec.toFixed(1),
    node.mbPerSec === undefined ? "" : node.mbPerSec.toFixed(1),
    `${(node.opsPerSec / noble.opsPerSec).toFixed(1)}x`,
    chosen.get(c.group) ?? "-",
  ]);
  const m = machine();
  console.log(
    `crypto providers, ${quick ? "QUICK (rough) " : ""}run on ${m.cpu} (${m.cores} cores), node ${m.node}\n`,
  );
  const header = ["primitive", "noble ops/s", "node ops/s", "noble MB/s", "node MB/s", "node/noble", "auto"];
  console.log(table(header, rows));
  console.log("\nauto's choices (measured lazily in a few ms per group, on first use):\n");
  const choiceHeader = ["group", "chosen", "noble ops/s", "node ops/s"];
  const choiceRows = choices.map((r) => [
    r.primitive,
    r.chosen ?? "-",
    r.nobleOpsPerSec === null ? "-" : fmtOps(r.nobleOpsPerSec),
    r.nodeOpsPerSec === null ? "-" : fmtOps(r.nodeOpsPerSec),
  ]);
  console.log(table(choiceHeader, choiceRows));

  const name = quick ? "crypto-quick" : "crypto";
  const json = {
    date: new Date().toISOString(),
    quick,
    node: m.node,
    platform: m.platform,
    cpu: m.cpu,
    cores: m.cores,
    packetBytes: PACKET,
    results: results.map(({ case: c, noble, node }) => ({
      primitive: c.name,
      group: c.group,
      noble,
      node,
      ratioNodeOverNoble: node.opsPerSec / noble.opsPerSec,
      autoChose: chosen.get(c.group) ?? null,
    })),
    auto: choices,
  };
  const out = writeResult(`${name}.json`, json);
  const md = [
    `### Crypto providers${quick ? " (quick smoke run, rough numbers)" : ""}`,
    "",
    `\`npm run bench:crypto${quick ? " -- --quick" : ""}\` — noble (pure TypeScript) against node (OpenSSL) for every primitive the QUIC and TLS stacks use per packet or per handshake; ${WARMUP_MS} ms warm-up, then the median of ${SLICES} slices over ${RUN_MS} ms. Raw data: \`bench/results/${name}.json\`.`,
    "",
    mdTable(header, rows),
    "",
    "What `auto` (the default provider) chose, measured lazily in a few ms per group on first use:",
    "",
    mdTable(choiceHeader, choiceRows),
  ].join("\n");
  // Issue 6 sets no target for the crypto primitives; this section is context for the goodput ceiling.
  const mdOut = writeMarkdown(name, md, []);
  console.log(`\nwrote ${out} and ${mdOut} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

main();
