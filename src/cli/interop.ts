/**
 * `mquictt interop server|client`: the quic-interop-runner endpoint contract (ALPN hq-interop,
 * HTTP/0.9 over QUIC; see DESIGN.md "Interop contracts"). Environment: ROLE, TESTCASE, REQUESTS,
 * SSLKEYLOGFILE, QLOGDIR. Exit 0 on success, 127 for an unsupported test case, 1 on failure.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readFile, realpath, stat } from "node:fs/promises";
import { basename, join, resolve, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import { systemRng } from "../crypto/random.js";
import { getCryptoProvider } from "../crypto/select.js";
import { type QuicConnection, QuicEndpoint, type QuicStream } from "../net/quic.js";
import { generateSelfSigned } from "../tls/certgen.js";
import type { CipherSuiteName } from "../tls/suites.js";

/** Test cases we implement (both roles). */
const SUPPORTED = new Set([
  "handshake",
  "transfer",
  "multiconnect",
  "chacha20",
  "retry",
  "handshakeloss",
  "transferloss",
  "multiplexing",
  "blackhole",
  "longrtt",
  "goodput",
  "crosstraffic",
  "handshakecorruption",
  "transfercorruption",
]);

/** Exit code for unsupported test cases (quic-interop-runner convention). */
export const EXIT_UNSUPPORTED = 127;

export interface InteropArgs {
  role: "server" | "client";
  testcase: string;
  www: string;
  downloads: string;
  cert?: string;
  key?: string;
  port: number;
  host: string;
  insecure: boolean;
  ca?: string;
  requests: string[];
  crypto?: string;
  /** Server: after the first response is delivered, close the connection with this application code. */
  closeCode?: number;
}

const ALPN = ["hq-interop"];

function cipherSuitesFor(testcase: string): CipherSuiteName[] | undefined {
  return testcase === "chacha20" ? ["TLS_CHACHA20_POLY1305_SHA256"] : undefined;
}

/** Runs the interop server until killed. Resolves with the endpoint (tests close it). */
export async function interopServer(
  args: InteropArgs,
  log: (s: string) => void = console.log,
): Promise<QuicEndpoint> {
  if (!SUPPORTED.has(args.testcase)) {
    throw Object.assign(new Error(`unsupported test case ${args.testcase}`), { exitCode: EXIT_UNSUPPORTED });
  }
  const provider = getCryptoProvider(
    args.crypto === "noble" || args.crypto === "node" ? args.crypto : "auto",
  );
  let cert: string | Uint8Array[];
  let key: string | import("../crypto/provider.js").PrivateKey;
  if (args.cert && args.key) {
    cert = await readFile(args.cert, "utf8");
    key = await readFile(args.key, "utf8");
  } else {
    const gen = generateSelfSigned({
      provider,
      rng: systemRng,
      now: Date.now(),
      commonName: "localhost",
      dns: ["localhost"],
      ips: ["127.0.0.1", "::1"],
    });
    cert = [gen.der];
    key = gen.key;
  }
  const www = await realpath(resolve(args.www));
  const ep = await QuicEndpoint.listen({
    port: args.port,
    host: args.host,
    alpn: ALPN,
    cert,
    key,
    crypto: provider,
    retry: args.testcase === "retry",
    cipherSuites: cipherSuitesFor(args.testcase),
    transport: { maxStreamsBidi: 1000, initialMaxData: 4 << 20, initialMaxStreamData: 2 << 20 },
  });
  ep.on("connection", (conn: QuicConnection) => {
    conn.on("stream", (s: QuicStream) => {
      void serveRequest(www, s).then(
        async () => {
          if (args.closeCode === undefined) return;
          await delivered(conn, s.id);
          await conn.close(args.closeCode, "bye");
        },
        () => s.reset(2),
      );
    });
  });
  log(`listening on ${args.host}:${ep.address().port}`);
  return ep;
}

