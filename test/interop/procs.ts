/** Child processes for interop tests: output collected, waited for with a timeout, killed together. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodeProvider } from "../../src/crypto/node.js";
import { SeededRng } from "../../src/crypto/random.js";
import { generateTestCA, issueLeaf } from "../../src/tls/certgen.js";

/** A spawned process with its output (stdout and stderr interleaved). */
export interface Proc {
  child: ChildProcess;
  out: () => string;
  /** Resolves with the exit code once stdout/stderr are drained (-1 if it could not start). */
  exited: Promise<number | null>;
}

/** Spawned processes of one test file, for `killAll`. */
export class ProcGroup {
  private readonly procs: Proc[] = [];

  /** Spawns `bin args` with piped output; `env` is added to the current environment. */
  run(bin: string, args: string[], env: Record<string, string> = {}): Proc {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let out = "";
    const collect = (d: Buffer) => {
      out += d.toString();
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    const exited = new Promise<number | null>((resolve) => {
      child.on("close", (code) => resolve(code)); // after stdout/stderr are drained
      child.on("error", (e) => {
        out += `spawn error: ${e.message}\n`;
        resolve(-1);
      });
    });
    const p = { child, out: () => out, exited };
    this.procs.push(p);
    return p;
  }

  /** SIGKILLs every process still running and waits for them. */
  async killAll(): Promise<void> {
    await Promise.all(
      this.procs.splice(0).map(async (p) => {
        if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
        await p.exited;
      }),
    );
  }
}

/** Waits for a process to exit; on timeout, fails with its output. */
export async function exitOf(p: Proc, ms = 5000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`process did not exit; output:\n${p.out()}`)), ms);
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A test CA and a "localhost" server certificate, as PEM text and as files in a fresh directory. */
export interface InteropPki {
  dir: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  caText: string;
  certText: string;
  keyText: string;
}

/** Makes the PKI an interop suite's broker and peers use (`name` names the CA and the directory). */
export function interopPki(name: string, seed: number): InteropPki {
  const dir = mkdtempSync(join(tmpdir(), `mquictt-${name}-`));
  const rng = new SeededRng(seed);
  const now = Date.now();
  const ca = generateTestCA({ provider: nodeProvider, rng, now, commonName: `${name} interop CA` });
  const leaf = issueLeaf(ca, {
    provider: nodeProvider,
    rng,
    now,
    commonName: "localhost",
    dns: ["localhost"],
    ips: ["127.0.0.1"],
  });
  const pki = {
    dir,
    caPem: join(dir, "ca.pem"),
    certPem: join(dir, "cert.pem"),
    keyPem: join(dir, "key.pem"),
    caText: ca.pem,
    certText: leaf.pem,
    keyText: leaf.keyPem,
  };
  writeFileSync(pki.caPem, ca.pem);
  writeFileSync(pki.certPem, leaf.pem);
  writeFileSync(pki.keyPem, leaf.keyPem);
  return pki;
}
