/**
 * A packet-level emulated network link for benchmarks: two network namespaces (A: the client
 * side, B: the server side) joined by bench/netem/forwarder.c, which holds one TUN device in
 * each and applies delay, jitter, random and burst loss, reordering and a rate limit to every
 * IP packet in each direction. TCP and QUIC see the same impaired packets, and each keeps its
 * own congestion control and retransmission behaviour (no proxy terminates anything).
 *
 *   const link = await EmulatedLink.create({ delayMs: 25, loss: 0.02, rateMbit: 20 });
 *   const server = link.spawnInB(process.execPath, ["server.js", "--host", link.bAddr]);
 *   const client = link.spawnInA(process.execPath, ["client.js", "--connect", link.bAddr]);
 *   await link.update({ delayMs: 5 });          // the whole configuration, replaced
 *   await link.close();
 *
 * Where namespaces cannot be made (not Linux, not root, no `ip`, no /dev/net/tun, no C
 * compiler, or `MQUICTT_NETEM=off`), create() resolves to a loopback link instead:
 * `emulated: false`, a `reason`, both addresses 127.0.0.1, no impairment, and a printed line
 * saying so. Pass `required: true` to get an exception instead.
 *
 * Cleanup: close() kills what was spawned through the link, then the forwarder deletes the
 * namespaces. If this process dies without close() (even by SIGKILL), the forwarder sees its
 * stdin close and does the same teardown itself; namespaces left by an older crash are
 * removed by the next create(). Traffic never leaves the two namespaces: the addresses
 * (10.77.0.1 in A, 10.77.0.2 in B) exist only there, and nothing in the host's own network
 * namespace is configured.
 */
import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";

/** Impairments for one direction. Every field is optional; absent means "none". */
export interface Impairment {
  /** One-way delay in milliseconds. */
  delayMs?: number;
  /** Uniform jitter: each packet's delay is delayMs ± jitterMs. Never reorders by itself. */
  jitterMs?: number;
  /** Probability of losing a packet at random (0..1). */
  loss?: number;
  /** Gilbert-Elliott burst loss: p = P(good→bad), r = P(bad→good), per packet.
   *  Losses happen with probability lossInBad (default 1) in the bad state and lossInGood
   *  (default 0) in the good one: loss rate p/(p+r), mean burst length 1/r. */
  burst?: { p: number; r: number; lossInBad?: number; lossInGood?: number };
  /** Probability that a packet is held back reorderExtraMs so that later ones overtake it. */
  reorder?: number;
  /** How long a reordered packet is held back (default 5 ms). */
  reorderExtraMs?: number;
  /** Rate limit in Mbit/s of IP packets (0 or absent: unlimited). */
  rateMbit?: number;
  /** Bottleneck queue bound in packets, tail drop beyond it (default 1000). */
  queuePackets?: number;
  /** Token bucket depth in bytes (default 1514: one full packet, i.e. no bursts). */
  burstBytes?: number;
  /** Let jitter reorder packets (like Linux netem does); default false. */
  jitterReorders?: boolean;
}

/** Link configuration: impairments applied to both directions, optionally overridden per direction. */
export interface LinkParams extends Impairment {
  /** Overrides for packets from A to B (client → server). */
  aToB?: Impairment;
  /** Overrides for packets from B to A (server → client). */
  bToA?: Impairment;
  /** Seed for the forwarder's random choices, for repeatable runs. */
  seed?: number;
}

export interface LinkOptions extends LinkParams {
  /** Namespace name prefix: namespaces `${name}-a` and `${name}-b` (default "mq"). */
  name?: string;
  /** MTU of the emulated link (default 1500). */
  mtu?: number;
  /** TCP congestion control inside both namespaces (default "cubic", the usual Linux default;
   *  new namespaces otherwise inherit the kernel's, which is bbr on some machines). "default"
   *  leaves the kernel's choice. */
  tcpCongestionControl?: string;
  /** Run the forwarder in the real-time scheduling class, as kernel netem effectively is
   *  (default true; falls back to nice -10, then to normal priority). */
  realtime?: boolean;
  /** Throw instead of falling back to loopback. */
  required?: boolean;
  /** Don't print the fallback line. */
  quiet?: boolean;
}

