/**
 * Child processes for the transport benchmarks: each measured endpoint runs in its own process
 * (bench/lib/peer.ts, or the quinn peer), so sender and receiver each get a core of the
 * 2-core machine and the orchestrating process stays idle while they run.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

const PEER = join(import.meta.dirname, "peer.ts");

/** Node flags for children: the parent's (the tsx loader), minus any --cpu-prof* of its own. */
function childExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--cpu-prof")) {
      if (!argv[i].includes("=") && argv[i] !== "--cpu-prof") i++;
      continue;
    }
    out.push(argv[i]);
  }
  if (!out.some((a) => a.includes("tsx"))) out.unshift("--import", "tsx");
  return out;
}

/** A running child process whose stdout we scan line by line. */
export interface Child {
  proc: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the first stdout line matching `re` (rejects if the child exits first). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves with the exit code. */
  exited(): Promise<number | null>;
  /** SIGTERM (then SIGKILL after 5 s) and wait for exit. */
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /**
   * Write CPU profiles (node peers only) into this directory, one per thread (the tsx loader
   * runs on a worker thread); `mainThreadProfile(dir)` finds the main thread's.
   */
  cpuProfile?: string;
  /** Pin to these CPUs with taskset (Linux), e.g. "1". */
  cpus?: string;
}

function wrap(proc: ChildProcess): Child {
  let out = "";
  let stdoutBuf = "";
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  const exit = new Promise<number | null>((r) => proc.once("exit", (c) => r(c)));
  proc.stdout?.on("data", (d: Buffer) => {
    out += d;
    stdoutBuf += d;
    let i = stdoutBuf.indexOf("\n");
    while (i >= 0) {
      lines.push(stdoutBuf.slice(0, i));
      stdoutBuf = stdoutBuf.slice(i + 1);
      i = stdoutBuf.indexOf("\n");
    }
    for (const w of waiters.splice(0)) w();
  });
  proc.stderr?.on("data", (d: Buffer) => {
    out += d;
  });
  return {
    proc,
    output: () => out,
    waitFor: (re, timeoutMs = 600_000) =>
      new Promise((resolve, reject) => {
        let seen = 0;
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}:\n${out}`)), timeoutMs);
        const check = (): void => {
          for (; seen < lines.length; seen++) {
            const m = re.exec(lines[seen]);
            if (m) {
              clearTimeout(t);
              resolve(m);
              return;
            }
          }
          if (proc.exitCode !== null || proc.signalCode !== null) {
            clearTimeout(t);
            reject(new Error(`process exited (${proc.exitCode ?? proc.signalCode}) before ${re}:\n${out}`));
            return;
          }
          waiters.push(check);
        };
        void exit.then(() => {
          // flush a final partial line, then re-check
          if (stdoutBuf) {
            lines.push(stdoutBuf);
            stdoutBuf = "";
          }
          for (const w of waiters.splice(0)) w();
        });
        check();
      }),
    exited: () => exit,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exit;
      clearTimeout(t);
    },
  };
}

function withTaskset(cmd: string, args: string[], cpus: string | undefined): [string, string[]] {
  return cpus === undefined ? [cmd, args] : ["taskset", ["-c", cpus, cmd, ...args]];
}

/** Runs `bench/lib/peer.ts <role> ...args` under node + tsx. */
export function spawnPeer(role: string, args: string[], opts: SpawnOptions = {}): Child {
  const prof = opts.cpuProfile ? ["--cpu-prof", `--cpu-prof-dir=${opts.cpuProfile}`] : [];
  const [cmd, argv] = withTaskset(
    process.execPath,
    [...childExecArgv(), ...prof, PEER, role, ...args],
    opts.cpus,
  );
  return wrap(spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] }));
}

/** Runs any program (the quinn peer). */
export function spawnProgram(bin: string, args: string[], opts: SpawnOptions = {}): Child {
  const [cmd, argv] = withTaskset(bin, args, opts.cpus);
  return wrap(spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] }));
}

/** A child's `RESULT {json}` line, parsed. */
export async function resultOf<T>(c: Child, timeoutMs?: number): Promise<T> {
  const m = await c.waitFor(/^RESULT (.*)$/, timeoutMs);
  return JSON.parse(m[1]) as T;
}

const CLK_TCK = 100;

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); undefined elsewhere. */
export function cpuSecondsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** True when `taskset` can pin processes (Linux with util-linux) and there are 2+ CPUs. */
export function canPin(cores: number): boolean {
  if (cores < 2 || process.platform !== "linux") return false;
  return spawnSync("taskset", ["-c", "0", "true"]).status === 0;
}

/**
 * The main thread's profile among those node wrote into `dir` (default names are
 * CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread's id is 0), else the
 * largest one.
 */
export function mainThreadProfile(dir: string): string {
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir}`);
  const main = files.find((f) => f.split(".")[4] === "0");
  if (main) return join(dir, main);
  return join(dir, files.sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0]);
}

/**
 * The kernel's UDP receive-buffer and send-buffer drop counters (RcvbufErrors + SndbufErrors
 * of /proc/net/snmp; Linux, system-wide); undefined elsewhere.
 */
export function udpBufferDrops(): number | undefined {
  try {
    const lines = readFileSync("/proc/net/snmp", "utf8")
      .split("\n")
      .filter((l) => l.startsWith("Udp:"));
    const names = lines[0].split(/\s+/);
    const values = lines[1].split(/\s+/).map(Number);
    return values[names.indexOf("RcvbufErrors")] + values[names.indexOf("SndbufErrors")];
  } catch {
    return undefined;
  }
}
