/**
 * Prints the top functions by self time of V8 CPU profiles, grouped by file:function.
 *
 *   node --import tsx --cpu-prof --cpu-prof-dir /tmp/prof some-script.ts
 *   npx tsx bench/cpu-profile-summary.ts /tmp/prof/*.cpuprofile [--top 20] [--start-at src/quic/]
 *
 * `--start-at S` leaves out the samples before the first one in a file whose path contains S
 * (start-up and module loading).
 *
 * bench/quic-goodput.ts --profile DIR profiles both ends of a transfer and calls this itself.
 */
import { summariseProfile } from "./lib/cpu-profile.js";
import { flag } from "./lib/report.js";

const argv = process.argv.slice(2);
const top = Number(flag(argv, "--top") ?? 20);
const startAt = flag(argv, "--start-at");
const files = argv.filter((a) => a.endsWith(".cpuprofile"));
if (files.length === 0) {
  console.error("usage: npx tsx bench/cpu-profile-summary.ts FILE.cpuprofile... [--top N]");
  process.exitCode = 2;
}
for (const f of files) console.log(`${summariseProfile(f, top, startAt)}\n`);