/** Resolves once every byte we sent on `streamId` was acknowledged (or the stream is gone). */
async function delivered(conn: QuicConnection, streamId: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const send = conn.core.streams.getStream(streamId)?.send;
    if (!send || send.state === "data_recvd") return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Reads `GET /path\r\n` and answers with the file (or resets the stream). */
async function serveRequest(www: string, s: QuicStream): Promise<void> {
  // Read the request without destroying the stream at its end (a `for await` would).
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of s.iterator({ destroyOnReturn: false })) {
    chunks.push(c as Buffer);
    total += (c as Buffer).length;
    if (total > 4096) {
      s.reset(400);
      return;
    }
  }
  const line = Buffer.concat(chunks).toString("latin1").split(/\r?\n/)[0] ?? "";
  const m = /^GET (\/\S*)$/.exec(line.trim());
  if (!m) {
    s.reset(400);
    return;
  }
  let rel: string;
  try {
    rel = decodeURIComponent(m[1]);
  } catch {
    s.reset(400);
    return;
  }
  // Never serve outside www, whatever the path says (.., symlinks, absolute tricks).
  if (rel.includes("\0") || rel.split("/").some((p) => p === "..")) {
    s.reset(403);
    return;
  }
  const candidate = resolve(www, `.${rel}`);
  let real: string;
  try {
    real = await realpath(candidate);
  } catch {
    s.reset(404);
    return;
  }
  if (real !== www && !real.startsWith(www + sep)) {
    s.reset(403);
    return;
  }
  const st = await stat(real);
  if (!st.isFile()) {
    s.reset(404);
    return;
  }
  await pipeline(createReadStream(real), s);
}

/** Runs the interop client: downloads every request; resolves when all are done. */
export async function interopClient(args: InteropArgs): Promise<void> {
  if (!SUPPORTED.has(args.testcase)) {
    throw Object.assign(new Error(`unsupported test case ${args.testcase}`), { exitCode: EXIT_UNSUPPORTED });
  }
  if (args.requests.length === 0) throw new Error("no requests (set REQUESTS or pass URLs)");
  const provider = getCryptoProvider(
    args.crypto === "noble" || args.crypto === "node" ? args.crypto : "auto",
  );
  await mkdir(args.downloads, { recursive: true });
  const urls = args.requests.map((r) => new URL(r));
  const first = urls[0];
  const host = first.hostname.replace(/^\[|\]$/g, "");
  const port = Number(first.port || 443);
  const ep = await QuicEndpoint.open({ host: host.includes(":") ? "::" : "0.0.0.0", crypto: provider });
  try {
    const connectOpts = {
      alpn: ALPN,
      insecure: args.insecure,
      ca: args.ca ? await readFile(args.ca, "utf8") : undefined,
      serverName: args.insecure ? undefined : host === "127.0.0.1" || host === "::1" ? "localhost" : host,
      cipherSuites: cipherSuitesFor(args.testcase),
      transport: { initialMaxData: 4 << 20, initialMaxStreamData: 2 << 20, maxIdleTimeout: 30_000 },
    };
    if (args.testcase === "multiconnect") {
      for (const url of urls) {
        const conn = await ep.connect(host, port, connectOpts);
        await download(conn, url, args.downloads);
        await conn.close(0, "done");
      }
    } else {
      const conn = await ep.connect(host, port, connectOpts);
      await Promise.all(urls.map((url) => download(conn, url, args.downloads)));
      await conn.close(0, "done");
    }
  } finally {
    await ep.close();
  }
}

async function download(conn: QuicConnection, url: URL, dir: string): Promise<void> {
  const s = await conn.openStream();
  s.end(`GET ${url.pathname}\r\n`);
  const name = basename(url.pathname) || "index.html";
  await pipeline(s, createWriteStream(join(dir, name)));
}

/** Arguments from the environment and flags. */
export function parseInteropArgs(
  role: "server" | "client",
  argv: string[],
  env: NodeJS.ProcessEnv,
): InteropArgs {
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const positional = argv.filter(
    (a, i) =>
      !a.startsWith("--") &&
      !(i > 0 && argv[i - 1].startsWith("--") && !["--insecure"].includes(argv[i - 1])),
  );
  return {
    role,
    testcase: env.TESTCASE || flag("--testcase") || "transfer",
    www: flag("--www") ?? "/www",
    downloads: flag("--downloads") ?? "/downloads",
    cert: flag("--cert"),
    key: flag("--key"),
    port: Number(flag("--port") ?? 443),
    host: flag("--host") ?? (role === "server" ? "::" : "::"),
    insecure: argv.includes("--insecure"),
    ca: flag("--ca"),
    requests: (env.REQUESTS ?? "").split(/\s+/).filter(Boolean).concat(positional),
    crypto: flag("--crypto"),
    closeCode: flag("--close-code") === undefined ? undefined : Number(flag("--close-code")),
  };
}
