/**
 * `npm run bench`: runs every benchmark (src/cli/bench.ts BENCHMARKS, in order) as a child
 * process, then assembles bench/RESULTS.md from the sections they wrote (bench/results/<name>.md
 * and <name>.targets.json, via writeMarkdown in bench/lib/report.ts).
 *
 *   npx tsx bench/run.ts                 every benchmark, full runs, then bench/RESULTS.md
 *   npx tsx bench/run.ts --quick         every benchmark's CI smoke version, then
 *                                        bench/results/RESULTS-quick.md (RESULTS.md is left alone)
 *   npx tsx bench/run.ts --only hol,crypto   just those (the others' sections from earlier runs)
 *   npx tsx bench/run.ts --assemble      no runs: rebuild RESULTS.md from the sections on disk
 *   --keep-going=false                   stop at the first failing benchmark (default: run the
 *                                        rest, report the failure, exit 1)
 *
 * Before running anything it checks and provides what the selected benchmarks need: npm
 * dependencies (`npm install` when missing), the quinn peer (built with cargo), mosquitto (installed
 * with apt-get when running as root on Debian; otherwise the error says what to run) and root for the emulated link's namespaces
 * (without it the benchmarks fall back to loopback and say so; this says so up front).
 *
 * A section from a full run is used when present, else the quick one, labelled as such, with
 * the time its file was written; a missing section is a line saying which command produces it.
 */
