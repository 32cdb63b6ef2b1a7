/**
 * `mquictt bench [<name> [args...]]`: the benchmarks of a source checkout (bench/, run with tsx),
 * and the one registry of them that bench/run.ts (`npm run bench`) also reads.
 *
 * The benchmarks are not part of the npm package (`files` ships dist/ and bin/ only), so from an
 * installed package this command says so and points at a clone instead of failing obscurely.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { constants } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** Something a benchmark needs beyond `npm install`. */
export type BenchNeed =
  /** The quinn interop peer (Rust, interop/quinn-peer), built with cargo when missing. */
  | "quinn"
  /** The Debian `mosquitto` broker on PATH. */
  | "mosquitto"
  /** Root, to create the network namespaces of the emulated link (else: loopback, said so). */
  | "netns";

/** One benchmark of bench/. */
export interface BenchmarkInfo {
  /** The name for `mquictt bench <name>` and `npm run bench -- --only <name>`, and of its
   * bench/results/<name>.md section. */
  readonly name: string;
  /** The script, relative to the checkout. */
  readonly script: string;
  /** Its npm script (`npm run <npmScript>`). */
  readonly npmScript: string;
  /** One line on what it measures. */
  readonly summary: string;
  readonly needs: readonly BenchNeed[];
  /** The issue 6 targets it holds results against (for the summary when it has not run). */
  readonly targets: readonly string[];
}

/** The benchmarks, in the order `npm run bench` runs them and bench/RESULTS.md shows them. */
export const BENCHMARKS: readonly BenchmarkInfo[] = [
  {
    name: "crypto",
    script: "bench/crypto.ts",
    npmScript: "bench:crypto",
    summary: "crypto primitives per packet and per handshake, noble vs node:crypto, and auto's choice",
    needs: [],
    targets: [],
  },
  {
    name: "goodput",
    script: "bench/quic-goodput.ts",
    npmScript: "bench:goodput",
    summary: "bulk QUIC stream goodput vs raw node:dgram, dgram + AEAD, and quinn",
    needs: ["quinn"],
    targets: ["Bulk goodput ≥ 0.7x the node:dgram + AEAD ceiling measured in the same run"],
  },
  {
    name: "handshakes",
    script: "bench/quic-handshakes.ts",
    npmScript: "bench:handshakes",
    summary: "QUIC handshakes per second on one core, handshake and first-byte latency, vs quinn",
    needs: ["quinn"],
    targets: [],
  },
  {
    name: "hol",
    script: "bench/hol.ts",
    npmScript: "bench:hol",
    summary: "MQTT head-of-line blocking: delivery latency per-topic vs single-stream QUIC vs TCP under loss",
    needs: ["mosquitto", "netns"],
    targets: ["p99 per-topic ≤ 1/3 of MQTT over TCP and below single-stream QUIC at 2 % loss, 50 ms RTT"],
  },
  {
    name: "throughput",
    script: "bench/throughput.ts",
    npmScript: "bench:throughput",
    summary: "publish → deliver messages/s through the broker, QUIC vs aedes and mosquitto over TCP",
    needs: ["mosquitto"],
    targets: ["Broker QoS 0 throughput over QUIC ≥ aedes over TCP in the same run"],
  },
  {
    name: "setup",
    script: "bench/connect-setup.ts",
    npmScript: "bench:setup",
    summary: "time from connect() to first PUBLISH delivered at RTT 10/50/200 ms, QUIC vs TCP+TLS",
    needs: ["netns"],
    targets: ["Time to first PUBLISH: one RTT fewer than TCP+TLS 1.3 at every RTT"],
  },
  {
    name: "scale",
    script: "bench/idle-scale.ts",
    npmScript: "bench:scale",
    summary: "1,000 and 10,000 idle MQTT connections: memory per connection and idle CPU",
    needs: ["mosquitto"],
    targets: ["Memory per idle connection ≤ 8 KB beyond Node's baseline"],
  },
  {
    name: "netem",
    script: "bench/netem/selftest.ts",
    npmScript: "bench:netem-selftest",
    summary: "self-test of the emulated link (namespaces + TUN forwarder) the lossy benchmarks use",
    needs: ["netns"],
    targets: [],
  },
];

