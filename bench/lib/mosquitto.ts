/**
 * Starting a mosquitto broker for a benchmark baseline on ports nobody else holds.
 *
 * mosquitto cannot listen on port 0 and report the port, so the benchmark picks the ports. They
 * are drawn at random below the kernel's ephemeral range (so no outgoing connection of this or
 * another job can be holding one) and, when one is taken anyway ("Address already in use", or
 * mosquitto exits), mosquitto is started again on other ports.
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { Socket } from "node:net";

/** A started mosquitto, as the caller's `start` wrapped it. */
export interface StartedMosquitto<H> {
  handle: H;
  /** Its listener ports, in the order `configure` received them. */
  ports: number[];
}

export interface StartMosquittoOptions<H> {
  /** Writes a configuration with listeners on these ports; returns the file's path. */
  configure: (ports: number[]) => string;
  /** Listener ports to pick (consecutive). Default 1. */
  portCount?: number;
  /** Spawns mosquitto with the configuration at `conf` (in a namespace, under taskset, ...). */
  start: (conf: string) => { handle: H; proc: ChildProcess; output: () => string };
  /** True once the broker serves `port`. Default: a TCP connect to 127.0.0.1:port succeeds. */
  probe?: (port: number, output: string) => boolean | Promise<boolean>;
  /** Per attempt. Default 15 s. */
  timeoutMs?: number;
  attempts?: number;
}

/** Starts mosquitto, retrying on other ports while the chosen ones are taken. */
export async function startMosquitto<H>(o: StartMosquittoOptions<H>): Promise<StartedMosquitto<H>> {
  const count = o.portCount ?? 1;
  const probe = o.probe ?? ((port: number) => tcpAnswers(port));
  const low = 10_000;
  const high = Math.min(ephemeralLow(), 65_536) - count;
  const failures: string[] = [];
  for (let attempt = 0; attempt < (o.attempts ?? 5); attempt++) {
    const first = low + Math.floor(Math.random() * (high - low));
    const ports = Array.from({ length: count }, (_, i) => first + i);
    const { handle, proc, output } = o.start(o.configure(ports));
    const deadline = Date.now() + (o.timeoutMs ?? 15_000);
    for (;;) {
      const out = output();
      if (/Address already in use/i.test(out) || proc.exitCode !== null || proc.signalCode !== null) {
        proc.kill("SIGKILL");
        failures.push(`ports ${ports.join(",")}: ${out.trim().split("\n").slice(-2).join(" / ")}`);
        break;
      }
      if (await probe(ports[0], out)) return { handle, ports };
      if (Date.now() > deadline) {
        proc.kill("SIGKILL");
        throw new Error(`mosquitto did not listen on ${ports.join(",")} in time:\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`mosquitto could not listen on any ports tried:\n${failures.join("\n")}`);
}

/** The low end of the kernel's ephemeral port range (Linux), 32768 when it cannot be read. */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 11_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** True when a TCP connect to 127.0.0.1:port succeeds. */
export function tcpAnswers(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
    s.connect(port, host);
  });
}
