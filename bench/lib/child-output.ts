/**
 * Helpers for benchmarks that orchestrate child processes: wait for a line of a child's output,
 * find a program on PATH, and the node flags that run TypeScript children through tsx.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";

/** Collects a child's output; `waitFor` resolves the `nth` stdout/stderr line matching `re`. */
export function watchOutput(proc: ChildProcess): {
  waitFor: (re: RegExp, timeoutMs: number, nth?: number) => Promise<RegExpExecArray>;
  output: () => string;
} {
  let out = "";
  let exited = false;
  const listeners = new Set<() => void>();
  const poke = (): void => {
    for (const l of [...listeners]) l();
  };
  proc.stdout?.on("data", (d: Buffer) => {
    out += d;
    poke();
  });
  proc.stderr?.on("data", (d: Buffer) => {
    out += d;
    poke();
  });
  proc.once("exit", () => {
    exited = true;
    poke();
  });
  return {
    output: () => out,
    waitFor: (re, timeoutMs, nth = 1) =>
      new Promise((resolvePromise, reject) => {
        const check = (): void => {
          let seen = 0;
          for (const line of out.split("\n")) {
            const m = re.exec(line);
            if (m && ++seen === nth) {
              finish();
              resolvePromise(m);
              return;
            }
          }
          if (exited) {
            finish();
            reject(new Error(`process exited before ${re}:\n${out}`));
          }
        };
        const t = setTimeout(() => {
          finish();
          reject(new Error(`timed out waiting for ${re}:\n${out}`));
        }, timeoutMs);
        const finish = (): void => {
          clearTimeout(t);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      }),
  };
}

/** The path of `cmd` on PATH (or in the sbin directories), or undefined. */
export function findOnPath(cmd: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin"]) {
    const p = join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

/** Node flags that run a TypeScript child the way this process runs (through tsx). */
export function tsxExecArgs(): string[] {
  return process.execArgv.some((a) => a.includes("tsx")) ? [...process.execArgv] : ["--import", "tsx"];
}