/** The checkout (or installed package) this module belongs to: src/cli/ or dist/cli/ → ../.. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Thrown when a benchmark cannot be started; `exitCode` is what the CLI exits with. */
export class BenchCommandError extends Error {
  override readonly name = "BenchCommandError";
  constructor(
    message: string,
    /** 2 for a usage error (unknown name), 1 when the checkout lacks what the benchmark needs. */
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

/** The `mquictt bench` listing: every benchmark with its command and whether it is present. */
export function benchListing(root = PACKAGE_ROOT): string {
  const width = Math.max(...BENCHMARKS.map((b) => b.name.length), "all".length);
  const lines = BENCHMARKS.map((b) => {
    const missing = existsSync(join(root, "bench")) && !existsSync(join(root, b.script));
    return `  ${b.name.padEnd(width)}  ${b.summary}${missing ? ` (${b.script} is not in this checkout)` : ""}`;
  });
  return [
    "usage: mquictt bench <name> [args...]   (e.g. mquictt bench hol --quick)",
    "",
    ...lines,
    `  ${"all".padEnd(width)}  every benchmark in order, then bench/RESULTS.md (npm run bench; --quick, --only a,b)`,
    "",
    "Each runs bench/<script> with tsx from a source checkout; --quick is its CI smoke version.",
  ].join("\n");
}

/** Where the tsx loader is, resolved from the package (tsx is a development dependency). */
function tsxLoader(): string {
  try {
    return createRequire(join(PACKAGE_ROOT, "package.json")).resolve("tsx");
  } catch {
    throw new BenchCommandError(
      `tsx is not installed next to mquictt (${PACKAGE_ROOT}): the benchmarks run from a source checkout after \`npm install\``,
      1,
    );
  }
}

/** Options of {@link runBenchmark}; the defaults are the real checkout and process. */
export interface RunBenchmarkOptions {
  /** The checkout holding bench/ (default: this package's root). */
  root?: string;
  /** Where the listing goes (default: console.log). */
  out?: (line: string) => void;
}

/**
 * `mquictt bench [name [args...]]`: with no name, prints the listing and returns 0; otherwise
 * runs bench/<script> (or bench/run.ts for `all`) under tsx with the remaining args, stdio
 * inherited, and resolves to its exit code.
 * @throws BenchCommandError for an unknown name, or a checkout without bench/ or the script.
 */
export async function runBenchmark(argv: readonly string[], opts: RunBenchmarkOptions = {}): Promise<number> {
  const root = opts.root ?? PACKAGE_ROOT;
  const out = opts.out ?? ((line: string) => console.log(line));
  const [name, ...args] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "list") {
    out(benchListing(root));
    return 0;
  }
  const info = BENCHMARKS.find((b) => b.name === name);
  const script = name === "all" ? "bench/run.ts" : info?.script;
  if (script === undefined)
    throw new BenchCommandError(
      `unknown benchmark "${name}"; known: ${[...BENCHMARKS.map((b) => b.name), "all"].join(", ")}`,
      2,
    );
  if (!existsSync(join(root, "bench")))
    throw new BenchCommandError(
      `no bench/ directory in ${root}: the benchmarks are not part of the npm package; run them from a source checkout (git clone, npm install, then \`npx tsx src/cli/main.ts bench ${name}\` or \`npm run bench\`)`,
      1,
    );
  if (!existsSync(join(root, script)))
    throw new BenchCommandError(`${script} is not in this checkout (${root})`, 1);
  const loader = pathToFileURL(tsxLoader()).href;
  const child = spawn(process.execPath, ["--import", loader, join(root, script), ...args], {
    cwd: root,
    stdio: "inherit",
  });
  // Ctrl-C reaches the child through the terminal's process group; wait for it to finish.
  const ignore = (): void => {};
  process.on("SIGINT", ignore);
  try {
    return await new Promise<number>((resolveCode, reject) => {
      child.once("error", reject);
      child.once("exit", (code, signal) =>
        resolveCode(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1)),
      );
    });
  } finally {
    process.off("SIGINT", ignore);
  }
}
