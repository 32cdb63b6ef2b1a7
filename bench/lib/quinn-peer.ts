/**
 * Runs the quinn interop peer (interop/quinn-peer, Rust) for the interop tests and the transport
 * benchmarks. The binary is built with cargo when missing; a peer that cannot be built is a
 * test failure, never a skip.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");
const MANIFEST = join(ROOT, "interop/quinn-peer/Cargo.toml");

/** Path of the quinn-peer binary, building it first if needed. */
export function quinnPeerBinary(): string {
  const targetDir = process.env.CARGO_TARGET_DIR ?? join(ROOT, "interop/quinn-peer/target");
  const bin = join(targetDir, "release/quinn-peer");
  if (existsSync(bin)) return bin;
  try {
    execFileSync("cargo", ["build", "--release", "--quiet", "--manifest-path", MANIFEST], {
      stdio: "inherit",
      timeout: 15 * 60_000,
    });
  } catch (e) {
    throw new Error(
      `the quinn interop peer is missing and could not be built (cargo build --release --manifest-path ${MANIFEST}): ${(e as Error).message}`,
    );
  }
  if (!existsSync(bin)) throw new Error(`cargo built no binary at ${bin}`);
  return bin;
}

export interface QuinnServer {
  port: number;
  proc: ChildProcess;
  output(): string;
  /** Resolves with the exit code once the process has exited (e.g. after `--exit-after N`) and its output is read. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Starts `quinn-peer server` on a free loopback port and waits for "listening on". */
export async function startQuinnServer(args: string[]): Promise<QuinnServer> {
  const bin = quinnPeerBinary();
  const proc = spawn(bin, ["server", "--listen", "127.0.0.1:0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stderr?.on("data", (d) => {
    out += d;
  });
  // "close": after the exit and once stdout/stderr are drained, so output() is complete.
  const exited = new Promise<number | null>((r) => proc.once("close", (code) => r(code)));
  const port = await new Promise<number>((resolvePort, reject) => {
    const t = setTimeout(() => reject(new Error(`quinn-peer server did not start: ${out}`)), 10_000);
    proc.stdout?.on("data", (d) => {
      out += d;
      const m = /listening on .*:(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolvePort(Number(m[1]));
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`quinn-peer server exited with ${code}: ${out}`));
    });
  });
  return {
    port,
    proc,
    output: () => out,
    exited,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
    },
  };
}

/** Runs `quinn-peer client ...` to completion. */
export async function runQuinnClient(
  args: string[],
  timeoutMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const bin = quinnPeerBinary();
  const proc = spawn(bin, ["client", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  proc.stdout?.on("data", (d) => {
    stdout += d;
  });
  proc.stderr?.on("data", (d) => {
    stderr += d;
  });
  const t = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((r) => proc.once("exit", (c) => r(c)));
  clearTimeout(t);
  return { code, stdout, stderr };
}
