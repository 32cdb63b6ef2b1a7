/**
 * MQTT over TLS over TCP (`mqtts://`, port 8883): a `node:tls` listener that hands each
 * connection, once its TLS handshake completed, to the broker as an {@link MqttTransport} with
 * the TLS socket as the control stream and no data streams (like src/net/tcp.ts).
 *
 * TLS for TCP uses Node's OpenSSL, not the from-scratch TLS 1.3 of src/tls (that one is the QUIC
 * handshake, RFC 9001). It exists so that ordinary MQTT clients (MQTT.js `mqtts://`, mosquitto
 * `--cafile`) reach the broker encrypted, and so that MQTT over QUIC can be compared with what
 * users run instead. TLS 1.2 and 1.3 are accepted by default (`minVersion` raises it).
 */
import type { Socket } from "node:net";
import { createServer, type Server, type TLSSocket, type TlsOptions } from "node:tls";
import { MquicttError } from "../errors.js";
import type { MqttTransport } from "../mqtt/transport.js";
import { TcpTransport } from "./tcp.js";

/** Default TCP port of MQTT over TLS (IANA "secure-mqtt"). */
export const MQTT_TLS_PORT = 8883;

/** Default time a client has to complete the TLS handshake. */
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/** The TLS listener cannot be set up (bad certificate or key, port in use); `code` "ERR_TLS_LISTEN". */
export class TlsListenError extends MquicttError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_TLS_LISTEN", message, options);
  }
}

/** Options of {@link listenTls}. */
export interface TlsListenOptions {
  /** TCP port (default 8883; 0 = any free port). */
  port?: number;
  /** Address to bind (default: all interfaces). */
  host?: string;
  /** Server certificate chain, leaf first: PEM text or DER certificates. */
  cert: string | Uint8Array[];
  /** Private key of the leaf certificate, PEM (PKCS#8, SEC1 or PKCS#1). */
  key: string;
  /**
   * CAs whose client certificates are accepted (PEM text or DER list). When given, the server
   * asks for a client certificate; see `requireClientCert`.
   */
  ca?: string | Uint8Array[];
  /**
   * With `ca`: refuse clients without a certificate signed by it (default false: a client may
   * connect without one, and an invalid one is refused either way).
   */
  requireClientCert?: boolean;
  /** ALPN protocols offered (default ["mqtt"]; a client that offers none is accepted too). */
  alpn?: string[];
  /** Lowest TLS version accepted (default "TLSv1.2"). */
  minVersion?: "TLSv1.2" | "TLSv1.3";
  /** A client that has not completed the TLS handshake after this many ms is dropped (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Called for each connection whose TLS handshake failed (bad certificate, wrong version...). */
  onHandshakeError?: (err: Error, remoteAddress: string) => void;
}

/** A listening TLS server. */
export interface TlsListener {
  /** The bound address and port. */
  address(): { address: string; port: number };
  /** How many connections failed their TLS handshake so far. */
  readonly handshakeErrors: number;
  /** Stops accepting and closes open connections. */
  close(): Promise<void>;
}

/** A TLS connection as an MQTT transport (single stream), with the client's certificate if any. */
export class TlsTransport extends TcpTransport {
  /** The client's certificate (DER) when it presented one that verified against `ca`. */
  readonly peerCertificate?: Uint8Array;

  constructor(socket: TLSSocket) {
    super(socket);
    if (socket.authorized) {
      const raw = socket.getPeerCertificate()?.raw;
      if (raw && raw.length > 0) this.peerCertificate = new Uint8Array(raw);
    }
  }
}

/** PEM text of DER certificates (what node:tls wants). */
export function derToPem(ders: Uint8Array[]): string {
  return ders
    .map((der) => {
      const b64 = Buffer.from(der).toString("base64");
      return `-----BEGIN CERTIFICATE-----\n${b64.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END CERTIFICATE-----\n`;
    })
    .join("");
}

const pemOf = (c: string | Uint8Array[]): string => (typeof c === "string" ? c : derToPem(c));

function addressOf(socket: Socket): string {
  const host = socket.remoteAddress ?? "?";
  return host.includes(":") ? `[${host}]:${socket.remotePort}` : `${host}:${socket.remotePort}`;
}

/**
 * Listens for MQTT over TLS and passes each connection on, after its handshake, as an
 * MqttTransport.
 *
 * @throws {TlsListenError} when the certificate or key is unusable or the port cannot be bound.
 */
export async function listenTls(
  opts: TlsListenOptions,
  onTransport: (transport: MqttTransport) => void,
): Promise<TlsListener> {
  const tlsOpts: TlsOptions = {
    cert: pemOf(opts.cert),
    key: opts.key,
    minVersion: opts.minVersion ?? "TLSv1.2",
    ALPNProtocols: opts.alpn ?? ["mqtt"],
    handshakeTimeout: opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
  };
  if (opts.ca !== undefined) {
    tlsOpts.ca = pemOf(opts.ca);
    tlsOpts.requestCert = true;
    // A presented certificate is always verified; only its absence is tolerated (optional mTLS).
    tlsOpts.rejectUnauthorized = opts.requireClientCert ?? false;
  }
  let server: Server;
  try {
    server = createServer(tlsOpts);
  } catch (e) {
    throw new TlsListenError(`cannot use the TLS certificate or key: ${(e as Error).message}`, { cause: e });
  }
  const sockets = new Set<TLSSocket>();
  let handshakeErrors = 0;
  server.on("secureConnection", (socket: TLSSocket) => {
    // Optional client certificates: one that was presented but did not verify is refused.
    if (opts.ca !== undefined && !socket.authorized && socket.getPeerCertificate()?.raw) {
      handshakeErrors++;
      opts.onHandshakeError?.(
        new Error(`client certificate refused: ${String(socket.authorizationError)}`),
        addressOf(socket),
      );
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    onTransport(new TlsTransport(socket));
  });
  server.on("tlsClientError", (err: Error, socket: TLSSocket) => {
    handshakeErrors++;
    opts.onHandshakeError?.(err, addressOf(socket));
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    const fail = (e: Error): void =>
      reject(
        new TlsListenError(
          `cannot listen for MQTT over TLS on port ${opts.port ?? MQTT_TLS_PORT}: ${e.message}`,
          {
            cause: e,
          },
        ),
      );
    server.once("error", fail);
    server.listen(opts.port ?? MQTT_TLS_PORT, opts.host, () => {
      server.off("error", fail);
      resolve();
    });
  });
  return {
    address() {
      const a = server.address();
      if (a && typeof a === "object") return { address: a.address, port: a.port };
      return { address: String(a), port: 0 };
    },
    get handshakeErrors() {
      return handshakeErrors;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Give sockets a moment to flush a final DISCONNECT, then cut them.
        setImmediate(() => {
          for (const s of sockets) s.end();
          const t = setTimeout(() => {
            for (const s of sockets) s.destroy();
          }, 1000);
          t.unref();
        });
      });
    },
  };
}
