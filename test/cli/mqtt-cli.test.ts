import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliIo,
  parseBrokerArgs,
  parsePubArgs,
  parseSubArgs,
  type RunningBroker,
  runPub,
  runSub,
  startBrokerCli,
} from "../../src/cli/mqtt-cli.js";

function collect(): CliIo & { lines: string[]; errors: string[]; subscribed: Promise<void> } {
  const lines: string[] = [];
  const errors: string[] = [];
  let ready: () => void = () => {};
  const subscribed = new Promise<void>((r) => {
    ready = r;
  });
  return {
    lines,
    errors,
    subscribed,
    out: (l) => lines.push(l),
    err: (l) => errors.push(l),
    ready: () => ready(),
  };
}

const never = new Promise<void>(() => {});

describe("mquictt pub/sub/broker flag parsing", () => {
  it("builds URLs from -h/-p, --tcp and -L", () => {
    expect(parsePubArgs(["-t", "a/b", "-m", "x"]).url).toBe("mqtt+quic://localhost:14567");
    expect(parsePubArgs(["-t", "a", "-m", "x", "--tcp", "-h", "::1"]).url).toBe("mqtt://[::1]:1883");
    expect(parsePubArgs(["-t", "a", "-m", "x", "-h", "b.example", "-p", "9000"]).url).toBe(
      "mqtt+quic://b.example:9000",
    );
    const o = parseSubArgs([
      "-L",
      "mqtt://h:1",
      "-t",
      "a/+",
      "-t",
      "#",
      "-v",
      "-C",
      "3",
      "-W",
      "1.5",
      "-V",
      "311",
    ]);
    expect(o).toMatchObject({
      url: "mqtt://h:1",
      filters: ["a/+", "#"],
      verbose: true,
      count: 3,
      timeout: 1.5,
      protocolVersion: 4,
      connectTimeout: 1.5,
    });
    expect(
      parsePubArgs(["-t", "a", "-m", "-", "-q", "2", "-r", "-i", "me", "-c", "-u", "u", "-P", "p"]),
    ).toMatchObject({
      message: "-",
      qos: 2,
      retain: true,
      clientId: "me",
      clean: false,
      username: "u",
      password: "p",
    });
    expect(parseBrokerArgs([])).toEqual({ quicPort: 14567, tcpPort: 1883, host: "::" });
    expect(parseBrokerArgs(["--quic-port", "0", "--no-tcp"])).toMatchObject({
      quicPort: 0,
      tcpPort: undefined,
    });
    expect(parseBrokerArgs(["--early-data"]).earlyData).toBe(true);
  });

  it("rejects bad flags with a usage error", () => {
    const bad: [() => unknown, RegExp][] = [
      [() => parsePubArgs(["-m", "x"]), /topic is required/],
      [() => parsePubArgs(["-t", "a/#", "-m", "x"]), /invalid topic "a\/#"/],
      [() => parsePubArgs(["-t", "a"]), /message is required/],
      [() => parsePubArgs(["-t", "a", "-m", "x", "-q", "3"]), /QoS must be 0, 1 or 2/],
      [() => parsePubArgs(["-t", "a", "-m", "x", "-p", "70000"]), /not a port number/],
      [() => parsePubArgs(["-t", "a", "-m", "x", "-c"]), /needs a client id/],
      [() => parsePubArgs(["-t", "a", "-m", "x", "-V", "3"]), /unsupported protocol version/],
      [() => parsePubArgs(["-t", "a", "-m", "x", "--bogus"]), /unknown flag "--bogus"/],
      [() => parsePubArgs(["-t", "a", "-m", "x", "-L", "http://x"]), /not a broker URL/],
      [() => parsePubArgs(["-t", "a", "-m", "x", "-L", "mqtt://x", "-p", "1"]), /-L goes without/],
      [() => parseSubArgs([]), /at least one topic filter/],
      [() => parseSubArgs(["-t", "a/#/b"]), /invalid topic filter/],
      [() => parseSubArgs(["-t", "a", "-C", "0"]), /not a positive count/],
      [() => parseSubArgs(["-t", "a", "-W", "soon"]), /not a positive number of seconds/],
      [() => parseSubArgs(["-t"]), /-t needs a value/],
      [() => parseBrokerArgs(["--cert", "c.pem"]), /--cert and --key go together/],
      [() => parseBrokerArgs(["--tcp-port", "x"]), /not a port number/],
    ];
    for (const [f, re] of bad) {
      expect(f).toThrow(re);
      try {
        f();
      } catch (e) {
        expect((e as { exitCode?: number }).exitCode).toBe(2);
      }
    }
  });
});

