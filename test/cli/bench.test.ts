/**
 * `mquictt bench`: the listing, the errors for an unknown name and for a checkout without bench/
 * (an installed package), and a run of a script with its args and exit code passed through.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  BENCHMARKS,
  BenchCommandError,
  benchListing,
  PACKAGE_ROOT,
  runBenchmark,
} from "../../src/cli/bench.js";
import { main } from "../../src/cli/main.js";

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempRoot(): string {
  const d = mkdtempSync(join(tmpdir(), "mquictt-bench-cli-"));
  dirs.push(d);
  return d;
}

describe("mquictt bench", () => {
  it("lists every benchmark by name, with what it measures, when given no name", async () => {
    const lines: string[] = [];
    expect(await runBenchmark([], { out: (l) => lines.push(l) })).toBe(0);
    const text = lines.join("\n");
    for (const b of BENCHMARKS) {
      const row = text.split("\n").find((l) => l.trimStart().startsWith(`${b.name} `));
      expect(row, b.name).toBeDefined();
      expect(row).toContain(b.summary);
    }
    expect(text).toMatch(/^\s+all\s+every benchmark in order/m);
    expect(text).toContain("usage: mquictt bench <name>");
  });

  it("lists through main() and exits 0", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    expect(await main(["bench"])).toBe(0);
    expect(log.mock.calls.map((c) => String(c[0])).join("\n")).toBe(benchListing());
  });

  it("every registered script exists in this checkout, except those listed as not in it", () => {
    const listing = benchListing();
    for (const b of BENCHMARKS) {
      const present = existsSync(join(PACKAGE_ROOT, b.script));
      expect(listing.includes(`${b.script} is not in this checkout`), b.name).toBe(!present);
    }
  });

  it("rejects an unknown name with the known ones, exit 2", async () => {
    const err = await runBenchmark(["no-such-bench"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BenchCommandError);
    expect((err as BenchCommandError).exitCode).toBe(2);
    expect((err as Error).message).toContain('unknown benchmark "no-such-bench"');
    expect((err as Error).message).toContain("hol");
    const errLog = vi.spyOn(console, "error").mockImplementation(() => {});
    expect(await main(["bench", "no-such-bench"])).toBe(2);
    expect(errLog.mock.calls.map((c) => String(c[0])).join("\n")).toContain(
      'unknown benchmark "no-such-bench"',
    );
  });

  it("says the benchmarks need a source checkout when bench/ is not there (an npm install), exit 1", async () => {
    const root = tempRoot(); // like an installed package: dist/ and bin/, no bench/
    const err = await runBenchmark(["hol", "--quick"], { root }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BenchCommandError);
    expect((err as BenchCommandError).exitCode).toBe(1);
    expect((err as Error).message).toMatch(
      /no bench\/ directory in .*not part of the npm package.*source checkout/,
    );
  });

  it("says which script is missing from a checkout that has bench/ but not that script", async () => {
    const root = tempRoot();
    mkdirSync(join(root, "bench"));
    const err = await runBenchmark(["throughput"], { root }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BenchCommandError);
    expect((err as Error).message).toContain("bench/throughput.ts is not in this checkout");
    expect(benchListing(root)).toContain("bench/throughput.ts is not in this checkout");
  });

  it("runs the benchmark's script under tsx with the remaining args and returns its exit code", async () => {
    const root = tempRoot();
    mkdirSync(join(root, "bench"));
    const seen = join(root, "seen.json");
    // TypeScript syntax on purpose: the script must run under tsx.
    writeFileSync(
      join(root, "bench", "crypto.ts"),
      `import { writeFileSync } from "node:fs";
const args: string[] = process.argv.slice(2);
writeFileSync(${JSON.stringify(seen)}, JSON.stringify({ args, cwd: process.cwd() }));
process.exitCode = 3;
`,
    );
    expect(await runBenchmark(["crypto", "--quick", "--x", "1"], { root })).toBe(3);
    const got = JSON.parse(readFileSync(seen, "utf8")) as { args: string[]; cwd: string };
    expect(got.args).toEqual(["--quick", "--x", "1"]);
    expect(got.cwd).toBe(root);
  });
});