import { execFileSync, spawn } from "node:child_process";
import { createWriteStream, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { freemem, loadavg, release, totalmem, version } from "node:os";
import { join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { BENCHMARKS, type BenchmarkInfo } from "../src/cli/bench.js";
import { quinnPeerBinary } from "./lib/quinn-peer.js";
import { flag, machine, mdTable, RESULTS_DIR, type TargetResult, writeResult } from "./lib/report.js";

const ROOT = resolve(import.meta.dirname, "..");
const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const assembleOnly = argv.includes("--assemble");
const keepGoing = flag(argv, "--keep-going") !== "false";

/** How one step of this invocation went. */
interface Step {
  bench: BenchmarkInfo;
  command: string;
  status: "ok" | "failed" | "missing" | "not run";
  exitCode?: number | null;
  seconds?: number;
  /** The last lines of its stderr, when it failed. */
  tail?: string;
}

/** The section chosen for a benchmark: full when present (quick mode: quick first), else quick. */
interface Section {
  kind: "full" | "quick";
  md: string;
  targets: TargetResult[];
  written: Date;
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

function commandOf(b: BenchmarkInfo, q: boolean): string {
  return `npm run ${b.npmScript}${q ? " -- --quick" : ""}`;
}

function selected(): BenchmarkInfo[] {
  const only = flag(argv, "--only");
  if (only === undefined) return [...BENCHMARKS];
  const names = only.split(",").filter(Boolean);
  const unknown = names.filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length > 0)
    throw new Error(
      `--only: unknown benchmark(s) ${unknown.join(", ")}; known: ${BENCHMARKS.map((b) => b.name).join(", ")}`,
    );
  return BENCHMARKS.filter((b) => names.includes(b.name));
}

function onPath(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Checks and provides what the runs need; throws with what to do when it cannot. */
function preflight(benches: BenchmarkInfo[]): void {
  const req = createRequire(join(ROOT, "package.json"));
  const missingDeps = ["tsx", "aedes", "mqtt", "mqtt-packet"].filter((m) => {
    try {
      req.resolve(m);
      return false;
    } catch {
      return true;
    }
  });
  if (missingDeps.length > 0) {
    log(`==> npm dependencies missing (${missingDeps.join(", ")}): npm install`);
    execFileSync("npm", ["install", "--no-audit", "--no-fund"], { cwd: ROOT, stdio: "inherit" });
  }
  const needs = new Set(benches.filter((b) => existsSync(join(ROOT, b.script))).flatMap((b) => b.needs));
  if (needs.has("mosquitto") && !onPath("mosquitto") && process.getuid?.() === 0 && onPath("apt-get")) {
    // A fresh Debian machine as root (CI, the team's machines): install it the way .ci/run does.
    log("==> mosquitto missing: apt-get install -y mosquitto mosquitto-clients");
    execFileSync(
      "sh",
      [
        "-c",
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients && " +
          "(service mosquitto stop >/dev/null 2>&1 || true)",
      ],
      { stdio: "inherit" },
    );
  }
  if (needs.has("mosquitto") && !onPath("mosquitto")) {
    const users = benches.filter((b) => b.needs.includes("mosquitto")).map((b) => b.name);
    throw new Error(
      `mosquitto is not installed; ${users.join(", ")} measure against it. Install the Debian packages ` +
        "(as .ci/run does): apt-get update && apt-get install -y mosquitto mosquitto-clients && " +
        "service mosquitto stop   (the benchmarks start their own mosquitto on a free port)",
    );
  }
  if (needs.has("quinn")) {
    log(
      "==> quinn peer (interop/quinn-peer): locating, or building with cargo (the first time takes minutes)",
    );
    quinnPeerBinary(); // throws with the cargo command when it cannot build
  }
  if (needs.has("netns") && process.getuid?.() !== 0)
    log(
      "==> NOTE: not root, so the emulated link cannot create its network namespaces; the lossy " +
        "benchmarks fall back to loopback without delay or loss, and say so in their sections",
    );
}

/** Runs one benchmark as a child process, its output passed through and kept in <name>.log. */
async function runStep(b: BenchmarkInfo, index: number, total: number, t0: number): Promise<Step> {
  const command = commandOf(b, quick);
  const tag = `[${index}/${total}] ${b.name}`;
  if (!existsSync(join(ROOT, b.script))) {
    log(`==> ${tag}: MISSING — ${b.script} is not in this checkout (${command} has nothing to run)`);
    return { bench: b, command, status: "missing" };
  }
  log(`==> ${tag}: ${command}`);
  const started = performance.now();
  const loader = pathToFileURL(createRequire(join(ROOT, "package.json")).resolve("tsx")).href;
  const logPath = join(RESULTS_DIR, `${b.name}${quick ? "-quick" : ""}.log`);
  const logFile = createWriteStream(logPath);
  const child = spawn(process.execPath, ["--import", loader, b.script, ...(quick ? ["--quick"] : [])], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let tail = "";
  let stdout = "";
  child.stdout.on("data", (d: Buffer) => {
    process.stdout.write(d);
    logFile.write(d);
    if (stdout.length < 200_000) stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    process.stderr.write(d);
    logFile.write(d);
    tail = (tail + d.toString()).slice(-4000);
  });
  // Ctrl-C goes to the child too (same process group); wait for it to clean up its namespaces.
  const ignore = (): void => {};
  process.on("SIGINT", ignore);
  const exitCode = await new Promise<number | null>((r) => child.once("close", (code) => r(code)));
  process.off("SIGINT", ignore);
  await new Promise<void>((r) => logFile.end(r));
  // Its stdout alone (the table), for the fallback section of a script that writes none.
  writeFileSync(join(RESULTS_DIR, `${b.name}${quick ? "-quick" : ""}.stdout.log`), stdout);
  const seconds = (performance.now() - started) / 1000;
  const ok = exitCode === 0;
  log(
    `<== ${tag}: ${ok ? "ok" : `FAILED (exit ${exitCode})`} in ${fmtDuration(seconds)} ` +
      `(${fmtDuration((performance.now() - t0) / 1000)} since the start; output in ${relative(ROOT, logPath)})`,
  );
  return {
    bench: b,
    command,
    status: ok ? "ok" : "failed",
    exitCode,
    seconds,
    tail: ok ? undefined : tail.split("\n").slice(-15).join("\n"),
  };
}

function fmtDuration(s: number): string {
  if (s < 90) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

function readSection(name: string, kind: "full" | "quick"): Section | undefined {
  const base = join(RESULTS_DIR, kind === "full" ? name : `${name}-quick`);
  if (!existsSync(`${base}.md`)) return undefined;
  const targetsFile = `${base}.targets.json`;
  const targets = existsSync(targetsFile)
    ? (JSON.parse(readFileSync(targetsFile, "utf8")) as TargetResult[])
    : [];
  return {
    kind,
    md: readFileSync(`${base}.md`, "utf8").trim(),
    targets,
    written: statSync(`${base}.md`).mtime,
  };
}

function sectionOf(b: BenchmarkInfo): Section | undefined {
  const order: Array<"full" | "quick"> = quick ? ["quick", "full"] : ["full", "quick"];
  for (const kind of order) {
    const s = readSection(b.name, kind);
    if (s) return s;
  }
  return undefined;
}

/** What a benchmark printed on stdout in its last run through bench/run.ts (full first, quick in --quick). */
function printed(b: BenchmarkInfo): { label: string; text: string } | undefined {
  for (const q of quick ? [true, false] : [false, true]) {
    const f = join(RESULTS_DIR, `${b.name}${q ? "-quick" : ""}.stdout.log`);
    if (!existsSync(f)) continue;
    const text = readFileSync(f, "utf8");
    if (text.trim() === "") continue;
    return { label: `\`${commandOf(b, q)}\` ran (${utc(statSync(f).mtime)})`, text };
  }
  return undefined;
}

const utc = (d: Date): string => `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;

/** Inserts a line saying where the section comes from right after its `### ` heading. */
function labelled(b: BenchmarkInfo, s: Section): string {
  const label =
    s.kind === "full"
      ? `_Full run, written ${utc(s.written)}._`
      : `_Quick smoke run only (short, rough numbers), written ${utc(s.written)}; \`${commandOf(b, false)}\` produces the full section._`;
  const lines = s.md.split("\n");
  const h = lines.findIndex((l) => l.startsWith("### "));
  if (h < 0) return [`### ${b.name}`, "", label, "", s.md].join("\n");
  return [...lines.slice(0, h + 1), "", label, ...lines.slice(h + 1)].join("\n");
}

function assemble(
  steps: Step[],
  startLoad: number[],
  totalSeconds: number | undefined,
  /** When re-assembling (--assemble): the end of the run the step table comes from. */
  runEnded?: Date,
): string {
  const m = machine();
  const now = new Date();
  const sections = BENCHMARKS.map((b) => ({ b, s: sectionOf(b), step: steps.find((st) => st.bench === b) }));

  const targetRows: string[][] = [];
  let met = 0;
  let total = 0;
  for (const { b, s, step } of sections) {
    if (s && s.targets.length > 0) {
      for (const t of s.targets) {
        total++;
        if (t.met) met++;
        targetRows.push([
          t.target,
          t.measured,
          t.met ? "✔" : "✘",
          `${b.name}${s.kind === "quick" ? " (quick run)" : ""}`,
        ]);
      }
    } else {
      // A benchmark that should hold a target but has no result: the target stays in the table.
      for (const t of b.targets) {
        total++;
        const why = !existsSync(join(ROOT, b.script))
          ? `not measured: ${b.script} is not in this checkout`
          : s
            ? `not measured: the ${b.name} section reports no target`
            : step?.status === "ok" || printed(b)
              ? `not reported: ${b.script} ran but wrote no section or targets (bench/results/${b.name}.md, .targets.json)`
              : `not measured: \`${commandOf(b, false)}\` has not been run`;
        targetRows.push([t, why, "✘", b.name]);
      }
    }
  }

  const out: string[] = [
    "# mquictt benchmark results",
    "",
    `Generated by \`bench/run.ts\` on ${utc(now)}${runEnded ? `, re-assembled after the run that ended ${utc(runEnded)}` : ""}${totalSeconds !== undefined ? `; the benchmarks took ${fmtDuration(totalSeconds)}` : " (assembled from the sections on disk, no runs)"}.`,
    "Every section below says the command that produced it; every ratio is against a baseline measured in the same run.",
    "",
    "## Reproduce",
    "",
    "```sh",
    `npm install && npm run bench${quick ? " -- --quick" : ""}`,
    "```",
    "",
    "It needs root (network namespaces for the emulated link), cargo (the quinn peer), and Debian's " +
      "`mosquitto` (`apt-get install -y mosquitto mosquitto-clients`); `mquictt bench <name>` or " +
      "`npm run bench -- --only <name>,...` runs single benchmarks.",
    "",
    "## Machine",
    "",
    mdTable(
      ["", "this run"],
      [
        ["CPU", `${m.cpu}, ${m.cores} cores`],
        [
          "memory",
          `${(totalmem() / 2 ** 30).toFixed(1)} GiB (${(freemem() / 2 ** 30).toFixed(1)} GiB free at the end)`,
        ],
        ["kernel", `${release()} (${version()})`],
        ["platform", m.platform],
        ["Node.js", m.node],
        ["mquictt", gitDescribe()],
        [
          "load average (1/5/15 min)",
          `${startLoad.map((x) => x.toFixed(2)).join(" / ")} at the start, ${loadavg()
            .map((x) => x.toFixed(2))
            .join(" / ")} at the end (a shared machine: other work runs alongside)`,
        ],
        [
          "user",
          process.getuid?.() === 0 ? "root (emulated link available)" : "not root (loopback fallback)",
        ],
      ],
      2,
    ),
    "",
    "## Targets (issue 6)",
    "",
    `${met} of ${total} met.`,
    "",
    mdTable(["target", "measured", "met", "benchmark"], targetRows, 2),
    "",
  ];
  if (steps.length > 0) {
    out.push(
      `## This run${quick ? " (quick)" : ""}`,
      "",
      mdTable(
        ["benchmark", "command", "result", "time"],
        steps.map((st) => [
          st.bench.name,
          `\`${st.command}\``,
          st.status === "ok"
            ? "ok"
            : st.status === "failed"
              ? `FAILED (exit ${st.exitCode}); the section below, if any, is from another run (see its time)`
              : st.status === "missing"
                ? `missing: ${st.bench.script} is not in this checkout`
                : `not run this time${sectionOf(st.bench) ? " (section from an earlier run)" : ""}`,
          st.seconds === undefined ? "" : fmtDuration(st.seconds),
        ]),
        3,
      ),
      "",
    );
  }
  out.push("## Results", "");
  for (const { b, s } of sections) {
    const shown = s ? undefined : printed(b);
    if (s) out.push(labelled(b, s), "");
    else if (shown)
      // A script that does not write its section yet: what it printed, so the numbers are here.
      out.push(
        `### ${b.name}`,
        "",
        `${shown.label} but writes no section of its own (bench/results/${b.name}.md); what it printed:`,
        "",
        "```text",
        shown.text.trimEnd(),
        "```",
        "",
      );
    else
      out.push(
        `### ${b.name}`,
        "",
        existsSync(join(ROOT, b.script))
          ? `No results yet: \`${commandOf(b, false)}\` (or \`${commandOf(b, true)}\` for the smoke version) writes this section.`
          : `No results: ${b.script} is not in this checkout; \`${commandOf(b, false)}\` will write this section once it is.`,
        "",
      );
  }
  return `${out.join("\n").trimEnd()}\n`;
}

function gitDescribe(): string {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      cwd: ROOT,
      encoding: "utf8",
    }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src", "bench"], {
      cwd: ROOT,
      encoding: "utf8",
    })
      .split("\n")
      .filter((l) => l && !l.includes("bench/results/") && !l.endsWith("bench/RESULTS.md")).length;
    return dirty > 0 ? `${head} (+ ${dirty} uncommitted file(s) in src/ or bench/)` : head;
  } catch {
    return "unknown (not a git checkout)";
  }
}

async function main(): Promise<number> {
  let startLoad = loadavg();
  const benches = selected();
  let steps: Step[] = [];
  let totalSeconds: number | undefined;
  let runEnded: Date | undefined;
  const runJson = join(RESULTS_DIR, quick ? "run-quick.json" : "run.json");
  if (assembleOnly && existsSync(runJson)) {
    // Re-assembling after a run: keep that run's step table, time and load.
    const last = JSON.parse(readFileSync(runJson, "utf8")) as {
      date: string;
      totalSeconds?: number;
      startLoad?: number[];
      steps: Array<Omit<Step, "bench"> & { name: string }>;
    };
    totalSeconds = last.totalSeconds;
    runEnded = new Date(last.date);
    if (last.startLoad) startLoad = last.startLoad;
    steps = last.steps.flatMap(({ name, ...rest }) => {
      const bench = BENCHMARKS.find((b) => b.name === name);
      return bench ? [{ ...rest, bench }] : [];
    });
  }
  if (!assembleOnly) {
    preflight(benches);
    const t0 = performance.now();
    for (const [i, b] of benches.entries()) {
      const st = await runStep(b, i + 1, benches.length, t0);
      steps.push(st);
      if (st.status === "failed" && !keepGoing) break;
    }
    totalSeconds = (performance.now() - t0) / 1000;
    for (const b of BENCHMARKS)
      if (!steps.some((s) => s.bench === b))
        steps.push({ bench: b, command: commandOf(b, quick), status: "not run" });
    steps.sort((a, b) => BENCHMARKS.indexOf(a.bench) - BENCHMARKS.indexOf(b.bench));
  }
  const md = assemble(steps, startLoad, totalSeconds, runEnded);
  const outPath = quick ? join(RESULTS_DIR, "RESULTS-quick.md") : join(ROOT, "bench", "RESULTS.md");
  writeFileSync(outPath, md);
  if (!assembleOnly)
    writeResult(quick ? "run-quick.json" : "run.json", {
      date: new Date().toISOString(),
      startLoad,
      quick,
      machine: machine(),
      totalSeconds,
      steps: steps.map((s) => ({
        name: s.bench.name,
        command: s.command,
        status: s.status,
        exitCode: s.exitCode,
        seconds: s.seconds,
      })),
    });

  const ran = steps.filter((s) => s.status === "ok" || s.status === "failed");
  const failed = steps.filter((s) => s.status === "failed");
  const missing = steps.filter((s) => s.status === "missing");
  log("");
  if (!assembleOnly) {
    for (const s of ran)
      log(
        `  ${s.status === "ok" ? "ok    " : "FAILED"}  ${s.bench.name.padEnd(10)}  ${fmtDuration(s.seconds ?? 0)}`,
      );
    for (const s of missing)
      log(`  MISSING ${s.bench.name.padEnd(10)}  ${s.bench.script} is not in this checkout`);
    if (totalSeconds !== undefined) log(`  total ${fmtDuration(totalSeconds)}`);
  }
  for (const f of failed)
    log(`\n${f.bench.name} failed (exit ${f.exitCode}); its last output:\n${f.tail ?? ""}`);
  log(`wrote ${relative(ROOT, outPath)}`);
  return failed.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    log(`bench/run.ts: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  },
);
