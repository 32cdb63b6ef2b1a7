/**
 * The `mquictt` command. Subcommands:
 *   demo                         QUIC + TLS 1.3 step by step in memory, then over UDP on loopback
 *   interop server|client        the quic-interop-runner endpoint (hq-interop)
 */
import { pathToFileURL } from "node:url";
import { EXIT_UNSUPPORTED, interopClient, interopServer, parseInteropArgs } from "./interop.js";

const USAGE = `usage: mquictt <command>
  demo                      run the QUIC + TLS 1.3 demo (in memory, then over UDP on loopback)
  interop server [--www DIR] [--cert PEM --key PEM] [--port N] [--host ADDR]
  interop client [--downloads DIR] [--insecure | --ca PEM] URL...
      (environment: ROLE, TESTCASE, REQUESTS, SSLKEYLOGFILE, QLOGDIR)`;

/** Runs the CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "demo": {
        const { inMemoryHandshake, loopbackEcho } = await import("./demo.js");
        console.log(
          "== 1. QUIC + TLS 1.3 handshake between two in-memory endpoints (virtual clock, 20 ms one way)",
        );
        inMemoryHandshake(console.log);
        console.log("\n== 2. The same stack over UDP on loopback");
        await loopbackEcho(console.log);
        return 0;
      }
      case "interop": {
        const role = (rest[0] === "server" || rest[0] === "client" ? rest.shift() : process.env.ROLE) as
          | "server"
          | "client"
          | undefined;
        if (role !== "server" && role !== "client") {
          console.error(USAGE);
          return 2;
        }
        const args = parseInteropArgs(role, rest, process.env);
        if (role === "server") {
          const ep = await interopServer(args);
          await new Promise<void>((resolve) => {
            process.once("SIGTERM", resolve);
            process.once("SIGINT", resolve);
          });
          await ep.close();
          return 0;
        }
        await interopClient(args);
        return 0;
      }
      case undefined:
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        console.error(`mquictt: unknown command "${cmd}"\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    console.error(`mquictt ${cmd}: ${e instanceof Error ? e.message : String(e)}`);
    return code === EXIT_UNSUPPORTED ? EXIT_UNSUPPORTED : 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
