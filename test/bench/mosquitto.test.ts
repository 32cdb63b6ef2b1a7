import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startMosquitto } from "../../bench/lib/mosquitto.js";

// A stand-in for mosquitto: reads "listener PORT" from its config; the first start fails the way
// mosquitto does when the port is taken, later starts listen on it.
const FAKE = `
const port = Number(/listener (\\d+)/.exec(require("fs").readFileSync(process.argv[1], "utf8"))[1]);
if (process.argv[2] === "taken") { console.error("Error: Address already in use"); process.exit(1); }
require("net").createServer().listen(port, "127.0.0.1", () => console.error("listening " + port));
`;

describe("startMosquitto", () => {
  const dir = mkdtempSync(join(tmpdir(), "mquictt-mosq-"));
  const procs: ReturnType<typeof spawn>[] = [];
  afterEach(() => {
    for (const p of procs) p.kill("SIGKILL");
  });

  it("starts again on other ports when the chosen port is taken, and probes until it answers", async () => {
    const tried: number[][] = [];
    let out = "";
    const started = await startMosquitto({
      portCount: 2,
      configure: (ports) => {
        tried.push(ports);
        const conf = join(dir, `m-${ports[0]}.conf`);
        writeFileSync(conf, `listener ${ports[0]} 127.0.0.1\nlistener ${ports[1]} 127.0.0.1\n`);
        return conf;
      },
      start: (conf) => {
        const p = spawn(process.execPath, ["-e", FAKE, conf, tried.length === 1 ? "taken" : "ok"], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        procs.push(p);
        out = "";
        p.stderr.on("data", (d: Buffer) => {
          out += d;
        });
        return { handle: p, proc: p, output: () => out };
      },
    });
    expect(tried).toHaveLength(2);
    expect(started.ports).toEqual(tried[1]);
    expect(started.ports[1]).toBe(started.ports[0] + 1);
    // Below the ephemeral range, so no outgoing connection can hold the port.
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").split(/\s+/)[0]);
    for (const p of tried.flat()) expect(p).toBeLessThan(low);
    expect(out).toContain(`listening ${started.ports[0]}`);
  });

  it("gives up after the allowed attempts with what each attempt printed", async () => {
    await expect(
      startMosquitto({
        attempts: 2,
        configure: ([port]) => {
          const conf = join(dir, `t-${port}.conf`);
          writeFileSync(conf, `listener ${port} 127.0.0.1\n`);
          return conf;
        },
        start: (conf) => {
          const p = spawn(process.execPath, ["-e", FAKE, conf, "taken"], {
            stdio: ["ignore", "pipe", "pipe"],
          });
          procs.push(p);
          let o = "";
          p.stderr.on("data", (d: Buffer) => {
            o += d;
          });
          return { handle: p, proc: p, output: () => o };
        },
      }),
    ).rejects.toThrow(/could not listen on any ports tried:\nports \d+: .*Address already in use\nports \d+/);
    rmSync(dir, { recursive: true, force: true });
  });
});
