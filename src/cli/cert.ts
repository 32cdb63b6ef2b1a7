/**
 * `mquictt cert`: a test CA and a server certificate signed by it, for development and tests.
 * Clients trust the CA (`--cafile ca.pem`); the server uses server.pem and server-key.pem.
 */
import { isIP } from "node:net";
import { systemRng } from "../crypto/random.js";
import { getCryptoProvider } from "../crypto/select.js";
import { writeCertificateFiles } from "../net/cert-files.js";
import { type CertKeyType, generateTestCA, issueLeaf } from "../tls/certgen.js";

/** Options of `makeCertificates`. */
export interface CertCommandOptions {
  /** Output directory. */
  out: string;
  /** DNS names and IP addresses the server certificate covers (default localhost, 127.0.0.1, ::1). */
  names: string[];
  days: number;
  keyType: CertKeyType;
  force: boolean;
}

/** Writes ca.pem, ca-key.pem, server.pem and server-key.pem into `out`; returns the paths. */
export async function makeCertificates(opts: CertCommandOptions): Promise<string[]> {
  const provider = getCryptoProvider("auto");
  const now = Date.now();
  const names = opts.names.length > 0 ? opts.names : ["localhost", "127.0.0.1", "::1"];
  const dns = names.filter((n) => isIP(n) === 0);
  const ips = names.filter((n) => isIP(n) !== 0);
  const ca = generateTestCA({
    provider,
    rng: systemRng,
    now,
    commonName: "mquictt development CA",
    keyType: opts.keyType,
    validityDays: Math.max(opts.days, 1) * 2,
  });
  const leaf = issueLeaf(ca, {
    provider,
    rng: systemRng,
    now,
    commonName: dns[0] ?? ips[0],
    dns,
    ips,
    keyType: opts.keyType,
    validityDays: opts.days,
  });
  return writeCertificateFiles(
    opts.out,
    [
      { name: "ca", chain: [ca] },
      { name: "server", chain: [leaf] },
    ],
    { overwrite: opts.force },
  );
}

/** Parses `mquictt cert` flags. */
export function parseCertArgs(argv: string[]): CertCommandOptions {
  const opts: CertCommandOptions = {
    out: "certs",
    names: [],
    days: 365,
    keyType: "ecdsa-p256",
    force: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case "--out":
      case "-o":
        opts.out = value();
        break;
      case "--name":
      case "-n":
        opts.names.push(value());
        break;
      case "--days": {
        const d = Number(value());
        if (!Number.isInteger(d) || d < 1) throw new Error("--days must be a positive integer");
        opts.days = d;
        break;
      }
      case "--key-type": {
        const k = value();
        if (k !== "ecdsa-p256" && k !== "ed25519")
          throw new Error("--key-type must be ecdsa-p256 or ed25519");
        opts.keyType = k;
        break;
      }
      case "--force":
        opts.force = true;
        break;
      default:
        throw new Error(`unknown option ${a}`);
    }
  }
  return opts;
}