describe("mquictt broker + sub + pub end to end", () => {
  let running: RunningBroker;
  const brokerIo = collect();

  beforeAll(async () => {
    const certDir = mkdtempSync(join(tmpdir(), "mqtt-cli-"));
    running = await startBrokerCli(
      parseBrokerArgs(["--quic-port", "0", "--tcp-port", "0", "--host", "127.0.0.1", "--cert-dir", certDir]),
      brokerIo,
    );
  });
  afterAll(async () => {
    await running?.close();
  });

  it("prints where it listens and the CA to trust", () => {
    expect(running.caFile).toMatch(/ca\.pem$/);
    expect(brokerIo.lines).toEqual([
      `listening on mqtt+quic://127.0.0.1:${running.quicPort} (UDP 127.0.0.1)`,
      `listening on mqtt://127.0.0.1:${running.tcpPort} (TCP 127.0.0.1)`,
    ]);
    expect(brokerIo.errors.join("\n")).toContain(`--cafile ${running.caFile}`);
  });

  it("sub -C 2 receives one message over QUIC and one over TCP", async () => {
    const ca = running.caFile ?? "";
    const subIo = collect();
    const sub = runSub(
      parseSubArgs([
        "-h",
        "127.0.0.1",
        "-p",
        String(running.quicPort),
        "--cafile",
        ca,
        "-t",
        "cli/#",
        "-v",
        "-C",
        "2",
        "-W",
        "20",
        "-q",
        "1",
      ]),
      subIo,
      never,
    );
    await subIo.subscribed;
    const pubIo = collect();
    expect(
      await runPub(
        parsePubArgs([
          "-h",
          "127.0.0.1",
          "-p",
          String(running.quicPort),
          "--cafile",
          ca,
          "-t",
          "cli/quic",
          "-m",
          "over quic",
          "-q",
          "1",
        ]),
        pubIo,
      ),
    ).toBe(0);
    expect(
      await runPub(
        parsePubArgs([
          "-L",
          `mqtt://127.0.0.1:${running.tcpPort}`,
          "-t",
          "cli/tcp",
          "-m",
          "over tcp",
          "-V",
          "311",
        ]),
        pubIo,
      ),
    ).toBe(0);
    expect(await sub).toBe(0);
    expect(subIo.lines).toEqual(["cli/quic over quic", "cli/tcp over tcp"]);
  }, 30_000);

  it("sub without -v prints the payload; a wrong CA is a certificate error", async () => {
    const subIo = collect();
    const sub = runSub(
      parseSubArgs(["-L", `mqtt://127.0.0.1:${running.tcpPort}`, "-t", "plain", "-C", "1", "-W", "20"]),
      subIo,
      never,
    );
    await subIo.subscribed;
    await runPub(
      parsePubArgs(["-L", `mqtt://127.0.0.1:${running.tcpPort}`, "-t", "plain", "-m", "just this"]),
      subIo,
    );
    expect(await sub).toBe(0);
    expect(subIo.lines).toEqual(["just this"]);
    // No --cafile: the system roots do not know the test CA.
    await expect(
      runPub(
        parsePubArgs([
          "-h",
          "127.0.0.1",
          "-p",
          String(running.quicPort),
          "-t",
          "x",
          "-m",
          "y",
          "--connect-timeout",
          "5",
        ]),
        collect(),
      ),
    ).rejects.toThrow(/cannot connect to mqtt\+quic:\/\/127\.0\.0\.1:\d+: .*not among the trusted roots/);
    await expect(
      runPub(
        parsePubArgs(["-h", "127.0.0.1", "-p", "1", "-t", "x", "-m", "y", "--cafile", "/nonexistent/ca.pem"]),
        collect(),
      ),
    ).rejects.toThrow(/cannot read certificate file \/nonexistent\/ca\.pem/);
  }, 30_000);

  it("sub against a closed port fails with a clear error within -W", async () => {
    const closed = await startBrokerCli(
      parseBrokerArgs([
        "--quic-port",
        "0",
        "--no-tcp",
        "--host",
        "127.0.0.1",
        "--cert-dir",
        mkdtempSync(join(tmpdir(), "mqtt-cli-")),
      ]),
      collect(),
    );
    const port = closed.quicPort;
    await closed.close();
    const started = Date.now();
    await expect(
      runSub(parseSubArgs(["-h", "127.0.0.1", "-p", String(port), "-t", "x", "-W", "1"]), collect(), never),
    ).rejects.toThrow(/timed out after 1 s connecting to mqtt\+quic:\/\/127\.0\.0\.1/);
    expect(Date.now() - started).toBeLessThan(3000);
  }, 10_000);
});