/** Forwarder counters for one direction. */
export interface DirectionStats {
  rx: number;
  rxBytes: number;
  lostRandom: number;
  lostBurst: number;
  queueDrops: number;
  reordered: number;
  delivered: number;
  deliveredBytes: number;
  writeErrors: number;
  maxQueue: number;
  inFlight: number;
  allocErrors: number;
  /** Packets the forwarder delivered more than 1 ms after their computed time. */
  late1ms: number;
  /** The latest delivery relative to its computed time, in microseconds. */
  lateMaxUs: number;
}

export interface LinkStats {
  aToB: DirectionStats;
  bToA: DirectionStats;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface LinkCommon {
  /** Address of side A (the client side) as seen from B. */
  readonly aAddr: string;
  /** Address of side B (the server side) as seen from A. */
  readonly bAddr: string;
  /** Spawns a process in namespace A; it is killed by close() if still running. */
  spawnInA(cmd: string, args?: readonly string[], options?: SpawnOptions): ChildProcess;
  spawnInB(cmd: string, args?: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Runs a command in namespace A to completion and collects its output. */
  runInA(cmd: string, args?: readonly string[], options?: SpawnOptions): Promise<RunResult>;
  runInB(cmd: string, args?: readonly string[], options?: SpawnOptions): Promise<RunResult>;
  /** Replaces the whole impairment configuration (fields left out mean "none"). */
  update(params: LinkParams): Promise<void>;
  /** Forwarder counters since create() or the last resetStats(); undefined on loopback. */
  stats(): Promise<LinkStats | undefined>;
  resetStats(): Promise<void>;
  /** One line describing the link, for benchmark output. */
  describe(): string;
  /** Kills the processes spawned through the link and removes the namespaces. Idempotent. */
  close(): Promise<void>;
}

export interface EmulatedNetLink extends LinkCommon {
  readonly emulated: true;
  readonly nsA: string;
  readonly nsB: string;
  /** TCP congestion control in effect inside the namespaces. */
  readonly tcpCongestionControl: string;
  readonly params: LinkParams;
}

export interface LoopbackNetLink extends LinkCommon {
  readonly emulated: false;
  /** Why the link is not emulated. */
  readonly reason: string;
}

export type NetLink = EmulatedNetLink | LoopbackNetLink;

const HERE = import.meta.dirname;
const DEV = "mqtun";
export const A_ADDR = "10.77.0.1";
export const B_ADDR = "10.77.0.2";

/** Directory of the built C programs. */
export function buildDir(): string {
  return (
    process.env.MQUICTT_NETEM_BUILD_DIR ?? join(HERE, "..", "..", "node_modules", ".cache", "mquictt-netem")
  );
}

/** Builds forwarder and blaster if missing or older than their sources; returns the directory. */
export function ensureBuilt(): string {
  const dir = buildDir();
  const script = join(HERE, "build.sh");
  const stale = ["forwarder", "blast"].some((prog) => {
    const bin = join(dir, `netem-${prog}`);
    if (!existsSync(bin)) return true;
    const built = statSync(bin).mtimeMs;
    return statSync(join(HERE, `${prog}.c`)).mtimeMs > built || statSync(script).mtimeMs > built;
  });
  if (stale) {
    const r = spawnSync("sh", [script, dir], { encoding: "utf8" });
    if (r.status !== 0) {
      throw new Error(`building the forwarder failed: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
    }
  }
  return dir;
}

function ip(args: readonly string[]): { ok: boolean; out: string } {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  return {
    ok: r.status === 0,
    out: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? String(r.error) : ""}`.trim(),
  };
}

function ipOrThrow(args: readonly string[]): string {
  const r = ip(args);
  if (!r.ok) throw new Error(`ip ${args.join(" ")}: ${r.out}`);
  return r.out;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Another live run holds the namespaces of this name: an error of the caller, not of the machine. */
export class LinkInUseError extends Error {}

function lockPath(name: string): string {
  return `/run/mquictt-netem-${name}.pid`;
}

/** Removes namespaces (and what runs in them) left behind by an earlier run that crashed. */
function removeStale(name: string, namespaces: readonly string[]): void {
  const lock = lockPath(name);
  if (existsSync(lock)) {
    const pid = Number.parseInt(readFileSync(lock, "utf8"), 10);
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {}
    if (pid > 0 && pidAlive(pid) && cmdline.includes("netem-forwarder")) {
      throw new LinkInUseError(
        `link "${name}" is in use by forwarder pid ${pid}; pick another name (LinkOptions.name) or stop that run`,
      );
    }
    rmSync(lock, { force: true });
  }
  const existing = new Set(
    ip(["netns", "list"])
      .out.split("\n")
      .map((l) => l.split(" ")[0]),
  );
  for (const ns of namespaces) {
    if (!existing.has(ns)) continue;
    // Processes in our own namespaces were started by an earlier run of this tool.
    for (const line of ip(["netns", "pids", ns]).out.split("\n")) {
      const pid = Number.parseInt(line, 10);
      if (pid > 1 && pid !== process.pid) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    }
    ipOrThrow(["netns", "del", ns]);
  }
}

/** The forwarder's command line for one direction's parameters. */
function directionArgs(base: LinkParams, over: Impairment | undefined): string {
  const p: Impairment = { ...stripDirections(base), ...over };
  const num = (v: number | undefined, name: string, min: number, max: number): number => {
    const x = v ?? 0;
    if (!Number.isFinite(x) || x < min || x > max)
      throw new RangeError(`${name} must be in [${min}, ${max}], got ${v}`);
    return x;
  };
  const kv: [string, number][] = [
    ["delay_ms", num(p.delayMs, "delayMs", 0, 60_000)],
    ["jitter_ms", num(p.jitterMs, "jitterMs", 0, 60_000)],
    ["loss", num(p.loss, "loss", 0, 1)],
    ["reorder", num(p.reorder, "reorder", 0, 1)],
    ["reorder_extra_ms", num(p.reorderExtraMs ?? 5, "reorderExtraMs", 0, 60_000)],
    ["ge_p", num(p.burst?.p, "burst.p", 0, 1)],
    ["ge_r", num(p.burst?.r, "burst.r", 0, 1)],
    ["ge_loss_bad", num(p.burst?.lossInBad ?? 1, "burst.lossInBad", 0, 1)],
    ["ge_loss_good", num(p.burst?.lossInGood ?? 0, "burst.lossInGood", 0, 1)],
    ["rate_mbit", num(p.rateMbit, "rateMbit", 0, 1_000_000)],
    ["burst_bytes", num(p.burstBytes ?? 1514, "burstBytes", 1, 1e9)],
    ["queue_packets", num(p.queuePackets ?? 1000, "queuePackets", 1, 10_000_000)],
    ["jitter_reorders", p.jitterReorders ? 1 : 0],
  ];
  if (p.burst && p.burst.p > 0 && p.burst.r <= 0)
    throw new RangeError("burst.r must be > 0 when burst.p > 0");
  return kv.map(([k, v]) => `${k}=${v}`).join(" ");
}

function stripDirections(p: LinkParams): Impairment {
  const { aToB: _a, bToA: _b, seed: _s, ...rest } = p;
  return rest;
}

function describeImpairment(p: Impairment): string {
  const parts: string[] = [];
  if (p.delayMs) parts.push(`delay ${p.delayMs} ms${p.jitterMs ? ` ±${p.jitterMs}` : ""}`);
  else if (p.jitterMs) parts.push(`jitter ±${p.jitterMs} ms`);
  if (p.loss) parts.push(`loss ${+(p.loss * 100).toFixed(3)}%`);
  if (p.burst?.p) {
    const rate = p.burst.p / (p.burst.p + p.burst.r);
    parts.push(
      `burst loss p=${p.burst.p} r=${p.burst.r} (≈${+(rate * 100).toFixed(2)}%, bursts of ${+(1 / p.burst.r).toFixed(1)})`,
    );
  }
  if (p.reorder) parts.push(`reorder ${+(p.reorder * 100).toFixed(3)}% (+${p.reorderExtraMs ?? 5} ms)`);
  if (p.rateMbit) parts.push(`rate ${p.rateMbit} Mbit/s, queue ${p.queuePackets ?? 1000} pkts`);
  return parts.length > 0 ? parts.join(", ") : "no impairment";
}

/** Describes a configuration in one line ("a→b: …; b→a: …" when the directions differ). */
export function describeParams(p: LinkParams): string {
  const base = stripDirections(p);
  const ab = describeImpairment({ ...base, ...p.aToB });
  const ba = describeImpairment({ ...base, ...p.bToA });
  return ab === ba ? ab : `a→b: ${ab}; b→a: ${ba}`;
}

class ChildSet {
  readonly children = new Set<ChildProcess>();
  track(child: ChildProcess): ChildProcess {
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    return child;
  }
  killAllSync(): void {
    for (const c of this.children) {
      if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    }
  }
  async killAll(graceMs = 2000): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const c of this.children) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      waits.push(
        new Promise<void>((resolve) => {
          const t = setTimeout(() => c.kill("SIGKILL"), graceMs);
          c.once("exit", () => {
            clearTimeout(t);
            resolve();
          });
          c.kill("SIGTERM");
        }),
      );
    }
    await Promise.all(waits);
  }
}

function collect(child: ChildProcess): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function refStream(s: unknown, ref: boolean): void {
  if (s instanceof Socket) {
    if (ref) s.ref();
    else s.unref();
  }
}

class EmulatedLinkImpl implements EmulatedNetLink {
  readonly emulated = true as const;
  readonly aAddr = A_ADDR;
  readonly bAddr = B_ADDR;
  params: LinkParams = {};
  private readonly kids = new ChildSet();
  private readonly pending: { resolve: (line: string) => void; reject: (e: Error) => void }[] = [];
  private buffered = "";
  private closed = false;
  private exited = false;
  private readonly onExit = () => {
    // Synchronous last resort when the process exits without close(): the forwarder sees its
    // stdin close and removes the namespaces itself.
    this.kids.killAllSync();
    if (!this.exited) this.fwd.kill("SIGTERM");
    rmSync(this.lock, { force: true });
  };

  constructor(
    readonly nsA: string,
    readonly nsB: string,
    readonly tcpCongestionControl: string,
    private readonly fwd: ChildProcess,
    private readonly lock: string,
  ) {
    fwd.stdout?.setEncoding("utf8").on("data", (d: string) => this.onData(d));
    fwd.once("exit", () => {
      this.exited = true;
      for (const p of this.pending.splice(0)) p.reject(new Error("netem forwarder exited"));
    });
    process.once("exit", this.onExit);
  }

  private onData(d: string): void {
    this.buffered += d;
    for (let nl = this.buffered.indexOf("\n"); nl >= 0; nl = this.buffered.indexOf("\n")) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      const p = this.pending.shift();
      if (p) p.resolve(line);
      if (this.pending.length === 0) this.setRef(false);
    }
  }

  /** The forwarder must not keep the event loop alive, except while we wait for its answer. */
  setRef(ref: boolean): void {
    refStream(this.fwd.stdout, ref);
    refStream(this.fwd.stdin, ref);
    refStream(this.fwd.stderr, ref);
    if (ref) this.fwd.ref();
    else this.fwd.unref();
  }

  command(line: string): Promise<string> {
    if (this.exited || this.closed) return Promise.reject(new Error("netem link is closed"));
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.setRef(true);
      this.fwd.stdin?.write(`${line}\n`);
    });
  }

  private async commandOk(line: string): Promise<void> {
    const r = await this.command(line);
    if (r !== "ok") throw new Error(`netem forwarder rejected "${line}": ${r}`);
  }

  async update(params: LinkParams): Promise<void> {
    const ab = directionArgs(params, params.aToB);
    const ba = directionArgs(params, params.bToA);
    const seed = params.seed !== undefined ? ` seed=${Math.floor(params.seed)}` : "";
    await this.commandOk(`set a2b ${ab}${seed}`);
    await this.commandOk(`set b2a ${ba}${seed}`);
    this.params = structuredClone(params);
  }

  async stats(): Promise<LinkStats> {
    const raw = JSON.parse(await this.command("stats")) as { a2b: DirectionStats; b2a: DirectionStats };
    return { aToB: raw.a2b, bToA: raw.b2a };
  }

  async resetStats(): Promise<void> {
    await this.commandOk("reset-stats");
  }

  describe(): string {
    return `emulated link ${this.nsA} (${this.aAddr}) ⇄ ${this.nsB} (${this.bAddr}), TCP ${this.tcpCongestionControl}: ${describeParams(this.params)}`;
  }

  private spawnIn(ns: string, cmd: string, args: readonly string[], options: SpawnOptions): ChildProcess {
    if (this.closed) throw new Error("netem link is closed");
    return this.kids.track(spawn("ip", ["netns", "exec", ns, cmd, ...args], options));
  }

  spawnInA(cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess {
    return this.spawnIn(this.nsA, cmd, args, options);
  }
  spawnInB(cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess {
    return this.spawnIn(this.nsB, cmd, args, options);
  }
  runInA(cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): Promise<RunResult> {
    return collect(this.spawnInA(cmd, args, options));
  }
  runInB(cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): Promise<RunResult> {
    return collect(this.spawnInB(cmd, args, options));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    process.removeListener("exit", this.onExit);
    await this.kids.killAll();
    if (!this.exited) {
      const gone = new Promise<void>((resolve) => this.fwd.once("exit", () => resolve()));
      this.setRef(true);
      this.fwd.stdin?.end("quit\n");
      const t = setTimeout(() => this.fwd.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(t);
    }
    // The forwarder deletes the namespaces on its way out; make sure (e.g. after SIGKILL).
    for (const ns of [this.nsA, this.nsB]) {
      if (existsSync(`/run/netns/${ns}`)) ip(["netns", "del", ns]);
    }
    rmSync(this.lock, { force: true });
  }
}

class LoopbackLinkImpl implements LoopbackNetLink {
  readonly emulated = false as const;
  readonly aAddr = "127.0.0.1";
  readonly bAddr = "127.0.0.1";
  private readonly kids = new ChildSet();
  private readonly onExit = () => this.kids.killAllSync();
  constructor(readonly reason: string) {
    process.once("exit", this.onExit);
  }
  spawnInA(cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess {
    return this.kids.track(spawn(cmd, args, options));
  }
  spawnInB(cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess {
    return this.kids.track(spawn(cmd, args, options));
  }
  runInA(cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): Promise<RunResult> {
    return collect(this.spawnInA(cmd, args, options));
  }
  runInB(cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): Promise<RunResult> {
    return collect(this.spawnInB(cmd, args, options));
  }
  async update(_params: LinkParams): Promise<void> {}
  async stats(): Promise<undefined> {
    return undefined;
  }
  async resetStats(): Promise<void> {}
  describe(): string {
    return `loopback 127.0.0.1 without impairment (not emulated: ${this.reason})`;
  }
  async close(): Promise<void> {
    process.removeListener("exit", this.onExit);
    await this.kids.killAll();
  }
}

/** Why an emulated link cannot be made here, or undefined if it can (checked cheaply). */
export function emulationUnavailable(): string | undefined {
  if (process.env.MQUICTT_NETEM === "off") return "disabled by MQUICTT_NETEM=off";
  if (process.platform !== "linux") return `network namespaces need Linux (this is ${process.platform})`;
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "not running as root";
  if (!existsSync("/dev/net/tun")) return "no /dev/net/tun";
  const r = spawnSync("ip", ["-V"], { encoding: "utf8" });
  if (r.status !== 0) return "the `ip` command (iproute2) is not installed";
  return undefined;
}

function waitForLine(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const onOut = (d: Buffer) => {
      out += d.toString("utf8");
      const nl = out.indexOf("\n");
      if (nl >= 0) finish(() => resolve(out.slice(0, nl)));
    };
    const onErr = (d: Buffer) => {
      err += d.toString("utf8");
    };
    const onExit = (code: number | null) =>
      finish(() => reject(new Error(`forwarder exited (${code}): ${err.trim() || out.trim()}`)));
    const t = setTimeout(
      () => finish(() => reject(new Error("forwarder did not start within 5 s"))),
      timeoutMs,
    );
    const finish = (f: () => void) => {
      clearTimeout(t);
      child.stdout?.off("data", onOut);
      child.stderr?.off("data", onErr);
      child.off("exit", onExit);
      f();
    };
    child.stdout?.on("data", onOut);
    child.stderr?.on("data", onErr);
    child.once("exit", onExit);
  });
}

async function createEmulated(opts: LinkOptions): Promise<EmulatedLinkImpl> {
  const name = opts.name ?? "mq";
  if (!/^[A-Za-z0-9_-]{1,12}$/.test(name)) throw new RangeError(`bad link name "${name}"`);
  const nsA = `${name}-a`;
  const nsB = `${name}-b`;
  const bin = join(ensureBuilt(), "netem-forwarder");
  const cc = opts.tcpCongestionControl ?? "cubic";
  if (!/^[a-z0-9_]+$/.test(cc)) throw new RangeError(`bad tcpCongestionControl "${cc}"`);
  removeStale(name, [nsA, nsB]);
  let fwd: ChildProcess | undefined;
  try {
    for (const ns of [nsA, nsB]) {
      ipOrThrow(["netns", "add", ns]);
      ipOrThrow(["-n", ns, "link", "set", "lo", "up"]);
    }
    const fwdArgs = ["--ns-a", nsA, "--ns-b", nsB, "--dev", DEV, "--own-ns"];
    if (opts.realtime !== false) fwdArgs.push("--rt");
    fwd = spawn(bin, fwdArgs, {
      stdio: ["pipe", "pipe", "pipe"],
    });
    const first = await waitForLine(fwd, 5000);
    if (first !== "ready") throw new Error(`forwarder said "${first}" instead of ready`);
    fwd.stderr?.on("data", (d: Buffer) => process.stderr.write(d));
    const mtu = String(opts.mtu ?? 1500);
    for (const [ns, local, peer] of [
      [nsA, A_ADDR, B_ADDR],
      [nsB, B_ADDR, A_ADDR],
    ] as const) {
      // IPv4 only: no IPv6 link-local address, so no router solicitations or DAD on the link
      ipOrThrow(["-n", ns, "link", "set", DEV, "addrgenmode", "none", "mtu", mtu, "txqueuelen", "1000"]);
      ipOrThrow(["-n", ns, "addr", "add", local, "peer", peer, "dev", DEV]);
      ipOrThrow(["-n", ns, "link", "set", DEV, "up"]);
      if (cc !== "default") {
        // Per route, because a namespace other than the host's may only pick its default
        // congestion control from the host's tcp_allowed_congestion_control list.
        const route = [peer, "dev", DEV, "proto", "kernel", "scope", "link", "src", local];
        const r = ip(["-n", ns, "route", "replace", ...route, "congctl", cc]);
        if (!r.ok) throw new RangeError(`TCP congestion control "${cc}" is not available here: ${r.out}`);
      }
    }
    const ccInEffect =
      cc === "default"
        ? ipOrThrow(["netns", "exec", nsA, "cat", "/proc/sys/net/ipv4/tcp_congestion_control"])
        : cc;
    const lock = lockPath(name);
    writeFileSync(lock, `${fwd.pid}\n`);
    const link = new EmulatedLinkImpl(nsA, nsB, ccInEffect, fwd, lock);
    link.setRef(false);
    await link.update(opts);
    return link;
  } catch (e) {
    fwd?.kill("SIGTERM");
    for (const ns of [nsA, nsB]) if (existsSync(`/run/netns/${ns}`)) ip(["netns", "del", ns]);
    throw e;
  }
}

export const EmulatedLink = {
  /**
   * Creates the two namespaces and the forwarder with the given impairments, or, where that
   * is impossible, a loopback link that says why (`emulated: false`, printed unless quiet).
   */
  async create(opts: LinkOptions = {}): Promise<NetLink> {
    let reason = emulationUnavailable();
    if (reason === undefined) {
      try {
        return await createEmulated(opts);
      } catch (e) {
        if (e instanceof RangeError || e instanceof LinkInUseError) throw e;
        reason = e instanceof Error ? e.message : String(e);
      }
    }
    if (opts.required) throw new Error(`netem: emulated link unavailable: ${reason}`);
    if (!opts.quiet) {
      console.log(
        `netem: emulated link unavailable (${reason}); falling back to loopback without impairment`,
      );
    }
    return new LoopbackLinkImpl(reason);
  },
};
